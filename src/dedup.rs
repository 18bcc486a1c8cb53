//! Suppresses repeated faults: a (cluster, faultId) pair seen within the window is a
//! duplicate. Memory is bounded by `max_entries` keys PER CLUSTER; past it that cluster's
//! oldest keys are forgotten early (and counted for that cluster), which can only let one
//! of its own duplicates through, never drop a new fault, and never touches another
//! cluster's keys: a noisy cluster cannot make a quiet one's repeats look new.
//!
//! Per key, memory is one 32-byte queue slot (the time, and the fault id inline when it is
//! short, as the real server's 16 hex digits are; a heap copy otherwise) and one table slot
//! holding the key's sequence number, which locates it in the queue. A fault id is hashed
//! once per check (foldhash, keyed per cluster table: ids are wire text); forgetting a key
//! or growing the table hashes it again. Record times are nanoseconds since the first
//! recorded `now`: exact (no rounding, so a key never expires early).

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::name_map::NameMap;

/// Below this many slots the containers are never shrunk: small tables cost little and
/// shrinking them would only churn allocations.
const SHRINK_FLOOR: usize = 256;

/// Fault ids up to this many bytes are kept inline, without a heap allocation.
const INLINE_KEY_BYTES: usize = 22;

/// What [`Deduplicator::record`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Not seen within the window: recorded. `evicted`: the cluster's keys forgotten early
    /// so far.
    New { evicted: u64 },
    /// Seen within the window.
    Repeat,
}

/// A cluster's place in the [`Deduplicator`], from [`Deduplicator::slot`]: recording
/// through it ([`Deduplicator::record_in`]) skips the lookup by name. It names nothing once
/// the cluster is forgotten, even when its place is given to another cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DedupSlot {
    index: usize,
    generation: u32,
}

#[derive(Debug, Default)]
struct Slot {
    /// Which giving-out of a slot this is (counted over all slots, so never the same twice
    /// for one place, even after the end of the table was dropped and grown again).
    generation: u32,
    keys: Option<ClusterKeys>,
}

#[derive(Debug)]
pub struct Deduplicator {
    window: Duration,
    /// Per cluster.
    max_entries: usize,
    /// Each cluster's keys, at its [`DedupSlot`]; `None` where a forgotten cluster's were.
    slots: Vec<Slot>,
    by_name: NameMap<Box<str>, usize>,
    /// Slots of forgotten clusters, for the next cluster.
    free: Vec<usize>,
    /// Slots given out so far.
    given: u32,
    /// The instant record times count from: the first `now` ever recorded.
    origin: Option<Instant>,
    /// Keys over all clusters.
    len: usize,
    /// No key expires before this (nanoseconds since `origin`): a lower bound, exact after
    /// every `expire`. A stale bound only means one early wake-up.
    earliest: Option<u64>,
    /// [`Deduplicator::next_expiry`], kept up to date with `len` and `earliest`: the loop
    /// asks for it on every turn.
    expiry: Option<Instant>,
}

#[derive(Debug, Default)]
struct ClusterKeys {
    /// The sequence number of every key in `order`.
    keys: HashTable<u64>,
    /// Hashes this cluster's fault ids.
    hasher: DefaultHashBuilder,
    /// Every key, oldest first, with the time it was recorded. The window is the same for
    /// every key, so insertion order is also expiry order.
    order: VecDeque<Recorded>,
    /// The sequence number of `order`'s front; the key numbered `seq` is at
    /// `order[seq - first_seq]`.
    first_seq: u64,
    evicted: u64,
}

#[derive(Debug)]
struct Recorded {
    /// Nanoseconds since `origin` (saturating at about 584 years).
    at: u64,
    key: FaultKey,
}

/// A fault id: inline when short, else on the heap.
#[derive(Debug)]
enum FaultKey {
    Inline {
        len: u8,
        bytes: [u8; INLINE_KEY_BYTES],
    },
    Heap(Box<[u8]>),
}

impl FaultKey {
    fn new(id: &str) -> FaultKey {
        let bytes = id.as_bytes();
        if bytes.len() <= INLINE_KEY_BYTES {
            let mut inline = [0; INLINE_KEY_BYTES];
            inline[..bytes.len()].copy_from_slice(bytes);
            FaultKey::Inline {
                len: bytes.len() as u8,
                bytes: inline,
            }
        } else {
            FaultKey::Heap(Box::from(bytes))
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            FaultKey::Inline { len, bytes } => &bytes[..usize::from(*len)],
            FaultKey::Heap(bytes) => bytes,
        }
    }
}

impl Deduplicator {
    /// `max_entries` (per cluster) of 0 is treated as 1.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Deduplicator {
            window,
            max_entries: max_entries.max(1),
            slots: Vec::new(),
            by_name: NameMap::default(),
            free: Vec::new(),
            given: 0,
            origin: None,
            len: 0,
            earliest: None,
            expiry: None,
        }
    }

    /// true if this key is new (not seen within the window) — records it; false if a
    /// duplicate (does NOT extend the window).
    pub fn check_and_record(&mut self, cluster: &str, fault_id: &str, now: Instant) -> bool {
        matches!(self.record(cluster, fault_id, now), Seen::New { .. })
    }

    /// [`Deduplicator::check_and_record`], telling for a new key how many keys the cluster
    /// has had evicted so far (the bound may just have evicted one).
    pub fn record(&mut self, cluster: &str, fault_id: &str, now: Instant) -> Seen {
        let slot = self.slot(cluster);
        self.record_in(slot, fault_id, now)
    }

    /// The place of `cluster`'s keys, made when it has none.
    pub fn slot(&mut self, cluster: &str) -> DedupSlot {
        if let Some(&index) = self.by_name.get(cluster) {
            return DedupSlot {
                index,
                generation: self.slots[index].generation,
            };
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        self.given = self.given.wrapping_add(1);
        let slot = &mut self.slots[index];
        slot.generation = self.given;
        slot.keys = Some(ClusterKeys::default());
        self.by_name.insert(Box::from(cluster), index);
        DedupSlot {
            index,
            generation: slot.generation,
        }
    }

    /// [`Deduplicator::record`] for the cluster at `slot`. A slot of a forgotten cluster
    /// records nothing and finds every fault new: a fault is never lost to a stale slot.
    pub fn record_in(&mut self, slot: DedupSlot, fault_id: &str, now: Instant) -> Seen {
        let origin = *self.origin.get_or_insert(now);
        let now_at = nanos_since(origin, now);
        let window = self.window;
        let keys = match self.slots.get_mut(slot.index) {
            Some(Slot {
                generation,
                keys: Some(keys),
            }) if *generation == slot.generation => keys,
            _ => return Seen::New { evicted: 0 },
        };
        // Dropping this cluster's expired keys first means every key still present is
        // within its window.
        let before = keys.order.len();
        keys.expire(now_at, window);
        self.len -= before - keys.order.len();
        let hash = keys.hasher.hash_one(fault_id.as_bytes());
        if keys.position(hash, fault_id.as_bytes()).is_some() {
            return Seen::Repeat;
        }
        while keys.order.len() >= self.max_entries {
            if !keys.forget_oldest() {
                break;
            }
            keys.evicted += 1;
            self.len -= 1;
        }
        keys.push(now_at, hash, FaultKey::new(fault_id));
        self.len += 1;
        let first = keys.order.len() == 1;
        let evicted = keys.evicted;
        if first {
            // The cluster's first key: the bound may move, and the whole set may have been
            // empty until now.
            self.earliest = Some(self.earliest.map_or(now_at, |e| e.min(now_at)));
            self.expiry = self.compute_expiry();
        }
        Seen::New { evicted }
    }

    /// Forgets every key recorded `window` or longer ago.
    pub fn expire(&mut self, now: Instant) {
        // Asked on every turn of the loop: nothing to do before the earliest key's end
        // (`None`: no key, or a window too long to ever end).
        match self.next_expiry() {
            Some(at) if now >= at => {}
            _ => return,
        }
        let Some(origin) = self.origin else {
            return;
        };
        let now_at = nanos_since(origin, now);
        let mut earliest: Option<u64> = None;
        let mut len = 0;
        for keys in self.slots.iter_mut().filter_map(|slot| slot.keys.as_mut()) {
            keys.expire(now_at, self.window);
            len += keys.order.len();
            if let Some(front) = keys.order.front() {
                earliest = Some(earliest.map_or(front.at, |e| e.min(front.at)));
            }
        }
        self.len = len;
        self.earliest = earliest;
        self.expiry = self.compute_expiry();
    }

    /// When the oldest key may expire (never later than it does); `None` when empty (or
    /// the window is too long to express as an `Instant`, which means never).
    pub fn next_expiry(&self) -> Option<Instant> {
        self.expiry
    }

    fn compute_expiry(&self) -> Option<Instant> {
        if self.len == 0 {
            return None;
        }
        self.origin?
            .checked_add(Duration::from_nanos(self.earliest?))?
            .checked_add(self.window)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys dropped before their window ended because the bound was reached, all clusters.
    pub fn evicted(&self) -> u64 {
        self.slots
            .iter()
            .filter_map(|slot| slot.keys.as_ref())
            .map(|keys| keys.evicted)
            .sum()
    }

    /// ... for one cluster (`nightcrier_dedup_evictions_total`).
    pub fn evicted_for(&self, cluster: &str) -> u64 {
        self.by_name
            .get(cluster)
            .and_then(|&index| self.slots[index].keys.as_ref())
            .map_or(0, |keys| keys.evicted)
    }

    /// Drops every key of a cluster (removed from configuration).
    pub fn forget_cluster(&mut self, cluster: &str) {
        if let Some(index) = self.by_name.remove(cluster) {
            if let Some(keys) = self.slots[index].keys.take() {
                self.len -= keys.order.len();
            }
            self.free.push(index);
        }
        // Free slots at the end go, so the table follows the fleet down.
        while self.slots.last().is_some_and(|slot| slot.keys.is_none()) {
            self.slots.pop();
        }
        let live = self.slots.len();
        self.free.retain(|&index| index < live);
        if self.len == 0 {
            // No key left: the next one sets an exact bound.
            self.earliest = None;
        }
        self.expiry = self.compute_expiry();
        if self.by_name.capacity() > SHRINK_FLOOR
            && self.by_name.len() < self.by_name.capacity() / 4
        {
            self.by_name
                .shrink_to((self.by_name.len() * 2).max(SHRINK_FLOOR));
        }
    }

    /// (set capacity, queue capacity) summed over clusters, to check that memory is
    /// given back.
    #[cfg(test)]
    fn capacities(&self) -> (usize, usize) {
        let kept = self.slots.iter().filter_map(|slot| slot.keys.as_ref());
        kept.fold((0, 0), |(set, queue), keys| {
            (set + keys.keys.capacity(), queue + keys.order.capacity())
        })
    }
}

impl ClusterKeys {
    /// Where the key `id` with this hash is in `order`.
    fn position(&self, hash: u64, id: &[u8]) -> Option<usize> {
        let first = self.first_seq;
        let order = &self.order;
        self.keys
            .find(hash, |&seq| {
                order
                    .get(seq.wrapping_sub(first) as usize)
                    .is_some_and(|r| r.key.as_bytes() == id)
            })
            .map(|&seq| seq.wrapping_sub(first) as usize)
    }

    fn push(&mut self, at: u64, hash: u64, key: FaultKey) {
        let seq = self.first_seq + self.order.len() as u64;
        self.order.push_back(Recorded { at, key });
        let first = self.first_seq;
        let order = &self.order;
        let hasher = &self.hasher;
        self.keys
            .insert_unique(hash, seq, |&seq| rehash(hasher, order, first, seq));
    }

    /// Forgets the oldest key; false when there is none.
    fn forget_oldest(&mut self) -> bool {
        let Some(oldest) = self.order.pop_front() else {
            return false;
        };
        let seq = self.first_seq;
        self.first_seq += 1;
        let hash = self.hasher.hash_one(oldest.key.as_bytes());
        if let Ok(entry) = self.keys.find_entry(hash, |&s| s == seq) {
            entry.remove();
        }
        true
    }

    fn expire(&mut self, now_at: u64, window: Duration) {
        let before = self.order.len();
        while self
            .order
            .front()
            .is_some_and(|oldest| Duration::from_nanos(now_at.saturating_sub(oldest.at)) >= window)
        {
            self.forget_oldest();
        }
        if self.order.len() < before {
            self.shrink_if_sparse();
        }
    }

    /// Gives memory back after a burst has expired. Shrinking to twice the live count
    /// leaves room to grow again, and a table is only shrunk once it is three quarters
    /// empty, so a steady load never shrinks and regrows in turn.
    fn shrink_if_sparse(&mut self) {
        let len = self.keys.len();
        let target = (len * 2).max(SHRINK_FLOOR);
        if self.keys.capacity() > SHRINK_FLOOR && len < self.keys.capacity() / 4 {
            let first = self.first_seq;
            let order = &self.order;
            let hasher = &self.hasher;
            self.keys
                .shrink_to(target, |&seq| rehash(hasher, order, first, seq));
        }
        if self.order.capacity() > SHRINK_FLOOR && self.order.len() < self.order.capacity() / 4 {
            self.order.shrink_to(target);
        }
    }
}

/// The hash of the key numbered `seq` in `order` (whose front is `first`).
fn rehash(hasher: &DefaultHashBuilder, order: &VecDeque<Recorded>, first: u64, seq: u64) -> u64 {
    order
        .get(seq.wrapping_sub(first) as usize)
        .map_or(0, |r| hasher.hash_one(r.key.as_bytes()))
}

/// A time before `origin` counts as `origin`: a key then expires late, never early.
fn nanos_since(origin: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn duplicate_within_window_is_suppressed() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(!dedup.check_and_record("prod", "f1", t0 + ms(1)));
        assert!(!dedup.check_and_record("prod", "f1", t0 + WINDOW - ms(1)));
        assert!(dedup.check_and_record("prod", "f2", t0 + ms(2)));
        assert_eq!(dedup.len(), 2);
    }

    #[test]
    fn a_remembered_key_takes_one_32_byte_slot() {
        assert_eq!(std::mem::size_of::<Recorded>(), 32);
    }

    #[test]
    fn short_and_long_ids_are_told_apart_by_every_byte() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        let inline = "a".repeat(INLINE_KEY_BYTES);
        let heap = "a".repeat(INLINE_KEY_BYTES + 1);
        let long_b = format!("{}b", "a".repeat(999));
        let long_c = format!("{}c", "a".repeat(999));
        for id in [&inline, &heap, &long_b, &long_c, &String::new()] {
            assert!(dedup.check_and_record("prod", id, t0), "{}", id.len());
        }
        for id in [&inline, &heap, &long_b, &long_c, &String::new()] {
            assert!(
                !dedup.check_and_record("prod", id, t0 + ms(1)),
                "{}",
                id.len()
            );
        }
        assert_eq!(dedup.len(), 5);
    }

    #[test]
    fn same_fault_on_two_clusters_is_new_on_both() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("east", "f1", t0));
        assert!(dedup.check_and_record("west", "f1", t0));
        assert!(!dedup.check_and_record("west", "f1", t0));
    }

    #[test]
    fn cluster_and_fault_boundary_is_not_confusable() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("a", "bc", t0));
        assert!(dedup.check_and_record("ab", "c", t0));
        assert!(dedup.check_and_record("1:a", "b", t0));
        assert!(dedup.check_and_record("1", ":ab", t0));
        assert_eq!(dedup.len(), 4);
    }

    #[test]
    fn key_is_new_again_after_window() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(dedup.check_and_record("prod", "f1", t0 + WINDOW));
        assert!(!dedup.check_and_record("prod", "f1", t0 + WINDOW + ms(1)));
    }

    #[test]
    fn duplicate_does_not_extend_window() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(!dedup.check_and_record("prod", "f1", t0 + ms(59_000)));
        assert!(dedup.check_and_record("prod", "f1", t0 + WINDOW + ms(1)));
    }

    #[test]
    fn expire_removes_entries_older_than_window() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        dedup.check_and_record("prod", "f1", t0);
        dedup.check_and_record("prod", "f2", t0 + ms(10));
        dedup.expire(t0 + WINDOW - ms(1));
        assert_eq!(dedup.len(), 2);
        dedup.expire(t0 + WINDOW);
        assert_eq!(dedup.len(), 1);
        dedup.expire(t0 + WINDOW + ms(10));
        assert!(dedup.is_empty());
        assert_eq!(dedup.next_expiry(), None);
    }

    #[test]
    fn next_expiry_is_oldest_entry_plus_window() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert_eq!(dedup.next_expiry(), None);
        dedup.check_and_record("prod", "f1", t0 + ms(5));
        dedup.check_and_record("prod", "f2", t0 + ms(9));
        assert_eq!(dedup.next_expiry(), Some(t0 + ms(5) + WINDOW));
    }

    #[test]
    fn the_next_expiry_follows_every_change_of_the_keys() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        dedup.check_and_record("a", "f1", t0 + ms(2));
        dedup.check_and_record("b", "f1", t0 + ms(5));
        assert_eq!(dedup.next_expiry(), Some(t0 + ms(2) + WINDOW));
        // Forgetting a cluster leaves a bound that is never late.
        dedup.forget_cluster("a");
        assert!(dedup.next_expiry() <= Some(t0 + ms(5) + WINDOW));
        dedup.expire(t0 + ms(2) + WINDOW);
        assert_eq!(dedup.next_expiry(), Some(t0 + ms(5) + WINDOW));
        dedup.forget_cluster("b");
        assert_eq!(dedup.next_expiry(), None);
        dedup.check_and_record("c", "f1", t0 + ms(7));
        assert_eq!(dedup.next_expiry(), Some(t0 + ms(7) + WINDOW));
        dedup.expire(t0 + ms(7) + WINDOW);
        assert_eq!(dedup.next_expiry(), None);
    }

    #[test]
    fn bound_evicts_oldest_and_counts() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 3);
        for (i, fault) in ["f1", "f2", "f3", "f4"].iter().enumerate() {
            assert!(dedup.check_and_record("prod", fault, t0 + ms(i as u64)));
        }
        assert_eq!(dedup.len(), 3);
        assert_eq!(dedup.evicted(), 1);
        // f1 was evicted, so it is new again; f4 is still remembered.
        assert!(!dedup.check_and_record("prod", "f4", t0 + ms(10)));
        assert!(dedup.check_and_record("prod", "f1", t0 + ms(11)));
        assert_eq!(dedup.evicted(), 2);
        assert_eq!(dedup.len(), 3);
        // `record` tells the count with each new key, per cluster.
        assert_eq!(
            dedup.record("prod", "f5", t0 + ms(12)),
            Seen::New { evicted: 3 }
        );
        assert_eq!(dedup.record("prod", "f5", t0 + ms(13)), Seen::Repeat);
        assert_eq!(
            dedup.record("dev", "f5", t0 + ms(14)),
            Seen::New { evicted: 0 }
        );
    }

    #[test]
    fn a_noisy_cluster_does_not_evict_a_quiet_clusters_keys() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 3);
        assert!(dedup.check_and_record("quiet", "q1", t0));
        for i in 0..50u64 {
            assert!(dedup.check_and_record("noisy", &format!("n{i}"), t0 + ms(i + 1)));
        }
        // The quiet cluster's repeat is still caught: the bound is per cluster.
        assert!(!dedup.check_and_record("quiet", "q1", t0 + ms(100)));
        assert!(!dedup.check_and_record("noisy", "n49", t0 + ms(100)));
        assert!(dedup.check_and_record("noisy", "n0", t0 + ms(101)));
        // Evictions are counted on the cluster that caused them.
        assert_eq!(dedup.evicted_for("noisy"), 48);
        assert_eq!(dedup.evicted_for("quiet"), 0);
        assert_eq!(dedup.len(), 4);
    }

    #[test]
    fn a_slot_names_its_cluster_until_the_cluster_is_forgotten() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        let a = dedup.slot("a");
        let b = dedup.slot("b");
        assert_eq!(dedup.slot("a"), a, "one place per cluster");
        assert_eq!(dedup.record_in(a, "f1", t0), Seen::New { evicted: 0 });
        // By slot and by name, the same keys.
        assert!(!dedup.check_and_record("a", "f1", t0));
        assert_eq!(dedup.record_in(b, "f1", t0), Seen::New { evicted: 0 });
        assert_eq!(dedup.record_in(b, "f1", t0), Seen::Repeat);
        // A forgotten cluster's slot records nothing, even when its place (the last one,
        // dropped and grown again) goes to another cluster.
        dedup.forget_cluster("b");
        let c = dedup.slot("c");
        assert_eq!(dedup.record_in(c, "f9", t0), Seen::New { evicted: 0 });
        for _ in 0..2 {
            assert_eq!(dedup.record_in(b, "f9", t0), Seen::New { evicted: 0 });
        }
        assert_eq!(dedup.record_in(c, "f9", t0), Seen::Repeat);
        dedup.forget_cluster("a");
        dedup.forget_cluster("c");
        assert_eq!(dedup.len(), 0);
        let d = dedup.slot("d");
        for stale in [a, b, c] {
            assert_eq!(dedup.record_in(stale, "g", t0), Seen::New { evicted: 0 });
        }
        assert_eq!(dedup.len(), 0, "stale slots recorded nothing");
        assert_eq!(dedup.record_in(d, "g", t0), Seen::New { evicted: 0 });
        assert_eq!(dedup.len(), 1);
    }

    #[test]
    fn forget_cluster_drops_only_that_cluster() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        dedup.check_and_record("prod", "f1", t0);
        dedup.check_and_record("prod", "f2", t0);
        dedup.check_and_record("prod-eu", "f1", t0);
        dedup.check_and_record("pro", "df1", t0);
        dedup.forget_cluster("prod");
        assert_eq!(dedup.len(), 2);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(!dedup.check_and_record("prod-eu", "f1", t0));
        assert!(!dedup.check_and_record("pro", "df1", t0));
    }

    #[test]
    fn zero_bound_still_suppresses_immediate_duplicate() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 0);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(!dedup.check_and_record("prod", "f1", t0));
        assert_eq!(dedup.len(), 1);
    }

    #[test]
    fn key_is_duplicate_until_the_last_instant_of_its_window() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        dedup.check_and_record("prod", "warmup", t0);
        let t = t0 + ms(1234) + Duration::from_nanos(567);
        assert!(dedup.check_and_record("prod", "f1", t));
        assert!(!dedup.check_and_record("prod", "f1", t + WINDOW - ms(1)));
        assert!(!dedup.check_and_record("prod", "f1", t + WINDOW - Duration::from_nanos(1)));
        assert!(dedup.check_and_record("prod", "f1", t + WINDOW));
    }

    #[test]
    fn next_expiry_keeps_sub_millisecond_record_time() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100);
        let t = t0 + Duration::from_micros(1500);
        dedup.check_and_record("prod", "f1", t);
        dedup.check_and_record("prod", "f2", t + ms(1));
        assert_eq!(dedup.next_expiry(), Some(t + WINDOW));
        dedup.expire(t + WINDOW);
        assert_eq!(dedup.next_expiry(), Some(t + ms(1) + WINDOW));
    }

    #[test]
    fn time_before_first_record_never_expires_a_key_early() {
        let t0 = Instant::now() + WINDOW;
        let mut dedup = Deduplicator::new(WINDOW, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        // An earlier `now` is recorded as the first one, so it lives at least a window.
        assert!(dedup.check_and_record("prod", "f2", t0 - ms(10)));
        dedup.expire(t0 + WINDOW - ms(1));
        assert_eq!(dedup.len(), 2);
        dedup.expire(t0 + WINDOW);
        assert!(dedup.is_empty());
    }

    #[test]
    fn window_longer_than_instant_range_never_expires() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(Duration::MAX, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert_eq!(dedup.next_expiry(), None);
        assert!(!dedup.check_and_record("prod", "f1", t0 + Duration::from_secs(86_400 * 365)));
    }

    #[test]
    fn zero_window_suppresses_nothing() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(Duration::ZERO, 100);
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert!(dedup.check_and_record("prod", "f1", t0));
        assert_eq!(dedup.len(), 1);
    }

    #[test]
    fn memory_is_given_back_after_a_burst_expires() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100_000);
        for i in 0..10_000u64 {
            assert!(dedup.check_and_record("prod", &format!("burst-{i}"), t0 + ms(i)));
        }
        let (set_before, queue_before) = dedup.capacities();
        assert!(set_before >= 10_000 && queue_before >= 10_000);
        // All but the last 10 keys expire.
        dedup.expire(t0 + WINDOW + ms(9_989));
        assert_eq!(dedup.len(), 10);
        let (set_after, queue_after) = dedup.capacities();
        assert!(set_after <= 2 * SHRINK_FLOOR, "set capacity {set_after}");
        assert!(
            queue_after <= 2 * SHRINK_FLOOR,
            "queue capacity {queue_after}"
        );
        // What is left is still remembered, in order.
        assert!(!dedup.check_and_record("prod", "burst-9999", t0 + WINDOW + ms(9_989)));
        assert_eq!(dedup.next_expiry(), Some(t0 + ms(9_990) + WINDOW));
    }

    #[test]
    fn memory_is_given_back_after_forgetting_a_cluster() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100_000);
        for i in 0..5_000u64 {
            dedup.check_and_record("big", &format!("f{i}"), t0);
        }
        dedup.check_and_record("small", "f1", t0);
        dedup.forget_cluster("big");
        assert_eq!(dedup.len(), 1);
        let (set_after, queue_after) = dedup.capacities();
        assert!(set_after <= 2 * SHRINK_FLOOR, "set capacity {set_after}");
        assert!(
            queue_after <= 2 * SHRINK_FLOOR,
            "queue capacity {queue_after}"
        );
        assert!(!dedup.check_and_record("small", "f1", t0));
    }

    #[test]
    fn shrinking_leaves_room_to_grow_and_spares_fuller_containers() {
        let t0 = Instant::now();
        let mut dedup = Deduplicator::new(WINDOW, 100_000);
        for i in 0..2_000u64 {
            dedup.check_and_record("prod", &format!("f{i}"), t0 + ms(i));
        }
        let (_, queue_before) = dedup.capacities();
        dedup.expire(t0 + WINDOW + ms(1_399));
        assert_eq!(dedup.len(), 600);
        let (set_after, queue_after) = dedup.capacities();
        // The queue is still more than a quarter full, so it keeps its room.
        assert!(600 * 4 > queue_before);
        assert_eq!(queue_after, queue_before);
        // Whatever shrinks keeps room for twice what is left.
        assert!(set_after >= 1_200, "set capacity {set_after}");
    }

    #[test]
    fn deduplicator_can_move_to_the_loop_thread() {
        fn assert_send<T: Send>() {}
        assert_send::<Deduplicator>();
    }
}
