//! JSON-RPC over `POST /mcp`: initialize, notifications, setLevel, ping, tools.

use super::cluster::{Cancelled, Shared, State};
use super::faults::{self, Mode};
use super::session::level_rank;
use super::wire::{self, Request};
use super::{notify, Behaviour};
use serde_json::{json, Map, Value};

/// Protocol revisions the simulator speaks, as go-sdk v1.2.0 lists them.
pub(crate) const SUPPORTED_VERSIONS: [&str; 4] =
    ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
/// Answered when the client asks for a revision we do not know (go-sdk v1.2.0's latest).
const FALLBACK_VERSION: &str = "2025-06-18";

const SUBSCRIBE_TOOL: &str = "events_subscribe";
const UNSUBSCRIBE_TOOL: &str = "events_unsubscribe";
const LIST_SUBSCRIPTIONS_TOOL: &str = "events_list_subscriptions";
const EVENTS_LIST_TOOL: &str = "events_list";
/// The closing sentence of the fork's subscribe result.
const SUBSCRIBED_FOOTER: &str =
    "You will receive event notifications via the logging/message protocol.";
/// `events_subscribe` filter arguments and whether each is a list of strings.
const FILTERS: [(&str, bool); 7] = [
    ("namespaces", true),
    ("labelSelector", false),
    ("involvedKind", false),
    ("involvedName", false),
    ("involvedNamespace", false),
    ("type", false),
    ("reason", false),
];

#[derive(Clone, Copy)]
enum Message<'a> {
    Request {
        id: &'a Value,
        method: &'a str,
        params: &'a Value,
    },
    Notification {
        method: &'a str,
    },
    Response,
}

/// Deepest JSON nesting parsed. serde_json recurses per level; capping it well below its
/// own limit keeps connection threads' stacks small in every build profile.
const MAX_NESTING: usize = 32;

/// Whether `[`/`{` nesting outside strings goes deeper than `max`.
fn nesting_exceeds(body: &[u8], max: usize) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

enum Answer {
    Result(Value),
    Error(i64, String),
    Accepted,
    SessionNotFound,
    /// Close the connection without answering (`subscribe-reply-lost`).
    Lost,
}

/// Handles one POSTed JSON-RPC message and returns the complete HTTP response, or `None`
/// when the connection is to be closed without one.
pub(crate) fn handle_post(
    shared: &Shared,
    req: &Request,
    behaviour: Behaviour,
    close: bool,
) -> Option<Vec<u8>> {
    if nesting_exceeds(&req.body, MAX_NESTING) {
        return Some(rpc_failure(-32700, "parse error: nesting too deep", close));
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return Some(rpc_failure(-32700, &format!("parse error: {e}"), close)),
    };
    let msg = match classify(&body) {
        Ok(m) => m,
        Err(why) => return Some(rpc_failure(-32600, why, close)),
    };
    let stateless = behaviour == Behaviour::Stateless;
    if let Message::Request {
        id,
        method: "initialize",
        params,
    } = msg
    {
        // Like the Go server: any unknown session id is a 404, even on initialize.
        let stale = !stateless
            && req.header("mcp-session-id").is_some_and(|sid| {
                shared.update(|st| {
                    let known = st.sessions.contains(sid);
                    st.stats.requests_404 += u64::from(!known);
                    !known
                })
            });
        if stale {
            return Some(wire::text(404, "session not found", close));
        }
        return Some(initialize(shared, id, params, stateless, close));
    }
    let session_id = if stateless {
        None
    } else {
        match req.header("mcp-session-id") {
            Some(s) => Some(s.to_string()),
            None => {
                return Some(wire::text(
                    400,
                    "Bad Request: missing Mcp-Session-Id header",
                    close,
                ))
            }
        }
    };
    if let Some(v) = req.header("mcp-protocol-version") {
        if !SUPPORTED_VERSIONS.contains(&v) {
            return Some(wire::text(
                400,
                &format!(
                    "Bad Request: Unsupported protocol version (supported versions: {})",
                    SUPPORTED_VERSIONS.join(",")
                ),
                close,
            ));
        }
    }
    let sid = session_id.as_deref();
    let answer = shared.update(|st| {
        if let Some(sid) = sid {
            if !st.sessions.contains(sid) {
                st.stats.requests_404 += 1;
                return Answer::SessionNotFound;
            }
        }
        match msg {
            Message::Notification { method } => {
                if method == "notifications/initialized" {
                    st.stats.initialized += 1;
                }
                Answer::Accepted
            }
            Message::Response => Answer::Accepted,
            Message::Request { method, params, .. } => {
                request(st, shared, sid, method, params, behaviour)
            }
        }
    });
    let id = match msg {
        Message::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    Some(match answer {
        Answer::Accepted => wire::fixed(202, &[], "", b"", close),
        Answer::SessionNotFound => wire::text(404, "session not found", close),
        Answer::Lost => return None,
        Answer::Result(result) => reply(
            shared,
            sid,
            &json!({"jsonrpc": "2.0", "id": id, "result": result}),
            close,
        ),
        Answer::Error(code, message) => reply(
            shared,
            sid,
            &json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}}),
            close,
        ),
    })
}

fn classify(v: &Value) -> Result<Message<'_>, &'static str> {
    let obj = match v {
        Value::Object(o) => o,
        Value::Array(_) => return Err("batch requests are not supported"),
        _ => return Err("invalid request: not a JSON-RPC message"),
    };
    let id = obj.get("id").filter(|id| id.is_string() || id.is_number());
    match (obj.get("method").and_then(Value::as_str), id) {
        (Some(method), Some(id)) => Ok(Message::Request {
            id,
            method,
            params: obj.get("params").unwrap_or(&Value::Null),
        }),
        (Some(method), None) if obj.get("id").is_none() => Ok(Message::Notification { method }),
        (None, Some(_)) if obj.contains_key("result") || obj.contains_key("error") => {
            Ok(Message::Response)
        }
        _ => Err("invalid request: not a JSON-RPC message"),
    }
}

fn initialize(
    shared: &Shared,
    id: &Value,
    params: &Value,
    stateless: bool,
    close: bool,
) -> Vec<u8> {
    let requested = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = SUPPORTED_VERSIONS
        .iter()
        .find(|v| **v == requested)
        .copied()
        .unwrap_or(FALLBACK_VERSION);
    let session_id = if stateless {
        None
    } else {
        Some(shared.update(|st| {
            let (sid, evicted) = st.sessions.create();
            if let Some(mut old) = evicted {
                st.end_stream_of(&mut old);
            }
            st.stats.sessions_created += 1;
            sid
        }))
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": {"logging": {}, "tools": {"listChanged": true}},
        "serverInfo": {"name": "nightcrier-sim", "version": "1"},
    });
    reply(
        shared,
        session_id.as_deref(),
        &json!({"jsonrpc": "2.0", "id": id, "result": result}),
        close,
    )
}

fn request(
    st: &mut State,
    shared: &Shared,
    sid: Option<&str>,
    method: &str,
    params: &Value,
    behaviour: Behaviour,
) -> Answer {
    match method {
        "ping" => {
            st.stats.pings += 1;
            Answer::Result(json!({}))
        }
        "logging/setLevel" => {
            let Some(rank) = params
                .get("level")
                .and_then(Value::as_str)
                .and_then(level_rank)
            else {
                return Answer::Error(-32602, "invalid params: unknown log level".to_string());
            };
            st.stats.set_level_calls += 1;
            if let Some(s) = sid.and_then(|id| st.sessions.get_mut(id)) {
                s.level = Some(rank);
            }
            Answer::Result(json!({}))
        }
        "tools/list" => Answer::Result(tools_list(behaviour)),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            if !tool_exists(name, behaviour) {
                // go-sdk's answer to a tool the server does not have.
                return Answer::Error(-32602, format!("unknown tool {name:?}"));
            }
            let empty = Value::Object(Map::new());
            let args = params
                .get("arguments")
                .filter(|a| a.is_object())
                .unwrap_or(&empty);
            match name {
                SUBSCRIBE_TOOL => subscribe(st, shared, sid, args, behaviour),
                UNSUBSCRIBE_TOOL => unsubscribe(st, sid, args),
                LIST_SUBSCRIPTIONS_TOOL => list_subscriptions(st, shared.cluster_field(), sid),
                EVENTS_LIST_TOOL => {
                    let ns = args.get("namespace").and_then(Value::as_str);
                    let ns = ns.filter(|n| !n.is_empty());
                    tool_text(faults::events_list_text(st.recent_events.iter(), ns))
                }
                _ => tool_text("No resources found".to_string()),
            }
        }
        _ => Answer::Error(-32601, format!("method not found: {method}")),
    }
}

fn tool_exists(name: &str, behaviour: Behaviour) -> bool {
    match name {
        "pods_list" | EVENTS_LIST_TOOL => true,
        SUBSCRIBE_TOOL | UNSUBSCRIBE_TOOL => behaviour != Behaviour::RefuseTool,
        LIST_SUBSCRIPTIONS_TOOL => {
            !matches!(behaviour, Behaviour::RefuseTool | Behaviour::NoListTool)
        }
        _ => false,
    }
}

fn tool_text(text: String) -> Answer {
    Answer::Result(json!({"content": [{"type": "text", "text": text}]}))
}

/// An `isError` result carrying the error's text, as the fork's `NewTextResult` builds it.
fn tool_error(text: String) -> Answer {
    Answer::Result(json!({"content": [{"type": "text", "text": text}], "isError": true}))
}

/// Go's `json.MarshalIndent(v, "", "  ")` of a map: keys sorted (serde_json's maps are
/// sorted too), two-space indent, and `<`, `>`, `&` escaped as Go escapes them.
pub(crate) fn go_indent(v: &Value) -> String {
    let text = serde_json::to_string_pretty(v).unwrap_or_else(|_| "{}".to_string());
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn subscribe(
    st: &mut State,
    shared: &Shared,
    sid: Option<&str>,
    args: &Value,
    behaviour: Behaviour,
) -> Answer {
    let Some(sid) = sid else {
        return tool_error(
            "event subscriptions require an HTTP/SSE transport. Start the server with --port and connect via HTTP"
                .to_string(),
        );
    };
    // The fork reads `mode` only when it is a non-empty string; anything else is "events".
    let mode = match args.get("mode").and_then(Value::as_str) {
        None | Some("") | Some("events") => Some(Mode::Events),
        Some("faults") => Some(Mode::Faults),
        Some(_) => None,
    };
    // Filters of the wrong JSON type are ignored, as the fork's `ParseFiltersFromMap` does.
    let mut filters = Map::new();
    for (key, is_list) in FILTERS {
        let Some(v) = args.get(key) else {
            continue;
        };
        let value = if is_list {
            let items: Vec<Value> = v
                .as_array()
                .map(|a| a.iter().filter(|x| x.is_string()).cloned().collect())
                .unwrap_or_default();
            (!items.is_empty()).then_some(Value::Array(items))
        } else {
            v.as_str().filter(|s| !s.is_empty()).map(|s| json!(s))
        };
        if let Some(value) = value {
            filters.insert(key.to_string(), value);
        }
    }
    let refuse = |st: &mut State, text: String| {
        st.stats.subscribes_refused += 1;
        tool_error(text)
    };
    let type_filter = filters.get("type").and_then(Value::as_str);
    if type_filter.is_some_and(|t| t != "Normal" && t != "Warning") {
        return refuse(
            st,
            "invalid subscription filters: invalid type: must be 'Normal', 'Warning', or empty"
                .to_string(),
        );
    }
    if mode == Some(Mode::Faults) && type_filter == Some("Normal") {
        return refuse(
            st,
            "invalid subscription filters: faults mode cannot filter for Normal events".to_string(),
        );
    }
    let Some(mode) = mode else {
        return refuse(
            st,
            "failed to create subscription: invalid mode: must be 'events' or 'faults'".to_string(),
        );
    };
    let settings = &shared.settings;
    let cluster = shared.cluster_field();
    let created = st.subs.create(
        sid,
        mode,
        filters,
        settings.max_subscriptions_per_session,
        settings.max_subscriptions,
    );
    let sub = match created {
        Ok(sub) => sub,
        Err(why) => return refuse(st, format!("failed to create subscription: {why}")),
    };
    let info = json!({
        "subscriptionId": sub.id,
        "cluster": cluster,
        "mode": sub.mode.as_str(),
        "filters": sub.filters,
        "createdAt": faults::rfc3339(sub.created_at),
        "status": "active",
    });
    let sub_id = sub.id.clone();
    st.stats.subscribes += 1;
    st.stats.subscriptions_active = st.subs.len() as u64;
    if behaviour == Behaviour::SubscriptionError {
        notify::degrade(st, cluster, &sub_id);
    }
    if behaviour == Behaviour::SubscribeReplyLost {
        st.stats.replies_dropped += 1;
        return Answer::Lost;
    }
    tool_text(format!(
        "# Event Subscription Created\n\n{}\n\n{SUBSCRIBED_FOOTER}",
        go_indent(&info)
    ))
}

fn unsubscribe(st: &mut State, sid: Option<&str>, args: &Value) -> Answer {
    let Some(sid) = sid else {
        return tool_error("event subscriptions require an HTTP/SSE transport".to_string());
    };
    let Some(id) = args
        .get("subscriptionId")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    else {
        return tool_error("subscriptionId is required".to_string());
    };
    // Another session's subscription is "not found" too: the fork enforces ownership.
    let owned = st.subs.get(id).is_some_and(|s| s.session == sid);
    if !owned || !st.cancel_subscription(id, Cancelled::Unsubscribed) {
        return tool_error("failed to cancel subscription: subscription not found".to_string());
    }
    let info = json!({"subscriptionId": id, "cancelled": true, "status": "success"});
    tool_text(format!("# Subscription Cancelled\n\n{}", go_indent(&info)))
}

fn list_subscriptions(st: &mut State, cluster: &str, sid: Option<&str>) -> Answer {
    let Some(sid) = sid else {
        return tool_error("event subscriptions require an HTTP/SSE transport".to_string());
    };
    st.stats.list_subscriptions_calls += 1;
    let subs: Vec<Value> = st
        .subs
        .iter()
        .filter(|s| s.session == sid)
        .map(|s| {
            json!({
                "subscriptionId": s.id,
                "cluster": cluster,
                "mode": s.mode.as_str(),
                "filters": s.filters,
                "createdAt": faults::rfc3339(s.created_at),
                "degraded": s.degraded,
            })
        })
        .collect();
    let info = json!({"total": subs.len(), "subscriptions": subs});
    tool_text(format!("# Active Subscriptions\n\n{}", go_indent(&info)))
}

fn tools_list(behaviour: Behaviour) -> Value {
    let mut tools = vec![
        json!({
            "name": "pods_list",
            "description": "List all the Kubernetes pods in the current cluster",
            "inputSchema": {"type": "object", "properties": {}},
        }),
        json!({
            "name": EVENTS_LIST_TOOL,
            "description": "List all the Kubernetes events in the current cluster from all namespaces",
            "inputSchema": {"type": "object", "properties": {"namespace": {"type": "string"}}},
        }),
    ];
    if tool_exists(SUBSCRIBE_TOOL, behaviour) {
        tools.push(json!({
            "name": SUBSCRIBE_TOOL,
            "description": "Subscribe to Kubernetes event notifications in real-time. Requires HTTP/SSE transport (start server with --port). Client must call logging/setLevel before receiving notifications.",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["events", "faults"], "default": "events"},
                    "namespaces": {"type": "array", "items": {"type": "string"}},
                    "labelSelector": {"type": "string"},
                    "involvedKind": {"type": "string"},
                    "involvedName": {"type": "string"},
                    "involvedNamespace": {"type": "string"},
                    "type": {"type": "string", "enum": ["Normal", "Warning"]},
                    "reason": {"type": "string"},
                },
            },
        }));
        tools.push(json!({
            "name": UNSUBSCRIBE_TOOL,
            "description": "Unsubscribe from event notifications by subscription ID",
            "inputSchema": {
                "type": "object",
                "required": ["subscriptionId"],
                "properties": {"subscriptionId": {"type": "string"}},
            },
        }));
    }
    if tool_exists(LIST_SUBSCRIPTIONS_TOOL, behaviour) {
        tools.push(json!({
            "name": LIST_SUBSCRIPTIONS_TOOL,
            "description": "List active event subscriptions for the current session",
            "inputSchema": {"type": "object"},
        }));
    }
    json!({"tools": tools})
}

/// A 200 reply carrying one JSON-RPC message, as JSON or as a one-event SSE body.
fn reply(shared: &Shared, session_id: Option<&str>, msg: &Value, close: bool) -> Vec<u8> {
    let json = msg.to_string();
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(sid) = session_id {
        headers.push(("Mcp-Session-Id", sid));
    }
    if shared.reply_as_sse() {
        headers.extend([
            ("Content-Type", "text/event-stream"),
            ("Cache-Control", "no-cache"),
            ("Transfer-Encoding", "chunked"),
        ]);
        let mut out = wire::head(200, &headers, close);
        out.extend(wire::chunk(&wire::sse_event(Some("message"), &json)));
        out.extend_from_slice(wire::LAST_CHUNK);
        out
    } else {
        wire::fixed(200, &headers, "application/json", json.as_bytes(), close)
    }
}

/// A 400 carrying a JSON-RPC error without an id, for bodies that are not a message.
fn rpc_failure(code: i64, message: &str, close: bool) -> Vec<u8> {
    let body = json!({"jsonrpc": "2.0", "id": null, "error": {"code": code, "message": message}})
        .to_string();
    wire::fixed(400, &[], "application/json", body.as_bytes(), close)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_notifications_and_responses_are_told_apart() {
        let r = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        assert!(matches!(
            classify(&r),
            Ok(Message::Request { method: "ping", .. })
        ));
        let n = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        assert!(matches!(classify(&n), Ok(Message::Notification { .. })));
        let resp = json!({"jsonrpc": "2.0", "id": 4, "result": {}});
        assert!(matches!(classify(&resp), Ok(Message::Response)));
    }

    #[test]
    fn batches_and_null_ids_are_invalid() {
        assert!(classify(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])).is_err());
        assert!(classify(&json!({"jsonrpc": "2.0", "id": null, "method": "ping"})).is_err());
        assert!(classify(&json!("ping")).is_err());
    }

    #[test]
    fn nesting_is_measured_outside_strings() {
        assert!(!nesting_exceeds(br#"{"a":[{"b":"[[[[[[\"[["}]}"#, 3));
        assert!(nesting_exceeds(b"[[[[", 3));
        assert!(!nesting_exceeds(b"[[[]][[]]]", 3));
    }

    #[test]
    fn refused_tool_is_not_listed() {
        let listed = tools_list(Behaviour::RefuseTool).to_string();
        assert!(!listed.contains(SUBSCRIBE_TOOL));
        assert!(tools_list(Behaviour::Normal)
            .to_string()
            .contains(SUBSCRIBE_TOOL));
    }
}

#[cfg(test)]
mod wire_tests {
    use crate::sim::testkit::{quiet, start, Client, Mcp};
    use crate::sim::{Behaviour, ReplyFormat, SimOptions};
    use serde_json::json;

    #[test]
    fn initialize_negotiates_the_requested_or_a_known_version() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        for (asked, got) in [
            ("2025-11-25", "2025-11-25"),
            ("2025-03-26", "2025-03-26"),
            ("2024-01-01", "2025-06-18"),
        ] {
            let m = Mcp::initialize_with(c, None, None, asked);
            assert_eq!(m.version, got);
        }
        assert_eq!(c.stats().sessions_created, 3);
        sim.stop();
    }

    #[test]
    fn initialized_notification_and_responses_get_202() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let r = m.notify("notifications/initialized");
        assert_eq!((r.status, r.body.len()), (202, 0));
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 99, "result": {}}));
        assert_eq!(r.status, 202);
        assert_eq!(c.stats().initialized, 1);
        sim.stop();
    }

    #[test]
    fn set_level_and_ping_answer_empty_results() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        assert_eq!(
            m.rpc("logging/setLevel", json!({"level": "debug"}))["result"],
            json!({})
        );
        assert_eq!(m.rpc("ping", json!(null))["result"], json!({}));
        let bad = m.rpc("logging/setLevel", json!({"level": "loud"}));
        assert_eq!(bad["error"]["code"], -32602);
        let s = c.stats();
        assert_eq!((s.set_level_calls, s.pings), (1, 1));
        sim.stop();
    }

    #[test]
    fn unknown_method_is_method_not_found() {
        let sim = start(quiet(1));
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        assert_eq!(m.rpc("resources/list", json!({}))["error"]["code"], -32601);
        sim.stop();
    }

    #[test]
    fn subscribe_result_is_markdown_around_two_space_indented_json() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let v = m.rpc(
            "tools/call",
            json!({"name": "events_subscribe", "arguments": {"mode": "faults", "namespaces": ["shop"]}}),
        );
        let sub = crate::sim::testkit::markdown_json(&v);
        let id = sub["subscriptionId"].as_str().unwrap();
        assert!(id.starts_with("sub-") && id.len() == 12, "{id}");
        assert_eq!(sub["cluster"], c.name());
        assert_eq!(sub["mode"], "faults");
        assert_eq!(sub["filters"]["namespaces"], json!(["shop"]));
        assert_eq!(sub["status"], "active");
        let created = sub["createdAt"].as_str().unwrap();
        assert!(created.ends_with('Z'));
        // The exact text, keys sorted as Go marshals a map.
        let expected = format!(
            "# Event Subscription Created\n\n{{\n  \"cluster\": \"{}\",\n  \"createdAt\": \"{created}\",\n  \
             \"filters\": {{\n    \"namespaces\": [\n      \"shop\"\n    ]\n  }},\n  \"mode\": \"faults\",\n  \
             \"status\": \"active\",\n  \"subscriptionId\": \"{id}\"\n}}\n\n\
             You will receive event notifications via the logging/message protocol.",
            c.name()
        );
        assert_eq!(crate::sim::testkit::tool_text(&v), expected);
        assert_eq!(c.stats().subscribes, 1);
        sim.stop();
    }

    #[test]
    fn bad_mode_is_a_tool_error_with_a_reason() {
        let sim = start(quiet(1));
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let v = m.subscribe("everything");
        assert_eq!(v["result"]["isError"], true);
        assert!(v["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("invalid mode"));
        sim.stop();
    }

    #[test]
    fn unknown_tool_is_refused_with_32602() {
        let sim = start(quiet(1));
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let v = m.rpc(
            "tools/call",
            json!({"name": "pods_delete", "arguments": {}}),
        );
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "unknown tool \"pods_delete\"");
        sim.stop();
    }

    #[test]
    fn refuse_tool_behaviour_refuses_events_subscribe() {
        let sim = start(SimOptions {
            behaviours: vec![(0, Behaviour::RefuseTool)],
            ..quiet(1)
        });
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let v = m.subscribe("faults");
        assert_eq!(v["error"]["code"], -32602);
        assert_eq!(v["error"]["message"], "unknown tool \"events_subscribe\"");
        sim.clusters()[0].set_behaviour(Behaviour::Normal);
        assert!(m.subscribe("faults")["result"]["content"].is_array());
        sim.stop();
    }

    #[test]
    fn request_without_session_header_is_400() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send(
            "POST",
            "/mcp",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
        );
        assert_eq!(c.response().status, 400);
        sim.stop();
    }

    #[test]
    fn unknown_session_is_404_session_not_found() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        m.session = "no-such-session".into();
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}));
        assert_eq!(r.status, 404);
        assert_eq!(r.text(), "session not found\n");
        let (_, status) = m.get(&[]);
        assert_eq!(status, 404);
        assert_eq!(c.stats().requests_404, 2);
        sim.stop();
    }

    #[test]
    fn initialize_carrying_a_forgotten_session_id_is_404() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        c.expire_sessions();
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}));
        assert_eq!(r.status, 404);
        assert_eq!(c.stats().sessions_created, 1);
        sim.stop();
    }

    #[test]
    fn unsupported_protocol_version_header_is_400() {
        let sim = start(quiet(1));
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        m.version = "1999-01-01".into();
        assert_eq!(
            m.post(&json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}))
                .status,
            400
        );
        sim.stop();
    }

    #[test]
    fn malformed_bodies_get_400_with_a_json_rpc_error() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send("POST", "/mcp", &[], "{nope");
        let r = c.response();
        assert_eq!(r.status, 400);
        assert_eq!(r.json()["error"]["code"], -32700);
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        c.send("POST", "/mcp", &[], &deep);
        assert_eq!(c.response().status, 400);
        c.send(
            "POST",
            "/mcp",
            &[],
            r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
        );
        assert_eq!(c.response().json()["error"]["code"], -32600);
        sim.stop();
    }

    #[test]
    fn json_replies_have_content_length() {
        let sim = start(SimOptions {
            reply_format: ReplyFormat::Json,
            ..quiet(1)
        });
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            r.header("content-length"),
            Some(r.body.len().to_string().as_str())
        );
        assert_eq!(r.json()["result"], json!({}));
        sim.stop();
    }

    #[test]
    fn sse_replies_are_one_chunked_message_event() {
        let sim = start(SimOptions {
            reply_format: ReplyFormat::Sse,
            ..quiet(1)
        });
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let r = m.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}));
        assert_eq!(r.header("content-type"), Some("text/event-stream"));
        assert_eq!(r.header("transfer-encoding"), Some("chunked"));
        let text = r.text();
        assert!(
            text.starts_with("event: message\ndata: {") && text.ends_with("}\n\n"),
            "{text:?}"
        );
        assert_eq!(text.lines().filter(|l| !l.is_empty()).count(), 2);
        assert_eq!(r.json()["id"], 2);
        sim.stop();
    }

    #[test]
    fn alternate_format_switches_every_reply() {
        let sim = start(SimOptions {
            reply_format: ReplyFormat::Alternate,
            ..quiet(1)
        });
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let a = m.post(&json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}));
        let b = m.post(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}));
        let kinds = [a.header("content-type"), b.header("content-type")];
        assert!(
            kinds.contains(&Some("text/event-stream")) && kinds.contains(&Some("application/json"))
        );
        sim.stop();
    }
}
