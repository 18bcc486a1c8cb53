//! JSON-RPC 2.0 messages as MCP uses them: one message per POST, notifications on streams.

use serde::Deserialize;
use serde_json::value::RawValue;

/// One decoded JSON-RPC message. Borrowed from the text it was parsed from: parsing a fault
/// notification allocates only what the fault itself keeps.
#[derive(Debug)]
pub enum Message<'a> {
    Request {
        id: &'a RawValue,
        method: String,
        params: Option<&'a RawValue>,
    },
    Notification {
        method: String,
        params: Option<&'a RawValue>,
    },
    Response {
        id: Option<u64>,
        result: &'a RawValue,
    },
    Error {
        id: Option<u64>,
        error: RpcError,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct RpcError {
    pub code: i64,
    #[serde(default)]
    pub message: String,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    method: Option<String>,
    #[serde(borrow, default)]
    params: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<RpcError>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedMessage(pub String);

impl std::fmt::Display for MalformedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed JSON-RPC message: {}", self.0)
    }
}

impl<'a> Message<'a> {
    pub fn parse(text: &'a str) -> Result<Message<'a>, MalformedMessage> {
        let envelope: Envelope<'a> =
            serde_json::from_str(text).map_err(|e| MalformedMessage(e.to_string()))?;
        // A JSON `null` id deserializes as a RawValue holding "null": treat it as absent.
        let id = envelope.id.filter(|raw| raw.get() != "null");
        match (envelope.method, id, envelope.result, envelope.error) {
            (Some(method), Some(id), _, _) => Ok(Message::Request {
                id,
                method,
                params: envelope.params,
            }),
            (Some(method), None, _, _) => Ok(Message::Notification {
                method,
                params: envelope.params,
            }),
            (None, id, Some(result), None) => Ok(Message::Response {
                id: id.and_then(numeric_id),
                result,
            }),
            (None, id, _, Some(error)) => Ok(Message::Error {
                id: id.and_then(numeric_id),
                error,
            }),
            (None, _, None, None) => Err(MalformedMessage(
                "neither method, result nor error present".into(),
            )),
        }
    }
}

fn numeric_id(raw: &RawValue) -> Option<u64> {
    raw.get().parse().ok()
}

/// Serializes a request with a numeric id.
pub fn request(id: u64, method: &str, params: &serde_json::Value) -> Vec<u8> {
    let message =
        serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    message.to_string().into_bytes()
}

/// Serializes a notification (no id, no reply expected beyond `202 Accepted`).
pub fn notification(method: &str) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}"}}"#).into_bytes()
}

/// The empty result we answer a server's `ping` with, echoing its id verbatim.
pub fn empty_result(id: &RawValue) -> Vec<u8> {
    format!(r#"{{"jsonrpc":"2.0","id":{},"result":{{}}}}"#, id.get()).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notification_request_response_and_error_are_told_apart() {
        let note =
            r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"info"}}"#;
        assert!(
            matches!(Message::parse(note).unwrap(), Message::Notification { method, .. } if method == "notifications/message")
        );
        let req = r#"{"jsonrpc":"2.0","id":"abc","method":"ping"}"#;
        assert!(
            matches!(Message::parse(req).unwrap(), Message::Request { id, .. } if id.get() == "\"abc\"")
        );
        let resp = r#"{"jsonrpc":"2.0","id":7,"result":{}}"#;
        assert!(matches!(
            Message::parse(resp).unwrap(),
            Message::Response { id: Some(7), .. }
        ));
        let err = r#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"unknown tool \"events_subscribe\""}}"#;
        match Message::parse(err).unwrap() {
            Message::Error { id, error } => {
                assert_eq!(id, Some(3));
                assert_eq!(error.code, -32602);
                assert!(error.message.contains("events_subscribe"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn null_id_error_is_an_error_without_id() {
        let err = r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse error"}}"#;
        assert!(matches!(
            Message::parse(err).unwrap(),
            Message::Error { id: None, .. }
        ));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for text in [
            "",
            "{",
            "[]",
            "null",
            "{\"jsonrpc\":\"2.0\"}",
            "\u{0}",
            "{\"id\":1}",
        ] {
            assert!(Message::parse(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn ping_answer_echoes_the_id_verbatim() {
        let req = r#"{"jsonrpc":"2.0","id":"x-1","method":"ping"}"#;
        let Message::Request { id, .. } = Message::parse(req).unwrap() else {
            panic!("not a request")
        };
        assert_eq!(
            String::from_utf8(empty_result(id)).unwrap(),
            r#"{"jsonrpc":"2.0","id":"x-1","result":{}}"#
        );
    }
}
