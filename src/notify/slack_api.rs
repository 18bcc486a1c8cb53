//! The two Slack Web API methods app mode calls, `chat.postMessage` and `chat.update`: the
//! request each one sends, and what its answer means. Sans-I/O: the loop sends the bytes
//! and hands the status, `Retry-After` and body back here.

use std::time::Duration;

use serde_json::{json, Value};

/// Largest answer body read; Slack echoes the message back, which stays under this.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// Slack cuts `text` at 40,000 characters and refuses more than 50 blocks; the messages we
/// build stay far below both, and a `msg_too_long` answer is retried as text alone.
const MAX_BLOCKS: usize = 50;
const SHORT_TEXT_MAX_CHARS: usize = 3000;

/// A 429 never makes us come back sooner than this, whatever `Retry-After` says.
const MIN_RATE_LIMIT_DELAY: Duration = Duration::from_secs(1);
/// Nor later than this: a longer pause is answered again by Slack if still needed.
const MAX_RATE_LIMIT_DELAY: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ApiMethod {
    PostMessage,
    Update,
}

impl ApiMethod {
    pub fn name(self) -> &'static str {
        match self {
            ApiMethod::PostMessage => "chat.postMessage",
            ApiMethod::Update => "chat.update",
        }
    }

    /// Calls per minute Slack allows this method across the workspace (its tier).
    /// `chat.postMessage` has a special tier, limited per channel instead.
    pub fn calls_per_minute(self) -> Option<usize> {
        match self {
            ApiMethod::PostMessage => None,
            ApiMethod::Update => Some(50),
        }
    }
}

/// One Web API call: which method, in which channel, and its JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiCall {
    pub method: ApiMethod,
    pub channel: String,
    /// The message: `text` (the fallback) and `blocks`.
    pub message: Value,
    /// `chat.postMessage` into a thread.
    pub thread_ts: Option<String>,
    /// `chat.update` of this message.
    pub ts: Option<String>,
}

impl ApiCall {
    /// The request body Slack documents for the method.
    pub fn body(&self) -> Vec<u8> {
        let mut body = json!({ "channel": self.channel });
        let fields = [
            ("text", self.message.get("text")),
            ("blocks", self.message.get("blocks")),
        ];
        for (key, value) in fields {
            if let Some(value) = value {
                body[key] = value.clone();
            }
        }
        if let Some(thread_ts) = &self.thread_ts {
            body["thread_ts"] = json!(thread_ts);
        }
        if let Some(ts) = &self.ts {
            body["ts"] = json!(ts);
        }
        if self.method == ApiMethod::PostMessage {
            // Links in a report must not unfurl into the incident channel.
            body["unfurl_links"] = json!(false);
            body["unfurl_media"] = json!(false);
        }
        body.to_string().into_bytes()
    }

    /// The same call with its message cut to a short text alone, for `msg_too_long`.
    pub fn shortened(&self) -> ApiCall {
        let text = self
            .message
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or("nightcrier incident");
        let short: String = text.chars().take(SHORT_TEXT_MAX_CHARS).collect();
        ApiCall {
            message: json!({ "text": short }),
            ..self.clone()
        }
    }

    /// True when the message is within the limits we can check before sending.
    pub fn blocks_within_limits(&self) -> bool {
        self.message
            .get("blocks")
            .and_then(Value::as_array)
            .is_none_or(|blocks| blocks.len() <= MAX_BLOCKS)
    }
}

/// What an answer means for the call that got it.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiOutcome {
    /// Done; `ts` and `channel` name the message (the channel as Slack's id).
    Done {
        ts: Option<String>,
        channel: Option<String>,
    },
    /// HTTP 429: this method waits at least this long before any further call.
    RateLimited(Duration),
    /// Worth another attempt after backing off: 5xx, transport errors, Slack's own
    /// transient errors.
    Transient(String),
    /// The message was too long: send it again shortened.
    TooLong,
    /// Retrying cannot fix it (`channel_not_found`, `invalid_auth`, ...): the error name
    /// as metrics show it, and a reason for the log.
    Refused { error: &'static str, reason: String },
}

/// Slack errors a retry can fix.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
];

/// Error names kept as metric labels; any other name is counted as `other` (the answer is
/// untrusted, and a label set must stay bounded). The log line has the real name.
const KNOWN_ERRORS: &[&str] = &[
    "channel_not_found",
    "not_in_channel",
    "invalid_auth",
    "not_authed",
    "account_inactive",
    "token_revoked",
    "token_expired",
    "missing_scope",
    "is_archived",
    "msg_too_long",
    "message_not_found",
    "cant_update_message",
    "edit_window_closed",
    "invalid_blocks",
    "no_text",
    "restricted_action",
    "ratelimited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "invalid_json",
    "http_error",
    "transport_error",
];

/// The metric label of an error name: itself when known, `other` otherwise.
pub fn error_label(name: &str) -> &'static str {
    KNOWN_ERRORS
        .iter()
        .find(|known| **known == name)
        .copied()
        .unwrap_or("other")
}

/// Reads an answer. `status` is `None` after a transport error (its text in
/// `transport_error`).
pub fn classify(
    status: Option<u16>,
    retry_after: Option<&str>,
    body: &[u8],
    transport_error: Option<&str>,
) -> ApiOutcome {
    let status = match status {
        None => {
            let detail = transport_error.unwrap_or("no answer");
            return ApiOutcome::Transient(format!("transport error: {}", excerpt(detail)));
        }
        Some(status) => status,
    };
    if status == 429 {
        return ApiOutcome::RateLimited(rate_limit_delay(retry_after));
    }
    if (500..=599).contains(&status) {
        return ApiOutcome::Transient(format!("HTTP {status}"));
    }
    if status != 200 {
        return ApiOutcome::Refused {
            error: "http_error",
            reason: format!("HTTP {status}"),
        };
    }
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return ApiOutcome::Transient("the answer is not JSON".to_string());
    };
    if answer.get("ok").and_then(Value::as_bool) == Some(true) {
        let text = |key: &str| {
            answer
                .get(key)
                .and_then(Value::as_str)
                .filter(|s| is_slack_id(s))
                .map(str::to_owned)
        };
        return ApiOutcome::Done {
            ts: text("ts"),
            channel: text("channel"),
        };
    }
    let name = answer
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or("no error named");
    if name == "msg_too_long" {
        return ApiOutcome::TooLong;
    }
    if name == "ratelimited" {
        return ApiOutcome::RateLimited(rate_limit_delay(retry_after));
    }
    if TRANSIENT_ERRORS.contains(&name) {
        return ApiOutcome::Transient(format!("ok:false {}", excerpt(name)));
    }
    ApiOutcome::Refused {
        error: error_label(name),
        reason: format!("ok:false {}", excerpt(name)),
    }
}

/// Message timestamps and channel ids as Slack writes them: short, letters, digits and dots.
/// Anything else from the wire is not kept, so it can never reach a file name or a log
/// line unescaped.
pub fn is_slack_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

fn rate_limit_delay(retry_after: Option<&str>) -> Duration {
    let asked = retry_after
        .map(str::trim)
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .map_or(MIN_RATE_LIMIT_DELAY, |v| {
            Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
        });
    asked.clamp(MIN_RATE_LIMIT_DELAY, MAX_RATE_LIMIT_DELAY)
}

/// Wire text for a log line: one line, printable, at most 120 characters.
fn excerpt(text: &str) -> String {
    crate::logging::excerpt(text, 120)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(method: ApiMethod) -> ApiCall {
        ApiCall {
            method,
            channel: "C0INCIDENTS".into(),
            message: json!({ "text": "fallback", "blocks": [{ "type": "divider" }] }),
            thread_ts: None,
            ts: None,
        }
    }

    #[test]
    fn post_message_body_has_channel_text_blocks_and_no_unfurling() {
        let mut post = call(ApiMethod::PostMessage);
        post.thread_ts = Some("1700000000.000100".into());
        let body: Value = serde_json::from_slice(&post.body()).unwrap();
        assert_eq!(body["channel"], "C0INCIDENTS");
        assert_eq!(body["text"], "fallback");
        assert_eq!(body["blocks"][0]["type"], "divider");
        assert_eq!(body["thread_ts"], "1700000000.000100");
        assert_eq!(body["unfurl_links"], false);
        assert!(body.get("ts").is_none());
    }

    #[test]
    fn update_body_names_the_message_by_ts() {
        let mut update = call(ApiMethod::Update);
        update.ts = Some("1700000000.000100".into());
        let body: Value = serde_json::from_slice(&update.body()).unwrap();
        assert_eq!(body["ts"], "1700000000.000100");
        assert!(body.get("unfurl_links").is_none());
    }

    #[test]
    fn ok_answer_gives_ts_and_channel() {
        let body = br#"{"ok":true,"channel":"C123ABC","ts":"1503435956.000247","message":{}}"#;
        assert_eq!(
            classify(Some(200), None, body, None),
            ApiOutcome::Done {
                ts: Some("1503435956.000247".into()),
                channel: Some("C123ABC".into())
            }
        );
    }

    #[test]
    fn ts_that_is_not_a_slack_id_is_not_kept() {
        let body = br#"{"ok":true,"channel":"../etc","ts":"1 2\n"}"#;
        assert_eq!(
            classify(Some(200), None, body, None),
            ApiOutcome::Done {
                ts: None,
                channel: None
            }
        );
    }

    #[test]
    fn ok_false_errors_are_named_and_refused() {
        for name in [
            "channel_not_found",
            "not_in_channel",
            "invalid_auth",
            "missing_scope",
        ] {
            let body = format!(r#"{{"ok":false,"error":"{name}"}}"#);
            match classify(Some(200), None, body.as_bytes(), None) {
                ApiOutcome::Refused { error, reason } => {
                    assert_eq!(error, name);
                    assert!(reason.contains(name), "{reason}");
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn unknown_error_names_count_as_other_but_are_logged() {
        let body = br#"{"ok":false,"error":"brand_new_error\u001b[31m"}"#;
        match classify(Some(200), None, body, None) {
            ApiOutcome::Refused { error, reason } => {
                assert_eq!(error, "other");
                assert!(reason.contains("brand_new_error"), "{reason}");
                assert!(!reason.contains('\u{1b}'), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn msg_too_long_asks_for_a_shorter_message() {
        let body = br#"{"ok":false,"error":"msg_too_long"}"#;
        assert_eq!(classify(Some(200), None, body, None), ApiOutcome::TooLong);
        let short = call(ApiMethod::PostMessage).shortened();
        assert_eq!(short.message, json!({ "text": "fallback" }));
        assert_eq!(short.channel, "C0INCIDENTS");
    }

    #[test]
    fn http_429_waits_for_retry_after_within_bounds() {
        assert_eq!(
            classify(Some(429), Some("7"), b"", None),
            ApiOutcome::RateLimited(Duration::from_secs(7))
        );
        assert_eq!(
            classify(Some(429), Some("0"), b"", None),
            ApiOutcome::RateLimited(Duration::from_secs(1))
        );
        assert_eq!(
            classify(Some(429), Some("999999999999999999999"), b"", None),
            ApiOutcome::RateLimited(Duration::from_secs(300))
        );
        assert_eq!(
            classify(Some(429), Some("soon"), b"", None),
            ApiOutcome::RateLimited(Duration::from_secs(1))
        );
    }

    #[test]
    fn server_errors_transport_errors_and_garbage_are_transient() {
        assert!(matches!(
            classify(Some(503), None, b"", None),
            ApiOutcome::Transient(_)
        ));
        assert!(matches!(
            classify(None, None, b"", Some("connect: refused")),
            ApiOutcome::Transient(_)
        ));
        assert!(matches!(
            classify(Some(200), None, b"<html>", None),
            ApiOutcome::Transient(_)
        ));
        let body = br#"{"ok":false,"error":"internal_error"}"#;
        assert!(matches!(
            classify(Some(200), None, body, None),
            ApiOutcome::Transient(_)
        ));
    }

    #[test]
    fn other_statuses_are_refused() {
        assert!(matches!(
            classify(Some(404), None, b"", None),
            ApiOutcome::Refused {
                error: "http_error",
                ..
            }
        ));
    }

    #[test]
    fn only_update_has_a_workspace_tier() {
        assert_eq!(ApiMethod::Update.calls_per_minute(), Some(50));
        assert_eq!(ApiMethod::PostMessage.calls_per_minute(), None);
    }
}
