//! The global sections of the configuration, with their defaults.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::quote;
use super::secret::Secret;
use super::slack_routes::SlackRoute;

/// What the MCP server is asked to stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubscribeMode {
    /// Only detected faults (kubernetes-mcp-server's `faults` mode).
    Faults,
    /// Every Kubernetes event.
    Events,
}

impl SubscribeMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SubscribeMode::Faults => "faults",
            SubscribeMode::Events => "events",
        }
    }
}

impl fmt::Display for SubscribeMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubscribeMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "faults" => Ok(SubscribeMode::Faults),
            "events" => Ok(SubscribeMode::Events),
            _ => Err(format!(
                "unknown subscribe mode {} (expected \"faults\" or \"events\")",
                quote(s)
            )),
        }
    }
}

/// How log lines are written (`log_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `[time LEVEL target] message`, one line per record.
    #[default]
    Text,
    /// One JSON object per line: time, level, target, cluster, incident, message.
    Json,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!(
                "unknown log format {} (expected \"text\" or \"json\")",
                quote(s)
            )),
        }
    }
}

pub use crate::queue::OverflowPolicy;

/// `[reconnect]`: backoff between connection attempts.
#[derive(Clone, Debug, PartialEq)]
pub struct ReconnectConfig {
    pub initial: Duration,
    pub max: Duration,
    pub multiplier: f64,
    /// Fraction of each delay added or removed at random (0.1 = ±10 %).
    pub jitter: f64,
    /// A session active this long resets the backoff.
    pub stable_after: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        ReconnectConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
            stable_after: Duration::from_secs(30),
        }
    }
}

/// The default of `connection.batch_window`.
pub const DEFAULT_BATCH_WINDOW: Duration = Duration::from_millis(250);
/// The longest `connection.batch_window`: commands and signals wait for it.
pub const MAX_BATCH_WINDOW: Duration = Duration::from_secs(1);

/// `[connection]`: timeouts and buffer bounds of every MCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub connect_timeout: Duration,
    /// Longest wait for a reply to anything sent, pings included.
    pub read_timeout: Duration,
    pub ping_interval: Duration,
    /// How often an active session checks that the server still holds its subscription
    /// (the server cancels it silently when a fault cannot be written).
    pub subscription_audit_interval: Duration,
    pub tcp_keepalive: Duration,
    /// Close the POST connection after this long without a request.
    pub control_idle_timeout: Duration,
    pub max_event_bytes: usize,
    pub max_header_bytes: usize,
    /// Once fault events arrive faster than one per window, wait up to this long for more
    /// before reading them (see `batch_window`), so that one wake-up of the loop reads many;
    /// `None` (`"off"`) reads each at once.
    pub batch_window: Option<Duration>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            subscription_audit_interval: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            control_idle_timeout: Duration::from_secs(5),
            max_event_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
            batch_window: Some(DEFAULT_BATCH_WINDOW),
        }
    }
}

/// `[queue]`: bounds of the fault queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueConfig {
    pub cluster_queue_size: usize,
    pub global_queue_size: usize,
    pub overflow_policy: OverflowPolicy,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            cluster_queue_size: 100,
            global_queue_size: 1000,
            overflow_policy: OverflowPolicy::DropOldest,
        }
    }
}

/// `[dedup]`: the same fault from the same cluster within `window` starts one agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DedupConfig {
    pub window: Duration,
    pub max_entries: usize,
}

impl Default for DedupConfig {
    fn default() -> Self {
        DedupConfig {
            window: Duration::from_secs(300),
            // Per cluster: about 1 MiB at worst for a cluster sending 33 new faults a
            // second for the whole window.
            max_entries: 10_000,
        }
    }
}

/// `[correlation]`: the same fault (by [signature](crate::pipeline::correlation)) on
/// several clusters within `window` of the first is one incident with one agent run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CorrelationConfig {
    pub enabled: bool,
    /// Counted from the incident's creation, whatever its agent's state.
    pub window: Duration,
    /// How long the first fault waits for the same fault from other clusters before its
    /// agent may start.
    pub hold: Duration,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            enabled: true,
            window: Duration::from_secs(600),
            hold: Duration::from_secs(2),
        }
    }
}

/// `[budget]`: ceilings on agent runs (and agent time) per UTC hour and day; unset is
/// unlimited. A fault over a ceiling is recorded as incident `budget_exhausted`.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct BudgetConfig {
    pub runs_per_hour: Option<u64>,
    pub runs_per_day: Option<u64>,
    /// For each fault type on its own.
    pub runs_per_day_per_fault_type: Option<u64>,
    pub agent_seconds_per_day: Option<u64>,
}

impl BudgetConfig {
    /// True when any ceiling is set, per cluster included.
    pub fn any(&self) -> bool {
        self.runs_per_hour.is_some()
            || self.runs_per_day.is_some()
            || self.runs_per_day_per_fault_type.is_some()
            || self.agent_seconds_per_day.is_some()
    }
}

/// `[alerts]`: Slack messages about nightcrier's own watching.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertsConfig {
    /// A cluster not `active` (or whose subscription is lost) this long is reported silent.
    pub cluster_down_after: Duration,
    /// At most one silent/recovered pair of messages per cluster in this window.
    pub flap_window: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            cluster_down_after: Duration::from_secs(300),
            flap_window: Duration::from_secs(3600),
        }
    }
}

/// `[agent]`: how triage agents are started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentConfig {
    pub script: PathBuf,
    pub cli: String,
    /// Default model; a cluster's `triage.model` overrides it. Unset, the CLI's default
    /// (see [`default_model`](super::default_model)).
    pub model: String,
    pub allowed_tools: String,
    pub timeout: Duration,
    /// Time between SIGTERM and SIGKILL for an agent that overruns.
    pub kill_grace: Duration,
    pub max_concurrent_agents: usize,
    pub system_prompt_file: Option<PathBuf>,
    /// How an agent that runs on this host is confined.
    pub confinement: Confinement,
    /// Environment variables passed to agents besides the built-in allowlist; a name
    /// ending in `*` passes every variable with that prefix.
    pub env_allow: Vec<String>,
    /// Paths a confined agent may read besides the system directories (tools installed
    /// elsewhere, files a kubeconfig refers to).
    pub confine_read_only: Vec<PathBuf>,
    /// Largest `agent-stdout.log` / `agent-stderr.log`; the rest is cut with a marker.
    pub max_output_bytes: u64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            script: PathBuf::from("scripts/run-agent.sh"),
            cli: "claude".to_string(),
            model: "sonnet".to_string(),
            // Write: claude writes its report with it.
            allowed_tools: "Read,Grep,Glob,Bash,Write".to_string(),
            timeout: Duration::from_secs(600),
            kill_grace: Duration::from_secs(10),
            max_concurrent_agents: 2,
            system_prompt_file: None,
            confinement: Confinement::Auto,
            env_allow: Vec::new(),
            confine_read_only: Vec::new(),
            max_output_bytes: 1024 * 1024,
        }
    }
}

/// `agent.confinement`: what keeps an agent that runs on this host (`AGENT_RUNTIME=none`)
/// to its own workspace and kubeconfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confinement {
    /// bubblewrap when it works here, else a loud warning and no confinement.
    Auto,
    /// bubblewrap, always; an agent is not started without it.
    Bwrap,
    /// None: the agent sees what the daemon's user sees.
    Off,
}

impl Confinement {
    pub fn as_str(self) -> &'static str {
        match self {
            Confinement::Auto => "auto",
            Confinement::Bwrap => "bwrap",
            Confinement::Off => "none",
        }
    }
}

impl FromStr for Confinement {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Confinement::Auto),
            "bwrap" => Ok(Confinement::Bwrap),
            "none" => Ok(Confinement::Off),
            _ => Err(format!(
                "unknown confinement {} (expected \"auto\", \"bwrap\" or \"none\")",
                quote(s)
            )),
        }
    }
}

/// `[workspace]`: how long incident workspaces are kept. The oldest finished ones go first
/// once any bound is passed; a running one is never removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceConfig {
    pub max_age: Duration,
    pub max_incidents: usize,
    pub max_bytes: u64,
    /// How often the bounds are checked (also at start).
    pub sweep_interval: Duration,
}

impl Default for WorkspaceConfig {
    fn default() -> Self {
        WorkspaceConfig {
            max_age: Duration::from_secs(30 * 24 * 60 * 60),
            max_incidents: 1000,
            max_bytes: 1024 * 1024 * 1024,
            sweep_interval: Duration::from_secs(600),
        }
    }
}

/// `[breaker]`: consecutive agent failures that pause triage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures in a row that open one cluster's breaker.
    pub failure_threshold: u32,
    pub cooldown: Duration,
    /// Failures in a row, across all clusters, that raise the system-degraded alert.
    pub global_failure_threshold: u32,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(300),
            global_failure_threshold: 5,
        }
    }
}

/// `[preflight]`: the permission check run for each triage-enabled cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreflightConfig {
    pub kubectl: String,
    pub timeout: Duration,
    /// Refuse triage on a cluster whose kubeconfig can create, patch or delete (a
    /// cluster's `triage.require_read_only` overrides it).
    pub require_read_only: bool,
}

impl Default for PreflightConfig {
    fn default() -> Self {
        PreflightConfig {
            kubectl: "kubectl".to_string(),
            timeout: Duration::from_secs(10),
            require_read_only: false,
        }
    }
}

/// `[health]`: the HTTP health and metrics server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// How often the event loop publishes a fresh snapshot for the server.
    pub publish_interval: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            enabled: true,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            publish_interval: Duration::from_secs(1),
        }
    }
}

/// `[admin]`: the admin listener (incident pages, silences API). Off by default; when on,
/// a loopback address only, never the health listener's.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct AdminConfig {
    /// `None`: off.
    pub listen: Option<SocketAddr>,
    /// The bearer token the silences API's writes need; without one they are refused.
    pub token: Option<Secret>,
}

/// `[slack]`: incident notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackConfig {
    /// Absent: Slack is off.
    pub webhook_url: Option<Secret>,
    /// Extra CA to trust for the webhook (a private relay); webpki roots otherwise.
    pub ca_file: Option<PathBuf>,
    pub notify_on_agent_failure: bool,
    pub max_attempts: u32,
    /// App mode: the bot token (`xoxb-...`); exclusive with `webhook_url`.
    pub bot_token: Option<Secret>,
    /// App mode: the channel incidents are posted to.
    pub channel: Option<String>,
    /// App mode: the Web API base URL.
    pub api_url: String,
    /// App mode: at least this long between two messages to one channel.
    pub channel_interval: Duration,
    /// `[[slack.routes]]`, matched in order; none matching means the default.
    pub routes: Vec<SlackRoute>,
    /// An HTTP proxy for Slack (both modes), instead of `HTTPS_PROXY`.
    pub proxy: Option<Secret>,
    /// App mode: how often finished incidents are looked at for a `resolved` file.
    pub resolved_check_interval: Duration,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
            bot_token: None,
            channel: None,
            api_url: "https://slack.com/api".to_string(),
            channel_interval: Duration::from_secs(1),
            routes: Vec::new(),
            proxy: None,
            resolved_check_interval: Duration::from_secs(30),
            webhook_url: None,
            ca_file: None,
            notify_on_agent_failure: false,
            max_attempts: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribe_mode_parses_both_modes() {
        assert_eq!("faults".parse(), Ok(SubscribeMode::Faults));
        assert_eq!("EVENTS".parse(), Ok(SubscribeMode::Events));
        assert!("all"
            .parse::<SubscribeMode>()
            .unwrap_err()
            .contains("\"all\""));
    }

    #[test]
    fn log_format_is_text_or_json_in_any_case() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!(" Text ".parse(), Ok(LogFormat::Text));
        assert_eq!(LogFormat::default(), LogFormat::Text);
        assert!("logfmt"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("\"logfmt\""));
    }

    #[test]
    fn overflow_policy_names_map_to_their_behaviour() {
        assert_eq!("drop".parse(), Ok(OverflowPolicy::DropOldest));
        assert_eq!("Reject".parse(), Ok(OverflowPolicy::RejectNewest));
        assert!("oldest".parse::<OverflowPolicy>().is_err());
        assert_eq!(OverflowPolicy::RejectNewest.as_str(), "reject");
    }
}
