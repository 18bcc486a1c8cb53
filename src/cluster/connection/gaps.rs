//! Gaps in a cluster's subscription: spans in which the server could not deliver faults to
//! nightcrier (a broken event stream, a subscription the server cancelled, a lost session).
//! The fork's faults are edge-triggered, so whatever started in a gap is never sent; health
//! shows each gap's start and end so an operator knows which window to check by hand.

use std::collections::VecDeque;
use std::time::SystemTime;

use serde::Serialize;

/// Gaps kept per cluster, most recent last.
const KEPT: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapCause {
    /// The GET event stream ended or broke.
    StreamEnded,
    /// The server no longer held the subscription (or held it degraded).
    SubscriptionLost,
    /// The session failed and is being re-established.
    SessionFailed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubscriptionGap {
    pub cause: GapCause,
    pub start: SystemTime,
    /// `None` while the gap is open.
    pub end: Option<SystemTime>,
}

#[derive(Debug, Default)]
pub(super) struct SubscriptionGaps {
    gaps: VecDeque<SubscriptionGap>,
    total: u64,
}

impl SubscriptionGaps {
    pub(super) fn is_open(&self) -> bool {
        self.gaps.back().is_some_and(|g| g.end.is_none())
    }

    /// Opens a gap unless one is open already (the first cause and start stand).
    pub(super) fn open(&mut self, cause: GapCause, start: SystemTime) {
        if self.is_open() {
            return;
        }
        self.total += 1;
        if self.gaps.len() == KEPT {
            self.gaps.pop_front();
        }
        self.gaps.push_back(SubscriptionGap {
            cause,
            start,
            end: None,
        });
    }

    /// Closes the open gap; returns it.
    pub(super) fn close(&mut self, end: SystemTime) -> Option<&SubscriptionGap> {
        let gap = self.gaps.back_mut().filter(|g| g.end.is_none())?;
        gap.end = Some(end);
        Some(gap)
    }

    pub(super) fn total(&self) -> u64 {
        self.total
    }

    pub(super) fn to_vec(&self) -> Vec<SubscriptionGap> {
        self.gaps.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn first_cause_and_start_of_an_open_gap_stand() {
        let mut gaps = SubscriptionGaps::default();
        gaps.open(GapCause::StreamEnded, at(10));
        gaps.open(GapCause::SessionFailed, at(20));
        assert_eq!(gaps.close(at(30)).map(|g| g.start), Some(at(10)));
        let all = gaps.to_vec();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].cause, GapCause::StreamEnded);
        assert_eq!(all[0].end, Some(at(30)));
        assert!(gaps.close(at(40)).is_none(), "nothing open to close");
    }

    #[test]
    fn only_the_most_recent_gaps_are_kept() {
        let mut gaps = SubscriptionGaps::default();
        for i in 0..20 {
            gaps.open(GapCause::StreamEnded, at(i * 10));
            gaps.close(at(i * 10 + 5));
        }
        let all = gaps.to_vec();
        assert_eq!(all.len(), KEPT);
        assert_eq!(gaps.total(), 20);
        assert_eq!(all.last().map(|g| g.start), Some(at(190)));
    }
}
