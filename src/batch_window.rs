//! Waiting a moment for more fault events before reading them.
//!
//! Under a steady flow of faults from many clusters, the loop would wake once per fault, and
//! a wake-up (the sleep in `epoll_wait`, the switch back, cold caches) costs several times
//! what reading the fault does. So when the loop's last turn did nothing but read cluster
//! event streams, and it had slept less than the batch window before that (faults arrive
//! faster than one per window), it waits before it polls again: the faults that arrive
//! meanwhile are read in one wake-up.
//!
//! A fault that arrives after a quiet spell is read at once; a fault in a flow waits at
//! most one window. Everything else is never held back by more than one window either:
//! the wait is cut to the next timer, and it is skipped when the turn did anything besides
//! stream reads (control replies, connects, timers, signals, commands, Slack, agents) or
//! left sockets with unread bytes, and while some session is being set up (its round trips
//! never wait).
//!
//! The wait adapts to the flow, so that no socket's buffers fill while the loop sleeps
//! (which would block the server's writes): it starts at [`SHORTEST_WAIT`] (again after
//! every quiet spell of a window), doubles after every wait that no socket filled a whole
//! read chunk (16 KiB) in, up to the window, and halves after every wait that one did. A
//! dense flow is read every few milliseconds, a thin one once a window.

use std::time::Duration;

/// The shortest wait, where a new flow starts.
pub const SHORTEST_WAIT: Duration = Duration::from_millis(1);

/// What one turn of the loop handled, as far as batching is concerned.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Turn {
    /// Bytes of some cluster's event stream (the GET stream) were read.
    pub stream_reads: bool,
    /// Anything else was handled: a control-connection reply, a timer, a connect, a signal,
    /// the waker, the stage's sockets, or a socket left with bytes for the next turn.
    pub other_work: bool,
    /// Some socket gave a whole read chunk or more.
    pub full_chunk: bool,
    /// Some session is connecting, connected or subscribing.
    pub setup_under_way: bool,
}

/// The configured window and the wait it has adapted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchWindow {
    window: Option<Duration>,
    wait: Duration,
}

impl BatchWindow {
    pub fn new(window: Option<Duration>) -> BatchWindow {
        BatchWindow {
            window,
            wait: SHORTEST_WAIT,
        }
    }

    /// A reloaded configuration's window; the wait adapted so far is kept within it.
    pub fn set_window(&mut self, window: Option<Duration>) {
        self.window = window;
        if let Some(window) = window {
            self.wait = self.wait.min(window);
        }
    }

    /// How long the loop waits before it polls again after `turn`: the adapted wait, cut
    /// to `until_deadline` (the time to the next timer), when the turn only read event
    /// streams and the poll before it had slept (`slept`) less than the window; `None`
    /// when it polls at once. A sleep of a whole window was a quiet spell: the next flow
    /// starts with the shortest wait.
    pub fn pause(
        &mut self,
        turn: Turn,
        slept: Duration,
        until_deadline: Option<Duration>,
    ) -> Option<Duration> {
        let window = self.window?;
        if slept >= window {
            self.wait = SHORTEST_WAIT;
            return None;
        }
        if !turn.stream_reads || turn.other_work || turn.setup_under_way {
            return None;
        }
        let pause = until_deadline.map_or(self.wait, |left| left.min(self.wait));
        (!pause.is_zero()).then_some(pause)
    }

    /// Learns from the turn that read what came during a wait: a whole chunk from one
    /// socket halves the next wait, less doubles it, within [`SHORTEST_WAIT`] and the
    /// window.
    pub fn after_wait(&mut self, turn: Turn) {
        let Some(window) = self.window else {
            return;
        };
        self.wait = if turn.full_chunk {
            (self.wait / 2).max(SHORTEST_WAIT)
        } else {
            (self.wait * 2).min(window)
        };
    }
}

/// How often the loop woke from its poll, and how often it waited for a batch first:
/// `/metrics` shows both, so an operator sees how many faults one wake-up reads.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Wakeups {
    pub polls: u64,
    pub batch_waits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn stream_only() -> Turn {
        Turn {
            stream_reads: true,
            ..Turn::default()
        }
    }

    /// A window of 50 ms whose wait has grown to the whole window.
    fn grown() -> BatchWindow {
        let mut batch = BatchWindow::new(Some(ms(50)));
        for _ in 0..10 {
            batch.after_wait(stream_only());
        }
        batch
    }

    #[test]
    fn a_flow_of_faults_is_read_once_per_window() {
        let mut batch = grown();
        assert_eq!(batch.pause(stream_only(), ms(3), None), Some(ms(50)));
        // Right after a pause, the poll finds the faults that came meanwhile without sleeping.
        assert_eq!(batch.pause(stream_only(), ms(0), None), Some(ms(50)));
    }

    #[test]
    fn a_fault_after_a_quiet_spell_is_read_at_once_and_the_next_flow_starts_short() {
        let mut batch = grown();
        assert_eq!(batch.pause(stream_only(), ms(60_000), Some(ms(5))), None);
        assert_eq!(batch.pause(stream_only(), ms(0), None), Some(SHORTEST_WAIT));
        let mut batch = grown();
        assert_eq!(batch.pause(stream_only(), ms(50), None), None);
        assert_eq!(batch.pause(stream_only(), ms(0), None), Some(SHORTEST_WAIT));
    }

    #[test]
    fn the_pause_never_passes_the_next_timer() {
        let mut batch = grown();
        assert_eq!(batch.pause(stream_only(), ms(1), Some(ms(7))), Some(ms(7)));
        assert_eq!(
            batch.pause(stream_only(), ms(1), Some(ms(500))),
            Some(ms(50))
        );
        assert_eq!(
            batch.pause(stream_only(), ms(1), Some(Duration::ZERO)),
            None
        );
    }

    #[test]
    fn any_other_work_in_the_turn_polls_at_once() {
        let mut batch = grown();
        let mixed = Turn {
            other_work: true,
            ..stream_only()
        };
        assert_eq!(batch.pause(mixed, ms(1), None), None);
        let other_only = Turn {
            other_work: true,
            ..Turn::default()
        };
        assert_eq!(batch.pause(other_only, ms(1), None), None);
        assert_eq!(batch.pause(Turn::default(), ms(1), None), None);
    }

    #[test]
    fn a_session_being_set_up_never_waits() {
        let setting_up = Turn {
            setup_under_way: true,
            ..stream_only()
        };
        assert_eq!(grown().pause(setting_up, ms(1), None), None);
    }

    #[test]
    fn the_wait_grows_with_a_thin_flow_and_shrinks_with_a_dense_one() {
        let mut batch = BatchWindow::new(Some(ms(64)));
        let mut waits = Vec::new();
        for _ in 0..8 {
            waits.push(batch.pause(stream_only(), ms(0), None).unwrap());
            batch.after_wait(stream_only());
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 16, 32, 64, 64].map(ms),
            "a new flow starts short and grows to the window"
        );
        let dense = Turn {
            full_chunk: true,
            ..stream_only()
        };
        waits.clear();
        for _ in 0..8 {
            batch.after_wait(dense);
            waits.push(batch.pause(stream_only(), ms(0), None).unwrap());
        }
        assert_eq!(waits, [32, 16, 8, 4, 2, 1, 1, 1].map(ms));
    }

    #[test]
    fn a_reload_keeps_the_wait_within_the_new_window() {
        let mut batch = grown();
        batch.set_window(Some(ms(20)));
        assert_eq!(batch.pause(stream_only(), ms(0), None), Some(ms(20)));
        batch.set_window(None);
        assert_eq!(batch.pause(stream_only(), ms(0), None), None);
        batch.after_wait(stream_only());
        batch.set_window(Some(ms(30)));
        assert_eq!(batch.pause(stream_only(), ms(0), None), Some(ms(20)));
    }

    #[test]
    fn no_window_never_pauses() {
        let mut batch = BatchWindow::new(None);
        assert_eq!(batch.pause(stream_only(), ms(0), None), None);
    }
}
