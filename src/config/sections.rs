//! The global sections of the configuration, with their defaults.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::error::quote;
use super::secret::Secret;

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

/// `[connection]`: timeouts and buffer bounds of every MCP connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    pub connect_timeout: Duration,
    /// Longest wait for a reply to anything sent, pings included.
    pub read_timeout: Duration,
    pub ping_interval: Duration,
    pub tcp_keepalive: Duration,
    /// Close the POST connection after this long without a request.
    pub control_idle_timeout: Duration,
    pub max_event_bytes: usize,
    pub max_header_bytes: usize,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            tcp_keepalive: Duration::from_secs(60),
            control_idle_timeout: Duration::from_secs(5),
            max_event_bytes: 1024 * 1024,
            max_header_bytes: 16 * 1024,
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
            max_entries: 100_000,
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
}

impl Default for PreflightConfig {
    fn default() -> Self {
        PreflightConfig {
            kubectl: "kubectl".to_string(),
            timeout: Duration::from_secs(10),
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

/// `[slack]`: incident notifications.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SlackConfig {
    /// Absent: Slack is off.
    pub webhook_url: Option<Secret>,
    /// Extra CA to trust for the webhook (a private relay); webpki roots otherwise.
    pub ca_file: Option<PathBuf>,
    pub notify_on_agent_failure: bool,
    pub max_attempts: u32,
}

impl Default for SlackConfig {
    fn default() -> Self {
        SlackConfig {
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
    fn overflow_policy_names_map_to_their_behaviour() {
        assert_eq!("drop".parse(), Ok(OverflowPolicy::DropOldest));
        assert_eq!("Reject".parse(), Ok(OverflowPolicy::RejectNewest));
        assert!("oldest".parse::<OverflowPolicy>().is_err());
        assert_eq!(OverflowPolicy::RejectNewest.as_str(), "reject");
    }
}
