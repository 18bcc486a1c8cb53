//! Suppresses repeated faults: a (cluster, faultId) pair seen within the window is a
//! duplicate. Memory is bounded by `max_entries`; past it the oldest keys are forgotten
//! early (and counted), which can only let a duplicate through, never drop a new fault.

use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub struct Deduplicator {
    window: Duration,
    max_entries: usize,
    keys: HashSet<String>,
    /// Every key in `keys`, oldest first, with the time it was recorded. The window is the
    /// same for every key, so insertion order is also expiry order.
    order: VecDeque<(Instant, String)>,
    evicted: u64,
}

impl Deduplicator {
    /// `max_entries` of 0 is treated as 1.
    pub fn new(window: Duration, max_entries: usize) -> Self {
        Deduplicator {
            window,
            max_entries: max_entries.max(1),
            keys: HashSet::new(),
            order: VecDeque::new(),
            evicted: 0,
        }
    }

    /// true if this key is new (not seen within the window) — records it; false if a
    /// duplicate (does NOT extend the window).
    pub fn check_and_record(&mut self, cluster: &str, fault_id: &str, now: Instant) -> bool {
        // Dropping expired keys first means every key still present is within its window.
        self.expire(now);
        let key = encode_key(cluster, fault_id);
        if self.keys.contains(&key) {
            return false;
        }
        while self.keys.len() >= self.max_entries {
            match self.order.pop_front() {
                Some((_, oldest)) => {
                    self.keys.remove(&oldest);
                    self.evicted += 1;
                }
                None => break,
            }
        }
        self.keys.insert(key.clone());
        self.order.push_back((now, key));
        true
    }

    /// Forgets every key recorded `window` or longer ago.
    pub fn expire(&mut self, now: Instant) {
        while let Some((recorded, _)) = self.order.front() {
            if now.saturating_duration_since(*recorded) < self.window {
                break;
            }
            if let Some((_, key)) = self.order.pop_front() {
                self.keys.remove(&key);
            }
        }
    }

    /// When the oldest key expires; `None` when empty (or the window is too long to
    /// express as an `Instant`, which means never).
    pub fn next_expiry(&self) -> Option<Instant> {
        let (recorded, _) = self.order.front()?;
        recorded.checked_add(self.window)
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
        self.order.retain(|(_, key)| {
            if key.starts_with(&prefix) {
                keys.remove(key);
                false
            } else {
                true
            }
        });
    }
}

/// `"<cluster byte length>:<cluster><fault id>"`: the length makes ("a", "bc") and
/// ("ab", "c") different keys without reserving any character.
fn encode_key(cluster: &str, fault_id: &str) -> String {
    let mut key = String::with_capacity(cluster.len() + fault_id.len() + 8);
    key.push_str(&cluster.len().to_string());
    key.push(':');
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
}
