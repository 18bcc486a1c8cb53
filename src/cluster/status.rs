//! What a cluster connection reports about itself: its status and a health snapshot.

use std::time::{Duration, SystemTime};

use serde::Serialize;

/// `disconnected → connecting → connected → subscribing → active`; any error → `failed` →
/// backoff → `connecting`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Disconnected,
    Connecting,
    Connected,
    Subscribing,
    Active,
    Failed,
}

impl ConnectionStatus {
    pub const ALL: [ConnectionStatus; 6] = [
        ConnectionStatus::Disconnected,
        ConnectionStatus::Connecting,
        ConnectionStatus::Connected,
        ConnectionStatus::Subscribing,
        ConnectionStatus::Active,
        ConnectionStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Disconnected => "disconnected",
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Subscribing => "subscribing",
            ConnectionStatus::Active => "active",
            ConnectionStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Logs a cluster's status change from this module (`nightcrier::cluster::status`), so the
/// line's target says what it is, and `RUST_LOG=nightcrier::cluster::status=warn` hides them.
pub fn log_change(cluster: &str, from: ConnectionStatus, to: ConnectionStatus) {
    log::info!("cluster={cluster} status {from} -> {to}");
}

/// Counters of one connection by the phase an error happened in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    pub connecting: u64,
    pub tls: u64,
    pub initialize: u64,
    pub subscribe: u64,
    pub stream: u64,
    pub ping: u64,
}

impl ErrorCounts {
    pub fn count(&mut self, phase: &str) {
        match phase {
            "connecting" => self.connecting += 1,
            "tls" => self.tls += 1,
            "initialize" => self.initialize += 1,
            "subscribe" => self.subscribe += 1,
            "ping" => self.ping += 1,
            _ => self.stream += 1,
        }
    }

    pub fn by_phase(&self) -> [(&'static str, u64); 6] {
        [
            ("connecting", self.connecting),
            ("tls", self.tls),
            ("initialize", self.initialize),
            ("subscribe", self.subscribe),
            ("stream", self.stream),
            ("ping", self.ping),
        ]
    }
}

/// A copy of one connection's state for health output; no secrets in it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthSnapshot {
    pub name: String,
    pub environment: Option<String>,
    pub labels: std::collections::BTreeMap<String, String>,
    pub triage_enabled: bool,
    pub status: ConnectionStatus,
    /// At least one connection attempt has finished (active or failed): for readiness.
    pub tried: bool,
    pub degraded: bool,
    pub connected_since: Option<SystemTime>,
    pub last_event: Option<SystemTime>,
    pub last_error: Option<String>,
    pub last_error_at: Option<SystemTime>,
    /// Failed attempts since the last stable session.
    pub retry_count: u32,
    pub retry_in: Option<Duration>,
    pub event_count: u64,
    pub reconnects: u64,
    pub stream_gaps: u64,
    pub malformed_messages: u64,
    pub ignored_messages: u64,
    pub errors: ErrorCounts,
    pub protocol_version: Option<String>,
    pub subscription_id: Option<String>,
    /// When the server (re)created the current subscription.
    pub subscription_since: Option<SystemTime>,
    /// Subscriptions created again on a live session (lost, degraded, or replaced).
    pub subscription_renewals: u64,
    /// The most recent spans in which the server could not deliver faults.
    pub subscription_gaps: Vec<super::connection::SubscriptionGap>,
    /// Every such span since start.
    pub subscription_gaps_total: u64,
    /// Messages on the server's own logger (`kubernetes-mcp-server`).
    pub server_log_messages: u64,
}
