//! Fault parsing (`events.rs`): the `data` of a `kubernetes/faults` or `kubernetes/events`
//! notification, as text.
//!
//! Checked on every input: a decoded fault keeps every wire string within its bound and
//! has a usable fault id; it survives the trip through JSON (incident.json,
//! pending.jsonl) unchanged; a log line carrying its fields is exactly one line with no
//! control character; and the one-pass decoding of a whole notification
//! (`McpSession::on_message`) gives the same fault, or the same refusal, as decoding the
//! data alone.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightcrier::config::SubscribeMode;
use nightcrier::events::FaultEvent;
use nightcrier::log_line::write_record;
use nightcrier::mcp::session::{McpSession, Output};
use nightcrier_fuzz::assert_fault_bounded;
use serde_json::value::RawValue;

fn check_fault(fault: &FaultEvent) {
    assert_fault_bounded(fault);
    let _ = fault.severity_level();

    let json = serde_json::to_string(fault).expect("a fault serializes");
    let back = FaultEvent::from_fault_data(&json).expect("a serialized fault parses");
    assert_eq!(&back, fault, "JSON round trip changed the fault");

    let r = &fault.resource;
    let mut line = Vec::new();
    write_record(
        &mut line,
        &log::Record::builder()
            .level(log::Level::Info)
            .target("nightcrier::pipeline::intake")
            .args(format_args!(
                "cluster={} fault={} type={} severity={} resource={}/{}/{} context={}",
                fault.cluster.as_deref().unwrap_or(""),
                fault.fault_id,
                fault.fault_type,
                fault.severity,
                r.kind,
                r.namespace.as_deref().unwrap_or(""),
                r.name,
                fault.context.as_deref().unwrap_or("")
            ))
            .build(),
    )
    .expect("writing to a Vec");
    let line = std::str::from_utf8(&line).expect("a log line is UTF-8");
    let body = line.strip_suffix('\n').expect("a log line ends in LF");
    assert!(
        !body.chars().any(char::is_control),
        "control character in log line {body:?}"
    );
}

/// A notification as the server sends it, around `data`.
fn notification(logger: &str, data: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"warning","logger":"{logger}","data":{data}}}}}"#
    )
}

/// The session decodes `data` inside a notification as `parsed` decoded it alone.
fn check_session_agrees(
    mode: SubscribeMode,
    logger: &str,
    text: &str,
    parsed: &Result<FaultEvent, serde_json::Error>,
) {
    // Only a single JSON value can stand in for `data`; the notification adds two levels
    // of nesting, which serde_json's depth limit of 128 counts.
    let nesting = text.bytes().filter(|&b| b == b'[' || b == b'{').count();
    if nesting > 100 || serde_json::from_str::<&RawValue>(text).is_err() {
        return;
    }
    let mut session = McpSession::new(mode, "fuzz");
    let mut out = Vec::new();
    session.on_message(&notification(logger, text), &mut out);
    match (parsed, out.as_slice()) {
        (Ok(fault), [Output::Fault(decoded)]) => {
            assert_eq!(decoded, fault, "the session decoded another fault")
        }
        (Err(_), [Output::Malformed(_)]) => {}
        (parsed, out) => panic!("alone: {parsed:?}; in a notification: {out:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let fault = FaultEvent::from_fault_data(text);
    if let Ok(fault) = &fault {
        check_fault(fault);
    }
    check_session_agrees(SubscribeMode::Faults, "kubernetes/faults", text, &fault);

    let event = FaultEvent::from_event_data(text);
    if let Ok(event) = &event {
        check_fault(event);
    }
    check_session_agrees(SubscribeMode::Events, "kubernetes/events", text, &event);
});
