//! The JSON of `/health/clusters` and `/health/clusters/<name>`. Built only from the published
//! snapshot, which holds no secret (no api keys, no webhook URLs); keep it that way.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::agent::permissions::ClusterPermissions;
use crate::agent::workspace::rfc3339;
use crate::cluster::connection::GapCause;
use crate::cluster::manager::HealthSummary;
use crate::cluster::status::{ErrorCounts, HealthSnapshot};
use crate::health::board::Published;

/// `GET /health/clusters`.
#[derive(Debug, Serialize)]
pub struct ClustersDocument<'a> {
    pub clusters: Vec<ClusterView<'a>>,
    pub summary: &'a HealthSummary,
    /// When the loop published the state shown.
    pub generated_at: String,
}

/// One cluster as the health endpoints show it.
#[derive(Debug, Serialize)]
pub struct ClusterView<'a> {
    pub name: &'a str,
    pub environment: Option<&'a str>,
    pub labels: &'a BTreeMap<String, String>,
    pub status: &'static str,
    pub degraded: bool,
    pub connected_since: Option<String>,
    pub last_event: Option<String>,
    /// The last connection error, kept after recovery so a flapping cluster shows why.
    pub error: Option<&'a str>,
    pub last_error_at: Option<String>,
    /// Seconds until the next connection attempt, while backing off.
    pub retry_in: Option<f64>,
    pub retry_count: u32,
    pub event_count: u64,
    pub reconnects: u64,
    pub stream_gaps: u64,
    /// The server's id of the current subscription.
    pub subscription_id: Option<&'a str>,
    /// When the server (re)created it.
    pub subscription_since: Option<String>,
    pub subscription_renewals: u64,
    /// The most recent spans in which the server could not deliver faults (oldest first);
    /// a gap without `end` is still open.
    pub subscription_gaps: Vec<GapView>,
    /// Messages on the server's own logger.
    pub server_log_messages: u64,
    pub triage_enabled: bool,
    pub permissions: Option<&'a ClusterPermissions>,
    /// The preflight found the triage kubeconfig can create, patch or delete; `null`
    /// before (or without) a preflight.
    pub kubeconfig_can_write: Option<bool>,
    pub queue_depth: usize,
    /// Faults lost to a full queue: dropped (policy `drop`) plus rejected (policy `reject`).
    pub dropped: u64,
    pub breaker: &'a str,
    pub errors: &'a ErrorCounts,
}

/// One subscription gap.
#[derive(Debug, Serialize)]
pub struct GapView {
    pub cause: GapCause,
    pub start: String,
    pub end: Option<String>,
}

pub fn clusters_document(published: &Published) -> ClustersDocument<'_> {
    ClustersDocument {
        clusters: published
            .clusters
            .iter()
            .map(|snapshot| cluster_view(published, snapshot))
            .collect(),
        summary: &published.summary,
        generated_at: rfc3339(published.wall),
    }
}

/// The view of the cluster named `name`, if the snapshot has it.
pub fn find_cluster<'a>(published: &'a Published, name: &str) -> Option<ClusterView<'a>> {
    published
        .clusters
        .iter()
        .find(|snapshot| snapshot.name == name)
        .map(|snapshot| cluster_view(published, snapshot))
}

pub fn cluster_view<'a>(published: &'a Published, snapshot: &'a HealthSnapshot) -> ClusterView<'a> {
    let counters = published.pipeline.clusters.get(&snapshot.name);
    let breaker = counters
        .map(|c| c.breaker)
        .filter(|state| !state.is_empty())
        .unwrap_or("closed");
    ClusterView {
        name: &snapshot.name,
        environment: snapshot.environment.as_deref(),
        labels: &snapshot.labels,
        status: snapshot.status.as_str(),
        degraded: snapshot.degraded,
        connected_since: snapshot.connected_since.map(rfc3339),
        last_event: snapshot.last_event.map(rfc3339),
        error: snapshot.last_error.as_deref(),
        last_error_at: snapshot.last_error_at.map(rfc3339),
        retry_in: snapshot.retry_in.map(|d| d.as_secs_f64()),
        retry_count: snapshot.retry_count,
        event_count: snapshot.event_count,
        reconnects: snapshot.reconnects,
        stream_gaps: snapshot.stream_gaps,
        subscription_id: snapshot.subscription_id.as_deref(),
        subscription_since: snapshot.subscription_since.map(rfc3339),
        subscription_renewals: snapshot.subscription_renewals,
        subscription_gaps: snapshot
            .subscription_gaps
            .iter()
            .map(|gap| GapView {
                cause: gap.cause,
                start: rfc3339(gap.start),
                end: gap.end.map(rfc3339),
            })
            .collect(),
        server_log_messages: snapshot.server_log_messages,
        triage_enabled: snapshot.triage_enabled,
        permissions: published.pipeline.permissions.get(&snapshot.name),
        kubeconfig_can_write: published
            .pipeline
            .permissions
            .get(&snapshot.name)
            .map(|p| p.can_write),
        queue_depth: counters.map_or(0, |c| c.queue_depth),
        dropped: counters.map_or(0, |c| c.faults_dropped.saturating_add(c.faults_rejected)),
        breaker,
        errors: &snapshot.errors,
    }
}
