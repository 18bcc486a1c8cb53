//! The top level of the file and its global sections: what each key may hold and
//! what it defaults to.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use log::LevelFilter;

use super::agent_cli::{default_model, parse_agent_cli};
use super::clusters::{read_clusters, CLUSTER_KEYS, MCP_KEYS, TRIAGE_KEYS};
use super::document::{Context, Origin, Sourced, Table};
use super::duration::{format_duration, parse_duration};
use super::endpoint::Endpoint;
use super::error::quote;
use super::secret::Secret;
use super::sections::{
    AdminConfig, AgentConfig, AlertsConfig, BreakerConfig, BudgetConfig, Confinement,
    ConnectionConfig, CorrelationConfig, DedupConfig, HealthConfig, LogFormat, OverflowPolicy,
    PreflightConfig, QueueConfig, ReconnectConfig, SlackConfig, SubscribeMode, WorkspaceConfig,
    MAX_BATCH_WINDOW,
};
use super::severity::Severity;
use super::shard::Shard;
use super::silences::{read_silences, SILENCE_KEYS};
use super::slack_routes::{read_routes, RouteMode};
use super::values::SecretKeys;
use super::Config;

pub(crate) const ROOT_KEYS: &[&str] = &[
    "log_level",
    "log_format",
    "subscribe_mode",
    "severity_threshold",
    "workspace_root",
    "workspace",
    "shard",
    "shutdown_timeout",
    "clusters",
    "reconnect",
    "connection",
    "queue",
    "dedup",
    "correlation",
    "budget",
    "alerts",
    "agent",
    "breaker",
    "preflight",
    "health",
    "admin",
    "slack",
    "silences",
    "mcp_endpoint",
    "kubeconfig",
    "api_key",
    "api_key_file",
    "api_key_env",
    "cluster_name",
    "triage_enabled",
];
pub(crate) const RECONNECT_KEYS: &[&str] =
    &["initial", "max", "multiplier", "jitter", "stable_after"];
pub(crate) const CONNECTION_KEYS: &[&str] = &[
    "connect_timeout",
    "read_timeout",
    "ping_interval",
    "subscription_audit_interval",
    "tcp_keepalive",
    "control_idle_timeout",
    "max_event_bytes",
    "max_header_bytes",
    "batch_window",
];
pub(crate) const QUEUE_KEYS: &[&str] =
    &["cluster_queue_size", "global_queue_size", "overflow_policy"];
pub(crate) const DEDUP_KEYS: &[&str] = &["window", "max_entries"];
pub(crate) const CORRELATION_KEYS: &[&str] = &["enabled", "window", "hold"];
pub(crate) const ALERTS_KEYS: &[&str] = &["cluster_down_after", "flap_window"];
pub(crate) const BUDGET_KEYS: &[&str] = &[
    "runs_per_hour",
    "runs_per_day",
    "runs_per_day_per_fault_type",
    "agent_seconds_per_day",
];
pub(crate) const AGENT_KEYS: &[&str] = &[
    "script",
    "cli",
    "model",
    "allowed_tools",
    "timeout",
    "kill_grace",
    "max_concurrent_agents",
    "system_prompt_file",
    "confinement",
    "env_allow",
    "confine_read_only",
    "max_output_bytes",
];
pub(crate) const WORKSPACE_KEYS: &[&str] =
    &["max_age", "max_incidents", "max_bytes", "sweep_interval"];
pub(crate) const BREAKER_KEYS: &[&str] =
    &["failure_threshold", "cooldown", "global_failure_threshold"];
pub(crate) const PREFLIGHT_KEYS: &[&str] = &["kubectl", "timeout", "require_read_only"];
pub(crate) const HEALTH_KEYS: &[&str] = &["enabled", "listen", "publish_interval"];
pub(crate) const ADMIN_KEYS: &[&str] = &["listen", "token", "token_file", "token_env"];
pub(crate) const SLACK_KEYS: &[&str] = &[
    "webhook_url",
    "webhook_url_file",
    "webhook_url_env",
    "notify_on_agent_failure",
    "max_attempts",
    "ca_file",
    "bot_token",
    "bot_token_file",
    "bot_token_env",
    "channel",
    "api_url",
    "channel_interval",
    "proxy",
    "resolved_check_interval",
    "routes",
];

/// Where a top-level key that belongs in a section should go.
const SECTION_HINTS: &[(&str, &[&str])] = &[
    ("[reconnect]", RECONNECT_KEYS),
    ("[connection]", CONNECTION_KEYS),
    ("[queue]", QUEUE_KEYS),
    ("[dedup]", DEDUP_KEYS),
    ("[correlation]", CORRELATION_KEYS),
    ("[budget]", BUDGET_KEYS),
    ("[alerts]", ALERTS_KEYS),
    ("[agent]", AGENT_KEYS),
    ("[workspace]", WORKSPACE_KEYS),
    ("[breaker]", BREAKER_KEYS),
    ("[preflight]", PREFLIGHT_KEYS),
    ("[health]", HEALTH_KEYS),
    ("[admin]", ADMIN_KEYS),
    ("[slack]", SLACK_KEYS),
    ("a [[clusters]] entry's [clusters.mcp]", MCP_KEYS),
    ("a [[clusters]] entry's [clusters.triage]", TRIAGE_KEYS),
];

/// Every key a configuration file may hold, dotted: `log_level`, `queue.overflow_policy`,
/// `clusters.mcp.endpoint`. The documentation is checked against it.
pub fn accepted_keys() -> Vec<String> {
    let sections: &[(&str, &[&str])] = &[
        ("workspace", WORKSPACE_KEYS),
        ("reconnect", RECONNECT_KEYS),
        ("connection", CONNECTION_KEYS),
        ("queue", QUEUE_KEYS),
        ("dedup", DEDUP_KEYS),
        ("correlation", CORRELATION_KEYS),
        ("budget", BUDGET_KEYS),
        ("alerts", ALERTS_KEYS),
        ("agent", AGENT_KEYS),
        ("breaker", BREAKER_KEYS),
        ("preflight", PREFLIGHT_KEYS),
        ("health", HEALTH_KEYS),
        ("admin", ADMIN_KEYS),
        ("slack", SLACK_KEYS),
        ("silences", SILENCE_KEYS),
    ];
    let cluster_sections: &[(&str, &[&str])] = &[("mcp", MCP_KEYS), ("triage", TRIAGE_KEYS)];
    let mut keys = Vec::new();
    for key in ROOT_KEYS {
        if *key != "clusters" && !sections.iter().any(|(name, _)| name == key) {
            keys.push(key.to_string());
        }
    }
    for (section, section_keys) in sections {
        keys.extend(
            section_keys
                .iter()
                .filter(|key| !(*section == "slack" && **key == "routes"))
                .map(|key| format!("{section}.{key}")),
        );
    }
    keys.extend(
        super::slack_routes::ROUTE_KEYS
            .iter()
            .map(|key| format!("slack.routes.{key}")),
    );
    for key in CLUSTER_KEYS {
        match cluster_sections.iter().find(|(name, _)| name == key) {
            Some((section, section_keys)) => keys.extend(
                section_keys
                    .iter()
                    .map(|k| format!("clusters.{section}.{k}")),
            ),
            None => keys.push(format!("clusters.{key}")),
        }
    }
    keys
}

const ADMIN_TOKEN: SecretKeys = SecretKeys {
    inline: "token",
    file: "token_file",
    env: "token_env",
};

const SLACK_WEBHOOK: SecretKeys = SecretKeys {
    inline: "webhook_url",
    file: "webhook_url_file",
    env: "webhook_url_env",
};

const SLACK_BOT_TOKEN: SecretKeys = SecretKeys {
    inline: "bot_token",
    file: "bot_token_file",
    env: "bot_token_env",
};

/// Largest queue, in faults.
const MAX_QUEUE_SIZE: i64 = 1_000_000;
const KIB: i64 = 1024;
const MIB: i64 = 1024 * KIB;

/// Reads the whole document; errors are collected in `ctx`.
pub(crate) fn read_config(ctx: &mut Context, root: &Table) -> Config {
    let defaults = Config::defaults(ctx.file().to_path_buf());
    ctx.allow_keys(root, ROOT_KEYS, SECTION_HINTS);
    // Read first: which models the clusters may name depends on the CLI.
    let agent = read_agent(ctx, root);
    let health = read_health(ctx, root);
    let admin = read_admin(ctx, root, &health);
    let clusters = read_clusters(ctx, root, &agent.cli);
    let silences = read_silences(ctx, root, &clusters);
    Config {
        source: defaults.source,
        log_level: ctx
            .parsed_with(root, "log_level", defaults.log_level, parse_log_level)
            .value,
        log_format: ctx
            .parsed::<LogFormat>(root, "log_format", defaults.log_format)
            .value,
        subscribe_mode: ctx
            .parsed::<SubscribeMode>(root, "subscribe_mode", defaults.subscribe_mode)
            .value,
        severity_threshold: ctx
            .parsed::<Severity>(root, "severity_threshold", defaults.severity_threshold)
            .value,
        workspace_root: ctx
            .path(root, "workspace_root")
            .map_or(defaults.workspace_root, |p| p.value),
        workspace: read_workspace(ctx, root),
        shard: ctx.optional_parsed::<Shard>(root, "shard").map(|s| s.value),
        clusters,
        silences,
        reconnect: read_reconnect(ctx, root),
        connection: read_connection(ctx, root),
        queue: read_queue(ctx, root),
        dedup: read_dedup(ctx, root),
        correlation: read_correlation(ctx, root),
        budget: read_budget(ctx, root),
        alerts: read_alerts(ctx, root),
        agent,
        breaker: read_breaker(ctx, root),
        preflight: read_preflight(ctx, root),
        health,
        admin,
        slack: read_slack(ctx, root),
        shutdown_timeout: ctx
            .duration(root, "shutdown_timeout", defaults.shutdown_timeout)
            .value,
    }
}

/// `off`, `error`, `warn` (or `warning`), `info`, `debug`, `trace`, any case.
pub fn parse_log_level(text: &str) -> Result<LevelFilter, String> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("warning") {
        return Ok(LevelFilter::Warn);
    }
    LevelFilter::from_str(text).map_err(|_| {
        format!(
            "unknown log level {} (expected off, error, warn, info, debug or trace)",
            quote(text)
        )
    })
}

/// Of two related settings, the one to point at: the one actually written, the
/// second when both are.
fn blame<'s>(first: (&'s str, &'s Origin), second: (&'s str, &'s Origin)) -> (&'s str, &'s Origin) {
    if second.1.is_default() && !first.1.is_default() {
        first
    } else {
        second
    }
}

fn read_reconnect(ctx: &mut Context, root: &Table) -> ReconnectConfig {
    let table = ctx.table(root, "reconnect");
    ctx.allow_keys(&table, RECONNECT_KEYS, &[]);
    let d = ReconnectConfig::default();
    let initial = ctx.duration(&table, "initial", d.initial);
    let max = ctx.duration(&table, "max", d.max);
    if initial.value > max.value {
        let (key, origin) = blame(("initial", &initial.origin), ("max", &max.origin));
        let message = format!(
            "initial backoff {} is longer than max {}",
            format_duration(initial.value),
            format_duration(max.value)
        );
        ctx.error(&table.scope, key, origin, message);
    }
    ReconnectConfig {
        initial: initial.value,
        max: max.value,
        multiplier: ctx.fraction(&table, "multiplier", d.multiplier, 1.0..=10.0),
        jitter: ctx.fraction(&table, "jitter", d.jitter, 0.0..=1.0),
        stable_after: ctx.duration(&table, "stable_after", d.stable_after).value,
    }
}

fn read_connection(ctx: &mut Context, root: &Table) -> ConnectionConfig {
    let table = ctx.table(root, "connection");
    ctx.allow_keys(&table, CONNECTION_KEYS, &[]);
    let d = ConnectionConfig::default();
    ConnectionConfig {
        connect_timeout: ctx
            .duration(&table, "connect_timeout", d.connect_timeout)
            .value,
        read_timeout: ctx.duration(&table, "read_timeout", d.read_timeout).value,
        ping_interval: ctx.duration(&table, "ping_interval", d.ping_interval).value,
        subscription_audit_interval: ctx
            .duration(
                &table,
                "subscription_audit_interval",
                d.subscription_audit_interval,
            )
            .value,
        tcp_keepalive: ctx.duration(&table, "tcp_keepalive", d.tcp_keepalive).value,
        control_idle_timeout: ctx
            .duration(&table, "control_idle_timeout", d.control_idle_timeout)
            .value,
        max_event_bytes: size(
            ctx,
            &table,
            "max_event_bytes",
            d.max_event_bytes,
            KIB,
            64 * MIB,
        ),
        max_header_bytes: size(
            ctx,
            &table,
            "max_header_bytes",
            d.max_header_bytes,
            KIB,
            MIB,
        ),
        batch_window: batch_window(ctx, &table, d.batch_window),
    }
}

/// `connection.batch_window`: `"off"`, or a duration above zero and at most
/// [`MAX_BATCH_WINDOW`].
fn batch_window(ctx: &mut Context, table: &Table, default: Option<Duration>) -> Option<Duration> {
    let Some(text) = ctx.duration_text(table, "batch_window") else {
        return default;
    };
    if text.value.trim() == "off" {
        return None;
    }
    let message = match parse_duration(&text.value) {
        Ok(d) if !d.is_zero() && d <= MAX_BATCH_WINDOW => return Some(d),
        Ok(_) => format!(
            "must be \"off\" or above zero and at most {}",
            format_duration(MAX_BATCH_WINDOW)
        ),
        Err(e) => format!("{e}, or \"off\""),
    };
    ctx.error(&table.scope, "batch_window", &text.origin, message);
    default
}

fn read_queue(ctx: &mut Context, root: &Table) -> QueueConfig {
    let table = ctx.table(root, "queue");
    ctx.allow_keys(&table, QUEUE_KEYS, &[]);
    let d = QueueConfig::default();
    let per_cluster = ctx.count(
        &table,
        "cluster_queue_size",
        d.cluster_queue_size as i64,
        1..=MAX_QUEUE_SIZE,
    );
    let global = ctx.count(
        &table,
        "global_queue_size",
        d.global_queue_size as i64,
        1..=MAX_QUEUE_SIZE,
    );
    if per_cluster.value > global.value {
        let (key, origin) = blame(
            ("cluster_queue_size", &per_cluster.origin),
            ("global_queue_size", &global.origin),
        );
        let message = format!(
            "cluster_queue_size ({}) is larger than global_queue_size ({})",
            per_cluster.value, global.value
        );
        ctx.error(&table.scope, key, origin, message);
    }
    QueueConfig {
        cluster_queue_size: to_usize(per_cluster.value),
        global_queue_size: to_usize(global.value),
        overflow_policy: ctx
            .parsed::<OverflowPolicy>(&table, "overflow_policy", d.overflow_policy)
            .value,
    }
}

fn read_dedup(ctx: &mut Context, root: &Table) -> DedupConfig {
    let table = ctx.table(root, "dedup");
    ctx.allow_keys(&table, DEDUP_KEYS, &[]);
    let d = DedupConfig::default();
    DedupConfig {
        window: ctx.duration(&table, "window", d.window).value,
        max_entries: size(ctx, &table, "max_entries", d.max_entries, 1, 10_000_000),
    }
}

fn read_correlation(ctx: &mut Context, root: &Table) -> CorrelationConfig {
    let table = ctx.table(root, "correlation");
    ctx.allow_keys(&table, CORRELATION_KEYS, &[]);
    let d = CorrelationConfig::default();
    let enabled = ctx.flag(&table, "enabled", d.enabled);
    let window = ctx.duration(&table, "window", d.window).value;
    let hold = ctx.duration(&table, "hold", d.hold);
    if hold.value > window {
        let message = format!(
            "must be at most correlation.window ({}), got {}",
            format_duration(window),
            format_duration(hold.value)
        );
        ctx.error(&table.scope, "hold", &hold.origin, message);
    }
    CorrelationConfig {
        enabled,
        window,
        hold: hold.value.min(window),
    }
}

fn read_alerts(ctx: &mut Context, root: &Table) -> AlertsConfig {
    let table = ctx.table(root, "alerts");
    ctx.allow_keys(&table, ALERTS_KEYS, &[]);
    let d = AlertsConfig::default();
    AlertsConfig {
        cluster_down_after: ctx
            .duration(&table, "cluster_down_after", d.cluster_down_after)
            .value,
        flap_window: ctx.duration(&table, "flap_window", d.flap_window).value,
    }
}

fn read_budget(ctx: &mut Context, root: &Table) -> BudgetConfig {
    let table = ctx.table(root, "budget");
    ctx.allow_keys(&table, BUDGET_KEYS, &[]);
    let mut ceiling = |key: &str| {
        table.has(key).then(|| {
            let value = ctx.count(&table, key, 0, 0..=1_000_000_000).value;
            u64::try_from(value).unwrap_or(0)
        })
    };
    BudgetConfig {
        runs_per_hour: ceiling("runs_per_hour"),
        runs_per_day: ceiling("runs_per_day"),
        runs_per_day_per_fault_type: ceiling("runs_per_day_per_fault_type"),
        agent_seconds_per_day: ceiling("agent_seconds_per_day"),
    }
}

fn read_agent(ctx: &mut Context, root: &Table) -> AgentConfig {
    let table = ctx.table(root, "agent");
    ctx.allow_keys(&table, AGENT_KEYS, &[]);
    let d = AgentConfig::default();
    let cli = ctx
        .optional_parsed_with(&table, "cli", parse_agent_cli)
        .map_or(d.cli, |c| c.value);
    // Unset, the model is the CLI's own default, so changing only `cli` stays consistent.
    let model = ctx
        .agent_model(&table, "model", &cli)
        .unwrap_or_else(|| default_model(&cli).to_string());
    AgentConfig {
        script: ctx.path(&table, "script").map_or(d.script, |p| p.value),
        cli,
        model,
        allowed_tools: ctx.text_or(&table, "allowed_tools", &d.allowed_tools),
        timeout: ctx.duration(&table, "timeout", d.timeout).value,
        kill_grace: ctx.duration(&table, "kill_grace", d.kill_grace).value,
        max_concurrent_agents: size(
            ctx,
            &table,
            "max_concurrent_agents",
            d.max_concurrent_agents,
            1,
            256,
        ),
        system_prompt_file: ctx
            .readable_file(&table, "system_prompt_file")
            .map(|p| p.value),
        confinement: ctx
            .parsed::<Confinement>(&table, "confinement", d.confinement)
            .value,
        env_allow: read_env_allow(ctx, &table),
        confine_read_only: ctx
            .string_list(&table, "confine_read_only")
            .into_iter()
            .map(|p| ctx.resolve_path(&p.value, &p.origin))
            .collect(),
        max_output_bytes: ctx
            .count(
                &table,
                "max_output_bytes",
                d.max_output_bytes as i64,
                4 * KIB..=1024 * MIB,
            )
            .value as u64,
    }
}

/// Variable names (or `PREFIX*`): letters, digits and `_`, not starting with a digit.
fn read_env_allow(ctx: &mut Context, table: &Table) -> Vec<String> {
    let mut names = Vec::new();
    for entry in ctx.string_list(table, "env_allow") {
        let name = entry.value.strip_suffix('*').unwrap_or(&entry.value);
        let valid = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if valid {
            names.push(entry.value);
        } else {
            let message = format!(
                "{} is not an environment variable name (letters, digits and _, or a prefix \
                 ending in *)",
                quote(&entry.value)
            );
            ctx.error(&table.scope, "env_allow", &entry.origin, message);
        }
    }
    names
}

fn read_workspace(ctx: &mut Context, root: &Table) -> WorkspaceConfig {
    let table = ctx.table(root, "workspace");
    ctx.allow_keys(&table, WORKSPACE_KEYS, &[]);
    let d = WorkspaceConfig::default();
    WorkspaceConfig {
        max_age: ctx.long_duration(&table, "max_age", d.max_age).value,
        max_incidents: size(ctx, &table, "max_incidents", d.max_incidents, 1, 10_000_000),
        max_bytes: ctx
            .count(&table, "max_bytes", d.max_bytes as i64, MIB..=i64::MAX)
            .value as u64,
        sweep_interval: ctx
            .duration(&table, "sweep_interval", d.sweep_interval)
            .value,
    }
}

fn read_breaker(ctx: &mut Context, root: &Table) -> BreakerConfig {
    let table = ctx.table(root, "breaker");
    ctx.allow_keys(&table, BREAKER_KEYS, &[]);
    let d = BreakerConfig::default();
    let threshold = |ctx: &mut Context, key: &str, default: u32, max: i64| {
        let value = ctx.count(&table, key, i64::from(default), 1..=max).value;
        u32::try_from(value).unwrap_or(default)
    };
    BreakerConfig {
        failure_threshold: threshold(ctx, "failure_threshold", d.failure_threshold, 1000),
        cooldown: ctx.duration(&table, "cooldown", d.cooldown).value,
        global_failure_threshold: threshold(
            ctx,
            "global_failure_threshold",
            d.global_failure_threshold,
            10_000,
        ),
    }
}

fn read_preflight(ctx: &mut Context, root: &Table) -> PreflightConfig {
    let table = ctx.table(root, "preflight");
    ctx.allow_keys(&table, PREFLIGHT_KEYS, &[]);
    let d = PreflightConfig::default();
    PreflightConfig {
        kubectl: ctx.text_or(&table, "kubectl", &d.kubectl),
        timeout: ctx.duration(&table, "timeout", d.timeout).value,
        require_read_only: ctx.flag(&table, "require_read_only", d.require_read_only),
    }
}

/// `listen = "off"` (or NIGHTCRIER_HEALTH_LISTEN=off, --health-listen off) disables
/// the server; an address given by a flag or the environment enables it.
fn read_health(ctx: &mut Context, root: &Table) -> HealthConfig {
    let table = ctx.table(root, "health");
    ctx.allow_keys(&table, HEALTH_KEYS, &[]);
    let d = HealthConfig::default();
    let mut enabled = ctx.flag(&table, "enabled", d.enabled);
    let mut listen = d.listen;
    if let Some(text) = ctx.string(&table, "listen") {
        let overridden = matches!(text.origin, Origin::Override(_));
        if text.value.trim().eq_ignore_ascii_case("off") {
            enabled = false;
        } else {
            match text.value.trim().parse::<SocketAddr>() {
                Ok(addr) => {
                    listen = addr;
                    enabled = enabled || overridden;
                }
                Err(_) => {
                    let message = format!(
                        "{} is not an address and port such as 127.0.0.1:8080 or [::1]:8080 \
                         (or \"off\")",
                        quote(&text.value)
                    );
                    ctx.error(&table.scope, "listen", &text.origin, message);
                }
            }
        }
    }
    HealthConfig {
        enabled,
        listen,
        publish_interval: ctx
            .duration(&table, "publish_interval", d.publish_interval)
            .value,
    }
}

/// `listen = "off"` (the default) or a loopback address: the admin pages show what agents
/// wrote and have no authentication, so they are never served beyond this host, and never
/// on the health listener, which Prometheus and probes reach.
fn read_admin(ctx: &mut Context, root: &Table, health: &HealthConfig) -> AdminConfig {
    let table = ctx.table(root, "admin");
    ctx.allow_keys(&table, ADMIN_KEYS, &[]);
    let token = ctx
        .secret(&table, ADMIN_TOKEN)
        .map(|(_, token)| token.value);
    let off = AdminConfig {
        listen: None,
        token: token.clone(),
    };
    let Some(text) = ctx.string(&table, "listen") else {
        return off;
    };
    let value = text.value.trim();
    if value.eq_ignore_ascii_case("off") {
        return off;
    }
    let problem = match value.parse::<SocketAddr>() {
        Err(_) => format!(
            "{} is not an address and port such as 127.0.0.1:9090 or [::1]:9090 (or \"off\")",
            quote(&text.value)
        ),
        Ok(addr) if !addr.ip().is_loopback() => format!(
            "{addr} is not a loopback address: the admin pages have no authentication, so they \
             listen on 127.0.0.1 or [::1] only (reach them from elsewhere through a tunnel, \
             e.g. ssh -L or kubectl port-forward)"
        ),
        Ok(addr) if health.enabled && addr.port() != 0 && addr == health.listen => format!(
            "{addr} is also health.listen: the admin listener is never served on the health \
             and metrics listener; give it its own port"
        ),
        Ok(addr) => {
            return AdminConfig {
                listen: Some(addr),
                token,
            }
        }
    };
    ctx.error(&table.scope, "listen", &text.origin, problem);
    off
}

fn read_slack(ctx: &mut Context, root: &Table) -> SlackConfig {
    let table = ctx.table(root, "slack");
    ctx.allow_keys(&table, SLACK_KEYS, &[]);
    let d = SlackConfig::default();
    let webhook_url = ctx.secret(&table, SLACK_WEBHOOK).and_then(|(key, url)| {
        let Sourced { value, origin } = url;
        match Endpoint::parse(value.expose()) {
            Ok(_) => Some(value),
            Err(e) => {
                let message = format!("webhook URL is not usable: {e}");
                ctx.error(&table.scope, key, &origin, message);
                None
            }
        }
    });
    let max_attempts = ctx
        .count(&table, "max_attempts", i64::from(d.max_attempts), 1..=100)
        .value;
    let ca_file = ctx.readable_file(&table, "ca_file").map(|c| c.value);
    let bot_token = ctx
        .secret(&table, SLACK_BOT_TOKEN)
        .map(|(key, token)| (key, token.origin, token.value));
    let channel = ctx.text(&table, "channel");
    let api_url = match ctx.text(&table, "api_url") {
        None => d.api_url.clone(),
        Some(Sourced { value, origin }) => match Endpoint::parse(&value) {
            Ok(_) => value,
            Err(e) => {
                let message = format!("Slack Web API URL is not usable: {e}");
                ctx.error(&table.scope, "api_url", &origin, message);
                d.api_url.clone()
            }
        },
    };
    let channel_interval = ctx
        .duration(&table, "channel_interval", d.channel_interval)
        .value;
    if let (Some(_), Some((key, origin, _))) = (&webhook_url, &bot_token) {
        let message = "set either webhook_url (webhook mode) or bot_token (app mode), not both";
        ctx.error(&table.scope, key, origin, message.to_string());
    }
    if let (None, Some((key, origin, _))) = (&channel, &bot_token) {
        let message = "app mode needs a channel: set slack.channel to the channel id (C...) \
                       incidents go to";
        ctx.error(&table.scope, key, origin, message.to_string());
    }
    let mode = match (&webhook_url, &bot_token) {
        (Some(_), _) => RouteMode::Webhook,
        (None, Some(_)) => RouteMode::App,
        (None, None) => RouteMode::Off,
    };
    let routes = read_routes(ctx, &table, mode);
    // The URL may hold the proxy's user and password: kept as a secret, never echoed.
    let proxy = ctx
        .text(&table, "proxy")
        .and_then(|Sourced { value, origin }| {
            match crate::net::proxy::HttpProxy::parse(&value, "") {
                Ok(_) => Some(Secret::new(value)),
                Err(e) => {
                    ctx.error(&table.scope, "proxy", &origin, e);
                    None
                }
            }
        });
    SlackConfig {
        resolved_check_interval: ctx
            .duration(&table, "resolved_check_interval", d.resolved_check_interval)
            .value,
        proxy,
        routes,
        webhook_url,
        bot_token: bot_token.map(|(_, _, token)| token),
        channel: channel.map(|c| c.value),
        api_url,
        channel_interval,
        ca_file,
        notify_on_agent_failure: ctx.flag(
            &table,
            "notify_on_agent_failure",
            d.notify_on_agent_failure,
        ),
        max_attempts: u32::try_from(max_attempts).unwrap_or(d.max_attempts),
    }
}

/// A byte or entry count within `min..=max`.
fn size(ctx: &mut Context, table: &Table, key: &str, default: usize, min: i64, max: i64) -> usize {
    to_usize(ctx.count(table, key, default as i64, min..=max).value)
}

/// Counts are range-checked as positive before this; the fallback is unreachable in practice.
fn to_usize(value: i64) -> usize {
    usize::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_levels_parse_in_any_case_and_warning_means_warn() {
        assert_eq!(parse_log_level("INFO"), Ok(LevelFilter::Info));
        assert_eq!(parse_log_level("off"), Ok(LevelFilter::Off));
        assert_eq!(parse_log_level("trace"), Ok(LevelFilter::Trace));
        assert_eq!(parse_log_level("warn"), Ok(LevelFilter::Warn));
        assert_eq!(parse_log_level("Warning"), Ok(LevelFilter::Warn));
        assert!(parse_log_level("verbose")
            .unwrap_err()
            .contains("\"verbose\""));
    }

    #[test]
    fn blame_points_at_the_setting_actually_written() {
        let written = Origin::File(3..5);
        let default = Origin::Default;
        assert_eq!(blame(("a", &written), ("b", &default)).0, "a");
        assert_eq!(blame(("a", &default), ("b", &written)).0, "b");
        assert_eq!(blame(("a", &written), ("b", &written)).0, "b");
    }
}
