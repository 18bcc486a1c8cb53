//! Workspace retention: incident directories under the workspace root are removed, oldest
//! first, while any bound of `[workspace]` is passed (age, count, bytes). A running
//! incident is never removed, nor a directory whose name is not an incident id (the root
//! also holds `pending.jsonl` and whatever an operator put there).
//!
//! Sizing and removing directories is slow file I/O, so it runs on its own worker thread,
//! which wakes the loop with each report. It is not the workspace writer's: a sweep of
//! many large workspaces can take long, and no incident's writes wait for it.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

use crate::agent::workspace::{incident_time, status, INCIDENT_FILE};
use crate::config::WorkspaceConfig;

/// A workspace made this shortly before a sweep was asked for may belong to an agent the
/// request does not list yet; it is left alone.
const RECENT: Duration = Duration::from_secs(2);
/// Entries counted per workspace at most; a workspace with more counts what was seen.
const MAX_ENTRIES_PER_WORKSPACE: usize = 200_000;

/// One incident directory as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub created: SystemTime,
    pub bytes: u64,
    /// Running, or too new to judge: never removed.
    pub protected: bool,
}

/// Which candidates to remove (indices into `candidates`), oldest first, so that what
/// stays is within `bounds` as far as the protected ones allow.
pub fn plan_removals(
    candidates: &[Candidate],
    bounds: &WorkspaceConfig,
    now: SystemTime,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        (candidates[a].created, &candidates[a].name)
            .cmp(&(candidates[b].created, &candidates[b].name))
    });
    let mut count = candidates.len();
    let mut bytes: u64 = candidates.iter().map(|c| c.bytes).sum();
    let mut remove = Vec::new();
    for index in order {
        let candidate = &candidates[index];
        if candidate.protected {
            continue;
        }
        let age = now.duration_since(candidate.created).unwrap_or_default();
        if age > bounds.max_age || count > bounds.max_incidents || bytes > bounds.max_bytes {
            remove.push(index);
            count -= 1;
            bytes = bytes.saturating_sub(candidate.bytes);
        }
    }
    remove
}

/// A sweep, as the loop asks for it.
#[derive(Debug, Clone)]
pub struct SweepRequest {
    pub root: PathBuf,
    pub bounds: WorkspaceConfig,
    /// Incident ids of the running agents.
    pub running: HashSet<String>,
    /// How long a workspace whose `incident.json` says `queued` or `running` may still
    /// belong to a live agent (of this daemon before a restart, or of another process
    /// sharing the root): the longest run, `agent.timeout` plus `agent.kill_grace`, and a
    /// margin. Past it, such a workspace is a leftover of a crash and counts as finished.
    pub running_grace: Duration,
    pub requested_at: SystemTime,
}

/// What a sweep did.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub removed: Vec<String>,
    pub kept: usize,
    pub kept_bytes: u64,
    pub errors: Vec<String>,
}

/// Disk use of a directory tree in bytes (allocated blocks), without following symlinks.
fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut seen = 0usize;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        total = total.saturating_add(meta.blocks().saturating_mul(512));
        seen += 1;
        if seen >= MAX_ENTRIES_PER_WORKSPACE {
            break;
        }
        if meta.is_dir() {
            if let Ok(entries) = fs::read_dir(&path) {
                stack.extend(entries.filter_map(|e| e.ok().map(|e| e.path())));
            }
        }
    }
    total
}

/// Whether an `incident.json` says its triage has not finished (`queued` or `running`). An
/// unreadable one does not: a half-made workspace is not kept for it.
fn says_unfinished(incident: &Path) -> bool {
    #[derive(serde::Deserialize)]
    struct Status {
        status: String,
    }
    let Ok(text) = fs::read(incident) else {
        return false;
    };
    serde_json::from_slice::<Status>(&text)
        .is_ok_and(|s| s.status == status::QUEUED || s.status == status::RUNNING)
}

/// Runs one sweep: lists the incident directories, sizes them, removes what the plan says.
pub fn sweep(request: &SweepRequest) -> SweepReport {
    let mut report = SweepReport::default();
    let entries = match fs::read_dir(&request.root) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return report,
        Err(e) => {
            report
                .errors
                .push(format!("cannot list {}: {e}", request.root.display()));
            return report;
        }
    };
    let recent = request
        .requested_at
        .checked_sub(RECENT)
        .unwrap_or(request.requested_at);
    let mut candidates = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some(created) = incident_time(&name) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path();
        let maybe_live = created + request.running_grace > request.requested_at
            && says_unfinished(&path.join(INCIDENT_FILE));
        candidates.push(Candidate {
            bytes: disk_usage(&path),
            protected: request.running.contains(&name) || created >= recent || maybe_live,
            name,
            created,
        });
    }
    let plan = plan_removals(&candidates, &request.bounds, request.requested_at);
    let mut kept: HashSet<usize> = (0..candidates.len()).collect();
    // Oldest first, as planned: if removal stops halfway, the newest are what is left.
    for index in plan {
        let candidate = &candidates[index];
        let dir = request.root.join(&candidate.name);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {
                kept.remove(&index);
                report.removed.push(candidate.name.clone());
            }
            Err(e) => report
                .errors
                .push(format!("cannot remove {}: {e}", dir.display())),
        }
    }
    report.kept = kept.len();
    report.kept_bytes = kept.iter().map(|&i| candidates[i].bytes).sum();
    report
}

/// The retention worker: runs sweeps one after another and wakes the loop after each.
pub struct RetentionWorker {
    requests: Option<mpsc::Sender<SweepRequest>>,
    results: mpsc::Receiver<SweepReport>,
    thread: Option<JoinHandle<()>>,
}

impl RetentionWorker {
    pub fn start(waker: Arc<mio::Waker>) -> io::Result<RetentionWorker> {
        let (request_tx, request_rx) = mpsc::channel::<SweepRequest>();
        let (result_tx, result_rx) = mpsc::channel();
        let thread = thread::Builder::new()
            .name("workspace-retention".into())
            .spawn(move || {
                for request in request_rx {
                    if result_tx.send(sweep(&request)).is_err() {
                        break;
                    }
                    if let Err(err) = waker.wake() {
                        log::warn!("workspace retention: cannot wake the event loop: {err}");
                    }
                }
            })?;
        Ok(RetentionWorker {
            requests: Some(request_tx),
            results: result_rx,
            thread: Some(thread),
        })
    }

    /// Queues a sweep; false if the worker has stopped.
    pub fn submit(&self, request: SweepRequest) -> bool {
        self.requests
            .as_ref()
            .is_some_and(|tx| tx.send(request).is_ok())
    }

    /// Reports finished since the last call, without blocking.
    pub fn results(&self) -> impl Iterator<Item = SweepReport> + '_ {
        self.results.try_iter()
    }
}

impl Drop for RetentionWorker {
    /// Lets the running sweep finish, then joins.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    const DAY: u64 = 86_400;

    fn candidate(name: &str, day: u64, bytes: u64) -> Candidate {
        Candidate {
            name: name.into(),
            created: UNIX_EPOCH + Duration::from_secs(day * DAY),
            bytes,
            protected: false,
        }
    }

    fn bounds(age_days: u64, count: usize, bytes: u64) -> WorkspaceConfig {
        WorkspaceConfig {
            max_age: Duration::from_secs(age_days * DAY),
            max_incidents: count,
            max_bytes: bytes,
            sweep_interval: Duration::from_secs(60),
        }
    }

    fn names(candidates: &[Candidate], picked: Vec<usize>) -> Vec<&str> {
        picked
            .into_iter()
            .map(|i| candidates[i].name.as_str())
            .collect()
    }

    #[test]
    fn too_many_removes_the_oldest_first() {
        let c = [
            candidate("c", 3, 1),
            candidate("a", 1, 1),
            candidate("d", 4, 1),
            candidate("b", 2, 1),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(5 * DAY);
        assert_eq!(
            names(&c, plan_removals(&c, &bounds(30, 2, 1 << 30), now)),
            ["a", "b"]
        );
    }

    #[test]
    fn too_old_removes_every_workspace_past_the_age() {
        let c = [
            candidate("old", 1, 1),
            candidate("older", 0, 1),
            candidate("new", 9, 1),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(10 * DAY);
        assert_eq!(
            names(&c, plan_removals(&c, &bounds(5, 100, 1 << 30), now)),
            ["older", "old"]
        );
    }

    #[test]
    fn too_big_removes_until_the_rest_fits() {
        let c = [
            candidate("a", 1, 600),
            candidate("b", 2, 300),
            candidate("c", 3, 300),
        ];
        let now = UNIX_EPOCH + Duration::from_secs(4 * DAY);
        assert_eq!(
            names(&c, plan_removals(&c, &bounds(30, 100, 700), now)),
            ["a"]
        );
        assert_eq!(
            names(&c, plan_removals(&c, &bounds(30, 100, 500), now)),
            ["a", "b"]
        );
    }

    #[test]
    fn protected_workspaces_stay_even_when_oldest() {
        let mut c = [
            candidate("running", 0, 1),
            candidate("a", 1, 1),
            candidate("b", 2, 1),
        ];
        c[0].protected = true;
        let now = UNIX_EPOCH + Duration::from_secs(3 * DAY);
        assert_eq!(
            names(&c, plan_removals(&c, &bounds(30, 1, 1 << 30), now)),
            ["a", "b"]
        );
    }

    #[test]
    fn within_bounds_nothing_is_removed() {
        let c = [candidate("a", 1, 10), candidate("b", 2, 10)];
        let now = UNIX_EPOCH + Duration::from_secs(3 * DAY);
        assert!(plan_removals(&c, &bounds(30, 2, 20), now).is_empty());
    }
}
