//! The Slack incoming-webhook message for one incident, and the retry policy that reads
//! the webhook's answer. Sans-I/O: the loop sends the bytes and reports the outcome here.

use std::time::Duration;

use serde_json::{json, Value};

use super::report::InvestigationSummary;

/// Slack's own limits (Block Kit reference), in characters.
const HEADER_MAX_CHARS: usize = 150;
/// Per-value caps, far below Slack's 2000 (field) and 3000 (section) so that the whole
/// message stays under 40 KB even when every character takes four bytes.
const FIELD_VALUE_MAX_CHARS: usize = 300;
const SECTION_BODY_MAX_CHARS: usize = 700;
const CONTEXT_MAX_CHARS: usize = 600;
const FALLBACK_TEXT_MAX_CHARS: usize = 500;
/// A reason handed back to the caller for logging stays one readable line.
const REASON_MAX_CHARS: usize = 300;

const ELLIPSIS: char = '…';

#[derive(Debug, Clone, PartialEq)]
pub enum NotificationKind {
    Investigated,
    AgentFailed { reason: String },
}

#[derive(Debug, Clone)]
pub struct TriageNotification {
    pub cluster: String,
    pub environment: Option<String>,
    pub severity: String,
    pub namespace: Option<String>,
    pub kind: String,
    pub name: String,
    pub fault_type: String,
    pub incident_id: String,
    pub kind_of: NotificationKind,
    pub duration: Duration,
    pub summary: InvestigationSummary,
    pub labels: Vec<(String, String)>,
    /// A correlated incident: the other clusters that had the same fault.
    pub also_on: Vec<String>,
}

/// The incoming-webhook body: a `text` fallback (notifications, screen readers) and the
/// Block Kit `blocks` that Slack renders.
pub fn build_payload(n: &TriageNotification) -> Value {
    let emoji = severity_emoji(&n.severity);
    let resource = resource_text(n);
    let (status_emoji, status) = match &n.kind_of {
        NotificationKind::Investigated => (":white_check_mark:", "Investigated"),
        NotificationKind::AgentFailed { .. } => (":x:", "Agent failed"),
    };

    let header = one_line(
        &format!("{emoji} {} on {}", n.fault_type, n.cluster),
        HEADER_MAX_CHARS,
    );

    let mut fields = vec![
        field("Cluster", &n.cluster),
        field("Severity", &n.severity),
        field("Resource", &resource),
        field("Fault type", &n.fault_type),
        field("Status", &format!("{status_emoji} {status}")),
        field("Duration", &format_duration(n.duration)),
    ];
    if let Some(environment) = n.environment.as_deref().filter(|e| !e.trim().is_empty()) {
        fields.insert(1, field("Environment", environment));
    }
    if n.kind_of == NotificationKind::Investigated {
        let confidence = n.summary.confidence.as_deref().unwrap_or("not stated");
        fields.push(field("Confidence", confidence));
        if let Some(status) = n.summary.resource_status {
            fields.push(field("Resource now", status.as_str()));
        }
    }

    let mut blocks = vec![
        json!({
            "type": "header",
            "text": { "type": "plain_text", "text": header, "emoji": true }
        }),
        json!({ "type": "section", "fields": fields }),
    ];
    if !n.also_on.is_empty() {
        let title = format!("Same fault on {} more clusters", n.also_on.len());
        blocks.push(section(&title, &n.also_on.join(", ")));
    }
    if let NotificationKind::AgentFailed { reason } = &n.kind_of {
        blocks.push(section("Agent failure", reason));
    }
    if let Some(summary) = n.summary.summary.as_deref() {
        blocks.push(section("Summary", summary));
    }
    match (&n.kind_of, n.summary.root_cause.as_deref()) {
        (_, Some(root_cause)) => blocks.push(section("Root cause", root_cause)),
        (NotificationKind::Investigated, None) => {
            blocks.push(json!({
                "type": "section",
                "text": { "type": "mrkdwn", "text": "*Root cause*\n_Not stated in the report._" }
            }));
        }
        (NotificationKind::AgentFailed { .. }, None) => {}
    }
    blocks.push(context(n));

    let fallback = one_line(
        &format!(
            "{emoji} [{}] {} on {}: {resource} ({status})",
            n.severity, n.fault_type, n.cluster
        ),
        FALLBACK_TEXT_MAX_CHARS,
    );

    json!({ "text": fallback, "blocks": blocks })
}

/// Shortcodes, so the header and the fallback text stay ASCII and render everywhere.
pub(super) fn severity_emoji(severity: &str) -> &'static str {
    match severity.trim().to_ascii_lowercase().as_str() {
        "critical" => ":red_circle:",
        "error" | "high" => ":large_orange_circle:",
        "warning" | "medium" => ":large_yellow_circle:",
        "info" | "low" => ":large_blue_circle:",
        _ => ":white_circle:",
    }
}

pub(super) fn resource_text(n: &TriageNotification) -> String {
    match n.namespace.as_deref().filter(|ns| !ns.trim().is_empty()) {
        Some(namespace) => format!("{} {}/{}", n.kind, namespace, n.name),
        None => format!("{} {}", n.kind, n.name),
    }
}

pub(super) fn field(label: &str, value: &str) -> Value {
    json!({
        "type": "mrkdwn",
        "text": format!("*{label}*\n{}", one_line(value, FIELD_VALUE_MAX_CHARS)),
    })
}

pub(super) fn section(title: &str, body: &str) -> Value {
    json!({
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": format!("*{title}*\n{}", mrkdwn_text(body, SECTION_BODY_MAX_CHARS)),
        }
    })
}

pub(super) fn context(n: &TriageNotification) -> Value {
    let mut elements = vec![json!({
        "type": "mrkdwn",
        "text": format!("Incident `{}`", one_line(&n.incident_id, 120)),
    })];
    if !n.labels.is_empty() {
        let labels = n
            .labels
            .iter()
            .take(50)
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" · ");
        elements.push(json!({
            "type": "mrkdwn",
            "text": one_line(&labels, CONTEXT_MAX_CHARS),
        }));
    }
    json!({ "type": "context", "elements": elements })
}

/// "850ms", "42s", "3m 05s", "1h 02m": exact enough for an operator, short for a field.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.subsec_millis())
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m {:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h {:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// Escaped, capped and never empty (Slack rejects empty text objects).
fn mrkdwn_text(raw: &str, max_chars: usize) -> String {
    let text = truncate_escaped(escape_mrkdwn(raw).trim(), max_chars);
    if text.is_empty() {
        "-".to_string()
    } else {
        text
    }
}

pub(super) fn one_line(raw: &str, max_chars: usize) -> String {
    let flat: String = raw
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    mrkdwn_text(&flat, max_chars)
}

/// Escapes the three characters Slack treats as control characters, and is idempotent: an
/// `&amp;`, `&lt;` or `&gt;` already present is kept, so text escaped once by the report
/// extraction is not escaped twice here. Other control characters become spaces.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, c) in text.char_indices() {
        match c {
            '&' => {
                let rest = &text[i..];
                if rest.starts_with("&amp;") || rest.starts_with("&lt;") || rest.starts_with("&gt;")
                {
                    out.push('&');
                } else {
                    out.push_str("&amp;");
                }
            }
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\n' | '\t' => out.push(c),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Cuts escaped text to at most `max_chars` characters, ending in "…" when cut, and never
/// in the middle of an `&amp;`/`&lt;`/`&gt;` entity.
pub fn truncate_escaped(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    if max_chars == 0 {
        return String::new();
    }
    let keep = max_chars - 1;
    let cut = text
        .char_indices()
        .nth(keep)
        .map_or(text.len(), |(byte, _)| byte);
    let mut head = &text[..cut];
    // An '&' within the last four bytes may start an entity that the cut split.
    if let Some(amp) = head.rfind('&') {
        if !head[amp..].contains(';') && head.len() - amp < 5 {
            head = &head[..amp];
        }
    }
    let mut out = head.trim_end().to_string();
    out.push(ELLIPSIS);
    out
}

/// How the loop retries a webhook delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub max_attempts: u32,
    /// Delay after the first failed attempt; doubles with each further one.
    pub base: Duration,
    /// No delay, not even one asked for by `Retry-After`, is longer than this.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum DeliveryDecision {
    Delivered,
    RetryAfter(Duration),
    GiveUp(String),
}

/// A 429 never makes us come back sooner than this, even if the server says 0.
const MIN_RATE_LIMIT_DELAY: Duration = Duration::from_secs(1);

impl RetryPolicy {
    /// attempt: 1-based number of the attempt that just finished. status: None = transport
    /// error (connect/TLS/timeout) with its text.
    ///
    /// Reasons never contain the webhook URL: it is a secret, and any URL-like word in a
    /// transport error's text is redacted.
    pub fn decide(
        &self,
        attempt: u32,
        status: Option<u16>,
        retry_after: Option<&str>,
        transport_error: Option<&str>,
    ) -> DeliveryDecision {
        let attempt = attempt.max(1);
        let (cause, delay) = match status {
            Some(200..=299) => return DeliveryDecision::Delivered,
            Some(429) => {
                let asked = retry_after
                    .and_then(parse_retry_after_seconds)
                    .unwrap_or(self.base);
                // The cap wins over the floor, so a policy with a short `max` stays short.
                let delay = asked.max(MIN_RATE_LIMIT_DELAY).min(self.max);
                ("rate limited by the webhook (HTTP 429)".to_string(), delay)
            }
            Some(code @ 500..=599) => (
                format!("webhook server error (HTTP {code})"),
                self.backoff(attempt),
            ),
            Some(code) => return DeliveryDecision::GiveUp(permanent_failure_reason(code)),
            None => {
                let detail = transport_error
                    .map(redact_urls)
                    .filter(|t| !t.is_empty())
                    .unwrap_or_else(|| "no response".to_string());
                (format!("transport error: {detail}"), self.backoff(attempt))
            }
        };
        if attempt >= self.max_attempts {
            let reason = format!("gave up after {attempt} attempts: {cause}");
            return DeliveryDecision::GiveUp(cap_reason(&reason));
        }
        DeliveryDecision::RetryAfter(delay)
    }

    /// base × 2^(attempt-1), capped at `max`, without overflow for any attempt number.
    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 2u32.checked_pow(attempt.saturating_sub(1));
        factor
            .and_then(|f| self.base.checked_mul(f))
            .map_or(self.max, |d| d.min(self.max))
    }
}

/// `Retry-After` as delta-seconds. The HTTP-date form would need the wall clock; it and
/// anything unparseable fall back to the policy's base delay.
fn parse_retry_after_seconds(value: &str) -> Option<Duration> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Digits only: a parse failure can only be overflow, which means "very long".
    Some(Duration::from_secs(
        value.parse::<u64>().unwrap_or(u64::MAX),
    ))
}

/// Statuses that retrying cannot fix: the URL or the payload is wrong.
fn permanent_failure_reason(code: u16) -> String {
    let what = match code {
        400 => "webhook rejected the message as invalid (HTTP 400, invalid_payload); check the payload",
        401 | 403 => "webhook refused the request (HTTP {code}, invalid or revoked token); check the webhook URL",
        404 => "webhook not found (HTTP 404, no_service); check the webhook URL",
        410 => "webhook's channel is archived or gone (HTTP 410); update the webhook URL",
        c if (400..500).contains(&c) => "webhook refused the request (HTTP {code}); not retrying",
        300..=399 => "webhook answered with a redirect (HTTP {code}); check the webhook URL",
        _ => "webhook answered with unexpected status {code}; not retrying",
    };
    what.replace("{code}", &code.to_string())
}

/// Replaces every word that looks like a URL or a webhook path with a placeholder.
fn redact_urls(text: &str) -> String {
    let redacted = text
        .split_whitespace()
        .map(|word| {
            let lower = word.to_ascii_lowercase();
            if lower.contains("://") || lower.contains("/services/") || lower.contains("hooks.") {
                "[url redacted]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    cap_reason(&redacted)
}

fn cap_reason(text: &str) -> String {
    if text.chars().count() <= REASON_MAX_CHARS {
        return text.to_string();
    }
    let mut out: String = text.chars().take(REASON_MAX_CHARS - 1).collect();
    out.push(ELLIPSIS);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn notification() -> TriageNotification {
        TriageNotification {
            cluster: "prod-us-east-1".to_string(),
            environment: Some("production".to_string()),
            severity: "critical".to_string(),
            namespace: Some("shop".to_string()),
            kind: "Pod".to_string(),
            name: "api-7d9f".to_string(),
            fault_type: "CrashLoop".to_string(),
            incident_id: "inc-20261120-0001".to_string(),
            kind_of: NotificationKind::Investigated,
            duration: Duration::from_secs(125),
            summary: InvestigationSummary {
                summary: Some("The api container exits on start.".to_string()),
                root_cause: Some("DATABASE_URL is missing from the Secret.".to_string()),
                confidence: Some("high".to_string()),
                ..InvestigationSummary::default()
            },
            labels: vec![("team".to_string(), "payments".to_string())],
            also_on: Vec::new(),
        }
    }

    fn blocks(payload: &Value) -> &Vec<Value> {
        payload["blocks"].as_array().unwrap()
    }

    fn block_of_type<'a>(payload: &'a Value, kind: &str) -> Vec<&'a Value> {
        blocks(payload)
            .iter()
            .filter(|b| b["type"] == kind)
            .collect()
    }

    fn field_texts(payload: &Value) -> Vec<String> {
        block_of_type(payload, "section")
            .iter()
            .filter_map(|b| b["fields"].as_array())
            .flatten()
            .map(|f| f["text"].as_str().unwrap().to_string())
            .collect()
    }

    fn section_texts(payload: &Value) -> Vec<String> {
        block_of_type(payload, "section")
            .iter()
            .filter_map(|b| b["text"]["text"].as_str())
            .map(str::to_string)
            .collect()
    }

    fn all_strings(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::String(s) => out.push(s.clone()),
            Value::Array(items) => items.iter().for_each(|v| all_strings(v, out)),
            Value::Object(map) => map.values().for_each(|v| all_strings(v, out)),
            _ => {}
        }
    }

    /// Checks every limit Slack enforces on what we send.
    fn assert_within_slack_limits(payload: &Value) {
        let header = &block_of_type(payload, "header")[0]["text"]["text"];
        assert!(header.as_str().unwrap().chars().count() <= 150);
        for block in blocks(payload) {
            if let Some(text) = block["text"]["text"].as_str() {
                assert!(!text.is_empty());
                assert!(text.chars().count() <= 3000);
            }
            if let Some(fields) = block["fields"].as_array() {
                assert!(fields.len() <= 10);
                for f in fields {
                    let text = f["text"].as_str().unwrap();
                    assert!(!text.is_empty());
                    assert!(text.chars().count() <= 2000);
                }
            }
            if let Some(elements) = block["elements"].as_array() {
                assert!(elements.len() <= 10);
                for e in elements {
                    let text = e["text"].as_str().unwrap();
                    assert!(!text.is_empty() && text.chars().count() <= 3000);
                }
            }
        }
        assert!(blocks(payload).len() <= 50);
        assert!(serde_json::to_vec(payload).unwrap().len() < 40 * 1024);
    }

    #[test]
    fn payload_has_fallback_text_and_blocks() {
        let payload = build_payload(&notification());
        let text = payload["text"].as_str().unwrap();
        assert!(text.contains("CrashLoop"));
        assert!(text.contains("prod-us-east-1"));
        assert!(text.contains("Pod shop/api-7d9f"));
        assert!(text.contains("Investigated"));
        assert_eq!(blocks(&payload)[0]["type"], "header");
        assert_eq!(blocks(&payload)[0]["text"]["type"], "plain_text");
        assert_eq!(blocks(&payload).last().unwrap()["type"], "context");
        assert_within_slack_limits(&payload);
    }

    #[test]
    fn header_names_severity_emoji_fault_type_and_cluster() {
        let payload = build_payload(&notification());
        let header = block_of_type(&payload, "header")[0]["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(header, ":red_circle: CrashLoop on prod-us-east-1");
    }

    #[test]
    fn severity_picks_its_emoji() {
        for (severity, emoji) in [
            ("critical", ":red_circle:"),
            ("Error", ":large_orange_circle:"),
            ("warning", ":large_yellow_circle:"),
            ("info", ":large_blue_circle:"),
            ("debug", ":white_circle:"),
            ("something-new", ":white_circle:"),
        ] {
            let mut n = notification();
            n.severity = severity.to_string();
            let payload = build_payload(&n);
            let header = block_of_type(&payload, "header")[0]["text"]["text"]
                .as_str()
                .unwrap()
                .to_string();
            assert!(header.starts_with(emoji), "{severity}: {header}");
            assert!(payload["text"].as_str().unwrap().starts_with(emoji));
        }
    }

    #[test]
    fn fields_carry_every_fact_of_the_incident() {
        let fields = field_texts(&build_payload(&notification()));
        assert_eq!(
            fields,
            vec![
                "*Cluster*\nprod-us-east-1",
                "*Environment*\nproduction",
                "*Severity*\ncritical",
                "*Resource*\nPod shop/api-7d9f",
                "*Fault type*\nCrashLoop",
                "*Status*\n:white_check_mark: Investigated",
                "*Duration*\n2m 05s",
                "*Confidence*\nhigh",
            ]
        );
    }

    #[test]
    fn missing_environment_and_namespace_are_left_out() {
        let mut n = notification();
        n.environment = None;
        n.namespace = None;
        n.kind = "Node".to_string();
        n.name = "worker-3".to_string();
        let fields = field_texts(&build_payload(&n));
        assert!(!fields.iter().any(|f| f.starts_with("*Environment*")));
        assert!(fields.contains(&"*Resource*\nNode worker-3".to_string()));
    }

    #[test]
    fn missing_confidence_reads_not_stated() {
        let mut n = notification();
        n.summary.confidence = None;
        let fields = field_texts(&build_payload(&n));
        assert!(fields.contains(&"*Confidence*\nnot stated".to_string()));
    }

    #[test]
    fn the_resource_status_the_report_states_is_a_field() {
        let mut n = notification();
        let fields = field_texts(&build_payload(&n));
        assert!(!fields.iter().any(|f| f.starts_with("*Resource now*")));
        n.summary.resource_status = Some(crate::notify::report::ResourceStatus::Healthy);
        let fields = field_texts(&build_payload(&n));
        assert!(fields.contains(&"*Resource now*\nhealthy".to_string()));
    }

    #[test]
    fn root_cause_gets_its_own_section() {
        let sections = section_texts(&build_payload(&notification()));
        assert!(sections
            .contains(&"*Root cause*\nDATABASE_URL is missing from the Secret.".to_string()));
        assert!(sections.contains(&"*Summary*\nThe api container exits on start.".to_string()));
    }

    #[test]
    fn missing_root_cause_says_so() {
        let mut n = notification();
        n.summary = InvestigationSummary::default();
        let sections = section_texts(&build_payload(&n));
        assert!(sections.contains(&"*Root cause*\n_Not stated in the report._".to_string()));
        assert!(!sections.iter().any(|s| s.starts_with("*Summary*")));
    }

    #[test]
    fn agent_failure_shows_status_and_reason_without_confidence() {
        let mut n = notification();
        n.kind_of = NotificationKind::AgentFailed {
            reason: "timed out after 600s".to_string(),
        };
        n.summary = InvestigationSummary::default();
        let payload = build_payload(&n);
        let fields = field_texts(&payload);
        assert!(fields.contains(&"*Status*\n:x: Agent failed".to_string()));
        assert!(!fields.iter().any(|f| f.starts_with("*Confidence*")));
        let sections = section_texts(&payload);
        assert!(sections.contains(&"*Agent failure*\ntimed out after 600s".to_string()));
        assert!(!sections.iter().any(|s| s.starts_with("*Root cause*")));
        assert!(payload["text"].as_str().unwrap().contains("Agent failed"));
    }

    #[test]
    fn context_carries_incident_id_and_labels() {
        let payload = build_payload(&notification());
        let context = block_of_type(&payload, "context")[0];
        let elements = context["elements"].as_array().unwrap();
        assert_eq!(elements[0]["text"], "Incident `inc-20261120-0001`");
        assert_eq!(elements[1]["text"], "team=payments");
    }

    #[test]
    fn every_text_from_the_wire_is_escaped() {
        let mut n = notification();
        n.cluster = "<!channel> & co".to_string();
        n.name = "a<b>".to_string();
        n.fault_type = "<https://evil.example|click>".to_string();
        n.summary.root_cause = Some("x < y && y > z".to_string());
        n.labels = vec![("<k>".to_string(), "&v".to_string())];
        let payload = build_payload(&n);
        let mut strings = Vec::new();
        all_strings(&payload, &mut strings);
        for s in &strings {
            assert!(!s.contains('<') && !s.contains('>'), "unescaped: {s}");
        }
        assert!(field_texts(&payload).contains(&"*Cluster*\n&lt;!channel&gt; &amp; co".to_string()));
        assert!(section_texts(&payload)
            .contains(&"*Root cause*\nx &lt; y &amp;&amp; y &gt; z".to_string()));
    }

    #[test]
    fn already_escaped_report_text_is_not_escaped_twice() {
        let mut n = notification();
        n.summary.root_cause = Some("a &lt; b &amp; c".to_string());
        let sections = section_texts(&build_payload(&n));
        assert!(sections.contains(&"*Root cause*\na &lt; b &amp; c".to_string()));
    }

    #[test]
    fn long_values_are_truncated_with_an_ellipsis() {
        let mut n = notification();
        n.cluster = "c".repeat(500);
        n.summary.root_cause = Some("r".repeat(5000));
        let payload = build_payload(&n);
        let header = block_of_type(&payload, "header")[0]["text"]["text"]
            .as_str()
            .unwrap();
        assert_eq!(header.chars().count(), 150);
        assert!(header.ends_with('…'));
        let root = section_texts(&payload)
            .into_iter()
            .find(|s| s.starts_with("*Root cause*"))
            .unwrap();
        assert!(root.ends_with('…'));
        assert!(root.chars().count() <= 3000);
        assert_within_slack_limits(&payload);
    }

    #[test]
    fn worst_case_input_stays_under_slack_limits_and_40_kb() {
        let huge = "&<>😀\"\\\u{1}".repeat(20_000);
        let n = TriageNotification {
            cluster: huge.clone(),
            environment: Some(huge.clone()),
            severity: huge.clone(),
            namespace: Some(huge.clone()),
            kind: huge.clone(),
            name: huge.clone(),
            fault_type: huge.clone(),
            incident_id: huge.clone(),
            kind_of: NotificationKind::AgentFailed {
                reason: huge.clone(),
            },
            duration: Duration::MAX,
            summary: InvestigationSummary {
                summary: Some(huge.clone()),
                root_cause: Some(huge.clone()),
                confidence: Some(huge.clone()),
                ..InvestigationSummary::default()
            },
            labels: (0..1000).map(|i| (format!("k{i}"), huge.clone())).collect(),
            also_on: vec![huge.clone(); 1000],
        };
        let payload = build_payload(&n);
        assert_within_slack_limits(&payload);
        let mut strings = Vec::new();
        all_strings(&payload, &mut strings);
        assert!(strings.iter().all(|s| !s.contains('\u{1}')));
    }

    #[test]
    fn empty_values_never_make_empty_text_objects() {
        let n = TriageNotification {
            cluster: String::new(),
            environment: Some(String::new()),
            severity: String::new(),
            namespace: Some(String::new()),
            kind: String::new(),
            name: String::new(),
            fault_type: String::new(),
            incident_id: String::new(),
            kind_of: NotificationKind::AgentFailed {
                reason: String::new(),
            },
            duration: Duration::ZERO,
            summary: InvestigationSummary {
                summary: Some(String::new()),
                root_cause: Some("  ".to_string()),
                confidence: None,
                ..InvestigationSummary::default()
            },
            labels: Vec::new(),
            also_on: Vec::new(),
        };
        assert_within_slack_limits(&build_payload(&n));
    }

    #[test]
    fn a_correlated_incident_names_its_other_clusters() {
        let mut n = notification();
        n.also_on = vec!["prod-eu-west-1".into(), "prod-ap-south-1".into()];
        let payload = build_payload(&n);
        let text = payload.to_string();
        assert!(
            text.contains("Same fault on 2 more clusters*\\nprod-eu-west-1, prod-ap-south-1"),
            "{text}"
        );
        assert!(!build_payload(&notification())
            .to_string()
            .contains("Same fault"));
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(format_duration(Duration::from_millis(850)), "850ms");
        assert_eq!(format_duration(Duration::from_secs(42)), "42s");
        assert_eq!(format_duration(Duration::from_secs(185)), "3m 05s");
        assert_eq!(format_duration(Duration::from_secs(3720)), "1h 02m");
    }

    #[test]
    fn truncation_never_splits_an_entity() {
        for max in 1..12 {
            let out = truncate_escaped("ab&amp;&lt;&gt;cdefgh", max);
            assert!(out.chars().count() <= max, "{max}: {out}");
            let body = out.trim_end_matches('…');
            if let Some(amp) = body.rfind('&') {
                assert!(body[amp..].contains(';'), "{max}: {out}");
            }
        }
        assert_eq!(truncate_escaped("short", 10), "short");
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_secs(2),
            max: Duration::from_secs(30),
        }
    }

    #[test]
    fn success_statuses_are_delivered() {
        for status in [200, 201, 204, 299] {
            assert_eq!(
                policy().decide(1, Some(status), None, None),
                DeliveryDecision::Delivered
            );
        }
        // Even on the last attempt.
        assert_eq!(
            policy().decide(5, Some(200), None, None),
            DeliveryDecision::Delivered
        );
    }

    #[test]
    fn rate_limit_honours_retry_after_seconds() {
        assert_eq!(
            policy().decide(1, Some(429), Some("7"), None),
            DeliveryDecision::RetryAfter(Duration::from_secs(7))
        );
        assert_eq!(
            policy().decide(3, Some(429), Some(" 12 "), None),
            DeliveryDecision::RetryAfter(Duration::from_secs(12))
        );
    }

    #[test]
    fn rate_limit_delay_is_capped_at_max() {
        assert_eq!(
            policy().decide(1, Some(429), Some("3600"), None),
            DeliveryDecision::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(
            policy().decide(1, Some(429), Some("99999999999999999999999"), None),
            DeliveryDecision::RetryAfter(Duration::from_secs(30))
        );
    }

    #[test]
    fn rate_limit_delay_is_at_least_one_second() {
        assert_eq!(
            policy().decide(1, Some(429), Some("0"), None),
            DeliveryDecision::RetryAfter(Duration::from_secs(1))
        );
        let short_base = RetryPolicy {
            base: Duration::from_millis(100),
            ..policy()
        };
        assert_eq!(
            short_base.decide(1, Some(429), None, None),
            DeliveryDecision::RetryAfter(Duration::from_secs(1))
        );
    }

    #[test]
    fn unparseable_or_date_retry_after_uses_base() {
        for value in ["Wed, 21 Oct 2015 07:28:00 GMT", "soon", "-5", "1.5", ""] {
            assert_eq!(
                policy().decide(2, Some(429), Some(value), None),
                DeliveryDecision::RetryAfter(Duration::from_secs(2)),
                "{value:?}"
            );
        }
        assert_eq!(
            policy().decide(2, Some(429), None, None),
            DeliveryDecision::RetryAfter(Duration::from_secs(2))
        );
    }

    #[test]
    fn server_errors_back_off_exponentially_up_to_max() {
        let delays: Vec<_> = (1..=4)
            .map(|attempt| policy().decide(attempt, Some(503), None, None))
            .collect();
        assert_eq!(
            delays,
            vec![
                DeliveryDecision::RetryAfter(Duration::from_secs(2)),
                DeliveryDecision::RetryAfter(Duration::from_secs(4)),
                DeliveryDecision::RetryAfter(Duration::from_secs(8)),
                DeliveryDecision::RetryAfter(Duration::from_secs(16)),
            ]
        );
        let many = RetryPolicy {
            max_attempts: 100,
            ..policy()
        };
        assert_eq!(
            many.decide(5, Some(500), None, None),
            DeliveryDecision::RetryAfter(Duration::from_secs(30))
        );
        assert_eq!(
            many.decide(99, Some(500), None, None),
            DeliveryDecision::RetryAfter(Duration::from_secs(30))
        );
    }

    #[test]
    fn transport_errors_back_off_like_server_errors() {
        assert_eq!(
            policy().decide(2, None, None, Some("connection refused")),
            DeliveryDecision::RetryAfter(Duration::from_secs(4))
        );
        assert_eq!(
            policy().decide(1, None, None, None),
            DeliveryDecision::RetryAfter(Duration::from_secs(2))
        );
    }

    #[test]
    fn client_errors_give_up_at_once_with_a_reason() {
        for (status, expected) in [
            (400, "invalid_payload"),
            (403, "HTTP 403"),
            (404, "no_service"),
            (410, "archived"),
            (418, "HTTP 418"),
            (301, "redirect"),
        ] {
            match policy().decide(1, Some(status), None, None) {
                DeliveryDecision::GiveUp(reason) => {
                    assert!(reason.contains(expected), "{status}: {reason}")
                }
                other => panic!("{status}: {other:?}"),
            }
        }
    }

    #[test]
    fn retries_stop_after_max_attempts_naming_the_last_cause() {
        assert_eq!(
            policy().decide(5, Some(502), None, None),
            DeliveryDecision::GiveUp(
                "gave up after 5 attempts: webhook server error (HTTP 502)".to_string()
            )
        );
        assert_eq!(
            policy().decide(5, Some(429), Some("1"), None),
            DeliveryDecision::GiveUp(
                "gave up after 5 attempts: rate limited by the webhook (HTTP 429)".to_string()
            )
        );
        assert_eq!(
            policy().decide(5, None, None, Some("tls: handshake failed")),
            DeliveryDecision::GiveUp(
                "gave up after 5 attempts: transport error: tls: handshake failed".to_string()
            )
        );
        assert!(matches!(
            policy().decide(4, Some(502), None, None),
            DeliveryDecision::RetryAfter(_)
        ));
    }

    #[test]
    fn single_attempt_policy_never_retries() {
        let once = RetryPolicy {
            max_attempts: 1,
            ..policy()
        };
        assert!(matches!(
            once.decide(1, Some(500), None, None),
            DeliveryDecision::GiveUp(_)
        ));
        let zero = RetryPolicy {
            max_attempts: 0,
            ..policy()
        };
        assert!(matches!(
            zero.decide(1, Some(500), None, None),
            DeliveryDecision::GiveUp(_)
        ));
    }

    #[test]
    fn reasons_never_contain_the_webhook_url() {
        let url = "https://hooks.slack.com/services/T000/B000/XXXXSECRET";
        let error = format!("connect to {url} failed: timed out");
        for attempt in [1, 5] {
            let decision = policy().decide(attempt, None, None, Some(&error));
            if let DeliveryDecision::GiveUp(reason) = decision {
                assert!(!reason.contains("XXXXSECRET"), "{reason}");
                assert!(!reason.contains("/services/"), "{reason}");
                assert!(reason.contains("timed out"), "{reason}");
            }
        }
        let bare = "POST /services/T000/B000/XXXXSECRET: broken pipe";
        match policy().decide(5, None, None, Some(bare)) {
            DeliveryDecision::GiveUp(reason) => {
                assert!(!reason.contains("XXXXSECRET"), "{reason}");
                assert!(reason.contains("broken pipe"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn long_transport_errors_are_capped_in_the_reason() {
        let error = "x".repeat(10_000);
        match policy().decide(5, None, None, Some(&error)) {
            DeliveryDecision::GiveUp(reason) => assert!(reason.chars().count() <= 300),
            other => panic!("{other:?}"),
        }
    }
}
