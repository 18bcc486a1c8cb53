//! The GET event stream of one session: opening it (with the real server's 400/404/409
//! answers), the thread that writes it, and the thread that notices the peer leaving.

use super::cluster::{Shared, State};
use super::faults::{self, FaultSpec, Mode};
use super::session::StreamLink;
use super::transport::Transport;
use super::wire::{self, Request};
use super::Behaviour;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages queued per stream before `emit_fault` starts dropping.
const QUEUE: usize = 64;
/// How long a second GET waits for a just-closed first stream to be noticed before 409.
const REPLACE_GRACE: Duration = Duration::from_millis(100);
/// Stack of the thread that only waits for the peer's EOF.
pub(crate) const WATCH_STACK: usize = 64 * 1024;

pub(crate) enum StreamMsg {
    /// Write this SSE event (unless the cluster stalls) and acknowledge the outcome.
    Emit {
        event: Vec<u8>,
        fault_id: Option<String>,
        subscription_error: bool,
        ack: Option<mpsc::Sender<bool>>,
    },
    /// Re-read the cluster state (behaviour, subscription, level, flags).
    Wake,
}

/// What other threads use to reach a stream's writer thread.
pub(crate) struct StreamCtl {
    end: AtomicBool,
    peer_closed: AtomicBool,
    tx: SyncSender<StreamMsg>,
}

impl StreamCtl {
    /// Ask the writer to finish the body (terminating chunk) and close.
    pub(crate) fn end(&self) {
        self.end.store(true, Ordering::SeqCst);
        self.wake();
    }

    pub(crate) fn wake(&self) {
        // A full queue already wakes the writer, which re-reads the flags.
        let _ = self.tx.try_send(StreamMsg::Wake);
    }

    pub(crate) fn send(&self, msg: StreamMsg) -> bool {
        self.tx.try_send(msg).is_ok()
    }

    pub(crate) fn new() -> (Arc<StreamCtl>, Receiver<StreamMsg>) {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let ctl = StreamCtl {
            end: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            tx,
        };
        (Arc::new(ctl), rx)
    }

    fn peer_closed(&self) {
        self.peer_closed.store(true, Ordering::SeqCst);
        self.wake();
    }
}

/// A stream that has been attached to its session and may now be written.
pub(crate) struct OpenStream {
    session_id: String,
    ctl: Arc<StreamCtl>,
    rx: Receiver<StreamMsg>,
}

/// Handles `GET /mcp`: attaches a stream to the session or says why not.
pub(crate) fn open(
    shared: &Shared,
    req: &Request,
    conn_id: u64,
    close: bool,
) -> Result<OpenStream, Vec<u8>> {
    if req.header("last-event-id").is_some() {
        return Err(wire::text(400, "stream replay unsupported", close));
    }
    let Some(session_id) = req.header("mcp-session-id").map(str::to_string) else {
        return Err(wire::text(
            400,
            "GET requires an Mcp-Session-Id header",
            close,
        ));
    };
    let (ctl, rx) = StreamCtl::new();
    // None: the session still has a stream when the grace period ends.
    let mut attached: Option<bool> = None;
    shared.wait_until(Instant::now() + REPLACE_GRACE, |st| {
        match st.sessions.get_mut(&session_id) {
            None => {
                attached = Some(false);
                true
            }
            Some(s) if s.stream.is_some() => false,
            Some(s) => {
                s.stream = Some(StreamLink {
                    conn_id,
                    ctl: Arc::clone(&ctl),
                });
                st.stats.get_streams_open += 1;
                st.stats.get_streams_opened += 1;
                attached = Some(true);
                true
            }
        }
    });
    let result = match attached {
        Some(true) => Ok(OpenStream {
            session_id,
            ctl,
            rx,
        }),
        Some(false) => {
            shared.update(|st| st.stats.requests_404 += 1);
            Err(wire::text(404, "session not found", close))
        }
        None => {
            shared.update(|st| st.stats.requests_409 += 1);
            Err(wire::text(
                409,
                "stream already open for this session",
                close,
            ))
        }
    };
    shared.notify();
    result
}

/// Writes the stream until it ends, the peer leaves or the socket fails.
pub(crate) fn serve(shared: &Arc<Shared>, t: &Arc<Transport>, conn_id: u64, open: OpenStream) {
    let OpenStream {
        session_id,
        ctl,
        rx,
    } = open;
    let head = wire::head(
        200,
        &[
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ],
        false,
    );
    let primed = [head, wire::chunk(b": ok\n\n")].concat();
    if t.write_all(&primed).is_ok() && start_watcher(shared, t, conn_id, &session_id, &ctl) {
        write_until_done(shared, t, &session_id, &ctl, &rx);
    }
    shared.update(|st| st.detach_stream(&session_id, conn_id));
}

/// The peer never sends anything on a GET; a read returning is its EOF (or our close).
fn start_watcher(
    shared: &Arc<Shared>,
    t: &Arc<Transport>,
    conn_id: u64,
    session_id: &str,
    ctl: &Arc<StreamCtl>,
) -> bool {
    let (sh, tr, sid, c) = (
        Arc::clone(shared),
        Arc::clone(t),
        session_id.to_string(),
        Arc::clone(ctl),
    );
    let started = shared.spawn("watch", WATCH_STACK, None, move || {
        let mut buf = [0u8; 1024];
        loop {
            match tr.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
        }
        sh.update(|st| st.detach_stream(&sid, conn_id));
        c.peer_closed();
    });
    started.is_ok()
}

fn write_until_done(
    shared: &Shared,
    t: &Transport,
    session_id: &str,
    ctl: &StreamCtl,
    rx: &Receiver<StreamMsg>,
) {
    let mut schedule = Schedule::new(shared.settings.rate_per_sec, phase(&shared.name));
    loop {
        if ctl.peer_closed.load(Ordering::SeqCst) {
            return;
        }
        if ctl.end.load(Ordering::SeqCst) {
            let _ = t.write_all(wire::LAST_CHUNK);
            return;
        }
        let (behaviour, active) = {
            let st = shared.lock();
            let active = rate_active(&st, session_id, shared.settings.faults_per_cluster);
            (st.behaviour, active)
        };
        if behaviour == Behaviour::Garbage {
            let _ = t.write_all(
                &[
                    wire::chunk(b"data: {not json\n\n").as_slice(),
                    b"zz\r\nnot a chunk\r\n",
                ]
                .concat(),
            );
            return;
        }
        let msg = if behaviour != Behaviour::Stall && active && shared.settings.rate_per_sec > 0.0 {
            let due = schedule.due(Instant::now());
            rx.recv_timeout(due.saturating_duration_since(Instant::now()))
        } else {
            schedule.reset();
            rx.recv().map_err(|_| RecvTimeoutError::Disconnected)
        };
        match msg {
            Ok(StreamMsg::Wake) => {}
            Ok(StreamMsg::Emit {
                event,
                fault_id,
                subscription_error,
                ack,
            }) => {
                let speaking = !matches!(shared.behaviour(), Behaviour::Stall | Behaviour::Garbage);
                let written = speaking && t.write_all(&wire::chunk(&event)).is_ok();
                if written {
                    shared.update(|st| {
                        if subscription_error {
                            st.stats.subscription_errors_sent += 1;
                        } else {
                            st.stats.faults_sent += 1;
                            if let Some(id) = fault_id {
                                st.record_fault_id(id);
                            }
                        }
                    });
                }
                if let Some(a) = ack {
                    let _ = a.send(written);
                }
                if speaking && !written {
                    return;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                schedule.fired(Instant::now());
                if !emit_scheduled(shared, t, session_id) {
                    return;
                }
            }
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// Whether rate-driven faults should flow to this session now.
fn rate_active(st: &State, session_id: &str, limit: Option<u64>) -> bool {
    let under_limit = limit.is_none_or(|l| st.rate_claims < l);
    let Some(s) = st.sessions.get(session_id) else {
        return false;
    };
    match &s.subscription {
        Some(sub) => under_limit && s.logs(sub.mode.level_and_logger().0),
        None => false,
    }
}

/// Writes the next rate-driven fault; false if the socket failed.
fn emit_scheduled(shared: &Shared, t: &Transport, session_id: &str) -> bool {
    let limit = shared.settings.faults_per_cluster;
    let claim = shared.update(|st| {
        if !rate_active(st, session_id, limit) {
            return None;
        }
        let sub = st.sessions.get(session_id)?.subscription.as_ref()?;
        let (sub_id, mode) = (sub.id.clone(), sub.mode);
        st.rate_claims += 1;
        let seq = st.fault_seq;
        st.fault_seq += 1;
        Some((sub_id, mode, seq))
    });
    let Some((sub_id, mode, seq)) = claim else {
        return true;
    };
    let spec = FaultSpec::nth(&shared.name, seq, shared.settings.distinct_faults);
    let event = notification_event(&shared.name, &sub_id, mode, &spec);
    let ok = t.write_all(&wire::chunk(&event)).is_ok();
    shared.update(|st| {
        if ok {
            st.stats.faults_sent += 1;
            if mode == Mode::Faults {
                st.record_fault_id(spec.fault_id);
            }
        } else {
            // Not delivered: let a later stream send it instead.
            st.rate_claims -= 1;
        }
    });
    ok
}

/// The SSE event (`data: …\n\n`) of one fault or event notification.
pub(crate) fn notification_event(
    cluster: &str,
    subscription_id: &str,
    mode: Mode,
    spec: &FaultSpec,
) -> Vec<u8> {
    let now = std::time::SystemTime::now();
    let data = match mode {
        Mode::Faults => faults::fault_object(cluster, subscription_id, spec, now),
        Mode::Events => faults::event_object(cluster, subscription_id, spec, now),
    };
    let (level, logger) = mode.level_and_logger();
    let msg = faults::log_notification(level, logger, data);
    wire::sse_event(None, &msg.to_string())
}

/// A subscribed session with an open stream that logs at its mode's level.
pub(crate) struct Target {
    pub subscription_id: String,
    pub mode: Mode,
    pub ctl: Arc<StreamCtl>,
}

pub(crate) fn subscribed_streams(st: &State) -> Vec<Target> {
    st.sessions
        .iter()
        .filter_map(|(_, s)| {
            let sub = s.subscription.as_ref()?;
            let link = s.stream.as_ref()?;
            s.logs(sub.mode.level_and_logger().0).then(|| Target {
                subscription_id: sub.id.clone(),
                mode: sub.mode,
                ctl: Arc::clone(&link.ctl),
            })
        })
        .collect()
}

/// Spreads clusters over the emission interval so a fleet does not emit in lock-step.
fn phase(name: &str) -> f64 {
    let h = faults::fault_id(name, u64::MAX);
    let n = u64::from_str_radix(&h[..4], 16).unwrap_or(0);
    n as f64 / 65_536.0
}

/// When the next rate-driven fault is due.
struct Schedule {
    interval: Duration,
    phase: f64,
    next: Option<Instant>,
}

/// How far behind the schedule may fall before it skips instead of catching up.
const MAX_LAG: Duration = Duration::from_secs(1);

impl Schedule {
    fn new(rate_per_sec: f64, phase: f64) -> Schedule {
        let interval = if rate_per_sec > 0.0 {
            Duration::from_secs_f64((1.0 / rate_per_sec).clamp(1e-6, 86_400.0))
        } else {
            Duration::MAX
        };
        Schedule {
            interval,
            phase,
            next: None,
        }
    }

    fn due(&mut self, now: Instant) -> Instant {
        let first = now
            .checked_add(self.interval.mul_f64(self.phase))
            .unwrap_or(now);
        *self.next.get_or_insert(first)
    }

    fn fired(&mut self, now: Instant) {
        let base = self.next.unwrap_or(now);
        let next = base.checked_add(self.interval).unwrap_or(now);
        self.next = Some(if next + MAX_LAG < now { now } else { next });
    }

    fn reset(&mut self) {
        self.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fault_is_due_within_one_interval() {
        let now = Instant::now();
        let mut s = Schedule::new(10.0, 0.5);
        assert_eq!(s.due(now), now + Duration::from_millis(50));
        s.fired(now + Duration::from_millis(50));
        assert_eq!(s.due(now), now + Duration::from_millis(150));
    }

    #[test]
    fn schedule_catches_up_a_little_but_skips_long_gaps() {
        let now = Instant::now();
        let mut s = Schedule::new(100.0, 0.0);
        s.due(now);
        s.fired(now + Duration::from_millis(50));
        assert_eq!(s.due(now), now + Duration::from_millis(10));
        let late = now + Duration::from_secs(5);
        s.fired(late);
        assert_eq!(s.due(late), late);
    }

    #[test]
    fn reset_restarts_from_the_phase() {
        let now = Instant::now();
        let mut s = Schedule::new(1.0, 0.25);
        s.due(now);
        s.reset();
        let later = now + Duration::from_secs(10);
        assert_eq!(s.due(later), later + Duration::from_millis(250));
    }

    #[test]
    fn phases_spread_clusters() {
        let p: Vec<f64> = (0..10).map(|i| phase(&format!("sim-{i:03}"))).collect();
        assert!(p.iter().all(|x| (0.0..1.0).contains(x)));
        let distinct: std::collections::HashSet<u64> =
            p.iter().map(|x| (x * 1000.0) as u64).collect();
        assert!(distinct.len() > 5);
    }

    #[test]
    fn notification_event_is_one_sse_data_line() {
        let spec = FaultSpec::nth("sim-000", 0, 0);
        let ev = notification_event("sim-000", "sub-1", Mode::Faults, &spec);
        let text = String::from_utf8(ev).unwrap();
        assert!(text.starts_with("data: {") && text.ends_with("}\n\n"));
        let v: serde_json::Value = serde_json::from_str(&text[6..text.len() - 2]).unwrap();
        assert_eq!(v["method"], "notifications/message");
        assert_eq!(v["params"]["logger"], "kubernetes/faults");
        assert_eq!(v["params"]["level"], "warning");
        assert_eq!(v["params"]["data"]["faultId"], spec.fault_id.as_str());
    }
}

#[cfg(test)]
mod wire_tests {
    use crate::sim::testkit::{quiet, start, Mcp, WAIT};
    use crate::sim::{Behaviour, SimOptions};
    use serde_json::json;

    #[test]
    fn handshake_in_protocol_order_delivers_faults() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        assert!(c.wait_for(|s| s.get_streams_open == 1 && s.subscribes == 1, WAIT));
        let id = c.emit_fault("critical", "CrashLoop").expect("delivered");
        let f = stream.next_fault();
        assert_eq!(f["faultId"], id.as_str());
        assert_eq!(f["cluster"], c.name());
        assert_eq!(f["severity"], "critical");
        assert_eq!(f["faultType"], "CrashLoop");
        assert!(f["subscriptionId"].as_str().unwrap().starts_with("sub-"));
        let s = c.stats();
        assert_eq!((s.faults_sent, s.fault_ids_sent.clone()), (1, vec![id]));
        assert_eq!(
            (s.sessions_created, s.initialized, s.set_level_calls),
            (1, 1, 1)
        );
        sim.stop();
    }

    #[test]
    fn rate_driven_faults_stop_at_the_limit_and_cycle_ids() {
        let sim = start(SimOptions {
            rate_per_sec: 200.0,
            faults_per_cluster: Some(4),
            distinct_faults: 2,
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        let ids: Vec<String> = (0..4)
            .map(|_| stream.next_fault()["faultId"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(ids[0], ids[2]);
        assert_eq!(ids[1], ids[3]);
        assert_ne!(ids[0], ids[1]);
        assert!(c.wait_for(|s| s.faults_sent == 4, WAIT));
        assert_eq!(c.stats().fault_ids_sent, ids);
        // The limit holds: the next thing on the stream is an on-demand fault.
        c.emit_fault("info", "JobFailure").expect("delivered");
        assert_eq!(stream.next_fault()["faultType"], "JobFailure");
        sim.stop();
    }

    #[test]
    fn events_mode_sends_kubernetes_events_at_info() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "events");
        c.emit_fault("warning", "CrashLoop").expect("delivered");
        let m = stream.next_message();
        assert_eq!(m["params"]["logger"], "kubernetes/events");
        assert_eq!(m["params"]["level"], "info");
        assert_eq!(m["params"]["data"]["event"]["reason"], "BackOff");
        assert_eq!(c.stats().faults_sent, 1);
        assert!(c.stats().fault_ids_sent.is_empty());
        sim.stop();
    }

    #[test]
    fn nothing_is_sent_before_set_level() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let mut stream = m.open_stream();
        m.subscribe("faults");
        assert_eq!(c.emit_fault("critical", "PodCrash"), None);
        m.rpc("logging/setLevel", json!({"level": "warning"}));
        let id = c.emit_fault("critical", "PodCrash").expect("delivered");
        assert_eq!(stream.next_fault()["faultId"], id.as_str());
        sim.stop();
    }

    #[test]
    fn notifications_without_an_open_stream_are_dropped() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        m.rpc("logging/setLevel", json!({"level": "info"}));
        m.subscribe("faults");
        assert_eq!(c.emit_fault("critical", "PodCrash"), None);
        assert_eq!(c.stats().faults_sent, 0);
        sim.stop();
    }

    #[test]
    fn second_get_on_a_session_is_409() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let m = Mcp::initialize(c, None);
        let _first = m.open_stream();
        let (_, status) = m.get(&[]);
        assert_eq!(status, 409);
        assert_eq!(c.stats().requests_409, 1);
        sim.stop();
    }

    #[test]
    fn closed_stream_frees_the_session_for_a_new_get() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let m = Mcp::initialize(c, None);
        drop(m.open_stream());
        assert!(c.wait_for(
            |s| s.get_streams_opened == 1 && s.get_streams_open == 0,
            WAIT
        ));
        let _again = m.open_stream();
        assert_eq!(c.stats().get_streams_open, 1);
        sim.stop();
    }

    #[test]
    fn get_needs_session_accept_and_no_last_event_id() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let (_, status) = m.get(&[("Last-Event-ID", "3")]);
        assert_eq!(status, 400);
        let mut raw = crate::sim::testkit::Client::connect(c, None);
        raw.send("GET", "/mcp", &[("Accept", "text/event-stream")], "");
        assert_eq!(raw.response().status, 400);
        raw.send("GET", "/mcp", &[("Mcp-Session-Id", &m.session)], "");
        assert_eq!(raw.response().status, 400);
        m.session = "unknown".into();
        assert_eq!(m.get(&[]).1, 404);
        sim.stop();
    }

    #[test]
    fn delete_ends_the_stream_and_forgets_the_session() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
        assert_eq!(m.delete().status, 204);
        assert!(stream.ends());
        assert!(stream.client.is_closed());
        assert!(c.wait_for(|s| s.deletes == 1 && s.get_streams_open == 0, WAIT));
        assert_eq!(
            m.post(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
                .status,
            404
        );
        assert_eq!(m.delete().status, 404);
        sim.stop();
    }

    #[test]
    fn subscription_error_behaviour_reports_one_degraded_error() {
        let sim = start(SimOptions {
            behaviours: vec![(0, Behaviour::SubscriptionError)],
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        let m = stream.next_message();
        assert_eq!(m["params"]["logger"], "kubernetes/subscription_error");
        assert_eq!(m["params"]["data"]["degraded"], true);
        assert_eq!(m["params"]["data"]["cluster"], c.name());
        assert!(c.wait_for(|s| s.subscription_errors_sent == 1, WAIT));
        sim.stop();
    }

    #[test]
    fn stall_silences_streams_until_normal() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        c.set_behaviour(Behaviour::Stall);
        assert_eq!(c.emit_fault("critical", "PodCrash"), None);
        c.set_behaviour(Behaviour::Normal);
        let id = c.emit_fault("critical", "PodCrash").expect("delivered");
        assert_eq!(stream.next_fault()["faultId"], id.as_str());
        sim.stop();
    }

    #[test]
    fn garbage_breaks_an_open_stream() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        c.set_behaviour(Behaviour::Garbage);
        let bad = stream.client.chunk().unwrap();
        assert_eq!(bad, b"data: {not json\n\n");
        let rest = stream.client.read_to_close();
        assert!(rest.starts_with(b"zz\r\n"), "{rest:?}");
        sim.stop();
    }
}
