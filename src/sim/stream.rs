//! The GET event stream of one session: opening it (with the real server's 400/404/405/409
//! answers), the thread that writes it, and the thread that notices the peer leaving.

use super::cluster::{Cancelled, Shared};
use super::faults;
use super::session::StreamLink;
use super::transport::Transport;
use super::wire::{self, Request};
use super::Behaviour;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Messages queued per stream; a full queue counts as a write that would block.
const QUEUE: usize = 64;
/// How long a second GET waits for a just-closed first stream to be noticed before 409.
const REPLACE_GRACE: Duration = Duration::from_millis(100);
/// Stack of the thread that only waits for the peer's EOF.
pub(crate) const WATCH_STACK: usize = 64 * 1024;
/// A GET socket's write timeout: how often a blocked write looks at the clock and flags.
const WRITE_POLL: Duration = Duration::from_millis(100);

/// What a queued notification is, for the counters.
pub(crate) enum Kind {
    /// A fault or event; faultId in faults mode.
    Notification {
        fault_id: Option<String>,
    },
    SubscriptionError,
    ServerError,
}

pub(crate) enum StreamMsg {
    /// Write this JSON-RPC message as one SSE event (unless the cluster stalls) and
    /// acknowledge whether it was written.
    Emit {
        json: String,
        kind: Kind,
        /// The subscription it is for: cancelled if the write fails or blocks too long.
        subscription: Option<String>,
        queued_at: Instant,
        ack: Option<mpsc::Sender<bool>>,
    },
    /// Re-read the cluster state (behaviour, flags).
    Wake,
}

/// What other threads use to reach a stream's writer thread.
pub(crate) struct StreamCtl {
    end: AtomicBool,
    cut: AtomicBool,
    peer_closed: AtomicBool,
    tx: SyncSender<StreamMsg>,
}

impl StreamCtl {
    /// Ask the writer to finish the body (terminating chunk) and close.
    pub(crate) fn end(&self) {
        self.end.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Ask the writer to stop at once without finishing the body (the socket is shut by
    /// whoever cuts).
    pub(crate) fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
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
            cut: AtomicBool::new(false),
            peer_closed: AtomicBool::new(false),
            tx,
        };
        (Arc::new(ctl), rx)
    }

    fn peer_closed(&self) {
        self.peer_closed.store(true, Ordering::SeqCst);
        self.wake();
    }

    fn stopping(&self) -> bool {
        self.end.load(Ordering::SeqCst)
            || self.cut.load(Ordering::SeqCst)
            || self.peer_closed.load(Ordering::SeqCst)
    }
}

/// A stream that has been attached to its session and may now be written.
pub(crate) struct OpenStream {
    session_id: String,
    ctl: Arc<StreamCtl>,
    rx: Receiver<StreamMsg>,
}

/// Handles `GET /mcp`: attaches a stream to the session or says why not, in go-sdk's
/// order (session, then `Last-Event-ID`, then a conflicting stream).
pub(crate) fn open(
    shared: &Shared,
    req: &Request,
    conn_id: u64,
    close: bool,
) -> Result<OpenStream, Vec<u8>> {
    let Some(session_id) = req
        .header("mcp-session-id")
        .filter(|s| !s.is_empty())
        .map(str::to_string)
    else {
        return Err(wire::text(405, "GET requires an active session", close));
    };
    if !shared.lock().sessions.contains(&session_id) {
        shared.update(|st| st.stats.requests_404 += 1);
        return Err(wire::text(404, "session not found", close));
    }
    if let Some(eid) = req.header("last-event-id") {
        if !valid_event_id(eid) {
            let why = format!("malformed Last-Event-ID {}", go_quote(eid));
            return Err(wire::text(400, &why, close));
        }
        return Err(wire::text(400, "stream replay unsupported", close));
    }
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
                "stream ID conflicts with ongoing stream",
                close,
            ))
        }
    };
    shared.notify();
    result
}

/// go-sdk's event ids are `<stream>_<index>`; anything else is "malformed".
fn valid_event_id(eid: &str) -> bool {
    let parts: Vec<&str> = eid.split('_').collect();
    parts.len() == 2 && parts[1].parse::<u32>().is_ok()
}

/// Go's `%q` for the printable ASCII the header can hold.
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii_graphic() || c == ' ' => out.push(c),
            c => out.push_str(&format!("\\x{:02x}", u32::from(c) & 0xff)),
        }
    }
    out.push('"');
    out
}

/// Writes the stream until it ends, the peer leaves or the socket fails.
pub(crate) fn serve(
    shared: &Arc<Shared>,
    t: &Arc<Transport>,
    conn_id: u64,
    open: OpenStream,
    close: bool,
) {
    let OpenStream {
        session_id,
        ctl,
        rx,
    } = open;
    let mut headers = vec![
        ("Cache-Control", "no-cache, no-transform"),
        ("Content-Type", "text/event-stream"),
    ];
    if !close {
        headers.push(("Connection", "keep-alive"));
    }
    headers.push(("Transfer-Encoding", "chunked"));
    // No priming comment: go-sdk v1.2.0 flushes the head and then says nothing.
    let head = wire::head(200, &headers, close);
    let _ = t.socket().set_write_timeout(Some(WRITE_POLL));
    // Messages taken off the queue while a write was blocked.
    let mut pending: VecDeque<StreamMsg> = VecDeque::new();
    if t.write_all(&head).is_ok() && start_watcher(shared, t, conn_id, &session_id, &ctl) {
        write_until_done(shared, t, conn_id, &session_id, &ctl, &rx, &mut pending);
    }
    shared.update(|st| {
        st.detach_stream(&session_id, conn_id);
        // What was queued for this stream can no longer be written: on the real server
        // each of those writes fails and cancels its subscription.
        pending.extend(rx.try_iter());
        for msg in pending {
            if let StreamMsg::Emit {
                subscription, ack, ..
            } = msg
            {
                if let Some(sub) = subscription {
                    st.cancel_subscription(&sub, Cancelled::Undeliverable);
                }
                if let Some(a) = ack {
                    let _ = a.send(false);
                }
            }
        }
    });
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

/// While a write is blocked, every other notification for the stream waits; each one that
/// has waited longer than `limit` has failed (the fork gives each write 2 s), so its
/// subscription is cancelled now rather than when the blocked write finishes.
fn expire_waiting(
    shared: &Shared,
    rx: &Receiver<StreamMsg>,
    pending: &mut VecDeque<StreamMsg>,
    limit: Option<Duration>,
) {
    while let Ok(msg) = rx.try_recv() {
        if matches!(msg, StreamMsg::Emit { .. }) {
            pending.push_back(msg);
        }
    }
    let Some(limit) = limit else {
        return;
    };
    let now = Instant::now();
    let expired = |m: &StreamMsg| matches!(m, StreamMsg::Emit { queued_at, .. } if now.duration_since(*queued_at) >= limit);
    if !pending.iter().any(expired) {
        return;
    }
    let (gone, kept): (VecDeque<StreamMsg>, VecDeque<StreamMsg>) =
        pending.drain(..).partition(expired);
    *pending = kept;
    shared.update(|st| {
        for msg in gone {
            if let StreamMsg::Emit {
                subscription, ack, ..
            } = msg
            {
                if let Some(sub) = subscription {
                    st.cancel_subscription(&sub, Cancelled::Undeliverable);
                }
                if let Some(a) = ack {
                    let _ = a.send(false);
                }
            }
        }
    });
}

/// One SSE event as go-sdk writes it: `event: message`, an `id:` line only with
/// `event-ids`, one `data:` line.
fn sse_frame(json: &str, id: Option<&str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 40);
    out.extend_from_slice(b"event: message\n");
    if let Some(id) = id {
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(id.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    wire::chunk(&out)
}

fn write_until_done(
    shared: &Shared,
    t: &Transport,
    conn_id: u64,
    session_id: &str,
    ctl: &StreamCtl,
    rx: &Receiver<StreamMsg>,
    pending: &mut VecDeque<StreamMsg>,
) {
    let limit = shared.settings.write_block_timeout;
    // go-sdk numbers a GET's events from 0 (`_0`, `_1`, …) when it numbers them at all.
    let mut next_index: u64 = 0;
    let mut notifications_written: u32 = 0;
    loop {
        if ctl.cut.load(Ordering::SeqCst) || ctl.peer_closed.load(Ordering::SeqCst) {
            return;
        }
        if ctl.end.load(Ordering::SeqCst) {
            let _ = t.write_all(wire::LAST_CHUNK);
            return;
        }
        if shared.behaviour() == Behaviour::Garbage {
            let _ = t.write_all(
                &[
                    wire::chunk(b"data: {not json\n\n").as_slice(),
                    b"zz\r\nnot a chunk\r\n",
                ]
                .concat(),
            );
            return;
        }
        let msg = match pending.pop_front() {
            Some(m) => m,
            None => match rx.recv() {
                Ok(m) => m,
                Err(_) => return,
            },
        };
        let StreamMsg::Emit {
            json,
            kind,
            subscription,
            queued_at,
            ack,
        } = msg
        else {
            continue;
        };
        let behaviour = shared.behaviour();
        let answer = |ok: bool| {
            if let Some(a) = &ack {
                let _ = a.send(ok);
            }
        };
        if matches!(behaviour, Behaviour::Stall | Behaviour::Garbage) {
            answer(false);
            continue;
        }
        let too_slow = |at: Instant| limit.is_some_and(|l| at.duration_since(queued_at) >= l);
        if too_slow(Instant::now()) {
            // Waited behind a blocked write for longer than the limit: failed.
            if let Some(sub) = &subscription {
                shared.update(|st| st.cancel_subscription(sub, Cancelled::Undeliverable));
            }
            answer(false);
            continue;
        }
        let id = (behaviour == Behaviour::EventIds).then(|| format!("_{next_index}"));
        next_index += 1;
        let frame = sse_frame(&json, id.as_deref());
        let mut slow = false;
        let written = t.write_all_patient(&frame, &mut || {
            slow |= too_slow(Instant::now());
            expire_waiting(shared, rx, pending, limit);
            !ctl.stopping()
        });
        if written.is_err() {
            // The fork cancels the subscription whose notification could not be written.
            if let Some(sub) = &subscription {
                shared.update(|st| st.cancel_subscription(sub, Cancelled::Undeliverable));
            }
            answer(false);
            return;
        }
        let is_notification = matches!(kind, Kind::Notification { .. });
        shared.update(|st| {
            match kind {
                Kind::Notification { fault_id } => {
                    st.stats.faults_sent += 1;
                    if let Some(id) = fault_id {
                        st.record_fault_id(id);
                    }
                }
                Kind::SubscriptionError => st.stats.subscription_errors_sent += 1,
                Kind::ServerError => st.stats.server_errors_sent += 1,
            }
            if slow {
                if let Some(sub) = &subscription {
                    st.cancel_subscription(sub, Cancelled::Undeliverable);
                }
            }
        });
        answer(true);
        if is_notification {
            notifications_written += 1;
            if let Behaviour::CutAfter(n) = shared.behaviour() {
                if notifications_written >= n {
                    shared.update(|st| {
                        if st.sessions.detach_stream(session_id, conn_id) {
                            st.stats.get_streams_open = st.stats.get_streams_open.saturating_sub(1);
                        }
                        st.stats.streams_cut += 1;
                    });
                    let _ = t.socket().shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
        }
    }
}

/// Spreads clusters over the emission interval so a fleet does not emit in lock-step.
pub(crate) fn phase(name: &str) -> f64 {
    let h = faults::stable_hex(name, u64::MAX);
    let n = u64::from_str_radix(&h[..4], 16).unwrap_or(0);
    n as f64 / 65_536.0
}

/// When the next rate-driven fault is due.
pub(crate) struct Schedule {
    interval: Duration,
    phase: f64,
    next: Option<Instant>,
}

/// How far behind the schedule may fall before it skips instead of catching up.
const MAX_LAG: Duration = Duration::from_secs(1);

impl Schedule {
    pub(crate) fn new(rate_per_sec: f64, phase: f64) -> Schedule {
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

    pub(crate) fn due(&mut self, now: Instant) -> Instant {
        let first = now
            .checked_add(self.interval.mul_f64(self.phase))
            .unwrap_or(now);
        *self.next.get_or_insert(first)
    }

    pub(crate) fn fired(&mut self, now: Instant) {
        let base = self.next.unwrap_or(now);
        let next = base.checked_add(self.interval).unwrap_or(now);
        self.next = Some(if next + MAX_LAG < now { now } else { next });
    }

    pub(crate) fn reset(&mut self) {
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
    fn events_are_framed_as_go_sdk_writes_them() {
        let plain = sse_frame("{}", None);
        assert_eq!(plain, wire::chunk(b"event: message\ndata: {}\n\n"));
        let with_id = sse_frame("{}", Some("_3"));
        assert_eq!(
            with_id,
            wire::chunk(b"event: message\nid: _3\ndata: {}\n\n")
        );
    }

    #[test]
    fn only_go_sdk_shaped_event_ids_are_well_formed() {
        assert!(valid_event_id("_0") && valid_event_id("abc_12"));
        assert!(!valid_event_id("3") && !valid_event_id("a_b") && !valid_event_id("a_1_2"));
        assert_eq!(go_quote("x\"y"), "\"x\\\"y\"");
    }
}

#[cfg(test)]
mod wire_tests {
    use crate::sim::testkit::{quiet, start, Mcp, WAIT};
    use crate::sim::{Behaviour, SimOptions};
    use serde_json::json;
    use std::time::Duration;

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
    fn rate_driven_faults_stop_at_the_limit_and_cycle_ids_without_a_dedup_window() {
        let sim = start(SimOptions {
            rate_per_sec: 200.0,
            faults_per_cluster: Some(4),
            distinct_faults: 2,
            fault_dedup_window: Duration::ZERO,
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
    fn repeated_rate_driven_faults_are_withheld_within_the_dedup_window() {
        let sim = start(SimOptions {
            rate_per_sec: 200.0,
            faults_per_cluster: Some(3),
            distinct_faults: 2,
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "faults");
        let a = stream.next_fault()["faultId"].clone();
        let b = stream.next_fault()["faultId"].clone();
        assert_ne!(a, b);
        // Every later fault repeats one of the two: withheld, and not counted as sent.
        assert!(c.wait_for(|s| s.faults_deduplicated >= 4, WAIT));
        let s = c.stats();
        assert_eq!(s.faults_sent, 2);
        assert!(s.faults_emitted >= 6, "{}", s.faults_emitted);
        sim.stop();
    }
    #[test]
    fn events_mode_sends_nested_kubernetes_events_at_info() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, None, "events");
        c.emit_fault("warning", "CrashLoop").expect("delivered");
        let m = stream.next_message();
        assert_eq!(m["params"]["logger"], "kubernetes/events");
        assert_eq!(m["params"]["level"], "info");
        assert_eq!(m["params"]["data"]["cluster"], c.name());
        assert_eq!(m["params"]["data"]["event"]["reason"], "BackOff");
        assert_eq!(m["params"]["data"]["event"]["type"], "Warning");
        assert_eq!(
            m["params"]["data"]["event"]["involvedObject"]["kind"],
            "Pod"
        );
        assert_eq!(c.stats().faults_sent, 1);
        assert!(c.stats().fault_ids_sent.is_empty());
        sim.stop();
    }
    #[test]
    fn nothing_is_sent_before_set_level_and_the_subscription_survives() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let mut stream = m.open_stream();
        m.subscribe_ok("faults");
        assert_eq!(c.emit_fault("critical", "PodCrash"), None);
        assert_eq!(c.subscriptions().len(), 1);
        m.rpc("logging/setLevel", json!({"level": "warning"}));
        let id = c.emit_fault("critical", "PodCrash").expect("delivered");
        assert_eq!(stream.next_fault()["faultId"], id.as_str());
        sim.stop();
    }
    #[test]
    fn fault_with_no_stream_attached_cancels_the_subscription() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_other, mut watching) = Mcp::handshake(c, None, "faults");
        let mut m = Mcp::initialize(c, None);
        m.rpc("logging/setLevel", json!({"level": "info"}));
        m.subscribe_ok("faults");
        assert_eq!(c.subscription_count(&m.session), 1);
        let id = c
            .emit_fault("critical", "PodCrash")
            .expect("the other stream");
        assert_eq!(c.subscription_count(&m.session), 0);
        let s = c.stats();
        assert_eq!(
            (s.subscriptions_cancelled_undeliverable, s.faults_sent),
            (1, 1)
        );
        // Silently: the other session only sees the fault itself.
        assert_eq!(watching.next_fault()["faultId"], id.as_str());
        let next = c.emit_fault("warning", "JobFailure").expect("delivered");
        assert_eq!(watching.next_fault()["faultId"], next.as_str());
        // The session itself is kept; a new GET and subscribe work again.
        let mut stream = m.open_stream();
        m.subscribe_ok("faults");
        let id = c.emit_fault("critical", "CrashLoop").expect("delivered");
        assert_eq!(stream.next_fault()["faultId"], id.as_str());
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
    fn get_without_session_is_405_and_with_last_event_id_is_400() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let r = m.get_response(&[("Last-Event-ID", "_3")]);
        assert_eq!(
            (r.status, r.text()),
            (400, "stream replay unsupported\n".into())
        );
        let r = m.get_response(&[("Last-Event-ID", "3")]);
        assert_eq!(
            (r.status, r.text()),
            (400, "malformed Last-Event-ID \"3\"\n".into())
        );
        let mut raw = crate::sim::testkit::Client::connect(c, None);
        raw.send("GET", "/mcp", &[("Accept", "text/event-stream")], "");
        let r = raw.response();
        assert_eq!(
            (r.status, r.text()),
            (405, "GET requires an active session\n".into())
        );
        raw.send("GET", "/mcp", &[("Mcp-Session-Id", &m.session)], "");
        assert_eq!(
            raw.response().status,
            400,
            "Accept must name text/event-stream"
        );
        m.session = "unknown".into();
        assert_eq!(m.get(&[("Last-Event-ID", "_1")]).1, 404);
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
