//! Per-cluster circuit breaker for triage agents.
//!
//! A cluster whose agents keep failing (bad kubeconfig, broken model, crash loop) stops
//! getting agents for a cooldown, then gets exactly one trial run; the trial's outcome
//! decides whether the cluster is healthy again.

use std::time::{Duration, Instant};

/// Cooldowns are clamped to this so `now + cooldown` can never overflow an `Instant`.
const MAX_COOLDOWN: Duration = Duration::from_secs(365 * 24 * 60 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open { until: Instant },
    HalfOpen,
}

#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    cooldown: Duration,
    state: BreakerState,
    consecutive_failures: u32,
}

impl CircuitBreaker {
    /// A threshold of 0 is treated as 1: the breaker can only open on a failure.
    pub fn new(failure_threshold: u32, cooldown: Duration) -> Self {
        CircuitBreaker {
            failure_threshold: failure_threshold.max(1),
            cooldown: cooldown.min(MAX_COOLDOWN),
            state: BreakerState::Closed,
            consecutive_failures: 0,
        }
    }

    /// Whether an agent may start now. A `true` from an open breaker whose cooldown has
    /// ended is the single half-open trial: the caller must report its outcome with
    /// [`on_success`](Self::on_success) or [`on_failure`](Self::on_failure), and until
    /// then every further call returns `false`.
    pub fn allow(&mut self, now: Instant) -> bool {
        match self.state {
            BreakerState::Closed => true,
            BreakerState::Open { until } if now < until => false,
            BreakerState::Open { .. } => {
                self.state = BreakerState::HalfOpen;
                true
            }
            // The one trial is already running.
            BreakerState::HalfOpen => false,
        }
    }

    pub fn on_success(&mut self) {
        self.state = BreakerState::Closed;
        self.consecutive_failures = 0;
    }

    pub fn on_failure(&mut self, now: Instant) {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        match self.state {
            BreakerState::HalfOpen => self.open(now),
            BreakerState::Closed if self.consecutive_failures >= self.failure_threshold => {
                self.open(now)
            }
            BreakerState::Closed => {}
            // A run started before the breaker opened; the cooldown keeps counting from
            // the moment it opened.
            BreakerState::Open { .. } => {}
        }
    }

    pub fn state(&self) -> BreakerState {
        self.state
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    /// The name shown in health output and logs.
    pub fn state_name(&self) -> &'static str {
        match self.state {
            BreakerState::Closed => "closed",
            BreakerState::Open { .. } => "open",
            BreakerState::HalfOpen => "half_open",
        }
    }

    fn open(&mut self, now: Instant) {
        let until = now.checked_add(self.cooldown).unwrap_or(now);
        self.state = BreakerState::Open { until };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(30);

    fn open_breaker(t0: Instant) -> CircuitBreaker {
        let mut breaker = CircuitBreaker::new(3, COOLDOWN);
        for _ in 0..3 {
            breaker.on_failure(t0);
        }
        breaker
    }

    #[test]
    fn closed_breaker_allows() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(3, COOLDOWN);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.state_name(), "closed");
        assert!(breaker.allow(t0));
        assert!(breaker.allow(t0));
    }

    #[test]
    fn failures_below_threshold_stay_closed() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(3, COOLDOWN);
        breaker.on_failure(t0);
        breaker.on_failure(t0);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 2);
        assert!(breaker.allow(t0));
    }

    #[test]
    fn threshold_failures_open_breaker_for_cooldown() {
        let t0 = Instant::now();
        let breaker = open_breaker(t0);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: t0 + COOLDOWN
            }
        );
        assert_eq!(breaker.state_name(), "open");
        assert_eq!(breaker.consecutive_failures(), 3);
    }

    #[test]
    fn open_breaker_refuses_until_cooldown_ends() {
        let t0 = Instant::now();
        let mut breaker = open_breaker(t0);
        assert!(!breaker.allow(t0));
        assert!(!breaker.allow(t0 + COOLDOWN - Duration::from_millis(1)));
        assert_eq!(breaker.state_name(), "open");
    }

    #[test]
    fn cooldown_end_allows_exactly_one_trial() {
        let t0 = Instant::now();
        let mut breaker = open_breaker(t0);
        assert!(breaker.allow(t0 + COOLDOWN));
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert_eq!(breaker.state_name(), "half_open");
        assert!(!breaker.allow(t0 + COOLDOWN));
        assert!(!breaker.allow(t0 + COOLDOWN * 10));
    }

    #[test]
    fn trial_success_closes_breaker() {
        let t0 = Instant::now();
        let mut breaker = open_breaker(t0);
        assert!(breaker.allow(t0 + COOLDOWN));
        breaker.on_success();
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 0);
        assert!(breaker.allow(t0 + COOLDOWN));
        assert!(breaker.allow(t0 + COOLDOWN));
    }

    #[test]
    fn trial_failure_reopens_breaker_for_another_cooldown() {
        let t0 = Instant::now();
        let mut breaker = open_breaker(t0);
        let trial_end = t0 + COOLDOWN + Duration::from_secs(5);
        assert!(breaker.allow(t0 + COOLDOWN));
        breaker.on_failure(trial_end);
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: trial_end + COOLDOWN
            }
        );
        assert!(!breaker.allow(trial_end + COOLDOWN - Duration::from_millis(1)));
        assert!(breaker.allow(trial_end + COOLDOWN));
    }

    #[test]
    fn success_resets_consecutive_failures() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(3, COOLDOWN);
        breaker.on_failure(t0);
        breaker.on_failure(t0);
        breaker.on_success();
        breaker.on_failure(t0);
        breaker.on_failure(t0);
        assert_eq!(breaker.state(), BreakerState::Closed);
        assert_eq!(breaker.consecutive_failures(), 2);
    }

    #[test]
    fn late_failure_while_open_keeps_original_cooldown() {
        let t0 = Instant::now();
        let mut breaker = open_breaker(t0);
        breaker.on_failure(t0 + Duration::from_secs(10));
        assert_eq!(
            breaker.state(),
            BreakerState::Open {
                until: t0 + COOLDOWN
            }
        );
        assert_eq!(breaker.consecutive_failures(), 4);
    }

    #[test]
    fn zero_threshold_opens_on_first_failure() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(0, COOLDOWN);
        assert!(breaker.allow(t0));
        breaker.on_failure(t0);
        assert_eq!(breaker.state_name(), "open");
    }

    #[test]
    fn huge_cooldown_does_not_overflow() {
        let t0 = Instant::now();
        let mut breaker = CircuitBreaker::new(1, Duration::MAX);
        breaker.on_failure(t0);
        assert!(!breaker.allow(t0 + Duration::from_secs(3600)));
        assert_eq!(breaker.state_name(), "open");
    }
}
