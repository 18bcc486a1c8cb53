//! The silence stage of the intake, between the severity filter and dedup: a fault a
//! silence holds for is counted (per cluster and per silence), logged, and recorded as an
//! incident workspace in status `silenced` naming the silence; it starts no agent and no
//! Slack message. A fault repeated under the same silence is counted again but recorded
//! once, and each silence records at most [`MAX_RECORDS_PER_SILENCE`] faults, so a noisy
//! fault during a maintenance window cannot fill the disk.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::intake::Arrival;
use super::TriagePipeline;
use crate::agent::workspace::{self, status, IncidentRecord};
use crate::agent::workspace_writer::WriteJob;
use crate::config::ClusterConfig;
use crate::events::FaultEvent;
use crate::logging::excerpt;
use crate::silence::window::timestamp;
use crate::silence::{FaultLabels, Silence, SilenceSet};

/// Distinct faults recorded as workspaces per silence; more are counted and logged only.
pub const MAX_RECORDS_PER_SILENCE: usize = 1000;
/// Characters of a fault's fields in one log line.
const FIELD_CHARS: usize = 64;

/// The silences and what they have recorded.
#[derive(Debug, Default)]
pub(super) struct SilenceStage {
    pub(super) set: SilenceSet,
    /// (cluster, fault id) recorded, per silence id.
    recorded: HashMap<String, HashSet<(String, String)>>,
}

/// A fault a silence holds for: its id, and whether to record the fault.
pub(super) struct Silenced {
    silence_id: String,
    record: bool,
}

impl SilenceStage {
    pub(super) fn new(file: Vec<Silence>) -> SilenceStage {
        SilenceStage {
            set: SilenceSet::new(file, Arc::default()),
            recorded: HashMap::new(),
        }
    }

    /// The silences of the API after a change; what silences gone recorded is forgotten.
    pub(super) fn set_runtime(&mut self, runtime: Arc<Vec<Silence>>) {
        self.set.set_runtime(runtime);
        let counted = self.set.silenced_counts();
        self.recorded.retain(|id, _| counted.contains_key(id));
    }

    /// The silence holding for `fault` on `cluster` now, counted; `None` when none does
    /// (at once when there are no silences).
    pub(super) fn matching(
        &mut self,
        cluster: &ClusterConfig,
        fault: &Arrival<'_>,
    ) -> Option<Silenced> {
        if self.set.is_empty() {
            return None;
        }
        let labels = fault.labels(cluster);
        let silence = self.set.silence(&labels, timestamp(SystemTime::now()))?;
        let recorded = self.recorded.entry(silence.id.clone()).or_default();
        let key = (cluster.name.clone(), fault.fault_id().to_owned());
        let record = recorded.len() < MAX_RECORDS_PER_SILENCE && recorded.insert(key);
        Some(Silenced {
            silence_id: silence.id.clone(),
            record,
        })
    }
}

impl Arrival<'_> {
    fn labels<'a>(&'a self, cluster: &'a ClusterConfig) -> FaultLabels<'a> {
        match self {
            Arrival::Owned(fault, _) => FaultLabels {
                cluster,
                fault_type: &fault.fault_type,
                namespace: fault.resource.namespace.as_deref(),
                resource_kind: &fault.resource.kind,
                resource_name: &fault.resource.name,
            },
            Arrival::InPlace(view) => FaultLabels {
                cluster,
                fault_type: &view.fault_type,
                namespace: view.resource.namespace.as_deref(),
                resource_kind: &view.resource.kind,
                resource_name: &view.resource.name,
            },
        }
    }

    fn into_fault(self) -> (FaultEvent, SystemTime) {
        match self {
            Arrival::Owned(fault, at) => (*fault, at),
            Arrival::InPlace(view) => (view.to_event(), SystemTime::now()),
        }
    }
}

impl TriagePipeline {
    /// Logs a silenced fault and, when `silenced` says so, writes its workspace (through the
    /// writer's thread) in status `silenced`.
    pub(super) fn record_silenced(
        &mut self,
        cluster: &Arc<ClusterConfig>,
        fault: Arrival<'_>,
        silenced: Silenced,
        now: Instant,
    ) {
        let name = &cluster.name;
        let Silenced { silence_id, record } = silenced;
        if let Some(slot) = self.clusters.get_mut(name) {
            crate::limited!(
                slot.log_budget,
                now,
                log::Level::Info,
                name,
                "cluster={name} silenced fault={} type={} by silence {}",
                excerpt(fault.fault_id(), FIELD_CHARS),
                excerpt(fault.fault_type(), FIELD_CHARS),
                excerpt(&silence_id, FIELD_CHARS)
            );
        }
        if !record {
            return;
        }
        let (event, received_at) = fault.into_fault();
        self.note_silenced_repeat(name, &event, &silence_id);
        self.incidents_started += 1;
        let incident_id =
            workspace::new_incident_id(name, SystemTime::now(), self.incidents_started);
        let mut incident = IncidentRecord::new(
            incident_id,
            name.clone(),
            cluster.environment.clone(),
            cluster.labels.clone(),
            event,
            received_at,
        );
        incident.status = status::SILENCED.to_string();
        incident.silence_id = Some(silence_id);
        self.writer.submit(WriteJob::Create {
            root: self.settings.workspace_root.clone(),
            record: incident,
            permissions: None,
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant, SystemTime};

    use super::super::{PipelineSettings, TriagePipeline};
    use super::*;
    use crate::agent::workspace_writer::WriteDone;
    use crate::config::{self, FlagOverrides};
    use crate::events::{ClusterEvent, FaultEvent, ResourceRef};
    use crate::stage::Stage;

    fn pipeline(root: &Path, silences: &str) -> TriagePipeline {
        let text = format!(
            "workspace_root = {root:?}\n\
             [[clusters]]\nname = \"prod-eu-1\"\nenvironment = \"production\"\n\
             labels = {{ team = \"payments\" }}\n\
             [clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = \"kc\"\n{silences}"
        );
        let config = config::parse_str(&text, Path::new("t.toml"), &[], &FlagOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
        let mut settings = PipelineSettings::from_config(&config);
        settings.resume_pending = false;
        TriagePipeline::new(settings, &clusters, None).unwrap()
    }

    fn fault(p: &TriagePipeline, id: &str, namespace: &str, name: &str) -> ClusterEvent {
        ClusterEvent {
            cluster: p.clusters["prod-eu-1"].config.clone(),
            event: FaultEvent {
                fault_id: id.into(),
                fault_type: "CrashLoop".into(),
                severity: "critical".into(),
                resource: ResourceRef {
                    kind: "Pod".into(),
                    name: name.into(),
                    namespace: Some(namespace.into()),
                    ..ResourceRef::default()
                },
                ..FaultEvent::default()
            },
            received_at: SystemTime::now(),
        }
    }

    /// The workspaces the writer made once it has done all it was given (waited for up to
    /// a bound).
    fn created(p: &mut TriagePipeline) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut ids = Vec::new();
        while !p.writer.is_idle() && Instant::now() < deadline {
            for done in p.writer.results() {
                if let WriteDone::Created {
                    incident_id,
                    workspace,
                } = done
                {
                    workspace.unwrap();
                    ids.push(incident_id);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        ids
    }

    const FILE_SILENCE: &str = "[[silences]]\nname = \"shop-upgrade\"\n\
        starts_at = \"2020-01-01T00:00:00Z\"\nends_at = \"2099-01-01T00:00:00Z\"\n\
        matchers = { cluster = \"prod-*\", team = \"payments\", namespace = { regex = \"shop|shop-.*\" }, \
        resource_name = { not = \"db-*\" } }\n";

    #[test]
    fn a_silenced_fault_is_recorded_with_the_silence_and_never_queued() {
        let root = tempfile::tempdir().unwrap();
        let mut p = pipeline(root.path(), FILE_SILENCE);
        let now = Instant::now();
        let silenced = fault(&p, "f1", "shop-v2", "api-1");
        p.admit(silenced.clone(), now);
        p.admit(silenced, now + Duration::from_secs(1));
        p.admit(fault(&p, "f2", "shop", "db-0"), now);
        p.admit(fault(&p, "f3", "billing", "api-1"), now);
        let counters = p.counters("prod-eu-1").unwrap();
        assert_eq!(counters.faults_silenced, 2, "the same fault twice");
        assert_eq!(
            counters.faults_deduplicated, 0,
            "silence comes before dedup"
        );
        assert_eq!(p.queue.len(), 2, "db-0 and billing are not silenced");
        assert_eq!(
            p.snapshot().faults_silenced.get("file:shop-upgrade"),
            Some(&2)
        );
        let ids = created(&mut p);
        assert_eq!(ids.len(), 1, "a repeated fault is recorded once");
        let text =
            std::fs::read_to_string(root.path().join(&ids[0]).join("incident.json")).unwrap();
        let record: IncidentRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(record.status, "silenced");
        assert_eq!(record.silence_id.as_deref(), Some("file:shop-upgrade"));
        assert_eq!(record.fault.fault_id, "f1");
    }

    #[test]
    fn runtime_silences_apply_once_handed_in_and_stop_when_replaced() {
        let root = tempfile::tempdir().unwrap();
        let mut p = pipeline(root.path(), "");
        let now = Instant::now();
        let silence = Silence {
            id: "0b7e".into(),
            matchers: vec![crate::silence::matcher::Matcher::exact(
                "fault_type",
                "CrashLoop",
                true,
            )
            .unwrap()],
            active: crate::silence::window::ActiveTime::Between {
                starts_at: "2020-01-01T00:00:00Z".parse().unwrap(),
                ends_at: "2099-01-01T00:00:00Z".parse().unwrap(),
            },
            comment: String::new(),
            created_by: String::new(),
        };
        p.set_runtime_silences(Arc::new(vec![silence]));
        p.admit(fault(&p, "f1", "shop", "api"), now);
        p.set_runtime_silences(Arc::default());
        p.admit(fault(&p, "f2", "shop", "api"), now);
        let counters = p.counters("prod-eu-1").unwrap();
        assert_eq!((counters.faults_silenced, p.queue.len()), (1, 1));
    }
}
