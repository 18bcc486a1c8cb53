//! Hand-built health snapshots at a fixed wall clock, for tests of what is rendered from them.

use std::time::{Duration, SystemTime};

use nightcrier::cluster::status::{ConnectionStatus, ErrorCounts, HealthSnapshot};

/// 2026-11-24T04:15:00Z.
pub const WALL_SECONDS: u64 = 1_795_493_700;

pub fn wall() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(WALL_SECONDS)
}

/// A cluster in `status`: an active one connected 10 minutes ago, with 12 events, the last
/// 30 s ago; one reconnect; nothing else set.
pub fn snapshot(name: &str, status: ConnectionStatus) -> HealthSnapshot {
    let active = status == ConnectionStatus::Active;
    HealthSnapshot {
        name: name.to_string(),
        environment: None,
        labels: Default::default(),
        triage_enabled: true,
        status,
        tried: matches!(status, ConnectionStatus::Active | ConnectionStatus::Failed),
        degraded: false,
        connected_since: active.then(|| wall() - Duration::from_secs(600)),
        last_event: active.then(|| wall() - Duration::from_secs(30)),
        last_error: None,
        last_error_at: None,
        retry_count: 0,
        retry_in: None,
        event_count: if active { 12 } else { 0 },
        reconnects: 1,
        stream_gaps: 0,
        malformed_messages: 0,
        ignored_messages: 0,
        errors: ErrorCounts::default(),
        protocol_version: None,
        subscription_id: None,
        subscription_since: None,
        subscription_renewals: 0,
        subscription_gaps: Vec::new(),
        subscription_gaps_total: 0,
        server_log_messages: 0,
    }
}
