//! Sharding: several replicas split the clusters by a stable hash of the cluster name.

use std::fmt;
use std::str::FromStr;

/// Largest replica count accepted; beyond it a typo is likelier than a real fleet.
pub const MAX_SHARDS: u32 = 10_000;

/// This replica's share, written `"index/count"`: it owns the clusters whose name
/// hashes (FNV-1a, 64 bit) to `index` modulo `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// True when this replica watches `cluster_name`. The hash never changes between
    /// releases or machines, so replicas agree without talking to each other.
    pub fn owns(&self, cluster_name: &str) -> bool {
        self.count != 0
            && fnv1a64(cluster_name.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why a shard string is not `"i/n"` with `i < n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadShard(pub String);

impl fmt::Display for BadShard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadShard {}

impl FromStr for Shard {
    type Err = BadShard;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let shape = || {
            BadShard(format!(
                "shard {} is not \"index/count\" (e.g. \"0/3\")",
                super::error::quote(s)
            ))
        };
        let (index, count) = s.trim().split_once('/').ok_or_else(shape)?;
        let number = |t: &str| -> Result<u32, BadShard> {
            if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                return Err(shape());
            }
            t.parse::<u32>().map_err(|_| shape())
        };
        let (index, count) = (number(index)?, number(count)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(BadShard(format!(
                "shard count must be from 1 to {MAX_SHARDS}, got {count}"
            )));
        }
        if index >= count {
            return Err(BadShard(format!(
                "shard index must be below the count ({index}/{count}: indexes run 0..{})",
                count - 1
            )));
        }
        Ok(Shard { index, count })
    }
}

/// FNV-1a, 64 bit: tiny, stable and spreads short names well.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shard_parses_index_over_count() {
        assert_eq!("0/3".parse::<Shard>(), Ok(Shard { index: 0, count: 3 }));
        assert_eq!(" 2/3 ".parse::<Shard>(), Ok(Shard { index: 2, count: 3 }));
        assert_eq!("0/1".parse::<Shard>(), Ok(Shard { index: 0, count: 1 }));
    }

    #[test]
    fn shard_index_must_be_below_count() {
        assert!("3/3".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("1/0".parse::<Shard>().is_err());
    }

    #[test]
    fn malformed_shards_are_refused() {
        for text in ["", "1", "a/b", "-1/3", "1/3/4", "/3", "1/", "0/99999999999"] {
            assert!(text.parse::<Shard>().is_err(), "{text}");
        }
    }

    #[test]
    fn every_cluster_has_exactly_one_owner() {
        let shards: Vec<Shard> = (0..4).map(|index| Shard { index, count: 4 }).collect();
        let mut per_shard = [0usize; 4];
        for i in 0..400 {
            let name = format!("cluster-{i}");
            let owners: Vec<_> = shards.iter().filter(|s| s.owns(&name)).collect();
            assert_eq!(owners.len(), 1, "{name}");
            per_shard[owners[0].index as usize] += 1;
        }
        assert!(per_shard.iter().all(|&n| n > 50), "{per_shard:?}");
    }

    #[test]
    fn single_shard_owns_everything() {
        let all = Shard { index: 0, count: 1 };
        assert!(all.owns("anything"));
        assert!(all.owns(""));
    }
}
