//! The MCP client session as a sans-I/O state machine: the cluster connection feeds it HTTP
//! reply heads, JSON-RPC message texts and stream openings; it answers with the requests to
//! send and the faults it decoded. It never touches a socket or a clock.
//!
//! Order (PROTOCOL.md): initialize → notifications/initialized → logging/setLevel → GET
//! stream → tools/call events_subscribe. The stream is opened before subscribing because a
//! server drops notifications sent while no GET stream is attached.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::fault_notification;
use super::jsonrpc::{self, Message, RpcError};
use crate::config::SubscribeMode;
use crate::events::{FaultEvent, FaultView};

pub const REQUESTED_PROTOCOL_VERSION: &str = "2025-11-25";
pub const SUPPORTED_PROTOCOL_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
const SUBSCRIBE_TOOL: &str = "events_subscribe";
const LIST_TOOL: &str = "events_list_subscriptions";
const UNSUBSCRIBE_TOOL: &str = "events_unsubscribe";
/// Subscriptions of our own session beyond the current one that one audit cancels at most
/// (the fork allows 10 per session).
const MAX_STRAY_CANCELS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostKind {
    Initialize,
    Initialized,
    SetLevel,
    Subscribe,
    /// `events_list_subscriptions`: is our subscription still there?
    Audit,
    /// `events_unsubscribe` of a subscription we replaced or no longer want.
    Unsubscribe,
    Ping,
    /// Our answer to a request the server sent (its `ping`).
    Answer,
}

impl PostKind {
    /// The phase name operators see in errors and metrics.
    pub fn phase(self) -> &'static str {
        match self {
            PostKind::Initialize | PostKind::Initialized | PostKind::SetLevel => "initialize",
            PostKind::Subscribe | PostKind::Audit | PostKind::Unsubscribe => "subscribe",
            PostKind::Ping => "ping",
            PostKind::Answer => "stream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostRequest {
    pub kind: PostKind,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Initializing,
    Initialized,
    SettingLevel,
    OpeningStream,
    Subscribing,
    Active,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionError {
    Http {
        phase: &'static str,
        status: u16,
        detail: String,
    },
    Rpc {
        phase: &'static str,
        error: String,
    },
    /// The server lacks the tool nightcrier subscribes with (an upstream build without event
    /// streaming). Retrying soon cannot help.
    ToolMissing {
        tool: &'static str,
        message: String,
    },
    /// The server runs without GET streams (stateless mode): no events can ever arrive.
    NoEventStream,
    MissingLoggingCapability,
    UnsupportedProtocolVersion(String),
    InvalidSessionId,
    SessionExpired,
    SubscribeRefused(String),
    Protocol {
        phase: &'static str,
        detail: String,
    },
}

impl SessionError {
    /// Errors a fast retry cannot fix get the maximum backoff straight away.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            SessionError::ToolMissing { .. }
                | SessionError::NoEventStream
                | SessionError::MissingLoggingCapability
                | SessionError::UnsupportedProtocolVersion(_)
        )
    }

    pub fn phase(&self) -> &'static str {
        match self {
            SessionError::Http { phase, .. }
            | SessionError::Rpc { phase, .. }
            | SessionError::Protocol { phase, .. } => phase,
            SessionError::ToolMissing { .. } | SessionError::SubscribeRefused(_) => "subscribe",
            SessionError::NoEventStream | SessionError::SessionExpired => "stream",
            SessionError::MissingLoggingCapability
            | SessionError::UnsupportedProtocolVersion(_)
            | SessionError::InvalidSessionId => "initialize",
        }
    }
}

impl std::fmt::Display for SessionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SessionError::Http {
                phase,
                status,
                detail,
            } => write!(f, "{phase}: HTTP status {status}: {detail}"),
            SessionError::Rpc { phase, error } => write!(f, "{phase}: {error}"),
            SessionError::ToolMissing { tool, message } => write!(
                f,
                "subscribe: server has no `{tool}` tool (a kubernetes-mcp-server build without event streaming?): {message}"
            ),
            SessionError::NoEventStream => write!(
                f,
                "stream: server refuses GET streams (405; stateless mode?): no events can arrive"
            ),
            SessionError::MissingLoggingCapability => write!(
                f,
                "initialize: server does not declare the logging capability, faults cannot arrive"
            ),
            SessionError::UnsupportedProtocolVersion(v) => {
                write!(f, "initialize: server negotiated unsupported protocol version {v:?}")
            }
            SessionError::InvalidSessionId => {
                write!(f, "initialize: Mcp-Session-Id header is not visible ASCII")
            }
            SessionError::SessionExpired => write!(f, "server no longer knows the session (404)"),
            SessionError::SubscribeRefused(reason) => write!(f, "subscribe: refused: {reason}"),
            SessionError::Protocol { phase, detail } => write!(f, "{phase}: {detail}"),
        }
    }
}

/// What the session tells its driver. Outputs live for one call in a short Vec, so the size
/// of the `Fault` variant costs nothing worth a box per fault.
#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Output {
    Post(PostRequest),
    OpenStream,
    /// Subscribed (or resubscribed): faults flow.
    Active {
        subscription_id: String,
    },
    /// The GET stream reopened on the live session; an audit of the subscription is on its
    /// way, since the server cancels a subscription silently when a fault finds no stream.
    StreamResumed,
    /// The server still holds our subscription.
    SubscriptionConfirmed {
        subscription_id: String,
    },
    /// The server no longer holds our subscription (or holds it degraded); a new subscribe
    /// is on its way.
    SubscriptionLost {
        subscription_id: String,
        reason: &'static str,
    },
    /// A message on the server's own logger (`kubernetes-mcp-server`), raw text.
    ServerLog(String),
    Fault(FaultEvent),
    /// The server reported trouble with the subscription; a resubscribe is on its way.
    Degraded(String),
    /// Our ping was answered.
    Pong,
    /// A message we do not act on (another logger, a stale reply): counted, not an error.
    Ignored(String),
    /// One undecodable message: counted and logged; the connection stays.
    Malformed(String),
    Failed(SessionError),
}

pub struct McpSession {
    phase: Phase,
    mode: SubscribeMode,
    client_version: &'static str,
    next_id: u64,
    awaiting: Vec<(u64, PostKind)>,
    session_id: Option<String>,
    protocol_version: Option<String>,
    subscription_id: Option<String>,
    session_id_invalid: bool,
    initialize_answered: bool,
    /// A subscription to cancel once its replacement is confirmed.
    replacing: Option<String>,
    /// The server has no `events_list_subscriptions`: an audit replaces the subscription.
    list_tool_missing: bool,
}

#[derive(Deserialize)]
struct InitializeResult {
    #[serde(rename = "protocolVersion")]
    protocol_version: String,
    #[serde(default)]
    capabilities: Capabilities,
}

#[derive(Deserialize, Default)]
struct Capabilities {
    #[serde(default)]
    logging: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct CallToolResult {
    #[serde(default)]
    content: Vec<ContentItem>,
    #[serde(default, rename = "isError")]
    is_error: bool,
}

#[derive(Deserialize)]
struct ContentItem {
    #[serde(default)]
    text: Option<String>,
}

#[derive(Deserialize)]
struct SubscriptionInfo {
    #[serde(rename = "subscriptionId")]
    subscription_id: String,
    #[serde(default)]
    degraded: bool,
}

#[derive(Deserialize)]
struct SubscriptionList {
    subscriptions: Vec<SubscriptionInfo>,
}

#[derive(Deserialize)]
struct LogParams<'a> {
    #[serde(default)]
    logger: Option<String>,
    #[serde(borrow)]
    data: Option<&'a RawValue>,
}

const FAULT_LOGGER: &str = "kubernetes/faults";

#[derive(Deserialize)]
struct SubscriptionErrorData {
    #[serde(default)]
    error: String,
}

impl McpSession {
    pub fn new(mode: SubscribeMode, client_version: &'static str) -> Self {
        McpSession {
            phase: Phase::Initializing,
            mode,
            client_version,
            next_id: 1,
            awaiting: Vec::new(),
            session_id: None,
            protocol_version: None,
            subscription_id: None,
            session_id_invalid: false,
            initialize_answered: false,
            replacing: None,
            list_tool_missing: false,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn session_id(&self) -> Option<&str> {
        self.session_id.as_deref()
    }
    pub fn protocol_version(&self) -> Option<&str> {
        self.protocol_version.as_deref()
    }
    pub fn subscription_id(&self) -> Option<&str> {
        self.subscription_id.as_deref()
    }

    /// The server no longer knows this session (404): nothing to end there.
    pub fn forget_session_id(&mut self) {
        self.session_id = None;
    }

    /// The first request of a session.
    pub fn start(&mut self) -> PostRequest {
        self.phase = Phase::Initializing;
        let params = serde_json::json!({
            "protocolVersion": REQUESTED_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "nightcrier", "version": self.client_version},
        });
        self.request(PostKind::Initialize, "initialize", &params)
    }

    /// A ping, when the session is active and nothing else waits for an answer.
    pub fn ping(&mut self) -> Option<PostRequest> {
        if self.phase != Phase::Active || !self.awaiting.is_empty() {
            return None;
        }
        Some(self.request(PostKind::Ping, "ping", &serde_json::json!({})))
    }

    /// A new subscription after the server reported trouble with the old one; the old one is
    /// cancelled once the new one is confirmed. `None` while the subscription is already
    /// being checked or renewed, or the session is not active.
    pub fn resubscribe(&mut self) -> Option<PostRequest> {
        if self.phase != Phase::Active || self.subscription_busy() {
            return None;
        }
        self.replacing = self.subscription_id.clone();
        Some(self.subscribe_request())
    }

    /// A check that the server still holds our subscription (`events_list_subscriptions`);
    /// a server without that tool gets a replacement subscription instead. `None` while the
    /// subscription is already being checked or renewed, or the session is not active.
    pub fn audit(&mut self) -> Option<PostRequest> {
        if self.phase != Phase::Active || self.subscription_busy() {
            return None;
        }
        if self.list_tool_missing {
            self.replacing = self.subscription_id.clone();
            return Some(self.subscribe_request());
        }
        Some(self.tool_call(PostKind::Audit, LIST_TOOL, serde_json::json!({})))
    }

    /// The head of a reply to one of our POSTs.
    pub fn on_post_head(&mut self, kind: PostKind, status: u16, session_id: Option<&str>) {
        // A server without session management sends no id; then no request carries one.
        if kind == PostKind::Initialize && (200..300).contains(&status) {
            let valid = |id: &str| !id.is_empty() && id.bytes().all(|b| (0x21..=0x7e).contains(&b));
            self.session_id_invalid = session_id.is_some_and(|id| !valid(id));
            self.session_id = session_id.filter(|id| valid(id)).map(str::to_owned);
        }
    }

    /// The reply to one of our POSTs is complete; `excerpt` is the start of its body when
    /// the status was not a success.
    pub fn on_post_end(
        &mut self,
        kind: PostKind,
        status: u16,
        excerpt: &str,
        out: &mut Vec<Output>,
    ) {
        if !(200..300).contains(&status) {
            self.awaiting.retain(|(_, k)| *k != kind);
            if kind == PostKind::Unsubscribe && status != 404 {
                return out.push(Output::Ignored(format!("unsubscribe answered {status}")));
            }
            let error = if status == 404 && kind != PostKind::Initialize {
                SessionError::SessionExpired
            } else {
                SessionError::Http {
                    phase: kind.phase(),
                    status,
                    detail: excerpt.trim().to_owned(),
                }
            };
            out.push(Output::Failed(error));
            return;
        }
        match kind {
            PostKind::Initialize => {
                if !self.initialize_answered {
                    return self.fail_protocol(kind, "reply carried no initialize result", out);
                }
                self.phase = Phase::SettingLevel;
                let body = jsonrpc::notification("notifications/initialized");
                out.push(Output::Post(PostRequest {
                    kind: PostKind::Initialized,
                    body,
                }));
            }
            PostKind::Initialized => {
                // The Go server drops every log message of a session until its level is set.
                let level = serde_json::json!({"level": "info"});
                out.push(Output::Post(self.request(
                    PostKind::SetLevel,
                    "logging/setLevel",
                    &level,
                )));
            }
            PostKind::SetLevel => {
                self.awaiting.retain(|(_, k)| *k != PostKind::SetLevel);
                self.phase = Phase::OpeningStream;
                out.push(Output::OpenStream);
            }
            PostKind::Unsubscribe => self.awaiting.retain(|(_, k)| *k != kind),
            PostKind::Subscribe | PostKind::Audit | PostKind::Ping => {
                if self.awaiting.iter().any(|(_, k)| *k == kind) {
                    self.awaiting.retain(|(_, k)| *k != kind);
                    self.fail_protocol(kind, "reply ended without an answer", out);
                }
            }
            PostKind::Answer => {}
        }
    }

    /// The GET stream answered with `status`.
    pub fn on_stream_head(&mut self, status: u16, is_event_stream: bool, out: &mut Vec<Output>) {
        match status {
            200 if is_event_stream => match self.phase {
                Phase::OpeningStream => {
                    self.phase = Phase::Subscribing;
                    out.push(Output::Post(self.subscribe_request()));
                }
                Phase::Active => {
                    out.push(Output::StreamResumed);
                    if let Some(audit) = self.audit() {
                        out.push(Output::Post(audit));
                    }
                }
                _ => {}
            },
            200 => out.push(Output::Failed(SessionError::Protocol {
                phase: "stream",
                detail: "GET reply is not text/event-stream".into(),
            })),
            404 => out.push(Output::Failed(SessionError::SessionExpired)),
            405 => out.push(Output::Failed(SessionError::NoEventStream)),
            409 => out.push(Output::Failed(SessionError::Http {
                phase: "stream",
                status,
                detail: "server already holds a stream for this session".into(),
            })),
            _ => out.push(Output::Failed(SessionError::Http {
                phase: "stream",
                status,
                detail: String::new(),
            })),
        }
    }

    /// One JSON-RPC message, from a POST reply or from the GET stream.
    pub fn on_message(&mut self, text: &str, out: &mut Vec<Output>) {
        let mut fault = FaultView::default();
        if self.read_fault(text, &mut fault) {
            return out.push(Output::Fault(fault.to_event()));
        }
        let message = match Message::parse(text) {
            Ok(message) => message,
            Err(e) => return out.push(Output::Malformed(e.to_string())),
        };
        match message {
            Message::Notification { method, params } => self.on_notification(&method, params, out),
            Message::Request { id, method, .. } => {
                let body = if method == "ping" {
                    jsonrpc::empty_result(id)
                } else {
                    format!(
                        r#"{{"jsonrpc":"2.0","id":{},"error":{{"code":-32601,"message":"method not found"}}}}"#,
                        id.get()
                    )
                    .into_bytes()
                };
                out.push(Output::Post(PostRequest {
                    kind: PostKind::Answer,
                    body,
                }));
            }
            Message::Response { id, result } => match self.take_awaiting(id) {
                Some(kind) => self.on_result(kind, result.get(), out),
                None => out.push(Output::Ignored("reply to no pending request".into())),
            },
            Message::Error { id, error } => match self.take_awaiting(id) {
                Some(PostKind::Audit) if is_unknown_tool(&error, LIST_TOOL) => {
                    // Without the list tool, replace the subscription: a new one first, then
                    // the old one cancelled, so no fault falls between them.
                    self.list_tool_missing = true;
                    if let Some(subscribe) = self.audit() {
                        out.push(Output::Post(subscribe));
                    }
                }
                Some(PostKind::Unsubscribe) => {
                    out.push(Output::Ignored(format!("unsubscribe refused: {error}")))
                }
                Some(kind) => out.push(Output::Failed(rpc_failure(kind, error))),
                None => out.push(Output::Ignored(format!("unsolicited {error}"))),
            },
        }
    }

    /// The fault a `kubernetes/faults` notification carries, read in place in one pass
    /// (`fault_notification.rs`) into `fault` (a fresh [`FaultView::default`], so the view
    /// is not moved on the way): true when `text` is such a notification; false for any
    /// other message, and for one the general path must judge (its errors name what is
    /// wrong), which then decodes it as before.
    pub fn read_fault<'t>(&self, text: &'t str, fault: &mut FaultView<'t>) -> bool {
        self.mode == SubscribeMode::Faults && fault_notification::read_into(text, fault)
    }

    fn on_notification(&mut self, method: &str, params: Option<&RawValue>, out: &mut Vec<Output>) {
        if method != "notifications/message" {
            return out.push(Output::Ignored(method.to_owned()));
        }
        let Some(params) = params else {
            return out.push(Output::Malformed("log message without params".into()));
        };
        let params: LogParams = match serde_json::from_str(params.get()) {
            Ok(p) => p,
            Err(e) => return out.push(Output::Malformed(format!("log params: {e}"))),
        };
        let data = params.data.map(RawValue::get).unwrap_or("null");
        match params.logger.as_deref() {
            Some(FAULT_LOGGER) => match FaultEvent::from_fault_data(data) {
                Ok(fault) => out.push(Output::Fault(fault)),
                Err(e) => out.push(Output::Malformed(format!("fault data: {e}"))),
            },
            Some("kubernetes/events") => match FaultEvent::from_event_data(data) {
                Ok(fault) => out.push(Output::Fault(fault)),
                Err(e) => out.push(Output::Malformed(format!("event data: {e}"))),
            },
            Some("kubernetes-mcp-server") => {
                let text = serde_json::from_str::<String>(data).unwrap_or_else(|_| data.to_owned());
                out.push(Output::ServerLog(text));
            }
            Some("kubernetes/subscription_error") => {
                let reason = serde_json::from_str::<SubscriptionErrorData>(data)
                    .map(|d| d.error)
                    .unwrap_or_default();
                // The driver resubscribes after a backoff delay (`resubscribe`): a server
                // that keeps failing the watch must not get a tight subscribe loop.
                out.push(Output::Degraded(reason));
            }
            other => out.push(Output::Ignored(format!(
                "logger {}",
                other.unwrap_or("(none)")
            ))),
        }
    }

    fn on_result(&mut self, kind: PostKind, result: &str, out: &mut Vec<Output>) {
        match kind {
            PostKind::Initialize => {
                let parsed: InitializeResult = match serde_json::from_str(result) {
                    Ok(r) => r,
                    Err(e) => {
                        return self.fail_protocol(kind, &format!("initialize result: {e}"), out)
                    }
                };
                if !SUPPORTED_PROTOCOL_VERSIONS.contains(&parsed.protocol_version.as_str()) {
                    return out.push(Output::Failed(SessionError::UnsupportedProtocolVersion(
                        parsed.protocol_version,
                    )));
                }
                if parsed.capabilities.logging.is_none() {
                    return out.push(Output::Failed(SessionError::MissingLoggingCapability));
                }
                if self.session_id_invalid {
                    return out.push(Output::Failed(SessionError::InvalidSessionId));
                }
                self.protocol_version = Some(parsed.protocol_version);
                self.initialize_answered = true;
                self.phase = Phase::Initialized;
            }
            PostKind::Subscribe => match subscription_from(result) {
                Ok(id) => {
                    self.subscription_id = Some(id.clone());
                    self.phase = Phase::Active;
                    out.push(Output::Active {
                        subscription_id: id.clone(),
                    });
                    if let Some(old) = self.replacing.take().filter(|old| *old != id) {
                        out.push(Output::Post(self.unsubscribe_request(&old)));
                    }
                }
                Err(error) => {
                    self.replacing = None;
                    out.push(Output::Failed(error))
                }
            },
            PostKind::Audit => self.on_audit(result, out),
            PostKind::Unsubscribe => out.push(Output::Ignored("unsubscribed".into())),
            PostKind::Ping => out.push(Output::Pong),
            PostKind::SetLevel | PostKind::Initialized | PostKind::Answer => {}
        }
    }

    fn on_audit(&mut self, result: &str, out: &mut Vec<Output>) {
        let listed = match tool_text(result) {
            Ok(text) => json_object_in(&text)
                .and_then(|json| serde_json::from_str::<SubscriptionList>(json).ok()),
            Err(error) => return out.push(Output::Failed(error)),
        };
        let Some(listed) = listed else {
            return self.fail_protocol(PostKind::Audit, "subscription list is not JSON", out);
        };
        let ours = self.subscription_id.clone().unwrap_or_default();
        let mine = listed
            .subscriptions
            .iter()
            .find(|s| s.subscription_id == ours);
        let (lost, reason) = match mine {
            None => (true, "the server no longer holds it"),
            Some(s) if s.degraded => (true, "the server reports it degraded"),
            Some(_) => (false, ""),
        };
        // Subscriptions of this session we do not use (a subscribe whose answer was lost)
        // would send every fault twice; cancel them.
        let strays: Vec<String> = listed
            .subscriptions
            .iter()
            .filter(|s| s.subscription_id != ours)
            .take(MAX_STRAY_CANCELS)
            .map(|s| s.subscription_id.clone())
            .collect();
        if lost {
            out.push(Output::SubscriptionLost {
                subscription_id: ours.clone(),
                reason,
            });
            self.replacing = mine.map(|_| ours);
            out.push(Output::Post(self.subscribe_request()));
        } else {
            out.push(Output::SubscriptionConfirmed {
                subscription_id: ours,
            });
        }
        for stray in strays {
            out.push(Output::Post(self.unsubscribe_request(&stray)));
        }
    }

    fn subscription_busy(&self) -> bool {
        self.awaiting_kind(PostKind::Subscribe) || self.awaiting_kind(PostKind::Audit)
    }

    fn unsubscribe_request(&mut self, subscription_id: &str) -> PostRequest {
        let arguments = serde_json::json!({"subscriptionId": subscription_id});
        self.tool_call(PostKind::Unsubscribe, UNSUBSCRIBE_TOOL, arguments)
    }

    fn tool_call(
        &mut self,
        kind: PostKind,
        tool: &str,
        arguments: serde_json::Value,
    ) -> PostRequest {
        let params = serde_json::json!({"name": tool, "arguments": arguments});
        self.request(kind, "tools/call", &params)
    }

    fn fail_protocol(&mut self, kind: PostKind, detail: &str, out: &mut Vec<Output>) {
        out.push(Output::Failed(SessionError::Protocol {
            phase: kind.phase(),
            detail: detail.to_owned(),
        }));
    }

    fn subscribe_request(&mut self) -> PostRequest {
        // Always name the mode: the fork's default is `events`.
        let arguments = serde_json::json!({"mode": self.mode.as_str()});
        self.tool_call(PostKind::Subscribe, SUBSCRIBE_TOOL, arguments)
    }

    fn request(&mut self, kind: PostKind, method: &str, params: &serde_json::Value) -> PostRequest {
        let id = self.next_id;
        self.next_id += 1;
        self.awaiting.push((id, kind));
        PostRequest {
            kind,
            body: jsonrpc::request(id, method, params),
        }
    }

    fn take_awaiting(&mut self, id: Option<u64>) -> Option<PostKind> {
        let id = id?;
        let index = self.awaiting.iter().position(|(i, _)| *i == id)?;
        Some(self.awaiting.swap_remove(index).1)
    }

    fn awaiting_kind(&self, kind: PostKind) -> bool {
        self.awaiting.iter().any(|(_, k)| *k == kind)
    }
}

fn rpc_failure(kind: PostKind, error: RpcError) -> SessionError {
    if kind == PostKind::Subscribe && is_unknown_tool(&error, SUBSCRIBE_TOOL) {
        return SessionError::ToolMissing {
            tool: SUBSCRIBE_TOOL,
            message: error.message,
        };
    }
    SessionError::Rpc {
        phase: kind.phase(),
        error: error.to_string(),
    }
}

fn is_unknown_tool(error: &RpcError, tool: &str) -> bool {
    error.code == -32602 && error.message.contains(tool)
}

/// The text of a tool result; an `isError` result is the server refusing, with its reason.
fn tool_text(result: &str) -> Result<String, SessionError> {
    let call: CallToolResult =
        serde_json::from_str(result).map_err(|e| SessionError::Protocol {
            phase: "subscribe",
            detail: format!("tool result: {e}"),
        })?;
    let text = call
        .content
        .iter()
        .filter_map(|item| item.text.as_deref())
        .collect::<Vec<_>>()
        .join("");
    if call.is_error {
        return Err(SessionError::SubscribeRefused(text));
    }
    Ok(text)
}

/// The JSON object inside a tool's text: the fork wraps it in Markdown
/// (`# Event Subscription Created\n\n{…}\n\nYou will receive…`); bare JSON is the same
/// span.
fn json_object_in(text: &str) -> Option<&str> {
    let start = text.find('{')?;
    let end = text.rfind('}')?;
    (start < end).then(|| &text[start..=end])
}

fn subscription_from(result: &str) -> Result<String, SessionError> {
    let text = tool_text(result)?;
    let info = json_object_in(&text)
        .ok_or("no JSON object in it".to_owned())
        .and_then(|json| serde_json::from_str::<SubscriptionInfo>(json).map_err(|e| e.to_string()));
    match info {
        Ok(info) if !info.subscription_id.is_empty() => Ok(info.subscription_id),
        Ok(_) => Err(SessionError::Protocol {
            phase: "subscribe",
            detail: "subscription info has an empty subscriptionId".into(),
        }),
        Err(e) => Err(SessionError::Protocol {
            phase: "subscribe",
            detail: format!(
                "subscription info {:?}: {e}",
                crate::logging::excerpt(&text, 120)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(session: &mut McpSession, request: &PostRequest, result: &str) -> Vec<Output> {
        let sent: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
        let id = sent["id"].as_u64().unwrap();
        let mut out = Vec::new();
        session.on_message(
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"result":{result}}}"#),
            &mut out,
        );
        out
    }

    /// Opens the stream of an initialized session and answers its subscribe with `result`.
    fn answer_subscribe(session: &mut McpSession, result: &str) -> Vec<Output> {
        let mut out = Vec::new();
        session.on_stream_head(200, true, &mut out);
        let subscribe = post(&out).clone();
        respond(session, &subscribe, result)
    }

    fn post(out: &[Output]) -> &PostRequest {
        match out.last() {
            Some(Output::Post(p)) => p,
            other => panic!("expected a POST, got {other:?}"),
        }
    }

    const INIT_RESULT: &str = r#"{"protocolVersion":"2025-06-18","capabilities":{"logging":{},"tools":{}},"serverInfo":{"name":"k"}}"#;

    /// Drives a session to the point where the GET stream should open.
    fn initialized() -> McpSession {
        let mut s = McpSession::new(SubscribeMode::Faults, "test");
        let init = s.start();
        s.on_post_head(PostKind::Initialize, 200, Some("sess-1"));
        assert!(respond(&mut s, &init, INIT_RESULT).is_empty());
        let mut out = Vec::new();
        s.on_post_end(PostKind::Initialize, 200, "", &mut out);
        assert_eq!(post(&out).kind, PostKind::Initialized);
        let mut out = Vec::new();
        s.on_post_end(PostKind::Initialized, 202, "", &mut out);
        let set_level = post(&out).clone();
        assert_eq!(set_level.kind, PostKind::SetLevel);
        assert!(String::from_utf8_lossy(&set_level.body).contains("logging/setLevel"));
        respond(&mut s, &set_level, "{}");
        let mut out = Vec::new();
        s.on_post_end(PostKind::SetLevel, 200, "", &mut out);
        assert_eq!(out, vec![Output::OpenStream]);
        s
    }

    fn active() -> McpSession {
        let mut s = initialized();
        let out = answer_subscribe(
            &mut s,
            r#"{"content":[{"type":"text","text":"{\"subscriptionId\":\"sub-9\",\"status\":\"active\"}"}]}"#,
        );
        assert_eq!(
            out,
            vec![Output::Active {
                subscription_id: "sub-9".into()
            }]
        );
        s
    }

    #[test]
    fn handshake_runs_in_protocol_order_and_negotiates_down() {
        let s = initialized();
        assert_eq!(s.session_id(), Some("sess-1"));
        assert_eq!(s.protocol_version(), Some("2025-06-18"));
        assert_eq!(s.phase(), Phase::OpeningStream);
    }

    #[test]
    fn initialize_asks_for_the_newest_version() {
        let mut s = McpSession::new(SubscribeMode::Faults, "1.0");
        let body = String::from_utf8(s.start().body).unwrap();
        assert!(body.contains(r#""protocolVersion":"2025-11-25""#));
        assert!(body.contains(r#""name":"nightcrier""#));
    }

    #[test]
    fn subscribe_waits_for_the_stream_to_open() {
        let mut s = initialized();
        let mut out = Vec::new();
        s.on_stream_head(200, true, &mut out);
        let body = String::from_utf8(post(&out).body.clone()).unwrap();
        assert!(body.contains("events_subscribe"));
        assert!(body.contains(r#""mode":"faults""#));
        assert_eq!(s.phase(), Phase::Subscribing);
    }

    #[test]
    fn fault_notifications_become_fault_events() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"warning","logger":"kubernetes/faults","data":{"faultId":"00000000000000aa","faultType":"CrashLoop","severity":"critical","resource":{"kind":"Pod","name":"p"}}}}"#,
            &mut out,
        );
        match &out[..] {
            [Output::Fault(f)] => assert_eq!(f.fault_id, "00000000000000aa"),
            other => panic!("{other:?}"),
        }
    }

    /// The general path, as it decoded every message before the one-pass path existed.
    fn general_path(text: &str) -> Vec<Output> {
        let mut s = active();
        let mut out = Vec::new();
        match Message::parse(text) {
            Ok(Message::Notification { method, params }) => {
                s.on_notification(&method, params, &mut out)
            }
            Ok(_) => out.push(Output::Ignored("not a notification".into())),
            Err(e) => out.push(Output::Malformed(e.to_string())),
        }
        out
    }

    #[test]
    fn one_pass_decoding_gives_what_the_general_path_gives() {
        let data = r#"{"subscriptionId":"sub-1","cluster":"c","faultId":"00000000000000aa","faultType":"CrashLoop","severity":"critical","resource":{"apiVersion":"v1","kind":"Pod","name":"p","namespace":"shop","uid":"u"},"context":"line \"one\"\nline two \u00e9","timestamp":"2026-11-20T10:00:00Z","extra":[1,{"x":null}]}"#;
        let texts = [
            // As the Go server writes it: data before level and logger.
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":{data},"level":"warning","logger":"kubernetes/faults"}}}}"#),
            format!(r#"{{ "params" : {{ "logger" : "kubernetes/faults", "data" : {data} }}, "method" : "notifications/message", "id" : null }}"#),
            // Not faults: a request, another method, another logger, bad data, no data.
            format!(r#"{{"jsonrpc":"2.0","id":4,"method":"notifications/message","params":{{"logger":"kubernetes/faults","data":{data}}}}}"#),
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/other","params":{{"logger":"kubernetes/faults","data":{data}}}}}"#),
            format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"logger":"kubernetes/faultsx","data":{data}}}}}"#),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"kubernetes/faults","data":{"faultId":7}}}"#.to_string(),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"kubernetes/faults","data":null}}"#.to_string(),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"kubernetes/faults"}}"#.to_string(),
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"kubernetes/faults","data":{"faultId":"a"}}} trailing"#.to_string(),
            r#"{"method":"notifications/message","method":"x","params":{"logger":"kubernetes/faults","data":{"faultId":"a"}}}"#.to_string(),
        ];
        for text in &texts {
            let mut one_pass = Vec::new();
            let mut s = active();
            s.on_message(text, &mut one_pass);
            let general = general_path(text);
            match (&one_pass[..], &general[..]) {
                ([Output::Fault(a)], [Output::Fault(b)]) => assert_eq!(a, b, "{text}"),
                ([Output::Fault(a)], other) => {
                    panic!("{text}: one pass gave {a:?}, general {other:?}")
                }
                (_, [Output::Fault(b)]) if !text.contains(r#""id":4"#) => {
                    panic!("{text}: general gave {b:?}, one pass {one_pass:?}")
                }
                _ => {}
            }
        }
        // The Go server's order and a spaced-out envelope take the one-pass path; the
        // request, the other names and the bad data do not.
        let s = active();
        let reads = |text: &str| s.read_fault(text, &mut FaultView::default());
        assert!(reads(&texts[0]));
        assert!(reads(&texts[1]));
        for text in &texts[2..] {
            assert!(!reads(text), "{text}");
        }
        let mut out = Vec::new();
        active().on_message(&texts[0], &mut out);
        match &out[..] {
            [Output::Fault(f)] => {
                assert_eq!(f.context.as_deref(), Some("line \"one\"\nline two é"));
                assert_eq!(f.resource.namespace.as_deref(), Some("shop"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_named_like_a_notification_is_answered_not_taken_as_a_fault() {
        let mut out = Vec::new();
        active().on_message(
            r#"{"jsonrpc":"2.0","id":4,"method":"notifications/message","params":{"logger":"kubernetes/faults","data":{"faultId":"00000000000000aa"}}}"#,
            &mut out,
        );
        assert!(
            matches!(&out[..], [Output::Post(p)] if p.kind == PostKind::Answer),
            "{out:?}"
        );
    }

    #[test]
    fn fault_data_of_the_wrong_shape_is_still_named_malformed() {
        let mut out = Vec::new();
        active().on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"logger":"kubernetes/faults","data":{"faultId":7}}}"#,
            &mut out,
        );
        assert!(
            matches!(&out[..], [Output::Malformed(m)] if m.starts_with("fault data:")),
            "{out:?}"
        );
    }

    #[test]
    fn other_loggers_are_ignored_not_failed() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"other","data":"x"}}"#,
            &mut out,
        );
        assert!(matches!(&out[..], [Output::Ignored(_)]));
    }

    #[test]
    fn missing_events_subscribe_tool_is_a_named_permanent_error() {
        let mut s = initialized();
        let mut out = Vec::new();
        s.on_stream_head(200, true, &mut out);
        let sent: serde_json::Value = serde_json::from_slice(&post(&out).body).unwrap();
        let id = sent["id"].as_u64().unwrap();
        let mut out = Vec::new();
        s.on_message(
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32602,"message":"unknown tool \"events_subscribe\""}}}}"#),
            &mut out,
        );
        match &out[..] {
            [Output::Failed(e)] => {
                assert!(matches!(e, SessionError::ToolMissing { .. }));
                assert!(e.is_permanent());
                assert!(e.to_string().contains("events_subscribe"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn tool_error_result_refuses_subscription_with_its_text() {
        let mut s = initialized();
        let out = answer_subscribe(
            &mut s,
            r#"{"isError":true,"content":[{"type":"text","text":"mode must be faults or events"}]}"#,
        );
        assert_eq!(
            out,
            vec![Output::Failed(SessionError::SubscribeRefused(
                "mode must be faults or events".into()
            ))]
        );
    }

    #[test]
    fn expired_session_is_reported_on_404() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_post_end(PostKind::Ping, 404, "session not found", &mut out);
        assert_eq!(out, vec![Output::Failed(SessionError::SessionExpired)]);
        let mut out = Vec::new();
        s.on_stream_head(404, false, &mut out);
        assert_eq!(out, vec![Output::Failed(SessionError::SessionExpired)]);
    }

    #[test]
    fn stateless_server_is_a_named_error() {
        let mut s = initialized();
        let mut out = Vec::new();
        s.on_stream_head(405, false, &mut out);
        assert_eq!(out, vec![Output::Failed(SessionError::NoEventStream)]);
    }

    #[test]
    fn missing_logging_capability_fails_initialize() {
        let mut s = McpSession::new(SubscribeMode::Faults, "t");
        let init = s.start();
        s.on_post_head(PostKind::Initialize, 200, Some("x"));
        let out = respond(
            &mut s,
            &init,
            r#"{"protocolVersion":"2025-11-25","capabilities":{"tools":{}}}"#,
        );
        assert_eq!(
            out,
            vec![Output::Failed(SessionError::MissingLoggingCapability)]
        );
    }

    #[test]
    fn unknown_protocol_version_fails_initialize() {
        let mut s = McpSession::new(SubscribeMode::Faults, "t");
        let init = s.start();
        s.on_post_head(PostKind::Initialize, 200, Some("x"));
        let out = respond(
            &mut s,
            &init,
            r#"{"protocolVersion":"1999-01-01","capabilities":{"logging":{}}}"#,
        );
        assert!(matches!(
            &out[..],
            [Output::Failed(SessionError::UnsupportedProtocolVersion(_))]
        ));
    }

    #[test]
    fn session_id_must_be_visible_ascii() {
        let mut s = McpSession::new(SubscribeMode::Faults, "t");
        let init = s.start();
        s.on_post_head(PostKind::Initialize, 200, Some("bad id\u{7f}"));
        let out = respond(&mut s, &init, INIT_RESULT);
        assert_eq!(out, vec![Output::Failed(SessionError::InvalidSessionId)]);
    }

    #[test]
    fn server_ping_is_answered_with_its_id() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(r#"{"jsonrpc":"2.0","id":42,"method":"ping"}"#, &mut out);
        assert_eq!(
            out,
            vec![Output::Post(PostRequest {
                kind: PostKind::Answer,
                body: br#"{"jsonrpc":"2.0","id":42,"result":{}}"#.to_vec()
            })]
        );
    }

    #[test]
    fn our_ping_is_answered_by_pong_and_only_one_at_a_time() {
        let mut s = active();
        let ping = s.ping().unwrap();
        assert!(s.ping().is_none());
        assert_eq!(respond(&mut s, &ping, "{}"), vec![Output::Pong]);
        assert!(s.ping().is_some());
    }

    #[test]
    fn subscription_error_degrades_and_resubscribe_is_the_drivers_call() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","logger":"kubernetes/subscription_error","data":{"subscriptionId":"sub-9","error":"watch closed","degraded":true}}}"#,
            &mut out,
        );
        assert_eq!(
            out,
            vec![Output::Degraded("watch closed".into())],
            "no immediate resubscribe"
        );
        let resubscribe = s.resubscribe().expect("an active session can resubscribe");
        assert_eq!(resubscribe.kind, PostKind::Subscribe);
        assert!(
            s.resubscribe().is_none(),
            "one subscribe in flight at a time"
        );
        let out = respond(&mut s, &resubscribe, &created("sub-10"));
        assert_eq!(
            out[0],
            Output::Active {
                subscription_id: "sub-10".into()
            }
        );
        let cancel = post(&out[1..]);
        assert_eq!(cancel.kind, PostKind::Unsubscribe);
        let body = String::from_utf8_lossy(&cancel.body);
        assert!(
            body.contains("events_unsubscribe") && body.contains("sub-9"),
            "the replaced subscription is cancelled: {body}"
        );
    }

    #[test]
    fn no_resubscribe_before_the_first_subscription_is_answered() {
        let mut s = initialized();
        let mut out = Vec::new();
        s.on_stream_head(200, true, &mut out);
        assert!(s.resubscribe().is_none());
    }

    /// The fork's tool result: Markdown around indented JSON.
    fn created(id: &str) -> String {
        let text = format!(
            "# Event Subscription Created\n\n{{\n  \"cluster\": \"\",\n  \"createdAt\": \"2026-11-20T10:00:00Z\",\n  \"filters\": {{}},\n  \"mode\": \"faults\",\n  \"status\": \"active\",\n  \"subscriptionId\": \"{id}\"\n}}\n\nYou will receive event notifications via the logging/message protocol."
        );
        serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string()
    }

    fn listed(entries: &[(&str, bool)]) -> String {
        let subscriptions: Vec<serde_json::Value> = entries
            .iter()
            .map(|(id, degraded)| {
                serde_json::json!({"subscriptionId": id, "cluster": "", "mode": "faults",
                    "filters": {}, "createdAt": "2026-11-20T10:00:00Z", "degraded": degraded})
            })
            .collect();
        let json = serde_json::to_string_pretty(
            &serde_json::json!({"subscriptions": subscriptions, "total": entries.len()}),
        )
        .unwrap();
        let text = format!("# Active Subscriptions\n\n{json}");
        serde_json::json!({"content": [{"type": "text", "text": text}]}).to_string()
    }

    /// A stream reopened on the live session: the session asks for the subscription list.
    fn resumed() -> (McpSession, PostRequest) {
        let mut s = active();
        let mut out = Vec::new();
        s.on_stream_head(200, true, &mut out);
        assert_eq!(out[0], Output::StreamResumed);
        let audit = post(&out).clone();
        assert_eq!(audit.kind, PostKind::Audit);
        assert!(String::from_utf8_lossy(&audit.body).contains("events_list_subscriptions"));
        (s, audit)
    }

    #[test]
    fn markdown_subscribe_result_of_the_fork_is_understood() {
        let mut s = initialized();
        let mut out = Vec::new();
        s.on_stream_head(200, true, &mut out);
        let subscribe = post(&out).clone();
        let out = respond(&mut s, &subscribe, &created("sub-1a2b3c4d"));
        assert_eq!(
            out,
            vec![Output::Active {
                subscription_id: "sub-1a2b3c4d".into()
            }]
        );
        assert_eq!(s.subscription_id(), Some("sub-1a2b3c4d"));
    }

    #[test]
    fn subscribe_result_without_json_is_a_named_protocol_error() {
        let mut s = initialized();
        let out = answer_subscribe(
            &mut s,
            r##"{"content":[{"type":"text","text":"# Event Subscription Created\n\nnothing"}]}"##,
        );
        match &out[..] {
            [Output::Failed(SessionError::Protocol { phase, detail })] => {
                assert_eq!(phase.to_string(), "subscribe");
                assert!(detail.contains("Event Subscription Created"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resumed_stream_checks_the_subscription_and_keeps_it_when_listed() {
        let (mut s, audit) = resumed();
        let out = respond(&mut s, &audit, &listed(&[("sub-9", false)]));
        assert_eq!(
            out,
            vec![Output::SubscriptionConfirmed {
                subscription_id: "sub-9".into()
            }]
        );
        assert!(s.audit().is_some(), "the next audit may go");
    }

    #[test]
    fn subscription_missing_from_the_list_is_subscribed_again() {
        let (mut s, audit) = resumed();
        let out = respond(&mut s, &audit, &listed(&[]));
        assert!(matches!(
            &out[0],
            Output::SubscriptionLost { subscription_id, .. } if subscription_id == "sub-9"
        ));
        let subscribe = post(&out).clone();
        assert_eq!(subscribe.kind, PostKind::Subscribe);
        assert!(String::from_utf8_lossy(&subscribe.body).contains(r#""mode":"faults""#));
        let out = respond(&mut s, &subscribe, &created("sub-10"));
        assert_eq!(
            out,
            vec![Output::Active {
                subscription_id: "sub-10".into()
            }],
            "a subscription the server dropped is not unsubscribed"
        );
    }

    #[test]
    fn degraded_subscription_in_the_list_is_replaced_and_cancelled() {
        let (mut s, audit) = resumed();
        let out = respond(&mut s, &audit, &listed(&[("sub-9", true)]));
        assert!(matches!(&out[0], Output::SubscriptionLost { .. }));
        let subscribe = post(&out).clone();
        let out = respond(&mut s, &subscribe, &created("sub-10"));
        assert_eq!(post(&out).kind, PostKind::Unsubscribe);
        assert!(String::from_utf8_lossy(&post(&out).body).contains("sub-9"));
    }

    #[test]
    fn stray_subscriptions_of_our_session_are_cancelled() {
        let (mut s, audit) = resumed();
        let out = respond(
            &mut s,
            &audit,
            &listed(&[("sub-9", false), ("sub-lost-reply", false)]),
        );
        assert!(matches!(&out[0], Output::SubscriptionConfirmed { .. }));
        let cancel = post(&out);
        assert_eq!(cancel.kind, PostKind::Unsubscribe);
        assert!(String::from_utf8_lossy(&cancel.body).contains("sub-lost-reply"));
    }

    #[test]
    fn server_without_the_list_tool_gets_a_replacement_subscription() {
        let (mut s, audit) = resumed();
        let sent: serde_json::Value = serde_json::from_slice(&audit.body).unwrap();
        let id = sent["id"].as_u64().unwrap();
        let mut out = Vec::new();
        s.on_message(
            &format!(r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":-32602,"message":"unknown tool \"events_list_subscriptions\""}}}}"#),
            &mut out,
        );
        let subscribe = post(&out).clone();
        assert_eq!(subscribe.kind, PostKind::Subscribe);
        let out = respond(&mut s, &subscribe, &created("sub-10"));
        assert_eq!(
            post(&out).kind,
            PostKind::Unsubscribe,
            "old one cancelled after"
        );
        // Later audits go straight to a replacement.
        assert_eq!(s.audit().map(|r| r.kind), Some(PostKind::Subscribe));
    }

    #[test]
    fn one_audit_or_subscribe_at_a_time() {
        let (mut s, _audit) = resumed();
        assert!(s.audit().is_none());
        assert!(s.resubscribe().is_none());
    }

    #[test]
    fn refused_or_failed_unsubscribe_is_not_fatal() {
        let mut s = active();
        let resubscribe = s.resubscribe().unwrap();
        let out = respond(&mut s, &resubscribe, &created("sub-10"));
        let cancel = post(&out).clone();
        let out = respond(
            &mut s,
            &cancel,
            r#"{"isError":true,"content":[{"type":"text","text":"failed to cancel subscription: subscription not found"}]}"#,
        );
        assert!(
            out.iter().all(|o| !matches!(o, Output::Failed(_))),
            "{out:?}"
        );
        let mut out = Vec::new();
        s.on_post_end(PostKind::Unsubscribe, 500, "boom", &mut out);
        assert!(matches!(&out[..], [Output::Ignored(_)]));
        assert_eq!(s.phase(), Phase::Active);
    }

    #[test]
    fn server_logger_messages_are_reported_as_text() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"error","logger":"kubernetes-mcp-server","data":"failed to watch: forbidden"}}"#,
            &mut out,
        );
        assert_eq!(
            out,
            vec![Output::ServerLog("failed to watch: forbidden".into())]
        );
    }

    #[test]
    fn subscription_error_counts_at_any_level() {
        for level in ["warning", "error", "info"] {
            let mut s = active();
            let mut out = Vec::new();
            s.on_message(
                &format!(r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"{level}","logger":"kubernetes/subscription_error","data":{{"subscriptionId":"sub-9","cluster":"","error":"Watch connection failed after maximum retry attempts","degraded":true}}}}}}"#),
                &mut out,
            );
            assert_eq!(
                out,
                vec![Output::Degraded(
                    "Watch connection failed after maximum retry attempts".into()
                )]
            );
        }
    }

    #[test]
    fn nested_events_mode_notification_becomes_a_fault() {
        let mut s = active();
        let mut out = Vec::new();
        s.on_message(
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info","logger":"kubernetes/events","data":{"subscriptionId":"sub-9","cluster":"","event":{"type":"Warning","reason":"BackOff","involvedObject":{"kind":"Pod","name":"p","namespace":"n"}}}}}"#,
            &mut out,
        );
        match &out[..] {
            [Output::Fault(f)] => {
                assert_eq!(f.fault_type, "BackOff");
                assert_eq!(f.severity, "warning");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn garbage_messages_are_malformed_not_fatal() {
        let mut s = active();
        let mut out = Vec::new();
        for text in [
            "{not json",
            "",
            "[1,2]",
            r#"{"method":"notifications/message"}"#,
        ] {
            s.on_message(text, &mut out);
        }
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|o| matches!(o, Output::Malformed(_))));
        assert_eq!(s.phase(), Phase::Active);
    }
}
