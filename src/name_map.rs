//! Maps keyed by the names in the operator's configuration (cluster names), hashed with
//! FNV-1a: a few instructions a byte, where SipHash spends a few hundred on setup and
//! finish for a short name. These keys come from the configuration file, never from the
//! wire, so nobody can choose colliding names to slow the maps down; maps keyed by wire
//! text (fault ids) keep the standard library's keyed SipHash.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A `HashMap` keyed by configured names.
pub type NameMap<K, V> = HashMap<K, V, BuildHasherDefault<NameHasher>>;

/// FNV-1a, 64 bits (the same function as [`crate::config::fnv1a64`]).
pub struct NameHasher(u64);

impl Default for NameHasher {
    fn default() -> Self {
        NameHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for NameHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::BuildHasher;

    #[test]
    fn hashes_bytes_as_fnv1a64_does() {
        let mut hasher = NameHasher::default();
        hasher.write(b"prod-us-east-1");
        assert_eq!(hasher.finish(), crate::config::fnv1a64(b"prod-us-east-1"));
        // A `str` key adds its terminator byte, so "ab"+"c" and "a"+"bc" stay apart.
        let build = BuildHasherDefault::<NameHasher>::default();
        assert_ne!(build.hash_one(("ab", "c")), build.hash_one(("a", "bc")));
    }

    #[test]
    fn a_map_finds_what_it_holds() {
        let mut map: NameMap<String, usize> = NameMap::default();
        for i in 0..1000 {
            map.insert(format!("cluster-{i}"), i);
        }
        assert!((0..1000).all(|i| map.get(format!("cluster-{i}").as_str()) == Some(&i)));
        assert_eq!(map.get("cluster-1000"), None);
    }
}
