//! The messages of one incident's Slack thread in app mode: the root message, first
//! "investigating" and then edited to the outcome, and the replies in its thread. The first
//! line says cluster, severity, what broke and where; details follow; no raw JSON. Every
//! value from the wire is escaped and capped by the helpers shared with webhook mode.

use serde_json::{json, Value};

use super::slack::{
    context, field, format_duration, one_line, resource_text, section, severity_emoji,
    NotificationKind, TriageNotification,
};

const HEADER_MAX_CHARS: usize = 150;
const FALLBACK_MAX_CHARS: usize = 500;
const REPORT_PATH_MAX_CHARS: usize = 300;

/// "critical · CrashLoop · Pod shop/api-7d9f · prod-us-east-1": the first line.
fn headline(n: &TriageNotification) -> String {
    one_line(
        &format!(
            "{} {} · {} · {} · {}",
            severity_emoji(&n.severity),
            n.severity.to_uppercase(),
            n.fault_type,
            resource_text(n),
            n.cluster
        ),
        HEADER_MAX_CHARS,
    )
}

fn header(n: &TriageNotification) -> Value {
    json!({
        "type": "header",
        "text": { "type": "plain_text", "text": headline(n), "emoji": true }
    })
}

fn fallback(n: &TriageNotification, status: &str) -> String {
    one_line(
        &format!(
            "[{}] {} on {}: {} ({status})",
            n.severity,
            n.fault_type,
            n.cluster,
            resource_text(n)
        ),
        FALLBACK_MAX_CHARS,
    )
}

fn facts(n: &TriageNotification, status: &str) -> Vec<Value> {
    let mut fields = vec![field("Cluster", &n.cluster)];
    if let Some(environment) = n.environment.as_deref().filter(|e| !e.trim().is_empty()) {
        fields.push(field("Environment", environment));
    }
    fields.extend([
        field("Severity", &n.severity),
        field("Resource", &resource_text(n)),
        field("Fault type", &n.fault_type),
        field("Status", status),
    ]);
    fields
}

/// The root message while the agent runs. `run` counts the runs of this thread (1 first).
pub fn investigating(n: &TriageNotification, run: u32) -> Value {
    let status = if run > 1 {
        format!(":mag: Investigating (run {run})")
    } else {
        ":mag: Investigating".to_string()
    };
    json!({
        "text": fallback(n, "investigating"),
        "blocks": [
            header(n),
            { "type": "section", "fields": facts(n, &status) },
            context(n),
        ]
    })
}

/// The root message once the run ended: root cause, confidence, duration and where the
/// report is, or why the agent failed.
pub fn outcome(n: &TriageNotification, report_path: Option<&str>) -> Value {
    let (status, short) = match &n.kind_of {
        NotificationKind::Investigated => (":white_check_mark: Investigated", "investigated"),
        NotificationKind::AgentFailed { .. } => (":x: Agent failed", "agent failed"),
    };
    let mut fields = facts(n, status);
    fields.push(field("Duration", &format_duration(n.duration)));
    if n.kind_of == NotificationKind::Investigated {
        fields.push(field(
            "Confidence",
            n.summary.confidence.as_deref().unwrap_or("not stated"),
        ));
        if let Some(status) = n.summary.resource_status {
            fields.push(field("Resource now", status.as_str()));
        }
    }
    let mut blocks = vec![header(n), json!({ "type": "section", "fields": fields })];
    if let NotificationKind::AgentFailed { reason } = &n.kind_of {
        blocks.push(section("Agent failure", reason));
    }
    match (&n.kind_of, n.summary.root_cause.as_deref()) {
        (_, Some(root_cause)) => blocks.push(section("Root cause", root_cause)),
        (NotificationKind::Investigated, None) => blocks.push(section(
            "Root cause",
            "Not stated in the report; see the report.",
        )),
        (NotificationKind::AgentFailed { .. }, None) => {}
    }
    if let Some(summary) = n.summary.summary.as_deref() {
        blocks.push(section("Summary", summary));
    }
    if let Some(path) = report_path {
        blocks.push(report_block(path));
    }
    blocks.push(context(n));
    json!({ "text": fallback(n, short), "blocks": blocks })
}

/// The root message once the incident is resolved (`how`: "marked by the operator", "run 2
/// found the resource healthy"): the facts, the report's root cause and summary, and where
/// the report is.
pub fn resolved(n: &TriageNotification, report_path: Option<&str>, how: &str) -> Value {
    let status = format!(":large_green_circle: Resolved: {how}");
    let mut blocks = vec![
        header(n),
        json!({ "type": "section", "fields": facts(n, &status) }),
    ];
    if let Some(root_cause) = n.summary.root_cause.as_deref() {
        blocks.push(section("Root cause", root_cause));
    }
    if let Some(summary) = n.summary.summary.as_deref() {
        blocks.push(section("Summary", summary));
    }
    if let Some(path) = report_path {
        blocks.push(report_block(path));
    }
    blocks.push(context(n));
    json!({ "text": fallback(n, "resolved"), "blocks": blocks })
}

/// Where the report is, under the findings.
fn report_block(path: &str) -> Value {
    json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": format!("Report: `{}`", one_line(path, REPORT_PATH_MAX_CHARS)),
        }]
    })
}

/// A reply in the thread: one line of mrkdwn, as its fallback text and as its one block.
pub fn reply(line: &str) -> Value {
    let text = one_line(line, FALLBACK_MAX_CHARS);
    json!({
        "text": text,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": text } }]
    })
}

/// The reply that says when the incident was marked resolved.
pub fn resolved_reply(n: &TriageNotification) -> Value {
    reply(&format!(
        ":large_green_circle: Marked resolved (incident {})",
        n.incident_id
    ))
}

/// The reply that says a later run found the resource healthy, which resolved the incident.
pub fn healthy_reply(n: &TriageNotification, run: u32) -> Value {
    reply(&format!(
        ":large_green_circle: Run {run} found {} healthy: resolved (incident {})",
        resource_text(n),
        n.incident_id
    ))
}

/// A reply in the thread: the same fault came back and is investigated again.
pub fn repeat_reply(n: &TriageNotification, run: u32) -> Value {
    reply(&format!(
        ":repeat: Seen again (run {run}): {} on {}, incident {}",
        n.fault_type,
        resource_text(n),
        n.incident_id
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::report::InvestigationSummary;
    use std::time::Duration;

    fn notification() -> TriageNotification {
        TriageNotification {
            cluster: "prod-us-east-1".into(),
            environment: Some("production".into()),
            severity: "critical".into(),
            namespace: Some("shop".into()),
            kind: "Pod".into(),
            name: "api-7d9f".into(),
            fault_type: "CrashLoop".into(),
            incident_id: "inc-1".into(),
            kind_of: NotificationKind::Investigated,
            duration: Duration::from_secs(125),
            summary: InvestigationSummary {
                summary: Some("The api container exits on start.".into()),
                root_cause: Some("DATABASE_URL is missing from the Secret.".into()),
                confidence: Some("high".into()),
                ..InvestigationSummary::default()
            },
            labels: vec![("team".into(), "payments".into())],
            also_on: Vec::new(),
        }
    }

    fn all_text(v: &Value) -> String {
        v.to_string()
    }

    #[test]
    fn first_line_says_cluster_severity_what_and_where() {
        let root = investigating(&notification(), 1);
        assert_eq!(
            root["blocks"][0]["text"]["text"],
            ":red_circle: CRITICAL · CrashLoop · Pod shop/api-7d9f · prod-us-east-1"
        );
        assert!(all_text(&root).contains(":mag: Investigating"));
        assert!(!all_text(&root).contains("Duration"));
    }

    #[test]
    fn later_runs_say_which_run() {
        assert!(all_text(&investigating(&notification(), 3)).contains("Investigating (run 3)"));
    }

    #[test]
    fn outcome_carries_root_cause_confidence_duration_and_report() {
        let done = outcome(
            &notification(),
            Some("/var/lib/nightcrier/inc-1/output/r.md"),
        );
        let text = all_text(&done);
        for wanted in [
            "Investigated",
            "DATABASE_URL is missing",
            "*Confidence*\\nhigh",
            "*Duration*\\n2m 05s",
            "Report: `/var/lib/nightcrier/inc-1/output/r.md`",
        ] {
            assert!(text.contains(wanted), "{wanted}: {text}");
        }
        assert_eq!(
            done["blocks"][0]["text"]["text"],
            investigating(&notification(), 1)["blocks"][0]["text"]["text"]
        );
    }

    #[test]
    fn failure_outcome_says_why() {
        let mut n = notification();
        n.kind_of = NotificationKind::AgentFailed {
            reason: "timed out after 600s".into(),
        };
        n.summary = InvestigationSummary::default();
        let text = all_text(&outcome(&n, None));
        assert!(text.contains("Agent failed"));
        assert!(text.contains("timed out after 600s"));
        assert!(!text.contains("Confidence"));
    }

    #[test]
    fn wire_text_is_escaped_everywhere() {
        let mut n = notification();
        n.cluster = "<!channel>".into();
        n.name = "a<b>&".into();
        for message in [investigating(&n, 1), outcome(&n, None), repeat_reply(&n, 2)] {
            let text = all_text(&message);
            assert!(!text.contains("<!channel>"), "{text}");
            assert!(!text.contains("a<b>"), "{text}");
        }
    }

    #[test]
    fn resolved_root_keeps_the_findings_and_says_resolved() {
        let text = all_text(&resolved(
            &notification(),
            Some("/x/output/investigation.md"),
            "marked by the operator",
        ));
        assert!(
            text.contains(":large_green_circle: Resolved: marked by the operator"),
            "{text}"
        );
        assert!(text.contains("DATABASE_URL is missing"), "{text}");
        assert!(text.contains("(resolved)"), "{text}");
        assert!(all_text(&resolved_reply(&notification())).contains("Marked resolved"));
        let healthy = all_text(&healthy_reply(&notification(), 3));
        assert!(
            healthy.contains("Run 3 found Pod shop/api-7d9f healthy: resolved (incident inc-1)"),
            "{healthy}"
        );
    }

    #[test]
    fn outcome_states_the_resource_status_the_report_gives() {
        use crate::notify::report::ResourceStatus;
        let mut n = notification();
        assert!(!all_text(&outcome(&n, None)).contains("Resource now"));
        n.summary.resource_status = Some(ResourceStatus::Unhealthy);
        assert!(all_text(&outcome(&n, None)).contains("*Resource now*\\nunhealthy"));
    }

    #[test]
    fn repeat_reply_names_the_run_and_incident() {
        let text = all_text(&repeat_reply(&notification(), 2));
        assert!(text.contains("Seen again (run 2)"));
        assert!(text.contains("inc-1"));
    }
}
