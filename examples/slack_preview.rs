//! Writes the Block Kit of one incident's Slack thread in app mode (the root message while
//! investigating, then with the outcome or a failure, a repeat's reply, and the root and
//! reply once a later run found the resource healthy) as JSON, and a static HTML rendering
//! of it for a screenshot:
//!
//!   cargo run --example slack_preview -- docs/slack-preview
//!   chromium --headless --screenshot=docs/slack-preview/slack-thread.png \
//!     --window-size=760,1900 docs/slack-preview/slack-thread.html

use std::path::PathBuf;
use std::time::Duration;

use nightcrier::notify::incident_message::{
    healthy_reply, investigating, outcome, repeat_reply, resolved,
};
use nightcrier::notify::report::{InvestigationSummary, ResourceStatus};
use nightcrier::notify::slack::{NotificationKind, TriageNotification};
use serde_json::Value;

fn incident() -> TriageNotification {
    TriageNotification {
        cluster: "prod-eu-west-1".into(),
        environment: Some("production".into()),
        severity: "critical".into(),
        namespace: Some("payments".into()),
        kind: "Pod".into(),
        name: "checkout-api-7d9f8c6b5-x2lqp".into(),
        fault_type: "CrashLoop".into(),
        incident_id: "20261201T101431Z-prod-eu-west-1-3f526d".into(),
        kind_of: NotificationKind::Investigated,
        duration: Duration::from_secs(154),
        summary: InvestigationSummary {
            summary: Some(
                "checkout-api exits 2 seconds after start on every restart since the 10:02 \
                 rollout of image v2.14.0."
                    .into(),
            ),
            root_cause: Some(
                "The new image reads DATABASE_URL, which the payments-db Secret does not \
                 have (it still holds DB_URL); the process exits with \"missing DATABASE_URL\"."
                    .into(),
            ),
            confidence: Some("high".into()),
            resource_status: Some(ResourceStatus::Unhealthy),
        },
        labels: vec![
            ("team".into(), "payments".into()),
            ("region".into(), "eu-west-1".into()),
        ],
        also_on: Vec::new(),
    }
}

fn main() -> Result<(), String> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: slack_preview OUTPUT_DIR")?,
    );
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let n = incident();
    let mut failed = n.clone();
    failed.kind_of = NotificationKind::AgentFailed {
        reason: "timed out after 600s".into(),
    };
    failed.summary = InvestigationSummary::default();
    let report = format!(
        "/var/lib/nightcrier/incidents/{}/output/investigation.md",
        n.incident_id
    );
    let mut repeat = n.clone();
    repeat.incident_id = "20261201T113502Z-prod-eu-west-1-8a01c2".into();
    repeat.summary.resource_status = Some(ResourceStatus::Healthy);
    let repeat_report = format!(
        "/var/lib/nightcrier/incidents/{}/output/investigation.md",
        repeat.incident_id
    );
    let messages: Vec<(&str, &str, Value)> = vec![
        (
            "root-investigating",
            "Root message, posted when the agent starts",
            investigating(&n, 1),
        ),
        (
            "root-investigated",
            "The same message, edited with the outcome",
            outcome(&n, Some(&report)),
        ),
        (
            "root-agent-failed",
            "…or with the failure",
            outcome(&failed, None),
        ),
        (
            "thread-reply-repeat",
            "Reply in its thread when the fault comes back",
            repeat_reply(&repeat, 2),
        ),
        (
            "root-resolved",
            "The root once that later run found the resource healthy",
            resolved(
                &repeat,
                Some(&repeat_report),
                "run 2 found the resource healthy",
            ),
        ),
        (
            "thread-reply-healthy",
            "…and the reply that says so",
            healthy_reply(&repeat, 2),
        ),
    ];
    let mut html = String::from(HEAD);
    for (name, caption, message) in &messages {
        let path = dir.join(format!("{name}.json"));
        let text = serde_json::to_string_pretty(message).map_err(|e| e.to_string())?;
        std::fs::write(&path, text + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
        html.push_str(&format!("<p class=\"caption\">{caption}</p>\n"));
        html.push_str(&render(message, name.starts_with("thread")));
    }
    html.push_str("</body></html>\n");
    let path = dir.join("slack-thread.html");
    std::fs::write(&path, html).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("wrote {}", dir.display());
    Ok(())
}

const HEAD: &str = r#"<!doctype html><html><head><meta charset="utf-8"><style>
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; font-size: 15px;
       color: #1d1c1d; background: #fff; margin: 16px 24px; width: 700px; }
.caption { color: #616061; font-size: 13px; margin: 18px 0 4px; }
.message { display: flex; gap: 10px; border-left: 3px solid transparent; }
.message.reply { margin-left: 28px; border-left-color: #ddd; padding-left: 10px; }
.avatar { width: 36px; height: 36px; border-radius: 6px; background: #3f0e40; color: #fff;
          font-weight: bold; display: flex; align-items: center; justify-content: center; }
.name { font-weight: bold; } .app { font-size: 11px; color: #616061; background: #eee;
        padding: 0 3px; border-radius: 2px; margin-left: 4px; } .time { color: #616061;
        font-size: 12px; margin-left: 6px; }
.header { font-size: 18px; font-weight: bold; margin: 4px 0 6px; }
.fields { display: grid; grid-template-columns: 1fr 1fr; gap: 6px 16px; margin: 4px 0; }
.section { margin: 6px 0; line-height: 1.4; }
.context { color: #616061; font-size: 12px; margin: 4px 0; }
code { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; color: #c01343;
       background: #f6f6f6; border: 1px solid #e8e8e8; border-radius: 3px; padding: 0 2px; }
</style></head><body>
"#;

/// One message as Slack lays out its blocks (header, section text and fields, context).
fn render(message: &Value, reply: bool) -> String {
    let mut body = String::new();
    for block in message["blocks"].as_array().into_iter().flatten() {
        match block["type"].as_str() {
            Some("header") => body.push_str(&format!(
                "<div class=\"header\">{}</div>",
                mrkdwn(block["text"]["text"].as_str().unwrap_or_default())
            )),
            Some("section") => {
                if let Some(text) = block["text"]["text"].as_str() {
                    body.push_str(&format!("<div class=\"section\">{}</div>", mrkdwn(text)));
                }
                if let Some(fields) = block["fields"].as_array() {
                    body.push_str("<div class=\"fields\">");
                    for field in fields {
                        body.push_str(&format!(
                            "<div>{}</div>",
                            mrkdwn(field["text"].as_str().unwrap_or_default())
                        ));
                    }
                    body.push_str("</div>");
                }
            }
            Some("context") => {
                let parts: Vec<String> = block["elements"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|e| mrkdwn(e["text"].as_str().unwrap_or_default()))
                    .collect();
                body.push_str(&format!(
                    "<div class=\"context\">{}</div>",
                    parts.join(" &nbsp;·&nbsp; ")
                ));
            }
            _ => {}
        }
    }
    format!(
        "<div class=\"message{}\"><div class=\"avatar\">nc</div><div><span class=\"name\">\
         nightcrier</span><span class=\"app\">APP</span><span class=\"time\">10:14</span>{body}\
         </div></div>\n",
        if reply { " reply" } else { "" }
    )
}

/// Slack's mrkdwn as HTML: the text is escaped for Slack already (`&amp;`, `&lt;`,
/// `&gt;`), which HTML reads the same; `*bold*`, `_italic_`, `` `code` ``, line breaks and
/// the emoji shortcodes the messages use.
fn mrkdwn(text: &str) -> String {
    let mut out = text.replace('"', "&quot;");
    for (code, emoji) in [
        (":red_circle:", "🔴"),
        (":large_orange_circle:", "🟠"),
        (":large_yellow_circle:", "🟡"),
        (":large_blue_circle:", "🔵"),
        (":white_circle:", "⚪"),
        (":mag:", "🔍"),
        (":white_check_mark:", "✅"),
        (":x:", "❌"),
        (":repeat:", "🔁"),
        (":large_green_circle:", "🟢"),
    ] {
        out = out.replace(code, emoji);
    }
    for (mark, tag) in [('`', "code"), ('*', "b"), ('_', "i")] {
        out = emphasis(&out, mark, tag);
    }
    out.replace('\n', "<br>")
}

/// Pairs of `mark` at word boundaries become `<tag>…</tag>`, as Slack reads them: an opening
/// mark follows the start or a non-word character and precedes a non-space, a closing one
/// follows a non-space and precedes the end or a non-word character. `DATABASE_URL` stays.
fn emphasis(text: &str, mark: char, tag: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let word = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric());
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let opens = chars[i] == mark
            && (i == 0 || !word(chars.get(i - 1)))
            && chars.get(i + 1).is_some_and(|c| !c.is_whitespace());
        let close = opens
            .then(|| {
                (i + 2..chars.len()).find(|&j| {
                    chars[j] == mark && !chars[j - 1].is_whitespace() && !word(chars.get(j + 1))
                })
            })
            .flatten();
        match close {
            Some(j) => {
                let inner: String = chars[i + 1..j].iter().collect();
                out.push_str(&format!("<{tag}>{inner}</{tag}>"));
                i = j + 1;
            }
            None => {
                out.push(chars[i]);
                i += 1;
            }
        }
    }
    out
}
