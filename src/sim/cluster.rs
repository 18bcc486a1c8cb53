//! One simulated cluster: its shared state, its threads, and the control handle tests use.

use super::faults::FaultSpec;
use super::session::{Session, SessionTable};
use super::stream::{Kind, StreamMsg};
use super::subs::SubscriptionTable;
use super::{notify, server, Behaviour, ClusterField, ReplyFormat, SimStats};
use super::{FAULT_IDS_KEPT, STOP_DEADLINE};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::io;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Options shared by every cluster of a simulator.
pub(crate) struct Settings {
    pub tls: Option<Arc<ServerConfig>>,
    pub api_key: Option<String>,
    pub reply_format: ReplyFormat,
    pub rate_per_sec: f64,
    pub faults_per_cluster: Option<u64>,
    pub distinct_faults: u64,
    pub write_block_timeout: Option<Duration>,
    pub session_monitor_interval: Duration,
    pub fault_dedup_window: Duration,
    pub cluster_field: ClusterField,
    pub max_subscriptions_per_session: usize,
    pub max_subscriptions: usize,
}

/// Everything a cluster's threads share. Guarded by one mutex: this is a test server, and
/// the lock is never held across socket I/O.
pub(crate) struct Shared {
    pub name: String,
    pub port: u16,
    pub settings: Arc<Settings>,
    state: Mutex<State>,
    changed: Condvar,
    threads: Mutex<Vec<JoinHandle<()>>>,
    next_conn: AtomicU64,
    reply_seq: AtomicU64,
}

pub(crate) struct State {
    pub behaviour: Behaviour,
    /// While a listener runs: the flag its accept thread checks after every accept.
    pub listening: Option<Arc<AtomicBool>>,
    /// Set by `Simulator::stop`; the cluster can no longer restart.
    pub stopped: bool,
    pub sessions: SessionTable,
    pub subs: SubscriptionTable,
    /// The cluster's most recent events (every fault that started), for `events_list`.
    pub recent_events: std::collections::VecDeque<(FaultSpec, std::time::SystemTime)>,
    /// A clone of every open socket, so that any of them can be shut down from outside.
    pub conns: HashMap<u64, TcpStream>,
    pub stats: SimStats,
    live_threads: usize,
    /// Number of the next fault condition to emit.
    pub fault_seq: u64,
    /// Rate-driven faults written or being written, for `faults_per_cluster`.
    pub rate_claims: u64,
    /// Faults of the fleet-wide workload emitted (their own sequence, so that the
    /// cluster's other faults are the same with or without them).
    pub fleet_seq: u64,
    pub garbage_seq: u64,
}

/// Events kept for `events_list` per cluster.
const RECENT_EVENTS: usize = 1000;

/// Why a subscription went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cancelled {
    Unsubscribed,
    Undeliverable,
    Control,
}

impl State {
    /// Remembers a fault that started as an event `events_list` shows.
    pub(crate) fn record_event(&mut self, spec: &FaultSpec) {
        if self.recent_events.len() >= RECENT_EVENTS {
            self.recent_events.pop_front();
        }
        self.recent_events
            .push_back((spec.clone(), std::time::SystemTime::now()));
    }

    /// Removes subscription `id` silently (no notification to anyone); counts why.
    pub(crate) fn cancel_subscription(&mut self, id: &str, why: Cancelled) -> bool {
        if self.subs.remove(id).is_none() {
            return false;
        }
        let s = &mut self.stats;
        match why {
            Cancelled::Unsubscribed => s.unsubscribes += 1,
            Cancelled::Undeliverable => s.subscriptions_cancelled_undeliverable += 1,
            Cancelled::Control => s.subscriptions_cancelled_by_control += 1,
        }
        s.subscriptions_active = self.subs.len() as u64;
        true
    }

    /// The fork's session monitor: subscriptions of sessions the server no longer has go.
    pub(crate) fn monitor_sessions(&mut self) {
        let sessions = &self.sessions;
        let gone = self
            .subs
            .remove_where(|sub| !sessions.contains(&sub.session));
        self.stats.subscriptions_cancelled_by_monitor += gone as u64;
        self.stats.subscriptions_active = self.subs.len() as u64;
    }

    /// Removes a session, ending its GET stream.
    pub(crate) fn forget_session(&mut self, id: &str) -> Option<Session> {
        let mut s = self.sessions.remove(id)?;
        self.end_stream_of(&mut s);
        Some(s)
    }

    pub(crate) fn forget_all_sessions(&mut self) {
        for mut s in self.sessions.take_all() {
            self.end_stream_of(&mut s);
        }
    }

    pub(crate) fn end_stream_of(&mut self, s: &mut Session) {
        if let Some(link) = s.stream.take() {
            self.stats.get_streams_open = self.stats.get_streams_open.saturating_sub(1);
            link.ctl.end();
        }
    }

    /// Detaches the stream of session `id` if connection `conn_id` still owns it.
    pub(crate) fn detach_stream(&mut self, id: &str, conn_id: u64) {
        if self.sessions.detach_stream(id, conn_id) {
            self.stats.get_streams_open = self.stats.get_streams_open.saturating_sub(1);
        }
    }

    /// Cuts the GET stream of session `id` abruptly; the session stays.
    pub(crate) fn cut_stream(&mut self, id: &str) -> bool {
        let Some(link) = self.sessions.get_mut(id).and_then(|s| s.stream.take()) else {
            return false;
        };
        self.stats.get_streams_open = self.stats.get_streams_open.saturating_sub(1);
        self.stats.streams_cut += 1;
        link.ctl.cut();
        if let Some(sock) = self.conns.get(&link.conn_id) {
            let _ = sock.shutdown(Shutdown::Both);
        }
        true
    }

    pub(crate) fn record_fault_id(&mut self, id: String) {
        let ids = &mut self.stats.fault_ids_sent;
        if ids.len() >= FAULT_IDS_KEPT + FAULT_IDS_KEPT / 2 {
            ids.drain(..ids.len() - FAULT_IDS_KEPT);
        }
        ids.push(id);
    }

    /// Wakes every open stream so it re-reads the cluster's behaviour.
    fn wake_streams(&self) {
        for (_, s) in self.sessions.iter() {
            if let Some(link) = &s.stream {
                link.ctl.wake();
            }
        }
    }
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state and wakes everyone waiting for a change.
    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let r = f(&mut self.lock());
        self.changed.notify_all();
        r
    }

    /// Waits until `done` holds or `deadline` passes; returns whether it holds.
    pub(crate) fn wait_until(
        &self,
        deadline: Instant,
        mut done: impl FnMut(&mut State) -> bool,
    ) -> bool {
        let mut st = self.lock();
        loop {
            if done(&mut st) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            st = self
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    pub(crate) fn notify(&self) {
        self.changed.notify_all();
    }

    pub(crate) fn behaviour(&self) -> Behaviour {
        self.lock().behaviour
    }

    /// The `cluster` value of subscriptions and notifications.
    pub(crate) fn cluster_field(&self) -> &str {
        match self.settings.cluster_field {
            ClusterField::Name => &self.name,
            ClusterField::Empty => "",
        }
    }

    pub(crate) fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    /// For `ReplyFormat::Alternate`: whether this reply goes out as SSE.
    pub(crate) fn reply_as_sse(&self) -> bool {
        match self.settings.reply_format {
            ReplyFormat::Json => false,
            ReplyFormat::Sse => true,
            ReplyFormat::Alternate => self.reply_seq.fetch_add(1, Ordering::Relaxed) % 2 == 1,
        }
    }

    /// Starts a thread counted in `live_threads`; `conn` is the socket entry the thread
    /// owns and removes when it ends.
    pub(crate) fn spawn(
        self: &Arc<Self>,
        what: &str,
        stack: usize,
        conn: Option<u64>,
        f: impl FnOnce() + Send + 'static,
    ) -> io::Result<()> {
        self.update(|st| st.live_threads += 1);
        let guard = LiveGuard {
            shared: Arc::clone(self),
            conn,
        };
        let handle = std::thread::Builder::new()
            .name(format!("{}-{what}", self.name))
            .stack_size(stack)
            .spawn(move || {
                let _guard = guard;
                f()
            })?;
        let mut threads = self.threads.lock().unwrap_or_else(PoisonError::into_inner);
        threads.retain(|h| !h.is_finished());
        threads.push(handle);
        Ok(())
    }

    /// Closes the listener and every socket, forgets every session. Does not wait.
    pub(crate) fn begin_shutdown(&self, permanent: bool) {
        let listening = self.update(|st| {
            st.stopped |= permanent;
            let flag = st.listening.take();
            if let Some(f) = &flag {
                f.store(true, Ordering::SeqCst);
            }
            for sock in st.conns.values() {
                let _ = sock.shutdown(Shutdown::Both);
            }
            st.forget_all_sessions();
            st.subs.clear();
            st.stats.subscriptions_active = 0;
            flag
        });
        if listening.is_some() {
            // Wake the accept thread; it sees the flag and ends, closing the listener.
            let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        }
    }

    /// Waits (until `deadline`) for every thread of this cluster to end and joins them.
    pub(crate) fn finish_shutdown(&self, deadline: Instant) -> bool {
        let all_ended = self.wait_until(deadline, |st| st.live_threads == 0);
        let handles =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for h in handles {
            if all_ended || h.is_finished() {
                let _ = h.join();
            }
        }
        if !all_ended {
            log::warn!(
                "simulated cluster {}: threads still running after stop",
                self.name
            );
        }
        all_ended
    }

    /// Binds the listener and starts the accept thread.
    fn listen(self: &Arc<Self>, listener: TcpListener) -> io::Result<()> {
        let closed = Arc::new(AtomicBool::new(false));
        self.update(|st| st.listening = Some(Arc::clone(&closed)));
        let shared = Arc::clone(self);
        let flag = Arc::clone(&closed);
        let started = self
            .spawn("timer", TIMER_STACK, None, move || {
                notify::timer_loop(shared, flag)
            })
            .and_then(|_| {
                let shared = Arc::clone(self);
                let flag = Arc::clone(&closed);
                self.spawn("accept", server::ACCEPT_STACK, None, move || {
                    server::accept_loop(shared, listener, flag)
                })
            });
        if started.is_err() {
            closed.store(true, Ordering::SeqCst);
            self.update(|st| st.listening = None);
        }
        started
    }
}

/// The timer thread formats faults into JSON, nothing deeper.
const TIMER_STACK: usize = 128 * 1024;

/// Keeps `live_threads` and the socket table right however a thread ends.
struct LiveGuard {
    shared: Arc<Shared>,
    conn: Option<u64>,
}

impl Drop for LiveGuard {
    fn drop(&mut self) {
        self.shared.update(|st| {
            if let Some(id) = self.conn {
                st.conns.remove(&id);
            }
            st.live_threads -= 1;
        });
    }
}

/// Handle to one simulated cluster. Cheap to clone; all methods take `&self`.
#[derive(Clone)]
pub struct SimCluster {
    shared: Arc<Shared>,
}

impl SimCluster {
    pub(crate) fn start(
        name: String,
        port: u16,
        behaviour: Behaviour,
        settings: Arc<Settings>,
    ) -> io::Result<SimCluster> {
        let listener = TcpListener::bind(("127.0.0.1", port)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("simulated cluster {name}: bind 127.0.0.1:{port}: {e}"),
            )
        })?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            name,
            port,
            settings,
            state: Mutex::new(State {
                behaviour,
                listening: None,
                stopped: false,
                sessions: SessionTable::default(),
                subs: SubscriptionTable::default(),
                recent_events: std::collections::VecDeque::new(),
                conns: HashMap::new(),
                stats: SimStats::default(),
                live_threads: 0,
                fault_seq: 0,
                fleet_seq: 0,
                rate_claims: 0,
                garbage_seq: 0,
            }),
            changed: Condvar::new(),
            threads: Mutex::new(Vec::new()),
            next_conn: AtomicU64::new(0),
            reply_seq: AtomicU64::new(0),
        });
        shared.listen(listener)?;
        Ok(SimCluster { shared })
    }

    pub(crate) fn begin_shutdown(&self, permanent: bool) {
        self.shared.begin_shutdown(permanent)
    }

    pub(crate) fn finish_shutdown(&self, deadline: Instant) -> bool {
        self.shared.finish_shutdown(deadline)
    }

    pub fn name(&self) -> &str {
        &self.shared.name
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// `http://127.0.0.1:PORT/mcp`, or `https://…` with TLS.
    pub fn endpoint(&self) -> String {
        let scheme = if self.shared.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://127.0.0.1:{}/mcp", self.shared.port)
    }

    pub fn behaviour(&self) -> Behaviour {
        self.shared.behaviour()
    }

    pub fn set_behaviour(&self, b: Behaviour) {
        self.shared.update(|st| {
            st.behaviour = b;
            st.wake_streams();
        });
    }

    /// Closes every open socket of this cluster now; sessions and subscriptions survive.
    pub fn drop_connections(&self) {
        self.shared.update(|st| {
            for sock in st.conns.values() {
                let _ = sock.shutdown(Shutdown::Both);
            }
            // Detach streams right away so a client's immediate new GET is not a 409.
            for (_, s) in st.sessions.iter_mut() {
                if let Some(link) = s.stream.take() {
                    st.stats.get_streams_open = st.stats.get_streams_open.saturating_sub(1);
                    link.ctl.end();
                }
            }
        });
    }

    /// Forgets every session (later requests get 404) and ends their GET streams. Their
    /// subscriptions stay until a fault cannot reach them or the session monitor runs.
    pub fn expire_sessions(&self) {
        self.shared.update(|st| st.forget_all_sessions());
    }

    /// Starts one fault now: every live subscription gets it (faults mode: unless it had
    /// this faultId within the dedup window; events mode: if its filters match), and a
    /// subscription whose session has no GET stream attached is cancelled. Returns the
    /// faultId if at least one stream wrote it.
    pub fn emit_fault(&self, severity: &str, fault_type: &str) -> Option<String> {
        let sh = &self.shared;
        let cluster = sh.cluster_field().to_string();
        let spec = sh.update(|st| {
            let seq = st.fault_seq;
            st.fault_seq += 1;
            let base = FaultSpec::nth(&sh.name, &cluster, seq, sh.settings.distinct_faults);
            FaultSpec::with_type(
                &sh.name,
                &cluster,
                seq,
                base.condition,
                fault_type,
                severity,
            )
        });
        notify::deliver_fault(sh, &spec).then_some(spec.fault_id)
    }

    /// As [`emit_fault`](Self::emit_fault), for a Pod of the `api` Deployment that every
    /// simulated cluster runs: the same fault on each cluster it is emitted on.
    pub fn emit_fleet_fault(&self, severity: &str, fault_type: &str) -> Option<String> {
        let sh = &self.shared;
        let cluster = sh.cluster_field().to_string();
        let spec = sh.update(|st| {
            let seq = st.fleet_seq;
            st.fleet_seq += 1;
            FaultSpec::of_fleet_pod(&sh.name, &cluster, seq, fault_type, severity)
        });
        notify::deliver_fault(sh, &spec).then_some(spec.fault_id)
    }

    /// The live subscriptions, oldest first.
    pub fn subscriptions(&self) -> Vec<SimSubscription> {
        self.shared
            .lock()
            .subs
            .iter()
            .map(|s| SimSubscription {
                id: s.id.clone(),
                session: s.session.clone(),
                mode: s.mode.as_str().to_string(),
                degraded: s.degraded,
            })
            .collect()
    }

    /// Live subscriptions of session `session`.
    pub fn subscription_count(&self, session: &str) -> usize {
        self.shared.lock().subs.count_for(session)
    }

    /// Live subscriptions per session id.
    pub fn subscription_counts(&self) -> HashMap<String, usize> {
        let mut counts = HashMap::new();
        for s in self.shared.lock().subs.iter() {
            *counts.entry(s.session.clone()).or_insert(0) += 1;
        }
        counts
    }

    /// Ids of the sessions the server has now.
    pub fn sessions(&self) -> Vec<String> {
        let st = self.shared.lock();
        st.sessions.iter().map(|(id, _)| id.clone()).collect()
    }

    /// Cancels one subscription silently, as the server does when a delivery fails.
    pub fn cancel_subscription(&self, id: &str) -> bool {
        self.shared
            .update(|st| st.cancel_subscription(id, Cancelled::Control))
    }

    /// Cancels every subscription silently; returns how many there were.
    pub fn cancel_all_subscriptions(&self) -> usize {
        self.shared.update(|st| {
            let ids: Vec<String> = st.subs.iter().map(|s| s.id.clone()).collect();
            ids.iter()
                .filter(|id| st.cancel_subscription(id, Cancelled::Control))
                .count()
        })
    }

    /// Marks a subscription degraded and sends its `kubernetes/subscription_error`
    /// notification (level `warning`), as the fork does when a watch gives up.
    pub fn degrade_subscription(&self, id: &str) -> bool {
        let cluster = self.shared.cluster_field().to_string();
        self.shared.update(|st| notify::degrade(st, &cluster, id))
    }

    /// Cuts the GET stream of session `session` (socket shut, no terminating chunk); the
    /// session and its subscriptions stay. False if it had no stream.
    pub fn cut_stream(&self, session: &str) -> bool {
        self.shared.update(|st| st.cut_stream(session))
    }

    /// Sends one of the server's own errors (logger `kubernetes-mcp-server`, level
    /// `error`, a string `data`) to every session with a GET stream that logs errors.
    /// Returns how many streams it was queued on.
    pub fn emit_server_error(&self, message: &str) -> usize {
        self.shared.update(|st| {
            let json = super::faults::log_notification(
                "error",
                "kubernetes-mcp-server",
                serde_json::Value::String(message.to_string()),
            )
            .to_string();
            let mut queued = 0;
            for (_, s) in st.sessions.iter() {
                if let (true, Some(link)) = (s.logs("error"), &s.stream) {
                    let msg = StreamMsg::Emit {
                        json: json.clone(),
                        kind: Kind::ServerError,
                        subscription: None,
                        queued_at: Instant::now(),
                        ack: None,
                    };
                    queued += usize::from(link.ctl.send(msg));
                }
            }
            queued
        })
    }

    /// Simulates the server process dying: listener, sockets and sessions all go.
    pub fn stop_listening(&self) {
        self.shared.begin_shutdown(false);
        self.shared.finish_shutdown(Instant::now() + STOP_DEADLINE);
    }

    /// Listens again on the same port, like a fresh server process (no sessions).
    pub fn restart(&self) -> io::Result<()> {
        let st = self.shared.lock();
        if st.stopped {
            return Err(io::Error::other(format!(
                "simulated cluster {}: simulator stopped",
                self.shared.name
            )));
        }
        if st.listening.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("simulated cluster {}: already listening", self.shared.name),
            ));
        }
        drop(st);
        let listener = TcpListener::bind(("127.0.0.1", self.shared.port))?;
        self.shared.listen(listener)
    }

    pub fn stats(&self) -> SimStats {
        self.shared.lock().stats.clone()
    }

    /// Waits (on a condition variable) until `what` holds for the stats, or `timeout`.
    pub fn wait_for(&self, what: impl Fn(&SimStats) -> bool, timeout: Duration) -> bool {
        self.shared
            .wait_until(Instant::now() + timeout, |st| what(&st.stats))
    }
}

/// A live subscription as [`SimCluster::subscriptions`] reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimSubscription {
    pub id: String,
    /// The `Mcp-Session-Id` of the session that owns it.
    pub session: String,
    /// `faults` or `events`.
    pub mode: String,
    pub degraded: bool,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("name", &self.shared.name)
            .field("port", &self.shared.port)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use crate::sim::testkit::{quiet, start, Client, Mcp, WAIT};
    use crate::sim::{Behaviour, SimOptions, Simulator};
    use serde_json::json;
    use std::net::TcpStream;
    use std::time::{Duration, Instant};

    #[test]
    fn names_ports_and_endpoints_follow_the_options() {
        let sim = start(SimOptions {
            name_prefix: "edge".into(),
            ..quiet(2)
        });
        let c = sim.clusters();
        assert_eq!((c[0].name(), c[1].name()), ("edge-000", "edge-001"));
        assert_ne!(c[0].port(), c[1].port());
        assert_eq!(
            c[1].endpoint(),
            format!("http://127.0.0.1:{}/mcp", c[1].port())
        );
        sim.stop();
    }

    #[test]
    fn initial_behaviours_apply_by_index() {
        let sim = start(SimOptions {
            behaviours: vec![(1, Behaviour::Stall)],
            ..quiet(2)
        });
        assert_eq!(sim.clusters()[0].behaviour(), Behaviour::Normal);
        assert_eq!(sim.clusters()[1].behaviour(), Behaviour::Stall);
        sim.stop();
    }

    #[test]
    fn expired_sessions_answer_404_and_their_streams_end() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
        c.expire_sessions();
        assert!(stream.ends());
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}));
        assert_eq!(r.status, 404);
        assert!(c.wait_for(|s| s.get_streams_open == 0 && s.requests_404 == 1, WAIT));
        sim.stop();
    }

    #[test]
    fn dropped_connections_keep_their_sessions() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (m, mut stream) = Mcp::handshake(c, None, "faults");
        c.drop_connections();
        assert!(stream.client.is_closed());
        let mut fresh = m.resume(c);
        assert_eq!(fresh.rpc("ping", json!({}))["result"], json!({}));
        let mut again = fresh.open_stream();
        let id = c.emit_fault("warning", "NodeUnhealthy").expect("delivered");
        assert_eq!(again.next_fault()["faultId"], id.as_str());
        sim.stop();
    }

    #[test]
    fn stop_listening_then_restart_on_the_same_port_forgets_sessions() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (m, mut stream) = Mcp::handshake(c, None, "faults");
        let port = c.port();
        c.stop_listening();
        assert!(stream.client.is_closed());
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        assert_eq!(c.stats().get_streams_open, 0);
        c.restart().unwrap();
        assert_eq!(c.port(), port);
        assert!(c.restart().is_err(), "already listening");
        let mut old = m.resume(c);
        let r = old.post(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}));
        assert_eq!(r.status, 404);
        assert_eq!(c.stats().sessions_created, 1);
        let mut new = Mcp::initialize(c, None);
        assert_eq!(new.rpc("ping", json!({}))["result"], json!({}));
        sim.stop();
    }

    #[test]
    fn emit_fault_reaches_every_subscribed_stream() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let (_a, mut sa) = Mcp::handshake(c, None, "faults");
        let (_b, mut sb) = Mcp::handshake(c, None, "faults");
        let id = c
            .emit_fault("critical", "DeploymentFailure")
            .expect("delivered");
        assert_eq!(sa.next_fault()["faultId"], id.as_str());
        assert_eq!(sb.next_fault()["faultId"], id.as_str());
        assert!(c.wait_for(|s| s.faults_sent == 2, WAIT));
        sim.stop();
    }

    #[test]
    fn stop_is_prompt_with_connections_open() {
        let sim = start(SimOptions {
            rate_per_sec: 50.0,
            behaviours: vec![(1, Behaviour::Stall)],
            ..quiet(2)
        });
        let c = sim.clusters().to_vec();
        let (_m, _stream) = Mcp::handshake(&c[0], None, "faults");
        let mut idle = Client::connect(&c[0], None);
        idle.send("POST", "/mcp", &[], "{");
        let _ = idle.response();
        let mut stalled = Client::connect(&c[1], None);
        stalled.send("POST", "/mcp", &[], "{}");
        let _half_open = TcpStream::connect(("127.0.0.1", c[0].port())).unwrap();
        assert!(c[1].wait_for(|s| s.connections_accepted == 1, WAIT));
        assert!(c[0].wait_for(|s| s.connections_accepted == 4, WAIT));
        let began = Instant::now();
        sim.stop();
        assert!(
            began.elapsed() < Duration::from_secs(3),
            "{:?}",
            began.elapsed()
        );
        assert!(stalled.is_closed());
        assert!(TcpStream::connect(("127.0.0.1", c[0].port())).is_err());
        assert!(c[0].restart().is_err(), "a stopped simulator stays stopped");
    }

    #[test]
    fn twenty_clusters_start_serve_and_stop() {
        let sim = Simulator::start(SimOptions {
            rate_per_sec: 100.0,
            ..quiet(20)
        })
        .unwrap();
        let mut held = Vec::new();
        for c in sim.clusters() {
            let (m, mut stream) = Mcp::handshake(c, None, "faults");
            assert_eq!(stream.next_fault()["cluster"], c.name());
            held.push((m, stream));
        }
        for c in sim.clusters() {
            assert!(c.wait_for(|s| s.faults_sent >= 1 && s.get_streams_open == 1, WAIT));
        }
        let began = Instant::now();
        sim.stop();
        assert!(began.elapsed() < Duration::from_secs(3));
    }
}
