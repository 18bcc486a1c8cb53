//! The simulator against PROTOCOL.md: one test per behaviour of the real fork (and per
//! adversarial behaviour), over real sockets.

use crate::sim::testkit::{markdown_json, quiet, start, tool_text, Client, Mcp, WAIT};
use crate::sim::{Behaviour, ClusterField, SimOptions};
use serde_json::json;
use std::time::Duration;

/// A silence check has to wait for something not to happen: this long.
const SILENCE: Duration = Duration::from_millis(700);

#[test]
fn tools_list_has_the_four_event_tools_and_pods_list() {
    let sim = start(quiet(1));
    let mut m = Mcp::initialize(&sim.clusters()[0], None);
    let v = m.rpc("tools/list", json!({}));
    let mut names: Vec<&str> = v["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "events_list",
            "events_list_subscriptions",
            "events_subscribe",
            "events_unsubscribe",
            "pods_list"
        ]
    );
    sim.stop();
}

#[test]
fn subscribe_without_mode_is_events_mode() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut m = Mcp::initialize(c, None);
    m.rpc("logging/setLevel", json!({"level": "info"}));
    let mut stream = m.open_stream();
    let sub = markdown_json(&m.call("events_subscribe", json!({})));
    assert_eq!(sub["mode"], "events");
    assert_eq!(sub["filters"], json!({}));
    c.emit_fault("critical", "CrashLoop").expect("delivered");
    assert_eq!(
        stream.next_message()["params"]["logger"],
        "kubernetes/events"
    );
    sim.stop();
}

#[test]
fn events_mode_payload_is_nested_and_every_third_event_is_normal() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (_m, mut stream) = Mcp::handshake(c, None, "events");
    let mut types = Vec::new();
    for _ in 0..6 {
        c.emit_fault("warning", "CrashLoop").expect("delivered");
        let m = stream.next_message();
        let data = &m["params"]["data"];
        assert!(data.get("type").is_none() && data.get("faultId").is_none());
        let e = &data["event"];
        for key in [
            "namespace",
            "timestamp",
            "reason",
            "message",
            "firstTimestamp",
        ] {
            assert!(e[key].is_string(), "{key} in {e}");
        }
        let o = &e["involvedObject"];
        assert_eq!(
            (o["apiVersion"].as_str(), o["kind"].as_str()),
            (Some("v1"), Some("Pod"))
        );
        assert!(o["name"].is_string() && o["uid"].is_string() && o["namespace"] == "shop");
        types.push(e["type"].as_str().unwrap().to_string());
    }
    assert_eq!(
        types,
        ["Warning", "Warning", "Normal", "Warning", "Warning", "Normal"]
    );
    sim.stop();
}

#[test]
fn events_mode_filters_apply_on_the_server() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut m = Mcp::initialize(c, None);
    m.rpc("logging/setLevel", json!({"level": "info"}));
    let mut stream = m.open_stream();
    let sub = markdown_json(&m.call(
        "events_subscribe",
        json!({"type": "Warning", "reason": "Back"}),
    ));
    assert_eq!(sub["filters"], json!({"type": "Warning", "reason": "Back"}));
    for _ in 0..3 {
        c.emit_fault("warning", "CrashLoop");
    }
    // Faults 0 and 1 are Warning BackOff events; fault 2 is a Normal one, filtered out.
    for _ in 0..2 {
        assert_eq!(
            stream.next_message()["params"]["data"]["event"]["reason"],
            "BackOff"
        );
    }
    assert!(c.wait_for(|s| s.faults_emitted == 3 && s.faults_sent == 2, WAIT));
    let bad = m.call(
        "events_subscribe",
        json!({"mode": "faults", "type": "Normal"}),
    );
    assert_eq!(bad["result"]["isError"], true);
    assert_eq!(
        tool_text(&bad),
        "invalid subscription filters: faults mode cannot filter for Normal events"
    );
    sim.stop();
}

#[test]
fn unsubscribe_result_is_markdown_and_cancels_the_subscription() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut m = Mcp::initialize(c, None);
    let id = m.subscribe_ok("faults")["subscriptionId"]
        .as_str()
        .unwrap()
        .to_string();
    let v = m.call("events_unsubscribe", json!({"subscriptionId": id}));
    assert_eq!(
        tool_text(&v),
        format!(
            "# Subscription Cancelled\n\n{{\n  \"cancelled\": true,\n  \"status\": \"success\",\n  \"subscriptionId\": \"{id}\"\n}}"
        )
    );
    assert!(c.subscriptions().is_empty());
    assert_eq!(c.stats().unsubscribes, 1);
    sim.stop();
}

#[test]
fn unsubscribing_an_unknown_or_foreign_id_is_subscription_not_found() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut owner = Mcp::initialize(c, None);
    let id = owner.subscribe_ok("faults")["subscriptionId"].clone();
    let mut other = Mcp::initialize(c, None);
    for asked in [id.clone(), json!("sub-00000000")] {
        let v = other.call("events_unsubscribe", json!({"subscriptionId": asked}));
        assert_eq!(v["result"]["isError"], true);
        assert_eq!(
            tool_text(&v),
            "failed to cancel subscription: subscription not found"
        );
    }
    let v = other.call("events_unsubscribe", json!({}));
    assert_eq!(tool_text(&v), "subscriptionId is required");
    assert_eq!(c.subscriptions().len(), 1);
    sim.stop();
}

#[test]
fn list_subscriptions_shows_only_this_sessions_subscriptions() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut a = Mcp::initialize(c, None);
    let mut b = Mcp::initialize(c, None);
    let first = a.subscribe_ok("faults");
    let second = a.subscribe_ok("events");
    b.subscribe_ok("faults");
    let v = a.call("events_list_subscriptions", json!({}));
    assert!(tool_text(&v).starts_with("# Active Subscriptions\n\n{\n  \"subscriptions\": ["));
    let list = markdown_json(&v);
    assert_eq!(list["total"], 2);
    let subs = list["subscriptions"].as_array().unwrap();
    assert_eq!(subs[0]["subscriptionId"], first["subscriptionId"]);
    assert_eq!(subs[1]["subscriptionId"], second["subscriptionId"]);
    assert_eq!(subs[1]["mode"], "events");
    assert_eq!(subs[0]["degraded"], false);
    assert_eq!(subs[0]["cluster"], c.name());
    assert!(subs[0]["createdAt"].is_string() && subs[0]["filters"] == json!({}));
    let mut none = Mcp::initialize(c, None);
    let empty = markdown_json(&none.call("events_list_subscriptions", json!({})));
    assert_eq!(empty, json!({"subscriptions": [], "total": 0}));
    assert_eq!(c.stats().list_subscriptions_calls, 2);
    sim.stop();
}

#[test]
fn eleventh_subscription_of_a_session_is_refused() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let mut m = Mcp::initialize(c, None);
    for _ in 0..10 {
        m.subscribe_ok("faults");
    }
    let v = m.subscribe("faults");
    assert_eq!(v["result"]["isError"], true);
    assert_eq!(
        tool_text(&v),
        "failed to create subscription: session has reached maximum subscriptions (10)"
    );
    assert_eq!(c.subscription_count(&m.session), 10);
    assert_eq!(c.stats().subscribes_refused, 1);
    sim.stop();
}

#[test]
fn subscriptions_beyond_the_server_limit_are_refused() {
    let sim = start(SimOptions {
        max_subscriptions: 3,
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let mut sessions: Vec<Mcp> = (0..3).map(|_| Mcp::initialize(c, None)).collect();
    for m in &mut sessions {
        m.subscribe_ok("faults");
    }
    let mut late = Mcp::initialize(c, None);
    assert_eq!(
        tool_text(&late.subscribe("faults")),
        "failed to create subscription: server has reached maximum subscriptions (3)"
    );
    assert_eq!(c.stats().subscriptions_active, 3);
    sim.stop();
}

#[test]
fn a_session_with_two_subscriptions_receives_each_fault_twice() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    m.subscribe_ok("faults");
    let id = c.emit_fault("critical", "CrashLoop").expect("delivered");
    let (x, y) = (stream.next_fault(), stream.next_fault());
    assert_eq!(
        (x["faultId"].as_str(), y["faultId"].as_str()),
        (Some(id.as_str()), Some(id.as_str()))
    );
    assert_ne!(x["subscriptionId"], y["subscriptionId"]);
    assert!(c.wait_for(|s| s.faults_sent == 2, WAIT));
    sim.stop();
}

#[test]
fn write_blocked_past_the_timeout_cancels_the_subscription() {
    let sim = start(SimOptions {
        write_block_timeout: Some(Duration::from_millis(300)),
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (_m, mut stream) = Mcp::handshake(c, None, "faults");
    // A message far larger than the socket buffers: its write blocks while we do not read.
    let big = "x".repeat(32 << 20);
    assert_eq!(c.emit_server_error(&big), 1);
    assert_eq!(c.emit_fault("critical", "PodCrash"), None);
    assert!(c.wait_for(|s| s.subscriptions_cancelled_undeliverable == 1, WAIT));
    assert!(c.subscriptions().is_empty());
    // The stream itself survives: the big message arrives whole, then nothing else.
    let m = stream.next_message();
    assert_eq!(m["params"]["data"].as_str().map(str::len), Some(big.len()));
    assert_eq!(c.stats().faults_sent, 0);
    sim.stop();
}

#[test]
fn without_a_write_timeout_a_blocked_write_cancels_only_when_the_connection_fails() {
    let sim = start(SimOptions {
        write_block_timeout: None,
        ..quiet(1)
    });
    let c = sim.clusters()[0].clone();
    let (_m, stream) = Mcp::handshake(&c, None, "faults");
    assert_eq!(c.emit_server_error(&"x".repeat(32 << 20)), 1);
    let emitter = c.clone();
    let fault = std::thread::spawn(move || emitter.emit_fault("critical", "PodCrash"));
    assert!(c.wait_for(|s| s.faults_emitted == 1, WAIT));
    assert!(
        !c.wait_for(|s| s.subscriptions_cancelled_undeliverable > 0, SILENCE),
        "a blocked write alone cancels nothing"
    );
    drop(stream);
    assert!(c.wait_for(|s| s.subscriptions_cancelled_undeliverable == 1, WAIT));
    assert_eq!(fault.join().unwrap(), None);
    sim.stop();
}

#[test]
fn no_priming_comment_no_ids_and_no_keepalives_on_a_silent_get() {
    let sim = start(SimOptions {
        rate_per_sec: 0.0,
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let mut m = Mcp::initialize(c, None);
    m.rpc("logging/setLevel", json!({"level": "info"}));
    let (mut get, status) = m.get(&[]);
    assert_eq!(status, 200);
    m.subscribe_ok("faults");
    get.set_read_timeout(SILENCE);
    assert!(
        get.read_once().is_err(),
        "a silent GET sends nothing at all"
    );
    get.set_read_timeout(crate::sim::testkit::READ_LIMIT);
    c.emit_fault("warning", "JobFailure").expect("delivered");
    let mut stream = crate::sim::testkit::Stream { client: get };
    let text = stream.next_event();
    assert!(text.starts_with("event: message\ndata: {"), "{text:?}");
    assert!(!text.contains("\nid:") && !text.contains("retry:"));
    sim.stop();
}

#[test]
fn get_stream_head_is_go_sdks() {
    let sim = start(quiet(1));
    let m = Mcp::initialize(&sim.clusters()[0], None);
    let mut c = Client::connect(&sim.clusters()[0], None);
    c.send(
        "GET",
        "/mcp",
        &[
            ("Accept", "text/event-stream"),
            ("Mcp-Session-Id", &m.session),
        ],
        "",
    );
    let (status, headers) = c.head();
    let h = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(status, 200);
    assert_eq!(h("content-type"), Some("text/event-stream"));
    assert_eq!(h("cache-control"), Some("no-cache, no-transform"));
    assert_eq!(h("connection"), Some("keep-alive"));
    sim.stop();
}

#[test]
fn delete_answers_204_and_the_session_monitor_then_removes_its_subscriptions() {
    let sim = start(SimOptions {
        session_monitor_interval: Duration::from_millis(200),
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    m.subscribe_ok("events");
    assert_eq!(m.delete().status, 204);
    assert!(stream.ends());
    assert!(c.wait_for(
        |s| s.subscriptions_cancelled_by_monitor == 2 && s.subscriptions_active == 0,
        WAIT
    ));
    assert_eq!(c.stats().deletes, 1);
    sim.stop();
}

#[test]
fn a_fault_to_a_deleted_sessions_subscription_cancels_it() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (mut m, _stream) = Mcp::handshake(c, None, "faults");
    assert_eq!(m.delete().status, 204);
    assert_eq!(c.subscriptions().len(), 1, "the monitor has not run yet");
    assert_eq!(c.emit_fault("critical", "PodCrash"), None);
    assert!(c.subscriptions().is_empty());
    assert_eq!(c.stats().subscriptions_cancelled_undeliverable, 1);
    sim.stop();
}

#[test]
fn restart_forgets_sessions_and_subscriptions() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (m, _stream) = Mcp::handshake(c, None, "faults");
    c.stop_listening();
    c.restart().unwrap();
    assert!(c.subscriptions().is_empty() && c.sessions().is_empty());
    let mut old = m.resume(c);
    assert_eq!(
        old.post(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
            .status,
        404
    );
    assert_eq!(c.stats().subscriptions_active, 0);
    sim.stop();
}

#[test]
fn faults_are_edge_triggered() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (_a, mut first) = Mcp::handshake(c, None, "faults");
    let early = c.emit_fault("critical", "CrashLoop").expect("delivered");
    let (_b, mut second) = Mcp::handshake(c, None, "faults");
    let late = c.emit_fault("warning", "NodeUnhealthy").expect("delivered");
    assert_eq!(first.next_fault()["faultId"], early.as_str());
    assert_eq!(first.next_fault()["faultId"], late.as_str());
    // The later subscription never sees the fault that started before it existed.
    assert_eq!(second.next_fault()["faultId"], late.as_str());
    sim.stop();
}

#[test]
fn a_repeated_fault_id_reaches_a_subscription_once_per_dedup_window() {
    let sim = start(SimOptions {
        distinct_faults: 1,
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    let id = c.emit_fault("critical", "CrashLoop").expect("delivered");
    assert_eq!(c.emit_fault("critical", "CrashLoop"), None, "withheld");
    assert_eq!(c.stats().faults_deduplicated, 1);
    // A new subscription has its own window: the repeat reaches it (and only it).
    let new_sub = m.subscribe_ok("faults");
    assert_eq!(c.emit_fault("critical", "CrashLoop"), Some(id.clone()));
    assert_eq!(stream.next_fault()["faultId"], id.as_str());
    let again = stream.next_fault();
    assert_eq!(again["faultId"], id.as_str());
    assert_eq!(again["subscriptionId"], new_sub["subscriptionId"]);
    sim.stop();
}

#[test]
fn control_handles_list_cancel_and_count_subscriptions_silently() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (mut a, mut stream) = Mcp::handshake(c, None, "faults");
    let second = a.subscribe_ok("events")["subscriptionId"]
        .as_str()
        .unwrap()
        .to_string();
    let mut b = Mcp::initialize(c, None);
    b.subscribe_ok("faults");
    let subs = c.subscriptions();
    assert_eq!(subs.len(), 3);
    assert_eq!(
        (subs[1].id.as_str(), subs[1].mode.as_str()),
        (second.as_str(), "events")
    );
    assert_eq!(subs[1].session, a.session);
    assert!(!subs[1].degraded);
    let counts = c.subscription_counts();
    assert_eq!((counts[&a.session], counts[&b.session]), (2, 1));
    assert!(c.cancel_subscription(&second));
    assert!(!c.cancel_subscription(&second));
    assert_eq!(c.subscription_count(&a.session), 1);
    // Silent: the next thing on the stream is a fault, for the remaining subscription.
    let id = c.emit_fault("critical", "PodCrash").expect("delivered");
    assert_eq!(stream.next_fault()["faultId"], id.as_str());
    // b never set a level: its notifications are withheld and its subscription stays.
    assert_eq!(c.cancel_all_subscriptions(), 2);
    assert!(c.subscriptions().is_empty());
    assert_eq!(
        markdown_json(&a.call("events_list_subscriptions", json!({})))["total"],
        0
    );
    sim.stop();
}

#[test]
fn degrading_a_subscription_sends_one_subscription_error_warning() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "events");
    let id = c.subscriptions()[0].id.clone();
    assert!(c.degrade_subscription(&id));
    assert!(
        c.degrade_subscription(&id),
        "already degraded: no second notification"
    );
    let n = stream.next_message();
    assert_eq!(n["params"]["level"], "warning");
    assert_eq!(n["params"]["logger"], "kubernetes/subscription_error");
    assert_eq!(
        n["params"]["data"],
        json!({"subscriptionId": id, "cluster": c.name(),
               "error": "Watch connection failed after maximum retry attempts", "degraded": true})
    );
    assert!(c.subscriptions()[0].degraded);
    let list = m.list_subscriptions();
    assert_eq!(list["subscriptions"][0]["degraded"], true);
    // The writer counts a notification after writing it: wait for the count, not the bytes.
    assert!(c.wait_for(
        |s| s.subscription_errors_sent == 1,
        std::time::Duration::from_secs(5)
    ));
    assert_eq!(c.stats().subscription_errors_sent, 1);
    sim.stop();
}

#[test]
fn cutting_a_stream_keeps_the_session_and_its_subscriptions() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    assert!(c.cut_stream(&m.session));
    assert!(!c.cut_stream(&m.session), "no stream left to cut");
    assert!(stream.client.is_closed());
    assert_eq!(c.subscription_count(&m.session), 1);
    assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
    let mut again = m.open_stream();
    let id = c.emit_fault("warning", "JobFailure").expect("delivered");
    assert_eq!(again.next_fault()["faultId"], id.as_str());
    let s = c.stats();
    assert_eq!((s.streams_cut, s.get_streams_open), (1, 1));
    sim.stop();
}

#[test]
fn connection_close_puts_the_fin_right_behind_every_reply() {
    let sim = start(SimOptions {
        behaviours: vec![(0, Behaviour::ConnectionClose)],
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let mut raw = Client::connect(c, None);
    raw.send(
        "POST",
        "/mcp",
        &[],
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
    );
    let r = raw.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(raw.is_closed());
    // The whole MCP handshake still works, one connection per request.
    let session = r.header("mcp-session-id").unwrap().to_string();
    let mut again = Client::connect(c, None);
    again.send(
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &session)],
        r#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#,
    );
    assert_eq!(again.response().json()["result"], json!({}));
    assert!(again.is_closed());
    sim.stop();
}

#[test]
fn event_ids_number_get_events_and_a_replay_is_still_400() {
    let sim = start(SimOptions {
        behaviours: vec![(0, Behaviour::EventIds)],
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (m, mut stream) = Mcp::handshake(c, None, "faults");
    c.emit_fault("critical", "PodCrash").expect("delivered");
    c.emit_fault("critical", "PodCrash").expect("delivered");
    assert!(stream
        .next_event()
        .starts_with("event: message\nid: _0\ndata: {"));
    assert!(stream
        .next_event()
        .starts_with("event: message\nid: _1\ndata: {"));
    drop(stream);
    assert!(c.wait_for(|s| s.get_streams_open == 0, WAIT));
    let r = m.get_response(&[("Last-Event-ID", "_1")]);
    assert_eq!(
        (r.status, r.text()),
        (400, "stream replay unsupported\n".into())
    );
    sim.stop();
}

#[test]
fn cut_after_n_cuts_the_get_after_n_faults_and_keeps_the_session() {
    let sim = start(SimOptions {
        behaviours: vec![(0, Behaviour::CutAfter(2))],
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    for _ in 0..2 {
        c.emit_fault("critical", "PodCrash").expect("delivered");
        stream.next_fault();
    }
    assert!(stream.client.is_closed(), "cut without a terminating chunk");
    assert!(c.wait_for(|s| s.streams_cut == 1 && s.get_streams_open == 0, WAIT));
    assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
    assert_eq!(
        c.subscription_count(&m.session),
        1,
        "until a fault finds no stream"
    );
    assert_eq!(c.emit_fault("critical", "PodCrash"), None);
    assert_eq!(c.subscription_count(&m.session), 0);
    sim.stop();
}

#[test]
fn subscribe_reply_lost_creates_the_subscription_and_closes_the_connection() {
    let sim = start(SimOptions {
        behaviours: vec![(0, Behaviour::SubscribeReplyLost)],
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let m = Mcp::initialize(c, None);
    let mut raw = Client::connect(c, None);
    raw.send(
        "POST",
        "/mcp",
        &[("Mcp-Session-Id", &m.session)],
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"events_subscribe","arguments":{"mode":"faults"}}}"#,
    );
    assert!(raw.read_to_close().is_empty(), "no reply at all");
    assert_eq!(c.subscription_count(&m.session), 1);
    assert_eq!(c.stats().replies_dropped, 1);
    sim.stop();
}

#[test]
fn no_list_tool_answers_unknown_tool_32602() {
    let sim = start(SimOptions {
        behaviours: vec![(0, Behaviour::NoListTool)],
        ..quiet(1)
    });
    let mut m = Mcp::initialize(&sim.clusters()[0], None);
    let v = m.call("events_list_subscriptions", json!({}));
    assert_eq!(v["error"]["code"], -32602);
    assert_eq!(
        v["error"]["message"],
        "unknown tool \"events_list_subscriptions\""
    );
    let listed = m.rpc("tools/list", json!({})).to_string();
    assert!(!listed.contains("events_list_subscriptions"));
    assert!(listed.contains("events_unsubscribe"));
    sim.stop();
}

#[test]
fn cluster_field_can_be_empty_as_on_a_single_cluster_server() {
    let sim = start(SimOptions {
        cluster_field: ClusterField::Empty,
        ..quiet(1)
    });
    let c = &sim.clusters()[0];
    let (mut m, mut stream) = Mcp::handshake(c, None, "faults");
    assert_eq!(m.list_subscriptions()["subscriptions"][0]["cluster"], "");
    c.emit_fault("critical", "CrashLoop").expect("delivered");
    assert_eq!(stream.next_fault()["cluster"], "");
    sim.stop();
}

#[test]
fn server_errors_come_on_the_kubernetes_mcp_server_logger_with_string_data() {
    let sim = start(quiet(1));
    let c = &sim.clusters()[0];
    let (_m, mut stream) = Mcp::handshake(c, None, "faults");
    assert_eq!(c.emit_server_error("failed to list events: forbidden"), 1);
    let n = stream.next_message();
    assert_eq!(n["params"]["logger"], "kubernetes-mcp-server");
    assert_eq!(n["params"]["level"], "error");
    assert_eq!(n["params"]["data"], "failed to list events: forbidden");
    assert!(c.wait_for(|s| s.server_errors_sent == 1, WAIT));
    sim.stop();
}

#[test]
fn events_list_answers_no_events_found() {
    let sim = start(quiet(1));
    let mut m = Mcp::initialize(&sim.clusters()[0], None);
    assert_eq!(
        tool_text(&m.call("events_list", json!({}))),
        "# No events found"
    );
    sim.stop();
}
