//! nightcrier's configuration: the validated types every other module reads, and
//! loading them from a TOML file, the `NIGHTCRIER_*` environment and flags
//! (precedence: flags > environment > file > defaults).
//!
//! A file is refused as a whole, before anything connects, with every problem
//! listed: file, cluster, field and line:column.

mod agent_cli;
mod clusters;
mod document;
mod duration;
mod endpoint;
mod error;
mod file;
mod globals;
mod overrides;
mod secret;
mod sections;
mod severity;
mod shard;
mod silences;
mod slack_routes;
mod suggest;
mod summary;
mod values;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeTable;

pub use agent_cli::{default_model, AGENT_CLIS, AUTO_MODEL};
pub use clusters::{is_valid_cluster_name, DEFAULT_CLUSTER_NAME, MAX_CLUSTER_NAME_LEN};
pub use duration::{format_duration, parse_duration, DurationError};
pub use endpoint::{Endpoint, EndpointError};
pub(crate) use error::quote;
pub use error::{ConfigError, ConfigErrors};
pub use file::{MAX_CONFIG_BYTES, SEARCH_PATHS};
pub use globals::{accepted_keys, parse_log_level};
pub use overrides::{lookup_env, FlagOverrides, OverridableSetting, CONFIG_ENV, OVERRIDABLE};
pub use secret::Secret;
pub use sections::{
    AdminConfig, AgentConfig, AlertsConfig, BreakerConfig, BudgetConfig, Confinement,
    ConnectionConfig, CorrelationConfig, DedupConfig, HealthConfig, LogFormat, OverflowPolicy,
    PreflightConfig, QueueConfig, ReconnectConfig, SlackConfig, SubscribeMode, WorkspaceConfig,
};
pub use severity::{Severity, UnknownSeverity};
pub use shard::{fnv1a64, BadShard, Shard};
pub use slack_routes::SlackRoute;
pub use summary::render_summary;

/// The whole validated configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The file it was loaded from.
    pub source: PathBuf,
    pub log_level: log::LevelFilter,
    pub log_format: LogFormat,
    pub subscribe_mode: SubscribeMode,
    /// Global threshold; a cluster's `severity_threshold` overrides it.
    pub severity_threshold: Severity,
    pub workspace_root: PathBuf,
    /// Retention of the workspaces under `workspace_root`.
    pub workspace: WorkspaceConfig,
    pub shard: Option<Shard>,
    /// In file order; the single-cluster form gives one element.
    pub clusters: Vec<ClusterConfig>,
    pub reconnect: ReconnectConfig,
    pub connection: ConnectionConfig,
    pub queue: QueueConfig,
    pub dedup: DedupConfig,
    pub correlation: CorrelationConfig,
    pub budget: BudgetConfig,
    pub alerts: AlertsConfig,
    pub agent: AgentConfig,
    pub breaker: BreakerConfig,
    pub preflight: PreflightConfig,
    pub health: HealthConfig,
    pub admin: AdminConfig,
    pub slack: SlackConfig,
    /// `[[silences]]`, in file order.
    pub silences: Vec<crate::silence::Silence>,
    pub shutdown_timeout: Duration,
}

/// One watched cluster.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusterConfig {
    /// Unique, and safe as a file name (see [`is_valid_cluster_name`]).
    pub name: String,
    pub environment: Option<String>,
    pub labels: BTreeMap<String, String>,
    /// Higher connects and dispatches first.
    pub priority: i32,
    pub enabled: bool,
    pub severity_threshold: Option<Severity>,
    pub mcp: McpConfig,
    pub triage: TriageConfig,
    /// Its faults may join (or open) an incident with other clusters (`correlate`).
    pub correlate: bool,
}

/// How to reach a cluster's MCP server.
#[derive(Clone, Debug, PartialEq)]
pub struct McpConfig {
    pub endpoint: Endpoint,
    /// Sent as `Authorization: Bearer ...`.
    pub api_key: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_tls_verify: bool,
}

/// Whether and how faults of a cluster are investigated.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct TriageConfig {
    pub enabled: bool,
    pub kubeconfig: Option<PathBuf>,
    pub allow_secrets_access: bool,
    /// Overrides `agent.model` for this cluster.
    pub model: Option<String>,
    /// Overrides `preflight.require_read_only` for this cluster.
    pub require_read_only: Option<bool>,
    /// Agent runs per UTC day for this cluster; unset is unlimited.
    pub max_runs_per_day: Option<u64>,
}

impl ClusterConfig {
    /// A cluster with every optional setting at its default; handy for tests and tools.
    pub fn new(name: impl Into<String>, endpoint: Endpoint) -> ClusterConfig {
        ClusterConfig {
            name: name.into(),
            environment: None,
            labels: BTreeMap::new(),
            priority: 0,
            enabled: true,
            severity_threshold: None,
            mcp: McpConfig {
                endpoint,
                api_key: None,
                ca_file: None,
                insecure_skip_tls_verify: false,
            },
            triage: TriageConfig::default(),
            correlate: true,
        }
    }

    /// The cluster's own threshold, else the global one.
    pub fn effective_severity(&self, global: Severity) -> Severity {
        self.severity_threshold.unwrap_or(global)
    }

    /// Triage runs only with an explicit kubeconfig: credentials are never guessed.
    pub fn triage_ready(&self) -> bool {
        self.triage.enabled && self.triage.kubeconfig.is_some()
    }

    /// The cluster's `triage.require_read_only`, else `preflight.require_read_only`.
    pub fn requires_read_only(&self, preflight: &PreflightConfig) -> bool {
        self.triage
            .require_read_only
            .unwrap_or(preflight.require_read_only)
    }

    /// The cluster's `triage.model`, else `agent.model`.
    pub fn effective_model<'a>(&'a self, agent: &'a AgentConfig) -> &'a str {
        self.triage.model.as_deref().unwrap_or(&agent.model)
    }
}

impl Config {
    /// Every global setting at its default, with no clusters.
    pub fn defaults(source: PathBuf) -> Config {
        Config {
            source,
            log_level: log::LevelFilter::Info,
            log_format: LogFormat::Text,
            subscribe_mode: SubscribeMode::Faults,
            severity_threshold: Severity::Warning,
            workspace_root: PathBuf::from("./incidents"),
            workspace: WorkspaceConfig::default(),
            shard: None,
            clusters: Vec::new(),
            reconnect: ReconnectConfig::default(),
            connection: ConnectionConfig::default(),
            queue: QueueConfig::default(),
            dedup: DedupConfig::default(),
            correlation: CorrelationConfig::default(),
            budget: BudgetConfig::default(),
            alerts: AlertsConfig::default(),
            agent: AgentConfig::default(),
            breaker: BreakerConfig::default(),
            preflight: PreflightConfig::default(),
            health: HealthConfig::default(),
            admin: AdminConfig::default(),
            slack: SlackConfig::default(),
            silences: Vec::new(),
            shutdown_timeout: Duration::from_secs(30),
        }
    }

    /// The cluster named `name`, if configured.
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Things that are allowed but probably not meant; `check` prints them and `run` logs them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        let owned: Vec<&ClusterConfig> = self
            .clusters
            .iter()
            .filter(|c| self.shard.is_none_or(|s| s.owns(&c.name)))
            .collect();
        if !owned.iter().any(|c| c.enabled) {
            let scope = match self.shard {
                Some(shard) => format!(" in shard {shard}"),
                None => String::new(),
            };
            warnings.push(format!(
                "no enabled clusters{scope}: nightcrier will run but watch nothing"
            ));
        }
        for cluster in &self.clusters {
            if cluster.mcp.insecure_skip_tls_verify {
                warnings.push(format!(
                    "cluster={}: insecure_skip_tls_verify is on: the server's certificate \
                     is not checked",
                    cluster.name
                ));
                if cluster.mcp.ca_file.is_some() {
                    warnings.push(format!(
                        "cluster={}: ca_file has no effect while insecure_skip_tls_verify \
                         is on",
                        cluster.name
                    ));
                }
            }
            if let (true, Some(kubeconfig)) = (cluster.triage.enabled, &cluster.triage.kubeconfig) {
                // Not an error: the file may be mounted later (a Secret volume); the
                // preflight then records what the agent can do.
                if std::fs::symlink_metadata(kubeconfig).is_err() {
                    warnings.push(format!(
                        "cluster={}: triage kubeconfig {} does not exist; its preflight and \
                         agents will fail until it does",
                        cluster.name,
                        kubeconfig.display()
                    ));
                }
            }
            if !cluster.triage.enabled && cluster.triage.kubeconfig.is_some() {
                warnings.push(format!(
                    "cluster={}: a kubeconfig is set but triage is disabled",
                    cluster.name
                ));
            }
        }
        warnings
    }
}

/// Where to load from and what overrides the file.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// `--config`; else NIGHTCRIER_CONFIG from `env`; else [`SEARCH_PATHS`].
    pub config_path: Option<PathBuf>,
    /// The environment, passed in so that tests never touch the process's own.
    pub env: Vec<(String, String)>,
    pub flags: FlagOverrides,
}

/// Finds, reads, parses and validates the configuration.
pub fn load(opts: &LoadOptions) -> Result<Config, ConfigErrors> {
    let path = match (&opts.config_path, lookup_env(&opts.env, CONFIG_ENV)) {
        (Some(path), _) => path.clone(),
        (None, Some(path)) if !path.is_empty() => PathBuf::from(path),
        _ => file::find_config_file().map_err(ConfigErrors::single)?,
    };
    let text = file::read_config_file(&path).map_err(ConfigErrors::single)?;
    parse_str(&text, &path, &opts.env, &opts.flags)
}

/// Parses and validates configuration text; `source` names it in errors and anchors
/// its relative paths.
pub fn parse_str(
    text: &str,
    source: &Path,
    env: &[(String, String)],
    flags: &FlagOverrides,
) -> Result<Config, ConfigErrors> {
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_error_list(text, source, &syntax_errors));
    }
    let overrides = overrides::Overrides::new(env, flags);
    let mut ctx = document::Context::new(source, text, env, &overrides);
    let root = document::Table::root(document.get_ref());
    let config = globals::read_config(&mut ctx, &root);
    ctx.finish(config)
}

fn syntax_error_list(text: &str, source: &Path, errors: &[toml::de::Error]) -> ConfigErrors {
    let mut list: Vec<ConfigError> = errors
        .iter()
        .take(document::MAX_ERRORS)
        .map(|e| {
            let mut error =
                ConfigError::file_level(source, format!("invalid TOML: {}", e.message()));
            error.line_col = e.span().map(|span| error::line_col(text, span.start));
            error
        })
        .collect();
    if errors.len() > document::MAX_ERRORS {
        list.push(ConfigError::file_level(
            source,
            format!(
                "{} more errors not shown",
                errors.len() - document::MAX_ERRORS
            ),
        ));
    }
    ConfigErrors(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_severity_prefers_the_cluster_override() {
        let mut cluster = ClusterConfig::new("a", Endpoint::parse("http://h/mcp").unwrap());
        assert_eq!(
            cluster.effective_severity(Severity::Warning),
            Severity::Warning
        );
        cluster.severity_threshold = Some(Severity::Critical);
        assert_eq!(
            cluster.effective_severity(Severity::Warning),
            Severity::Critical
        );
    }

    #[test]
    fn triage_needs_both_enabled_and_a_kubeconfig() {
        let mut cluster = ClusterConfig::new("a", Endpoint::parse("http://h/mcp").unwrap());
        assert!(!cluster.triage_ready());
        cluster.triage.enabled = true;
        assert!(!cluster.triage_ready());
        cluster.triage.kubeconfig = Some(PathBuf::from("kc"));
        assert!(cluster.triage_ready());
    }

    #[test]
    fn cluster_model_overrides_the_agent_model() {
        let agent = AgentConfig::default();
        let mut cluster = ClusterConfig::new("a", Endpoint::parse("http://h/mcp").unwrap());
        assert_eq!(cluster.effective_model(&agent), "sonnet");
        cluster.triage.model = Some("opus".into());
        assert_eq!(cluster.effective_model(&agent), "opus");
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = parse_str(
            "a = \"x\nb = 1\n",
            Path::new("t.toml"),
            &[],
            &FlagOverrides::default(),
        )
        .unwrap_err();
        assert!(err.0[0].message.starts_with("invalid TOML"), "{err}");
        assert_eq!(err.0[0].line_col.map(|(l, _)| l), Some(1));
        assert_eq!(err.0[0].file, Path::new("t.toml"));
    }
}
