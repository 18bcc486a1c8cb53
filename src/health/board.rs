//! The loop's published state. The loop swaps a fresh snapshot in (within 100 ms of a status
//! change, and at a fixed interval); readers — the health server, tests — only ever read it. The lock is
//! held for a pointer swap, never while the loop works.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::batch_window::Wakeups;
use crate::cluster::manager::HealthSummary;
use crate::cluster::status::HealthSnapshot;
use crate::metrics::counters::PipelineSnapshot;

#[derive(Debug, Clone)]
pub struct Published {
    pub clusters: Vec<HealthSnapshot>,
    pub summary: HealthSummary,
    pub pipeline: PipelineSnapshot,
    /// When the loop published this (the loop's clock), for staleness checks.
    pub at: Instant,
    pub wall: SystemTime,
    /// Increases with every publication.
    pub sequence: u64,
    /// True once the loop has begun shutting down.
    pub stopping: bool,
    /// The loop's wake-ups and batch waits so far.
    pub wakeups: Wakeups,
}

#[derive(Clone)]
pub struct HealthBoard {
    inner: Arc<(Mutex<Arc<Published>>, Condvar)>,
}

impl Default for HealthBoard {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthBoard {
    pub fn new() -> Self {
        let empty = Published {
            clusters: Vec::new(),
            summary: HealthSummary::default(),
            pipeline: PipelineSnapshot::default(),
            at: Instant::now(),
            wall: SystemTime::now(),
            sequence: 0,
            stopping: false,
            wakeups: Wakeups::default(),
        };
        HealthBoard {
            inner: Arc::new((Mutex::new(Arc::new(empty)), Condvar::new())),
        }
    }

    pub fn publish(&self, mut published: Published) {
        let (lock, changed) = &*self.inner;
        let mut current = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        published.sequence = current.sequence + 1;
        *current = Arc::new(published);
        drop(current);
        changed.notify_all();
    }

    pub fn latest(&self) -> Arc<Published> {
        let (lock, _) = &*self.inner;
        lock.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Blocks until a published state satisfies `condition`, or `timeout` passes; returns
    /// the last state seen and whether it satisfied the condition.
    pub fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&Published) -> bool,
    ) -> (Arc<Published>, bool) {
        let (lock, changed) = &*self.inner;
        let deadline = Instant::now() + timeout;
        let mut current = lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            if condition(&current) {
                return (current.clone(), true);
            }
            let now = Instant::now();
            if now >= deadline {
                return (current.clone(), false);
            }
            current = changed
                .wait_timeout(current, deadline - now)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}
