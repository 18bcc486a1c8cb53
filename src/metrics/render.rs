//! `/metrics` in the Prometheus text exposition format 0.0.4, rendered from one published
//! snapshot. Every family is written whole (HELP, TYPE, then all its samples) so no family
//! is interleaved with another; per-cluster series carry `cluster` and `environment`.
//!
//! Counters and gauges exist for every known cluster from its first snapshot on, zero
//! included, so `rate()` and absence alerts work from the start.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::cluster::status::{ConnectionStatus, HealthSnapshot};
use crate::health::board::Published;
use crate::metrics::counters::{ClusterCounters, CorrelationCounters};

/// The content type of the output, for the HTTP response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Renders every family; the snapshot's wall clock is "now" for uptimes.
pub fn render(published: &Published) -> String {
    let zero = ClusterCounters::default();
    let clusters = ClusterRows::new(published, &zero);
    let mut out = Exposition::default();
    render_process(&mut out, published);
    render_pipeline(&mut out, &clusters, &published.pipeline.faults_silenced);
    render_connections(&mut out, &clusters, published.wall);
    render_agents(&mut out, published, &clusters);
    render_slack_and_config(&mut out, published);
    out.text
}

/// One row per cluster name: its connection snapshot (if it has one) and its pipeline
/// counters (zero when it has none yet). Names are unique, so no series repeats.
struct ClusterRows<'a> {
    rows: Vec<ClusterRow<'a>>,
}

struct ClusterRow<'a> {
    name: &'a str,
    environment: &'a str,
    health: Option<&'a HealthSnapshot>,
    counters: &'a ClusterCounters,
}

impl<'a> ClusterRows<'a> {
    fn new(published: &'a Published, zero: &'a ClusterCounters) -> Self {
        let counters = &published.pipeline.clusters;
        let mut seen = BTreeSet::new();
        let mut rows = Vec::with_capacity(published.clusters.len());
        for health in &published.clusters {
            if !seen.insert(health.name.as_str()) {
                continue;
            }
            rows.push(ClusterRow {
                name: &health.name,
                environment: health.environment.as_deref().unwrap_or(""),
                health: Some(health),
                counters: counters.get(&health.name).unwrap_or(zero),
            });
        }
        // Counters of a cluster no longer connected (removed by a reload) stay visible.
        for (name, cluster_counters) in counters {
            if seen.insert(name.as_str()) {
                rows.push(ClusterRow {
                    name,
                    environment: "",
                    health: None,
                    counters: cluster_counters,
                });
            }
        }
        ClusterRows { rows }
    }

    fn connected(&self) -> impl Iterator<Item = (&ClusterRow<'a>, &'a HealthSnapshot)> {
        self.rows
            .iter()
            .filter_map(|row| row.health.map(|health| (row, health)))
    }
}

impl ClusterRow<'_> {
    fn labels(&self) -> [(&str, &str); 2] {
        [("cluster", self.name), ("environment", self.environment)]
    }
}

fn render_process(out: &mut Exposition, published: &Published) {
    out.family(
        "nightcrier_build_info",
        "gauge",
        "Always 1; the version label names the running build.",
    );
    out.sample("nightcrier_build_info", &[("version", VERSION)], 1u8);

    out.family(
        "nightcrier_clusters",
        "gauge",
        "Clusters by state: configured, active, unhealthy (failed or disconnected), with triage.",
    );
    let summary = &published.summary;
    for (state, count) in [
        ("total", summary.total),
        ("active", summary.active),
        ("unhealthy", summary.unhealthy),
        ("triage_enabled", summary.triage_enabled),
    ] {
        out.sample("nightcrier_clusters", &[("state", state)], count);
    }

    out.family(
        "nightcrier_loop_wakeups_total",
        "counter",
        "Times the event loop returned from its poll.",
    );
    out.sample(
        "nightcrier_loop_wakeups_total",
        &[],
        published.wakeups.polls,
    );
    out.family(
        "nightcrier_loop_batch_waits_total",
        "counter",
        "Times the event loop slept for more faults (connection.batch_window) before reading them.",
    );
    out.sample(
        "nightcrier_loop_batch_waits_total",
        &[],
        published.wakeups.batch_waits,
    );

    out.family(
        "nightcrier_system_degraded",
        "gauge",
        "1 while agent failures across clusters exceed the global threshold.",
    );
    out.sample(
        "nightcrier_system_degraded",
        &[],
        u8::from(published.pipeline.system_degraded),
    );
}

type CounterField = fn(&ClusterCounters) -> u64;
type ConnectionField = fn(&HealthSnapshot) -> u64;

fn render_pipeline(
    out: &mut Exposition,
    clusters: &ClusterRows,
    silenced: &std::collections::BTreeMap<String, u64>,
) {
    let families: [(&str, &str, CounterField); 12] = [
        (
            "nightcrier_faults_received_total",
            "Fault events received from the cluster.",
            |c| c.faults_received,
        ),
        (
            "nightcrier_faults_filtered_total",
            "Faults below the cluster's severity threshold.",
            |c| c.faults_filtered,
        ),
        (
            "nightcrier_faults_deduplicated_total",
            "Faults already seen within the dedup window.",
            |c| c.faults_deduplicated,
        ),
        (
            "nightcrier_dedup_evictions_total",
            "Dedup keys of the cluster forgotten before their window ended (its max_entries full).",
            |c| c.dedup_evictions,
        ),
        (
            "nightcrier_faults_dropped_total",
            "Queued faults displaced from a full queue (overflow policy drop).",
            |c| c.faults_dropped,
        ),
        (
            "nightcrier_faults_rejected_total",
            "Faults refused by a full queue (overflow policy reject).",
            |c| c.faults_rejected,
        ),
        (
            "nightcrier_faults_triaged_total",
            "Faults an agent was started for.",
            |c| c.faults_triaged,
        ),
        (
            "nightcrier_faults_skipped_total",
            "Faults not triaged: triage disabled, no kubeconfig, or refused by require_read_only.",
            |c| c.faults_skipped,
        ),
        (
            "nightcrier_faults_breaker_open_total",
            "Faults not triaged because the cluster's circuit breaker was open.",
            |c| c.faults_breaker_open,
        ),
        (
            "nightcrier_faults_silenced_total",
            "Faults a silence held for: recorded, not triaged.",
            |c| c.faults_silenced,
        ),
        (
            "nightcrier_faults_correlated_total",
            "Faults that joined the incident of the same fault on other clusters instead of starting an agent.",
            |c| c.faults_correlated,
        ),
        (
            "nightcrier_faults_budget_exhausted_total",
            "Faults over a [budget] ceiling, recorded as budget_exhausted incidents without an agent.",
            |c| c.faults_budget_exhausted,
        ),
    ];
    for (name, help, field) in families {
        out.family(name, "counter", help);
        for row in &clusters.rows {
            out.sample(name, &row.labels(), field(row.counters));
        }
    }

    out.family(
        "nightcrier_silence_faults_total",
        "counter",
        "Faults each silence held for since the start, by silence id.",
    );
    for (silence, count) in silenced {
        out.sample(
            "nightcrier_silence_faults_total",
            &[("silence", silence)],
            count,
        );
    }

    out.family(
        "nightcrier_queue_depth",
        "gauge",
        "Faults waiting for an agent, per cluster.",
    );
    for row in &clusters.rows {
        out.sample(
            "nightcrier_queue_depth",
            &row.labels(),
            row.counters.queue_depth,
        );
    }

    out.family(
        "nightcrier_circuit_breaker_open",
        "gauge",
        "1 while the cluster's agent circuit breaker is open.",
    );
    for row in &clusters.rows {
        let open = u8::from(row.counters.breaker == "open");
        out.sample("nightcrier_circuit_breaker_open", &row.labels(), open);
    }
}

fn render_connections(out: &mut Exposition, clusters: &ClusterRows, now: SystemTime) {
    out.family(
        "nightcrier_connection_status",
        "gauge",
        "1 for the connection's current status, 0 for the others.",
    );
    for (row, health) in clusters.connected() {
        for status in ConnectionStatus::ALL {
            let [cluster, environment] = row.labels();
            out.sample(
                "nightcrier_connection_status",
                &[cluster, environment, ("status", status.as_str())],
                u8::from(health.status == status),
            );
        }
    }

    out.family(
        "nightcrier_connection_degraded",
        "gauge",
        "1 while the server reports the subscription degraded and it is being renewed.",
    );
    for (row, health) in clusters.connected() {
        let degraded = u8::from(health.degraded);
        out.sample("nightcrier_connection_degraded", &row.labels(), degraded);
    }

    out.family(
        "nightcrier_connection_uptime_seconds",
        "gauge",
        "Seconds since the current session connected; 0 when not connected.",
    );
    for (row, health) in clusters.connected() {
        let uptime = Float(uptime_seconds(health, now));
        out.sample(
            "nightcrier_connection_uptime_seconds",
            &row.labels(),
            uptime,
        );
    }

    out.family(
        "nightcrier_subscription_gap_open",
        "gauge",
        "1 while the server cannot deliver faults to nightcrier (stream cut, subscription lost, session down after being active).",
    );
    for (row, health) in clusters.connected() {
        let open = health
            .subscription_gaps
            .last()
            .is_some_and(|gap| gap.end.is_none());
        out.sample(
            "nightcrier_subscription_gap_open",
            &row.labels(),
            u8::from(open),
        );
    }

    let per_connection: [(&str, &str, ConnectionField); 7] = [
        (
            "nightcrier_reconnects_total",
            "Reconnect attempts after a failure.",
            |h| h.reconnects,
        ),
        (
            "nightcrier_stream_gaps_total",
            "Event streams that ended and were resumed, where events may have been missed.",
            |h| h.stream_gaps,
        ),
        (
            "nightcrier_events_received_total",
            "Events received on the connection's stream.",
            |h| h.event_count,
        ),
        (
            "nightcrier_malformed_messages_total",
            "Messages from the server that could not be parsed.",
            |h| h.malformed_messages,
        ),
        (
            "nightcrier_subscription_renewals_total",
            "Subscriptions created again on a live session: lost (the server cancelled it), degraded, or replaced.",
            |h| h.subscription_renewals,
        ),
        (
            "nightcrier_subscription_gaps_total",
            "Spans in which the server could not deliver faults (stream cut, subscription lost, session failed after being active).",
            |h| h.subscription_gaps_total,
        ),
        (
            "nightcrier_server_log_messages_total",
            "Messages on the server's own logger (kubernetes-mcp-server).",
            |h| h.server_log_messages,
        ),
    ];
    for (name, help, field) in per_connection {
        out.family(name, "counter", help);
        for (row, health) in clusters.connected() {
            out.sample(name, &row.labels(), field(health));
        }
    }

    out.family(
        "nightcrier_connection_errors_total",
        "counter",
        "Connection errors by the phase they happened in.",
    );
    for (row, health) in clusters.connected() {
        for (phase, count) in health.errors.by_phase() {
            let [cluster, environment] = row.labels();
            out.sample(
                "nightcrier_connection_errors_total",
                &[cluster, environment, ("phase", phase)],
                count,
            );
        }
    }

    out.family(
        "nightcrier_last_event_timestamp_seconds",
        "gauge",
        "Unix time of the last event received; 0 when none yet.",
    );
    for (row, health) in clusters.connected() {
        let at = Float(health.last_event.map_or(0.0, unix_seconds));
        out.sample("nightcrier_last_event_timestamp_seconds", &row.labels(), at);
    }
}

fn render_agents(out: &mut Exposition, published: &Published, clusters: &ClusterRows) {
    let pipeline = &published.pipeline;
    out.family(
        "nightcrier_queue_depth_total",
        "gauge",
        "Faults waiting for an agent, all clusters together.",
    );
    out.sample("nightcrier_queue_depth_total", &[], pipeline.queue_depth);

    out.family(
        "nightcrier_faults_held",
        "gauge",
        "Faults waiting correlation.hold for the same fault from other clusters before they are queued.",
    );
    out.sample("nightcrier_faults_held", &[], pipeline.faults_held);

    out.family(
        "nightcrier_agents_running",
        "gauge",
        "Triage agents running now.",
    );
    out.sample("nightcrier_agents_running", &[], pipeline.agents_running);

    out.family(
        "nightcrier_agent_runs_total",
        "counter",
        "Finished agent runs by outcome.",
    );
    for row in &clusters.rows {
        let c = row.counters;
        for (outcome, count) in [
            ("investigated", c.agents_investigated),
            ("failed", c.agents_failed),
            ("timed_out", c.agents_timed_out),
        ] {
            let [cluster, environment] = row.labels();
            out.sample(
                "nightcrier_agent_runs_total",
                &[cluster, environment, ("outcome", outcome)],
                count,
            );
        }
    }

    out.family(
        "nightcrier_triage_refused_total",
        "counter",
        "Faults not triaged because triage.require_read_only is set and the cluster's \
         kubeconfig can write (or its read-only check did not answer), by reason.",
    );
    for row in &clusters.rows {
        let c = row.counters;
        for (reason, count) in [
            ("kubeconfig_can_write", c.triage_refused_can_write),
            ("read_only_unverified", c.triage_refused_unverified),
        ] {
            let [cluster, environment] = row.labels();
            out.sample(
                "nightcrier_triage_refused_total",
                &[cluster, environment, ("reason", reason)],
                count,
            );
        }
    }

    out.family(
        "nightcrier_workspace_write_errors_total",
        "counter",
        "Failed writes into the workspace root (incident files, agent logs, pending.jsonl), \
         by reason: no_space (disk or quota full) or io_error.",
    );
    for row in &clusters.rows {
        let c = row.counters;
        for (reason, count) in [
            ("no_space", c.write_errors_no_space),
            ("io_error", c.write_errors_other),
        ] {
            let [cluster, environment] = row.labels();
            out.sample(
                "nightcrier_workspace_write_errors_total",
                &[cluster, environment, ("reason", reason)],
                count,
            );
        }
    }

    let histogram = &pipeline.agent_duration;
    let name = "nightcrier_agent_duration_seconds";
    out.family(name, "histogram", "Duration of finished agent runs.");
    let bucket = format!("{name}_bucket");
    // A histogram whose bounds and counts disagree in length is rendered only as far as
    // both go; the +Inf bucket is always `count`, so the family stays consistent.
    let mut previous = 0;
    for (bound, cumulative) in histogram.bounds.iter().zip(&histogram.cumulative) {
        let cumulative = (*cumulative).max(previous).min(histogram.count);
        previous = cumulative;
        let le = format_float(*bound);
        out.sample(&bucket, &[("le", &le)], cumulative);
    }
    out.sample(&bucket, &[("le", "+Inf")], histogram.count);
    out.sample(&format!("{name}_sum"), &[], Float(histogram.sum_seconds));
    out.sample(&format!("{name}_count"), &[], histogram.count);
    render_correlation(out, &pipeline.correlation);
    render_budget(out, published, clusters);
    out.family(
        "nightcrier_cluster_silent",
        "gauge",
        "1 while the cluster is reported silent: not active, or its subscription lost, for alerts.cluster_down_after.",
    );
    for row in &clusters.rows {
        let silent = published
            .pipeline
            .silent_clusters
            .iter()
            .any(|c| c == row.name);
        out.sample("nightcrier_cluster_silent", &row.labels(), u8::from(silent));
    }
}

fn render_budget(out: &mut Exposition, published: &Published, clusters: &ClusterRows) {
    let budget = &published.pipeline.budget;
    out.family(
        "nightcrier_budget_remaining",
        "gauge",
        "What is left of each [budget] ceiling that is set, in its current UTC hour or day.",
    );
    for (name, left) in [
        ("runs_per_hour", budget.runs_per_hour),
        ("runs_per_day", budget.runs_per_day),
        ("agent_seconds_per_day", budget.agent_seconds_per_day),
    ] {
        if let Some(left) = left {
            out.sample("nightcrier_budget_remaining", &[("budget", name)], left);
        }
    }
    out.family(
        "nightcrier_cluster_budget_remaining",
        "gauge",
        "Agent runs left today under the cluster's max_runs_per_day (clusters that have one).",
    );
    for row in &clusters.rows {
        if let Some(left) = row.counters.budget_remaining {
            out.sample("nightcrier_cluster_budget_remaining", &row.labels(), left);
        }
    }
}

fn render_correlation(out: &mut Exposition, correlation: &CorrelationCounters) {
    out.family(
        "nightcrier_correlated_incidents_total",
        "counter",
        "Incidents opened by a fault that other clusters' same faults could join.",
    );
    out.sample(
        "nightcrier_correlated_incidents_total",
        &[],
        correlation.incidents,
    );
    out.family(
        "nightcrier_correlation_ungrouped_total",
        "counter",
        "Faults that ran on their own because 10000 correlated incidents were open.",
    );
    out.sample(
        "nightcrier_correlation_ungrouped_total",
        &[],
        correlation.not_grouped,
    );
    let name = "nightcrier_correlated_incident_clusters";
    out.family(
        name,
        "histogram",
        "Clusters per correlated incident, observed when its window ends.",
    );
    let bucket = format!("{name}_bucket");
    for (bound, cumulative) in correlation
        .cluster_bounds
        .iter()
        .zip(&correlation.cluster_cumulative)
    {
        let le = bound.to_string();
        out.sample(&bucket, &[("le", &le)], *cumulative);
    }
    out.sample(&bucket, &[("le", "+Inf")], correlation.cluster_count);
    out.sample(&format!("{name}_sum"), &[], correlation.cluster_sum);
    out.sample(&format!("{name}_count"), &[], correlation.cluster_count);
}

fn render_slack_and_config(out: &mut Exposition, published: &Published) {
    let pipeline = &published.pipeline;
    out.family(
        "nightcrier_slack_deliveries_total",
        "counter",
        "Slack messages delivered or given up, and attempts retried, by outcome.",
    );
    for (outcome, count) in [
        ("delivered", pipeline.slack.delivered),
        ("retried", pipeline.slack.retried),
        ("failed", pipeline.slack.failed),
    ] {
        out.sample(
            "nightcrier_slack_deliveries_total",
            &[("outcome", outcome)],
            count,
        );
    }
    out.family(
        "nightcrier_slack_api_errors_total",
        "counter",
        "Slack Web API errors in app mode, by name: ok:false errors (channel_not_found, \
         not_in_channel, invalid_auth, msg_too_long, ...), ratelimited for HTTP 429, \
         http_error, transport_error; other for names not known.",
    );
    for (error, count) in &pipeline.slack.api_errors {
        out.sample(
            "nightcrier_slack_api_errors_total",
            &[("error", error)],
            *count,
        );
    }

    out.family(
        "nightcrier_config_last_reload_successful",
        "gauge",
        "1 if the last configuration load (start or SIGHUP) succeeded.",
    );
    out.sample(
        "nightcrier_config_last_reload_successful",
        &[],
        u8::from(pipeline.config_last_reload_successful),
    );

    out.family(
        "nightcrier_config_last_reload_timestamp_seconds",
        "gauge",
        "Unix time of the last configuration load attempt.",
    );
    out.sample(
        "nightcrier_config_last_reload_timestamp_seconds",
        &[],
        Float(pipeline.config_last_reload_timestamp_seconds),
    );

    out.family(
        "nightcrier_config_reload_failures_total",
        "counter",
        "Reloads refused because the new configuration was invalid.",
    );
    out.sample(
        "nightcrier_config_reload_failures_total",
        &[],
        pipeline.config_reload_failures,
    );
}

fn uptime_seconds(health: &HealthSnapshot, now: SystemTime) -> f64 {
    let connected = matches!(
        health.status,
        ConnectionStatus::Connected | ConnectionStatus::Subscribing | ConnectionStatus::Active
    );
    match health.connected_since {
        Some(since) if connected => now
            .duration_since(since)
            .map_or(0.0, |elapsed| elapsed.as_secs_f64()),
        _ => 0.0,
    }
}

fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |since| since.as_secs_f64())
}

/// A sample value written in the exposition's float syntax.
struct Float(f64);

impl std::fmt::Display for Float {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&format_float(self.0))
    }
}

/// Rust prints `inf` and `NaN`; the exposition format wants `+Inf`, `-Inf` and `NaN`.
pub fn format_float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "+Inf".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        value.to_string()
    }
}

/// Escapes a label value: backslash, double quote and newline.
pub fn escape_label_value(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    push_escaped_label_value(&mut escaped, value);
    escaped
}

/// Appends `value` with backslash, quote and newline escaped, the runs between them whole.
fn push_escaped_label_value(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '"', '\n']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'"' => "\\\"",
            _ => "\\n",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

/// Escapes HELP text: backslash and newline.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// The output being built. Families are declared once, in the order written.
#[derive(Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        // Writing to a String cannot fail.
        let _ = writeln!(self.text, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        self.text.push_str(name);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(label);
                self.text.push_str("=\"");
                push_escaped_label_value(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        let _ = writeln!(self.text, " {value}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_escape_backslash_quote_and_newline() {
        assert_eq!(escape_label_value(r#"a\b"c"#), r#"a\\b\"c"#);
        assert_eq!(escape_label_value("line\nnext"), "line\\nnext");
        assert_eq!(escape_label_value("plain-name.1"), "plain-name.1");
        assert_eq!(escape_label_value("\"\n\\"), "\\\"\\n\\\\");
        assert_eq!(escape_label_value(""), "");
    }

    #[test]
    fn help_escapes_backslash_and_newline_only() {
        assert_eq!(escape_help("a\\b\n\"c\""), "a\\\\b\\n\"c\"");
    }

    #[test]
    fn floats_use_exposition_spelling() {
        assert_eq!(format_float(f64::INFINITY), "+Inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(5.0), "5");
        assert_eq!(format_float(0.25), "0.25");
    }

    #[test]
    fn sample_without_labels_has_no_braces() {
        let mut out = Exposition::default();
        out.sample("nightcrier_x", &[], 3u8);
        out.sample("nightcrier_y", &[("a", "1"), ("b", "\"")], Float(1.5));
        assert_eq!(
            out.text,
            "nightcrier_x 3\nnightcrier_y{a=\"1\",b=\"\\\"\"} 1.5\n"
        );
    }
}
