//! Suppresses repeated faults: a (cluster, faultId) pair seen within the window is a
//! duplicate. Memory is bounded by `max_entries`; past it the oldest keys are forgotten
//! early (and counted), which can only let a duplicate through, never drop a new fault.
//!
//! Per key, memory is one shared heap allocation (the key text), one set slot and one
//! queue slot. Keys are shared through `Arc<str>` rather than `Rc<str>` because the event
//! loop that owns the pipeline is moved onto its own thread, so this type must be `Send`;
//! both cost the same two counters, and the counts are never contended. Record times are
//! nanoseconds since the first recorded `now`: exact (no rounding, so a key never expires
//! early), and a `u64` beside an `Arc<str>` takes no more room than a `u32` would.

use std::collections::{HashSet, VecDeque};
use std::fmt::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Below this many slots the containers are never shrunk: small tables cost little and
/// shrinking them would only churn allocations.
const SHRINK_FLOOR: usize = 256;

#[derive(Debug)]
pub struct Deduplicator {
    window: Duration,
    max_entries: usize,
    keys: HashSet<Arc<str>>,
    /// Every key in `keys`, oldest first, with the time it was recorded. The window is the
    /// same for every key, so insertion order is also expiry order.
    order: VecDeque<Recorded>,
    /// The instant record times count from: the first `now` ever recorded.
    origin: Option<Instant>,
    evicted: u64,
}

#[derive(Debug)]
struct Recorded {
    /// Nanoseconds since `origin` (saturating at about 584 years).
    at: u64,
    key: Arc<str>,
}

impl Deduplicator {
    /// `max_entries` of 0 is treated as 1.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Deduplicator {
            window,
            max_entries: max_entries.max(1),
            keys: HashSet::new(),
            order: VecDeque::new(),
            origin: None,
            evicted: 0,
        }
    }

    /// true if this key is new (not seen within the window) — records it; false if a
    /// duplicate (does NOT extend the window).
    pub fn check_and_record(&mut self, cluster: &str, fault_id: &str, now: Instant) -> bool {
        // Dropping expired keys first means every key still present is within its window.
        self.expire(now);
        let key = encode_key(cluster, fault_id);
        if self.keys.contains(key.as_str()) {
            return false;
        }
        while self.keys.len() >= self.max_entries {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.keys.remove(&*oldest.key);
                    self.evicted += 1;
                }
                None => break,
            }
        }
        let origin = *self.origin.get_or_insert(now);
        let key: Arc<str> = Arc::from(key);
        self.keys.insert(Arc::clone(&key));
        self.order.push_back(Recorded {
            at: nanos_since(origin, now),
            key,
        });
        true
    }

    /// Forgets every key recorded `window` or longer ago.
    pub fn expire(&mut self, now: Instant) {
        let Some(origin) = self.origin else {
            return;
        };
        let now_at = nanos_since(origin, now);
        let before = self.order.len();
        while let Some(oldest) = self.order.front() {
            if Duration::from_nanos(now_at.saturating_sub(oldest.at)) < self.window {
                break;
            }
            if let Some(oldest) = self.order.pop_front() {
                self.keys.remove(&*oldest.key);
            }
        }
        if self.order.len() < before {
            self.shrink_if_sparse();
        }
    }

    /// When the oldest key expires; `None` when empty (or the window is too long to
    /// express as an `Instant`, which means never).
    pub fn next_expiry(&self) -> Option<Instant> {
        let oldest = self.order.front()?;
        self.origin?
            .checked_add(Duration::from_nanos(oldest.at))?
            .checked_add(self.window)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Keys dropped before their window ended because the bound was reached.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Drops every key of a cluster (removed from configuration).
    pub fn forget_cluster(&mut self, cluster: &str) {
        // The length prefix pins the cluster part, so a prefix match cannot catch a
        // cluster whose name merely starts the same way.
        let prefix = encode_key(cluster, "");
        let keys = &mut self.keys;
        self.order.retain(|recorded| {
            if recorded.key.starts_with(&prefix) {
                keys.remove(&*recorded.key);
                false
            } else {
                true
            }
        });
        self.shrink_if_sparse();
    }

    /// Gives memory back after a burst has expired. Shrinking to twice the live count
    /// leaves room to grow again, and a table is only shrunk once it is three quarters
    /// empty, so a steady load never shrinks and regrows in turn.
    fn shrink_if_sparse(&mut self) {
        let len = self.keys.len();
        let target = (len * 2).max(SHRINK_FLOOR);
        if self.keys.capacity() > SHRINK_FLOOR && len < self.keys.capacity() / 4 {
            self.keys.shrink_to(target);
        }
        if self.order.capacity() > SHRINK_FLOOR && self.order.len() < self.order.capacity() / 4 {
            self.order.shrink_to(target);
        }
    }

    /// (set capacity, queue capacity), to check that memory is given back.
    #[cfg(test)]
    fn capacities(&self) -> (usize, usize) {
        (self.keys.capacity(), self.order.capacity())
    }
}

/// A time before `origin` counts as `origin`: a key then expires late, never early.
fn nanos_since(origin: Instant, now: Instant) -> u64 {
    u64::try_from(now.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

/// `"<cluster byte length>:<cluster><fault id>"`: the length makes ("a", "bc") and
/// ("ab", "c") different keys without reserving any character.
fn encode_key(cluster: &str, fault_id: &str) -> String {
    let mut key = String::with_capacity(cluster.len() + fault_id.len() + 21);
    // Writing to a String cannot fail.
    let _ = write!(key, "{}:", cluster.len());
    key.push_str(cluster);
    key.push_str(fault_id);
    key
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
