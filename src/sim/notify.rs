//! Turning faults into notifications, one per live subscription, the way the fork's
//! watchers do; cancelling the subscriptions a notification cannot reach; and the
//! cluster's timer thread (rate-driven faults and the session monitor).

use super::cluster::{Cancelled, Shared, State};
use super::faults::{self, FaultSpec, Mode};
use super::stream::{Kind, StreamMsg};
use super::Behaviour;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant, SystemTime};

/// How long a fault's emitter waits for streams to confirm their writes, beyond the
/// write-block timeout (or in all, when writes may block forever).
const ACK_MARGIN: Duration = Duration::from_secs(2);
const ACK_WAIT_UNBOUNDED: Duration = Duration::from_secs(5);

/// What happened to one notification addressed to one subscription.
pub(crate) enum Dispatch {
    /// Queued on the session's GET stream; the writer acknowledges on `ack`.
    Queued,
    /// Not sent and nothing else happens: the session's log level is unset or higher,
    /// the server is hung, or the fault was sent to this subscription recently.
    Withheld,
    /// The subscription was cancelled: no GET stream attached, session gone, or the
    /// stream's queue full (a write that would block).
    Cancelled,
}

/// Queues `data` on logger `logger` at `level` for subscription `sub_id`, or cancels the
/// subscription when it cannot be delivered, as the fork's `sendNotification` callers do.
pub(crate) fn dispatch(
    st: &mut State,
    sub_id: &str,
    level: &str,
    logger: &str,
    data: Value,
    kind: Kind,
    ack: Option<&mpsc::Sender<bool>>,
) -> Dispatch {
    let Some(session_id) = st.subs.get(sub_id).map(|s| s.session.clone()) else {
        return Dispatch::Withheld;
    };
    let Some(session) = st.sessions.get(&session_id) else {
        st.cancel_subscription(sub_id, Cancelled::Undeliverable);
        return Dispatch::Cancelled;
    };
    if !session.logs(level) {
        return Dispatch::Withheld;
    }
    let Some(link) = &session.stream else {
        st.cancel_subscription(sub_id, Cancelled::Undeliverable);
        return Dispatch::Cancelled;
    };
    let json = faults::log_notification(level, logger, data).to_string();
    let msg = StreamMsg::Emit {
        json,
        kind,
        subscription: Some(sub_id.to_string()),
        queued_at: Instant::now(),
        ack: ack.cloned(),
    };
    if link.ctl.send(msg) {
        Dispatch::Queued
    } else {
        st.cancel_subscription(sub_id, Cancelled::Undeliverable);
        Dispatch::Cancelled
    }
}

/// Sends fault `spec` to every live subscription (faults mode: as a fault, deduplicated;
/// events mode: as a Kubernetes Event, filtered). Returns whether at least one stream
/// wrote it.
pub(crate) fn deliver_fault(shared: &Shared, spec: &FaultSpec) -> bool {
    let (ack_tx, ack_rx) = mpsc::channel();
    let window = shared.settings.fault_dedup_window;
    let cluster = shared.cluster_field().to_string();
    let queued = shared.update(|st| {
        st.stats.faults_emitted += 1;
        st.record_event(spec);
        if matches!(st.behaviour, Behaviour::Stall | Behaviour::Garbage) {
            return 0;
        }
        let now = Instant::now();
        let ids: Vec<String> = st.subs.iter().map(|s| s.id.clone()).collect();
        let mut queued = 0;
        for id in ids {
            let Some(sub) = st.subs.get_mut(&id) else {
                continue;
            };
            let data = match sub.mode {
                Mode::Faults => {
                    if !sub.admit_fault(spec, window, now) {
                        st.stats.faults_deduplicated += 1;
                        continue;
                    }
                    faults::fault_object(&cluster, &id, spec, SystemTime::now())
                }
                Mode::Events => {
                    if !sub.matches_event(&faults::event_for(spec)) {
                        continue;
                    }
                    faults::event_object(&cluster, &id, spec, SystemTime::now())
                }
            };
            let (level, logger) = sub.mode.level_and_logger();
            let fault_id = (sub.mode == Mode::Faults).then(|| spec.fault_id.clone());
            let kind = Kind::Notification { fault_id };
            if let Dispatch::Queued = dispatch(st, &id, level, logger, data, kind, Some(&ack_tx)) {
                queued += 1;
            }
        }
        queued
    });
    drop(ack_tx);
    let wait = shared
        .settings
        .write_block_timeout
        .map_or(ACK_WAIT_UNBOUNDED, |l| l + ACK_MARGIN);
    let deadline = Instant::now() + wait;
    let mut delivered = false;
    for _ in 0..queued {
        match ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(ok) => delivered |= ok,
            Err(_) => break,
        }
    }
    delivered
}

/// Marks `sub_id` degraded and sends its `kubernetes/subscription_error` notification,
/// as the fork's `markSubscriptionDegraded` does (once per subscription).
pub(crate) fn degrade(st: &mut State, cluster: &str, sub_id: &str) -> bool {
    let Some(sub) = st.subs.get_mut(sub_id) else {
        return false;
    };
    if sub.degraded {
        return true;
    }
    sub.degraded = true;
    let data = serde_json::json!({
        "subscriptionId": sub_id,
        "cluster": cluster,
        "error": "Watch connection failed after maximum retry attempts",
        "degraded": true,
    });
    dispatch(
        st,
        sub_id,
        "warning",
        "kubernetes/subscription_error",
        data,
        Kind::SubscriptionError,
        None,
    );
    true
}

/// Whether the rate-driven generator should run: some subscription's session exists and
/// logs at the subscription's level (with or without a GET stream attached: a fault that
/// finds none cancels the subscription, as on the real server), and the limit allows.
fn generator_active(shared: &Shared, st: &State) -> bool {
    let under_limit = shared
        .settings
        .faults_per_cluster
        .is_none_or(|l| st.rate_claims < l);
    under_limit
        && !matches!(st.behaviour, Behaviour::Stall | Behaviour::Garbage)
        && st.subs.iter().any(|sub| {
            st.sessions
                .get(&sub.session)
                .is_some_and(|s| s.logs(sub.mode.level_and_logger().0))
        })
}

/// The cluster's timer thread: emits rate-driven faults and runs the session monitor
/// until `closed` is set.
pub(crate) fn timer_loop(shared: Arc<Shared>, closed: Arc<AtomicBool>) {
    let rate = shared.settings.rate_per_sec;
    let mut schedule = super::stream::Schedule::new(rate, super::stream::phase(&shared.name));
    let interval = shared.settings.session_monitor_interval;
    let mut next_monitor = Instant::now() + interval;
    loop {
        let now = Instant::now();
        let active = rate > 0.0 && generator_active(&shared, &shared.lock());
        let due = if active {
            Some(schedule.due(now))
        } else {
            schedule.reset();
            None
        };
        let wake_at = due.map_or(next_monitor, |d| d.min(next_monitor));
        shared.wait_until(wake_at, |st| {
            closed.load(Ordering::SeqCst) || (rate > 0.0 && generator_active(&shared, st) != active)
        });
        if closed.load(Ordering::SeqCst) {
            return;
        }
        let now = Instant::now();
        if now >= next_monitor {
            shared.update(|st| st.monitor_sessions());
            next_monitor = now + interval;
        }
        if due.is_some_and(|d| now >= d) {
            schedule.fired(now);
            emit_scheduled(&shared);
        }
    }
}

/// Starts the next rate-driven fault; a fault no stream wrote does not count towards
/// `faults_per_cluster`.
fn emit_scheduled(shared: &Shared) {
    let distinct = shared.settings.distinct_faults;
    let cluster = shared.cluster_field().to_string();
    let spec = shared.update(|st| {
        if !generator_active(shared, st) {
            return None;
        }
        st.rate_claims += 1;
        let seq = st.fault_seq;
        st.fault_seq += 1;
        Some(FaultSpec::nth(&shared.name, &cluster, seq, distinct))
    });
    let Some(spec) = spec else {
        return;
    };
    if !deliver_fault(shared, &spec) {
        shared.update(|st| st.rate_claims -= 1);
    }
}
