//! What the pipeline counts, per cluster and overall. Plain numbers owned by the loop; the
//! health thread sees a copy in each published snapshot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::agent::permissions::ClusterPermissions;

/// One cluster's pipeline counters (all `_total` counters are monotonic).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterCounters {
    pub faults_received: u64,
    /// Below the (cluster's) severity threshold.
    pub faults_filtered: u64,
    /// Seen within the dedup window.
    pub faults_deduplicated: u64,
    /// Keys of this cluster the dedup table forgot early (its `dedup.max_entries` full).
    pub dedup_evictions: u64,
    /// Displaced from a full queue (policy `drop`).
    pub faults_dropped: u64,
    /// Refused by a full queue (policy `reject`).
    pub faults_rejected: u64,
    /// An agent was started for it.
    pub faults_triaged: u64,
    /// Triage disabled, no kubeconfig for the cluster, or refused by `require_read_only`.
    pub faults_skipped: u64,
    /// Not run because the cluster's circuit breaker was open.
    pub faults_breaker_open: u64,
    /// Faults a silence held for.
    pub faults_silenced: u64,
    /// Joined the incident of the same fault on other clusters (no agent of its own).
    pub faults_correlated: u64,
    /// Over a `[budget]` ceiling: recorded as a `budget_exhausted` incident, no agent.
    pub faults_budget_exhausted: u64,
    /// Runs left today under the cluster's `max_runs_per_day`, when it has one.
    pub budget_remaining: Option<u64>,
    pub agents_investigated: u64,
    pub agents_failed: u64,
    pub agents_timed_out: u64,
    /// Faults refused because `require_read_only` is set and the kubeconfig can write
    /// (also counted in `faults_skipped`).
    pub triage_refused_can_write: u64,
    /// ... or because its read-only check did not answer (also in `faults_skipped`).
    pub triage_refused_unverified: u64,
    /// Workspace or pending-file writes that failed on a full disk (ENOSPC, EDQUOT).
    pub write_errors_no_space: u64,
    /// ... and that failed otherwise.
    pub write_errors_other: u64,
    /// Gauges.
    pub queue_depth: usize,
    pub agents_running: usize,
    pub breaker: &'static str,
}

impl ClusterCounters {
    /// Counts a failed write into the workspace root.
    pub fn write_failed(&mut self, failure: crate::agent::workspace::WriteFailure) {
        match failure {
            crate::agent::workspace::WriteFailure::NoSpace => self.write_errors_no_space += 1,
            crate::agent::workspace::WriteFailure::Other => self.write_errors_other += 1,
        }
    }
}

/// Cumulative histogram of agent run durations, Prometheus style.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DurationHistogram {
    /// Upper bounds in seconds, ascending; the implicit `+Inf` bucket is `count`.
    pub bounds: Vec<f64>,
    /// Observations `<=` each bound (cumulative).
    pub cumulative: Vec<u64>,
    pub sum_seconds: f64,
    pub count: u64,
}

impl Default for DurationHistogram {
    fn default() -> Self {
        let bounds = vec![5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0];
        DurationHistogram {
            cumulative: vec![0; bounds.len()],
            bounds,
            sum_seconds: 0.0,
            count: 0,
        }
    }
}

impl DurationHistogram {
    pub fn observe(&mut self, duration: Duration) {
        let seconds = duration.as_secs_f64();
        for (bound, count) in self.bounds.iter().zip(self.cumulative.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.sum_seconds += seconds;
        self.count += 1;
    }
}

/// Correlation across clusters: incidents opened, and how many clusters each had when its
/// window ended (a cumulative histogram).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorrelationCounters {
    pub incidents: u64,
    /// Faults not grouped because `MAX_OPEN_GROUPS` groups were open.
    pub not_grouped: u64,
    pub cluster_bounds: Vec<u64>,
    pub cluster_cumulative: Vec<u64>,
    pub cluster_sum: u64,
    pub cluster_count: u64,
}

impl Default for CorrelationCounters {
    fn default() -> Self {
        let bounds = vec![1, 2, 3, 5, 10, 20, 50, 100];
        CorrelationCounters {
            incidents: 0,
            not_grouped: 0,
            cluster_cumulative: vec![0; bounds.len()],
            cluster_bounds: bounds,
            cluster_sum: 0,
            cluster_count: 0,
        }
    }
}

impl CorrelationCounters {
    pub fn observe_clusters(&mut self, clusters: usize) {
        let clusters = clusters as u64;
        for (bound, count) in self
            .cluster_bounds
            .iter()
            .zip(self.cluster_cumulative.iter_mut())
        {
            if clusters <= *bound {
                *count += 1;
            }
        }
        self.cluster_sum += clusters;
        self.cluster_count += 1;
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SlackCounters {
    pub delivered: u64,
    pub retried: u64,
    pub failed: u64,
    /// App mode: Slack's errors (`ok:false` names, 429s, transport), by name.
    pub api_errors: BTreeMap<&'static str, u64>,
}

/// Everything the pipeline publishes.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PipelineSnapshot {
    pub clusters: BTreeMap<String, ClusterCounters>,
    pub permissions: BTreeMap<String, ClusterPermissions>,
    pub agents_running: usize,
    /// Faults taken from the queue whose agent is not started yet (its workspace is being
    /// written).
    pub agents_starting: usize,
    pub queue_depth: usize,
    /// Faults held by correlation, not queued yet.
    pub faults_held: usize,
    pub agent_duration: DurationHistogram,
    pub correlation: CorrelationCounters,
    pub budget: crate::pipeline::budget::BudgetRemaining,
    /// Clusters reported silent and not recovered yet.
    pub silent_clusters: Vec<String>,
    pub slack: SlackCounters,
    /// True while agent failures across clusters exceed the global threshold.
    pub system_degraded: bool,
    pub config_last_reload_successful: bool,
    /// Unix time of the last reload attempt (or of the start).
    pub config_last_reload_timestamp_seconds: f64,
    pub config_reload_failures: u64,
    /// Faults silenced, by silence id.
    pub faults_silenced: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative() {
        let mut histogram = DurationHistogram::default();
        histogram.observe(Duration::from_secs(3));
        histogram.observe(Duration::from_secs(45));
        histogram.observe(Duration::from_secs(5000));
        assert_eq!(histogram.count, 3);
        assert_eq!(histogram.cumulative[0], 1, "<= 5s");
        assert_eq!(histogram.cumulative[3], 2, "<= 60s");
        assert_eq!(
            *histogram.cumulative.last().unwrap(),
            2,
            "5000s only in +Inf"
        );
        assert!((histogram.sum_seconds - 5048.0).abs() < 1e-9);
    }
}
