//! JSON-RPC over `POST /mcp`: initialize, notifications, setLevel, ping, tools.

use super::cluster::{Shared, State};
use super::faults::{self, random_u64, Mode};
use super::session::{level_rank, Subscription};
use super::stream::StreamMsg;
use super::wire::{self, Request};
use super::Behaviour;
use serde_json::{json, Map, Value};

/// Protocol revisions the simulator speaks, newest first.
pub(crate) const SUPPORTED_VERSIONS: [&str; 3] = ["2025-11-25", "2025-06-18", "2025-03-26"];
/// Answered when the client asks for a revision we do not know.
const FALLBACK_VERSION: &str = "2025-06-18";

const SUBSCRIBE_TOOL: &str = "events_subscribe";
/// Optional `events_subscribe` arguments and whether each is a list of strings.
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
}

/// Handles one POSTed JSON-RPC message and returns the complete HTTP response.
pub(crate) fn handle_post(
    shared: &Shared,
    req: &Request,
    behaviour: Behaviour,
    close: bool,
) -> Vec<u8> {
    if nesting_exceeds(&req.body, MAX_NESTING) {
        return rpc_failure(-32700, "parse error: nesting too deep", close);
    }
    let body: Value = match serde_json::from_slice(&req.body) {
        Ok(v) => v,
        Err(e) => return rpc_failure(-32700, &format!("parse error: {e}"), close),
    };
    let msg = match classify(&body) {
        Ok(m) => m,
        Err(why) => return rpc_failure(-32600, why, close),
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
            return wire::text(404, "session not found", close);
        }
        return initialize(shared, id, params, stateless, close);
    }
    let session_id = if stateless {
        None
    } else {
        match req.header("mcp-session-id") {
            Some(s) => Some(s.to_string()),
            None => return wire::text(400, "Bad Request: missing Mcp-Session-Id header", close),
        }
    };
    if let Some(v) = req.header("mcp-protocol-version") {
        if !SUPPORTED_VERSIONS.contains(&v) {
            return wire::text(
                400,
                &format!("Bad Request: unsupported protocol version {v:?}"),
                close,
            );
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
                request(st, &shared.name, sid, method, params, behaviour)
            }
        }
    });
    let id = match msg {
        Message::Request { id, .. } => id.clone(),
        _ => Value::Null,
    };
    match answer {
        Answer::Accepted => wire::fixed(202, &[], "", b"", close),
        Answer::SessionNotFound => wire::text(404, "session not found", close),
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
    }
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
    cluster: &str,
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
                if let Some(link) = &s.stream {
                    link.ctl.wake();
                }
            }
            Answer::Result(json!({}))
        }
        "tools/list" => Answer::Result(tools_list(behaviour)),
        "tools/call" => {
            let name = params.get("name").and_then(Value::as_str).unwrap_or("");
            if name != SUBSCRIBE_TOOL || behaviour == Behaviour::RefuseTool {
                return Answer::Error(-32602, format!("unknown tool {name:?}"));
            }
            let empty = Value::Object(Map::new());
            let args = params
                .get("arguments")
                .filter(|a| !a.is_null())
                .unwrap_or(&empty);
            subscribe(st, cluster, sid, args, behaviour)
        }
        _ => Answer::Error(-32601, format!("method not found: {method}")),
    }
}

fn tool_error(text: String) -> Answer {
    Answer::Result(json!({"content": [{"type": "text", "text": text}], "isError": true}))
}

fn subscribe(
    st: &mut State,
    cluster: &str,
    sid: Option<&str>,
    args: &Value,
    behaviour: Behaviour,
) -> Answer {
    let Some(args) = args.as_object() else {
        return tool_error("invalid arguments: expected an object".to_string());
    };
    let mode = match args.get("mode") {
        None | Some(Value::Null) => Mode::Events,
        Some(Value::String(m)) if m == "faults" => Mode::Faults,
        Some(Value::String(m)) if m == "events" => Mode::Events,
        Some(other) => {
            return tool_error(format!(
                "invalid mode {other}: must be \"events\" or \"faults\""
            ))
        }
    };
    let mut filters = Map::new();
    for (key, is_list) in FILTERS {
        let Some(v) = args.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let ok = if is_list {
            v.as_array().is_some_and(|a| a.iter().all(Value::is_string))
        } else {
            v.is_string()
        };
        if !ok {
            let want = if is_list {
                "a list of strings"
            } else {
                "a string"
            };
            return tool_error(format!("invalid {key}: must be {want}"));
        }
        filters.insert(key.to_string(), v.clone());
    }
    let subscription_id = format!("sub-{:012x}", random_u64() & 0xffff_ffff_ffff);
    let text = json!({
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "mode": mode.as_str(),
        "filters": filters,
        "createdAt": faults::rfc3339(std::time::SystemTime::now()),
        "status": "active",
    })
    .to_string();
    st.stats.subscribes += 1;
    if let Some(s) = sid.and_then(|id| st.sessions.get_mut(id)) {
        s.subscription = Some(Subscription {
            id: subscription_id.clone(),
            mode,
        });
        if let Some(link) = &s.stream {
            if behaviour == Behaviour::SubscriptionError && s.logs("error") {
                let data = json!({
                    "subscriptionId": subscription_id,
                    "cluster": cluster,
                    "error": "watch failed: the server has asked for the client to provide credentials",
                    "degraded": true,
                });
                let msg = faults::log_notification("error", "kubernetes/subscription_error", data);
                link.ctl.send(StreamMsg::Emit {
                    event: wire::sse_event(None, &msg.to_string()),
                    fault_id: None,
                    subscription_error: true,
                    ack: None,
                });
            }
            link.ctl.wake();
        }
    }
    Answer::Result(json!({"content": [{"type": "text", "text": text}]}))
}

fn tools_list(behaviour: Behaviour) -> Value {
    let mut tools = vec![json!({
        "name": "pods_list",
        "description": "List all the Kubernetes pods in the current cluster",
        "inputSchema": {"type": "object", "properties": {}},
    })];
    if behaviour != Behaviour::RefuseTool {
        tools.push(json!({
            "name": SUBSCRIBE_TOOL,
            "description": "Subscribe to Kubernetes events or detected faults; they arrive as logging notifications",
            "inputSchema": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["events", "faults"]},
                    "namespaces": {"type": "array", "items": {"type": "string"}},
                    "labelSelector": {"type": "string"},
                    "involvedKind": {"type": "string"},
                    "involvedName": {"type": "string"},
                    "involvedNamespace": {"type": "string"},
                    "type": {"type": "string"},
                    "reason": {"type": "string"},
                },
            },
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
    fn subscribe_result_text_is_the_subscription() {
        let sim = start(quiet(1));
        let c = &sim.clusters()[0];
        let mut m = Mcp::initialize(c, None);
        let v = m.rpc(
            "tools/call",
            json!({"name": "events_subscribe", "arguments": {"mode": "faults", "namespaces": ["shop"]}}),
        );
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        let sub: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(sub["subscriptionId"].as_str().unwrap().starts_with("sub-"));
        assert_eq!(sub["cluster"], c.name());
        assert_eq!(sub["mode"], "faults");
        assert_eq!(sub["filters"]["namespaces"], json!(["shop"]));
        assert_eq!(sub["status"], "active");
        assert!(sub["createdAt"].as_str().unwrap().ends_with('Z'));
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
