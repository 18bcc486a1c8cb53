//! Pulls the summary, root cause, confidence and the resource's current status out of the
//! agent's free-form `output/investigation.md`. Agents word their reports as they like, so a field is found
//! by heading (any level, loose wording), by a bold pseudo-heading on its own line, or by
//! an inline `Label: text` line; the best-worded match of each field wins.
//!
//! Work is linear in the input and every kept piece of text is bounded, so a runaway
//! report costs time proportional to its size and no more memory than a few KiB.

use serde::Serialize;

use super::slack::{escape_mrkdwn, truncate_escaped};

pub const SUMMARY_MAX_CHARS: usize = 600;
pub const ROOT_CAUSE_MAX_CHARS: usize = 600;
/// A confidence that is not one of the three levels is shown as written, briefly.
pub const CONFIDENCE_MAX_CHARS: usize = 120;

/// Raw text kept per candidate section: ample for the capped output.
const RAW_SECTION_MAX_BYTES: usize = 8 * 1024;
/// How far into a line a `Label:` colon is looked for.
const LABEL_SCAN_BYTES: usize = 120;
/// Pseudo-headings (`**Root cause**` alone on a line) rank below every real heading level.
const PSEUDO_HEADING_LEVEL: u8 = 7;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct InvestigationSummary {
    pub summary: Option<String>,
    pub root_cause: Option<String>,
    /// "low", "medium" or "high" when recognizable, else the text as written.
    pub confidence: Option<String>,
    /// How the resource was when the agent finished ("Current Status" in the report).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_status: Option<ResourceStatus>,
}

/// The first word of the report's "Current Status" section. Only these exact words count
/// as healthy, so "not healthy", "healthy?" or a status copied from `kubectl` output never
/// resolves an incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ResourceStatus {
    Healthy,
    Unhealthy,
    Unknown,
}

impl ResourceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceStatus::Healthy => "healthy",
            ResourceStatus::Unhealthy => "unhealthy",
            ResourceStatus::Unknown => "unknown",
        }
    }
}

/// Fields are escaped for Slack mrkdwn (`&`, `<`, `>`), lightly stripped of markdown
/// emphasis, trimmed and capped; a field the report does not state is `None`.
pub fn extract_report(markdown: &str) -> InvestigationSummary {
    let mut scan = Scan::default();
    for line in markdown.lines() {
        scan.line(line.trim_end());
    }
    let [summary, root_cause, confidence, status] = scan.finish();

    InvestigationSummary {
        summary: summary.and_then(|raw| capped_text(&raw, SUMMARY_MAX_CHARS)),
        root_cause: root_cause.and_then(|raw| capped_text(&raw, ROOT_CAUSE_MAX_CHARS)),
        confidence: confidence.and_then(|raw| confidence_text(&raw)),
        resource_status: status.as_deref().map(resource_status),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Summary,
    RootCause,
    Confidence,
    Status,
}

impl Field {
    fn index(self) -> usize {
        match self {
            Field::Summary => 0,
            Field::RootCause => 1,
            Field::Confidence => 2,
            Field::Status => 3,
        }
    }
}

/// How well a label names its field; lower is better.
/// 0: it is the field's name ("Root cause", "Probable root cause", "Executive summary");
/// 1: a known variant of it ("Root cause analysis", "Confidence level");
/// 2: it starts with the name ("Root cause of the outage");
/// 3: it mentions it ("Findings and root cause").
type Rank = u8;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    Heading,
    Inline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Label {
    field: Field,
    rank: Rank,
}

/// Ordering key of a candidate; the smallest wins, the earliest among equals.
/// `titled` marks a heading that carries its own text after a colon, as report titles do
/// ("# Incident summary: api CrashLoop"), so a plain "## Summary" beats it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Quality {
    rank: Rank,
    titled: bool,
    source: Source,
}

struct Section {
    field: Field,
    quality: Quality,
    level: u8,
    text: String,
}

impl Section {
    fn new(label: Label, source: Source, level: u8, first: &str) -> Section {
        let mut section = Section {
            field: label.field,
            quality: Quality {
                rank: label.rank,
                titled: source == Source::Heading && !first.trim().is_empty(),
                source,
            },
            level,
            text: String::new(),
        };
        section.push(first);
        section
    }

    fn push(&mut self, line: &str) {
        let room = RAW_SECTION_MAX_BYTES.saturating_sub(self.text.len());
        if room == 0 {
            return;
        }
        self.text.push_str(prefix_within(line, room));
        self.text.push('\n');
    }

    fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }

    fn is_pseudo(&self) -> bool {
        self.level == PSEUDO_HEADING_LEVEL
    }
}

#[derive(Default)]
struct Scan {
    best: [Option<(Quality, String)>; 4],
    /// A section opened by a heading or a pseudo-heading.
    heading: Option<Section>,
    /// A section opened by `Label: text`; it ends with its paragraph.
    inline: Option<Section>,
    in_fence: bool,
}

impl Scan {
    fn line(&mut self, line: &str) {
        let trimmed = line.trim_start();

        if is_fence(trimmed) || self.in_fence {
            if is_fence(trimmed) {
                self.in_fence = !self.in_fence;
            }
            // Code belongs to the section around it; `#` in a shell snippet is no heading.
            self.close_inline();
            if let Some(section) = &mut self.heading {
                section.push(line);
            }
            return;
        }

        if let Some((level, text)) = atx_heading(trimmed) {
            self.close_inline();
            self.on_heading(level, text);
            return;
        }

        if trimmed.is_empty() {
            self.close_inline();
            if let Some(section) = &mut self.heading {
                section.push("");
            }
            return;
        }

        if is_thematic_break(trimmed) {
            self.close_inline();
            if self.heading.as_ref().is_some_and(|s| !s.is_blank()) {
                self.close_heading();
            }
            return;
        }

        if let Some((label, rest)) = label_line(trimmed) {
            self.close_inline();
            self.on_label(label, rest, line);
            return;
        }

        if is_bold_line(trimmed) {
            // "**Evidence**" ends a pseudo-headed section the way a heading would.
            self.close_inline();
            if self
                .heading
                .as_ref()
                .is_some_and(|s| s.is_pseudo() && !s.is_blank())
            {
                self.close_heading();
            }
        }

        if self.inline.is_some() && starts_list_item(trimmed) {
            self.close_inline();
        }
        if let Some(section) = &mut self.inline {
            section.push(trimmed);
        }
        if let Some(section) = &mut self.heading {
            section.push(line);
        }
    }

    fn on_heading(&mut self, level: u8, text: &str) {
        if let Some((label, rest)) = heading_label(text) {
            self.close_heading();
            self.heading = Some(Section::new(label, Source::Heading, level, rest));
            return;
        }
        if let Some(section) = &mut self.heading {
            // "## Root cause" directly followed by "### The OOM kill": the subheading is
            // the start of the answer, not the end of the section.
            if level > section.level && section.is_blank() {
                section.push(text);
                return;
            }
        }
        self.close_heading();
    }

    fn on_label(&mut self, label: Label, rest: &str, line: &str) {
        if rest.is_empty() {
            // A pseudo-heading: "**Root cause:**" or "Summary" alone on its line.
            if let Some(section) = &self.heading {
                if section.field == label.field && section.is_blank() {
                    return;
                }
            }
            self.close_heading();
            self.heading = Some(Section::new(
                label,
                Source::Heading,
                PSEUDO_HEADING_LEVEL,
                "",
            ));
            return;
        }
        if let Some(section) = &mut self.heading {
            if section.field == label.field && section.is_blank() {
                // "## Root cause" then "**Root cause:** X": the label repeats the heading.
                section.push(rest);
                return;
            }
            if section.is_pseudo() || !section.is_blank() {
                self.close_heading();
            } else {
                section.push(line);
            }
        }
        self.inline = Some(Section::new(
            label,
            Source::Inline,
            PSEUDO_HEADING_LEVEL,
            rest,
        ));
    }

    fn close_inline(&mut self) {
        if let Some(section) = self.inline.take() {
            self.offer(section);
        }
    }

    fn close_heading(&mut self) {
        if let Some(section) = self.heading.take() {
            self.offer(section);
        }
    }

    fn offer(&mut self, section: Section) {
        if section.is_blank() {
            return;
        }
        let slot = &mut self.best[section.field.index()];
        let better = match slot {
            Some((quality, _)) => section.quality < *quality,
            None => true,
        };
        if better {
            *slot = Some((section.quality, section.text));
        }
    }

    fn finish(mut self) -> [Option<String>; 4] {
        self.close_inline();
        self.close_heading();
        self.best.map(|slot| slot.map(|(_, text)| text))
    }
}

/// `## Heading` → (2, "Heading"); also `#Heading`, which agents write and renderers accept.
fn atx_heading(trimmed: &str) -> Option<(u8, &str)> {
    let hashes = trimmed.bytes().take_while(|&b| b == b'#').count();
    if hashes == 0 || hashes > 6 {
        return None;
    }
    let text = trimmed[hashes..].trim();
    let text = text.trim_end_matches('#').trim_end();
    if text.is_empty() {
        return None;
    }
    Some((hashes as u8, text))
}

/// A heading names a field either as a whole ("Root Cause Analysis") or before a colon
/// ("Root Cause: missing Secret"), in which case the rest is the section's first line.
fn heading_label(text: &str) -> Option<(Label, &str)> {
    if let Some(colon) = colon_within(text, LABEL_SCAN_BYTES) {
        if let Some(label) = classify(&text[..colon]) {
            return Some((label, strip_emphasis_edges(&text[colon + 1..])));
        }
    }
    classify(text).map(|label| (label, ""))
}

/// `Root cause: text`, `**Root cause:** text`, `- **Confidence**: High`, or a label alone
/// on its line (`**Root Cause**`, `Summary:`). Inline labels must be the field's name or a
/// known variant (rank ≤ 1), so "The root cause is unclear: …" and "Events summary: 5
/// restarts" stay ordinary lines.
fn label_line(trimmed: &str) -> Option<(Label, &str)> {
    let body = strip_line_markers(trimmed);
    if let Some(colon) = colon_within(body, LABEL_SCAN_BYTES) {
        let head = &body[..colon];
        if head.split_whitespace().count() <= 5 {
            if let Some(label) = classify(head).filter(|l| l.rank <= 1) {
                let rest = strip_emphasis_edges(&body[colon + 1..]);
                return Some((label, rest));
            }
        }
    }
    if body.len() <= LABEL_SCAN_BYTES {
        if let Some(label) = classify(body).filter(|l| l.rank <= 1) {
            return Some((label, ""));
        }
    }
    None
}

/// Words that qualify a field's name without changing it.
const QUALIFIERS: &[&str] = &[
    "probable",
    "likely",
    "most",
    "suspected",
    "identified",
    "primary",
    "possible",
    "apparent",
    "underlying",
    "actual",
    "the",
    "executive",
    "incident",
    "investigation",
    "overall",
    "brief",
    "quick",
    "short",
    "final",
    "our",
];

fn classify(label: &str) -> Option<Label> {
    let normalized = normalize_label(label);
    if normalized.is_empty() {
        return None;
    }
    let mut core = normalized.as_str();
    while let Some((word, rest)) = core.split_once(' ') {
        if !QUALIFIERS.contains(&word) {
            break;
        }
        core = rest;
    }
    // A bare "Status" is not the field: evidence lists are full of `Status: Running` lines
    // about other objects.
    let fields: [(Field, &[&str], &[&str], &str); 4] = [
        (
            Field::RootCause,
            &["root cause", "root causes", "cause"],
            &[
                "root cause analysis",
                "root cause hypothesis",
                "root cause summary",
                "cause analysis",
                "rca",
            ],
            "root cause",
        ),
        (
            Field::Confidence,
            &["confidence"],
            &[
                "confidence level",
                "confidence assessment",
                "confidence score",
                "confidence rating",
            ],
            "confidence",
        ),
        (
            Field::Summary,
            &["summary", "tl;dr", "tldr"],
            &["summary of findings", "findings summary"],
            "summary",
        ),
        (
            Field::Status,
            &[
                "current status",
                "current state",
                "resource status",
                "resource state",
                "current health",
            ],
            &[
                "current resource status",
                "current status of the resource",
                "status now",
            ],
            "current status",
        ),
    ];
    for (field, names, variants, keyword) in fields {
        let rank = if names.contains(&core) {
            0
        } else if variants.contains(&core) {
            1
        } else if core.starts_with(keyword) {
            2
        } else if normalized.contains(keyword) {
            3
        } else {
            continue;
        };
        return Some(Label { field, rank });
    }
    None
}

/// Lower case, no emphasis or numbering, single spaces: "**2. Root  Cause:**" → "root cause".
fn normalize_label(label: &str) -> String {
    let mut out = String::new();
    for c in label.chars().take(LABEL_SCAN_BYTES) {
        match c {
            '*' | '_' | '`' | '~' | '#' => {}
            c if c.is_whitespace() => {
                if !out.is_empty() && !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.extend(c.to_lowercase()),
        }
    }
    // Leading numbering and emoji ("2.", "3)", "🔍"), trailing punctuation (":", ".").
    out.trim_start_matches(|c: char| !c.is_alphabetic())
        .trim_end_matches(|c: char| !c.is_alphanumeric())
        .to_string()
}

/// Drops list markers, blockquote markers and numbering in front of a line's text.
fn strip_line_markers(trimmed: &str) -> &str {
    let mut s = trimmed;
    loop {
        let before = s;
        s = s.trim_start();
        for marker in ["> ", "- ", "* ", "+ ", "• "] {
            if let Some(rest) = s.strip_prefix(marker) {
                s = rest;
            }
        }
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && digits < 4 {
            let after = &s[digits..];
            if let Some(rest) = after
                .strip_prefix(". ")
                .or_else(|| after.strip_prefix(") "))
            {
                s = rest;
            }
        }
        if s == before {
            return s;
        }
    }
}

/// The text after a label's colon may start by closing the label's emphasis: "**Root
/// cause:** text" leaves "** text".
fn strip_emphasis_edges(text: &str) -> &str {
    text.trim()
        .trim_start_matches(['*', '_'])
        .trim_start()
        .trim_end()
}

fn colon_within(text: &str, limit: usize) -> Option<usize> {
    text.char_indices()
        .take_while(|(i, _)| *i < limit)
        .find(|(_, c)| *c == ':')
        .map(|(i, _)| i)
}

fn is_fence(trimmed: &str) -> bool {
    trimmed.starts_with("```") || trimmed.starts_with("~~~")
}

/// `---`, `***`, `___` (with optional spaces), a line of three or more of one character.
fn is_thematic_break(trimmed: &str) -> bool {
    if trimmed.len() > 80 {
        return false;
    }
    let mut marks = trimmed.chars().filter(|c| !c.is_whitespace());
    let Some(first) = marks.next() else {
        return false;
    };
    matches!(first, '-' | '*' | '_')
        && trimmed.chars().filter(|&c| c == first).count() >= 3
        && marks.all(|c| c == first)
}

fn is_bold_line(trimmed: &str) -> bool {
    let core = trimmed.trim_end_matches(':');
    core.len() > 4
        && ((core.starts_with("**") && core.ends_with("**"))
            || (core.starts_with("__") && core.ends_with("__")))
}

fn starts_list_item(trimmed: &str) -> bool {
    if ["- ", "* ", "+ ", "• "]
        .iter()
        .any(|m| trimmed.starts_with(m))
    {
        return true;
    }
    let digits = trimmed.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && {
        let after = &trimmed[digits..];
        after.starts_with(". ") || after.starts_with(") ")
    }
}

/// The longest prefix of `text` within `max_bytes`, cut on a character boundary.
fn prefix_within(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Light markdown cleanup for mrkdwn: bold markers and heading/quote markers go, list
/// bullets become "•", rules and repeated blank lines disappear; code stays as written.
fn clean_markdown(raw: &str) -> String {
    let mut lines: Vec<String> = Vec::new();
    let mut in_fence = false;
    for line in raw.lines() {
        let line = line.trim_end();
        let trimmed = line.trim_start();
        if is_fence(trimmed) {
            in_fence = !in_fence;
            lines.push(trimmed.to_string());
            continue;
        }
        if in_fence {
            lines.push(line.to_string());
            continue;
        }
        if trimmed.is_empty() {
            if lines.last().is_some_and(|l| !l.is_empty()) {
                lines.push(String::new());
            }
            continue;
        }
        if is_thematic_break(trimmed) {
            continue;
        }
        let indent = (line.len() - trimmed.len()).min(4);
        let mut text = trimmed.trim_start_matches('>').trim_start();
        if let Some((_, heading)) = atx_heading(text) {
            text = heading;
        }
        let mut out = " ".repeat(indent);
        if let Some(item) = ["- ", "* ", "+ "].iter().find_map(|m| text.strip_prefix(m)) {
            out.push_str("• ");
            text = item;
        }
        out.push_str(&text.replace("**", "").replace("__", ""));
        lines.push(out);
    }
    lines.join("\n").trim().to_string()
}

fn capped_text(raw: &str, max_chars: usize) -> Option<String> {
    let cleaned = clean_markdown(raw);
    if cleaned.is_empty() {
        return None;
    }
    Some(truncate_escaped(&escape_mrkdwn(&cleaned), max_chars))
}

/// "healthy — the pod is Ready" → healthy; "Unhealthy: still crash-looping" → unhealthy;
/// anything else, "not healthy" and "unknown" included, is what it says or unknown.
fn resource_status(raw: &str) -> ResourceStatus {
    let cleaned = clean_markdown(raw);
    let first = cleaned.lines().map(str::trim).find(|l| !l.is_empty());
    let word: String = first
        .unwrap_or("")
        .trim_start_matches("• ")
        .chars()
        .take_while(|c| c.is_alphabetic() || *c == '-')
        .flat_map(char::to_lowercase)
        .collect();
    let rest = first
        .unwrap_or("")
        .trim_start_matches("• ")
        .get(word.len()..)
        .unwrap_or("");
    // "healthy?" or "healthy/unhealthy" is a doubt, not an answer.
    if rest.starts_with(['?', '/']) {
        return ResourceStatus::Unknown;
    }
    match word.as_str() {
        "healthy" | "recovered" | "resolved" => ResourceStatus::Healthy,
        "unhealthy" | "degraded" | "failing" | "failed" | "down" | "broken" | "crashing" => {
            ResourceStatus::Unhealthy
        }
        _ => ResourceStatus::Unknown,
    }
}

/// "High (85%)" → "high"; "Moderate" → "medium"; "80%" → "high"; "medium-high" stays
/// as written, since it is neither level.
fn confidence_text(raw: &str) -> Option<String> {
    let cleaned = clean_markdown(raw);
    let first = cleaned.lines().map(str::trim).find(|l| !l.is_empty())?;
    if let Some(level) = confidence_level(first) {
        return Some(level.to_string());
    }
    // "Medium-high — the timing fits, but…": the assessment, not its justification.
    let first = first.trim_start_matches("• ");
    let assessment = [" — ", " – ", " - ", ". ", ": ", "; ", " ("]
        .iter()
        .filter_map(|sep| first.find(sep))
        .min()
        .map_or(first, |end| &first[..end])
        .trim();
    let assessment = if assessment.is_empty() {
        first
    } else {
        assessment
    };
    Some(truncate_escaped(
        &escape_mrkdwn(assessment),
        CONFIDENCE_MAX_CHARS,
    ))
}

fn confidence_level(text: &str) -> Option<&'static str> {
    let lower = prefix_within(text, 200).to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '%')
        .filter(|w| !w.is_empty())
        .take(6)
        .collect();
    let level = |w: &str| match w {
        "high" => Some("high"),
        "medium" | "moderate" => Some("medium"),
        "low" => Some("low"),
        _ => None,
    };
    let mut rest = words.iter().copied().skip_while(|w| {
        matches!(
            *w,
            "very" | "fairly" | "quite" | "relatively" | "reasonably"
        )
    });
    let first = rest.next()?;
    if let Some(found) = level(first) {
        // "medium-high", "low to medium": between two levels, keep the author's words.
        let next: Vec<&str> = rest.take(2).collect();
        if next.iter().any(|w| level(w).is_some()) {
            return None;
        }
        return Some(found);
    }
    let percent: u32 = first.strip_suffix('%')?.parse().ok()?;
    match percent {
        0..=49 => Some("low"),
        50..=79 => Some("medium"),
        80..=100 => Some("high"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADED_REPORT: &str = r#"# Investigation Report: CrashLoopBackOff in shop/api-7d9f

## Summary

The `api` container in pod **api-7d9f** (namespace `shop`) is crash-looping: it exits
with code 1 about two seconds after start, 14 restarts in the last 30 minutes.

## Investigation Steps

1. Listed pods in `shop` — `api-7d9f` in CrashLoopBackOff.
2. Read the previous container logs:
   ```
   # startup
   Error: DATABASE_URL is not set
   ```
3. Checked the Deployment's env: `DATABASE_URL` comes from Secret `api-db`.

## Root Cause

The Secret **api-db** was re-created without the `DATABASE_URL` key during the
2026-11-20 rotation, so the container's required env var is empty & the app exits.

### Evidence
- `kubectl get secret api-db -o yaml` shows keys `username`, `password` only.

## Recommended Fix

Restore the `DATABASE_URL` key in Secret `api-db` and restart the Deployment.

## Confidence

High (90%) — the log line and the Secret's keys agree.
"#;

    const BOLD_LABEL_REPORT: &str = r#"**Summary**
- Pod `payments/worker-5c` is OOMKilled repeatedly (exit 137), 9 restarts.

**Root Cause**
- The JVM heap (-Xmx2g) exceeds the container limit of 1.5Gi after the
  2026-11-19 config change.

**Evidence**
- `kubectl describe pod` shows Last State: OOMKilled.

**Confidence**: Medium
"#;

    const INLINE_REPORT: &str = "Investigated node worker-3 NotReady.\n\
        Summary: kubelet stopped posting status at 10:02 UTC.\n\
        Root cause: the node's disk filled up (/var/lib/containerd at 100%),\n\
        so the kubelet could not start containers.\n\
        Confidence: High (85%)\n\
        Next steps: clean images, add disk alerts.\n";

    #[test]
    fn headed_report_yields_all_three_fields() {
        let report = extract_report(HEADED_REPORT);
        let summary = report.summary.unwrap();
        assert!(
            summary.starts_with("The `api` container in pod api-7d9f"),
            "{summary}"
        );
        assert!(
            summary.ends_with("14 restarts in the last 30 minutes."),
            "{summary}"
        );
        let root = report.root_cause.unwrap();
        assert!(
            root.starts_with("The Secret api-db was re-created"),
            "{root}"
        );
        assert!(root.contains("is empty &amp; the app exits."), "{root}");
        assert!(!root.contains("Evidence"), "{root}");
        assert_eq!(report.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn code_blocks_do_not_open_or_close_sections() {
        let report = extract_report(HEADED_REPORT);
        // "# startup" inside the fence is not a heading ending "Investigation Steps", and
        // the fence's "Error:" line is not taken for anything.
        assert!(!report
            .root_cause
            .unwrap()
            .contains("DATABASE_URL is not set"));
    }

    #[test]
    fn bold_pseudo_headings_are_sections() {
        let report = extract_report(BOLD_LABEL_REPORT);
        assert_eq!(
            report.summary.as_deref(),
            Some("• Pod `payments/worker-5c` is OOMKilled repeatedly (exit 137), 9 restarts.")
        );
        let root = report.root_cause.unwrap();
        assert!(
            root.starts_with("• The JVM heap (-Xmx2g) exceeds"),
            "{root}"
        );
        assert!(root.ends_with("2026-11-19 config change."), "{root}");
        assert!(!root.contains("OOMKilled"), "{root}");
        assert_eq!(report.confidence.as_deref(), Some("medium"));
    }

    #[test]
    fn inline_labels_are_fields_and_continue_their_paragraph() {
        let report = extract_report(INLINE_REPORT);
        assert_eq!(
            report.summary.as_deref(),
            Some("kubelet stopped posting status at 10:02 UTC.")
        );
        assert_eq!(
            report.root_cause.as_deref(),
            Some(
                "the node's disk filled up (/var/lib/containerd at 100%),\n\
                 so the kubelet could not start containers."
            )
        );
        assert_eq!(report.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn bold_inline_label_forms_are_recognized() {
        let report = extract_report(
            "- **Root cause:** image tag `v2.3` does not exist\n\
             - **Confidence**: low\n\
             - __Summary__: ImagePullBackOff on api\n",
        );
        assert_eq!(
            report.root_cause.as_deref(),
            Some("image tag `v2.3` does not exist")
        );
        assert_eq!(report.confidence.as_deref(), Some("low"));
        assert_eq!(report.summary.as_deref(), Some("ImagePullBackOff on api"));
    }

    #[test]
    fn heading_wording_is_tolerant() {
        for heading in [
            "## Root Cause",
            "### root cause",
            "# Root cause analysis",
            "#### Probable root cause",
            "## 3. Root Cause",
            "## 🔍 Root Cause",
            "###### **Likely Root Cause:**",
            "##Root Cause",
            "## Root Cause ##",
        ] {
            let report = extract_report(&format!("{heading}\nDisk full on worker-3.\n"));
            assert_eq!(
                report.root_cause.as_deref(),
                Some("Disk full on worker-3."),
                "{heading}"
            );
        }
        for heading in [
            "## Confidence",
            "## Confidence level",
            "### Overall confidence",
        ] {
            let report = extract_report(&format!("{heading}\n**Medium**\n"));
            assert_eq!(report.confidence.as_deref(), Some("medium"), "{heading}");
        }
        for heading in [
            "## Summary",
            "# Executive summary",
            "## Incident Summary",
            "## TL;DR",
        ] {
            let report = extract_report(&format!("{heading}\nPod restarts.\n"));
            assert_eq!(
                report.summary.as_deref(),
                Some("Pod restarts."),
                "{heading}"
            );
        }
    }

    #[test]
    fn heading_with_text_after_colon_starts_the_section() {
        let report = extract_report("## Root Cause: missing Secret key\nRotation dropped it.\n");
        assert_eq!(
            report.root_cause.as_deref(),
            Some("missing Secret key\nRotation dropped it.")
        );
        let report = extract_report("## Confidence: High\n");
        assert_eq!(report.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn plain_section_heading_beats_a_titled_report_heading() {
        let report = extract_report(
            "# Incident Summary: api CrashLoop\nIntro text.\n\n## Summary\nThe real summary.\n\n\
             # Root Cause Analysis: api\nPreamble.\n## Root Cause\nThe real cause.\n",
        );
        assert_eq!(report.summary.as_deref(), Some("The real summary."));
        assert_eq!(report.root_cause.as_deref(), Some("The real cause."));
    }

    #[test]
    fn exact_label_beats_a_looser_heading() {
        let report = extract_report(
            "## Findings and root cause\nLots of findings.\n\n**Root cause:** OOM kill.\n",
        );
        assert_eq!(report.root_cause.as_deref(), Some("OOM kill."));
    }

    #[test]
    fn first_of_equally_good_sections_wins() {
        let report = extract_report("## Root Cause\nFirst.\n## Root Cause\nSecond.\n");
        assert_eq!(report.root_cause.as_deref(), Some("First."));
    }

    #[test]
    fn heading_repeated_as_inline_label_is_not_duplicated() {
        let report = extract_report("## Root Cause\n**Root cause:** OOM kill.\n\n## Next\n");
        assert_eq!(report.root_cause.as_deref(), Some("OOM kill."));
        let report = extract_report("## Root Cause\n**Root Cause**\nOOM kill.\n");
        assert_eq!(report.root_cause.as_deref(), Some("OOM kill."));
    }

    #[test]
    fn labels_inside_a_summary_section_are_also_fields() {
        let report = extract_report(
            "## Summary\n- **Root cause:** bad image tag\n- **Impact:** checkout down\n\n## Details\nx\n",
        );
        assert_eq!(report.root_cause.as_deref(), Some("bad image tag"));
        assert_eq!(
            report.summary.as_deref(),
            Some("• Root cause: bad image tag\n• Impact: checkout down")
        );
    }

    #[test]
    fn label_after_summary_text_ends_the_summary() {
        let report = extract_report(
            "## Summary\nThe pod crashed.\n\n**Root cause:** OOM.\n\n**Confidence:** High\n",
        );
        assert_eq!(report.summary.as_deref(), Some("The pod crashed."));
        assert_eq!(report.root_cause.as_deref(), Some("OOM."));
        assert_eq!(report.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn subheading_right_under_a_field_heading_is_part_of_it() {
        let report = extract_report(
            "## Root Cause\n### Memory limit too low\nThe limit is 256Mi.\n### Evidence\nlogs\n",
        );
        assert_eq!(
            report.root_cause.as_deref(),
            Some("Memory limit too low\nThe limit is 256Mi.")
        );
    }

    #[test]
    fn thematic_break_ends_a_section() {
        let report = extract_report("## Root Cause\nOOM.\n\n---\n\nAppendix text\n");
        assert_eq!(report.root_cause.as_deref(), Some("OOM."));
    }

    #[test]
    fn ordinary_lines_mentioning_a_field_are_not_labels() {
        let report = extract_report(
            "The root cause is unclear: more data needed.\n\
             Events summary: 5 restarts.\n\
             Note: confidence is limited.\n",
        );
        assert_eq!(report, InvestigationSummary::default());
    }

    #[test]
    fn missing_sections_are_none() {
        let report = extract_report("# Report\n\n## Root Cause\nDNS misconfiguration.\n");
        assert_eq!(report.summary, None);
        assert_eq!(report.confidence, None);
        assert_eq!(report.root_cause.as_deref(), Some("DNS misconfiguration."));
    }

    #[test]
    fn empty_section_is_none() {
        let report = extract_report("## Root Cause\n\n## Summary\n   \n## Confidence\n");
        assert_eq!(report, InvestigationSummary::default());
    }

    #[test]
    fn empty_and_blank_input_yield_nothing() {
        assert_eq!(extract_report(""), InvestigationSummary::default());
        assert_eq!(
            extract_report("\n\n  \n\t\n"),
            InvestigationSummary::default()
        );
        assert_eq!(
            extract_report("just some text\nwith no structure\n"),
            InvestigationSummary::default()
        );
    }

    #[test]
    fn minimal_report_with_only_inline_root_cause() {
        let report = extract_report("Root Cause: node out of memory");
        assert_eq!(report.root_cause.as_deref(), Some("node out of memory"));
    }

    #[test]
    fn text_is_escaped_for_mrkdwn() {
        let report = extract_report(
            "## Summary\n<!channel> x < y & z > w\n## Root Cause\nA -> B && <https://x|y>\n",
        );
        assert_eq!(
            report.summary.as_deref(),
            Some("&lt;!channel&gt; x &lt; y &amp; z &gt; w")
        );
        let root = report.root_cause.unwrap();
        assert!(!root.contains('<') && !root.contains('>'), "{root}");
        assert_eq!(root, "A -&gt; B &amp;&amp; &lt;https://x|y&gt;");
    }

    #[test]
    fn emphasis_is_stripped_lightly_and_bullets_unified() {
        let report = extract_report(
            "## Root Cause\n**Bold** and __under__ and *single*\n* item one\n+ item two\n> quoted\n",
        );
        assert_eq!(
            report.root_cause.as_deref(),
            Some("Bold and under and *single*\n• item one\n• item two\nquoted")
        );
    }

    #[test]
    fn long_root_cause_and_summary_are_capped_with_ellipsis() {
        let long = "word ".repeat(1000);
        let report = extract_report(&format!("## Summary\n{long}\n## Root Cause\n{long}\n"));
        let summary = report.summary.unwrap();
        let root = report.root_cause.unwrap();
        assert!(summary.chars().count() <= SUMMARY_MAX_CHARS);
        assert!(root.chars().count() <= ROOT_CAUSE_MAX_CHARS);
        assert!(summary.ends_with('…') && root.ends_with('…'));
    }

    #[test]
    fn cap_counts_escaped_characters_and_keeps_entities_whole() {
        let report = extract_report(&format!("## Root Cause\n{}\n", "&".repeat(2000)));
        let root = report.root_cause.unwrap();
        assert!(root.chars().count() <= ROOT_CAUSE_MAX_CHARS);
        assert!(root.trim_end_matches('…').ends_with("&amp;"), "{root}");
    }

    #[test]
    fn confidence_levels_are_normalized() {
        for (written, expected) in [
            ("High (85%)", "high"),
            ("HIGH", "high"),
            ("**High** — logs agree", "high"),
            ("Very high", "high"),
            ("Moderate", "medium"),
            ("medium", "medium"),
            ("Low: only indirect evidence", "low"),
            ("85%", "high"),
            ("60%", "medium"),
            ("20%", "low"),
            ("🟢 High", "high"),
        ] {
            let report = extract_report(&format!("Confidence: {written}\n"));
            assert_eq!(report.confidence.as_deref(), Some(expected), "{written}");
        }
        let report = extract_report("Confidence level: high\n");
        assert_eq!(report.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn unrecognized_confidence_is_kept_as_written() {
        for written in [
            "Medium-High",
            "low to medium",
            "8/10",
            "fairly sure",
            "250%",
        ] {
            let report = extract_report(&format!("Confidence: {written}\n"));
            assert_eq!(report.confidence.as_deref(), Some(written), "{written}");
        }
        let report = extract_report(
            "**Confidence:** Medium-high — timing fits, but the policy history is gone.\n",
        );
        assert_eq!(report.confidence.as_deref(), Some("Medium-high"));
        let report = extract_report("Confidence: 8/10 (strong log evidence)\n");
        assert_eq!(report.confidence.as_deref(), Some("8/10"));
        let report = extract_report(&format!("## Confidence\n{}\n", "sure <x> ".repeat(100)));
        let confidence = report.confidence.unwrap();
        assert!(confidence.chars().count() <= CONFIDENCE_MAX_CHARS);
        assert!(confidence.starts_with("sure &lt;x&gt;"));
    }

    #[test]
    fn confidence_section_uses_its_first_line() {
        let report = extract_report("## Confidence\n\nMedium.\nThe logs were rotated.\n");
        assert_eq!(report.confidence.as_deref(), Some("medium"));
    }

    #[test]
    fn current_status_section_states_the_resource_health() {
        let status = |text: &str| extract_report(text).resource_status;
        assert_eq!(
            status("## Current Status\nHealthy: the pod is Ready, no restarts in 10 min.\n"),
            Some(ResourceStatus::Healthy)
        );
        assert_eq!(
            status("## Current status\n\n**unhealthy** - still crash-looping\n"),
            Some(ResourceStatus::Unhealthy)
        );
        assert_eq!(
            status("**Current state:** recovered after the rollback\n"),
            Some(ResourceStatus::Healthy)
        );
        assert_eq!(
            status("### Resource Status\n- degraded, 1 of 3 ready\n"),
            Some(ResourceStatus::Unhealthy)
        );
        // Doubt, negation and anything else are never healthy.
        for doubtful in [
            "## Current Status\nNot healthy yet\n",
            "## Current Status\nhealthy? the probe still fails\n",
            "## Current Status\nhealthy/unhealthy, flapping\n",
            "## Current Status\nUnknown: could not read the pod\n",
            "## Current Status\nhealthyish\n",
        ] {
            assert_eq!(
                status(doubtful),
                Some(ResourceStatus::Unknown),
                "{doubtful}"
            );
        }
        assert_eq!(status("## Summary\nCrashLoop.\n"), None);
    }

    #[test]
    fn a_bare_status_line_in_the_evidence_is_not_the_current_status() {
        let report = extract_report(
            "## Evidence\n- Status: Running (the sidecar)\n\nStatus: healthy\n\n## Root Cause\nOOM.\n",
        );
        assert_eq!(report.resource_status, None);
        assert_eq!(report.root_cause.as_deref(), Some("OOM."));
    }

    #[test]
    fn windows_line_endings_are_handled() {
        let report = extract_report("## Root Cause\r\nDisk full.\r\n\r\n## Confidence\r\nLow\r\n");
        assert_eq!(report.root_cause.as_deref(), Some("Disk full."));
        assert_eq!(report.confidence.as_deref(), Some("low"));
    }

    #[test]
    fn lossy_decoded_bytes_are_harmless() {
        let bytes = b"## Root Cause\nbad \xff\xfe bytes \x00 and \x1b[31mcolour\x1b[0m\n";
        let text = String::from_utf8_lossy(bytes);
        let root = extract_report(&text).root_cause.unwrap();
        assert!(root.contains('\u{FFFD}'));
        assert!(
            !root.chars().any(|c| c.is_control() && c != '\n'),
            "{root:?}"
        );
    }

    #[test]
    fn huge_report_costs_bounded_time_and_output() {
        let mut report = String::from("# Report\n## Summary\n");
        while report.len() < 5 * 1024 * 1024 {
            report.push_str("line of summary text with <angle> & ampersand\n");
        }
        report.push_str("## Root Cause\n");
        report.push_str(&"x".repeat(1024 * 1024));
        report.push_str("\n## Confidence\nhigh\n");
        let result = extract_report(&report);
        assert!(result.summary.unwrap().chars().count() <= SUMMARY_MAX_CHARS);
        assert!(result.root_cause.unwrap().chars().count() <= ROOT_CAUSE_MAX_CHARS);
        assert_eq!(result.confidence.as_deref(), Some("high"));
    }

    #[test]
    fn huge_single_line_and_many_headings_stay_bounded() {
        let mut report = "#".repeat(3) + &"Root cause ".repeat(200_000);
        report.push('\n');
        report.push_str(&"## Root Cause\nA\n".repeat(100_000));
        report.push_str(&":".repeat(1_000_000));
        let result = extract_report(&report);
        assert!(result.root_cause.unwrap().chars().count() <= ROOT_CAUSE_MAX_CHARS);
    }

    #[test]
    fn summary_serializes_as_plain_json_fields() {
        let report = extract_report(INLINE_REPORT);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["confidence"], "high");
        assert!(json["summary"].is_string());
        assert!(json["root_cause"].is_string());
        assert!(json.get("resource_status").is_none(), "{json}");
        let stated = extract_report("## Current Status\nhealthy\n");
        assert_eq!(
            serde_json::to_value(&stated).unwrap()["resource_status"],
            "healthy"
        );
    }
}
