//! Where an incident's Slack thread is: the channel and `ts` of its root message, kept in
//! the incident workspace as `slack.json` so a restart keeps updating the same message, and
//! the key that makes a repeat of the same fault on the same resource join that thread.

use serde::{Deserialize, Serialize};

use super::slack_api::is_slack_id;

/// The file in each incident workspace.
pub const THREAD_FILE: &str = "slack.json";
/// Largest `slack.json` read back.
pub const MAX_THREAD_FILE_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlackThreadRecord {
    /// The channel id Slack answered with.
    pub channel: String,
    /// The root message's timestamp: its id for `chat.update` and `thread_ts`.
    pub ts: String,
    /// Which fault on which resource the thread is about.
    pub thread_key: String,
    /// Runs posted to this thread so far.
    pub runs: u32,
}

impl SlackThreadRecord {
    /// Reads `slack.json`; anything that is not a record of Slack ids is refused, so a
    /// damaged or foreign file can never make us update someone else's message.
    pub fn parse(bytes: &[u8]) -> Result<SlackThreadRecord, String> {
        let record: SlackThreadRecord =
            serde_json::from_slice(bytes).map_err(|e| format!("not a thread record: {e}"))?;
        if !is_slack_id(&record.channel) || !is_slack_id(&record.ts) {
            return Err("channel or ts is not a Slack id".to_string());
        }
        if record.thread_key.len() > 4096 {
            return Err("thread key too long".to_string());
        }
        Ok(record)
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }
}

/// The same fault type on the same resource of the same cluster: one thread.
pub fn thread_key(
    cluster: &str,
    fault_type: &str,
    kind: &str,
    namespace: Option<&str>,
    name: &str,
) -> String {
    serde_json::json!([cluster, fault_type, kind, namespace.unwrap_or(""), name]).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips() {
        let record = SlackThreadRecord {
            channel: "C123".into(),
            ts: "1700000000.000100".into(),
            thread_key: thread_key("prod", "CrashLoop", "Pod", Some("shop"), "api"),
            runs: 2,
        };
        assert_eq!(SlackThreadRecord::parse(&record.to_bytes()), Ok(record));
    }

    #[test]
    fn records_with_foreign_ids_are_refused() {
        let bad = br#"{"channel":"C1 ; rm","ts":"1.2","thread_key":"k","runs":1}"#;
        assert!(SlackThreadRecord::parse(bad).is_err());
        assert!(SlackThreadRecord::parse(b"{").is_err());
    }

    #[test]
    fn keys_separate_resources_and_never_collide_on_separators() {
        assert_ne!(
            thread_key("a", "b/c", "Pod", None, "x"),
            thread_key("a", "b", "Pod", Some("c"), "x")
        );
        assert_eq!(
            thread_key("a", "T", "Pod", Some("ns"), "x"),
            thread_key("a", "T", "Pod", Some("ns"), "x")
        );
    }
}
