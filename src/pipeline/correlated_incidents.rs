//! The correlation stage in the pipeline: after dedup, a fault joins the open incident of
//! the same fault on other clusters, or opens one and waits `correlation.hold` for joiners
//! before it goes on to the queue. Joiners are written into the incident's `incident.json`
//! (through the workspace writer) whatever its agent's state; those that come after its
//! Slack message are summed up in one message when the window ends.

use std::sync::Arc;
use std::time::Instant;

use super::correlation::{ClosedGroup, Correlated, CorrelationGroups};
use super::intake::Arrival;
use super::TriagePipeline;
use crate::agent::workspace::IncidentRecord;
use crate::agent::workspace_writer::WriteJob;
use crate::config::ClusterConfig;
use crate::events::ClusterEvent;
use crate::metrics::counters::CorrelationCounters;
use crate::stage::StageContext;

/// Clusters named in one summary of late joiners.
const SUMMARY_MAX_CLUSTERS: usize = 50;

/// The loop's correlation state.
pub(super) struct Correlation {
    pub(super) enabled: bool,
    pub(super) groups: CorrelationGroups,
    pub(super) counters: CorrelationCounters,
    /// Clusters that correlate; with fewer than two nothing can join, so nothing waits.
    pub(super) clusters: usize,
    /// Summaries of late joiners to send with the next tick.
    pub(super) summaries: Vec<String>,
}

impl Correlation {
    pub(super) fn new(config: &crate::config::CorrelationConfig) -> Correlation {
        Correlation {
            enabled: config.enabled,
            groups: CorrelationGroups::new(config.window, config.hold),
            counters: CorrelationCounters::default(),
            clusters: 0,
            summaries: Vec::new(),
        }
    }

    /// Faults of `cluster` take part in correlation.
    pub(super) fn includes(&self, cluster: &ClusterConfig) -> bool {
        self.enabled && cluster.correlate && self.clusters >= 2
    }

    /// A fault of `cluster` may join an open incident.
    pub(super) fn may_join(&self, cluster: &ClusterConfig) -> bool {
        self.includes(cluster) && !self.groups.is_empty()
    }
}

impl TriagePipeline {
    /// Recounts the clusters that correlate (after clusters were added or removed).
    pub(super) fn count_correlating(&mut self) {
        self.correlation.clusters = self
            .clusters
            .values()
            .filter(|slot| slot.config.correlate)
            .count();
    }

    /// The fault joins an open incident of the same fault on other clusters (and is
    /// counted), or comes back to go on.
    pub(super) fn correlate<'a>(
        &mut self,
        cluster: &Arc<ClusterConfig>,
        fault: Arrival<'a>,
        now: Instant,
    ) -> Option<Arrival<'a>> {
        let Some(slot) = self.clusters.get(&cluster.name) else {
            return Some(fault);
        };
        // With no incident open there is nothing to join, and no signature to build.
        if !self.correlation.may_join(&slot.config) {
            return Some(fault);
        }
        let signature = fault.signature();
        if !self
            .correlation
            .groups
            .is_open_without(&signature, &cluster.name, now)
        {
            return Some(fault);
        }
        let member = fault.member(&cluster.name);
        // Only a fault that could run itself may be the one that runs for the incident.
        let breaker_open = matches!(
            slot.breaker.state(),
            crate::agent::breaker::BreakerState::Open { until } if now < until
        );
        let runnable = slot.config.triage_ready() && self.accepting && !breaker_open;
        let priority = slot.config.priority;
        let candidate = runnable.then(|| (priority, fault.into_event(cluster)));
        let joiner = member.clone();
        let fault_id = member.fault_id.clone();
        let id = self
            .correlation
            .groups
            .join(&signature, member, candidate, now)?;
        let name = &cluster.name;
        if let Some(slot) = self.clusters.get_mut(name) {
            slot.counters.faults_correlated += 1;
        }
        let record = self.correlation.groups.record(id).cloned();
        match record {
            Some(record) => {
                log::info!(
                    "cluster={name} fault={fault_id} joined incident {} ({} clusters)",
                    record.incident_id,
                    record.correlated.len()
                );
                self.note_joiner(&record, &joiner);
                self.record_joiner(record);
            }
            None => log::info!(
                "cluster={name} fault={fault_id} joined the same fault of {} (its agent has not started yet)",
                self.correlation
                    .groups
                    .first_cluster(id)
                    .unwrap_or_default()
            ),
        }
        None
    }

    /// The incident gained a cluster: the records the loop holds for it and its
    /// `incident.json` say so.
    fn record_joiner(&mut self, record: IncidentRecord) {
        let id = &record.incident_id;
        if let Some(preparing) = self.preparing.get_mut(id) {
            preparing.record.correlated.clone_from(&record.correlated);
        }
        if let Some(running) = self.running.get_mut(id) {
            running.correlated.clone_from(&record.correlated);
        }
        self.writer.submit(WriteJob::Record {
            dir: self.settings.workspace_root.join(id),
            record,
        });
    }

    /// A fault that goes on to the queue opens a group and waits there for joiners (`None`),
    /// or goes on at once, with its group when it has one.
    pub(super) fn hold_for_joiners(
        &mut self,
        event: ClusterEvent,
        now: Instant,
    ) -> Option<(ClusterEvent, Option<u64>)> {
        if !self.correlation.includes(&event.cluster) {
            return Some((event, None));
        }
        let signature = super::correlation::Signature::of_fault(&event.event);
        if self.correlation.groups.is_open(&signature, now) {
            // The same fault again on a cluster already in the incident: its own run.
            return Some((event, None));
        }
        if self.correlation.groups.is_full() {
            // Windows that ended are closed first; if that frees nothing, it runs alone.
            for closed in self.correlation.groups.close_due(now) {
                self.on_group_closed(closed);
            }
            if self.correlation.groups.is_full() {
                self.correlation.counters.not_grouped += 1;
                return Some((event, None));
            }
        }
        let priority = event.cluster.priority;
        let (outcome, closed) = self
            .correlation
            .groups
            .open(signature, priority, event, now);
        self.correlation.counters.incidents += 1;
        if let Some(closed) = closed {
            self.on_group_closed(closed);
        }
        match outcome {
            Correlated::Held => None,
            Correlated::Release(event, id) => Some((*event, Some(id))),
        }
    }

    /// Holds that ended go on to the queue; windows that ended are closed.
    pub(super) fn tick_correlation(&mut self, ctx: &mut StageContext) {
        if self.correlation.groups.is_empty() && self.correlation.summaries.is_empty() {
            // Asked on every turn of the loop: with no group open, it costs nothing.
            return;
        }
        for (event, id) in self.correlation.groups.release_due(ctx.now) {
            self.release(event, id, ctx.now);
        }
        for closed in self.correlation.groups.close_due(ctx.now) {
            self.on_group_closed(closed);
        }
        for text in std::mem::take(&mut self.correlation.summaries) {
            if let Some(slack) = self.slack.as_mut() {
                slack.send(
                    ctx,
                    &serde_json::json!({ "text": text }),
                    "correlation summary",
                );
            }
        }
    }

    fn release(&mut self, event: ClusterEvent, id: u64, now: Instant) {
        if !self.accepting {
            return;
        }
        let members = self.correlation.groups.member_count(id);
        if members > 1 {
            log::info!(
                "cluster={} fault={} runs for the same fault on {members} clusters",
                event.cluster_name(),
                event.event.fault_id
            );
        }
        self.admit_within_budget(event, Some(id), now);
    }

    /// The daemon is stopping: held faults go to the queue (and from there to
    /// `pending.jsonl`) at once.
    pub(super) fn release_held(&mut self, now: Instant) {
        for (event, id) in self.correlation.groups.release_all() {
            self.admit_within_budget(event, Some(id), now);
        }
    }

    fn on_group_closed(&mut self, closed: ClosedGroup) {
        self.correlation.counters.observe_clusters(closed.clusters);
        let Some(incident) = closed.incident_id.as_deref() else {
            return;
        };
        if closed.late.is_empty() || self.slack.is_none() {
            return;
        }
        let named: Vec<&str> = closed
            .late
            .iter()
            .take(SUMMARY_MAX_CLUSTERS)
            .map(String::as_str)
            .collect();
        let more = match closed.late.len() - named.len() {
            0 => String::new(),
            more => format!(" and {more} more"),
        };
        self.correlation.summaries.push(format!(
            ":link: {} more clusters had the fault of incident {incident} after its message: {}{more}",
            closed.late.len(),
            named.join(", ")
        ));
    }

    /// The incident of a released fault is being made: it lists the group's faults.
    pub(super) fn attach_correlated(&mut self, id: Option<u64>, record: &mut IncidentRecord) {
        if let Some(id) = id {
            self.correlation.groups.attach(id, record);
        }
    }
}
