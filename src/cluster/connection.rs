//! One cluster's MCP connection: the I/O driver around `McpSession`. It owns two HTTP
//! connections to the cluster's server — the control connection that carries the POSTs
//! (keep-alive) and the stream connection that holds the GET event stream — plus its
//! backoff and timers. The loop hands it readiness events, timer expiries and DNS answers
//! together with a `ConnectionContext` of the loop's shared parts.

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
use crate::events::{ClusterEvent, EventSink};
use crate::mcp::session::{McpSession, Output, Phase, PostKind, PostRequest, SessionError};
use crate::net::client::{ClientError, HttpClient, Progress, TlsTarget};
use crate::net::dns::Resolver;
use crate::net::http::{write_request, ResponseEvent};
use crate::net::sse::{SseEvent, SseParser};
use crate::net::tls::{self, TlsConfigs};
use crate::timer::{TimerId, TimerWheel};

const CLIENT_VERSION: &str = env!("CARGO_PKG_VERSION");
const USER_AGENT: &str = concat!("nightcrier/", env!("CARGO_PKG_VERSION"));
/// Enough of an error body to name the cause in a log line.
const EXCERPT_BYTES: usize = 256;

/// The settings every connection shares, taken from the global configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    pub mode: SubscribeMode,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub ping_interval: Duration,
    pub tcp_keepalive: Duration,
    /// Close the control connection after this long without a request; the next request
    /// (usually a ping) opens a new one, with TLS session resumption. An idle cluster then
    /// holds one socket, not two.
    pub control_idle_timeout: Duration,
    pub stable_after: Duration,
    pub max_event_bytes: usize,
    pub max_header_bytes: usize,
    pub backoff: BackoffPolicy,
}

impl ConnectionSettings {
    pub fn from_config(config: &Config) -> Self {
        ConnectionSettings {
            mode: config.subscribe_mode,
            connect_timeout: config.connection.connect_timeout,
            read_timeout: config.connection.read_timeout,
            ping_interval: config.connection.ping_interval,
            tcp_keepalive: config.connection.tcp_keepalive,
            control_idle_timeout: config.connection.control_idle_timeout,
            stable_after: config.reconnect.stable_after,
            max_event_bytes: config.connection.max_event_bytes,
            max_header_bytes: config.connection.max_header_bytes,
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Control,
    Stream,
}

impl SlotKey {
    pub fn token(self, channel: Channel) -> Token {
        let code = match channel {
            Channel::Control => 0,
            Channel::Stream => 1,
        };
        Token(((self.index as usize) << 32) | ((self.generation as usize & 0xff_ffff) << 8) | code)
    }

    /// Inverse of `token`; the generation comes back truncated to 24 bits, so compare with
    /// `matches_token`.
    pub fn from_token(token: Token) -> Option<(u32, u32, Channel)> {
        let raw = token.0;
        let channel = match raw & 0xff {
            0 => Channel::Control,
            1 => Channel::Stream,
            _ => return None,
        };
        Some(((raw >> 32) as u32, ((raw >> 8) & 0xff_ffff) as u32, channel))
    }

    pub fn matches_generation(self, truncated: u32) -> bool {
        self.generation & 0xff_ffff == truncated
    }

    fn dns_key(self) -> u64 {
        (u64::from(self.index) << 32) | u64::from(self.generation)
    }

    pub fn from_dns_key(key: u64) -> SlotKey {
        SlotKey {
            index: (key >> 32) as u32,
            generation: key as u32,
        }
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
}

const TIMER_KINDS: usize = 7;

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
    pub inbound: &'a mut Vec<u8>,
    pub sink: &'a mut dyn EventSink,
    pub settings: &'a ConnectionSettings,
    pub admission: &'a mut ConnectAdmission,
    /// Set when any connection changed status, so the loop publishes a fresh snapshot.
    pub changed: bool,
}

enum Outgoing {
    Post(PostRequest),
    Delete,
}

enum ReplyBody {
    Events(SseParser),
    Json(Vec<u8>),
    Excerpt(Vec<u8>),
}

struct InFlight {
    kind: Option<PostKind>,
    status: u16,
    body: ReplyBody,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RetryScope {
    Full,
    Stream,
}

#[derive(Default)]
struct Stats {
    connected_since: Option<SystemTime>,
    last_event: Option<SystemTime>,
    last_error: Option<String>,
    last_error_at: Option<SystemTime>,
    retry_at: Option<Instant>,
    event_count: u64,
    reconnects: u64,
    stream_gaps: u64,
    malformed: u64,
    ignored: u64,
    errors: ErrorCounts,
}

pub struct ClusterConnection {
    config: Arc<ClusterConfig>,
    key: SlotKey,
    status: ConnectionStatus,
    session: McpSession,
    addr: Option<SocketAddr>,
    control: Option<HttpClient>,
    stream: Option<HttpClient>,
    stream_sse: SseParser,
    stream_open: bool,
    sent_last_event_id: bool,
    queue: VecDeque<Outgoing>,
    in_flight: Option<InFlight>,
    backoff: Backoff,
    retry_scope: RetryScope,
    timers: [Option<TimerId>; TIMER_KINDS],
    degraded: bool,
    shutting_down: bool,
    closed: bool,
    tried: bool,
    stats: Stats,
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
            control: None,
            stream: None,
            stream_open: false,
            sent_last_event_id: false,
            queue: VecDeque::new(),
            in_flight: None,
            retry_scope: RetryScope::Full,
            timers: [None; TIMER_KINDS],
            degraded: false,
            shutting_down: false,
            closed: false,
            tried: false,
            stats: Stats::default(),
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
    pub fn key(&self) -> SlotKey {
        self.key
    }
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Applies configuration changes that need no reconnect (labels, triage, severity…).
    pub fn update_config(&mut self, config: Arc<ClusterConfig>) {
        self.config = config;
    }

    /// First connect, after `delay` (used to spread a fleet's first connects).
    /// First connect: waits for admission like every connect does.
    pub fn start(&mut self, ctx: &mut ConnectionContext) {
        self.retry_scope = RetryScope::Full;
        ctx.admission.request(self.config.priority, self.key);
    }

    /// Admission let this connection's connect through.
    pub fn on_admitted(&mut self, ctx: &mut ConnectionContext) {
        if !self.shutting_down && !self.closed {
            self.connect(ctx);
        }
    }

    pub fn on_resolved(
        &mut self,
        ctx: &mut ConnectionContext,
        result: io::Result<Vec<SocketAddr>>,
    ) {
        if self.shutting_down || self.status != ConnectionStatus::Connecting {
            return;
        }
        let addr = match result {
            Ok(addrs) => addrs.into_iter().next(),
            Err(e) => return self.fail(ctx, "connecting", format!("resolve: {e}"), false),
        };
        let Some(addr) = addr else {
            return self.fail(ctx, "connecting", "resolve: no address".into(), false);
        };
        self.addr = Some(addr);
        match self.open_client(ctx, Channel::Control) {
            Ok(client) => self.control = Some(client),
            Err(e) => return self.fail(ctx, e.phase(), e.to_string(), false),
        }
        self.arm(ctx, TimerKind::Connect, ctx.settings.connect_timeout);
        self.session = McpSession::new(ctx.settings.mode, CLIENT_VERSION);
        let initialize = self.session.start();
        self.queue.clear();
        self.queue.push_back(Outgoing::Post(initialize));
        self.send_next(ctx);
    }

    pub fn on_ready(&mut self, ctx: &mut ConnectionContext, channel: Channel) {
        let mut events = Vec::new();
        loop {
            events.clear();
            let client = match channel {
                Channel::Control => self.control.as_mut(),
                Channel::Stream => self.stream.as_mut(),
            };
            let Some(client) = client else { return };
            let was_open = client.is_open();
            let progress = client.on_ready(ctx.inbound, &mut events);
            let now_open = client.is_open();
            if channel == Channel::Control && !was_open && now_open {
                self.disarm(ctx, TimerKind::Connect);
                log::debug!("cluster={} control connection open", self.config.name);
            }
            let progress = match progress {
                Ok(progress) => progress,
                Err(e) => return self.on_client_error(ctx, channel, e),
            };
            let inbound = std::mem::take(ctx.inbound);
            let generation_before = (self.control.is_some(), self.stream.is_some());
            for event in events.drain(..) {
                match channel {
                    Channel::Control => self.on_control_event(ctx, event, &inbound),
                    Channel::Stream => self.on_stream_event(ctx, event, &inbound),
                }
                if self.status == ConnectionStatus::Failed {
                    break;
                }
            }
            *ctx.inbound = inbound;
            if self.status == ConnectionStatus::Failed
                || generation_before != (self.control.is_some(), self.stream.is_some())
            {
                return;
            }
            match progress {
                Progress::Open { more: true } => continue,
                Progress::Closed => return self.on_closed(ctx, channel),
                Progress::Connecting | Progress::Open { more: false } => return,
            }
        }
    }

    pub fn on_timer(&mut self, ctx: &mut ConnectionContext, kind: TimerKind) {
        self.timers[kind.slot()] = None;
        match kind {
            TimerKind::Retry => {
                self.stats.retry_at = None;
                if self.shutting_down {
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
                let what = self
                    .in_flight
                    .as_ref()
                    .and_then(|f| f.kind)
                    .map(PostKind::phase)
                    .unwrap_or("shutdown");
                if self.shutting_down {
                    return self.finish_shutdown(ctx);
                }
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
            TimerKind::Connect => self.fail(
                ctx,
                "connecting",
                format!("not connected within {:?}", ctx.settings.connect_timeout),
                false,
            ),
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
                        control.close(ctx.registry);
                        log::trace!(
                            "cluster={} idle control connection closed",
                            self.config.name
                        );
                    }
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
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for kind in [
            TimerKind::Retry,
            TimerKind::Ping,
            TimerKind::Stable,
            TimerKind::StreamOpen,
        ] {
            self.disarm(ctx, kind);
        }
        if let Some(stream) = self.stream.take() {
            stream.close(ctx.registry);
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
        self.closed = true;
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
            last_event: self.stats.last_event,
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
        }
    }

    // ---- connecting -------------------------------------------------------------------

    fn connect(&mut self, ctx: &mut ConnectionContext) {
        self.close_channels(ctx);
        self.set_status(ctx, ConnectionStatus::Connecting);
        self.retry_scope = RetryScope::Full;
        let endpoint = &self.config.mcp.endpoint;
        if let Some(result) =
            ctx.resolver
                .resolve(self.key.dns_key(), &endpoint.host, endpoint.port)
        {
            self.on_resolved(ctx, result);
        }
    }

    fn open_client(
        &self,
        ctx: &mut ConnectionContext,
        channel: Channel,
    ) -> Result<HttpClient, ClientError> {
        let Some(addr) = self.addr else {
            return Err(ClientError::Connect(io::Error::other(
                "no resolved address",
            )));
        };
        let mcp = &self.config.mcp;
        let tls = if mcp.endpoint.tls {
            if mcp.insecure_skip_tls_verify {
                log::warn!(
                    "cluster={} TLS certificate verification is OFF (insecure_skip_tls_verify)",
                    self.config.name
                );
            }
            let config = ctx
                .tls
                .get(mcp.ca_file.as_deref(), mcp.insecure_skip_tls_verify)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            let name = tls::server_name(&mcp.endpoint.host)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
            Some(TlsTarget { config, name })
        } else {
            None
        };
        let max_body = match channel {
            Channel::Control => Some(ctx.settings.max_event_bytes),
            Channel::Stream => None,
        };
        HttpClient::open(
            ctx.registry,
            self.key.token(channel),
            addr,
            tls,
            ctx.settings.tcp_keepalive,
            ctx.settings.max_header_bytes,
            max_body,
        )
    }

    fn open_stream(&mut self, ctx: &mut ConnectionContext) {
        if let Some(old) = self.stream.take() {
            old.close(ctx.registry);
        }
        let mut client = match self.open_client(ctx, Channel::Stream) {
            Ok(client) => client,
            Err(e) => return self.fail(ctx, e.phase(), e.to_string(), false),
        };
        self.stream_sse.reset_stream();
        self.stream_open = false;
        let last_event_id = self.stream_sse.last_event_id().map(str::to_owned);
        self.sent_last_event_id = last_event_id.is_some();
        let mut headers = self.session_headers();
        headers.push(("Accept", "text/event-stream".to_owned()));
        headers.push(("Cache-Control", "no-cache".to_owned()));
        if let Some(id) = last_event_id {
            headers.push(("Last-Event-ID", id));
        }
        let mut bytes = Vec::new();
        self.write_http(&mut bytes, "GET", &headers, None);
        client.queue(&bytes);
        if let Err(e) = client.flush() {
            return self.fail(ctx, e.phase(), e.to_string(), false);
        }
        self.stream = Some(client);
        if self.status != ConnectionStatus::Active {
            self.set_status(ctx, ConnectionStatus::Subscribing);
        }
        self.arm(
            ctx,
            TimerKind::StreamOpen,
            ctx.settings.connect_timeout + ctx.settings.read_timeout,
        );
    }

    // ---- sending ----------------------------------------------------------------------

    fn send_next(&mut self, ctx: &mut ConnectionContext) {
        if self.in_flight.is_some() {
            return;
        }
        if self.queue.is_empty() {
            if self.control.is_some() && self.status == ConnectionStatus::Active {
                self.arm(
                    ctx,
                    TimerKind::ControlIdle,
                    ctx.settings.control_idle_timeout,
                );
            }
            return;
        }
        self.disarm(ctx, TimerKind::ControlIdle);
        if self.control.is_none() {
            // The server closed the keep-alive connection; open a new one for this request.
            match self.open_client(ctx, Channel::Control) {
                Ok(client) => self.control = Some(client),
                Err(e) => return self.fail(ctx, e.phase(), e.to_string(), false),
            }
            self.arm(ctx, TimerKind::Connect, ctx.settings.connect_timeout);
        }
        let Some(outgoing) = self.queue.pop_front() else {
            return;
        };
        let mut headers = self.session_headers();
        let mut bytes = Vec::new();
        let kind = match &outgoing {
            Outgoing::Post(request) => {
                headers.push(("Content-Type", "application/json".to_owned()));
                headers.push(("Accept", "application/json, text/event-stream".to_owned()));
                self.write_http(&mut bytes, "POST", &headers, Some(&request.body));
                Some(request.kind)
            }
            Outgoing::Delete => {
                headers.push(("Accept", "application/json, text/event-stream".to_owned()));
                self.write_http(&mut bytes, "DELETE", &headers, None);
                None
            }
        };
        self.in_flight = Some(InFlight {
            kind,
            status: 0,
            body: ReplyBody::Excerpt(Vec::new()),
        });
        self.arm(ctx, TimerKind::Request, ctx.settings.read_timeout);
        let Some(control) = self.control.as_mut() else {
            return;
        };
        control.queue(&bytes);
        if let Err(e) = control.flush() {
            self.on_client_error(ctx, Channel::Control, e);
        }
    }

    fn session_headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![("User-Agent", USER_AGENT.to_owned())];
        if let Some(id) = self.session.session_id() {
            headers.push(("Mcp-Session-Id", id.to_owned()));
        }
        if let Some(version) = self.session.protocol_version() {
            headers.push(("MCP-Protocol-Version", version.to_owned()));
        }
        if let Some(key) = &self.config.mcp.api_key {
            headers.push(("Authorization", format!("Bearer {}", key.expose())));
        }
        headers
    }

    fn write_http(
        &self,
        out: &mut Vec<u8>,
        method: &str,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) {
        let endpoint = &self.config.mcp.endpoint;
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        write_request(
            out,
            method,
            &endpoint.path,
            &endpoint.host_header,
            &borrowed,
            body,
        );
    }

    // ---- receiving --------------------------------------------------------------------

    fn on_control_event(
        &mut self,
        ctx: &mut ConnectionContext,
        event: ResponseEvent,
        inbound: &[u8],
    ) {
        let max_event_bytes = ctx.settings.max_event_bytes;
        let Some(flight) = self.in_flight.as_mut() else {
            // A response nobody asked for: the server is confused; start over.
            return self.fail(ctx, "stream", "unsolicited HTTP response".into(), false);
        };
        match event {
            ResponseEvent::Head(head) => {
                flight.status = head.status;
                let success = (200..300).contains(&head.status);
                flight.body = if success && head.content_type_is("text/event-stream") {
                    ReplyBody::Events(SseParser::new(max_event_bytes))
                } else if success {
                    ReplyBody::Json(Vec::new())
                } else {
                    ReplyBody::Excerpt(Vec::new())
                };
                if let Some(kind) = flight.kind {
                    self.session
                        .on_post_head(kind, head.status, head.header("mcp-session-id"));
                }
            }
            ResponseEvent::Body(range) => {
                let bytes = &inbound[range];
                let mut sse_events = Vec::new();
                match &mut flight.body {
                    ReplyBody::Events(parser) => {
                        if let Err(e) = parser.feed(bytes, &mut sse_events) {
                            let phase = flight.kind.map(PostKind::phase).unwrap_or("stream");
                            return self.fail(ctx, phase, format!("reply stream: {e}"), false);
                        }
                    }
                    ReplyBody::Json(body) => {
                        if body.len() + bytes.len() > max_event_bytes {
                            let phase = flight.kind.map(PostKind::phase).unwrap_or("stream");
                            return self.fail(
                                ctx,
                                phase,
                                format!("reply larger than {max_event_bytes} bytes"),
                                false,
                            );
                        }
                        body.extend_from_slice(bytes);
                    }
                    ReplyBody::Excerpt(body) => {
                        let room = EXCERPT_BYTES.saturating_sub(body.len());
                        body.extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                }
                self.on_sse_events(ctx, sse_events);
            }
            ResponseEvent::End { reusable } => {
                let Some(flight) = self.in_flight.take() else {
                    return;
                };
                self.disarm(ctx, TimerKind::Request);
                let mut outputs = Vec::new();
                let excerpt = match &flight.body {
                    ReplyBody::Json(body) if !body.is_empty() => {
                        match std::str::from_utf8(body) {
                            Ok(text) => self.session.on_message(text, &mut outputs),
                            Err(_) => outputs.push(Output::Malformed("reply is not UTF-8".into())),
                        }
                        String::new()
                    }
                    ReplyBody::Excerpt(body) => String::from_utf8_lossy(body).into_owned(),
                    _ => String::new(),
                };
                match flight.kind {
                    Some(kind) => {
                        self.session
                            .on_post_end(kind, flight.status, &excerpt, &mut outputs)
                    }
                    None => {
                        // DELETE answered (204, or 404/405 from servers that forgot or
                        // never support it): the session is over either way.
                        log::info!(
                            "cluster={} session closed (DELETE → {})",
                            self.config.name,
                            flight.status
                        );
                        return self.finish_shutdown(ctx);
                    }
                }
                if !reusable {
                    if let Some(control) = self.control.take() {
                        control.close(ctx.registry);
                    }
                }
                self.apply(ctx, outputs);
                if self.status != ConnectionStatus::Failed {
                    self.send_next(ctx);
                }
            }
        }
    }

    fn on_stream_event(
        &mut self,
        ctx: &mut ConnectionContext,
        event: ResponseEvent,
        inbound: &[u8],
    ) {
        match event {
            ResponseEvent::Head(head) => {
                self.disarm(ctx, TimerKind::StreamOpen);
                if head.status == 400 && self.sent_last_event_id {
                    // The server cannot replay: open again without Last-Event-ID.
                    log::warn!(
                        "cluster={} server refused Last-Event-ID replay; reopening stream without it",
                        self.config.name
                    );
                    self.stream_sse = SseParser::new(ctx.settings.max_event_bytes);
                    return self.open_stream(ctx);
                }
                let is_events = head.content_type_is("text/event-stream");
                self.stream_open = head.status == 200 && is_events;
                let mut outputs = Vec::new();
                self.session
                    .on_stream_head(head.status, is_events, &mut outputs);
                self.apply(ctx, outputs);
            }
            ResponseEvent::Body(range) => {
                if !self.stream_open {
                    return;
                }
                let mut sse_events = Vec::new();
                if let Err(e) = self.stream_sse.feed(&inbound[range], &mut sse_events) {
                    return self.fail(ctx, "stream", e.to_string(), false);
                }
                self.on_sse_events(ctx, sse_events);
            }
            ResponseEvent::End { .. } => self.on_closed(ctx, Channel::Stream),
        }
    }

    fn on_sse_events(&mut self, ctx: &mut ConnectionContext, events: Vec<SseEvent>) {
        if events.is_empty() {
            return;
        }
        let mut outputs = Vec::new();
        for event in &events {
            if event.event == "message" && !event.data.is_empty() {
                self.session.on_message(&event.data, &mut outputs);
            }
        }
        if let Some(floor) = self.stream_sse.retry() {
            self.backoff.set_floor(floor);
        }
        self.apply(ctx, outputs);
    }

    fn on_closed(&mut self, ctx: &mut ConnectionContext, channel: Channel) {
        match channel {
            Channel::Control => {
                if let Some(control) = self.control.take() {
                    control.close(ctx.registry);
                }
                if self.shutting_down {
                    return self.finish_shutdown(ctx);
                }
                if self.in_flight.is_some() {
                    self.fail(
                        ctx,
                        "stream",
                        "server closed the connection mid-request".into(),
                        false,
                    );
                }
                // An idle keep-alive connection closed by the server is normal; the next
                // request opens a new one.
            }
            Channel::Stream => {
                if let Some(stream) = self.stream.take() {
                    stream.close(ctx.registry);
                }
                if self.shutting_down {
                    return;
                }
                self.disarm(ctx, TimerKind::StreamOpen);
                if self.status == ConnectionStatus::Active && self.stream_open {
                    self.stats.stream_gaps += 1;
                    self.stream_open = false;
                    // kubernetes-mcp-server cannot replay: anything sent until the stream is
                    // back is lost. Count it and say so.
                    log::warn!(
                        "cluster={} event stream ended (gap #{}): faults sent until it reopens are lost",
                        self.config.name,
                        self.stats.stream_gaps
                    );
                    self.schedule_retry(ctx, RetryScope::Stream, false);
                } else {
                    self.fail(ctx, "stream", "event stream closed by server".into(), false);
                }
            }
        }
    }

    fn on_client_error(
        &mut self,
        ctx: &mut ConnectionContext,
        channel: Channel,
        error: ClientError,
    ) {
        if self.shutting_down {
            return self.finish_shutdown(ctx);
        }
        if channel == Channel::Stream && self.status == ConnectionStatus::Active && self.stream_open
        {
            // A broken stream on a live session is a gap, not a dead session: reopen the GET
            // first; a 404 then tells whether the session is gone too.
            log::warn!("cluster={} event stream broke: {error}", self.config.name);
            return self.on_closed(ctx, Channel::Stream);
        }
        let what = match channel {
            Channel::Control => "control connection",
            Channel::Stream => "event stream",
        };
        // Connect and TLS errors name their own phase; a broken reply belongs to the
        // request it answered.
        let phase = match (
            &error,
            channel,
            self.in_flight.as_ref().and_then(|f| f.kind),
        ) {
            (ClientError::Io(_) | ClientError::Http(_), Channel::Control, Some(kind)) => {
                kind.phase()
            }
            _ => error.phase(),
        };
        self.fail(ctx, phase, format!("{what}: {error}"), false);
    }

    // ---- session outputs --------------------------------------------------------------

    fn apply(&mut self, ctx: &mut ConnectionContext, outputs: Vec<Output>) {
        for output in outputs {
            if self.status == ConnectionStatus::Failed {
                return;
            }
            match output {
                Output::Post(request) => {
                    self.queue.push_back(Outgoing::Post(request));
                    self.send_next(ctx);
                }
                Output::OpenStream => self.open_stream(ctx),
                Output::Active { subscription_id } => self.on_active(ctx, &subscription_id),
                Output::Fault(event) => {
                    self.stats.event_count += 1;
                    self.stats.last_event = Some(SystemTime::now());
                    log::debug!(
                        "cluster={} fault {} {} {}",
                        self.config.name,
                        event.fault_id,
                        event.fault_type,
                        event.severity
                    );
                    if event.fault_id_derived {
                        log::warn!(
                            "cluster={} fault without usable faultId; derived key {}",
                            self.config.name,
                            event.fault_id
                        );
                    }
                    ctx.sink.deliver(
                        ClusterEvent {
                            cluster: self.config.clone(),
                            event,
                            received_at: SystemTime::now(),
                        },
                        ctx.now,
                    );
                }
                Output::Degraded(reason) => {
                    self.degraded = true;
                    log::warn!(
                        "cluster={} subscription degraded: {reason}; resubscribing",
                        self.config.name
                    );
                }
                Output::Pong => {
                    self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
                }
                Output::Ignored(what) => {
                    self.stats.ignored += 1;
                    log::trace!("cluster={} ignored message: {what}", self.config.name);
                }
                Output::Malformed(what) => {
                    self.stats.malformed += 1;
                    log::warn!(
                        "cluster={} undecodable message #{}: {what}",
                        self.config.name,
                        self.stats.malformed
                    );
                }
                Output::Failed(error) => self.on_session_error(ctx, error),
            }
        }
        if matches!(
            self.status,
            ConnectionStatus::Connecting
                | ConnectionStatus::Connected
                | ConnectionStatus::Subscribing
        ) {
            let implied = status_for_phase(self.session.phase());
            if implied != ConnectionStatus::Active {
                self.set_status(ctx, implied);
            }
        }
    }

    fn on_active(&mut self, ctx: &mut ConnectionContext, subscription_id: &str) {
        let resumed = self.status == ConnectionStatus::Active;
        let what = match (resumed, self.degraded) {
            (_, true) => "resubscribed",
            (true, false) => "event stream resumed",
            (false, false) => "subscribed",
        };
        self.degraded = false;
        if !resumed {
            self.stats.connected_since = Some(SystemTime::now());
        }
        self.set_status(ctx, ConnectionStatus::Active);
        log::info!(
            "cluster={} {what} (subscription {subscription_id}, protocol {})",
            self.config.name,
            self.session.protocol_version().unwrap_or("?")
        );
        self.arm(ctx, TimerKind::Ping, ctx.settings.ping_interval);
        self.arm(ctx, TimerKind::Stable, ctx.settings.stable_after);
    }

    fn on_session_error(&mut self, ctx: &mut ConnectionContext, error: SessionError) {
        let permanent = error.is_permanent();
        let phase = error.phase();
        if error == SessionError::SessionExpired {
            log::info!(
                "cluster={} server forgot the session; starting a new one",
                self.config.name
            );
        }
        self.fail(ctx, phase, error.to_string(), permanent);
    }

    // ---- failure and backoff ----------------------------------------------------------

    fn fail(&mut self, ctx: &mut ConnectionContext, phase: &str, message: String, permanent: bool) {
        if self.shutting_down {
            return self.finish_shutdown(ctx);
        }
        self.stats.errors.count(phase);
        self.stats.last_error = Some(format!("{phase}: {message}"));
        self.stats.last_error_at = Some(SystemTime::now());
        self.stats.connected_since = None;
        self.close_channels(ctx);
        self.set_status(ctx, ConnectionStatus::Failed);
        log::warn!("cluster={} {phase} failed: {message}", self.config.name);
        self.schedule_retry(ctx, RetryScope::Full, permanent);
    }

    fn schedule_retry(&mut self, ctx: &mut ConnectionContext, scope: RetryScope, permanent: bool) {
        for kind in [
            TimerKind::Request,
            TimerKind::StreamOpen,
            TimerKind::Ping,
            TimerKind::Stable,
            TimerKind::Connect,
            TimerKind::ControlIdle,
        ] {
            self.disarm(ctx, kind);
        }
        let delay = if permanent {
            // Retrying soon cannot help; still retry, since the server may be upgraded.
            let _ = self.backoff.next_delay();
            ctx.settings.backoff.max
        } else {
            self.backoff.next_delay()
        };
        self.retry_scope = scope;
        self.stats.retry_at = Some(ctx.now + delay);
        log::info!(
            "cluster={} {} attempt {} in {:.1}s",
            self.config.name,
            match scope {
                RetryScope::Full => "reconnect",
                RetryScope::Stream => "stream reopen",
            },
            self.backoff.attempts(),
            delay.as_secs_f64()
        );
        self.arm(ctx, TimerKind::Retry, delay);
    }

    fn finish_shutdown(&mut self, ctx: &mut ConnectionContext) {
        self.in_flight = None;
        self.queue.clear();
        self.close(ctx);
    }

    fn close_channels(&mut self, ctx: &mut ConnectionContext) {
        if let Some(control) = self.control.take() {
            control.close(ctx.registry);
        }
        if let Some(stream) = self.stream.take() {
            stream.close(ctx.registry);
        }
        self.stream_open = false;
        self.in_flight = None;
        self.queue.clear();
    }

    fn set_status(&mut self, ctx: &mut ConnectionContext, status: ConnectionStatus) {
        self.tried |= matches!(status, ConnectionStatus::Active | ConnectionStatus::Failed);
        if self.status != status {
            ctx.changed = true;
            log::info!(
                "cluster={} status {} -> {}",
                self.config.name,
                self.status,
                status
            );
            self.status = status;
        }
    }

    fn arm(&mut self, ctx: &mut ConnectionContext, kind: TimerKind, delay: Duration) {
        self.disarm(ctx, kind);
        let key = TimerKey {
            slot: self.key,
            kind,
        };
        self.timers[kind.slot()] = Some(ctx.timers.insert(ctx.now + delay, key));
    }

    fn disarm(&mut self, ctx: &mut ConnectionContext, kind: TimerKind) {
        if let Some(id) = self.timers[kind.slot()].take() {
            ctx.timers.cancel(id);
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
