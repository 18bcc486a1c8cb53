//! Waiting a moment for more fault events before reading them.
//!
//! Under a steady flow of faults from many clusters, the loop would wake once per fault, and
//! a wake-up (the sleep in `epoll_wait`, the switch back, cold caches) costs several times
//! what reading the fault does. So when the loop's last turn did nothing but read cluster
//! event streams, and it had slept less than the batch window before that (faults arrive
//! faster than one per window), it waits out the window before it polls again: the faults
//! that arrive meanwhile are read in one wake-up.
//!
//! A fault that arrives after a quiet spell is read at once; a fault in a flow waits at
//! most one window. Everything else is never held back by more than one window either:
//! the wait is cut to the next timer, and it is skipped when the turn did anything besides
//! stream reads (control replies, connects, timers, signals, commands, Slack, agents) or
//! left sockets with unread bytes.

use std::time::Duration;

/// What one turn of the loop handled, as far as batching is concerned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Bytes of some cluster's event stream (the GET stream) were read.
    pub stream_reads: bool,
    /// Anything else was handled: a control-connection reply, a timer, a connect, a signal,
    /// the waker, the stage's sockets, or a socket left with bytes for the next turn.
    pub other_work: bool,
}

impl Turn {
    /// How long the loop waits before it polls again: `window` (cut to `until_deadline`,
    /// the time to the next timer) when this turn only read event streams and the poll
    /// before it had slept (`slept`) less than `window`; `None` when it polls at once.
    pub fn pause(
        self,
        window: Option<Duration>,
        slept: Duration,
        until_deadline: Option<Duration>,
    ) -> Option<Duration> {
        let window = window?;
        if !self.stream_reads || self.other_work || slept >= window {
            return None;
        }
        let pause = until_deadline.map_or(window, |left| left.min(window));
        (!pause.is_zero()).then_some(pause)
    }
}

/// How often the loop woke from its poll, and how often it waited out the batch window
/// first: `/metrics` shows both, so an operator sees how many faults one wake-up reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wakeups {
    pub polls: u64,
    pub batch_waits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Option<Duration> = Some(Duration::from_millis(50));

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stream_only() -> Turn {
        Turn {
            stream_reads: true,
            other_work: false,
        }
    }

    #[test]
    fn a_flow_of_faults_is_read_once_per_window() {
        assert_eq!(stream_only().pause(WINDOW, ms(3), None), Some(ms(50)));
        // Right after a pause, the poll finds the faults that came meanwhile without sleeping.
        assert_eq!(stream_only().pause(WINDOW, ms(0), None), Some(ms(50)));
    }

    #[test]
    fn a_fault_after_a_quiet_spell_is_read_at_once() {
        assert_eq!(stream_only().pause(WINDOW, ms(50), None), None);
        assert_eq!(stream_only().pause(WINDOW, ms(60_000), Some(ms(5))), None);
    }

    #[test]
    fn the_pause_never_passes_the_next_timer() {
        assert_eq!(stream_only().pause(WINDOW, ms(1), Some(ms(7))), Some(ms(7)));
        assert_eq!(
            stream_only().pause(WINDOW, ms(1), Some(ms(500))),
            Some(ms(50))
        );
        assert_eq!(
            stream_only().pause(WINDOW, ms(1), Some(Duration::ZERO)),
            None
        );
    }

    #[test]
    fn any_other_work_in_the_turn_polls_at_once() {
        let mixed = Turn {
            stream_reads: true,
            other_work: true,
        };
        assert_eq!(mixed.pause(WINDOW, ms(1), None), None);
        let other_only = Turn {
            stream_reads: false,
            other_work: true,
        };
        assert_eq!(other_only.pause(WINDOW, ms(1), None), None);
        assert_eq!(Turn::default().pause(WINDOW, ms(1), None), None);
    }

    #[test]
    fn no_window_never_pauses() {
        assert_eq!(stream_only().pause(None, ms(0), None), None);
    }
}
