//! Hashed timer wheel: O(1) insert and cancel, exact expiry, and an exact next deadline
//! for the poll timeout.
//!
//! Timers live in a slab; each slot of the wheel is an intrusive doubly-linked list
//! through the slab, so cancel unlinks in O(1). The wheel covers one revolution at a time
//! (`slots` ticks, aligned to a multiple of `slots`). Timers due in a later revolution wait
//! in an overflow list and move into the wheel when their revolution begins.
//!
//! Why `next_deadline` is cheap and exact: slot entries of the current revolution are
//! ordered by slot, so the earliest is the first occupied slot at or after the current
//! tick, found in an occupancy bitmap (at most `slots / 64` word reads). Every overflow
//! timer is later than every slot timer, and the overflow minimum is cached; it is only
//! recomputed (a walk of the overflow list) when the cached minimum is cancelled or moved.
//! So an idle daemon with a 300 s timer sleeps 300 s: no wake-up per revolution.

use std::cell::Cell;
use std::time::{Duration, Instant};

const NIL: usize = usize::MAX;
/// Ticks are clamped here so that `base + slots` arithmetic can never overflow.
const MAX_TICK: u64 = u64::MAX / 4;
const MIN_SLOTS: usize = 64;
const MAX_SLOTS: usize = 1 << 20;

/// Names one timer. The generation changes whenever a slab entry is freed, so an id of a
/// fired or cancelled timer never reaches the timer that reuses its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId {
    index: usize,
    generation: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum List {
    Free,
    Slot(usize),
    /// Due in a later revolution than the current one.
    Overflow,
    /// Inserted with a deadline at or before the last `expire`: due on the next one.
    Overdue,
}

#[derive(Debug)]
struct Entry<T> {
    value: Option<T>,
    generation: u32,
    deadline: Instant,
    /// The deadline rounded up to a whole tick since `start`.
    tick: u64,
    list: List,
    prev: usize,
    next: usize,
}

#[derive(Debug)]
pub struct TimerWheel<T> {
    start: Instant,
    /// The tick in nanoseconds (u64 arithmetic: a division per loop turn, not a u128 call).
    tick_nanos: u64,
    slots: u64,
    mask: u64,
    heads: Vec<usize>,
    occupied: Vec<u64>,
    overflow_head: usize,
    overdue_head: usize,
    entries: Vec<Entry<T>>,
    free_head: usize,
    /// Every tick before this one has been expired.
    current: u64,
    /// The latest `now` given to `expire`.
    last_now: Option<Instant>,
    len: usize,
    slot_len: usize,
    overflow_len: usize,
    overdue_len: usize,
    /// Exact minimum tick of the overflow list; `None` when empty or not yet recomputed.
    overflow_min: Cell<Option<u64>>,
}

impl<T> TimerWheel<T> {
    /// `slots` is rounded up to a power of two between 64 and 2^20; a zero `tick` is
    /// treated as 1 ns.
    pub fn new(start: Instant, tick: Duration, slots: usize) -> Self {
        let slots = slots.clamp(MIN_SLOTS, MAX_SLOTS).next_power_of_two();
        TimerWheel {
            start,
            tick_nanos: nanos_u64(tick).max(1),
            slots: slots as u64,
            mask: slots as u64 - 1,
            heads: vec![NIL; slots],
            occupied: vec![0; slots / 64],
            overflow_head: NIL,
            overdue_head: NIL,
            entries: Vec::new(),
            free_head: NIL,
            current: 0,
            last_now: None,
            len: 0,
            slot_len: 0,
            overflow_len: 0,
            overdue_len: 0,
            overflow_min: Cell::new(None),
        }
    }

    /// Schedules `value` for `deadline`. A deadline that has already passed fires on the
    /// next `expire`.
    pub fn insert(&mut self, deadline: Instant, value: T) -> TimerId {
        let tick = self.ceil_tick(deadline);
        let list = if self.last_now.is_some_and(|last| deadline <= last) || tick < self.current {
            List::Overdue
        } else if tick < self.revolution_base() + self.slots {
            List::Slot((tick & self.mask) as usize)
        } else {
            List::Overflow
        };
        let entry = Entry {
            value: Some(value),
            generation: 0,
            deadline,
            tick,
            list: List::Free,
            prev: NIL,
            next: NIL,
        };
        let index = if self.free_head != NIL {
            let index = self.free_head;
            let reused = &mut self.entries[index];
            self.free_head = reused.next;
            let generation = reused.generation;
            *reused = Entry {
                generation,
                ..entry
            };
            index
        } else {
            self.entries.push(entry);
            self.entries.len() - 1
        };
        self.len += 1;
        self.link(index, list);
        TimerId {
            index,
            generation: self.entries[index].generation,
        }
    }

    /// Removes a pending timer. A stale id (fired, cancelled, or never issued) is `None`.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let entry = self.entries.get(id.index)?;
        if entry.generation != id.generation || entry.list == List::Free {
            return None;
        }
        self.unlink(id.index);
        self.release(id.index)
    }

    /// Moves every timer whose deadline is at or before `now` into `out`: never earlier
    /// than its deadline. Within one tick the order is unspecified.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<T>) {
        self.last_now = Some(self.last_now.map_or(now, |last| last.max(now)));
        self.fire_where(self.overdue_head, now, out);
        if let Some(target) = self.floor_tick(now) {
            self.advance(target, now, out);
        }
        // Timers of the tick now in progress may already be due: the tick rounds up.
        if self.slot_len > 0 {
            let slot = (self.current & self.mask) as usize;
            self.fire_where(self.heads[slot], now, out);
        }
    }

    /// The earliest deadline rounded up to its tick (never before any timer is due), or
    /// the last `expire` time if a timer is already overdue. `None` when no timer is
    /// pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.overdue_len > 0 {
            return Some(self.last_now.unwrap_or(self.start));
        }
        if self.slot_len > 0 {
            let base = self.revolution_base();
            if let Some(slot) = self.first_occupied_from((self.current - base) as usize) {
                return self.tick_instant(base + slot as u64);
            }
        }
        self.overflow_min().and_then(|tick| self.tick_instant(tick))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Expires every tick up to and including `target`, skipping empty stretches.
    fn advance(&mut self, target: u64, now: Instant, out: &mut Vec<T>) {
        while self.current <= target {
            if self.slot_len == 0 {
                let Some(earliest) = self.overflow_min() else {
                    self.advance_to(target + 1);
                    return;
                };
                let revolution = earliest & !self.mask;
                if revolution > target {
                    self.advance_to(target + 1);
                    return;
                }
                // Jump straight to the revolution of the earliest far timer.
                self.advance_to(revolution.max(self.current + 1));
                continue;
            }
            let base = self.revolution_base();
            let scan_end = (target + 1).min(base + self.slots);
            match self.first_occupied_from((self.current - base) as usize) {
                Some(slot) if base + (slot as u64) < scan_end => {
                    // The whole slot is due: its tick has passed, so every deadline has.
                    self.fire_where(self.heads[slot], now, out);
                    self.advance_to(base + slot as u64 + 1);
                }
                _ => self.advance_to(scan_end),
            }
        }
    }

    fn advance_to(&mut self, tick: u64) {
        let old_base = self.revolution_base();
        self.current = tick;
        if self.revolution_base() != old_base {
            self.migrate();
        }
    }

    /// Moves overflow timers of the revolution just begun into their slots.
    fn migrate(&mut self) {
        let limit = self.revolution_base() + self.slots;
        let mut remaining_min: Option<u64> = None;
        let mut index = self.overflow_head;
        while index != NIL {
            let next = self.entries[index].next;
            let tick = self.entries[index].tick;
            if tick < limit {
                self.unlink(index);
                let list = if tick < self.current {
                    List::Overdue
                } else {
                    List::Slot((tick & self.mask) as usize)
                };
                self.link(index, list);
            } else {
                remaining_min = Some(remaining_min.map_or(tick, |m| m.min(tick)));
            }
            index = next;
        }
        self.overflow_min.set(remaining_min);
    }

    /// Fires the timers of the list starting at `head` whose deadline is at or before
    /// `now`.
    fn fire_where(&mut self, head: usize, now: Instant, out: &mut Vec<T>) {
        let mut index = head;
        while index != NIL {
            let next = self.entries[index].next;
            if self.entries[index].deadline <= now {
                self.unlink(index);
                if let Some(value) = self.release(index) {
                    out.push(value);
                }
            }
            index = next;
        }
    }

    fn link(&mut self, index: usize, list: List) {
        let tick = self.entries[index].tick;
        let head = match list {
            List::Free => return,
            List::Slot(slot) => {
                self.occupied[slot / 64] |= 1 << (slot % 64);
                self.slot_len += 1;
                &mut self.heads[slot]
            }
            List::Overflow => {
                let min = match self.overflow_min.get() {
                    Some(m) => Some(m.min(tick)),
                    None if self.overflow_len == 0 => Some(tick),
                    None => None,
                };
                self.overflow_min.set(min);
                self.overflow_len += 1;
                &mut self.overflow_head
            }
            List::Overdue => {
                self.overdue_len += 1;
                &mut self.overdue_head
            }
        };
        let old_head = std::mem::replace(head, index);
        if old_head != NIL {
            self.entries[old_head].prev = index;
        }
        let entry = &mut self.entries[index];
        entry.list = list;
        entry.prev = NIL;
        entry.next = old_head;
    }

    fn unlink(&mut self, index: usize) {
        let (list, prev, next, tick) = {
            let e = &self.entries[index];
            (e.list, e.prev, e.next, e.tick)
        };
        if next != NIL {
            self.entries[next].prev = prev;
        }
        if prev != NIL {
            self.entries[prev].next = next;
        }
        match list {
            List::Free => return,
            List::Slot(slot) => {
                if prev == NIL {
                    self.heads[slot] = next;
                }
                if self.heads[slot] == NIL {
                    self.occupied[slot / 64] &= !(1 << (slot % 64));
                }
                self.slot_len -= 1;
            }
            List::Overflow => {
                if prev == NIL {
                    self.overflow_head = next;
                }
                self.overflow_len -= 1;
                if self.overflow_min.get() == Some(tick) || self.overflow_len == 0 {
                    self.overflow_min.set(None);
                }
            }
            List::Overdue => {
                if prev == NIL {
                    self.overdue_head = next;
                }
                self.overdue_len -= 1;
            }
        }
        let entry = &mut self.entries[index];
        entry.list = List::Free;
        entry.prev = NIL;
        entry.next = NIL;
    }

    /// Returns an unlinked entry to the free list.
    fn release(&mut self, index: usize) -> Option<T> {
        let entry = &mut self.entries[index];
        let value = entry.value.take();
        entry.generation = entry.generation.wrapping_add(1);
        entry.next = self.free_head;
        self.free_head = index;
        self.len -= 1;
        value
    }

    fn overflow_min(&self) -> Option<u64> {
        if self.overflow_len == 0 {
            return None;
        }
        if let Some(min) = self.overflow_min.get() {
            return Some(min);
        }
        let mut min: Option<u64> = None;
        let mut index = self.overflow_head;
        while index != NIL {
            let tick = self.entries[index].tick;
            min = Some(min.map_or(tick, |m| m.min(tick)));
            index = self.entries[index].next;
        }
        self.overflow_min.set(min);
        min
    }

    /// The first occupied slot at or after `from` (slots are not searched circularly:
    /// slots before the current tick belong to a finished part of the revolution).
    fn first_occupied_from(&self, from: usize) -> Option<usize> {
        let mut word_index = from / 64;
        let mut word = *self.occupied.get(word_index)? & (u64::MAX << (from % 64));
        loop {
            if word != 0 {
                return Some(word_index * 64 + word.trailing_zeros() as usize);
            }
            word_index += 1;
            word = *self.occupied.get(word_index)?;
        }
    }

    fn revolution_base(&self) -> u64 {
        self.current & !self.mask
    }

    fn ceil_tick(&self, deadline: Instant) -> u64 {
        let nanos = nanos_u64(deadline.saturating_duration_since(self.start));
        nanos.div_ceil(self.tick_nanos).min(MAX_TICK)
    }

    fn floor_tick(&self, now: Instant) -> Option<u64> {
        let nanos = nanos_u64(now.checked_duration_since(self.start)?);
        Some((nanos / self.tick_nanos).min(MAX_TICK))
    }

    fn tick_instant(&self, tick: u64) -> Option<Instant> {
        let offset = match tick.checked_mul(self.tick_nanos) {
            Some(nanos) => Duration::from_nanos(nanos),
            // Beyond 584 years from the start.
            None => {
                let nanos = u128::from(tick) * u128::from(self.tick_nanos);
                let secs = u64::try_from(nanos / 1_000_000_000).ok()?;
                Duration::new(secs, (nanos % 1_000_000_000) as u32)
            }
        };
        self.start.checked_add(offset)
    }
}

/// A duration in nanoseconds, saturating at 584 years.
fn nanos_u64(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const TICK: Duration = Duration::from_millis(10);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn wheel(t0: Instant) -> TimerWheel<u32> {
        TimerWheel::new(t0, TICK, 64)
    }

    fn expired(wheel: &mut TimerWheel<u32>, now: Instant) -> Vec<u32> {
        let mut out = Vec::new();
        wheel.expire(now, &mut out);
        out.sort();
        out
    }

    #[test]
    fn timer_fires_at_deadline_and_not_before() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        w.insert(t0 + ms(25), 1);
        assert!(expired(&mut w, t0 + ms(20)).is_empty());
        assert!(expired(&mut w, t0 + ms(24)).is_empty());
        assert_eq!(expired(&mut w, t0 + ms(25)), vec![1]);
        assert!(w.is_empty());
    }

    #[test]
    fn late_expire_fires_everything_due() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        w.insert(t0 + ms(5), 1);
        w.insert(t0 + ms(100), 2);
        w.insert(t0 + ms(101), 3);
        w.insert(t0 + ms(102), 4);
        assert_eq!(expired(&mut w, t0 + ms(101)), vec![1, 2, 3]);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn past_deadline_fires_on_next_expire() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        assert!(expired(&mut w, t0 + ms(75)).is_empty());
        w.insert(t0 + ms(72), 1);
        w.insert(t0 + ms(3), 2);
        assert_eq!(w.next_deadline(), Some(t0 + ms(75)));
        assert_eq!(expired(&mut w, t0 + ms(75)), vec![1, 2]);
        assert!(w.is_empty());
    }

    #[test]
    fn deadline_before_start_fires_on_first_expire() {
        let t0 = Instant::now() + ms(1000);
        let mut w = wheel(t0);
        w.insert(t0 - ms(500), 1);
        assert!(w.next_deadline().unwrap() >= t0 - ms(500));
        assert_eq!(expired(&mut w, t0 - ms(400)), vec![1]);
    }

    #[test]
    fn next_deadline_is_min_deadline_rounded_up_to_tick() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        assert_eq!(w.next_deadline(), None);
        let a = w.insert(t0 + ms(123), 1);
        w.insert(t0 + ms(456), 2);
        let c = w.insert(t0 + ms(77), 3);
        assert_eq!(w.next_deadline(), Some(t0 + ms(80)));
        w.cancel(c);
        assert_eq!(w.next_deadline(), Some(t0 + ms(130)));
        w.cancel(a);
        assert_eq!(w.next_deadline(), Some(t0 + ms(460)));
        w.insert(t0 + ms(450), 4);
        assert_eq!(w.next_deadline(), Some(t0 + ms(450)));
    }

    #[test]
    fn far_future_timer_neither_fires_early_nor_wakes_early() {
        let t0 = Instant::now();
        // 64 slots of 10 ms: one revolution is 640 ms; this timer is ~470 revolutions out.
        let mut w = wheel(t0);
        let far = t0 + Duration::from_secs(300);
        w.insert(far, 1);
        assert_eq!(w.next_deadline(), Some(far));
        for step in 1..=299u64 {
            let now = t0 + Duration::from_secs(step);
            assert!(expired(&mut w, now).is_empty(), "fired early at {step}s");
            assert_eq!(w.next_deadline(), Some(far), "early wake-up at {step}s");
        }
        assert!(expired(&mut w, far - ms(1)).is_empty());
        assert_eq!(expired(&mut w, far), vec![1]);
        assert_eq!(w.next_deadline(), None);
    }

    #[test]
    fn far_timer_behind_near_timers_keeps_order() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        w.insert(t0 + Duration::from_secs(5), 2);
        w.insert(t0 + ms(600), 1);
        w.insert(t0 + Duration::from_secs(9), 3);
        assert_eq!(w.next_deadline(), Some(t0 + ms(600)));
        assert_eq!(expired(&mut w, t0 + ms(600)), vec![1]);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(5)));
        assert!(expired(&mut w, t0 + ms(4999)).is_empty());
        assert_eq!(expired(&mut w, t0 + ms(5000)), vec![2]);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(9)));
        assert_eq!(expired(&mut w, t0 + Duration::from_secs(3600)), vec![3]);
    }

    #[test]
    fn cancel_returns_value_once() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let id = w.insert(t0 + ms(50), 7);
        assert_eq!(w.cancel(id), Some(7));
        assert_eq!(w.cancel(id), None);
        assert!(w.is_empty());
        assert!(expired(&mut w, t0 + ms(100)).is_empty());
    }

    #[test]
    fn cancel_after_fire_returns_none() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let id = w.insert(t0 + ms(50), 7);
        assert_eq!(expired(&mut w, t0 + ms(50)), vec![7]);
        assert_eq!(w.cancel(id), None);
    }

    #[test]
    fn stale_id_cannot_cancel_successor_in_reused_entry() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let old = w.insert(t0 + ms(50), 1);
        w.cancel(old);
        let new = w.insert(t0 + ms(60), 2);
        assert_eq!(old.index, new.index, "the entry should be reused");
        assert_ne!(old, new);
        assert_eq!(w.cancel(old), None);
        assert_eq!(w.len(), 1);
        assert_eq!(w.cancel(new), Some(2));
    }

    #[test]
    fn cancel_of_far_minimum_recomputes_next_deadline() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        let first = w.insert(t0 + Duration::from_secs(100), 1);
        w.insert(t0 + Duration::from_secs(200), 2);
        w.insert(t0 + Duration::from_secs(150), 3);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(100)));
        w.cancel(first);
        assert_eq!(w.next_deadline(), Some(t0 + Duration::from_secs(150)));
    }

    #[test]
    fn same_tick_timers_all_fire() {
        let t0 = Instant::now();
        let mut w = wheel(t0);
        for i in 0..5 {
            w.insert(t0 + ms(31 + i as u64), i);
        }
        assert_eq!(w.next_deadline(), Some(t0 + ms(40)));
        assert_eq!(expired(&mut w, t0 + ms(33)), vec![0, 1, 2]);
        assert_eq!(expired(&mut w, t0 + ms(40)), vec![3, 4]);
    }

    #[test]
    fn odd_construction_parameters_are_usable() {
        let t0 = Instant::now();
        let mut w = TimerWheel::new(t0, Duration::ZERO, 0);
        w.insert(t0 + ms(1), 1u32);
        let mut out = Vec::new();
        w.expire(t0 + ms(1), &mut out);
        assert_eq!(out, vec![1]);
        let mut w = TimerWheel::new(t0, TICK, 1000);
        assert_eq!(w.slots, 1024);
        w.insert(t0 + Duration::from_secs(1 << 40), 2u32);
        w.expire(t0 + Duration::from_secs(3600), &mut out);
        assert_eq!(w.len(), 1);
    }

    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn random_operations_agree_with_reference_model() {
        let t0 = Instant::now();
        let tick = Duration::from_millis(1);
        // 64 one-millisecond slots: deadlines up to minutes cross many revolutions.
        let mut w: TimerWheel<u64> = TimerWheel::new(t0, tick, 64);
        let mut model: BTreeMap<(Instant, u64), ()> = BTreeMap::new();
        let mut live: Vec<(u64, Instant, TimerId)> = Vec::new();
        let mut stale: Vec<TimerId> = Vec::new();
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut now = t0;
        let mut last_expire = None;
        let mut fired_total = 0usize;
        let mut out = Vec::new();
        for seq in 0..100_000u64 {
            match rng.next() % 100 {
                0..=49 => {
                    let offset = match rng.next() % 10 {
                        0..=4 => ms(rng.next() % 50),
                        5..=7 => ms(rng.next() % 2_000),
                        8 => Duration::from_secs(rng.next() % 300),
                        _ => Duration::from_micros(rng.next() % 10_000),
                    };
                    let deadline = if rng.next() % 20 == 0 {
                        now.checked_sub(offset).unwrap_or(now).max(t0)
                    } else {
                        now + offset
                    };
                    let id = w.insert(deadline, seq);
                    model.insert((deadline, seq), ());
                    live.push((seq, deadline, id));
                }
                50..=69 if !live.is_empty() => {
                    let pick = (rng.next() % live.len() as u64) as usize;
                    let (value, deadline, id) = live.swap_remove(pick);
                    assert_eq!(w.cancel(id), Some(value));
                    model.remove(&(deadline, value));
                    stale.push(id);
                }
                70..=74 if !stale.is_empty() => {
                    let pick = (rng.next() % stale.len() as u64) as usize;
                    assert_eq!(w.cancel(stale[pick]), None);
                }
                _ => {
                    now += match rng.next() % 50 {
                        0 => Duration::from_millis(rng.next() % 5_000),
                        1..=9 => Duration::ZERO,
                        _ => Duration::from_micros(rng.next() % 20_000),
                    };
                    out.clear();
                    w.expire(now, &mut out);
                    last_expire = Some(now);
                    let later = model.split_off(&(now, u64::MAX));
                    let due: Vec<u64> = std::mem::replace(&mut model, later)
                        .into_keys()
                        .map(|(_, v)| v)
                        .collect();
                    out.sort();
                    let mut due_sorted = due.clone();
                    due_sorted.sort();
                    assert_eq!(out, due_sorted, "expire at op {seq}");
                    fired_total += out.len();
                    live.retain(|(v, _, id)| {
                        let fired = out.binary_search(v).is_ok();
                        if fired {
                            stale.push(*id);
                        }
                        !fired
                    });
                }
            }
            if stale.len() > 1_000 {
                stale.drain(..500);
            }
            assert_eq!(w.len(), model.len(), "len at op {seq}");
            match model.keys().next() {
                None => assert_eq!(w.next_deadline(), None, "op {seq}"),
                Some(&(min, _)) => {
                    let reported = w.next_deadline().expect("timers pending");
                    assert!(reported >= min, "next_deadline early at op {seq}");
                    match last_expire {
                        Some(last) if min <= last => {
                            assert!(
                                reported <= last,
                                "overdue timer not reported due at op {seq}"
                            )
                        }
                        _ => assert!(reported < min + tick, "next_deadline late at op {seq}"),
                    }
                }
            }
        }
        assert!(fired_total > 10_000, "only {fired_total} timers fired");
    }
}
