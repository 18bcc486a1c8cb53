//! Intake: every fault a connection delivers passes the severity filter, the silences, the
//! dedup window and the bounded queue, in that order; each way out is counted per cluster
//! and logged.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::correlation::Signature;
use super::{QueuedFault, TriagePipeline};
use crate::agent::breaker::BreakerState;
use crate::agent::workspace::{rfc3339, CorrelatedFault};
use crate::config::{ClusterConfig, Severity};
use crate::dedup::Seen;
use crate::events::{ClusterEvent, FaultEvent, FaultView};
use crate::limited;
use crate::logging::excerpt;
use crate::queue::Admission;

/// Characters of a fault's type or severity in one log line.
const FIELD_CHARS: usize = 64;

/// A fault at the intake: owned (decoded by the session's general path, or a tagged event
/// handed in whole), or read in place from its message with a usable key. Only a fault that
/// is queued is made owned, so a filtered, repeated or skipped fault copies nothing.
pub(super) enum Arrival<'a> {
    Owned(Box<FaultEvent>, SystemTime),
    InPlace(&'a FaultView<'a>),
}

impl Arrival<'_> {
    pub(super) fn fault_id(&self) -> &str {
        match self {
            Arrival::Owned(fault, _) => &fault.fault_id,
            Arrival::InPlace(view) => &view.fault_id,
        }
    }

    pub(super) fn fault_type(&self) -> &str {
        match self {
            Arrival::Owned(fault, _) => &fault.fault_type,
            Arrival::InPlace(view) => &view.fault_type,
        }
    }

    fn severity(&self) -> &str {
        match self {
            Arrival::Owned(fault, _) => &fault.severity,
            Arrival::InPlace(view) => &view.severity,
        }
    }

    /// Type, kind, namespace and name: what correlation's signature is made of.
    pub(super) fn signature(&self) -> Signature {
        match self {
            Arrival::Owned(fault, _) => Signature::of_fault(fault),
            Arrival::InPlace(view) => {
                let r = &view.resource;
                Signature::of(&view.fault_type, &r.kind, r.namespace.as_deref(), &r.name)
            }
        }
    }

    /// The fault as a correlated incident lists it.
    pub(super) fn member(&self, cluster: &str) -> CorrelatedFault {
        let received_at = match self {
            Arrival::Owned(_, at) => *at,
            Arrival::InPlace(_) => SystemTime::now(),
        };
        CorrelatedFault {
            cluster: cluster.to_owned(),
            fault_id: self.fault_id().to_owned(),
            received_at: rfc3339(received_at),
        }
    }

    /// As [`FaultEvent::severity_level`]: a severity cut to its bound names no level either.
    fn severity_level(&self) -> Severity {
        Severity::named(self.severity()).unwrap_or(Severity::Warning)
    }

    pub(super) fn into_event(self, cluster: &Arc<ClusterConfig>) -> ClusterEvent {
        let (event, received_at) = match self {
            Arrival::Owned(fault, at) => (*fault, at),
            Arrival::InPlace(view) => (view.to_event(), SystemTime::now()),
        };
        ClusterEvent {
            cluster: Arc::clone(cluster),
            event,
            received_at,
        }
    }
}

impl TriagePipeline {
    pub(super) fn admit(&mut self, event: ClusterEvent, now: Instant) {
        let ClusterEvent {
            cluster,
            event,
            received_at,
        } = event;
        self.admit_arrival(&cluster, Arrival::Owned(Box::new(event), received_at), now);
    }

    pub(super) fn admit_arrival(
        &mut self,
        cluster: &Arc<ClusterConfig>,
        fault: Arrival<'_>,
        now: Instant,
    ) {
        let global = self.settings.severity_threshold;
        let name = &cluster.name;
        let Some(slot) = self.clusters.get_mut(name) else {
            log::warn!(
                "cluster={name} fault {} from a cluster the pipeline does not know; dropped",
                fault.fault_id()
            );
            return;
        };
        // Overrides (severity, triage, labels) come from the pipeline's copy of the config,
        // which a reload updates.
        let config = &slot.config;
        slot.counters.faults_received += 1;
        let threshold = config.effective_severity(global);
        if !fault.severity_level().meets(threshold) {
            slot.counters.faults_filtered += 1;
            log::debug!(
                "cluster={name} fault {} severity {} below {}: filtered",
                fault.fault_id(),
                excerpt(fault.severity(), FIELD_CHARS),
                threshold.as_str()
            );
            return;
        }
        if let Some(silenced) = self.silences.matching(config, &fault) {
            slot.counters.faults_silenced += 1;
            self.record_silenced(cluster, fault, silenced, now);
            return;
        }
        match self.dedup.record_in(slot.dedup, fault.fault_id(), now) {
            Seen::New { evicted } => slot.counters.dedup_evictions = evicted,
            Seen::Repeat => {
                slot.counters.faults_deduplicated += 1;
                log::debug!(
                    "cluster={name} fault {} seen within the dedup window",
                    fault.fault_id()
                );
                return;
            }
        }
        // With no incident open there is nothing to join: the fault goes on with the slot
        // already in hand.
        let (fault, slot) = if self.correlation.may_join(&slot.config) {
            let Some(fault) = self.correlate(cluster, fault, now) else {
                return;
            };
            let Some(slot) = self.clusters.get_mut(name) else {
                return;
            };
            (fault, slot)
        } else {
            (fault, slot)
        };
        let config = &slot.config;
        if !config.triage_ready() {
            slot.counters.faults_skipped += 1;
            limited!(
                slot.log_budget,
                now,
                log::Level::Info,
                name,
                "cluster={name} triage_skipped fault={} type={} severity={} (triage {})",
                fault.fault_id(),
                excerpt(fault.fault_type(), FIELD_CHARS),
                excerpt(fault.severity(), FIELD_CHARS),
                if config.triage.enabled {
                    "has no kubeconfig"
                } else {
                    "disabled"
                }
            );
            return;
        }
        if let BreakerState::Open { until } = slot.breaker.state() {
            if now < until {
                slot.counters.faults_breaker_open += 1;
                limited!(
                    slot.log_budget,
                    now,
                    log::Level::Warn,
                    name,
                    "cluster={name} breaker_open fault={} type={}: not triaged while the cluster's agents keep failing",
                    fault.fault_id(),
                    excerpt(fault.fault_type(), FIELD_CHARS)
                );
                return;
            }
        }
        if !self.accepting {
            // Shutting down: the queue was already written to the pending file.
            log::warn!(
                "cluster={name} fault {} arrived during shutdown; not queued",
                fault.fault_id()
            );
            return;
        }
        let event = fault.into_event(cluster);
        if let Some((event, correlation)) = self.hold_for_joiners(event, now) {
            self.admit_within_budget(event, correlation, now);
        }
    }

    /// The last stage: the bounded queue.
    pub(super) fn enqueue(&mut self, event: ClusterEvent, correlation: Option<u64>, now: Instant) {
        let cluster = Arc::clone(&event.cluster);
        let name = &cluster.name;
        let Some(slot) = self.clusters.get_mut(name) else {
            return;
        };
        let fault_id = event.event.fault_id.clone();
        let labels = label_text(&event);
        let depth = self.queue.len();
        match self
            .queue
            .push(slot.shard, QueuedFault { event, correlation })
        {
            Admission::Queued => limited!(
                slot.log_budget,
                now,
                log::Level::Info,
                name,
                "cluster={name} fault={fault_id} queued{labels} (queue depth {})",
                depth + 1
            ),
            Admission::QueuedDroppedOldest(old) => {
                let old_cluster = old.event.cluster_name().to_owned();
                if let Some(old_slot) = self.clusters.get_mut(&old_cluster) {
                    old_slot.counters.faults_dropped += 1;
                }
                if let Some(slot) = self.clusters.get_mut(name) {
                    limited!(
                        slot.log_budget,
                        now,
                        log::Level::Warn,
                        name,
                        "cluster={old_cluster} fault={} dropped: queue full (overflow policy drop); cluster={name} fault={fault_id} queued in its place",
                        old.event.event.fault_id
                    );
                }
            }
            Admission::Rejected(_) => {
                slot.counters.faults_rejected += 1;
                limited!(
                    slot.log_budget,
                    now,
                    log::Level::Warn,
                    name,
                    "cluster={name} fault={fault_id} rejected: queue full (overflow policy reject, {} faults, {} bytes)",
                    depth,
                    self.queue.bytes()
                );
            }
        }
    }
}

fn label_text(event: &ClusterEvent) -> String {
    if event.labels().is_empty() {
        return String::new();
    }
    let pairs: Vec<String> = event
        .labels()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(" labels={}", pairs.join(","))
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use super::super::{PipelineSettings, TriagePipeline};
    use crate::config::{self, FlagOverrides};
    use crate::events::{ClusterEvent, FaultEvent};

    fn pipeline(extra: &str) -> TriagePipeline {
        // Every fault here has the same signature: correlation is tested on its own.
        let text = format!(
            "severity_threshold = \"warning\"\n{extra}\n[correlation]\nenabled = false\n\
             [[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = \"kc-a\"\n\
             [[clusters]]\nname = \"b\"\nseverity_threshold = \"critical\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:2/mcp\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = \"kc-b\"\n\
             [[clusters]]\nname = \"quiet\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:3/mcp\"\n"
        );
        let config = config::parse_str(&text, Path::new("t.toml"), &[], &FlagOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
        let mut settings = PipelineSettings::from_config(&config);
        settings.resume_pending = false;
        TriagePipeline::new(settings, &clusters, None).unwrap()
    }

    fn fault(pipeline: &TriagePipeline, cluster: &str, id: &str, severity: &str) -> ClusterEvent {
        ClusterEvent {
            cluster: pipeline.clusters[cluster].config.clone(),
            event: FaultEvent {
                fault_id: id.into(),
                fault_type: "CrashLoop".into(),
                severity: severity.into(),
                ..FaultEvent::default()
            },
            received_at: SystemTime::now(),
        }
    }

    fn admit(p: &mut TriagePipeline, cluster: &str, id: &str, severity: &str, now: Instant) {
        let event = fault(p, cluster, id, severity);
        p.admit(event, now);
    }

    #[test]
    fn global_threshold_filters_and_cluster_override_wins() {
        let mut p = pipeline("");
        let now = Instant::now();
        admit(&mut p, "a", "1", "info", now);
        admit(&mut p, "a", "2", "warning", now);
        admit(&mut p, "b", "3", "warning", now);
        admit(&mut p, "b", "4", "critical", now);
        let a = p.counters("a").unwrap();
        let b = p.counters("b").unwrap();
        assert_eq!((a.faults_received, a.faults_filtered), (2, 1));
        assert_eq!(
            (b.faults_received, b.faults_filtered),
            (2, 1),
            "b's critical override beats the global warning"
        );
        assert_eq!(p.queue.len(), 2);
    }

    #[test]
    fn dedup_is_per_cluster_and_within_the_window() {
        let mut p = pipeline("[dedup]\nwindow = \"60s\"");
        let now = Instant::now();
        admit(&mut p, "a", "same", "critical", now);
        admit(
            &mut p,
            "a",
            "same",
            "critical",
            now + Duration::from_secs(1),
        );
        admit(&mut p, "b", "same", "critical", now);
        assert_eq!(p.counters("a").unwrap().faults_deduplicated, 1);
        assert_eq!(
            p.counters("b").unwrap().faults_deduplicated,
            0,
            "same id on another cluster is new"
        );
        admit(
            &mut p,
            "a",
            "same",
            "critical",
            now + Duration::from_secs(61),
        );
        assert_eq!(
            p.counters("a").unwrap().faults_deduplicated,
            1,
            "after the window it is new again"
        );
        assert_eq!(p.queue.len(), 3);
    }

    #[test]
    fn clusters_without_triage_are_counted_as_skipped() {
        let mut p = pipeline("");
        admit(&mut p, "quiet", "1", "critical", Instant::now());
        let quiet = p.counters("quiet").unwrap();
        assert_eq!((quiet.faults_received, quiet.faults_skipped), (1, 1));
        assert_eq!(p.queue.len(), 0);
    }

    #[test]
    fn drop_policy_counts_the_displaced_fault_on_its_cluster() {
        let mut p = pipeline(
            "[queue]\ncluster_queue_size = 2\nglobal_queue_size = 3\noverflow_policy = \"drop\"",
        );
        let now = Instant::now();
        for id in ["1", "2", "3"] {
            admit(&mut p, "a", id, "critical", now);
        }
        assert_eq!(p.counters("a").unwrap().faults_dropped, 1);
        assert_eq!(p.queue.shard_len(0), 2);
    }

    #[test]
    fn queued_faults_are_bounded_in_bytes_not_only_in_count() {
        let mut p = pipeline("[queue]\ncluster_queue_size = 1000\nglobal_queue_size = 1000");
        let now = Instant::now();
        let context = "x".repeat(100 * 1000);
        for id in 0..400 {
            let data = serde_json::json!({"faultId": format!("{id:016x}"), "faultType": "CrashLoop",
                "severity": "critical", "context": context});
            let event = ClusterEvent {
                cluster: p.clusters["a"].config.clone(),
                event: FaultEvent::from_fault_data(&data.to_string()).unwrap(),
                received_at: SystemTime::now(),
            };
            p.admit(event, now);
        }
        let held: usize = p
            .queue
            .drain_all()
            .iter()
            .map(|(_, q)| serde_json::to_string(&q.event.event).unwrap().len())
            .sum();
        assert!(
            held <= 16 * 1024 * 1024,
            "the queue held {held} bytes of faults"
        );
    }

    #[test]
    fn reject_policy_keeps_the_oldest_and_counts_the_refused() {
        let mut p = pipeline(
            "[queue]\ncluster_queue_size = 2\nglobal_queue_size = 3\noverflow_policy = \"reject\"",
        );
        let now = Instant::now();
        for id in ["1", "2", "3"] {
            admit(&mut p, "a", id, "critical", now);
        }
        admit(&mut p, "b", "4", "critical", now);
        admit(&mut p, "b", "5", "critical", now);
        assert_eq!(p.counters("a").unwrap().faults_rejected, 1);
        assert_eq!(
            p.counters("b").unwrap().faults_rejected,
            1,
            "global bound of 3 reached"
        );
        assert_eq!(p.queue.len(), 3);
    }
}
