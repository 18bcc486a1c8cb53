//! The pipeline's side of Slack app mode: an incident's thread opens when its agent starts
//! and its root message takes the outcome when the end is recorded; where the thread is
//! goes into the workspace through the writer, never from the loop thread.

use std::path::Path;
use std::time::Duration;

use super::TriagePipeline;
use crate::agent::workspace::IncidentRecord;
use crate::agent::workspace_writer::WriteJob;
use crate::config::{Secret, SlackRoute};
use crate::notify::report::InvestigationSummary;
use crate::notify::slack::{NotificationKind, TriageNotification};
use crate::notify::slack_app::IncidentStart;
use crate::notify::slack_route::{route, Destination};
use crate::stage::StageContext;

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
    }
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

    /// Hands the threads Slack just gave a `ts` to the writer.
    pub(super) fn persist_slack_threads(&mut self) {
        let Some(app) = self.slack_app.as_mut() else {
            return;
        };
        for thread in app.take_threads_to_persist() {
            self.writer.submit(WriteJob::SlackThread {
                workspace: thread.workspace,
                record: thread.record,
            });
        }
    }
}
