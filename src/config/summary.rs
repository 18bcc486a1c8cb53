//! The readable summary `nightcrier check` prints. Secrets show only as "set (redacted)".

use std::fmt::Write;

use super::duration::format_duration;
use super::{ClusterConfig, Config};

/// Every cluster and the key globals, one setting per line.
pub fn render_summary(config: &Config) -> String {
    let mut out = String::new();
    let enabled = config.clusters.iter().filter(|c| c.enabled).count();
    let _ = writeln!(out, "configuration: {} (valid)", config.source.display());
    let _ = writeln!(
        out,
        "clusters: {} configured, {enabled} enabled",
        config.clusters.len()
    );
    write_globals(&mut out, config);
    for cluster in &config.clusters {
        write_cluster(&mut out, config, cluster);
    }
    write_silences(&mut out, config);
    let warnings = config.warnings();
    if !warnings.is_empty() {
        let _ = writeln!(out, "\nwarnings:");
        for warning in warnings {
            let _ = writeln!(out, "  - {warning}");
        }
    }
    out
}

/// The file's silences: id, matchers, when, author and comment.
fn write_silences(out: &mut String, config: &Config) {
    let _ = writeln!(out, "\nsilences: {} in the file", config.silences.len());
    for silence in &config.silences {
        let matchers: Vec<String> = silence.matchers.iter().map(|m| m.to_string()).collect();
        let _ = writeln!(out, "  {}", silence.id);
        row(out, "    ", "matchers", matchers.join(", "));
        row(out, "    ", "when", silence.active.describe());
        if !silence.created_by.is_empty() {
            row(out, "    ", "created_by", &silence.created_by);
        }
        if !silence.comment.is_empty() {
            row(out, "    ", "comment", &silence.comment);
        }
    }
}

fn row(out: &mut String, indent: &str, key: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "{indent}{key:<22} {value}");
}

fn write_globals(out: &mut String, c: &Config) {
    let _ = writeln!(out, "\nglobal:");
    let g = "  ";
    row(out, g, "log_level", c.log_level.to_string().to_lowercase());
    row(out, g, "log_format", c.log_format.as_str());
    row(out, g, "subscribe_mode", c.subscribe_mode);
    row(out, g, "severity_threshold", c.severity_threshold);
    row(out, g, "workspace_root", c.workspace_root.display());
    row(
        out,
        g,
        "shard",
        c.shard
            .map_or("none (all clusters)".to_string(), |s| s.to_string()),
    );
    let health = if c.health.enabled {
        format!("http://{}", c.health.listen)
    } else {
        "off".to_string()
    };
    row(out, g, "health", health);
    let admin = match (c.admin.listen, &c.admin.token) {
        (Some(addr), Some(_)) => format!(
            "http://{addr}/incidents, silences API http://{addr}/api/v2/silences (token set, redacted)"
        ),
        (Some(addr), None) => format!(
            "http://{addr}/incidents, silences API http://{addr}/api/v2/silences (read-only: no token)"
        ),
        (None, _) => "off".to_string(),
    };
    row(out, g, "admin", admin);
    row(
        out,
        g,
        "queue",
        format!(
            "{} per cluster, {} total, overflow {}",
            c.queue.cluster_queue_size, c.queue.global_queue_size, c.queue.overflow_policy
        ),
    );
    row(
        out,
        g,
        "dedup",
        format!(
            "window {}, at most {} entries",
            format_duration(c.dedup.window),
            c.dedup.max_entries
        ),
    );
    row(
        out,
        g,
        "correlation",
        if c.correlation.enabled {
            format!(
                "window {}, hold {}",
                format_duration(c.correlation.window),
                format_duration(c.correlation.hold)
            )
        } else {
            "off".to_string()
        },
    );
    row(
        out,
        g,
        "alerts",
        format!(
            "cluster silent after {}, at most one silent/recovered pair per {}",
            format_duration(c.alerts.cluster_down_after),
            format_duration(c.alerts.flap_window)
        ),
    );
    let budget: Vec<String> = [
        ("runs per hour", c.budget.runs_per_hour),
        ("runs per day", c.budget.runs_per_day),
        (
            "runs per day per fault type",
            c.budget.runs_per_day_per_fault_type,
        ),
        ("agent seconds per day", c.budget.agent_seconds_per_day),
    ]
    .into_iter()
    .filter_map(|(what, limit)| limit.map(|limit| format!("{what} {limit}")))
    .collect();
    row(
        out,
        g,
        "budget",
        if budget.is_empty() {
            "unlimited".to_string()
        } else {
            budget.join(", ")
        },
    );
    row(
        out,
        g,
        "reconnect",
        format!(
            "{} to {}, x{}, jitter {}%",
            format_duration(c.reconnect.initial),
            format_duration(c.reconnect.max),
            c.reconnect.multiplier,
            c.reconnect.jitter * 100.0
        ),
    );
    row(
        out,
        g,
        "timeouts",
        format!(
            "connect {}, read {}, ping every {}, subscription check every {}, shutdown {}",
            format_duration(c.connection.connect_timeout),
            format_duration(c.connection.read_timeout),
            format_duration(c.connection.ping_interval),
            format_duration(c.connection.subscription_audit_interval),
            format_duration(c.shutdown_timeout)
        ),
    );
    row(
        out,
        g,
        "agent",
        format!(
            "{} (cli {}, model {}, at most {} at once, timeout {})",
            c.agent.script.display(),
            c.agent.cli,
            c.agent.model,
            c.agent.max_concurrent_agents,
            format_duration(c.agent.timeout)
        ),
    );
    row(
        out,
        g,
        "confinement",
        format!(
            "{} (agents on this host; output logs capped at {} bytes)",
            c.agent.confinement.as_str(),
            c.agent.max_output_bytes
        ),
    );
    row(
        out,
        g,
        "retention",
        format!(
            "{} incidents, {} bytes, {} days at most (checked every {})",
            c.workspace.max_incidents,
            c.workspace.max_bytes,
            c.workspace.max_age.as_secs() / 86_400,
            format_duration(c.workspace.sweep_interval)
        ),
    );
    row(
        out,
        g,
        "slack",
        match (&c.slack.webhook_url, &c.slack.bot_token) {
            (Some(_), _) => "webhook set (redacted)".to_string(),
            (None, Some(_)) => format!(
                "app mode, bot token set (redacted), channel {}",
                c.slack.channel.as_deref().unwrap_or("-")
            ),
            (None, None) => "off".to_string(),
        },
    );
}

/// Where the cluster's incidents go: the route that takes it (by position and what it
/// names; routes on a fault type are noted, since they depend on the fault), or the default.
fn slack_route(config: &Config, cluster: &ClusterConfig) -> String {
    use crate::notify::slack_route::{route, Destination};
    let slack = &config.slack;
    let default = match (&slack.webhook_url, &slack.channel) {
        (Some(_), _) => "webhook (redacted)".to_string(),
        (None, Some(channel)) if slack.bot_token.is_some() => format!("channel {channel}"),
        _ => return "-".to_string(),
    };
    let environment = cluster.environment.as_deref();
    let (whole, before) = match route(
        &slack.routes,
        &cluster.name,
        environment,
        &cluster.labels,
        None,
    ) {
        Destination::Route(i, r) => (format!("route {} -> {}", i + 1, r.target_text()), i),
        Destination::Default => (format!("default -> {default}"), slack.routes.len()),
    };
    let by_fault = slack.routes[..before].iter().enumerate().find(|(_, r)| {
        r.fault_type.is_some()
            && r.matches(
                &cluster.name,
                environment,
                &cluster.labels,
                r.fault_type.as_deref(),
            )
    });
    match by_fault {
        Some((i, r)) => format!(
            "{whole} (fault type {}: route {} -> {})",
            r.fault_type.as_deref().unwrap_or("-"),
            i + 1,
            r.target_text()
        ),
        None => whole,
    }
}

fn write_cluster(out: &mut String, config: &Config, cluster: &ClusterConfig) {
    let _ = writeln!(out, "\ncluster {}:", cluster.name);
    let i = "  ";
    let owned = config.shard.is_none_or(|s| s.owns(&cluster.name));
    let enabled = match (cluster.enabled, owned) {
        (true, true) => "yes",
        (true, false) => "yes, but another shard owns it",
        (false, _) => "no",
    };
    row(out, i, "enabled", enabled);
    row(
        out,
        i,
        "environment",
        cluster.environment.as_deref().unwrap_or("-"),
    );
    row(out, i, "priority", cluster.priority);
    let labels = if cluster.labels.is_empty() {
        "-".to_string()
    } else {
        cluster
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row(out, i, "labels", labels);
    row(out, i, "slack route", slack_route(config, cluster));
    let mcp = &cluster.mcp;
    row(out, i, "endpoint", &mcp.endpoint);
    let tls = if !mcp.endpoint.tls {
        "no (plain http)".to_string()
    } else if mcp.insecure_skip_tls_verify {
        "yes, certificate NOT verified (insecure_skip_tls_verify)".to_string()
    } else {
        match &mcp.ca_file {
            Some(ca) => format!(
                "yes, verified against {} (its CAs; a server certificate in it is pinned) and \
                 the built-in Mozilla roots",
                ca.display()
            ),
            None => "yes, verified against the built-in Mozilla roots (webpki-roots)".to_string(),
        }
    };
    row(out, i, "tls", tls);
    row(
        out,
        i,
        "api_key",
        if mcp.api_key.is_some() {
            "set (redacted)"
        } else {
            "none"
        },
    );
    let triage = if cluster.triage_ready() {
        format!(
            "enabled (kubeconfig {}, model {}, secrets access {}{})",
            cluster
                .triage
                .kubeconfig
                .as_ref()
                .map_or(String::new(), |k| k.display().to_string()),
            cluster.effective_model(&config.agent),
            if cluster.triage.allow_secrets_access {
                "allowed"
            } else {
                "denied"
            },
            if cluster.requires_read_only(&config.preflight) {
                ", read-only kubeconfig required"
            } else {
                ""
            }
        )
    } else {
        "disabled (faults are logged as triage_skipped)".to_string()
    };
    row(out, i, "triage", triage);
    let severity = cluster.effective_severity(config.severity_threshold);
    let origin = if cluster.severity_threshold.is_some() {
        "cluster setting"
    } else {
        "global"
    };
    row(
        out,
        i,
        "severity_threshold",
        format!("{severity} ({origin})"),
    );
}
