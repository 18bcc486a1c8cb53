//! Slack's rate limits as app mode keeps them: one call at a time in each channel, the next
//! at least `channel_interval` after the previous one was answered (Slack allows about one
//! message per second per channel, counted as they arrive: spacing from the answer keeps
//! that true whatever the connection set-up time), each method within its tier's calls per
//! minute, and a method paused as long as a 429's `Retry-After` says. Time is a parameter;
//! the loop asks when a call may go and records when it went and when it was answered.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::slack_api::ApiMethod;

const MINUTE: Duration = Duration::from_secs(60);

pub struct RateGate {
    channel_interval: Duration,
    /// When each channel may take its next message; entries in the past are pruned.
    channel_next: HashMap<String, Instant>,
    /// Channels with a call in flight.
    channel_busy: HashMap<String, usize>,
    /// Calls of each tiered method in the last minute.
    method_calls: HashMap<ApiMethod, VecDeque<Instant>>,
    /// A 429 pauses its method until then.
    method_paused: HashMap<ApiMethod, Instant>,
}

impl RateGate {
    pub fn new(channel_interval: Duration) -> RateGate {
        RateGate {
            channel_interval,
            channel_next: HashMap::new(),
            channel_busy: HashMap::new(),
            method_calls: HashMap::new(),
            method_paused: HashMap::new(),
        }
    }

    /// The earliest time a call of `method` into `channel` may go (`now` or later); `None`
    /// while the channel has a call in flight (it is asked again after the answer).
    pub fn ready_at(&self, method: ApiMethod, channel: &str, now: Instant) -> Option<Instant> {
        if self.channel_busy.contains_key(channel) {
            return None;
        }
        let mut at = now;
        if let Some(next) = self.channel_next.get(channel) {
            at = at.max(*next);
        }
        if let Some(paused) = self.method_paused.get(&method) {
            at = at.max(*paused);
        }
        if let (Some(limit), Some(calls)) =
            (method.calls_per_minute(), self.method_calls.get(&method))
        {
            let recent = calls.iter().filter(|t| **t + MINUTE > now).count();
            if recent >= limit {
                // The oldest call in the window that must leave it before one more fits.
                if let Some(oldest) = calls.iter().rev().nth(limit - 1) {
                    at = at.max(*oldest + MINUTE);
                }
            }
        }
        Some(at)
    }

    /// A call went now.
    pub fn record(&mut self, method: ApiMethod, channel: &str, now: Instant) {
        self.channel_next.retain(|_, next| *next > now);
        self.channel_next
            .insert(channel.to_owned(), now + self.channel_interval);
        *self.channel_busy.entry(channel.to_owned()).or_default() += 1;
        if let Some(limit) = method.calls_per_minute() {
            let calls = self.method_calls.entry(method).or_default();
            while calls.front().is_some_and(|t| *t + MINUTE <= now) {
                calls.pop_front();
            }
            calls.push_back(now);
            while calls.len() > limit {
                calls.pop_front();
            }
        }
    }

    /// The call into `channel` was answered (or failed) now: the next may go one interval
    /// later.
    pub fn answered(&mut self, channel: &str, now: Instant) {
        if let Some(busy) = self.channel_busy.get_mut(channel) {
            *busy -= 1;
            if *busy == 0 {
                self.channel_busy.remove(channel);
            }
        }
        let next = self.channel_next.entry(channel.to_owned()).or_insert(now);
        *next = (*next).max(now + self.channel_interval);
    }

    /// A 429 on `method`: no call of it before `until`.
    pub fn pause(&mut self, method: ApiMethod, until: Instant) {
        let paused = self.method_paused.entry(method).or_insert(until);
        *paused = (*paused).max(until);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn one_call_at_a_time_per_channel_spaced_from_the_answer() {
        let t0 = Instant::now();
        let mut gate = RateGate::new(SECOND);
        assert_eq!(gate.ready_at(ApiMethod::PostMessage, "C1", t0), Some(t0));
        gate.record(ApiMethod::PostMessage, "C1", t0);
        assert_eq!(gate.ready_at(ApiMethod::PostMessage, "C1", t0), None);
        assert_eq!(
            gate.ready_at(ApiMethod::Update, "C1", t0 + SECOND * 5),
            None
        );
        // Another channel is not held back.
        assert_eq!(gate.ready_at(ApiMethod::PostMessage, "C2", t0), Some(t0));
        let answered = t0 + Duration::from_millis(300);
        gate.answered("C1", answered);
        assert_eq!(
            gate.ready_at(ApiMethod::PostMessage, "C1", answered),
            Some(answered + SECOND)
        );
        // A slow answer: still one interval after it.
        gate.record(ApiMethod::PostMessage, "C1", answered + SECOND);
        gate.answered("C1", answered + SECOND * 3);
        assert_eq!(
            gate.ready_at(ApiMethod::Update, "C1", answered + SECOND * 3),
            Some(answered + SECOND * 4)
        );
    }

    #[test]
    fn update_stays_within_fifty_calls_a_minute() {
        let t0 = Instant::now();
        let mut gate = RateGate::new(Duration::ZERO);
        for i in 0..50 {
            let at = t0 + Duration::from_millis(100 * i);
            let channel = format!("C{i}");
            assert_eq!(gate.ready_at(ApiMethod::Update, &channel, at), Some(at));
            gate.record(ApiMethod::Update, &channel, at);
            gate.answered(&channel, at);
        }
        let now = t0 + Duration::from_secs(5);
        assert_eq!(
            gate.ready_at(ApiMethod::Update, "C99", now),
            Some(t0 + MINUTE)
        );
        // postMessage has no workspace tier.
        assert_eq!(gate.ready_at(ApiMethod::PostMessage, "C99", now), Some(now));
        let later = t0 + MINUTE + Duration::from_millis(50);
        assert_eq!(gate.ready_at(ApiMethod::Update, "C99", later), Some(later));
    }

    #[test]
    fn retry_after_pauses_the_method_only() {
        let t0 = Instant::now();
        let mut gate = RateGate::new(Duration::ZERO);
        gate.pause(ApiMethod::PostMessage, t0 + SECOND * 3);
        gate.pause(ApiMethod::PostMessage, t0 + SECOND);
        assert_eq!(
            gate.ready_at(ApiMethod::PostMessage, "C1", t0),
            Some(t0 + SECOND * 3)
        );
        assert_eq!(gate.ready_at(ApiMethod::Update, "C1", t0), Some(t0));
    }

    #[test]
    fn past_channel_entries_are_pruned() {
        let t0 = Instant::now();
        let mut gate = RateGate::new(SECOND);
        for i in 0..100 {
            let channel = format!("C{i}");
            gate.record(ApiMethod::PostMessage, &channel, t0);
            gate.answered(&channel, t0);
        }
        gate.record(ApiMethod::PostMessage, "C0", t0 + SECOND * 2);
        assert_eq!(gate.channel_next.len(), 1);
        assert_eq!(gate.channel_busy.len(), 1);
    }
}
