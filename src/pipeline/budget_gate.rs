//! The budget stage in the pipeline, between correlation and the queue: a fault that fits
//! every `[budget]` ceiling is counted as a run and queued; one that does not becomes an
//! incident with status `budget_exhausted` (its workspace written, no agent) and is counted,
//! and the first one of each ceiling and window posts one Slack notice saying what is
//! paused until when. The ledger is written to `budget.json` by the workspace writer.

use std::path::PathBuf;
use std::time::{Instant, SystemTime};

use super::budget::{until_text, BudgetLedger, Exhausted, BUDGET_FILE};
use super::TriagePipeline;
use crate::agent::workspace::{self, status, IncidentRecord};
use crate::agent::workspace_writer::WriteJob;
use crate::events::ClusterEvent;

/// Largest `budget.json` read back.
const LEDGER_MAX_BYTES: u64 = 1024 * 1024;

/// The loop's budget state.
pub(super) struct Budget {
    pub(super) ledger: BudgetLedger,
    /// Changed since it was last handed to the writer.
    dirty: bool,
    notices: Vec<String>,
}

impl Budget {
    /// The ledger saved under `root`, or an empty one (a file that cannot be read is
    /// logged and left in place until the first write).
    pub(super) fn load(root: &std::path::Path) -> Budget {
        let path = root.join(BUDGET_FILE);
        let ledger = match workspace::read_regular_file(&path, LEDGER_MAX_BYTES) {
            Ok(bytes) => match BudgetLedger::from_json(&String::from_utf8_lossy(&bytes)) {
                Ok(ledger) => ledger,
                Err(e) => {
                    log::error!(
                        "{}: not a budget ledger ({e}); counting from zero",
                        path.display()
                    );
                    BudgetLedger::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BudgetLedger::default(),
            Err(e) => {
                log::error!("{}: cannot read ({e}); counting from zero", path.display());
                BudgetLedger::default()
            }
        };
        Budget {
            ledger,
            dirty: false,
            notices: Vec::new(),
        }
    }
}

impl TriagePipeline {
    fn ledger_path(&self) -> PathBuf {
        self.settings.workspace_root.join(BUDGET_FILE)
    }

    fn budgets_set(&self, cluster_limit: Option<u64>) -> bool {
        self.settings.budget.any() || cluster_limit.is_some()
    }

    /// The budget stage, then the queue.
    pub(super) fn admit_within_budget(
        &mut self,
        event: ClusterEvent,
        correlation: Option<u64>,
        now: Instant,
    ) {
        let cluster_limit = event.cluster.triage.max_runs_per_day;
        if !self.budgets_set(cluster_limit) {
            return self.enqueue(event, correlation, now);
        }
        let wall = SystemTime::now();
        let name = event.cluster_name().to_owned();
        let checked = self.budget.ledger.check(
            &self.settings.budget,
            &name,
            cluster_limit,
            &event.event.fault_type,
            wall,
        );
        match checked {
            Ok(()) => {
                self.budget
                    .ledger
                    .record_run(&name, &event.event.fault_type, wall);
                self.budget.dirty = true;
                self.enqueue(event, correlation, now);
            }
            Err(exhausted) => self.over_budget(event, correlation, &exhausted, wall),
        }
    }

    /// The fault is recorded as an incident of its own, with no agent.
    fn over_budget(
        &mut self,
        event: ClusterEvent,
        correlation: Option<u64>,
        exhausted: &Exhausted,
        wall: SystemTime,
    ) {
        let name = event.cluster_name().to_owned();
        let Some(slot) = self.clusters.get_mut(&name) else {
            return;
        };
        slot.counters.faults_budget_exhausted += 1;
        let config = slot.config.clone();
        self.incidents_started += 1;
        let incident_id = workspace::new_incident_id(&name, wall, self.incidents_started);
        log::warn!(
            "cluster={name} fault={} incident {incident_id}: budget_exhausted: {} used; no agent until {}",
            event.event.fault_id,
            exhausted.what,
            until_text(exhausted.until)
        );
        self.note_over_budget(&name, &event.event, exhausted);
        let mut record = IncidentRecord::new(
            incident_id,
            name,
            config.environment.clone(),
            config.labels.clone(),
            event.event,
            event.received_at,
        );
        record.status = status::BUDGET_EXHAUSTED.to_string();
        record.finished_at = Some(workspace::rfc3339(wall));
        self.attach_correlated(correlation, &mut record);
        self.writer.submit(WriteJob::Create {
            root: self.settings.workspace_root.clone(),
            record,
            permissions: None,
        });
        if self.budget.ledger.first_notice(exhausted) {
            self.budget.dirty = true;
            self.budget.notices.push(format!(
                ":money_with_wings: nightcrier triage budget reached: {} used. No agent runs \
                 until {}; new faults are recorded as budget_exhausted incidents.",
                exhausted.what,
                until_text(exhausted.until)
            ));
        }
    }

    /// An agent ran: its time counts against `agent_seconds_per_day`.
    pub(super) fn spend_agent_time(&mut self, duration: std::time::Duration) {
        if self.settings.budget.agent_seconds_per_day.is_some() {
            self.budget
                .ledger
                .record_seconds(duration, SystemTime::now());
            self.budget.dirty = true;
        }
    }

    /// Sends the notices and hands a changed ledger to the writer.
    pub(super) fn tick_budget(&mut self, ctx: &mut crate::stage::StageContext) {
        if !self.budget.notices.is_empty() {
            for text in std::mem::take(&mut self.budget.notices) {
                self.alert(ctx, &text, "budget notice");
            }
        }
        self.save_budget();
    }

    pub(super) fn save_budget(&mut self) {
        if !std::mem::take(&mut self.budget.dirty) {
            return;
        }
        self.writer.submit(WriteJob::Ledger {
            path: self.ledger_path(),
            text: self.budget.ledger.to_json(),
        });
    }

    /// What is left of each ceiling, for the metrics.
    pub(super) fn budget_remaining(&self) -> super::budget::BudgetRemaining {
        self.budget
            .ledger
            .remaining(&self.settings.budget, SystemTime::now())
    }

    pub(super) fn cluster_budget_remaining(
        &self,
        limit: Option<u64>,
        cluster: &str,
    ) -> Option<u64> {
        limit.map(|limit| {
            self.budget
                .ledger
                .cluster_remaining(cluster, limit, SystemTime::now())
        })
    }
}
