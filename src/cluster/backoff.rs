//! Reconnect backoff: exponential, capped, jittered, with a server-supplied floor.
//!
//! Each cluster gets its own seed so that a thousand clusters that lost their servers at
//! the same moment do not all reconnect in the same instant.

use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub struct BackoffPolicy {
    pub initial: Duration,
    pub max: Duration,
    /// Growth per attempt; values below 1.0 or not finite are treated as 1.0.
    pub multiplier: f64,
    /// Relative spread: 0.1 means the delay is drawn uniformly from ±10 % of its base.
    /// Clamped to 0.0..=1.0.
    pub jitter: f64,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempts: u32,
    floor: Duration,
    rng: XorShift64Star,
}

impl Backoff {
    pub fn new(policy: BackoffPolicy, seed: u64) -> Self {
        Backoff {
            policy,
            attempts: 0,
            floor: Duration::ZERO,
            rng: XorShift64Star::new(seed),
        }
    }

    /// Delay before attempt `n` (0-based): `min(initial * multiplier^n, max)`, then
    /// jittered, then raised to the floor. Never above `max * (1 + jitter)`.
    pub fn next_delay(&mut self) -> Duration {
        let jitter = self.jitter();
        let max_secs = self.policy.max.as_secs_f64();
        // Float powers saturate to infinity instead of overflowing, and `min` brings
        // them back to the cap, so any attempt count is safe.
        let grown =
            self.policy.initial.as_secs_f64() * self.multiplier().powf(self.attempts.into());
        let base = if grown.is_nan() {
            max_secs
        } else {
            grown.min(max_secs)
        };
        let spread = 2.0 * self.rng.next_unit() - 1.0; // in [-1, 1)
        let ceiling = max_secs * (1.0 + jitter);
        let jittered = (base * (1.0 + jitter * spread)).clamp(0.0, ceiling);
        let delay = Duration::try_from_secs_f64(jittered).unwrap_or(self.policy.max);
        self.attempts = self.attempts.saturating_add(1);
        delay.max(self.floor)
    }

    /// The maximum delay, jittered like the others: for errors a quick retry cannot fix.
    /// Counts as an attempt.
    pub fn max_delay(&mut self) -> Duration {
        let jitter = self.jitter();
        let spread = 2.0 * self.rng.next_unit() - 1.0;
        let max_secs = self.policy.max.as_secs_f64();
        let jittered = (max_secs * (1.0 + jitter * spread)).max(0.0);
        self.attempts = self.attempts.saturating_add(1);
        Duration::try_from_secs_f64(jittered)
            .unwrap_or(self.policy.max)
            .max(self.floor)
    }

    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Called once a session has stayed active long enough to count as healthy.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.floor = Duration::ZERO;
    }

    /// The server's SSE `retry:` hint: later delays are at least this long until
    /// [`reset`](Self::reset). Clamped to the policy's `max`, so a server cannot stall
    /// reconnection beyond our own ceiling.
    pub fn set_floor(&mut self, floor: Duration) {
        self.floor = floor.min(self.policy.max);
    }

    fn multiplier(&self) -> f64 {
        let m = self.policy.multiplier;
        if m.is_finite() && m >= 1.0 {
            m
        } else {
            1.0
        }
    }

    fn jitter(&self) -> f64 {
        let j = self.policy.jitter;
        if j.is_nan() {
            0.0
        } else {
            j.clamp(0.0, 1.0)
        }
    }
}

/// A stable seed from a cluster name (FNV-1a), so a cluster's jitter sequence does not
/// change between runs or builds.
pub fn seed_for(name: &str) -> u64 {
    crate::config::fnv1a64(name.as_bytes())
}

/// xorshift64* (Vigna): small, fast and good enough to spread reconnects.
#[derive(Debug, Clone)]
struct XorShift64Star {
    state: u64,
}

impl XorShift64Star {
    fn new(seed: u64) -> Self {
        // splitmix64 scrambles similar seeds apart and the state must never be zero.
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        XorShift64Star {
            state: if z == 0 { 0x2545_f491_4f6c_dd1d } else { z },
        }
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_jitter() -> BackoffPolicy {
        BackoffPolicy {
            jitter: 0.0,
            ..BackoffPolicy::default()
        }
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn max_delay_is_jittered_around_the_cap() {
        let mut b = Backoff::new(BackoffPolicy::default(), 7);
        let delays: Vec<f64> = (0..200).map(|_| b.max_delay().as_secs_f64()).collect();
        assert!(
            delays.iter().all(|d| (54.0..=66.0).contains(d)),
            "{delays:?}"
        );
        let distinct = delays
            .iter()
            .filter(|d| (*d - delays[0]).abs() > 0.1)
            .count();
        assert!(
            distinct > 0,
            "clusters with permanent errors must not retry in lock-step"
        );
        assert_eq!(b.attempts(), 200);
    }

    #[test]
    fn default_policy_matches_design() {
        let policy = BackoffPolicy::default();
        assert_eq!(policy.initial, secs(1));
        assert_eq!(policy.max, secs(60));
        assert_eq!(policy.multiplier, 2.0);
        assert_eq!(policy.jitter, 0.1);
    }

    #[test]
    fn unjittered_delays_double_up_to_max() {
        let mut backoff = Backoff::new(no_jitter(), 7);
        let delays: Vec<Duration> = (0..9).map(|_| backoff.next_delay()).collect();
        let expected: Vec<Duration> = [1, 2, 4, 8, 16, 32, 60, 60, 60].map(secs).to_vec();
        assert_eq!(delays, expected);
        assert_eq!(backoff.attempts(), 9);
    }

    #[test]
    fn jitter_stays_within_bounds_and_spreads() {
        let mut backoff = Backoff::new(BackoffPolicy::default(), 42);
        for _ in 0..10 {
            backoff.next_delay();
        }
        // Base is now the 60 s cap.
        let (mut lowest, mut highest) = (f64::MAX, 0.0f64);
        for _ in 0..10_000 {
            let d = backoff.next_delay().as_secs_f64();
            assert!((54.0..=66.0).contains(&d), "delay {d} outside ±10 %");
            lowest = lowest.min(d);
            highest = highest.max(d);
        }
        assert!(lowest < 54.1, "lowest {lowest} never near the lower edge");
        assert!(
            highest > 65.9,
            "highest {highest} never near the upper edge"
        );
    }

    #[test]
    fn jitter_applies_to_early_attempts_too() {
        let mut backoff = Backoff::new(BackoffPolicy::default(), 3);
        let first = backoff.next_delay().as_secs_f64();
        assert!((0.9..=1.1).contains(&first), "first delay {first}");
    }

    #[test]
    fn different_seeds_give_different_delays() {
        let mut a = Backoff::new(BackoffPolicy::default(), seed_for("cluster-a"));
        let mut b = Backoff::new(BackoffPolicy::default(), seed_for("cluster-b"));
        let da: Vec<Duration> = (0..5).map(|_| a.next_delay()).collect();
        let db: Vec<Duration> = (0..5).map(|_| b.next_delay()).collect();
        assert_ne!(da, db);
    }

    #[test]
    fn same_seed_repeats_the_same_delays() {
        let mut a = Backoff::new(BackoffPolicy::default(), 99);
        let mut b = Backoff::new(BackoffPolicy::default(), 99);
        for _ in 0..20 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn reset_restarts_from_initial() {
        let mut backoff = Backoff::new(no_jitter(), 1);
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.attempts(), 0);
        assert_eq!(backoff.next_delay(), secs(1));
        assert_eq!(backoff.next_delay(), secs(2));
    }

    #[test]
    fn floor_raises_delays_until_reset() {
        let mut backoff = Backoff::new(no_jitter(), 1);
        backoff.set_floor(secs(5));
        assert_eq!(backoff.next_delay(), secs(5));
        assert_eq!(backoff.next_delay(), secs(5));
        assert_eq!(backoff.next_delay(), secs(5));
        assert_eq!(backoff.next_delay(), secs(8));
        backoff.reset();
        assert_eq!(backoff.next_delay(), secs(1));
    }

    #[test]
    fn floor_cannot_exceed_max() {
        let mut backoff = Backoff::new(no_jitter(), 1);
        backoff.set_floor(secs(3600));
        assert_eq!(backoff.next_delay(), secs(60));
    }

    #[test]
    fn huge_attempt_counts_saturate_at_max() {
        let mut backoff = Backoff::new(no_jitter(), 1);
        backoff.attempts = u32::MAX - 1;
        assert_eq!(backoff.next_delay(), secs(60));
        assert_eq!(backoff.attempts(), u32::MAX);
        assert_eq!(backoff.next_delay(), secs(60));
        assert_eq!(backoff.attempts(), u32::MAX);

        let mut jittered = Backoff::new(BackoffPolicy::default(), 1);
        jittered.attempts = u32::MAX;
        let d = jittered.next_delay().as_secs_f64();
        assert!((54.0..=66.0).contains(&d), "delay {d}");
    }

    #[test]
    fn nonsense_policy_values_do_not_panic() {
        let policy = BackoffPolicy {
            initial: Duration::MAX,
            max: Duration::MAX,
            multiplier: f64::NAN,
            jitter: f64::INFINITY,
        };
        let mut backoff = Backoff::new(policy, 0);
        for _ in 0..10 {
            backoff.next_delay();
        }
        let policy = BackoffPolicy {
            initial: secs(10),
            max: secs(1),
            multiplier: -3.0,
            jitter: -0.5,
        };
        let mut backoff = Backoff::new(policy, 0);
        assert_eq!(backoff.next_delay(), secs(1));
    }

    #[test]
    fn zero_seed_still_produces_random_values() {
        let mut rng = XorShift64Star::new(0);
        let a = rng.next_u64();
        let b = rng.next_u64();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }
}
