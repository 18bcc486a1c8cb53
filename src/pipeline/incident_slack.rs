//! The pipeline's side of Slack app mode: an incident's thread opens when its agent starts
//! and its root message takes the outcome when the end is recorded; where the thread is
//! goes into the workspace through the writer, never from the loop thread.

use std::path::Path;
use std::time::Duration;

use super::budget::{until_text, Exhausted};
use super::TriagePipeline;
use crate::agent::workspace::{CorrelatedFault, IncidentRecord};
use crate::agent::workspace_writer::{ResolvedIncident, WriteJob};
use crate::config::{Secret, SlackRoute};
use crate::events::FaultEvent;
use crate::notify::report::InvestigationSummary;
use crate::notify::slack::escape_mrkdwn;
use crate::notify::slack::{NotificationKind, TriageNotification};
use crate::notify::slack_app::IncidentStart;
use crate::notify::slack_route::{route, Destination};
use crate::notify::slack_thread::thread_key;
use crate::stage::StageContext;

/// Workspaces looked at for a `resolved` file per check, at most.
const MAX_RESOLUTION_CHECKS: usize = 1000;

/// The message's facts, from what the loop holds (never from incident.json read back).
pub(super) fn notification_of(
    record: &IncidentRecord,
    kind_of: NotificationKind,
    duration: Duration,
) -> TriageNotification {
    let fault = &record.fault;
    TriageNotification {
        cluster: record.cluster.clone(),
        environment: record.environment.clone(),
        severity: fault.severity.clone(),
        namespace: fault.resource.namespace.clone(),
        kind: fault.resource.kind.clone(),
        name: fault.resource.name.clone(),
        fault_type: fault.fault_type.clone(),
        incident_id: record.incident_id.clone(),
        kind_of,
        duration,
        summary: InvestigationSummary::default(),
        labels: record
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        also_on: record
            .correlated
            .iter()
            .filter(|m| m.cluster != record.cluster)
            .map(|m| m.cluster.clone())
            .collect(),
    }
}

/// The thread a fault of `cluster` replies in: the one of the same fault on the same
/// resource.
fn fault_thread_key(cluster: &str, fault: &FaultEvent) -> String {
    let resource = &fault.resource;
    thread_key(
        cluster,
        &fault.fault_type,
        &resource.kind,
        resource.namespace.as_deref(),
        &resource.name,
    )
}

impl TriagePipeline {
    /// The agent of `record` started in `workspace`: its thread opens (or a repeat joins
    /// the fault's thread).
    pub(super) fn open_slack_thread(
        &mut self,
        ctx: &mut StageContext,
        record: &IncidentRecord,
        workspace: &Path,
    ) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        let Some(default) = self.settings.slack_app.as_ref().map(|s| &s.channel) else {
            return;
        };
        let destination = route(
            &self.settings.slack_routes,
            &record.cluster,
            record.environment.as_deref(),
            &record.labels,
            Some(&record.fault.fault_type),
        );
        let channel = match destination {
            Destination::Route(
                _,
                SlackRoute {
                    channel: Some(channel),
                    ..
                },
            ) => channel.clone(),
            _ => default.clone(),
        };
        let start = IncidentStart {
            workspace: workspace.to_path_buf(),
            channel,
            notification: notification_of(record, NotificationKind::Investigated, Duration::ZERO),
        };
        app.incident_started(ctx, &record.incident_id, start);
        self.persist_slack_threads();
    }

    /// The webhook of the route `record` takes in webhook mode (`None`: the default).
    pub(super) fn webhook_route(&self, record: &IncidentRecord) -> Option<Secret> {
        match route(
            &self.settings.slack_routes,
            &record.cluster,
            record.environment.as_deref(),
            &record.labels,
            Some(&record.fault.fault_type),
        ) {
            Destination::Route(_, r) => r.webhook_url.clone(),
            Destination::Default => None,
        }
    }

    /// Asks the writer, every `slack.resolved_check_interval`, which finished incidents the
    /// operator marked resolved (one question at a time).
    pub(super) fn check_resolutions(&mut self, now: std::time::Instant) {
        let Some(app) = self.slack_app.as_ref() else {
            return;
        };
        if self.resolution_check_in_flight || self.next_resolution_check.is_some_and(|at| at > now)
        {
            return;
        }
        let interval = self
            .settings
            .slack_app
            .as_ref()
            .map_or(Duration::from_secs(30), |s| s.resolved_check_interval);
        self.next_resolution_check = Some(now + interval);
        let threads = app.resolution_candidates(MAX_RESOLUTION_CHECKS);
        if !threads.is_empty() {
            self.resolution_check_in_flight = true;
            self.writer.submit(WriteJob::CheckResolved { threads });
        }
    }

    pub(super) fn on_resolved_incidents(
        &mut self,
        ctx: &mut StageContext,
        incidents: Vec<ResolvedIncident>,
    ) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        for incident in incidents {
            let mut n = notification_of(
                &incident.record,
                NotificationKind::Investigated,
                Duration::ZERO,
            );
            n.summary = incident.summary.clone().unwrap_or_default();
            let report = incident
                .summary
                .is_some()
                .then(|| incident.workspace.join("output/investigation.md"))
                .map(|p| p.display().to_string());
            app.mark_resolved(
                ctx,
                &incident.thread_key,
                &incident.workspace,
                &n,
                report.as_deref(),
            );
        }
        self.persist_slack_threads();
    }

    /// A silenced fault that has a thread from an earlier incident: a reply there says it
    /// came back and was silenced.
    pub(super) fn note_silenced_repeat(
        &mut self,
        cluster: &str,
        fault: &FaultEvent,
        silence_id: &str,
    ) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        let key = fault_thread_key(cluster, fault);
        let text = format!(
            ":no_bell: Seen again, silenced by `{}`: not investigated",
            escape_mrkdwn(&crate::logging::excerpt(silence_id, 120))
        );
        app.note_on_thread(&key, &text);
    }

    /// A cluster joined incident `record` after its thread opened: a reply there names the
    /// cluster, its fault and when it came. One that joins while the incident's agent is
    /// being prepared is in the root message already.
    pub(super) fn note_joiner(&mut self, record: &IncidentRecord, joiner: &CorrelatedFault) {
        if self.preparing.contains_key(&record.incident_id) {
            return;
        }
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        let text = format!(
            ":link: Same fault on {} (fault `{}`, {})",
            escape_mrkdwn(&crate::logging::excerpt(&joiner.cluster, 120)),
            escape_mrkdwn(&crate::logging::excerpt(&joiner.fault_id, 120)),
            escape_mrkdwn(&crate::logging::excerpt(&joiner.received_at, 40))
        );
        if app.note(&record.incident_id, &text) {
            return;
        }
        // The run ended and its messages went: the reply goes to the fault's thread.
        let key = fault_thread_key(&record.cluster, &record.fault);
        app.note_on_thread(&key, &text);
    }

    /// A fault that has a thread from an earlier incident was refused for the budget: a
    /// reply there says no agent ran, and until when.
    pub(super) fn note_over_budget(
        &mut self,
        cluster: &str,
        fault: &FaultEvent,
        exhausted: &Exhausted,
    ) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        let key = fault_thread_key(cluster, fault);
        let text = format!(
            ":money_with_wings: Seen again, not investigated: triage budget reached ({} used); \
             no agent runs until {}",
            escape_mrkdwn(&crate::logging::excerpt(&exhausted.what, 200)),
            until_text(exhausted.until)
        );
        app.note_on_thread(&key, &text);
    }

    /// Hands the threads Slack just gave a `ts` to the writer.
    pub(super) fn persist_slack_threads(&mut self) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        for thread in app.take_threads_to_persist() {
            self.writer.submit(WriteJob::SlackThread {
                workspace: thread.workspace,
                record: thread.record,
                resolved: thread.resolved,
            });
        }
    }
}
