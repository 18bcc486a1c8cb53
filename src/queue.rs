//! The fault queue: one bounded FIFO per cluster under a global bound, served by priority
//! and then round-robin, so a noisy cluster cannot starve quiet ones.
//!
//! Shards are keyed by a dense cluster index (assigned by whoever owns the cluster list).
//! A shard's buffer grows on demand up to `per_shard`, so a thousand idle clusters cost
//! next to nothing.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::str::FromStr;

/// What to do when a shard or the whole queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OverflowPolicy {
    /// Make room by dropping the oldest queued item: the newest faults matter most.
    DropOldest,
    /// Refuse the new item: the faults already queued keep their place.
    RejectNewest,
}

impl OverflowPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            OverflowPolicy::DropOldest => "drop",
            OverflowPolicy::RejectNewest => "reject",
        }
    }
}

impl fmt::Display for OverflowPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OverflowPolicy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "drop" => Ok(OverflowPolicy::DropOldest),
            "reject" => Ok(OverflowPolicy::RejectNewest),
            _ => Err(format!(
                "unknown overflow policy {} (expected \"drop\" or \"reject\")",
                crate::config::quote(s)
            )),
        }
    }
}

/// The outcome of [`ShardedQueue::push`]. Every item that is not queued comes back to the
/// caller, who counts and logs it.
#[derive(Debug, PartialEq)]
pub enum Admission<T> {
    Queued,
    /// Queued, and this older item was displaced to make room.
    QueuedDroppedOldest(T),
    Rejected(T),
}

/// Shrink an emptied shard's buffer beyond this capacity, so a past burst does not pin
/// memory for every cluster forever.
const RETAINED_CAPACITY: usize = 16;

#[derive(Debug)]
struct Shard<T> {
    items: VecDeque<T>,
    priority: i32,
}

#[derive(Debug)]
pub struct ShardedQueue<T> {
    per_shard: usize,
    global: usize,
    policy: OverflowPolicy,
    shards: Vec<Option<Shard<T>>>,
    /// Non-empty shards by priority (highest first via the reversed key), each in
    /// round-robin order: the front is served next.
    rotation: BTreeMap<std::cmp::Reverse<i32>, VecDeque<usize>>,
    len: usize,
    /// Bound on the summed weight of the queued items (`with_byte_bound`).
    max_bytes: usize,
    bytes: usize,
    weigh: fn(&T) -> usize,
}

impl<T> ShardedQueue<T> {
    pub fn new(per_shard: usize, global: usize, policy: OverflowPolicy) -> Self {
        ShardedQueue {
            per_shard,
            global,
            policy,
            shards: Vec::new(),
            rotation: BTreeMap::new(),
            len: 0,
            max_bytes: usize::MAX,
            bytes: 0,
            weigh: |_| 0,
        }
    }

    /// Bounds the queue in bytes as well: `weigh` gives an item's size, and the queued
    /// items together stay within `max_bytes`. A full queue in bytes is full like one in
    /// count: the overflow policy applies, and an item that one displacement cannot make
    /// room for is rejected.
    pub fn with_byte_bound(mut self, max_bytes: usize, weigh: fn(&T) -> usize) -> Self {
        self.max_bytes = max_bytes;
        self.weigh = weigh;
        self
    }

    /// The summed weight of the queued items.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Registers a shard, or updates its priority if it exists (its items are kept).
    pub fn add_shard(&mut self, shard: usize, priority: i32) {
        if self.shards.len() <= shard {
            self.shards.resize_with(shard + 1, || None);
        }
        let old_priority = match &mut self.shards[shard] {
            Some(existing) => std::mem::replace(&mut existing.priority, priority),
            slot @ None => {
                *slot = Some(Shard {
                    items: VecDeque::new(),
                    priority,
                });
                return;
            }
        };
        if old_priority != priority && self.shard_len(shard) > 0 {
            self.leave_rotation(shard, old_priority);
            self.rotation
                .entry(std::cmp::Reverse(priority))
                .or_default()
                .push_back(shard);
        }
    }

    /// Unregisters a shard and returns what it held, oldest first.
    pub fn remove_shard(&mut self, shard: usize) -> Vec<T> {
        let Some(removed) = self.shards.get_mut(shard).and_then(Option::take) else {
            return Vec::new();
        };
        if !removed.items.is_empty() {
            self.leave_rotation(shard, removed.priority);
        }
        self.len -= removed.items.len();
        let weigh = self.weigh;
        self.bytes -= removed.items.iter().map(weigh).sum::<usize>();
        removed.items.into()
    }

    /// Queues `item` on `shard`, applying the overflow policy when the shard or the global
    /// bound is full. An unregistered shard rejects.
    ///
    /// Under `DropOldest`, when the shard itself is at `per_shard` the displaced item is
    /// its own oldest. When only the global bound is full, it is the oldest item of the
    /// longest shard (the lowest index among equals, the pushing shard first): the
    /// cluster using most of the queue pays for the room, never a quiet one.
    pub fn push(&mut self, shard: usize, item: T) -> Admission<T> {
        let Some(Some(target)) = self.shards.get(shard) else {
            return Admission::Rejected(item);
        };
        let target_len = target.items.len();
        let weight = (self.weigh)(&item);
        let too_heavy = |bytes: usize, freed: usize| {
            bytes.saturating_sub(freed).saturating_add(weight) > self.max_bytes
        };
        let full =
            target_len >= self.per_shard || self.len >= self.global || too_heavy(self.bytes, 0);
        if !full {
            self.enqueue(shard, item);
            return Admission::Queued;
        }
        if self.policy == OverflowPolicy::RejectNewest || self.per_shard == 0 {
            return Admission::Rejected(item);
        }
        let victim = if target_len >= self.per_shard {
            shard
        } else {
            match self.longest_shard() {
                // A tie with the pushing shard costs that shard, not another.
                Some(longest) if self.shard_len(longest) > target_len => longest,
                Some(_) if target_len > 0 => shard,
                Some(longest) => longest,
                None => return Admission::Rejected(item),
            }
        };
        let freed = match self.shards.get(victim) {
            Some(Some(s)) => s.items.front().map_or(0, self.weigh),
            _ => 0,
        };
        if too_heavy(self.bytes, freed) {
            return Admission::Rejected(item);
        }
        match self.dequeue(victim) {
            Some(displaced) => {
                self.enqueue(shard, item);
                Admission::QueuedDroppedOldest(displaced)
            }
            None => Admission::Rejected(item),
        }
    }

    /// The next item: from the highest priority that has an eligible shard, and among
    /// shards of that priority, round-robin. A shard that is not `eligible` (open
    /// breaker, per-cluster limit) is skipped but keeps its place in line.
    pub fn pop_fair(&mut self, mut eligible: impl FnMut(usize) -> bool) -> Option<(usize, T)> {
        let mut chosen = None;
        for (priority, ring) in self.rotation.iter() {
            if let Some(position) = ring.iter().position(|&shard| eligible(shard)) {
                chosen = Some((priority.0, position));
                break;
            }
        }
        let (priority, position) = chosen?;
        let ring = self.rotation.get_mut(&std::cmp::Reverse(priority))?;
        let shard = ring.remove(position)?;
        // Served shards go to the back of their priority's line.
        let item = self.dequeue_in_place(shard);
        if self.shard_len(shard) > 0 {
            if let Some(ring) = self.rotation.get_mut(&std::cmp::Reverse(priority)) {
                ring.push_back(shard);
            }
        } else if self
            .rotation
            .get(&std::cmp::Reverse(priority))
            .is_some_and(VecDeque::is_empty)
        {
            self.rotation.remove(&std::cmp::Reverse(priority));
        }
        item.map(|item| (shard, item))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn shard_len(&self, shard: usize) -> usize {
        match self.shards.get(shard) {
            Some(Some(s)) => s.items.len(),
            _ => 0,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Empties the queue in the order `pop_fair` would serve it (for persisting at
    /// shutdown). Shards stay registered.
    pub fn drain_all(&mut self) -> Vec<(usize, T)> {
        let mut drained = Vec::with_capacity(self.len);
        while let Some(entry) = self.pop_fair(|_| true) {
            drained.push(entry);
        }
        drained
    }

    fn enqueue(&mut self, shard: usize, item: T) {
        let Some(Some(target)) = self.shards.get_mut(shard) else {
            return;
        };
        let was_empty = target.items.is_empty();
        self.bytes += (self.weigh)(&item);
        target.items.push_back(item);
        self.len += 1;
        if was_empty {
            let priority = target.priority;
            self.rotation
                .entry(std::cmp::Reverse(priority))
                .or_default()
                .push_back(shard);
        }
    }

    /// Takes the oldest item of a shard, leaving the rotation consistent.
    fn dequeue(&mut self, shard: usize) -> Option<T> {
        let item = self.dequeue_in_place(shard)?;
        if self.shard_len(shard) == 0 {
            if let Some(Some(s)) = self.shards.get(shard) {
                let priority = s.priority;
                self.leave_rotation(shard, priority);
            }
        }
        Some(item)
    }

    /// Takes the oldest item of a shard without touching the rotation.
    fn dequeue_in_place(&mut self, shard: usize) -> Option<T> {
        let Some(Some(s)) = self.shards.get_mut(shard) else {
            return None;
        };
        let item = s.items.pop_front()?;
        if s.items.is_empty() && s.items.capacity() > RETAINED_CAPACITY {
            s.items.shrink_to(RETAINED_CAPACITY);
        }
        self.len -= 1;
        self.bytes -= (self.weigh)(&item);
        Some(item)
    }

    fn leave_rotation(&mut self, shard: usize, priority: i32) {
        let key = std::cmp::Reverse(priority);
        if let Some(ring) = self.rotation.get_mut(&key) {
            ring.retain(|&s| s != shard);
            if ring.is_empty() {
                self.rotation.remove(&key);
            }
        }
    }

    fn longest_shard(&self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (index, shard) in self.shards.iter().enumerate() {
            let len = shard.as_ref().map_or(0, |s| s.items.len());
            if len > 0 && best.is_none_or(|(_, best_len)| len > best_len) {
                best = Some((index, len));
            }
        }
        best.map(|(index, _)| index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_bound_displaces_or_rejects_and_frees_bytes_on_every_way_out() {
        let mut q = queue(10, 10, OverflowPolicy::DropOldest).with_byte_bound(100, |v| *v as usize);
        assert_eq!(q.push(0, 60), Admission::Queued);
        assert_eq!(q.push(1, 30), Admission::Queued);
        assert_eq!(q.bytes(), 90);
        // 20 more does not fit: the oldest of the same shard (30) makes room.
        assert_eq!(q.push(1, 20), Admission::QueuedDroppedOldest(30));
        assert_eq!(q.bytes(), 80);
        // 50 does not fit even after displacing 20: rejected, nothing lost.
        assert_eq!(q.push(1, 50), Admission::Rejected(50));
        assert_eq!(q.bytes(), 80);
        assert_eq!(q.pop_fair(|_| true), Some((0, 60)));
        assert_eq!(q.bytes(), 20);
        assert_eq!(q.remove_shard(1), vec![20]);
        assert_eq!(q.bytes(), 0);
        let mut q =
            queue(10, 10, OverflowPolicy::RejectNewest).with_byte_bound(10, |v| *v as usize);
        assert_eq!(q.push(0, 11), Admission::Rejected(11));
        assert_eq!(q.push(0, 10), Admission::Queued);
        assert_eq!(q.drain_all(), vec![(0, 10)]);
        assert_eq!(q.bytes(), 0);
    }

    fn queue(per_shard: usize, global: usize, policy: OverflowPolicy) -> ShardedQueue<u32> {
        let mut q = ShardedQueue::new(per_shard, global, policy);
        for shard in 0..4 {
            q.add_shard(shard, 0);
        }
        q
    }

    fn shard_items(q: &mut ShardedQueue<u32>, shard: usize) -> Vec<u32> {
        let mut items = Vec::new();
        while let Some((_, item)) = q.pop_fair(|s| s == shard) {
            items.push(item);
        }
        items
    }

    #[test]
    fn reject_policy_keeps_oldest() {
        let mut q = queue(2, 100, OverflowPolicy::RejectNewest);
        assert_eq!(q.push(0, 1), Admission::Queued);
        assert_eq!(q.push(0, 2), Admission::Queued);
        assert_eq!(q.push(0, 3), Admission::Rejected(3));
        assert_eq!(q.len(), 2);
        assert_eq!(shard_items(&mut q, 0), vec![1, 2]);
    }

    #[test]
    fn drop_policy_keeps_newest() {
        let mut q = queue(2, 100, OverflowPolicy::DropOldest);
        assert_eq!(q.push(0, 1), Admission::Queued);
        assert_eq!(q.push(0, 2), Admission::Queued);
        assert_eq!(q.push(0, 3), Admission::QueuedDroppedOldest(1));
        assert_eq!(q.len(), 2);
        assert_eq!(shard_items(&mut q, 0), vec![2, 3]);
    }

    #[test]
    fn reject_policy_at_global_bound_refuses_newest() {
        let mut q = queue(10, 3, OverflowPolicy::RejectNewest);
        assert_eq!(q.push(0, 1), Admission::Queued);
        assert_eq!(q.push(1, 2), Admission::Queued);
        assert_eq!(q.push(1, 3), Admission::Queued);
        assert_eq!(q.push(0, 4), Admission::Rejected(4));
        assert_eq!(q.push(2, 5), Admission::Rejected(5));
        assert_eq!(q.len(), 3);
    }

    #[test]
    fn drop_policy_at_global_bound_drops_from_the_longest_shard_not_the_quiet_one() {
        let mut q = queue(10, 3, OverflowPolicy::DropOldest);
        q.push(0, 1);
        q.push(1, 2);
        q.push(1, 3);
        // Shard 0 (quiet, one item) is under its own bound: the noisy shard pays.
        assert_eq!(q.push(0, 4), Admission::QueuedDroppedOldest(2));
        assert_eq!(q.len(), 3);
        assert_eq!(q.shard_len(0), 2);
        assert_eq!(q.shard_len(1), 1);
        assert_eq!(shard_items(&mut q, 0), vec![1, 4]);
        assert_eq!(shard_items(&mut q, 1), vec![3]);
    }

    #[test]
    fn drop_policy_at_shard_bound_drops_oldest_of_the_same_shard() {
        let mut q = queue(2, 3, OverflowPolicy::DropOldest);
        q.push(0, 1);
        q.push(0, 2);
        q.push(1, 3);
        // Shard 0 is at its own bound, though shard 1 is not longer.
        assert_eq!(q.push(0, 4), Admission::QueuedDroppedOldest(1));
        assert_eq!(shard_items(&mut q, 0), vec![2, 4]);
        assert_eq!(shard_items(&mut q, 1), vec![3]);
    }

    #[test]
    fn drop_policy_with_empty_shard_at_global_bound_drops_oldest_of_longest_shard() {
        let mut q = queue(10, 4, OverflowPolicy::DropOldest);
        q.push(0, 1);
        q.push(1, 2);
        q.push(1, 3);
        q.push(1, 4);
        assert_eq!(q.push(2, 5), Admission::QueuedDroppedOldest(2));
        assert_eq!(q.len(), 4);
        assert_eq!(q.shard_len(0), 1);
        assert_eq!(q.shard_len(1), 2);
        assert_eq!(q.shard_len(2), 1);
        assert_eq!(shard_items(&mut q, 1), vec![3, 4]);
        assert_eq!(shard_items(&mut q, 2), vec![5]);
    }

    #[test]
    fn longest_shard_emptied_by_drop_leaves_rotation() {
        let mut q = queue(10, 1, OverflowPolicy::DropOldest);
        q.push(0, 1);
        assert_eq!(q.push(1, 2), Admission::QueuedDroppedOldest(1));
        assert_eq!(q.pop_fair(|_| true), Some((1, 2)));
        assert_eq!(q.pop_fair(|_| true), None);
        assert!(q.is_empty());
    }

    #[test]
    fn zero_bounds_reject_everything() {
        let mut q = queue(0, 10, OverflowPolicy::DropOldest);
        assert_eq!(q.push(0, 1), Admission::Rejected(1));
        let mut q = queue(10, 0, OverflowPolicy::DropOldest);
        assert_eq!(q.push(0, 1), Admission::Rejected(1));
        assert!(q.is_empty());
    }

    #[test]
    fn push_to_unknown_shard_is_rejected() {
        let mut q = queue(10, 10, OverflowPolicy::DropOldest);
        assert_eq!(q.push(99, 1), Admission::Rejected(1));
        assert_eq!(q.shard_len(99), 0);
    }

    #[test]
    fn quiet_shards_are_served_within_first_pops_despite_noisy_shard() {
        let mut q = queue(1000, 1000, OverflowPolicy::RejectNewest);
        for i in 0..100 {
            q.push(0, i);
        }
        q.push(1, 1000);
        q.push(2, 2000);
        q.push(3, 3000);
        let first: Vec<usize> = (0..4).map(|_| q.pop_fair(|_| true).unwrap().0).collect();
        let mut sorted = first.clone();
        sorted.sort();
        assert_eq!(sorted, vec![0, 1, 2, 3], "first four pops {first:?}");
        assert_eq!(q.len(), 99);
        assert!((0..99).all(|_| q.pop_fair(|_| true).unwrap().0 == 0));
    }

    #[test]
    fn equal_priority_shards_alternate() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        for i in 0..3 {
            q.push(0, i);
            q.push(1, 10 + i);
        }
        let order: Vec<usize> = (0..6).map(|_| q.pop_fair(|_| true).unwrap().0).collect();
        assert_eq!(order, vec![0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn higher_priority_shard_is_served_first() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.add_shard(2, 5);
        q.add_shard(3, -1);
        q.push(3, 30);
        q.push(0, 1);
        q.push(2, 20);
        q.push(2, 21);
        let order: Vec<u32> = (0..4).map(|_| q.pop_fair(|_| true).unwrap().1).collect();
        assert_eq!(order, vec![20, 21, 1, 30]);
    }

    #[test]
    fn ineligible_shard_is_skipped_and_keeps_its_turn() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.add_shard(0, 1);
        q.push(0, 1);
        q.push(1, 10);
        q.push(1, 11);
        q.push(2, 20);
        // Shard 0 has the higher priority but is not eligible: lower priority is served.
        assert_eq!(q.pop_fair(|s| s != 0), Some((1, 10)));
        assert_eq!(q.pop_fair(|s| s != 0), Some((2, 20)));
        assert_eq!(q.pop_fair(|s| s == 3), None);
        assert_eq!(q.pop_fair(|_| true), Some((0, 1)));
        assert_eq!(q.pop_fair(|_| false), None);
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn skipped_shard_is_first_once_eligible() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.push(0, 1);
        q.push(1, 10);
        q.push(1, 11);
        q.push(2, 20);
        assert_eq!(q.pop_fair(|s| s != 0), Some((1, 10)));
        assert_eq!(q.pop_fair(|_| true), Some((0, 1)));
    }

    #[test]
    fn add_shard_is_idempotent_and_updates_priority() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.push(0, 1);
        q.push(1, 10);
        q.add_shard(1, 0);
        assert_eq!(q.shard_len(1), 1);
        q.add_shard(1, 9);
        assert_eq!(q.shard_len(1), 1);
        assert_eq!(q.pop_fair(|_| true), Some((1, 10)));
        assert_eq!(q.pop_fair(|_| true), Some((0, 1)));
        assert!(q.is_empty());
    }

    #[test]
    fn remove_shard_returns_items_in_order() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.push(1, 1);
        q.push(1, 2);
        q.push(1, 3);
        q.push(0, 9);
        assert_eq!(q.remove_shard(1), vec![1, 2, 3]);
        assert_eq!(q.len(), 1);
        assert_eq!(q.push(1, 4), Admission::Rejected(4));
        assert_eq!(q.remove_shard(1), Vec::<u32>::new());
        assert_eq!(q.pop_fair(|_| true), Some((0, 9)));
        assert_eq!(q.pop_fair(|_| true), None);
    }

    #[test]
    fn drain_all_returns_everything_in_fair_order() {
        let mut q = queue(10, 100, OverflowPolicy::RejectNewest);
        q.add_shard(2, 1);
        q.push(0, 1);
        q.push(0, 2);
        q.push(1, 10);
        q.push(2, 20);
        let drained = q.drain_all();
        assert_eq!(drained, vec![(2, 20), (0, 1), (1, 10), (0, 2)]);
        assert!(q.is_empty());
        assert_eq!(q.push(0, 5), Admission::Queued);
    }

    #[test]
    fn emptied_shard_releases_burst_memory() {
        let mut q = queue(1000, 1000, OverflowPolicy::RejectNewest);
        for i in 0..1000 {
            q.push(0, i);
        }
        q.drain_all();
        let capacity = q.shards[0].as_ref().unwrap().items.capacity();
        assert!(capacity <= 2 * RETAINED_CAPACITY, "capacity {capacity}");
    }
}
