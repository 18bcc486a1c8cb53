//! The clusters: `[[clusters]]` entries, or the single-cluster form at the top level.
//! The two forms are mutually exclusive.

use std::collections::HashMap;

use super::document::{Context, Origin, Sourced, Table};
use super::endpoint::Endpoint;
use super::error::quote;
use super::severity::Severity;
use super::values::SecretKeys;
use super::{ClusterConfig, McpConfig, TriageConfig};

pub(crate) const CLUSTER_KEYS: &[&str] = &[
    "name",
    "environment",
    "labels",
    "priority",
    "enabled",
    "severity_threshold",
    "correlate",
    "mcp",
    "triage",
];
pub(crate) const MCP_KEYS: &[&str] = &[
    "endpoint",
    "api_key",
    "api_key_file",
    "api_key_env",
    "ca_file",
    "insecure_skip_tls_verify",
];
pub(crate) const TRIAGE_KEYS: &[&str] = &[
    "enabled",
    "kubeconfig",
    "allow_secrets_access",
    "model",
    "require_read_only",
    "max_runs_per_day",
];
/// Top-level keys that only make sense in the single-cluster form.
pub(crate) const SINGLE_CLUSTER_KEYS: &[&str] = &[
    "mcp_endpoint",
    "kubeconfig",
    "api_key",
    "api_key_file",
    "api_key_env",
    "cluster_name",
    "triage_enabled",
];

/// Name of the cluster in the single-cluster form unless `cluster_name` says otherwise.
pub const DEFAULT_CLUSTER_NAME: &str = "default";
/// Longest cluster name: it becomes a directory name and a metrics label.
pub const MAX_CLUSTER_NAME_LEN: usize = 63;

const API_KEY: SecretKeys = SecretKeys {
    inline: "api_key",
    file: "api_key_file",
    env: "api_key_env",
};

/// True for names safe as a file name on every platform: `[A-Za-z0-9][A-Za-z0-9._-]{0,62}`.
pub fn is_valid_cluster_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    first_ok
        && name.len() <= MAX_CLUSTER_NAME_LEN
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// `cli` is `agent.cli`: a cluster's `triage.model` must be one that CLI serves.
pub(crate) fn read_clusters(ctx: &mut Context, root: &Table, cli: &str) -> Vec<ClusterConfig> {
    let entries = ctx.tables(root, "clusters");
    let single_endpoint = ctx.string(root, "mcp_endpoint");
    match (entries, single_endpoint) {
        (Some(entries), single) => {
            if let Some(endpoint) = single {
                ctx.error(
                    &root.scope,
                    "mcp_endpoint",
                    &endpoint.origin,
                    "mcp_endpoint (the single-cluster form) cannot be combined with \
                     [[clusters]]; give each cluster its own [clusters.mcp] endpoint",
                );
            }
            refuse_single_cluster_keys(ctx, root);
            read_cluster_list(ctx, entries, cli)
        }
        (None, Some(endpoint)) => read_single_cluster(ctx, root, endpoint)
            .into_iter()
            .collect(),
        (None, None) => {
            ctx.document_error(
                "mcp_endpoint",
                "no cluster configured: set mcp_endpoint (one cluster) or add [[clusters]] \
                 entries",
            );
            Vec::new()
        }
    }
}

fn refuse_single_cluster_keys(ctx: &mut Context, root: &Table) {
    for key in &SINGLE_CLUSTER_KEYS[1..] {
        // NIGHTCRIER_KUBECONFIG and friends apply to the single-cluster form only, too.
        if let Some(origin) = ctx.origin_of(root, key) {
            let message = format!(
                "{key} belongs to the single-cluster form and cannot be combined with \
                 [[clusters]]; set it inside each [[clusters]] entry"
            );
            ctx.error(&root.scope, key, &origin, message);
        }
    }
}

fn read_cluster_list(ctx: &mut Context, entries: Vec<Table>, cli: &str) -> Vec<ClusterConfig> {
    let mut clusters = Vec::with_capacity(entries.len());
    // Names compared without case: on case-insensitive file systems "EU-1" and "eu-1"
    // would share a workspace directory.
    let mut seen: HashMap<String, String> = HashMap::new();
    for (index, entry) in entries.into_iter().enumerate() {
        let name = read_name(ctx, &entry, "name");
        // A duplicate keeps its index as its label, so its errors are not
        // mistaken for the first cluster's.
        let entry = match &name {
            Some(name) => {
                let folded = name.value.to_ascii_lowercase();
                if let Some(first) = seen.get(&folded) {
                    let message = format!(
                        "duplicate cluster name {} (already used by {first})",
                        quote(&name.value)
                    );
                    ctx.error(&entry.scope, "name", &name.origin, message);
                    entry
                } else {
                    seen.insert(folded, format!("clusters[{index}]"));
                    entry.in_cluster(name.value.clone())
                }
            }
            None => entry,
        };
        let cluster = read_cluster(ctx, &entry, name.map(|n| n.value), cli);
        clusters.extend(cluster);
    }
    clusters
}

/// A `name` key that must be a safe, present cluster name.
fn read_name(ctx: &mut Context, table: &Table, key: &str) -> Option<Sourced<String>> {
    let Some(name) = ctx.string(table, key) else {
        if !table.has(key) {
            ctx.missing(table, key, "missing required key `name`");
        }
        return None;
    };
    if !is_valid_cluster_name(&name.value) {
        let message = format!(
            "cluster name {} is not safe as a file name: use 1 to {MAX_CLUSTER_NAME_LEN} \
             letters, digits, '.', '_' or '-', starting with a letter or digit",
            quote(&name.value)
        );
        ctx.error(&table.scope, key, &name.origin, message);
        return None;
    }
    Some(name)
}

fn read_cluster(
    ctx: &mut Context,
    entry: &Table,
    name: Option<String>,
    cli: &str,
) -> Option<ClusterConfig> {
    ctx.allow_keys(
        entry,
        CLUSTER_KEYS,
        &[
            ("[clusters.mcp]", MCP_KEYS),
            ("[clusters.triage]", TRIAGE_KEYS),
        ],
    );
    let environment = ctx.text(entry, "environment").map(|t| t.value);
    let labels = ctx.string_map(entry, "labels");
    let priority = ctx
        .count(
            entry,
            "priority",
            0,
            i64::from(i32::MIN)..=i64::from(i32::MAX),
        )
        .value;
    let enabled = ctx.flag(entry, "enabled", true);
    let severity_threshold = ctx
        .optional_parsed::<Severity>(entry, "severity_threshold")
        .map(|s| s.value);
    let correlate = ctx.flag(entry, "correlate", true);
    let mcp = read_mcp(ctx, entry);
    let triage = read_triage(ctx, entry, cli);
    Some(ClusterConfig {
        name: name?,
        environment,
        labels,
        priority: i32::try_from(priority).unwrap_or(0),
        enabled,
        severity_threshold,
        mcp: mcp?,
        triage,
        correlate,
    })
}

fn read_mcp(ctx: &mut Context, entry: &Table) -> Option<McpConfig> {
    let table = ctx.table(entry, "mcp");
    ctx.allow_keys(&table, MCP_KEYS, &[]);
    let endpoint = read_endpoint(ctx, &table, "endpoint");
    let api_key = ctx.secret(&table, API_KEY).map(|(_, s)| s.value);
    let ca_file = ctx.readable_file(&table, "ca_file");
    let insecure = ctx.boolean(&table, "insecure_skip_tls_verify");
    let endpoint = endpoint?;
    if !endpoint.tls {
        refuse_tls_setting_on_http(ctx, &table, "ca_file", ca_file.as_ref().map(|c| &c.origin));
        let insecure_origin = insecure.as_ref().filter(|i| i.value).map(|i| &i.origin);
        refuse_tls_setting_on_http(ctx, &table, "insecure_skip_tls_verify", insecure_origin);
    }
    Some(McpConfig {
        endpoint,
        api_key,
        ca_file: ca_file.map(|c| c.value),
        insecure_skip_tls_verify: insecure.is_some_and(|i| i.value),
    })
}

/// A TLS setting on an `http://` endpoint does nothing, which almost always means the
/// URL was meant to be `https://`; refusing it beats silently sending in clear text.
fn refuse_tls_setting_on_http(
    ctx: &mut Context,
    table: &Table,
    key: &str,
    origin: Option<&Origin>,
) {
    if let Some(origin) = origin {
        let message = format!("{key} is set but the endpoint is http://, not https://");
        ctx.error(&table.scope, key, origin, message);
    }
}

fn read_endpoint(ctx: &mut Context, table: &Table, key: &str) -> Option<Endpoint> {
    let Some(url) = ctx.string(table, key) else {
        if !table.has(key) {
            let message = format!("missing required key `{key}` (the MCP server's URL)");
            ctx.missing(table, key, message);
        }
        return None;
    };
    match Endpoint::parse(&url.value) {
        Ok(endpoint) => Some(endpoint),
        Err(e) => {
            ctx.error(&table.scope, key, &url.origin, e);
            None
        }
    }
}

fn read_triage(ctx: &mut Context, entry: &Table, cli: &str) -> TriageConfig {
    let table = ctx.table(entry, "triage");
    ctx.allow_keys(&table, TRIAGE_KEYS, &[]);
    let enabled = ctx.boolean(&table, "enabled");
    let kubeconfig = ctx.path(&table, "kubeconfig").map(|p| p.value);
    if let Some(on) = enabled.as_ref().filter(|e| e.value) {
        if kubeconfig.is_none() && !table.has("kubeconfig") {
            ctx.error(
                &table.scope,
                "enabled",
                &on.origin,
                "triage is enabled but no kubeconfig is set (nightcrier never guesses \
                 credentials)",
            );
        }
    }
    TriageConfig {
        enabled: enabled.is_some_and(|e| e.value),
        kubeconfig,
        allow_secrets_access: ctx.flag(&table, "allow_secrets_access", false),
        model: ctx.agent_model(&table, "model", cli),
        require_read_only: ctx.boolean(&table, "require_read_only").map(|b| b.value),
        max_runs_per_day: table.has("max_runs_per_day").then(|| {
            let value = ctx
                .count(&table, "max_runs_per_day", 0, 0..=1_000_000_000)
                .value;
            u64::try_from(value).unwrap_or(0)
        }),
    }
}

/// The single-cluster form: `mcp_endpoint`, `kubeconfig`, `api_key*`, `cluster_name`
/// and `triage_enabled` at the top level become one cluster.
fn read_single_cluster(
    ctx: &mut Context,
    root: &Table,
    url: Sourced<String>,
) -> Option<ClusterConfig> {
    let name = if root.has("cluster_name") {
        read_name(ctx, root, "cluster_name").map(|n| n.value)
    } else {
        None
    };
    let name = name.unwrap_or_else(|| DEFAULT_CLUSTER_NAME.to_string());
    let scope_root = root.clone().in_cluster(name.clone());
    let endpoint = match Endpoint::parse(&url.value) {
        Ok(endpoint) => Some(endpoint),
        Err(e) => {
            ctx.error(&scope_root.scope, "mcp_endpoint", &url.origin, e);
            None
        }
    };
    let api_key = ctx.secret(&scope_root, API_KEY).map(|(_, s)| s.value);
    let kubeconfig = ctx.path(&scope_root, "kubeconfig");
    let triage_enabled = ctx.boolean(&scope_root, "triage_enabled");
    let triage_on = triage_enabled
        .as_ref()
        .map_or(kubeconfig.is_some(), |t| t.value);
    if let Some(on) = triage_enabled.as_ref().filter(|t| t.value) {
        if kubeconfig.is_none() && !root.has("kubeconfig") {
            ctx.error(
                &scope_root.scope,
                "triage_enabled",
                &on.origin,
                "triage is enabled but no kubeconfig is set (nightcrier never guesses \
                 credentials)",
            );
        }
    }
    Some(ClusterConfig {
        name,
        environment: None,
        labels: Default::default(),
        priority: 0,
        enabled: true,
        severity_threshold: None,
        mcp: McpConfig {
            endpoint: endpoint?,
            api_key,
            ca_file: None,
            insecure_skip_tls_verify: false,
        },
        triage: TriageConfig {
            enabled: triage_on,
            kubeconfig: kubeconfig.map(|k| k.value),
            allow_secrets_access: false,
            model: None,
            require_read_only: None,
            max_runs_per_day: None,
        },
        correlate: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_pass() {
        for name in ["a", "prod-eu-1", "A.b_c-9", &"x".repeat(63)] {
            assert!(is_valid_cluster_name(name), "{name}");
        }
    }

    #[test]
    fn unsafe_names_fail() {
        for name in [
            "",
            ".",
            "..",
            "-a",
            "_a",
            ".hidden",
            "a/b",
            "a b",
            "a\\b",
            "é",
            "a\0",
            &"x".repeat(64),
        ] {
            assert!(!is_valid_cluster_name(name), "{name:?}");
        }
    }
}
