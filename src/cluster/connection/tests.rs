//! `ClusterConnection` driven sans-I/O: every socket is an in-memory pipe (a `Dialer` that
//! hands out `net::memory` pairs), time is a fake clock, and the far end is `Fork`, a
//! scripted server that answers the way kubernetes-mcp-server with events (go-sdk 1.2.0)
//! does. Each test is one row of PROTOCOL.md's tables, or one of the cases that broke
//! against the real server.

use std::sync::Mutex;

use serde_json::{json, Value};

use super::dialer::DialRequest;
use super::*;
use crate::config::Endpoint;
use crate::net::memory::{self, ServerEnd};

const SESSION: &str = "0123456789abcdef0123456789abcdef";
/// Bounds every settling loop: far more rounds than any exchange needs.
const MAX_ROUNDS: usize = 200;

fn settings() -> ConnectionSettings {
    ConnectionSettings {
        mode: SubscribeMode::Faults,
        connect_timeout: Duration::from_secs(2),
        read_timeout: Duration::from_secs(5),
        ping_interval: Duration::from_secs(30),
        subscription_audit_interval: Duration::from_secs(60),
        tcp_keepalive: Duration::from_secs(60),
        control_idle_timeout: Duration::from_secs(5),
        stable_after: Duration::from_secs(30),
        max_event_bytes: 1024 * 1024,
        max_header_bytes: 16 * 1024,
        backoff: BackoffPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
        },
        batch_window: None,
    }
}

/// One socket the connection opened, seen from the server side.
struct ServerConn {
    channel: Channel,
    generation: u32,
    end: ServerEnd,
    pending: Vec<u8>,
    /// A GET stream the fork attached to its session.
    attached: bool,
    /// The server closed it (after a `Connection: close` reply, or a cut).
    closed: bool,
}

#[derive(Default)]
struct MemoryDialer {
    dialed: Mutex<Vec<(Channel, u32, ServerEnd)>>,
    /// Every address dialed, in order.
    addrs: Mutex<Vec<SocketAddr>>,
    /// Addresses whose connect fails at once.
    refused: Mutex<Vec<SocketAddr>>,
}

impl Dialer for MemoryDialer {
    fn dial(&self, _registry: &Registry, request: DialRequest) -> Result<HttpClient, ClientError> {
        self.addrs.lock().unwrap().push(request.addr);
        if self.refused.lock().unwrap().contains(&request.addr) {
            return Err(ClientError::Connect(io::Error::from(
                io::ErrorKind::ConnectionRefused,
            )));
        }
        let parts = SlotKey::from_token(request.token).expect("a connection token");
        let (client, server) = memory::pair();
        self.dialed
            .lock()
            .unwrap()
            .push((parts.channel, parts.client_generation, server));
        Ok(HttpClient::in_memory(
            client,
            request.max_head_bytes,
            request.max_body_bytes,
        ))
    }
}

#[derive(Default)]
struct Collected(Vec<ClusterEvent>);

impl EventSink for Collected {
    fn deliver(&mut self, event: ClusterEvent, _now: Instant) {
        self.0.push(event);
    }
}

/// A request as the server read it.
#[derive(Debug, Clone)]
struct Req {
    method: String,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn rpc_method(&self) -> &str {
        self.body["method"].as_str().unwrap_or("")
    }
    fn tool(&self) -> &str {
        self.body["params"]["name"].as_str().unwrap_or("")
    }
    /// A short name for logs of what was asked: `POST tools/call events_subscribe`.
    fn label(&self) -> String {
        match self.method.as_str() {
            "POST" if self.rpc_method() == "tools/call" => format!("POST {}", self.tool()),
            "POST" => format!("POST {}", self.rpc_method()),
            other => other.to_owned(),
        }
    }
}

/// Splits complete HTTP requests off the front of `bytes`.
fn take_requests(bytes: &mut Vec<u8>) -> Vec<Req> {
    let mut out = Vec::new();
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        let Ok(httparse::Status::Complete(head_len)) = parsed.parse(bytes) else {
            return out;
        };
        let headers: Vec<(String, String)> = parsed
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect();
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        if bytes.len() < head_len + length {
            return out;
        }
        let body =
            serde_json::from_slice(&bytes[head_len..head_len + length]).unwrap_or(Value::Null);
        out.push(Req {
            method: parsed.method.unwrap_or("").to_owned(),
            headers,
            body,
        });
        bytes.drain(..head_len + length);
    }
}

/// How the scripted server answers POSTs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Sse,
}

/// An answer the fork gives to one request.
enum Answer {
    /// Status, extra headers, content type and body.
    Http(u16, Vec<(&'static str, String)>, &'static str, Vec<u8>),
    /// Attach as the session's GET stream (200 text/event-stream, chunked, nothing sent).
    Stream,
    /// Nothing at all (a stalled server).
    Silence,
    /// Close the connection without an answer.
    Close,
}

fn http_bytes(
    status: u16,
    headers: &[(&'static str, String)],
    content_type: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} X\r\n").into_bytes();
    if !content_type.is_empty() {
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
    }
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

fn chunk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

fn tool_text(text: String) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

fn tool_error(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}], "isError": true})
}

/// The fork's `events_subscribe` result: Markdown around indented JSON.
fn subscription_created(id: &str, mode: &str) -> Value {
    let info = json!({"subscriptionId": id, "cluster": "", "mode": mode, "filters": {},
        "createdAt": "2026-11-20T10:00:00Z", "status": "active"});
    tool_text(format!(
        "# Event Subscription Created\n\n{}\n\nYou will receive event notifications via the logging/message protocol.",
        serde_json::to_string_pretty(&info).unwrap()
    ))
}

/// A test's own answer to some requests; `None` leaves the request to the fork.
type Override = Box<dyn FnMut(&Req) -> Option<Answer>>;

/// kubernetes-mcp-server with events, as PROTOCOL.md describes it, for one client.
struct Fork {
    format: Format,
    /// Every reply carries `Connection: close` and the server closes right after it.
    close_after_reply: bool,
    /// Sessions the server knows, with the ids of their subscriptions.
    sessions: Vec<(String, Vec<String>)>,
    next_subscription: u32,
    list_tool: bool,
    subscribe_tool: bool,
    stateless: bool,
    /// Subscribes still to create whose answer is lost (the connection closes instead).
    lose_subscribe_replies: u32,
    /// Per-test answers that win over the fork's own.
    overrides: Vec<Override>,
    /// Every request seen, in order.
    log: Vec<Req>,
}

impl Fork {
    fn new() -> Fork {
        Fork {
            format: Format::Json,
            close_after_reply: false,
            sessions: Vec::new(),
            next_subscription: 0,
            list_tool: true,
            subscribe_tool: true,
            stateless: false,
            lose_subscribe_replies: 0,
            overrides: Vec::new(),
            log: Vec::new(),
        }
    }

    fn subscriptions(&self, session: &str) -> Vec<String> {
        self.sessions
            .iter()
            .find(|(id, _)| id == session)
            .map(|(_, subs)| subs.clone())
            .unwrap_or_default()
    }

    fn subscriptions_mut(&mut self, session: &str) -> Option<&mut Vec<String>> {
        self.sessions
            .iter_mut()
            .find(|(id, _)| id == session)
            .map(|(_, subs)| subs)
    }

    fn answer(&mut self, req: &Req) -> Answer {
        self.log.push(req.clone());
        for answer in self.overrides.iter_mut() {
            if let Some(a) = answer(req) {
                return a;
            }
        }
        let session = req.header("mcp-session-id").map(str::to_owned);
        let known = |fork: &Fork| {
            session
                .as_ref()
                .is_some_and(|s| fork.sessions.iter().any(|(id, _)| id == s))
        };
        let text = |status, body: &str| {
            Answer::Http(status, Vec::new(), "text/plain", body.as_bytes().to_vec())
        };
        match req.method.as_str() {
            "GET" if self.stateless => text(405, "GET requires an active session"),
            "GET" if session.is_none() => text(405, "GET requires an active session"),
            "GET" if !known(self) => text(404, "session not found"),
            "GET" if req.header("last-event-id").is_some() => {
                text(400, "stream replay unsupported")
            }
            "GET" => Answer::Stream,
            "DELETE" if self.stateless => Answer::Http(204, Vec::new(), "", Vec::new()),
            "DELETE" if !known(self) => text(404, "session not found"),
            "DELETE" => {
                let id = session.unwrap_or_default();
                self.sessions.retain(|(s, _)| *s != id);
                Answer::Http(204, Vec::new(), "", Vec::new())
            }
            "POST" if req.rpc_method() == "initialize" => {
                if session.is_some() && !known(self) {
                    return text(404, "session not found");
                }
                let id = format!("{SESSION}{}", self.sessions.len());
                self.sessions.push((id.clone(), Vec::new()));
                let result = json!({"protocolVersion": "2025-06-18",
                    "capabilities": {"logging": {}, "tools": {"listChanged": true}},
                    "serverInfo": {"name": "kubernetes-mcp-server", "version": "fork"}});
                self.reply(req, result, vec![("Mcp-Session-Id", id)])
            }
            "POST" if !self.stateless && !known(self) => text(404, "session not found"),
            "POST" if req.body.get("id").is_none() => Answer::Http(202, Vec::new(), "", Vec::new()),
            "POST" => match (req.rpc_method(), req.tool()) {
                ("tools/call", "events_subscribe") if self.subscribe_tool => {
                    self.next_subscription += 1;
                    let sub = format!("sub-{:08x}", self.next_subscription);
                    let mode = req.body["params"]["arguments"]["mode"]
                        .as_str()
                        .unwrap_or("events")
                        .to_owned();
                    let session = session.unwrap_or_default();
                    if let Some(subs) = self.subscriptions_mut(&session) {
                        subs.push(sub.clone());
                    }
                    if self.lose_subscribe_replies > 0 {
                        self.lose_subscribe_replies -= 1;
                        return Answer::Close;
                    }
                    self.reply(req, subscription_created(&sub, &mode), Vec::new())
                }
                ("tools/call", "events_list_subscriptions") if self.list_tool => {
                    let subs = self.subscriptions(&session.unwrap_or_default());
                    let list: Vec<Value> = subs
                        .iter()
                        .map(|id| {
                            json!({"subscriptionId": id, "cluster": "", "mode": "faults",
                            "filters": {}, "createdAt": "2026-11-20T10:00:00Z", "degraded": false})
                        })
                        .collect();
                    let body = json!({"subscriptions": list, "total": subs.len()});
                    let text = format!(
                        "# Active Subscriptions\n\n{}",
                        serde_json::to_string_pretty(&body).unwrap()
                    );
                    self.reply(req, tool_text(text), Vec::new())
                }
                ("tools/call", "events_unsubscribe") => {
                    let target = req.body["params"]["arguments"]["subscriptionId"]
                        .as_str()
                        .unwrap_or("")
                        .to_owned();
                    let session = session.unwrap_or_default();
                    let removed = self.subscriptions_mut(&session).is_some_and(|subs| {
                        let before = subs.len();
                        subs.retain(|s| *s != target);
                        subs.len() < before
                    });
                    let result = if removed {
                        tool_text(format!(
                            "# Subscription Cancelled\n\n{}",
                            json!({"subscriptionId": target, "cancelled": true, "status": "success"})
                        ))
                    } else {
                        tool_error("failed to cancel subscription: subscription not found")
                    };
                    self.reply(req, result, Vec::new())
                }
                ("tools/call", tool) => {
                    let id = req.body["id"].clone();
                    let error = json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": -32602, "message": format!("unknown tool {tool:?}")}});
                    self.message(error, Vec::new())
                }
                ("logging/setLevel", _) | ("ping", _) => self.reply(req, json!({}), Vec::new()),
                _ => {
                    let id = req.body["id"].clone();
                    let error = json!({"jsonrpc": "2.0", "id": id,
                        "error": {"code": -32601, "message": "method not found"}});
                    self.message(error, Vec::new())
                }
            },
            _ => text(405, "method not allowed"),
        }
    }

    fn reply(&mut self, req: &Req, result: Value, headers: Vec<(&'static str, String)>) -> Answer {
        let message = json!({"jsonrpc": "2.0", "id": req.body["id"].clone(), "result": result});
        self.message(message, headers)
    }

    fn message(&mut self, message: Value, headers: Vec<(&'static str, String)>) -> Answer {
        match self.format {
            Format::Json => Answer::Http(
                200,
                headers,
                "application/json",
                message.to_string().into_bytes(),
            ),
            Format::Sse => {
                let body = format!("event: message\ndata: {message}\n\n").into_bytes();
                Answer::Http(200, headers, "text/event-stream", body)
            }
        }
    }
}

/// A fault notification as the fork sends it on the GET stream.
fn fault_event(subscription: &str, fault_id: &str) -> Vec<u8> {
    let data = json!({"subscriptionId": subscription, "cluster": "", "faultId": fault_id,
        "faultType": "CrashLoop", "severity": "critical",
        "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api-7d9f8c6b5-x2kq9", "namespace": "shop", "uid": "u-1"},
        "context": "Container entered CrashLoopBackOff state", "timestamp": "2026-11-20T10:00:00Z"});
    let message = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "warning", "logger": "kubernetes/faults", "data": data}});
    format!("event: message\ndata: {message}\n\n").into_bytes()
}

/// The connection under test, its loop parts, and the scripted server.
struct Pipe {
    poll: mio::Poll,
    timers: TimerWheel<TimerKey>,
    resolver: Resolver,
    tls: TlsConfigs,
    inbound: ReadBuffers,
    sink: Collected,
    settings: ConnectionSettings,
    admission: ConnectAdmission,
    dialer: MemoryDialer,
    now: Instant,
    conn: ClusterConnection,
    conns: Vec<ServerConn>,
    fork: Fork,
}

impl Pipe {
    fn new(settings: ConnectionSettings) -> Pipe {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), Token(usize::MAX)).unwrap());
        let endpoint = Endpoint::parse("http://127.0.0.1:8080/mcp").unwrap();
        let config = Arc::new(ClusterConfig::new("prod-eu", endpoint));
        let key = SlotKey {
            index: 3,
            generation: 1,
        };
        let now = Instant::now();
        Pipe {
            conn: ClusterConnection::new(config, key, &settings),
            timers: TimerWheel::new(now, Duration::from_millis(10), 256),
            resolver: Resolver::start(waker).unwrap(),
            poll,
            tls: TlsConfigs::new(),
            inbound: ReadBuffers::with_capacity(16 * 1024),
            sink: Collected::default(),
            settings,
            admission: ConnectAdmission::new(50, Duration::from_millis(20)),
            dialer: MemoryDialer::default(),
            now,
            conns: Vec::new(),
            fork: Fork::new(),
        }
    }

    fn drive<R>(
        &mut self,
        f: impl FnOnce(&mut ClusterConnection, &mut ConnectionContext) -> R,
    ) -> R {
        let mut ctx = ConnectionContext {
            now: self.now,
            registry: self.poll.registry(),
            timers: &mut self.timers,
            resolver: &self.resolver,
            tls: &mut self.tls,
            inbound: &mut self.inbound,
            sink: &mut self.sink,
            settings: &self.settings,
            admission: &mut self.admission,
            dialer: &self.dialer,
            changed: false,
        };
        let result = f(&mut self.conn, &mut ctx);
        let dialed: Vec<_> = self.dialer.dialed.lock().unwrap().drain(..).collect();
        for (channel, generation, end) in dialed {
            self.conns.push(ServerConn {
                channel,
                generation,
                end,
                pending: Vec::new(),
                attached: false,
                closed: false,
            });
        }
        result
    }

    fn start(&mut self) {
        self.drive(|c, ctx| c.start(ctx));
        self.admit();
    }

    /// Lets connects through admission, as the manager does.
    fn admit(&mut self) {
        let mut admitted = Vec::new();
        self.admission.admit(self.now, &mut admitted);
        if !admitted.is_empty() {
            self.drive(|c, ctx| c.on_admitted(ctx));
            self.settle();
        }
    }

    /// Lets the fork answer everything sent and the connection read every answer, until
    /// nothing moves.
    fn settle(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let dialed_before = self.conns.len();
            for index in 0..self.conns.len() {
                let (channel, generation) =
                    (self.conns[index].channel, self.conns[index].generation);
                let current = self
                    .conn
                    .client(channel)
                    .is_some_and(|c| c.generation & CLIENT_GENERATION_MASK == generation);
                if current {
                    self.drive(|c, ctx| c.on_ready(ctx, channel, generation));
                }
            }
            // A client opened in this round has not flushed yet: another round.
            let mut moved = self.conns.len() != dialed_before;
            for index in 0..self.conns.len() {
                moved |= self.serve(index);
            }
            if !moved {
                return;
            }
        }
        panic!("the exchange did not settle in {MAX_ROUNDS} rounds");
    }

    /// The fork reads and answers what one socket carries; true if anything moved.
    fn serve(&mut self, index: usize) -> bool {
        let written = self.conns[index].end.take_written();
        if written.is_empty() || self.conns[index].closed {
            return false;
        }
        self.conns[index].pending.extend_from_slice(&written);
        let requests = take_requests(&mut self.conns[index].pending);
        for req in requests {
            let close = self.fork.close_after_reply;
            let end = self.conns[index].end.clone();
            match self.fork.answer(&req) {
                Answer::Http(status, headers, content_type, body) => {
                    end.send(&http_bytes(status, &headers, content_type, &body, close));
                    if close {
                        // The FIN in the same read as the reply.
                        end.close();
                        self.conns[index].closed = true;
                    }
                }
                Answer::Stream => {
                    end.send(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n",
                    );
                    self.conns[index].attached = true;
                }
                Answer::Silence => {}
                Answer::Close => {
                    end.close();
                    self.conns[index].closed = true;
                }
            }
        }
        true
    }

    /// The attached GET stream of the current session, if any.
    fn stream_end(&self) -> Option<&ServerConn> {
        self.conns
            .iter()
            .rev()
            .find(|c| c.attached && !c.closed && !c.end.client_closed())
    }

    /// Sends one SSE event on the attached GET stream and lets the connection read it.
    fn push_event(&mut self, event: &[u8]) {
        let end = self
            .stream_end()
            .expect("a GET stream is attached")
            .end
            .clone();
        end.send(&chunk(event));
        self.settle();
    }

    /// Ends the attached GET stream (the server side goes away; the session stays).
    fn cut_stream(&mut self) {
        let index = self
            .conns
            .iter()
            .rposition(|c| c.attached && !c.closed)
            .expect("a GET stream is attached");
        self.conns[index].end.close();
        self.conns[index].closed = true;
        self.settle();
    }

    /// Advances the fake clock by `by`, firing due timers, and settles after each.
    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        let step = Duration::from_millis(100);
        while self.now < end {
            self.now = (self.now + step).min(end);
            let mut fired = Vec::new();
            self.timers.expire(self.now, &mut fired);
            for timer in fired {
                self.drive(|c, ctx| c.on_timer(ctx, timer.kind));
                self.settle();
            }
            self.admit();
        }
    }

    fn status(&self) -> ConnectionStatus {
        self.conn.status()
    }

    fn snapshot(&self) -> HealthSnapshot {
        self.conn.snapshot(self.now)
    }

    /// Starts and settles to `active`.
    fn active(mut self) -> Pipe {
        self.start();
        self.settle();
        assert_eq!(
            self.status(),
            ConnectionStatus::Active,
            "{:?}",
            self.labels()
        );
        self
    }

    fn labels(&self) -> Vec<String> {
        self.fork.log.iter().map(Req::label).collect()
    }

    fn count(&self, label: &str) -> usize {
        self.fork.log.iter().filter(|r| r.label() == label).count()
    }

    fn session(&self) -> String {
        self.conn
            .session
            .session_id()
            .unwrap_or_default()
            .to_owned()
    }

    fn subscription(&self) -> String {
        self.conn
            .session
            .subscription_id()
            .unwrap_or_default()
            .to_owned()
    }
}

fn pipe() -> Pipe {
    Pipe::new(settings())
}

/// A pipe whose endpoint is a host name: its lookup goes to the resolver thread, whose
/// answer the pipe never hands over unless a test does (a resolver that never answers).
fn pipe_to_host(host: &str) -> Pipe {
    let mut p = pipe();
    let endpoint = Endpoint::parse(&format!("http://{host}:8080/mcp")).unwrap();
    let config = Arc::new(ClusterConfig::new("prod-eu", endpoint));
    p.conn = ClusterConnection::new(config, p.conn.key, &p.settings);
    p
}

// --- Resolving ------------------------------------------------------------------------------

#[test]
fn a_resolver_that_never_answers_fails_the_connect_at_connect_timeout() {
    let mut p = pipe_to_host("resolver-black-hole.invalid");
    p.start();
    assert_eq!(p.status(), ConnectionStatus::Connecting);
    p.advance(settings().connect_timeout + Duration::from_millis(100));
    let error = p.snapshot().last_error.unwrap_or_default();
    assert!(error.contains("not connected within"), "{error:?}");
    assert_ne!(p.status(), ConnectionStatus::Connecting);
}

#[test]
fn every_resolved_address_is_tried_in_turn() {
    let mut p = pipe_to_host("two-addresses.invalid");
    let dead: SocketAddr = "127.0.0.2:8080".parse().unwrap();
    let alive: SocketAddr = "127.0.0.1:8080".parse().unwrap();
    p.dialer.refused.lock().unwrap().push(dead);
    p.start();
    p.drive(|c, ctx| c.on_resolved(ctx, Ok(vec![dead, alive])));
    p.settle();
    assert_eq!(p.status(), ConnectionStatus::Active, "{:?}", p.labels());
    let addrs = p.dialer.addrs.lock().unwrap().clone();
    assert_eq!(addrs[..2], [dead, alive]);
    // The stream goes where the control connection got through.
    assert!(addrs[2..].iter().all(|a| *a == alive), "{addrs:?}");
}

// --- The session, in the order that loses nothing ------------------------------------------

#[test]
fn session_starts_in_protocol_order_with_mode_faults() {
    let p = pipe().active();
    assert_eq!(
        p.labels(),
        [
            "POST initialize",
            "POST notifications/initialized",
            "POST logging/setLevel",
            "GET",
            "POST events_subscribe",
        ]
    );
    let subscribe = &p.fork.log[4];
    assert_eq!(subscribe.body["params"]["arguments"]["mode"], "faults");
    let level = &p.fork.log[2];
    assert_eq!(level.body["params"]["level"], "info");
}

#[test]
fn every_request_after_initialize_carries_session_version_and_host() {
    let p = pipe().active();
    for req in &p.fork.log[1..] {
        assert_eq!(
            req.header("mcp-session-id"),
            Some(p.session().as_str()),
            "{}",
            req.label()
        );
        assert_eq!(req.header("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(req.header("host"), Some("127.0.0.1:8080"));
    }
    for req in p.fork.log.iter().filter(|r| r.method == "POST") {
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(
            req.header("accept"),
            Some("application/json, text/event-stream")
        );
    }
    let get = p.fork.log.iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(get.header("accept"), Some("text/event-stream"));
    assert_eq!(get.header("last-event-id"), None, "no ids were sent");
}

#[test]
fn markdown_subscribe_result_makes_the_cluster_active_with_its_id() {
    let p = pipe().active();
    assert_eq!(p.subscription(), "sub-00000001");
    let snapshot = p.snapshot();
    assert_eq!(snapshot.subscription_id.as_deref(), Some("sub-00000001"));
    assert!(snapshot.subscription_since.is_some());
}

#[test]
fn subscribe_refused_by_the_server_names_its_reason() {
    let mut p = pipe();
    p.fork.overrides.push(Box::new(|req: &Req| {
        (req.tool() == "events_subscribe").then(|| {
            let body = json!({"jsonrpc": "2.0", "id": req.body["id"].clone(),
                "result": tool_error("failed to create subscription: server has reached maximum subscriptions (100)")});
            Answer::Http(200, Vec::new(), "application/json", body.to_string().into_bytes())
        })
    }));
    p.start();
    p.settle();
    assert_eq!(p.status(), ConnectionStatus::Failed);
    let error = p.snapshot().last_error.unwrap();
    assert!(error.starts_with("subscribe"), "{error}");
    assert!(error.contains("maximum subscriptions (100)"), "{error}");
}

#[test]
fn fault_from_a_server_naming_no_cluster_is_delivered_under_our_name() {
    let mut p = pipe().active();
    let sub = p.subscription();
    p.push_event(&fault_event(&sub, "9f2c4e1a7b3d5c60"));
    assert_eq!(p.sink.0.len(), 1);
    let event = &p.sink.0[0];
    assert_eq!(event.cluster_name(), "prod-eu");
    assert_eq!(event.event.fault_id, "9f2c4e1a7b3d5c60");
    assert_eq!(event.event.cluster, None);
}

#[test]
fn nested_events_mode_notifications_keep_their_severity() {
    let mut p = Pipe::new(ConnectionSettings {
        mode: SubscribeMode::Events,
        ..settings()
    })
    .active();
    assert_eq!(p.fork.log[4].body["params"]["arguments"]["mode"], "events");
    for (kind, reason) in [("Warning", "BackOff"), ("Normal", "Pulled")] {
        let data = json!({"subscriptionId": "sub-00000001", "cluster": "", "event": {
            "namespace": "shop", "type": kind, "reason": reason, "message": "m",
            "involvedObject": {"kind": "Pod", "name": "api-1", "namespace": "shop"}}});
        let message = json!({"jsonrpc": "2.0", "method": "notifications/message",
            "params": {"level": "info", "logger": "kubernetes/events", "data": data}});
        p.push_event(format!("event: message\ndata: {message}\n\n").as_bytes());
    }
    let severities: Vec<&str> = p.sink.0.iter().map(|e| e.event.severity.as_str()).collect();
    assert_eq!(severities, ["warning", "info"]);
}

#[test]
fn server_log_messages_are_counted_not_failed() {
    let mut p = pipe().active();
    let message = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "error", "logger": "kubernetes-mcp-server", "data": "watch failed\nforged line"}});
    p.push_event(format!("event: message\ndata: {message}\n\n").as_bytes());
    assert_eq!(p.snapshot().server_log_messages, 1);
    assert_eq!(p.status(), ConnectionStatus::Active);
}

#[test]
fn subscription_error_renews_the_subscription_and_cancels_the_old_one() {
    let mut p = pipe().active();
    let old = p.subscription();
    let data = json!({"subscriptionId": old, "cluster": "",
        "error": "Watch connection failed after maximum retry attempts", "degraded": true});
    let message = json!({"jsonrpc": "2.0", "method": "notifications/message",
        "params": {"level": "warning", "logger": "kubernetes/subscription_error", "data": data}});
    p.push_event(format!("event: message\ndata: {message}\n\n").as_bytes());
    assert!(p.snapshot().degraded);
    p.advance(Duration::from_secs(2));
    assert_ne!(p.subscription(), old);
    assert!(!p.snapshot().degraded);
    assert_eq!(
        p.fork.subscriptions(&p.session()),
        [p.subscription()],
        "exactly one left"
    );
}

// --- Responses a client must handle ----------------------------------------------------------

#[test]
fn replies_as_event_streams_parse_like_json_replies() {
    let mut p = pipe();
    p.fork.format = Format::Sse;
    let mut p = p.active();
    let sub = p.subscription();
    p.push_event(&fault_event(&sub, "00000000000000aa"));
    assert_eq!(p.sink.0.len(), 1);
}

#[test]
fn unknown_session_on_ping_starts_a_new_session_without_deleting_the_forgotten_one() {
    let mut p = pipe().active();
    // A server restart: it forgets every session.
    p.fork.sessions.clear();
    p.advance(Duration::from_secs(34));
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert_eq!(p.count("POST initialize"), 2);
    assert_eq!(p.count("DELETE"), 0, "a 404 session is not deleted");
}

#[test]
fn get_answered_405_is_a_named_no_event_stream_error() {
    let mut p = pipe();
    p.fork.stateless = true;
    p.start();
    p.settle();
    assert_eq!(p.status(), ConnectionStatus::Failed);
    let error = p.snapshot().last_error.unwrap();
    assert!(
        error.contains("405") && error.contains("no events can arrive"),
        "{error}"
    );
}

#[test]
fn get_refusing_last_event_id_is_retried_without_it_on_the_same_session() {
    let mut p = pipe().active();
    let session = p.session();
    // A server that numbers its events: the client remembers the last id.
    let sub = p.subscription();
    let mut event = b"id: 41\n".to_vec();
    event.extend_from_slice(&fault_event(&sub, "00000000000000ab"));
    p.push_event(&event);
    p.cut_stream();
    p.advance(Duration::from_secs(2));
    let gets: Vec<&Req> = p.fork.log.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(gets.len(), 3, "{:?}", p.labels());
    assert_eq!(gets[1].header("last-event-id"), Some("41"));
    assert_eq!(gets[2].header("last-event-id"), None);
    assert_eq!(p.session(), session, "the session was kept");
    assert_eq!(p.count("POST initialize"), 1);
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert!(p.stream_end().is_some());
}

#[test]
fn second_stream_refused_with_409_starts_a_new_session_and_ends_the_old() {
    let mut p = pipe();
    let mut first = true;
    p.fork.overrides.push(Box::new(move |req: &Req| {
        if req.method == "GET" && std::mem::take(&mut first) {
            return Some(Answer::Http(
                409,
                Vec::new(),
                "text/plain",
                b"stream ID conflicts with ongoing stream".to_vec(),
            ));
        }
        None
    }));
    p.start();
    p.settle();
    assert_eq!(p.status(), ConnectionStatus::Failed);
    assert!(p.snapshot().last_error.unwrap().contains("409"));
    p.advance(Duration::from_secs(2));
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert_eq!(p.count("DELETE"), 1, "{:?}", p.labels());
    assert_eq!(p.fork.sessions.len(), 1, "the old session is gone");
}

#[test]
fn server_without_events_subscribe_is_a_permanent_named_error() {
    let mut p = pipe();
    p.fork.subscribe_tool = false;
    p.start();
    p.settle();
    assert_eq!(p.status(), ConnectionStatus::Failed);
    let snapshot = p.snapshot();
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("no `events_subscribe` tool"), "{error}");
    let retry_in = snapshot.retry_in.unwrap();
    assert!(
        retry_in >= Duration::from_secs(50),
        "long backoff: {retry_in:?}"
    );
}

#[test]
fn shutdown_deletes_the_session_and_accepts_any_answer() {
    for status in [204u16, 404, 405] {
        let mut p = pipe().active();
        p.fork.overrides.push(Box::new(move |req: &Req| {
            (req.method == "DELETE").then(|| Answer::Http(status, Vec::new(), "", Vec::new()))
        }));
        p.drive(|c, ctx| c.begin_shutdown(ctx));
        p.settle();
        assert!(p.conn.is_closed(), "DELETE answered {status}");
        assert_eq!(p.fork.log.last().map(|r| r.method.as_str()), Some("DELETE"));
    }
}

#[test]
fn server_restart_ends_the_stream_and_a_new_session_follows() {
    let mut p = pipe().active();
    p.fork.sessions.clear();
    p.cut_stream();
    p.advance(Duration::from_secs(4));
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert_eq!(p.count("POST initialize"), 2);
    assert_eq!(p.fork.sessions.len(), 1);
    assert_eq!(p.fork.subscriptions(&p.session()).len(), 1);
}

// --- What the server does that loses faults ---------------------------------------------------

#[test]
fn reopened_stream_checks_the_subscription_and_closes_the_gap() {
    let mut p = pipe().active();
    let sub = p.subscription();
    p.cut_stream();
    assert_eq!(p.snapshot().subscription_gaps.len(), 1);
    assert_eq!(
        p.snapshot().subscription_gaps[0].end,
        None,
        "open while cut"
    );
    p.advance(Duration::from_secs(2));
    assert_eq!(p.count("POST events_list_subscriptions"), 1);
    assert_eq!(p.subscription(), sub, "still held: kept");
    let gaps = p.snapshot().subscription_gaps;
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0].cause, GapCause::StreamEnded);
    assert!(gaps[0].end.is_some());
    p.push_event(&fault_event(&sub, "00000000000000ac"));
    assert_eq!(p.sink.0.len(), 1);
}

#[test]
fn subscription_cancelled_during_a_stream_cut_is_renewed_within_one_backoff_delay() {
    let mut p = pipe().active();
    p.cut_stream();
    // A fault found no stream: the fork cancels the subscription silently.
    let session = p.session();
    p.fork.subscriptions_mut(&session).unwrap().clear();
    p.advance(Duration::from_millis(1200));
    assert_eq!(p.fork.subscriptions(&session).len(), 1, "{:?}", p.labels());
    assert_eq!(p.subscription(), p.fork.subscriptions(&session)[0]);
    assert_eq!(p.snapshot().subscription_renewals, 1);
    let sub = p.subscription();
    p.push_event(&fault_event(&sub, "00000000000000ad"));
    assert_eq!(p.sink.0.len(), 1);
    assert!(p.snapshot().subscription_gaps[0].end.is_some());
}

#[test]
fn subscription_cancelled_while_the_stream_stays_attached_is_renewed_by_the_audit() {
    let mut p = pipe().active();
    let session = p.session();
    p.fork.subscriptions_mut(&session).unwrap().clear();
    p.advance(Duration::from_secs(59));
    assert_eq!(p.count("POST events_list_subscriptions"), 0);
    p.advance(Duration::from_secs(2));
    assert_eq!(p.count("POST events_list_subscriptions"), 1);
    assert_eq!(p.fork.subscriptions(&session), [p.subscription()]);
    let gaps = p.snapshot().subscription_gaps;
    assert_eq!(gaps[0].cause, GapCause::SubscriptionLost);
    assert!(gaps[0].end.is_some());
}

#[test]
fn server_without_the_list_tool_gets_a_fresh_subscription_and_keeps_one() {
    let mut p = pipe();
    p.fork.list_tool = false;
    let mut p = p.active();
    p.cut_stream();
    p.advance(Duration::from_secs(2));
    let session = p.session();
    assert_eq!(p.count("POST events_subscribe"), 2);
    assert_eq!(p.count("POST events_unsubscribe"), 1);
    assert_eq!(p.fork.subscriptions(&session), [p.subscription()]);
}

#[test]
fn replaced_sessions_are_deleted_so_the_server_keeps_one_subscription() {
    let mut p = pipe().active();
    for round in 0..20 {
        // Forced re-initialization: a reply cut in the middle.
        p.fork.overrides.push(Box::new(|req: &Req| {
            (req.rpc_method() == "ping").then_some(Answer::Silence)
        }));
        p.advance(Duration::from_secs(36));
        p.fork.overrides.clear();
        p.advance(Duration::from_secs(70));
        assert_eq!(
            p.status(),
            ConnectionStatus::Active,
            "round {round}: {:?}",
            p.labels()
        );
        let total: usize = p.fork.sessions.iter().map(|(_, s)| s.len()).sum();
        assert_eq!(total, 1, "round {round}: one subscription on the server");
    }
    assert_eq!(p.count("DELETE"), 20);
}

#[test]
fn failed_subscribes_leave_no_subscription_behind() {
    let mut p = pipe();
    p.fork.lose_subscribe_replies = 20;
    p.start();
    p.settle();
    for _ in 0..100 {
        if p.status() == ConnectionStatus::Active {
            break;
        }
        p.advance(Duration::from_secs(10));
    }
    assert_eq!(p.fork.lose_subscribe_replies, 0);
    assert_eq!(p.status(), ConnectionStatus::Active, "{:?}", p.labels());
    assert_eq!(p.count("DELETE"), 20, "every replaced session was ended");
    let total: usize = p.fork.sessions.iter().map(|(_, s)| s.len()).sum();
    assert_eq!(total, 1, "one subscription on the server");
}

#[test]
fn silent_stream_for_ten_minutes_is_never_torn_down() {
    let mut p = pipe().active();
    p.advance(Duration::from_secs(600));
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert_eq!(p.count("GET"), 1, "the GET was never reopened");
    assert_eq!(p.count("POST initialize"), 1);
    assert!(
        p.count("POST ping") >= 19,
        "pings prove the session: {}",
        p.count("POST ping")
    );
    let audits = p.count("POST events_list_subscriptions");
    assert!((9..=10).contains(&audits), "one audit a minute: {audits}");
    assert!(p.snapshot().subscription_gaps.is_empty());
}

// --- Replaced clients ----------------------------------------------------------------------------

#[test]
fn connection_close_with_the_fin_in_the_same_read_keeps_the_session() {
    let mut p = pipe();
    p.fork.close_after_reply = true;
    let mut p = p.active();
    assert_eq!(p.count("POST initialize"), 1, "{:?}", p.labels());
    assert_eq!(p.snapshot().errors.stream, 0);
    p.advance(Duration::from_secs(31));
    assert_eq!(p.status(), ConnectionStatus::Active);
    assert_eq!(p.count("POST initialize"), 1);
}

#[test]
fn events_of_a_replaced_client_never_reach_its_successor() {
    let mut p = pipe().active();
    let stale = p
        .conns
        .iter()
        .find(|c| c.channel == Channel::Stream)
        .map(|c| c.generation)
        .unwrap();
    p.cut_stream();
    p.advance(Duration::from_secs(2));
    let current = p.conn.client(Channel::Stream).unwrap().generation;
    assert_ne!(current & CLIENT_GENERATION_MASK, stale);
    let more = p.drive(|c, ctx| c.on_ready(ctx, Channel::Stream, stale));
    assert!(!more);
    assert_eq!(p.status(), ConnectionStatus::Active);
}

#[test]
fn connection_tokens_round_trip_and_never_look_like_the_loops_own() {
    let key = SlotKey {
        index: 7,
        generation: 0x0123_4567,
    };
    for generation in [0, 1, 63, 64, 1000] {
        for channel in [Channel::Control, Channel::Stream] {
            let token = key.token(channel, generation);
            let parts = SlotKey::from_token(token).unwrap();
            assert_eq!(parts.index, 7);
            assert!(key.matches_generation(parts.slot_generation));
            assert_eq!(parts.channel, channel);
            assert_eq!(parts.client_generation, generation & CLIENT_GENERATION_MASK);
            assert!(!matches!(
                crate::token::owner(token),
                crate::token::Owner::Stage(_)
            ));
        }
    }
    assert!(SlotKey::from_token(crate::token::stage(5)).is_none());
}

// --- Hostile input ------------------------------------------------------------------------------

#[test]
fn a_flood_of_server_requests_queues_at_most_eight_answers_and_counts_the_rest() {
    let mut p = pipe().active();
    let mut flood = Vec::new();
    for id in 0..1000 {
        let method = if id % 2 == 0 {
            "ping"
        } else {
            "no/such/method"
        };
        flood.extend_from_slice(
            format!("data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"{method}\"}}\n\n")
                .as_bytes(),
        );
    }
    p.push_event(&flood);
    let answers = p.count("POST ");
    assert!(
        (1..=MAX_QUEUED_ANSWERS + 1).contains(&answers),
        "{answers} answers sent"
    );
    assert_eq!(p.conn.stats.answers_dropped, 1000 - answers as u64);
    assert!(p.conn.queue.is_empty());
    assert_eq!(p.status(), ConnectionStatus::Active);
}

#[test]
fn an_answer_longer_than_its_bound_is_not_sent() {
    let mut p = pipe().active();
    let id = "7".repeat(MAX_ANSWER_BYTES);
    p.push_event(
        format!("data: {{\"jsonrpc\":\"2.0\",\"id\":{id},\"method\":\"ping\"}}\n\n").as_bytes(),
    );
    assert_eq!(p.count("POST "), 0);
    assert_eq!(p.conn.stats.answers_dropped, 1);
}

#[test]
fn an_event_trickling_past_the_read_timeout_marks_the_stream_stalled_and_reopens_it() {
    let mut p = pipe().active();
    p.push_event(b"data: {\"jsonrpc\"");
    for _ in 0..4 {
        p.advance(Duration::from_secs(1));
        p.push_event(b" ");
    }
    assert_eq!(
        p.count("GET"),
        1,
        "not stalled before the read timeout (5 s)"
    );
    for _ in 0..3 {
        p.advance(Duration::from_secs(1));
        if p.stream_end().is_some() && p.count("GET") == 1 {
            p.push_event(b" ");
        }
    }
    assert_eq!(p.conn.stats.stalls, 1);
    assert_eq!(p.snapshot().stream_gaps, 1);
    p.advance(Duration::from_secs(3));
    assert_eq!(
        p.count("GET"),
        2,
        "the stream was reopened: {:?}",
        p.labels()
    );
    assert_eq!(p.count("POST initialize"), 1, "on the same session");
    assert_eq!(p.status(), ConnectionStatus::Active);
}

#[test]
fn heartbeat_comments_between_events_never_stall_a_stream() {
    let mut p = pipe().active();
    for _ in 0..60 {
        p.push_event(b":ka\n");
        p.advance(Duration::from_secs(1));
    }
    p.push_event(&fault_event(&p.subscription(), "00000000000000f1"));
    assert_eq!(p.count("GET"), 1);
    assert_eq!(p.conn.stats.stalls, 0);
    assert_eq!(p.sink.0.len(), 1);
}

#[test]
fn one_event_with_invalid_utf8_is_one_malformed_message_and_the_stream_stays() {
    let mut p = pipe().active();
    p.push_event(b"data: {\"jsonrpc\":\"2.0\",\"method\":\"\xff\"}\n\n");
    p.push_event(&fault_event(&p.subscription(), "00000000000000f2"));
    assert_eq!(p.snapshot().malformed_messages, 1);
    assert_eq!(p.sink.0.len(), 1);
    assert_eq!(p.count("GET"), 1);
}

#[test]
fn a_fire_hose_whose_reads_all_end_mid_event_is_not_stalled() {
    let mut p = pipe().active();
    let subscription = p.subscription();
    let mut carry = Vec::new();
    for second in 0..10u32 {
        let event = fault_event(&subscription, &format!("{second:016x}"));
        let (head, tail) = event.split_at(event.len() / 2);
        let mut read = std::mem::take(&mut carry);
        read.extend_from_slice(head);
        p.push_event(&read);
        carry = tail.to_vec();
        p.advance(Duration::from_secs(1));
    }
    assert_eq!(p.conn.stats.stalls, 0);
    assert_eq!(p.count("GET"), 1);
    assert_eq!(p.sink.0.len(), 9);
}
