//! One cluster's MCP connection: the I/O driver around `McpSession`. It owns two HTTP
//! connections to the cluster's server — the control connection that carries the POSTs
//! (keep-alive) and the stream connection that holds the GET event stream — plus its
//! backoff and timers. The loop hands it readiness events, timer expiries and DNS answers
//! together with a `ConnectionContext` of the loop's shared parts.
//!
//! Every HTTP client it opens gets a generation, carried in its token: an event of a client
//! that was replaced (a `Connection: close` reply, a GET reopened after a 400) never reaches
//! its successor. Sockets come from a [`Dialer`], so the unit tests (`tests.rs`) drive the
//! whole connection over in-memory pipes with a fake clock.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::{Registry, Token};

use super::admission::ConnectAdmission;
use super::backoff::{seed_for, Backoff, BackoffPolicy};
use super::status::{ConnectionStatus, ErrorCounts, HealthSnapshot};
use crate::config::{ClusterConfig, Config, SubscribeMode};
use crate::events::{ClusterEvent, EventSink, FaultEvent, FaultView};
use crate::mcp::session::{McpSession, Output, Phase, PostKind, PostRequest, SessionError};
use crate::net::client::{ClientError, HttpClient, Progress, TlsTarget};
use crate::net::dns::Resolver;
use crate::net::http::{write_request, ResponseEvent};
use crate::net::sse::{SseEvent, SseParser};
use crate::net::tls::{self, TlsConfigs};
use crate::net::transport::ReadBuffers;
use crate::timer::{TimerId, TimerWheel};

mod connecting;
mod dialer;
mod failure;
mod gaps;
mod outputs;
mod receiving;
mod sending;
#[cfg(test)]
mod tests;

pub use dialer::{Dialer, TcpDialer};
use gaps::SubscriptionGaps;
pub use gaps::{GapCause, SubscriptionGap};

const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
const USER_AGENT: &str = concat!("nightcrier/", env!("CARGO_PKG_VERSION"));
/// Enough of an error body to name the cause in a log line.
const EXCERPT_BYTES: usize = 256;
/// Answers to the server's own requests (`ping`, unknown methods) that may wait at once; the
/// requests beyond are not answered, only counted. One POST is in flight at a time, so a
/// server flooding requests would otherwise grow this queue without bound.
pub const MAX_QUEUED_ANSWERS: usize = 8;
/// Largest answer sent; a request whose echoed `id` would make it larger is not answered.
pub const MAX_ANSWER_BYTES: usize = 1024;
/// Longest error message kept and logged for one failure (wire text, escaped).
const ERROR_MESSAGE_CHARS: usize = 300;

/// The settings every connection shares, taken from the global configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    pub mode: SubscribeMode,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub ping_interval: Duration,
    pub subscription_audit_interval: Duration,
    pub tcp_keepalive: Duration,
    /// Close the control connection after this long without a request; the next request
    /// (usually a ping) opens a new one, with TLS session resumption. An idle cluster then
    /// holds one socket, not two.
    pub control_idle_timeout: Duration,
    pub stable_after: Duration,
    pub max_event_bytes: usize,
    pub max_header_bytes: usize,
    pub backoff: BackoffPolicy,
    /// How long the loop waits for more fault events once they arrive faster than one per
    /// window (see `batch_window`); `None` reads each at once.
    pub batch_window: Option<Duration>,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> Self {
        ConnectionSettings {
            mode: config.subscribe_mode,
            connect_timeout: config.connection.connect_timeout,
            read_timeout: config.connection.read_timeout,
            ping_interval: config.connection.ping_interval,
            subscription_audit_interval: config.connection.subscription_audit_interval,
            tcp_keepalive: config.connection.tcp_keepalive,
            control_idle_timeout: config.connection.control_idle_timeout,
            stable_after: config.reconnect.stable_after,
            max_event_bytes: config.connection.max_event_bytes,
            max_header_bytes: config.connection.max_header_bytes,
            batch_window: config.connection.batch_window,
            backoff: BackoffPolicy {
                initial: config.reconnect.initial,
                max: config.reconnect.max,
                multiplier: config.reconnect.multiplier,
                jitter: config.reconnect.jitter,
            },
        }
    }
}

/// A connection's place in the manager's slab. The generation makes events and timers of a
/// removed cluster harmless to the cluster that later takes its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotKey {
    pub index: u32,
    pub generation: u32,
}

pub use crate::token::Channel;
use crate::token::CLIENT_GENERATION_MASK;

/// What a socket token names (see [`crate::token`]).
pub type TokenParts = crate::token::ConnectionToken;

impl SlotKey {
    pub fn token(self, channel: Channel, client_generation: u32) -> Token {
        crate::token::connection(self.index, self.generation, channel, client_generation)
    }

    /// Inverse of `token`; the slot generation comes back truncated, so compare with
    /// `matches_generation`. `None` for a token that is not a connection's.
    pub fn from_token(token: Token) -> Option<TokenParts> {
        match crate::token::owner(token) {
            crate::token::Owner::Connection(parts) => Some(parts),
            _ => None,
        }
    }

    pub fn matches_generation(self, truncated: u32) -> bool {
        crate::token::slot_generation_matches(self.generation, truncated)
    }

    fn dns_key(self) -> u64 {
        crate::token::connection_dns_key(self.index, self.generation)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimerKind {
    /// Backoff over: connect again (or reopen the stream).
    Retry,
    /// A reply to a POST or DELETE is overdue.
    Request,
    /// The GET stream has not answered.
    StreamOpen,
    /// Time to ping.
    Ping,
    /// The session stayed active long enough to forget past failures.
    Stable,
    /// TCP/TLS connect is overdue.
    Connect,
    /// The control connection has been idle long enough to close it.
    ControlIdle,
    /// Subscribe again after the server reported a broken subscription.
    Resubscribe,
    /// Time to check that the server still holds our subscription.
    Audit,
    /// An event on the GET stream started and has not ended: the stream is stalled.
    EventStall,
}

const TIMER_KINDS: usize = 10;

impl TimerKind {
    fn slot(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerKey {
    pub slot: SlotKey,
    pub kind: TimerKind,
}

/// The loop's shared parts, lent to a connection for one call.
pub struct ConnectionContext<'a> {
    pub now: Instant,
    pub registry: &'a Registry,
    pub timers: &'a mut TimerWheel<TimerKey>,
    pub resolver: &'a Resolver,
    pub tls: &'a mut TlsConfigs,
    pub inbound: &'a mut ReadBuffers,
    pub sink: &'a mut dyn EventSink,
    pub settings: &'a ConnectionSettings,
    pub admission: &'a mut ConnectAdmission,
    /// Opens the sockets: TCP in the daemon, in-memory pipes in unit tests.
    pub dialer: &'a dyn Dialer,
    /// Set when any connection changed status, so the loop publishes a fresh snapshot.
    pub changed: bool,
}

enum Outgoing {
    Post(PostRequest),
    /// End our session (shutdown).
    Delete,
    /// End a session a new one replaced, so the server drops its subscriptions.
    DeleteStale(String),
}

/// What the request on the control connection is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Request {
    Post(PostKind),
    Delete,
    DeleteStale(String),
}

impl Request {
    fn post_kind(&self) -> Option<PostKind> {
        match self {
            Request::Post(kind) => Some(*kind),
            _ => None,
        }
    }

    fn phase(&self) -> &'static str {
        match self {
            Request::Post(kind) => kind.phase(),
            Request::Delete | Request::DeleteStale(_) => "stream",
        }
    }
}

enum ReplyBody {
    Events(SseParser),
    Json(Vec<u8>),
    Excerpt(Vec<u8>),
}

struct InFlight {
    request: Request,
    status: u16,
    body: ReplyBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryScope {
    Full,
    Stream,
}

/// The GET event stream's phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamPhase {
    /// No GET (or its client is gone).
    Closed,
    /// The GET is sent; no head yet.
    Opening { last_event_id_sent: bool },
    /// 200 `text/event-stream`: events flow.
    Open,
}

/// Whether the connection runs, is closing its session, or is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lifecycle {
    Running,
    ShuttingDown,
    Closed,
}

/// One HTTP client and its generation.
struct Client {
    http: HttpClient,
    generation: u32,
}

/// Sessions a new one replaced, kept until their DELETE is answered; bounded.
const MAX_STALE_SESSIONS: usize = 8;
/// DELETEs of one replaced session that may fail before it is given up.
const MAX_STALE_DELETE_ATTEMPTS: u8 = 5;

/// A session a new one replaced, to be ended on the server.
struct StaleSession {
    id: String,
    failed_attempts: u8,
}

#[derive(Default)]
struct Stats {
    connected_since: Option<SystemTime>,
    last_event: Option<Instant>,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    retry_at: Option<Instant>,
    event_count: u64,
    reconnects: u64,
    stream_gaps: u64,
    malformed: u64,
    ignored: u64,
    server_logs: u64,
    subscription_renewals: u64,
    /// Requests of the server left unanswered (beyond `MAX_QUEUED_ANSWERS`).
    answers_dropped: u64,
    /// Events on the GET stream that started and did not end within the read timeout.
    stalls: u64,
    /// When the server last created our current subscription.
    subscription_since: Option<SystemTime>,
    gaps: SubscriptionGaps,
    errors: ErrorCounts,
}

pub struct ClusterConnection {
    config: Arc<ClusterConfig>,
    key: SlotKey,
    status: ConnectionStatus,
    session: McpSession,
    /// The address the control connection is (being) opened to: one of `candidates`.
    addr: Option<SocketAddr>,
    /// Every address the last lookup gave, tried in turn when a connect fails.
    candidates: Vec<SocketAddr>,
    candidate: usize,
    control: Option<Client>,
    stream: Option<Client>,
    /// The generation the next client of each channel gets.
    next_generation: u32,
    stream_sse: SseParser,
    stream_phase: StreamPhase,
    queue: VecDeque<Outgoing>,
    in_flight: Option<InFlight>,
    stale_sessions: Vec<StaleSession>,
    backoff: Backoff,
    retry_scope: RetryScope,
    timers: [Option<TimerId>; TIMER_KINDS],
    degraded: bool,
    lifecycle: Lifecycle,
    tried: bool,
    stats: Stats,
    /// Bounds this cluster's wire-caused log lines (junk, server logs, drops).
    log_budget: crate::logging::LogBudget,
}

/// What happened to a connection's status in one call, for the manager's bookkeeping.
pub type Transition = Option<(ConnectionStatus, ConnectionStatus)>;

impl ClusterConnection {
    pub fn new(config: Arc<ClusterConfig>, key: SlotKey, settings: &ConnectionSettings) -> Self {
        ClusterConnection {
            session: McpSession::new(settings.mode, CLIENT_VERSION),
            stream_sse: SseParser::new(settings.max_event_bytes),
            backoff: Backoff::new(settings.backoff.clone(), seed_for(&config.name)),
            config,
            key,
            status: ConnectionStatus::Disconnected,
            addr: None,
            candidates: Vec::new(),
            candidate: 0,
            control: None,
            stream: None,
            next_generation: 0,
            stream_phase: StreamPhase::Closed,
            queue: VecDeque::new(),
            in_flight: None,
            stale_sessions: Vec::new(),
            retry_scope: RetryScope::Full,
            timers: [None; TIMER_KINDS],
            degraded: false,
            lifecycle: Lifecycle::Running,
            tried: false,
            stats: Stats::default(),
            log_budget: crate::logging::LogBudget::default(),
        }
    }

    pub fn name(&self) -> &str {
        &self.config.name
    }
    pub fn config(&self) -> &Arc<ClusterConfig> {
        &self.config
    }
    pub fn status(&self) -> ConnectionStatus {
        self.status
    }
    pub fn is_closed(&self) -> bool {
        self.lifecycle == Lifecycle::Closed
    }

    fn running(&self) -> bool {
        self.lifecycle == Lifecycle::Running
    }

    fn client(&self, channel: Channel) -> Option<&Client> {
        match channel {
            Channel::Control => self.control.as_ref(),
            Channel::Stream => self.stream.as_ref(),
        }
    }

    /// Applies configuration changes that need no reconnect (labels, triage, severity…).
    pub fn update_config(&mut self, config: Arc<ClusterConfig>) {
        self.config = config;
    }

    /// First connect: waits for admission like every connect does.
    pub fn start(&mut self, ctx: &mut ConnectionContext) {
        self.retry_scope = RetryScope::Full;
        ctx.admission.request(self.config.priority, self.key);
    }

    /// Admission let this connection's connect through.
    pub fn on_admitted(&mut self, ctx: &mut ConnectionContext) {
        if self.running() {
            self.connect(ctx);
        }
    }

    pub fn on_resolved(
        &mut self,
        ctx: &mut ConnectionContext,
        result: io::Result<Vec<SocketAddr>>,
    ) {
        if !self.running() || self.status != ConnectionStatus::Connecting {
            return;
        }
        let addrs = match result {
            Ok(addrs) => addrs,
            Err(e) => return self.fail(ctx, "connecting", format!("resolve: {e}"), false),
        };
        if addrs.is_empty() {
            return self.fail(ctx, "connecting", "resolve: no address".into(), false);
        }
        self.candidates = addrs;
        // The Connect deadline armed when resolving began covers the first address too.
        self.dial_from(ctx, 0);
    }

    /// Opens the control connection to the first address from `from` on that accepts the
    /// dial, then starts the session on it.
    pub(super) fn dial_from(&mut self, ctx: &mut ConnectionContext, from: usize) {
        let mut last_error = None;
        for index in from..self.candidates.len() {
            self.candidate = index;
            self.addr = Some(self.candidates[index]);
            match self.open_client(ctx, Channel::Control) {
                Ok(client) => {
                    self.control = Some(client);
                    last_error = None;
                    break;
                }
                Err(e) => {
                    log::debug!(
                        "cluster={} connect to {} failed: {e}",
                        self.config.name,
                        self.candidates[index]
                    );
                    last_error = Some(e);
                }
            }
        }
        if let Some(e) = last_error {
            return self.fail(ctx, e.phase(), e.to_string(), false);
        }
        self.begin_session(ctx);
    }

    /// True (and the next address dialled, under a fresh connect deadline) if the control
    /// connection has not opened yet and the lookup gave another address to try.
    pub(super) fn try_next_address(&mut self, ctx: &mut ConnectionContext) -> bool {
        let unopened = self.status == ConnectionStatus::Connecting
            && self.control.as_ref().is_some_and(|c| !c.http.is_open());
        if !unopened || self.candidate + 1 >= self.candidates.len() {
            return false;
        }
        if let Some(control) = self.control.take() {
            control.http.close(ctx.registry);
        }
        self.in_flight = None;
        self.disarm(ctx, TimerKind::Request);
        log::debug!(
            "cluster={} no connection to {}; trying {}",
            self.config.name,
            self.candidates[self.candidate],
            self.candidates[self.candidate + 1]
        );
        self.arm(ctx, TimerKind::Connect, ctx.settings.connect_timeout);
        self.dial_from(ctx, self.candidate + 1);
        true
    }

    fn begin_session(&mut self, ctx: &mut ConnectionContext) {
        self.session = McpSession::new(ctx.settings.mode, CLIENT_VERSION);
        let initialize = self.session.start();
        self.queue.clear();
        // Sessions this one replaces are ended first, so the server never accumulates our
        // subscriptions (it keeps a session's subscriptions until the session is gone).
        for stale in &self.stale_sessions {
            self.queue
                .push_back(Outgoing::DeleteStale(stale.id.clone()));
        }
        self.queue.push_back(Outgoing::Post(initialize));
        self.send_next(ctx);
    }

    /// Handles one readiness event of the client `client_generation` (from the token),
    /// reading at most one read budget. Returns true when bytes are still waiting: the loop
    /// comes back to this socket after serving the others, so a fire-hose server cannot
    /// starve the rest (the socket is edge-triggered, so no new event would come for those
    /// bytes).
    pub fn on_ready(
        &mut self,
        ctx: &mut ConnectionContext,
        channel: Channel,
        client_generation: u32,
    ) -> bool {
        let Some(generation) = self.client(channel).map(|c| c.generation) else {
            return false;
        };
        if generation & CLIENT_GENERATION_MASK != client_generation & CLIENT_GENERATION_MASK {
            // An event of a client this channel no longer has.
            return false;
        }
        let client = match channel {
            Channel::Control => self.control.as_mut(),
            Channel::Stream => self.stream.as_mut(),
        };
        let Some(client) = client else { return false };
        let mut events = std::mem::take(&mut ctx.inbound.responses);
        events.clear();
        let was_open = client.http.is_open();
        let progress = client.http.on_ready(ctx.inbound, &mut events);
        let now_open = client.http.is_open();
        if channel == Channel::Control && !was_open && now_open {
            self.disarm(ctx, TimerKind::Connect);
            log::debug!("cluster={} control connection open", self.config.name);
        }
        let progress = match progress {
            Ok(progress) => progress,
            Err(e) => {
                ctx.inbound.responses = events;
                self.on_client_error(ctx, channel, e);
                return false;
            }
        };
        let inbound = std::mem::take(&mut ctx.inbound.plaintext);
        let same_client =
            |this: &Self| this.client(channel).map(|c| c.generation) == Some(generation);
        for event in events.drain(..) {
            match channel {
                Channel::Control => self.on_control_event(ctx, event, &inbound),
                Channel::Stream => self.on_stream_event(ctx, event, &inbound),
            }
            // What the client read after a reply that closed or replaced it belongs to the
            // old client, never to its successor.
            if self.status == ConnectionStatus::Failed || !same_client(self) {
                break;
            }
        }
        ctx.inbound.plaintext = inbound;
        events.clear();
        ctx.inbound.responses = events;
        if self.status == ConnectionStatus::Failed || !same_client(self) {
            return false;
        }
        match progress {
            Progress::Open { more } => more,
            Progress::Closed => {
                self.on_closed(ctx, channel);
                false
            }
            Progress::Connecting => false,
        }
    }

    pub fn on_timer(&mut self, ctx: &mut ConnectionContext, kind: TimerKind) {
        self.timers[kind.slot()] = None;
        match kind {
            TimerKind::Retry => {
                self.stats.retry_at = None;
                if !self.running() {
                    return;
                }
                if self.status == ConnectionStatus::Failed {
                    self.stats.reconnects += 1;
                }
                match (self.retry_scope, self.addr) {
                    (RetryScope::Stream, Some(_)) if self.session.session_id().is_some() => {
                        self.open_stream(ctx)
                    }
                    _ => ctx.admission.request(self.config.priority, self.key),
                }
            }
            TimerKind::Request => {
                let request = self.in_flight.as_ref().map(|f| f.request.clone());
                if !self.running() {
                    return self.finish_shutdown(ctx);
                }
                if let Some(Request::DeleteStale(id)) = request {
                    // Best effort: the new session must not wait for a server that does
                    // not answer a DELETE.
                    log::debug!(
                        "cluster={} DELETE of a replaced session not answered",
                        self.config.name
                    );
                    return self.abandon_stale_delete(ctx, &id);
                }
                let what = request.as_ref().map_or("stream", Request::phase);
                self.fail(
                    ctx,
                    what,
                    format!("no reply within {:?}", ctx.settings.read_timeout),
                    false,
                )
            }
            TimerKind::StreamOpen => self.fail(
                ctx,
                "stream",
                format!(
                    "GET stream not answered within {:?}",
                    ctx.settings.read_timeout
                ),
                false,
            ),
            TimerKind::Connect => {
                if self.try_next_address(ctx) {
                    return;
                }
                self.fail(
                    ctx,
                    "connecting",
                    format!("not connected within {:?}", ctx.settings.connect_timeout),
                    false,
                )
            }
            TimerKind::Ping => {
                if let Some(ping) = self.session.ping() {
                    self.queue.push_back(Outgoing::Post(ping));
                    self.send_next(ctx);
                } else if self.status == ConnectionStatus::Active {
                    // Something else is in flight; its own timeout covers liveness.
                    self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
                }
            }
            TimerKind::ControlIdle => {
                if self.in_flight.is_none() && self.queue.is_empty() {
                    if let Some(control) = self.control.take() {
                        control.http.close(ctx.registry);
                        log::trace!(
                            "cluster={} idle control connection closed",
                            self.config.name
                        );
                    }
                }
            }
            TimerKind::Resubscribe => match self.session.resubscribe() {
                Some(subscribe) => {
                    self.queue.push_back(Outgoing::Post(subscribe));
                    self.send_next(ctx);
                }
                None if self.status == ConnectionStatus::Active => {
                    let delay = self.backoff.next_delay();
                    self.arm(ctx, TimerKind::Resubscribe, delay);
                }
                None => {}
            },
            TimerKind::Audit => {
                // `None`: a subscribe or an audit is in flight; its answer re-arms the audit.
                if let Some(audit) = self.session.audit() {
                    self.queue.push_back(Outgoing::Post(audit));
                    self.send_next(ctx);
                }
            }
            TimerKind::EventStall => {
                if self.stream_phase == StreamPhase::Open && self.stream_sse.in_event() {
                    self.stats.stalls += 1;
                    log::warn!(
                        "cluster={} event stream stalled: an event started and did not end within {:?}; reopening the stream",
                        self.config.name,
                        ctx.settings.read_timeout
                    );
                    self.on_closed(ctx, Channel::Stream);
                }
            }
            TimerKind::Stable => {
                self.backoff.reset();
                log::debug!("cluster={} session stable, backoff reset", self.config.name);
            }
        }
    }

    /// Graceful close: end the stream, DELETE the session, then close. `is_closed` turns
    /// true when done; the caller bounds the wait.
    pub fn begin_shutdown(&mut self, ctx: &mut ConnectionContext) {
        if !self.running() {
            return;
        }
        self.lifecycle = Lifecycle::ShuttingDown;
        for kind in [
            TimerKind::Retry,
            TimerKind::Ping,
            TimerKind::Stable,
            TimerKind::StreamOpen,
            TimerKind::Resubscribe,
            TimerKind::Audit,
            TimerKind::EventStall,
        ] {
            self.disarm(ctx, kind);
        }
        if let Some(stream) = self.stream.take() {
            stream.http.close(ctx.registry);
        }
        // A control connection the server closed is reopened by `send_next`.
        let can_delete = self.session.session_id().is_some()
            && self.addr.is_some()
            && !matches!(
                self.status,
                ConnectionStatus::Failed | ConnectionStatus::Connecting
            );
        if can_delete {
            self.queue.clear();
            for stale in &self.stale_sessions {
                self.queue
                    .push_back(Outgoing::DeleteStale(stale.id.clone()));
            }
            self.queue.push_back(Outgoing::Delete);
            if self.in_flight.is_none() {
                self.send_next(ctx);
            }
        } else {
            self.finish_shutdown(ctx);
        }
    }

    /// Immediate teardown: sockets closed, timers cancelled.
    pub fn close(&mut self, ctx: &mut ConnectionContext) {
        self.close_channels(ctx);
        for index in 0..TIMER_KINDS {
            if let Some(id) = self.timers[index].take() {
                ctx.timers.cancel(id);
            }
        }
        self.lifecycle = Lifecycle::Closed;
        self.set_status(ctx, ConnectionStatus::Disconnected);
    }

    pub fn snapshot(&self, now: Instant) -> HealthSnapshot {
        HealthSnapshot {
            name: self.config.name.clone(),
            environment: self.config.environment.clone(),
            labels: self.config.labels.clone(),
            triage_enabled: self.config.triage_ready(),
            status: self.status,
            tried: self.tried,
            degraded: self.degraded,
            connected_since: self.stats.connected_since,
            last_event: self.stats.last_event.map(|at| {
                let ago = now.saturating_duration_since(at);
                SystemTime::now()
                    .checked_sub(ago)
                    .unwrap_or(SystemTime::UNIX_EPOCH)
            }),
            last_error: self.stats.last_error.clone(),
            last_error_at: self.stats.last_error_at,
            retry_count: self.backoff.attempts(),
            retry_in: self
                .stats
                .retry_at
                .map(|at| at.saturating_duration_since(now)),
            event_count: self.stats.event_count,
            reconnects: self.stats.reconnects,
            stream_gaps: self.stats.stream_gaps,
            malformed_messages: self.stats.malformed,
            ignored_messages: self.stats.ignored,
            errors: self.stats.errors.clone(),
            protocol_version: self.session.protocol_version().map(str::to_owned),
            subscription_id: self.session.subscription_id().map(str::to_owned),
            subscription_since: self.stats.subscription_since,
            subscription_renewals: self.stats.subscription_renewals,
            subscription_gaps: self.stats.gaps.to_vec(),
            subscription_gaps_total: self.stats.gaps.total(),
            server_log_messages: self.stats.server_logs,
        }
    }
}

/// Status implied by the session's phase while no error has occurred.
pub fn status_for_phase(phase: Phase) -> ConnectionStatus {
    match phase {
        Phase::Initializing => ConnectionStatus::Connecting,
        Phase::Initialized | Phase::SettingLevel => ConnectionStatus::Connected,
        Phase::OpeningStream | Phase::Subscribing => ConnectionStatus::Subscribing,
        Phase::Active => ConnectionStatus::Active,
    }
}
