//! The shape of a log line with `log_format = "json"`: one object per line,
//!
//! ```text
//! {"time":"2026-12-01T05:12:42.279Z","level":"INFO","target":"nightcrier::pipeline::intake","cluster":"prod-1","message":"cluster=prod-1 fault=… queued"}
//! ```
//!
//! `message` is the text line's message, unchanged. `cluster` and `incident` come from the
//! context every line about one cluster or incident starts with (`cluster=NAME`,
//! `cluster=NAME fault=ID incident ID`, `incident ID`; an incident id names its cluster):
//! only that leading context counts, which nightcrier writes before any wire text, so a
//! server cannot forge either field. A field that a line does not carry is left out.
//! Strings are escaped as JSON requires, and every other control character (DEL, C1, the
//! Unicode line and paragraph separators) as `\uXXXX` too, so a record is always exactly
//! one line that any JSON parser reads.

use std::io::{self, Write};
use std::time::SystemTime;

use log::Record;

use crate::agent::workspace::incident_time;
use crate::config::is_valid_cluster_name;
use crate::log_line::{timestamp, with_message};

/// Writes `record` as one JSON line; the `format` of the daemon's `env_logger` in json mode.
pub fn write_record(out: &mut impl Write, record: &Record<'_>) -> io::Result<()> {
    write_line(out, SystemTime::now(), record)
}

fn write_line(out: &mut impl Write, now: SystemTime, record: &Record<'_>) -> io::Result<()> {
    let mut stamp = [0u8; 32];
    let len = timestamp(now, &mut stamp);
    // The text line's stamp without its opening bracket.
    out.write_all(b"{\"time\":\"")?;
    out.write_all(&stamp[1..len])?;
    out.write_all(b"\",\"level\":\"")?;
    out.write_all(record.level().as_str().as_bytes())?;
    out.write_all(b"\",\"target\":")?;
    write_string(out, record.target())?;
    with_message(record, |message| {
        let context = LineContext::of(message);
        if let Some(cluster) = context.cluster {
            out.write_all(b",\"cluster\":")?;
            write_string(out, cluster)?;
        }
        if let Some(incident) = context.incident {
            out.write_all(b",\"incident\":")?;
            write_string(out, incident)?;
        }
        out.write_all(b",\"message\":")?;
        write_string(out, message)
    })?;
    out.write_all(b"}\n")
}

/// The cluster and incident a message is about, read from the context it starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LineContext<'a> {
    pub cluster: Option<&'a str>,
    pub incident: Option<&'a str>,
}

impl<'a> LineContext<'a> {
    pub fn of(message: &'a str) -> LineContext<'a> {
        let mut context = LineContext::default();
        let mut rest = message;
        if let Some(after) = rest.strip_prefix("cluster=") {
            let (name, after) = split_word(after);
            if !is_valid_cluster_name(name) {
                return context;
            }
            context.cluster = Some(name);
            rest = after.strip_prefix(' ').unwrap_or("");
            // `cluster=NAME fault=ID incident ID: …`: the fault id is wire text, skipped whole.
            if let Some(after) = rest.strip_prefix("fault=") {
                rest = after.split_once(' ').map_or("", |(_, after)| after);
            }
        }
        if let Some(after) = rest.strip_prefix("incident ") {
            let (id, _) = split_word(after);
            if let Some(cluster) = cluster_of_incident(id) {
                context.incident = Some(id);
                if context.cluster.is_none() {
                    context.cluster = Some(cluster);
                }
            }
        }
        context
    }
}

/// The leading run of name characters (`A-Z a-z 0-9 . _ -`) and what follows it.
fn split_word(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// The cluster named in an incident id (`20261124T041500Z-<cluster>-<6 hex>`), or `None`
/// when `id` is not an incident id.
pub fn cluster_of_incident(id: &str) -> Option<&str> {
    incident_time(id)?;
    let (rest, tag) = id.get(17..)?.rsplit_once('-')?;
    let hex = tag.len() == 6 && tag.bytes().all(|b| b.is_ascii_hexdigit());
    (hex && is_valid_cluster_name(rest)).then_some(rest)
}

/// Writes `text` as a JSON string.
fn write_string(out: &mut impl Write, text: &str) -> io::Result<()> {
    out.write_all(b"\"")?;
    let bytes = text.as_bytes();
    // 0xC2 starts the C1 controls, 0xE2 U+2028 and U+2029: rare, checked char by char.
    let plain = !bytes
        .iter()
        .any(|&b| b < 0x20 || matches!(b, b'"' | b'\\' | 0x7f | 0xc2 | 0xe2));
    if plain {
        out.write_all(bytes)?;
        return out.write_all(b"\"");
    }
    let mut clean_from = 0;
    for (at, c) in text.char_indices() {
        let escape: Option<&[u8]> = match c {
            '"' => Some(b"\\\""),
            '\\' => Some(b"\\\\"),
            '\n' => Some(b"\\n"),
            '\r' => Some(b"\\r"),
            '\t' => Some(b"\\t"),
            _ if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => None,
            _ => continue,
        };
        out.write_all(&bytes[clean_from..at])?;
        match escape {
            Some(escape) => out.write_all(escape)?,
            None => write!(out, "\\u{:04x}", u32::from(c))?,
        }
        clean_from = at + c.len_utf8();
    }
    out.write_all(&bytes[clean_from..])?;
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;
    use std::time::{Duration, UNIX_EPOCH};

    fn line(now: SystemTime, level: Level, target: &str, args: std::fmt::Arguments<'_>) -> String {
        let record = Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .build();
        let mut out = Vec::new();
        write_line(&mut out, now, &record).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn parsed(text: &str) -> serde_json::Map<String, serde_json::Value> {
        assert!(text.ends_with('\n'), "{text:?}");
        assert_eq!(text.matches('\n').count(), 1, "{text:?}");
        match serde_json::from_str(text.trim_end()) {
            Ok(serde_json::Value::Object(map)) => map,
            other => panic!("not a JSON object: {other:?} from {text:?}"),
        }
    }

    #[test]
    fn a_line_is_one_object_with_time_level_target_cluster_and_message() {
        let now = UNIX_EPOCH + Duration::from_millis(1_796_101_962_279);
        let name = "prod-1";
        let text = line(
            now,
            Level::Info,
            "nightcrier::cluster::status",
            format_args!("cluster={name} status subscribing -> active"),
        );
        assert_eq!(
            text,
            "{\"time\":\"2026-12-01T05:12:42.279Z\",\"level\":\"INFO\",\"target\":\"nightcrier::cluster::status\",\
             \"cluster\":\"prod-1\",\"message\":\"cluster=prod-1 status subscribing -> active\"}\n"
        );
    }

    #[test]
    fn fields_a_line_does_not_carry_are_left_out() {
        let map = parsed(&line(
            UNIX_EPOCH,
            Level::Warn,
            "nightcrier::daemon",
            format_args!("stopped"),
        ));
        let keys: Vec<&str> = map.keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 4, "{keys:?}");
        for key in ["time", "level", "target", "message"] {
            assert!(map.contains_key(key), "{key} missing from {keys:?}");
        }
        assert_eq!(map["level"], "WARN");
    }

    #[test]
    fn incident_lines_name_the_incident_and_its_cluster() {
        let id = "20261124T052244Z-tri-000-c54e94";
        for (message, cluster) in [
            (
                format!("incident {id}: agent finished on cluster tri-000 in 2.0s"),
                "tri-000",
            ),
            (
                format!("cluster=tri-000 incident {id}: agent investigated after 2.0s"),
                "tri-000",
            ),
            (
                format!("cluster=tri-000 fault=6c55 incident {id}: agent started"),
                "tri-000",
            ),
        ] {
            let map = parsed(&line(
                UNIX_EPOCH,
                Level::Info,
                "t",
                format_args!("{message}"),
            ));
            assert_eq!(map["incident"], id, "{message}");
            assert_eq!(map["cluster"], cluster, "{message}");
            assert_eq!(map["message"], message.as_str());
        }
    }

    #[test]
    fn only_the_leading_context_counts_so_wire_text_cannot_forge_fields() {
        for message in [
            "undecodable message #1: cluster=evil incident 20261124T052244Z-evil-c54e94",
            "pending: {\"cluster\":\"x\"}",
            "cluster=../etc status x",
            "incident ../../etc/passwd: nope",
            "incident 20261124T052244Z-a-zzzzzz: not hex",
        ] {
            let map = parsed(&line(
                UNIX_EPOCH,
                Level::Warn,
                "t",
                format_args!("{message}"),
            ));
            assert!(!map.contains_key("cluster"), "{message}: {map:?}");
            assert!(!map.contains_key("incident"), "{message}: {map:?}");
            assert_eq!(map["message"], message);
        }
        let map = parsed(&line(
            UNIX_EPOCH,
            Level::Warn,
            "t",
            // A fault id is visible ASCII without spaces: it cannot reach past its own word.
            format_args!("cluster=good fault=\"incident:20261124T052244Z-evil-c54e94\" queued"),
        ));
        assert_eq!(map["cluster"], "good");
        assert!(!map.contains_key("incident"), "{map:?}");
    }

    #[test]
    fn quotes_line_breaks_and_control_bytes_stay_one_valid_line() {
        let wire = "say \"hi\"\\ \r\n{\"level\":\"ERROR\"}\u{0}\u{1b}[31m\u{7f}\u{85}\u{2028}é\t\u{8}\u{c}";
        let text = line(
            UNIX_EPOCH,
            Level::Warn,
            "t",
            format_args!("cluster=c1 server said {wire}"),
        );
        let map = parsed(&text);
        assert_eq!(map["message"], format!("cluster=c1 server said {wire}"));
        assert_eq!(map["level"], "WARN");
        assert_eq!(map["cluster"], "c1");
        // Nothing below U+0020, no DEL, no C1 and no line separator is written raw.
        assert!(
            !text
                .trim_end()
                .chars()
                .any(|c| c.is_control() || c == '\u{2028}'),
            "{text:?}"
        );
        assert!(
            text.contains("\\u001b[31m\\u007f\\u0085\\u2028é\\t\\u0008\\u000c"),
            "{text}"
        );
    }

    #[test]
    fn an_incident_id_names_its_cluster() {
        assert_eq!(
            cluster_of_incident("20261124T052244Z-prod-eu.1-c54e94"),
            Some("prod-eu.1")
        );
        assert_eq!(cluster_of_incident("20261124T052244Z-x-1234567"), None);
        assert_eq!(cluster_of_incident("pending.jsonl"), None);
        assert_eq!(cluster_of_incident("20261124T052244Z--c54e94"), None);
    }
}
