//! The MCP client session (`mcp/session.rs`) driven as the cluster connection drives it,
//! with what a server might answer.
//!
//! Input: lines, each one step of the server or of the clock:
//!
//! ```text
//! sid ID               the Mcp-Session-Id header of the next reply heads (none without ID)
//! reply STATUS [MSG]   the whole reply to the POST on the wire: head, messages, end
//! head STATUS          only the head of that reply
//! msg MSG              one message of its body
//! end [TEXT]           its end (TEXT: the body excerpt of an error status)
//! stream STATUS [sse]  the head of the GET stream the session asked for
//! event MSG            one message on the open GET stream
//! close                the GET stream ends (the connection opens it again)
//! ping | audit | resubscribe   a timer of the connection fires
//! ```
//!
//! MSG is JSON-RPC text; several messages in one reply are separated by 0x1E (which JSON
//! text never holds). The POSTs the session asks for queue up and go out one at a time.
//! A failed session is replaced by a new one, as the connection does, a few times.
//!
//! Checked on every step: every POST body is a JSON-RPC 2.0 message and request ids only
//! grow; the session subscribes only once a GET stream is open (the order that loses
//! nothing); phases only move forward; `Active` names the subscription the session holds;
//! an answer echoes the server's request id; a fault comes only from a notification (never
//! from a request) and within its bounds; a session id is visible ASCII; errors say what.

#![no_main]

use std::borrow::Cow;
use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use nightcrier::config::SubscribeMode;
use nightcrier::mcp::jsonrpc::Message;
use nightcrier::mcp::session::{McpSession, Output, Phase, PostKind, PostRequest};
use nightcrier_fuzz::assert_fault_bounded;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

const MAX_STEPS: usize = 256;
/// POSTs waiting for the wire; the connection bounds its queue too.
const MAX_QUEUED: usize = 64;
const MAX_SESSIONS: u32 = 4;

/// The members of a POST body the checks read, borrowed from it: the body is parsed whole
/// (so it must be JSON), without building a tree of it. A member that is present holds its
/// raw text, `null` included.
#[derive(Deserialize)]
struct Posted<'a> {
    #[serde(borrow)]
    jsonrpc: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "present")]
    id: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    result: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "present")]
    error: Option<&'a RawValue>,
}

fn present<'de, D: Deserializer<'de>>(value: D) -> Result<Option<&'de RawValue>, D::Error> {
    <&RawValue>::deserialize(value).map(Some)
}

#[derive(Debug, PartialEq)]
enum Stream {
    Closed,
    Requested,
    Open,
}

struct Driver {
    mode: SubscribeMode,
    session: McpSession,
    sessions: u32,
    /// POSTs in order; the first is on the wire.
    posts: VecDeque<PostRequest>,
    /// Status of the reply head to the POST on the wire, once it arrived.
    head: Option<u16>,
    stream: Stream,
    /// The GET stream of this session has opened at least once.
    stream_opened: bool,
    header_session_id: Option<String>,
    last_request_id: u64,
    phase: Phase,
    done: bool,
}

fn rank(phase: Phase) -> u8 {
    match phase {
        Phase::Initializing => 0,
        Phase::Initialized => 1,
        Phase::SettingLevel => 2,
        Phase::OpeningStream => 3,
        Phase::Subscribing => 4,
        Phase::Active => 5,
    }
}

impl Driver {
    fn new(mode: SubscribeMode) -> Driver {
        let mut driver = Driver {
            mode,
            session: McpSession::new(mode, "fuzz"),
            sessions: 0,
            posts: VecDeque::new(),
            head: None,
            stream: Stream::Closed,
            stream_opened: false,
            header_session_id: None,
            last_request_id: 0,
            phase: Phase::Initializing,
            done: false,
        };
        driver.start();
        driver
    }

    fn start(&mut self) {
        self.sessions += 1;
        self.session = McpSession::new(self.mode, "fuzz");
        self.posts.clear();
        self.head = None;
        self.stream = Stream::Closed;
        self.stream_opened = false;
        self.last_request_id = 0;
        self.phase = Phase::Initializing;
        let initialize = self.session.start();
        self.queue(initialize);
    }

    fn queue(&mut self, post: PostRequest) {
        let body: Posted = serde_json::from_slice(&post.body).expect("a POST body is JSON");
        let text = || String::from_utf8_lossy(&post.body);
        assert_eq!(
            body.jsonrpc.as_deref(),
            Some("2.0"),
            "not JSON-RPC 2.0: {}",
            text()
        );
        match post.kind {
            PostKind::Answer => {
                assert!(body.id.is_some(), "an answer without id: {}", text());
                assert!(
                    body.result.is_some() != body.error.is_some(),
                    "an answer needs a result or an error: {}",
                    text()
                );
            }
            PostKind::Initialized => assert!(body.id.is_none(), "{}", text()),
            kind => {
                let id = body
                    .id
                    .and_then(|id| id.get().parse::<u64>().ok())
                    .expect("a numeric request id");
                assert!(
                    id > self.last_request_id,
                    "request id {id} after {}",
                    self.last_request_id
                );
                self.last_request_id = id;
                if kind == PostKind::Subscribe {
                    assert!(
                        self.stream_opened,
                        "subscribed before the GET stream opened"
                    );
                }
            }
        }
        if self.posts.len() < MAX_QUEUED {
            self.posts.push_back(post);
        }
    }

    fn apply(&mut self, outputs: Vec<Output>, message: Option<&str>) {
        for output in outputs {
            if self.done {
                return;
            }
            match output {
                Output::Post(post) => {
                    if post.kind == PostKind::Answer {
                        let sent = message.and_then(|m| match Message::parse(m) {
                            Ok(Message::Request { id, .. }) => Some(id.get().to_owned()),
                            _ => None,
                        });
                        let sent = sent.expect("an answer to something but a request");
                        let body: serde_json::Value =
                            serde_json::from_slice(&post.body).expect("answer is JSON");
                        let echoed: serde_json::Value =
                            serde_json::from_str(&sent).expect("request id is JSON");
                        assert_eq!(body["id"], echoed, "answer does not echo the id");
                    }
                    self.queue(post);
                }
                Output::OpenStream => {
                    assert_eq!(self.session.phase(), Phase::OpeningStream);
                    if self.stream != Stream::Open {
                        self.stream = Stream::Requested;
                    }
                }
                Output::Active { subscription_id } => {
                    assert!(!subscription_id.is_empty(), "empty subscription id");
                    assert_eq!(self.session.phase(), Phase::Active);
                    assert_eq!(
                        self.session.subscription_id(),
                        Some(subscription_id.as_str())
                    );
                }
                Output::StreamResumed => assert_eq!(self.session.phase(), Phase::Active),
                Output::Fault(fault) => {
                    assert_fault_bounded(&fault);
                    // A message without an `"id"` key is no request; only one with it
                    // needs the second look.
                    let text = message.expect("a fault comes from a message");
                    if text.contains("\"id\"") {
                        let from_notification = matches!(
                            Message::parse(text),
                            Ok(Message::Notification { ref method, .. }) if method == "notifications/message"
                        );
                        assert!(from_notification, "a fault from {text:?}");
                    }
                }
                Output::Failed(error) => {
                    assert!(!error.to_string().is_empty());
                    assert!(!error.phase().is_empty());
                    if self.sessions >= MAX_SESSIONS {
                        self.done = true;
                    } else {
                        self.start();
                    }
                    return;
                }
                Output::SubscriptionConfirmed { .. }
                | Output::SubscriptionLost { .. }
                | Output::ServerLog(_)
                | Output::Degraded(_)
                | Output::Pong
                | Output::Ignored(_)
                | Output::Malformed(_) => {}
            }
        }
        self.check_state();
    }

    fn check_state(&mut self) {
        let phase = self.session.phase();
        assert!(
            rank(phase) >= rank(self.phase),
            "phase went from {:?} to {phase:?}",
            self.phase
        );
        self.phase = phase;
        if let Some(id) = self.session.session_id() {
            assert!(
                !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b)),
                "session id {id:?}"
            );
        }
        if phase == Phase::Active {
            assert!(self
                .session
                .subscription_id()
                .is_some_and(|s| !s.is_empty()));
        }
    }

    fn message(&mut self, text: &str) {
        let mut out = Vec::new();
        self.session.on_message(text, &mut out);
        self.apply(out, Some(text));
    }

    fn head(&mut self, status: u16) {
        let Some(post) = self.posts.front() else {
            return;
        };
        if self.head.is_none() {
            let kind = post.kind;
            self.session
                .on_post_head(kind, status, self.header_session_id.as_deref());
            self.head = Some(status);
            self.check_state();
        }
    }

    fn end(&mut self, excerpt: &str) {
        let (Some(status), Some(post)) = (self.head, self.posts.front()) else {
            return;
        };
        let kind = post.kind;
        self.posts.pop_front();
        self.head = None;
        let mut out = Vec::new();
        self.session.on_post_end(kind, status, excerpt, &mut out);
        self.apply(out, None);
    }

    fn timer(&mut self, post: Option<PostRequest>) {
        if let Some(post) = post {
            self.queue(post);
        }
        self.check_state();
    }

    fn step(&mut self, line: &str) {
        let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
        let status = || rest.split(' ').next().and_then(|s| s.parse::<u16>().ok());
        let after_status = || rest.split_once(' ').map_or("", |(_, r)| r);
        match verb {
            "sid" => self.header_session_id = (!rest.is_empty()).then(|| rest.to_owned()),
            "reply" => {
                let Some(status) = status() else { return };
                self.head(status);
                let body = after_status();
                if (200..300).contains(&status) {
                    for message in body.split('\u{1e}').filter(|m| !m.is_empty()) {
                        if self.done || self.head.is_none() {
                            return;
                        }
                        self.message(message);
                    }
                    self.end("");
                } else {
                    self.end(body);
                }
            }
            "head" => {
                if let Some(status) = status() {
                    self.head(status);
                }
            }
            "msg" if self.head.is_some_and(|s| (200..300).contains(&s)) => self.message(rest),
            "end" => self.end(rest),
            "stream" => {
                let Some(status) = status() else { return };
                if self.stream != Stream::Requested {
                    return;
                }
                let is_sse = after_status() == "sse";
                self.stream = if status == 200 && is_sse {
                    self.stream_opened = true;
                    Stream::Open
                } else {
                    Stream::Closed
                };
                let mut out = Vec::new();
                self.session.on_stream_head(status, is_sse, &mut out);
                self.apply(out, None);
            }
            "event" if self.stream == Stream::Open => self.message(rest),
            "close" if self.stream == Stream::Open => self.stream = Stream::Requested,
            "ping" => {
                let post = self.session.ping();
                self.timer(post);
            }
            "audit" => {
                let post = self.session.audit();
                self.timer(post);
            }
            "resubscribe" => {
                let post = self.session.resubscribe();
                self.timer(post);
            }
            _ => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, script)) = data.split_first() else {
        return;
    };
    let mode = if mode & 1 == 0 {
        SubscribeMode::Faults
    } else {
        SubscribeMode::Events
    };
    let mut driver = Driver::new(mode);
    for line in script.split(|&b| b == b'\n').take(MAX_STEPS) {
        if driver.done {
            break;
        }
        if let Ok(line) = std::str::from_utf8(line) {
            driver.step(line);
        }
    }
});
