//! Connect admission: every connection attempt (first connect or reconnect) waits here and
//! is let through highest `priority` first, at most `per_step` per `step`. A fleet restart
//! or a network blip then never makes 1,000 clusters connect in one tick, and the clusters
//! that matter most are back first.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use super::connection::SlotKey;

/// Default pace: 50 connects per 20 ms (2,500 per second).
pub const CONNECTS_PER_STEP: usize = 50;
pub const CONNECT_STEP: Duration = Duration::from_millis(20);

#[derive(Debug, PartialEq, Eq)]
struct Waiting {
    priority: i32,
    sequence: u64,
    key: SlotKey,
}

impl Ord for Waiting {
    fn cmp(&self, other: &Self) -> Ordering {
        // Max-heap: higher priority first, then whoever asked first.
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.sequence.cmp(&self.sequence))
    }
}

impl PartialOrd for Waiting {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

pub struct ConnectAdmission {
    waiting: BinaryHeap<Waiting>,
    sequence: u64,
    per_step: usize,
    step: Duration,
    window_start: Option<Instant>,
    used: usize,
}

impl Default for ConnectAdmission {
    fn default() -> Self {
        Self::new(CONNECTS_PER_STEP, CONNECT_STEP)
    }
}

impl ConnectAdmission {
    pub fn new(per_step: usize, step: Duration) -> Self {
        ConnectAdmission {
            waiting: BinaryHeap::new(),
            sequence: 0,
            per_step: per_step.max(1),
            step,
            window_start: None,
            used: 0,
        }
    }

    pub fn request(&mut self, priority: i32, key: SlotKey) {
        self.sequence += 1;
        self.waiting.push(Waiting {
            priority,
            sequence: self.sequence,
            key,
        });
    }

    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Lets through as many waiting connects as this step still allows.
    pub fn admit(&mut self, now: Instant, out: &mut Vec<SlotKey>) {
        if self.waiting.is_empty() {
            return;
        }
        let window_over = self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= self.step);
        if window_over {
            self.window_start = Some(now);
            self.used = 0;
        }
        while self.used < self.per_step {
            let Some(next) = self.waiting.pop() else {
                break;
            };
            self.used += 1;
            out.push(next.key);
        }
    }

    /// When `admit` can let the next waiting connect through.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.waiting.is_empty() {
            return None;
        }
        match self.window_start {
            Some(start) if self.used >= self.per_step => Some(start + self.step),
            // Budget left (or no window yet): due now.
            Some(start) => Some(start),
            None => Some(Instant::now()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(index: u32) -> SlotKey {
        SlotKey {
            index,
            generation: 1,
        }
    }

    #[test]
    fn higher_priority_connects_first_then_first_come() {
        let mut admission = ConnectAdmission::new(10, Duration::from_millis(20));
        admission.request(0, key(1));
        admission.request(5, key(2));
        admission.request(0, key(3));
        admission.request(9, key(4));
        let mut out = Vec::new();
        admission.admit(Instant::now(), &mut out);
        assert_eq!(out, vec![key(4), key(2), key(1), key(3)]);
    }

    #[test]
    fn a_storm_is_spread_over_steps() {
        let mut admission = ConnectAdmission::new(50, Duration::from_millis(20));
        for i in 0..1000 {
            admission.request(0, key(i));
        }
        let start = Instant::now();
        let mut out = Vec::new();
        admission.admit(start, &mut out);
        assert_eq!(out.len(), 50, "one step's budget");
        admission.admit(start + Duration::from_millis(5), &mut out);
        assert_eq!(out.len(), 50, "no more within the same step");
        assert_eq!(
            admission.next_deadline(),
            Some(start + Duration::from_millis(20))
        );
        for step in 1..20u32 {
            admission.admit(start + Duration::from_millis(20) * step, &mut out);
        }
        assert_eq!(out.len(), 1000, "all admitted after 20 steps");
        assert!(admission.is_empty());
        assert_eq!(admission.next_deadline(), None);
    }

    #[test]
    fn late_high_priority_request_overtakes_the_waiting_crowd() {
        let mut admission = ConnectAdmission::new(1, Duration::from_millis(20));
        for i in 0..5 {
            admission.request(0, key(i));
        }
        let start = Instant::now();
        let mut out = Vec::new();
        admission.admit(start, &mut out);
        admission.request(100, key(99));
        admission.admit(start + Duration::from_millis(20), &mut out);
        assert_eq!(out, vec![key(0), key(99)]);
    }
}
