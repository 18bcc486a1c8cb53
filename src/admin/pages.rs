//! The incident pages, read-only HTML: `/incidents` (newest first: time, cluster, fault,
//! status, duration) and `/incidents/<id>` (the investigation report rendered, the result,
//! the timeline, the permissions). Every text from a workspace is escaped (see
//! [`super::html`]); the report goes through [`super::markdown`]. The pages carry no script.

use std::fmt::Write as _;

use super::html::{push_escaped, Escaped};
use super::incidents::{IncidentDetail, IncidentPage, IncidentStore, IncidentSummary};
use super::markdown;
use super::router::{AdminRequest, AdminRoutes, Reply};
use crate::agent::workspace::{AgentResult, IncidentRecord};

/// Incidents on one page of the list.
pub const PAGE_SIZE: usize = 100;
/// Where the pages' stylesheet is served (the only thing the Content-Security-Policy allows
/// them to load).
pub const STYLESHEET_PATH: &str = "/assets/admin.css";
const STYLESHEET: &str = include_str!("admin.css");

/// `/incidents` and `/incidents/<id>`, from the workspaces of `store`.
pub struct IncidentPages {
    store: IncidentStore,
}

impl IncidentPages {
    pub fn new(store: IncidentStore) -> IncidentPages {
        IncidentPages { store }
    }

    fn list(&self, request: &AdminRequest<'_>) -> Reply {
        let older_than = request.query_value("older_than");
        if let Some(id) = older_than {
            if !super::incidents::is_incident_id(id) {
                return error_page(400, "Bad request", "older_than is not an incident id.");
            }
        }
        match self.store.list(older_than, PAGE_SIZE) {
            Ok(page) => Reply::html(200, list_page(&page, older_than.is_some())),
            Err(e) => error_page(500, "Incidents not readable", &e.to_string()),
        }
    }

    fn detail(&self, id: &str) -> Reply {
        if !super::incidents::is_incident_id(id) {
            return error_page(404, "Not found", "That is not an incident id.");
        }
        match self.store.get(id) {
            Some(detail) => Reply::html(200, detail_page(&detail)),
            None => error_page(404, "Not found", &format!("No incident {id}.")),
        }
    }
}

impl AdminRoutes for IncidentPages {
    fn respond(&self, request: &AdminRequest<'_>, rest: &str) -> Reply {
        if request.method != "GET" && request.method != "HEAD" {
            return Reply::method_not_allowed("GET, HEAD");
        }
        match rest.strip_prefix('/') {
            None | Some("") => self.list(request),
            Some(id) => self.detail(id),
        }
    }
}

/// `/assets/admin.css`.
pub struct Assets;

impl AdminRoutes for Assets {
    fn respond(&self, request: &AdminRequest<'_>, rest: &str) -> Reply {
        if request.method != "GET" && request.method != "HEAD" {
            return Reply::method_not_allowed("GET, HEAD");
        }
        match rest {
            "/admin.css" => Reply::new(200, "text/css; charset=utf-8", STYLESHEET.to_string()),
            _ => error_page(404, "Not found", "No such asset."),
        }
    }
}

/// A whole HTML document around `body`.
fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · nightcrier</title>\n<link rel=\"stylesheet\" href=\"{STYLESHEET_PATH}\">\n\
         </head>\n<body>\n<header><a href=\"/incidents\">nightcrier</a> · incidents</header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n",
        Escaped(title)
    )
}

pub fn error_page(status: u16, title: &str, message: &str) -> Reply {
    let body = format!("<h1>{}</h1>\n<p>{}</p>\n", Escaped(title), Escaped(message));
    Reply::html(status, document(title, &body))
}

fn list_page(page: &IncidentPage, paged: bool) -> String {
    let mut body = String::from("<h1>Incidents</h1>\n");
    let _ = writeln!(
        body,
        "<p class=\"note\">{} incident{} in the workspace, newest first{}.</p>",
        page.total,
        if page.total == 1 { "" } else { "s" },
        if paged { " (older page)" } else { "" }
    );
    if page.incidents.is_empty() {
        body.push_str("<p>No incidents.</p>\n");
    } else {
        body.push_str(
            "<table class=\"incidents\">\n<thead><tr><th>Time</th><th>Cluster</th><th>Fault</th>\
             <th>Status</th><th>Duration</th></tr></thead>\n<tbody>\n",
        );
        for incident in &page.incidents {
            list_row(&mut body, incident);
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if let Some(older) = &page.older_than {
        let _ = writeln!(
            body,
            "<p><a href=\"/incidents?older_than={}\">Older incidents</a></p>",
            Escaped(older)
        );
    }
    document("Incidents", &body)
}

fn list_row(body: &mut String, incident: &IncidentSummary) {
    let link = format!(
        "<a href=\"/incidents/{}\">{}</a>",
        Escaped(&incident.id),
        Escaped(&incident_time_text(incident))
    );
    match &incident.record {
        Ok(record) => {
            let status = incident
                .result
                .as_ref()
                .map_or(record.status.as_str(), |r| r.status.as_str());
            let _ = writeln!(
                body,
                "<tr><td>{link}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                Escaped(&record.cluster),
                fault_cell(record),
                status_badge(status),
                Escaped(&duration_text(incident.result.as_ref(), record))
            );
        }
        Err(e) => {
            let _ = writeln!(
                body,
                "<tr><td>{link}</td><td colspan=\"4\" class=\"unreadable\">{}</td></tr>",
                Escaped(e)
            );
        }
    }
}

/// When the fault was received, from the record, else from the id.
fn incident_time_text(incident: &IncidentSummary) -> String {
    match &incident.record {
        Ok(record) => readable_time(&record.received_at),
        Err(_) => incident.id.get(..16).unwrap_or("").to_string(),
    }
}

/// `2026-11-24T05:22:40Z` as `2026-11-24 05:22:40 UTC`.
fn readable_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z') {
        Some(time) => format!("{} UTC", time.replacen('T', " ", 1)),
        None => rfc3339.to_string(),
    }
}

fn fault_cell(record: &IncidentRecord) -> String {
    let fault = &record.fault;
    format!(
        "<span class=\"fault-type\">{}</span> <span class=\"severity severity-{}\">{}</span><br>\
         <span class=\"resource\">{}</span>",
        Escaped(&fault.fault_type),
        css_word(&fault.severity),
        Escaped(&fault.severity),
        Escaped(&resource_text(record))
    )
}

/// `Kind namespace/name`.
fn resource_text(record: &IncidentRecord) -> String {
    let resource = &record.fault.resource;
    match &resource.namespace {
        Some(namespace) => format!("{} {namespace}/{}", resource.kind, resource.name),
        None => format!("{} {}", resource.kind, resource.name),
    }
}

/// A word safe inside a class name: letters, digits, `_` and `-`, else `other`.
fn css_word(text: &str) -> &str {
    let safe = !text.is_empty()
        && text.len() <= 32
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'));
    if safe {
        text
    } else {
        "other"
    }
}

fn status_badge(status: &str) -> String {
    format!(
        "<span class=\"status status-{}\">{}</span>",
        css_word(status),
        Escaped(status)
    )
}

fn duration_text(result: Option<&AgentResult>, record: &IncidentRecord) -> String {
    match result {
        Some(result) => seconds_text(result.duration_seconds),
        None if record.finished_at.is_none() => "—".to_string(),
        None => String::new(),
    }
}

/// `2.3 s`, `4 min 05 s`, `1 h 02 min`.
fn seconds_text(seconds: f64) -> String {
    if !seconds.is_finite() || seconds < 0.0 {
        return String::new();
    }
    if seconds < 60.0 {
        return format!("{seconds:.1} s");
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        format!("{} min {:02} s", whole / 60, whole % 60)
    } else {
        format!("{} h {:02} min", whole / 3600, whole % 3600 / 60)
    }
}

fn detail_page(detail: &IncidentDetail) -> String {
    let mut body = String::new();
    let title = match &detail.record {
        Ok(record) => format!("{} on {}", record.fault.fault_type, record.cluster),
        Err(_) => detail.id.clone(),
    };
    let _ = writeln!(body, "<h1>{}</h1>", Escaped(&title));
    let _ = writeln!(
        body,
        "<p class=\"id\">Incident <code>{}</code></p>",
        Escaped(&detail.id)
    );
    match &detail.record {
        Ok(record) => incident_section(&mut body, record, detail.result.as_ref()),
        Err(e) => unreadable(&mut body, e),
    }

    body.push_str("<section id=\"investigation\">\n<h2>Investigation</h2>\n");
    match &detail.report {
        Some(Ok(report)) => {
            body.push_str("<article class=\"report\">\n");
            body.push_str(&markdown::render(&report.markdown));
            body.push_str("</article>\n");
            if report.cut {
                let _ = writeln!(
                    body,
                    "<p class=\"note\">The report is longer than {} bytes; the rest is not shown.</p>",
                    super::incidents::MAX_REPORT_BYTES
                );
            }
        }
        Some(Err(e)) => unreadable(&mut body, e),
        None => body.push_str("<p class=\"note\">No report (yet).</p>\n"),
    }
    body.push_str("</section>\n");

    body.push_str("<section id=\"result\">\n<h2>Result</h2>\n");
    match &detail.result {
        Some(Ok(result)) => result_section(&mut body, result),
        Some(Err(e)) => unreadable(&mut body, e),
        None => body.push_str("<p class=\"note\">The agent has not finished.</p>\n"),
    }
    body.push_str("</section>\n");

    body.push_str("<section id=\"timeline\">\n<h2>Timeline</h2>\n");
    timeline(&mut body, detail);
    body.push_str("</section>\n");

    if let Ok(record) = &detail.record {
        if let Some(context) = &record.fault.context {
            body.push_str("<section id=\"context\">\n<h2>Fault context</h2>\n<pre>");
            push_escaped(&mut body, context);
            body.push_str("</pre>\n</section>\n");
        }
    }

    body.push_str("<section id=\"permissions\">\n<h2>Permissions</h2>\n");
    match &detail.permissions {
        Some(Ok(permissions)) => permissions_section(&mut body, permissions),
        Some(Err(e)) => unreadable(&mut body, e),
        None => body.push_str("<p class=\"note\">No permission record.</p>\n"),
    }
    body.push_str("</section>\n");
    document(&title, &body)
}

fn unreadable(body: &mut String, error: &str) {
    let _ = writeln!(body, "<p class=\"unreadable\">{}</p>", Escaped(error));
}

/// A definition list of (term, already escaped HTML) rows.
fn definitions(body: &mut String, rows: &[(&str, String)]) {
    body.push_str("<dl>\n");
    for (term, value) in rows {
        let _ = writeln!(body, "<dt>{}</dt><dd>{value}</dd>", Escaped(term));
    }
    body.push_str("</dl>\n");
}

fn incident_section(
    body: &mut String,
    record: &IncidentRecord,
    result: Option<&Result<AgentResult, String>>,
) {
    let fault = &record.fault;
    let status = match result {
        Some(Ok(result)) => result.status.as_str(),
        _ => record.status.as_str(),
    };
    let labels: Vec<String> = record
        .labels
        .iter()
        .map(|(k, v)| format!("<code>{}={}</code>", Escaped(k), Escaped(v)))
        .collect();
    let mut rows = vec![
        ("Status", status_badge(status)),
        ("Cluster", Escaped(&record.cluster).to_string()),
    ];
    if let Some(environment) = &record.environment {
        rows.push(("Environment", Escaped(environment).to_string()));
    }
    if !labels.is_empty() {
        rows.push(("Labels", labels.join(" ")));
    }
    rows.extend([
        ("Fault", Escaped(&fault.fault_type).to_string()),
        (
            "Severity",
            format!(
                "<span class=\"severity severity-{}\">{}</span>",
                css_word(&fault.severity),
                Escaped(&fault.severity)
            ),
        ),
        ("Resource", Escaped(&resource_text(record)).to_string()),
        (
            "Fault id",
            format!(
                "<code>{}</code>{}",
                Escaped(&fault.fault_id),
                if fault.fault_id_derived {
                    " (derived: the server sent none)"
                } else {
                    ""
                }
            ),
        ),
    ]);
    definitions(body, &rows);
}

fn result_section(body: &mut String, result: &AgentResult) {
    let optional = |value: Option<String>| value.unwrap_or_else(|| "—".to_string());
    let rows = [
        ("Outcome", status_badge(&result.status)),
        (
            "Exit code",
            optional(result.exit_code.map(|c| c.to_string())),
        ),
        ("Signal", optional(result.signal.map(|s| s.to_string()))),
        (
            "Duration",
            Escaped(&seconds_text(result.duration_seconds)).to_string(),
        ),
        (
            "Report",
            if result.report_present {
                "written"
            } else {
                "none"
            }
            .to_string(),
        ),
        (
            "Failure reason",
            optional(
                result
                    .failure_reason
                    .as_deref()
                    .map(|r| Escaped(r).to_string()),
            ),
        ),
    ];
    definitions(body, &rows);
}

fn timeline(body: &mut String, detail: &IncidentDetail) {
    let mut steps: Vec<(String, String)> = Vec::new();
    if let Ok(record) = &detail.record {
        if let Some(at) = &record.fault.timestamp {
            steps.push((at.clone(), "fault detected by the server".to_string()));
        }
        steps.push((
            record.received_at.clone(),
            "fault received by nightcrier".to_string(),
        ));
        if let Some(at) = &record.started_at {
            steps.push((at.clone(), "agent started".to_string()));
        }
    }
    match &detail.result {
        Some(Ok(result)) => steps.push((
            result.finished_at.clone(),
            format!("agent ended: {}", result.status),
        )),
        _ => {
            if let Ok(Some(at)) = detail.record.as_ref().map(|r| r.finished_at.as_ref()) {
                steps.push((at.clone(), "agent ended".to_string()));
            }
        }
    }
    if steps.is_empty() {
        body.push_str("<p class=\"note\">No times recorded.</p>\n");
        return;
    }
    body.push_str("<ol class=\"timeline\">\n");
    for (at, what) in steps {
        let _ = writeln!(
            body,
            "<li><time>{}</time> {}</li>",
            Escaped(&readable_time(&at)),
            Escaped(&what)
        );
    }
    body.push_str("</ol>\n");
}

fn permissions_section(body: &mut String, permissions: &serde_json::Value) {
    let text = |key: &str| permissions.get(key).and_then(|v| v.as_str()).unwrap_or("");
    let flag = |key: &str| match permissions.get(key).and_then(|v| v.as_bool()) {
        Some(true) => "yes",
        Some(false) => "no",
        None => "—",
    };
    if text("preflight") == "not_run" {
        let _ = writeln!(
            body,
            "<p class=\"note\">No preflight ran: {}.</p>",
            Escaped(text("reason"))
        );
        return;
    }
    let writes: Vec<String> = permissions
        .get("write_access")
        .and_then(|v| v.as_array())
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str())
                .map(|w| Escaped(w).to_string())
                .collect()
        })
        .unwrap_or_default();
    let can_write = if writes.is_empty() {
        flag("can_write").to_string()
    } else {
        format!("<strong>yes</strong>: {}", writes.join(", "))
    };
    definitions(
        body,
        &[
            (
                "Checked at",
                Escaped(&readable_time(text("checked_at"))).to_string(),
            ),
            (
                "Kubeconfig readable",
                flag("kubeconfig_readable").to_string(),
            ),
            (
                "Minimum met (pods, logs, events)",
                flag("minimum_met").to_string(),
            ),
            ("Can write", can_write),
            ("Verified read-only", flag("read_only_verified").to_string()),
        ],
    );
    if let Some(checks) = permissions.get("checks").and_then(|v| v.as_array()) {
        body.push_str(
            "<table class=\"checks\">\n<thead><tr><th>Verb</th><th>Resource</th><th>Allowed</th>\
             <th>Error</th></tr></thead>\n<tbody>\n",
        );
        for check in checks {
            let field = |key: &str| check.get(key).and_then(|v| v.as_str()).unwrap_or("");
            let allowed = match check.get("allowed").and_then(|v| v.as_bool()) {
                Some(true) => "yes",
                Some(false) => "no",
                None => "—",
            };
            let _ = writeln!(
                body,
                "<tr><td>{}</td><td>{}</td><td class=\"allowed-{allowed}\">{allowed}</td><td>{}</td></tr>",
                Escaped(field("verb")),
                Escaped(field("resource")),
                Escaped(field("error"))
            );
        }
        body.push_str("</tbody>\n</table>\n");
    }
    if let Some(warnings) = permissions.get("warnings").and_then(|v| v.as_array()) {
        if !warnings.is_empty() {
            body.push_str("<ul class=\"warnings\">\n");
            for warning in warnings.iter().filter_map(|w| w.as_str()) {
                let _ = writeln!(body, "<li>{}</li>", Escaped(warning));
            }
            body.push_str("</ul>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(seconds_text(0.2272), "0.2 s");
        assert_eq!(seconds_text(125.4), "2 min 05 s");
        assert_eq!(seconds_text(3725.0), "1 h 02 min");
        assert_eq!(seconds_text(f64::NAN), "");
    }

    #[test]
    fn class_names_take_only_plain_words() {
        assert_eq!(css_word("timed_out"), "timed_out");
        assert_eq!(css_word("x\" onmouseover=\"a"), "other");
        assert_eq!(css_word(""), "other");
    }

    #[test]
    fn times_are_shown_in_utc_words() {
        assert_eq!(
            readable_time("2026-11-24T05:22:40Z"),
            "2026-11-24 05:22:40 UTC"
        );
        assert_eq!(readable_time("yesterday"), "yesterday");
    }
}
