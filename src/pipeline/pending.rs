//! `pending.jsonl`: faults that were accepted but not yet started when the daemon stopped.
//! Written at shutdown (by the workspace writer), taken back into the queue at the next start, then renamed to
//! `pending.jsonl.resumed` so a crash before they run cannot lose them and a restart
//! cannot run them twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};

use super::{PendingSave, QueuedFault, TriagePipeline};
use crate::agent::workspace::WriteFailure;
use crate::agent::workspace_writer::WriteJob;
use crate::events::{ClusterEvent, FaultEvent};
use crate::queue::Admission;

pub const PENDING_FILE: &str = "pending.jsonl";
/// Largest `pending.jsonl` written or read: twice the queue's byte bound, room for JSON
/// escapes. Faults beyond it are counted and named in the log, not written.
pub const PENDING_MAX_BYTES: usize = 2 * super::QUEUE_MAX_BYTES;
const RESUMED_SUFFIX: &str = ".resumed";

#[derive(Serialize, Deserialize)]
struct PendingEntry {
    cluster: String,
    received_at_unix: f64,
    fault: FaultEvent,
}

pub fn pending_path(workspace_root: &Path) -> PathBuf {
    workspace_root.join(PENDING_FILE)
}

/// The pending file up to `PENDING_MAX_BYTES`: a larger one (not written by nightcrier)
/// is read up to its last whole line within the bound, and said so.
fn read_bounded(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(PENDING_MAX_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() > PENDING_MAX_BYTES {
        let end = bytes[..PENDING_MAX_BYTES]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        bytes.truncate(end);
        log::error!(
            "{}: larger than {PENDING_MAX_BYTES} bytes; only its first {end} bytes are resumed",
            path.display()
        );
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

impl TriagePipeline {
    /// Hands every fault not started yet to the writer for the pending file: the queued
    /// ones, and those whose workspace is still being made (that workspace is removed
    /// again, its agent never starts). The outcome is taken in `on_pending_written`.
    pub(super) fn save_pending(&mut self) {
        let mut faults: Vec<ClusterEvent> = Vec::new();
        let mut preparing: Vec<_> = self.preparing.values_mut().collect();
        preparing.sort_by(|a, b| a.record.incident_id.cmp(&b.record.incident_id));
        for incident in preparing {
            incident.handed_to_pending = true;
            faults.push(incident.event.clone());
        }
        faults.extend(
            self.queue
                .drain_all()
                .into_iter()
                .map(|(_, QueuedFault { event, .. })| event),
        );
        if faults.is_empty() {
            return;
        }
        let mut text = String::new();
        for event in &faults {
            let entry = PendingEntry {
                cluster: event.cluster_name().to_owned(),
                received_at_unix: event
                    .received_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0),
                fault: event.event.clone(),
            };
            match serde_json::to_string(&entry) {
                Ok(line) if text.len() + line.len() + 1 > PENDING_MAX_BYTES => {
                    log::error!(
                        "cluster={} fault={} not written to {PENDING_FILE}: the file is bounded to {PENDING_MAX_BYTES} bytes",
                        entry.cluster,
                        entry.fault.fault_id
                    );
                }
                Ok(line) => {
                    text.push_str(&line);
                    text.push('\n');
                }
                Err(e) => log::error!(
                    "pending fault {} not serializable: {e}",
                    entry.fault.fault_id
                ),
            }
        }
        let text: Arc<str> = text.into();
        self.pending_save = Some(PendingSave {
            text: Arc::clone(&text),
            faults: text.lines().count(),
            clusters: faults.iter().map(|e| e.cluster_name().to_owned()).collect(),
        });
        self.writer.submit(WriteJob::Pending {
            path: pending_path(&self.settings.workspace_root),
            text,
        });
    }

    /// The writer wrote the pending file, or could not: then the faults go to the log, so
    /// an operator can still see them.
    pub(super) fn on_pending_written(&mut self, path: &Path, written: std::io::Result<()>) {
        let Some(save) = self.pending_save.take() else {
            return;
        };
        let e = match written {
            Ok(()) => {
                return log::info!(
                    "{} queued faults written to {} for the next start",
                    save.faults,
                    path.display()
                )
            }
            Err(e) => e,
        };
        let failure = WriteFailure::of(&e);
        log::error!(
            "could not write {}: {e} (reason={}); the {} queued faults were:",
            path.display(),
            failure.reason(),
            save.clusters.len()
        );
        for line in save.text.lines() {
            log::error!("pending: {line}");
        }
        for cluster in &save.clusters {
            if let Some(slot) = self.clusters.get_mut(cluster) {
                slot.counters.write_failed(failure);
            }
        }
    }

    /// Takes the pending file of the previous run back into the queue.
    pub(super) fn resume_pending(&mut self, now: Instant) {
        let path = pending_path(&self.settings.workspace_root);
        let text = match read_bounded(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) => return log::error!("{}: cannot read: {e}; left in place", path.display()),
        };
        let mut resumed = 0;
        for (index, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let entry: PendingEntry = match serde_json::from_str(line) {
                Ok(entry) => entry,
                Err(e) => {
                    log::error!(
                        "{}:{}: unreadable entry skipped: {e}",
                        path.display(),
                        index + 1
                    );
                    continue;
                }
            };
            let Some(slot) = self.clusters.get(&entry.cluster) else {
                log::warn!(
                    "{}:{}: cluster {:?} is no longer configured; fault {} not resumed",
                    path.display(),
                    index + 1,
                    entry.cluster,
                    entry.fault.fault_id
                );
                continue;
            };
            if !slot.config.triage_ready() {
                log::info!(
                    "cluster={} triage_skipped fault={} (pending from the last run; triage is now off)",
                    entry.cluster,
                    entry.fault.fault_id
                );
                continue;
            }
            let received_at = SystemTime::UNIX_EPOCH
                + Duration::try_from_secs_f64(entry.received_at_unix).unwrap_or_default();
            let event = ClusterEvent {
                cluster: slot.config.clone(),
                event: entry.fault,
                received_at,
            };
            let shard = slot.shard;
            self.dedup
                .check_and_record(&entry.cluster, &event.event.fault_id, now);
            match self.queue.push(
                shard,
                QueuedFault {
                    event,
                    correlation: None,
                },
            ) {
                Admission::Queued => resumed += 1,
                Admission::QueuedDroppedOldest(old) => {
                    resumed += 1;
                    log::warn!(
                        "cluster={} fault={} dropped while resuming: queue full",
                        old.event.cluster_name(),
                        old.event.event.fault_id
                    );
                }
                Admission::Rejected(rejected) => log::warn!(
                    "cluster={} fault={} not resumed: queue full",
                    rejected.event.cluster_name(),
                    rejected.event.event.fault_id
                ),
            }
        }
        let mut done = path.clone().into_os_string();
        done.push(RESUMED_SUFFIX);
        if let Err(e) = std::fs::rename(&path, &done) {
            log::error!(
                "{}: resumed but not renamed ({e}); its faults may run again at the next start",
                path.display()
            );
        }
        log::info!("resumed {resumed} pending faults from {}", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_file_over_its_bound_is_read_up_to_its_last_whole_line_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(PENDING_FILE);
        let line = format!("{}\n", "x".repeat(999));
        let lines = PENDING_MAX_BYTES / line.len() + 10;
        std::fs::write(&path, line.repeat(lines)).unwrap();
        let text = read_bounded(&path).unwrap();
        assert!(text.len() <= PENDING_MAX_BYTES);
        assert_eq!(text.len() % line.len(), 0, "whole lines only");
        assert_eq!(text.lines().count(), PENDING_MAX_BYTES / line.len());
        std::fs::write(&path, line.repeat(3)).unwrap();
        assert_eq!(read_bounded(&path).unwrap(), line.repeat(3));
    }
}
