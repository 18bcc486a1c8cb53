//! `/metrics` output: exact lines for a snapshot with known counters, a strict checker of the
//! text exposition format 0.0.4, and the `prometheus_client` parser as a second opinion.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::peers::parse_metrics_with_python;
use common::snapshots::{self, wall};
use nightcrier::batch_window::Wakeups;
use nightcrier::cluster::manager::HealthSummary;
use nightcrier::cluster::status::{ConnectionStatus, HealthSnapshot};
use nightcrier::health::board::Published;
use nightcrier::metrics::counters::{ClusterCounters, PipelineSnapshot, SlackCounters};
use nightcrier::metrics::render::render;

fn connection(name: &str, environment: Option<&str>, status: ConnectionStatus) -> HealthSnapshot {
    HealthSnapshot {
        environment: environment.map(str::to_string),
        tried: true,
        stream_gaps: 2,
        ..snapshots::snapshot(name, status)
    }
}

/// alpha active with counters; beta failed, with an environment that needs escaping; gone
/// removed by a reload but still counted.
fn snapshot() -> Published {
    let alpha = connection("alpha", Some("prod"), ConnectionStatus::Active);
    let mut beta = connection("beta", Some("stag\"ing\n\\x"), ConnectionStatus::Failed);
    beta.errors.count("connecting");
    beta.errors.count("connecting");
    beta.errors.count("stream");

    let mut pipeline = PipelineSnapshot::default();
    pipeline.clusters.insert(
        "alpha".to_string(),
        ClusterCounters {
            faults_received: 9,
            faults_filtered: 2,
            faults_deduplicated: 1,
            dedup_evictions: 6,
            faults_dropped: 1,
            faults_rejected: 0,
            faults_triaged: 4,
            faults_skipped: 0,
            faults_breaker_open: 1,
            faults_silenced: 5,
            faults_correlated: 7,
            faults_budget_exhausted: 4,
            budget_remaining: Some(11),
            agents_investigated: 2,
            agents_failed: 1,
            agents_timed_out: 1,
            triage_refused_can_write: 2,
            triage_refused_unverified: 0,
            write_errors_no_space: 3,
            write_errors_other: 0,
            queue_depth: 3,
            agents_running: 1,
            breaker: "open",
        },
    );
    pipeline.clusters.insert(
        "gone".to_string(),
        ClusterCounters {
            faults_received: 5,
            ..ClusterCounters::default()
        },
    );
    pipeline.agents_running = 1;
    pipeline.queue_depth = 3;
    pipeline.faults_held = 2;
    pipeline.budget.runs_per_hour = Some(5);
    pipeline.silent_clusters = vec!["beta".to_string()];
    for seconds in [3, 45, 5000] {
        pipeline
            .agent_duration
            .observe(Duration::from_secs(seconds));
    }
    pipeline.correlation.incidents = 3;
    for clusters in [1, 5, 30] {
        pipeline.correlation.observe_clusters(clusters);
    }
    pipeline.slack = SlackCounters {
        delivered: 4,
        retried: 2,
        failed: 1,
        api_errors: [("channel_not_found", 1), ("ratelimited", 3)].into(),
    };
    pipeline.config_last_reload_successful = true;
    pipeline.config_last_reload_timestamp_seconds = 1_795_490_000.5;
    pipeline.config_reload_failures = 1;
    pipeline
        .faults_silenced
        .insert("file:db-upgrade".to_string(), 5);

    Published {
        clusters: vec![alpha, beta],
        summary: HealthSummary {
            total: 2,
            active: 1,
            unhealthy: 1,
            triage_enabled: 2,
        },
        pipeline,
        at: Instant::now(),
        wall: wall(),
        sequence: 7,
        stopping: false,
        wakeups: Wakeups {
            polls: 1234,
            batch_waits: 56,
        },
    }
}

fn assert_lines(text: &str, expected: &[&str]) {
    let lines: BTreeSet<&str> = text.lines().collect();
    for line in expected {
        assert!(lines.contains(line), "missing line {line:?} in:\n{text}");
    }
}

#[test]
fn per_cluster_counters_carry_cluster_and_environment() {
    let text = render(&snapshot());
    assert_lines(
        &text,
        &[
            r#"nightcrier_faults_received_total{cluster="alpha",environment="prod"} 9"#,
            r#"nightcrier_faults_filtered_total{cluster="alpha",environment="prod"} 2"#,
            r#"nightcrier_faults_deduplicated_total{cluster="alpha",environment="prod"} 1"#,
            r#"nightcrier_dedup_evictions_total{cluster="alpha",environment="prod"} 6"#,
            r#"nightcrier_faults_dropped_total{cluster="alpha",environment="prod"} 1"#,
            r#"nightcrier_faults_triaged_total{cluster="alpha",environment="prod"} 4"#,
            r#"nightcrier_faults_breaker_open_total{cluster="alpha",environment="prod"} 1"#,
            r#"nightcrier_faults_silenced_total{cluster="alpha",environment="prod"} 5"#,
            r#"nightcrier_silence_faults_total{silence="file:db-upgrade"} 5"#,
            r#"nightcrier_faults_correlated_total{cluster="alpha",environment="prod"} 7"#,
            r#"nightcrier_faults_received_total{cluster="beta",environment="stag\"ing\n\\x"} 0"#,
            r#"nightcrier_faults_received_total{cluster="gone",environment=""} 5"#,
            r#"nightcrier_agent_runs_total{cluster="alpha",environment="prod",outcome="timed_out"} 1"#,
            r#"nightcrier_triage_refused_total{cluster="alpha",environment="prod",reason="kubeconfig_can_write"} 2"#,
            r#"nightcrier_triage_refused_total{cluster="alpha",environment="prod",reason="read_only_unverified"} 0"#,
            r#"nightcrier_workspace_write_errors_total{cluster="alpha",environment="prod",reason="no_space"} 3"#,
            r#"nightcrier_workspace_write_errors_total{cluster="gone",environment="",reason="io_error"} 0"#,
            r#"nightcrier_queue_depth{cluster="alpha",environment="prod"} 3"#,
            r#"nightcrier_circuit_breaker_open{cluster="alpha",environment="prod"} 1"#,
            r#"nightcrier_circuit_breaker_open{cluster="beta",environment="stag\"ing\n\\x"} 0"#,
        ],
    );
}

#[test]
fn correlation_counts_incidents_and_clusters_per_incident() {
    let text = render(&snapshot());
    assert_lines(
        &text,
        &[
            "nightcrier_correlated_incidents_total 3",
            "nightcrier_faults_held 2",
            r#"nightcrier_cluster_silent{cluster="alpha",environment="prod"} 0"#,
            r#"nightcrier_cluster_silent{cluster="beta",environment="stag\"ing\n\\x"} 1"#,
            r#"nightcrier_budget_remaining{budget="runs_per_hour"} 5"#,
            r#"nightcrier_cluster_budget_remaining{cluster="alpha",environment="prod"} 11"#,
            r#"nightcrier_faults_budget_exhausted_total{cluster="alpha",environment="prod"} 4"#,
            r#"nightcrier_correlated_incident_clusters_bucket{le="1"} 1"#,
            r#"nightcrier_correlated_incident_clusters_bucket{le="5"} 2"#,
            r#"nightcrier_correlated_incident_clusters_bucket{le="20"} 2"#,
            r#"nightcrier_correlated_incident_clusters_bucket{le="50"} 3"#,
            r#"nightcrier_correlated_incident_clusters_bucket{le="+Inf"} 3"#,
            "nightcrier_correlated_incident_clusters_sum 36",
            "nightcrier_correlated_incident_clusters_count 3",
        ],
    );
}

#[test]
fn connection_series_show_status_uptime_errors_and_last_event() {
    let text = render(&snapshot());
    assert_lines(
        &text,
        &[
            r#"nightcrier_connection_status{cluster="alpha",environment="prod",status="active"} 1"#,
            r#"nightcrier_connection_status{cluster="alpha",environment="prod",status="failed"} 0"#,
            r#"nightcrier_connection_status{cluster="beta",environment="stag\"ing\n\\x",status="failed"} 1"#,
            r#"nightcrier_connection_uptime_seconds{cluster="alpha",environment="prod"} 600"#,
            r#"nightcrier_connection_uptime_seconds{cluster="beta",environment="stag\"ing\n\\x"} 0"#,
            r#"nightcrier_connection_errors_total{cluster="beta",environment="stag\"ing\n\\x",phase="connecting"} 2"#,
            r#"nightcrier_connection_errors_total{cluster="beta",environment="stag\"ing\n\\x",phase="stream"} 1"#,
            r#"nightcrier_reconnects_total{cluster="alpha",environment="prod"} 1"#,
            r#"nightcrier_stream_gaps_total{cluster="alpha",environment="prod"} 2"#,
            r#"nightcrier_events_received_total{cluster="alpha",environment="prod"} 12"#,
            r#"nightcrier_last_event_timestamp_seconds{cluster="alpha",environment="prod"} 1795493670"#,
            r#"nightcrier_last_event_timestamp_seconds{cluster="beta",environment="stag\"ing\n\\x"} 0"#,
        ],
    );
    let status_lines = text
        .lines()
        .filter(|l| l.starts_with("nightcrier_connection_status{cluster=\"alpha\""))
        .count();
    assert_eq!(status_lines, ConnectionStatus::ALL.len(), "one per status");
    assert!(
        !text.contains(r#"nightcrier_connection_status{cluster="gone""#),
        "a removed cluster has no connection"
    );
}

#[test]
fn global_series_show_agents_slack_config_loop_and_build() {
    let text = render(&snapshot());
    let version_line = format!(
        "nightcrier_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert_lines(
        &text,
        &[
            version_line.as_str(),
            r#"nightcrier_clusters{state="total"} 2"#,
            r#"nightcrier_clusters{state="unhealthy"} 1"#,
            "nightcrier_agents_running 1",
            "nightcrier_queue_depth_total 3",
            r#"nightcrier_agent_duration_seconds_bucket{le="5"} 1"#,
            r#"nightcrier_agent_duration_seconds_bucket{le="60"} 2"#,
            r#"nightcrier_agent_duration_seconds_bucket{le="1800"} 2"#,
            r#"nightcrier_agent_duration_seconds_bucket{le="+Inf"} 3"#,
            "nightcrier_agent_duration_seconds_sum 5048",
            "nightcrier_agent_duration_seconds_count 3",
            r#"nightcrier_slack_deliveries_total{outcome="delivered"} 4"#,
            r#"nightcrier_slack_deliveries_total{outcome="retried"} 2"#,
            r#"nightcrier_slack_deliveries_total{outcome="failed"} 1"#,
            r#"nightcrier_slack_api_errors_total{error="channel_not_found"} 1"#,
            r#"nightcrier_slack_api_errors_total{error="ratelimited"} 3"#,
            "nightcrier_system_degraded 0",
            "nightcrier_config_last_reload_successful 1",
            "nightcrier_config_last_reload_timestamp_seconds 1795490000.5",
            "nightcrier_config_reload_failures_total 1",
            "nightcrier_loop_wakeups_total 1234",
            "nightcrier_loop_batch_waits_total 56",
            "# TYPE nightcrier_loop_wakeups_total counter",
            "# TYPE nightcrier_agent_duration_seconds histogram",
            "# TYPE nightcrier_faults_received_total counter",
            "# TYPE nightcrier_connection_status gauge",
        ],
    );
}

#[test]
fn counters_move_when_faults_flow() {
    let before = snapshot();
    let mut after = before.clone();
    let alpha = after.pipeline.clusters.get_mut("alpha").unwrap();
    alpha.faults_received += 3;
    alpha.faults_triaged += 2;
    after.clusters[0].event_count += 3;
    let value = |text: &str, series: &str| -> f64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
            .unwrap_or_else(|| panic!("no {series}"));
        line[series.len() + 1..].parse().unwrap()
    };
    let series = [
        r#"nightcrier_faults_received_total{cluster="alpha",environment="prod"}"#,
        r#"nightcrier_faults_triaged_total{cluster="alpha",environment="prod"}"#,
        r#"nightcrier_events_received_total{cluster="alpha",environment="prod"}"#,
    ];
    let (old, new) = (render(&before), render(&after));
    let moved: Vec<f64> = series
        .iter()
        .map(|s| value(&new, s) - value(&old, s))
        .collect();
    assert_eq!(moved, [3.0, 2.0, 3.0]);
}

#[test]
fn output_passes_the_strict_format_check() {
    let text = render(&snapshot());
    let checked = check_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert!(checked.families >= 30, "{} families", checked.families);
    let empty = render(&nightcrier::health::board::HealthBoard::new().latest());
    check_exposition(&empty).unwrap_or_else(|e| panic!("{e}\n{empty}"));
}

#[test]
fn a_thousand_clusters_render_each_series_once() {
    let mut published = snapshot();
    published.clusters = (0..1000)
        .map(|i| connection(&format!("cluster-{i:04}"), None, ConnectionStatus::Active))
        .collect();
    let text = render(&published);
    check_exposition(&text).unwrap_or_else(|e| panic!("{e}"));
    let status_lines = text
        .lines()
        .filter(|l| l.starts_with("nightcrier_connection_status{"))
        .count();
    assert_eq!(status_lines, 1000 * ConnectionStatus::ALL.len());
}

#[test]
fn strict_check_refuses_broken_exposition() {
    let cases = [
        ("nightcrier_x 1\n", "no TYPE"),
        (
            "# TYPE nightcrier_a gauge\n# TYPE nightcrier_b gauge\nnightcrier_a 1\n",
            "interleaved",
        ),
        (
            "# TYPE nightcrier_a gauge\nnightcrier_a{x=\"1\"} 1\nnightcrier_a{x=\"1\"} 2\n",
            "duplicate series",
        ),
        ("# TYPE nightcrier_a gauge\nnightcrier_a{x=\"\\q\"} 1\n", "bad escape"),
        ("# TYPE nightcrier_a gauge\nnightcrier_a{x=1} 1\n", "unquoted value"),
        ("# TYPE nightcrier_a gauge\nnightcrier_a one\n", "bad value"),
        (
            "# TYPE nightcrier_h histogram\nnightcrier_h_bucket{le=\"1\"} 2\nnightcrier_h_bucket{le=\"2\"} 1\nnightcrier_h_bucket{le=\"+Inf\"} 2\nnightcrier_h_sum 1\nnightcrier_h_count 2\n",
            "buckets decrease",
        ),
        (
            "# TYPE nightcrier_h histogram\nnightcrier_h_bucket{le=\"1\"} 1\nnightcrier_h_bucket{le=\"+Inf\"} 2\nnightcrier_h_sum 1\nnightcrier_h_count 3\n",
            "+Inf differs from count",
        ),
        (
            "# TYPE nightcrier_h histogram\nnightcrier_h_bucket{le=\"1\"} 1\nnightcrier_h_sum 1\nnightcrier_h_count 1\n",
            "no +Inf bucket",
        ),
    ];
    for (text, why) in cases {
        assert!(check_exposition(text).is_err(), "accepted ({why}):\n{text}");
    }
}

#[test]
fn prometheus_client_parses_the_output() {
    let text = render(&snapshot());
    let declared = text.lines().filter(|l| l.starts_with("# TYPE ")).count();

    let (ok, stdout, stderr) = parse_metrics_with_python(&text);
    assert!(ok, "prometheus_client refused the output: {stderr}\n{text}");
    assert_eq!(stdout.trim(), declared.to_string(), "{stderr}");

    // The script fails on what it should refuse, so the pass above means something.
    let (ok, _, stderr) = parse_metrics_with_python("nightcrier_x 1\n");
    assert!(!ok, "untyped sample accepted");
    assert!(stderr.contains("without a declared family"), "{stderr}");
}

// ---- strict checker of the text exposition format 0.0.4 --------------------------------

struct Checked {
    families: usize,
}

#[derive(Default)]
struct Family {
    kind: String,
    help: bool,
}

/// Histogram series of one label set (without `le`).
#[derive(Default)]
struct Histogram {
    buckets: Vec<(f64, f64)>,
    sum: bool,
    count: Option<f64>,
}

fn check_exposition(text: &str) -> Result<Checked, String> {
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("output does not end with a newline".into());
    }
    let mut families: HashMap<String, Family> = HashMap::new();
    let mut finished: BTreeSet<String> = BTreeSet::new();
    let mut current: Option<String> = None;
    let mut series: BTreeSet<String> = BTreeSet::new();
    let mut histograms: BTreeMap<(String, String), Histogram> = BTreeMap::new();

    for (number, line) in text.lines().enumerate() {
        let at = |message: String| format!("line {}: {message}: {line:?}", number + 1);
        if line.is_empty() || line.contains('\r') {
            return Err(at("blank line or carriage return".into()));
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut parts = comment.trim_start().splitn(3, ' ');
            let keyword = parts.next().unwrap_or("");
            if keyword != "HELP" && keyword != "TYPE" {
                continue;
            }
            let name = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("");
            if !valid_metric_name(name) || !name.starts_with("nightcrier_") {
                return Err(at(format!("bad family name {name:?}")));
            }
            if current.as_deref() != Some(name) {
                if finished.contains(name) {
                    return Err(at(format!("family {name} interleaved with another")));
                }
                if let Some(previous) = current.take() {
                    finished.insert(previous);
                }
                current = Some(name.to_string());
            }
            let family = families.entry(name.to_string()).or_default();
            if keyword == "HELP" {
                if family.help {
                    return Err(at("second HELP".into()));
                }
                family.help = true;
                check_help(rest).map_err(at)?;
            } else {
                if !family.kind.is_empty() {
                    return Err(at("second TYPE".into()));
                }
                if !matches!(
                    rest,
                    "counter" | "gauge" | "histogram" | "summary" | "untyped"
                ) {
                    return Err(at(format!("unknown type {rest:?}")));
                }
                family.kind = rest.to_string();
            }
            continue;
        }

        let sample = parse_sample(line).map_err(at)?;
        let family_name = current
            .clone()
            .ok_or_else(|| at("sample before any TYPE".into()))?;
        let family = &families[&family_name];
        if family.kind.is_empty() {
            return Err(at("family has no TYPE".into()));
        }
        let suffix = sample
            .name
            .strip_prefix(family_name.as_str())
            .ok_or_else(|| at(format!("sample outside its family {family_name}")))?;
        let allowed: &[&str] = match family.kind.as_str() {
            "histogram" => &["_bucket", "_sum", "_count"],
            "summary" => &["", "_sum", "_count"],
            _ => &[""],
        };
        if !allowed.contains(&suffix) {
            return Err(at(format!("sample outside its family {family_name}")));
        }
        if family.kind == "counter" && (sample.value.is_nan() || sample.value < 0.0) {
            return Err(at("negative or NaN counter".into()));
        }
        let mut labels = sample.labels.clone();
        labels.sort();
        let key = format!("{}{labels:?}", sample.name);
        if !series.insert(key) {
            return Err(at("duplicate series".into()));
        }
        if family.kind == "histogram" {
            let le = labels
                .iter()
                .find(|(n, _)| n == "le")
                .map(|(_, v)| v.clone());
            let rest: Vec<_> = labels.iter().filter(|(n, _)| n != "le").cloned().collect();
            let entry = histograms
                .entry((family_name.clone(), format!("{rest:?}")))
                .or_default();
            match (suffix, le) {
                ("_bucket", Some(le)) => {
                    let bound = parse_value(&le).map_err(at)?;
                    if let Some((previous_bound, previous_count)) = entry.buckets.last() {
                        if bound <= *previous_bound {
                            return Err(at("bucket bounds not ascending".into()));
                        }
                        if sample.value < *previous_count {
                            return Err(at("bucket counts decrease".into()));
                        }
                    }
                    entry.buckets.push((bound, sample.value));
                }
                ("_bucket", None) => return Err(at("bucket without le".into())),
                (_, Some(_)) => return Err(at("le outside a bucket".into())),
                ("_sum", None) => entry.sum = true,
                (_, None) => entry.count = Some(sample.value),
            }
        }
    }

    for ((family, labels), histogram) in &histograms {
        let place = format!("histogram {family}{labels}");
        match histogram.buckets.last() {
            Some((bound, inf_count)) if *bound == f64::INFINITY => {
                if histogram.count != Some(*inf_count) {
                    return Err(format!("{place}: +Inf bucket differs from _count"));
                }
            }
            _ => return Err(format!("{place}: no +Inf bucket")),
        }
        if !histogram.sum {
            return Err(format!("{place}: no _sum"));
        }
    }
    if let Some((name, _)) = families.iter().find(|(_, f)| f.kind.is_empty()) {
        return Err(format!("family {name} has HELP but no TYPE"));
    }
    Ok(Checked {
        families: families.len(),
    })
}

struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !valid_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let mut chars = after_brace.char_indices().peekable();
        let mut seen = BTreeSet::new();
        loop {
            // A label name, or the closing brace (possibly after a trailing comma).
            let start = match chars.peek() {
                Some(&(i, '}')) => {
                    chars.next();
                    rest = &after_brace[i + 1..];
                    break;
                }
                Some(&(i, _)) => i,
                None => return Err("unterminated label set".into()),
            };
            let mut end = start;
            while let Some(&(i, c)) = chars.peek() {
                if c == '=' {
                    end = i;
                    break;
                }
                chars.next();
            }
            let label = &after_brace[start..end];
            if !valid_label_name(label) || label.starts_with("__") {
                return Err(format!("bad label name {label:?}"));
            }
            if !seen.insert(label.to_string()) {
                return Err(format!("label {label} repeated"));
            }
            chars.next(); // '='
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("value of {label} not quoted"));
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('"') => break,
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("bad escape \\{other:?} in {label}")),
                    },
                    Some('\n') | None => return Err(format!("unterminated value of {label}")),
                    Some(c) => value.push(c),
                }
            }
            labels.push((label.to_string(), value));
            match chars.peek().map(|&(_, c)| c) {
                Some(',') => {
                    chars.next();
                }
                Some('}') => {}
                _ => return Err("expected , or } after a label".into()),
            }
        }
    }
    let rest = rest.strip_prefix(' ').ok_or("no space before the value")?;
    let mut fields = rest.split(' ');
    let value = parse_value(fields.next().unwrap_or(""))?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("bad timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err("trailing fields".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ if text.is_empty()
            || !text
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '+' | 'e' | 'E')) =>
        {
            Err(format!("bad value {text:?}"))
        }
        _ => text.parse().map_err(|_| format!("bad value {text:?}")),
    }
}

fn check_help(text: &str) -> Result<(), String> {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return Err("bad escape in HELP".into());
        }
    }
    Ok(())
}

fn valid_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}
