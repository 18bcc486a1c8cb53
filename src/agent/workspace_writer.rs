//! The workspace writer: one thread that makes incident workspaces, writes their JSON files
//! (each an fsync of the file and one of its directory), reads the agent's report back for
//! the Slack summary, and writes `pending.jsonl` at shutdown. On eMMC or SD storage an
//! fsync can take tens of milliseconds or more; on the loop thread every cluster would wait
//! with it.
//!
//! Jobs go in through a bounded channel and run one after another in the order given, so an
//! incident's files change in the order the loop decided them. Each result comes back
//! through a channel and the loop's waker, like the other side threads' results. A job the
//! channel has no room for waits in the writer's backlog on the loop side, which is bounded
//! by the incidents in flight (at most `max_concurrent_agents` being made, and the ones that
//! ended and are being written). On exit, the thread is given what is left and finishes it
//! within a bound; a thread stuck on a dead disk is left behind rather than waited for.

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::agent::permissions::ClusterPermissions;
use crate::agent::workspace::{
    json_bytes, read_regular_file, write_atomic, AgentResult, IncidentRecord, Workspace,
    INCIDENT_FILE, MAX_REPORT_BYTES,
};
use crate::notify::report::{extract_report, InvestigationSummary};
use crate::notify::slack_thread::{SlackThreadRecord, MAX_THREAD_FILE_BYTES, THREAD_FILE};

/// Incident directories looked at for Slack threads at start, at most.
const MAX_THREAD_SCAN: usize = 100_000;
/// Largest incident.json read back for a resolved incident's message.
const MAX_INCIDENT_BYTES: u64 = 1024 * 1024;
/// The agent's report, relative to its workspace.
const OUTPUT_REPORT: &str = "output/investigation.md";

/// Jobs the channel holds before the loop keeps them in its backlog.
pub const WRITE_QUEUE_CAPACITY: usize = 64;

/// How long dropping the writer waits for the thread to finish what it was given. The loop
/// already waited for it within the shutdown timeout; this only covers what came after.
pub const EXIT_DRAIN_LIMIT: Duration = Duration::from_secs(2);

/// A piece of workspace I/O, as the loop asks for it.
#[derive(Debug)]
pub enum WriteJob {
    /// Make `root/<incident-id>/` with `output/`, `incident.json` and
    /// `incident_cluster_permissions.json`. What a failed attempt made is removed again.
    Create {
        root: PathBuf,
        record: IncidentRecord,
        permissions: Option<ClusterPermissions>,
    },
    /// The run ended: the final `incident.json`, then `result.json`; then, when asked, the
    /// report is read and summarized for Slack.
    Finish {
        workspace: Workspace,
        record: IncidentRecord,
        result: AgentResult,
        summarize_report: bool,
    },
    /// Rewrite `incident.json` of a workspace asked for earlier (a correlated incident
    /// that another cluster joined).
    Record {
        dir: PathBuf,
        record: IncidentRecord,
    },
    /// Replace the budget ledger (`budget.json`), making the root if needed.
    Ledger { path: PathBuf, text: String },
    /// Remove a workspace no agent will run in (made while the daemon was stopping).
    Discard { dir: PathBuf },
    /// Write `pending.jsonl` (the faults still queued at shutdown).
    Pending { path: PathBuf, text: Arc<str> },
    /// Write the incident's Slack thread (`slack.json`) into its workspace, and the
    /// `resolved` file with this text when a run found the resource healthy again.
    SlackThread {
        workspace: PathBuf,
        record: SlackThreadRecord,
        resolved: Option<String>,
    },
    /// Read every workspace's `slack.json` under `root` (at start, in app mode).
    ScanSlackThreads { root: PathBuf },
    /// Look for the operator's `resolved` file in these workspaces (thread key, workspace).
    CheckResolved { threads: Vec<(String, PathBuf)> },
}

/// What a job did. Every error names the file it concerns.
#[derive(Debug)]
pub enum WriteDone {
    Created {
        incident_id: String,
        workspace: io::Result<Workspace>,
    },
    Finished {
        incident_id: String,
        errors: Vec<io::Error>,
        /// `None` when not asked for, or when no report could be read.
        summary: Option<InvestigationSummary>,
    },
    Recorded {
        incident_id: String,
        written: io::Result<()>,
    },
    Ledger {
        path: PathBuf,
        written: io::Result<()>,
    },
    Discarded {
        dir: PathBuf,
        removed: io::Result<()>,
    },
    Pending {
        path: PathBuf,
        written: io::Result<()>,
    },
    /// The incidents among those asked about that are marked resolved.
    Resolved { incidents: Vec<ResolvedIncident> },
    SlackThread {
        workspace: PathBuf,
        written: io::Result<()>,
    },
    SlackThreads {
        records: Vec<FoundThread>,
        /// Files that were there but could not be read or were not thread records.
        unreadable: usize,
    },
}

/// A thread found in a workspace at start.
#[derive(Debug)]
pub struct FoundThread {
    pub workspace: PathBuf,
    pub record: SlackThreadRecord,
    /// The operator marked the incident resolved (a `resolved` file) already.
    pub resolved: bool,
}

/// An incident the operator marked resolved, with what its message needs.
#[derive(Debug)]
pub struct ResolvedIncident {
    pub thread_key: String,
    pub workspace: PathBuf,
    pub record: IncidentRecord,
    pub summary: Option<InvestigationSummary>,
}

/// The file an operator creates in an incident workspace to mark it resolved.
pub const RESOLVED_FILE: &str = "resolved";

/// The disk as the writer uses it: [`Disk`] in the daemon; tests stand in for it to watch,
/// hold or fail the writes.
pub trait WorkspaceFiles: Send {
    fn create(
        &mut self,
        root: &Path,
        record: &IncidentRecord,
        permissions: Option<&ClusterPermissions>,
    ) -> io::Result<Workspace>;
    /// Replaces `path` with `bytes`, atomically and durably.
    fn replace(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// The first `max` bytes of a regular file; anything else (a FIFO, a device, a
    /// symlink) is an error, never a wait.
    fn read_regular(&mut self, path: &Path, max: u64) -> io::Result<Vec<u8>>;
    /// Removes a directory tree; one that is not there is no error.
    fn remove_dir(&mut self, dir: &Path) -> io::Result<()>;
}

/// The real file system.
pub struct Disk;

impl WorkspaceFiles for Disk {
    fn create(
        &mut self,
        root: &Path,
        record: &IncidentRecord,
        permissions: Option<&ClusterPermissions>,
    ) -> io::Result<Workspace> {
        Workspace::create(root, record, permissions)
    }

    fn replace(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        write_atomic(path, bytes)
    }

    fn read_regular(&mut self, path: &Path, max: u64) -> io::Result<Vec<u8>> {
        read_regular_file(path, max)
    }

    fn remove_dir(&mut self, dir: &Path) -> io::Result<()> {
        match fs::remove_dir_all(dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io::Error::new(
                e.kind(),
                format!("cannot remove {}: {e}", dir.display()),
            )),
            _ => Ok(()),
        }
    }
}

/// Runs one job.
fn perform(files: &mut dyn WorkspaceFiles, job: WriteJob) -> WriteDone {
    match job {
        WriteJob::Create {
            root,
            record,
            permissions,
        } => {
            let workspace = files.create(&root, &record, permissions.as_ref());
            if let Err(e) = &workspace {
                // A full disk must not also leave half-made incidents; an existing directory
                // is someone else's.
                if e.kind() != io::ErrorKind::AlreadyExists {
                    if let Err(e) = files.remove_dir(&root.join(&record.incident_id)) {
                        log::warn!("the partial workspace stays: {e}");
                    }
                }
            }
            WriteDone::Created {
                incident_id: record.incident_id,
                workspace,
            }
        }
        WriteJob::Finish {
            workspace,
            record,
            result,
            summarize_report,
        } => {
            let mut errors = Vec::new();
            let incident = json_bytes(&workspace.incident_path(), &record)
                .and_then(|bytes| files.replace(&workspace.incident_path(), &bytes));
            errors.extend(incident.err());
            let result = json_bytes(&workspace.result_path(), &result)
                .and_then(|bytes| files.replace(&workspace.result_path(), &bytes));
            errors.extend(result.err());
            let summary = summarize_report
                .then(|| files.read_regular(&workspace.report_path(), MAX_REPORT_BYTES))
                .and_then(Result::ok)
                .map(|report| extract_report(&String::from_utf8_lossy(&report)));
            WriteDone::Finished {
                incident_id: workspace.incident_id,
                errors,
                summary,
            }
        }
        WriteJob::Record { dir, record } => {
            let path = dir.join(INCIDENT_FILE);
            let written = json_bytes(&path, &record).and_then(|bytes| files.replace(&path, &bytes));
            WriteDone::Recorded {
                incident_id: record.incident_id,
                written,
            }
        }
        WriteJob::Ledger { path, text } => {
            let written = path
                .parent()
                .map_or(Ok(()), |root| {
                    fs::create_dir_all(root).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot create {}: {e}", root.display()))
                    })
                })
                .and_then(|()| files.replace(&path, text.as_bytes()));
            WriteDone::Ledger { path, written }
        }
        WriteJob::Discard { dir } => {
            let removed = files.remove_dir(&dir);
            WriteDone::Discarded { dir, removed }
        }
        WriteJob::Pending { path, text } => {
            let written = path
                .parent()
                .map_or(Ok(()), |root| {
                    fs::create_dir_all(root).map_err(|e| {
                        io::Error::new(e.kind(), format!("cannot create {}: {e}", root.display()))
                    })
                })
                .and_then(|()| files.replace(&path, text.as_bytes()));
            WriteDone::Pending { path, written }
        }
        WriteJob::SlackThread {
            workspace,
            record,
            resolved,
        } => {
            let mut written = files.replace(&workspace.join(THREAD_FILE), &record.to_bytes());
            if let (Ok(()), Some(note)) = (&written, resolved) {
                written = files.replace(&workspace.join(RESOLVED_FILE), note.as_bytes());
            }
            WriteDone::SlackThread { workspace, written }
        }
        WriteJob::ScanSlackThreads { root } => scan_slack_threads(files, &root),
        WriteJob::CheckResolved { threads } => check_resolved(files, threads),
    }
}

/// The workspaces holding a `resolved` file (a regular file, not a link), each with its
/// incident record and the report's summary read back.
fn check_resolved(files: &mut dyn WorkspaceFiles, threads: Vec<(String, PathBuf)>) -> WriteDone {
    let mut incidents = Vec::new();
    for (thread_key, workspace) in threads {
        let marked = fs::symlink_metadata(workspace.join(RESOLVED_FILE)).is_ok_and(|m| m.is_file());
        if !marked {
            continue;
        }
        let record = files
            .read_regular(&workspace.join(INCIDENT_FILE), MAX_INCIDENT_BYTES)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<IncidentRecord>(&bytes).ok());
        let Some(record) = record else {
            log::warn!(
                "{}: marked resolved, but its incident.json cannot be read; not updated",
                workspace.display()
            );
            continue;
        };
        let summary = files
            .read_regular(&workspace.join(OUTPUT_REPORT), MAX_REPORT_BYTES)
            .ok()
            .map(|report| extract_report(&String::from_utf8_lossy(&report)));
        incidents.push(ResolvedIncident {
            thread_key,
            workspace,
            record,
            summary,
        });
    }
    WriteDone::Resolved { incidents }
}

/// Every readable `slack.json` in the incident directories under `root`; symlinks and
/// anything that is not a thread record are skipped.
fn scan_slack_threads(files: &mut dyn WorkspaceFiles, root: &Path) -> WriteDone {
    let mut records = Vec::new();
    let mut unreadable = 0;
    let entries = match fs::read_dir(root) {
        Ok(entries) => entries,
        Err(_) => {
            return WriteDone::SlackThreads {
                records,
                unreadable,
            }
        }
    };
    for entry in entries.take(MAX_THREAD_SCAN).flatten() {
        if !entry.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = entry.path().join(THREAD_FILE);
        match files.read_regular(&path, MAX_THREAD_FILE_BYTES) {
            Ok(bytes) => match SlackThreadRecord::parse(&bytes) {
                Ok(record) => records.push(FoundThread {
                    resolved: fs::symlink_metadata(entry.path().join(RESOLVED_FILE))
                        .is_ok_and(|m| m.is_file()),
                    workspace: entry.path(),
                    record,
                }),
                Err(e) => {
                    log::warn!("{}: {e}; not used", path.display());
                    unreadable += 1;
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(_) => unreadable += 1,
        }
    }
    WriteDone::SlackThreads {
        records,
        unreadable,
    }
}

/// Which job a result answers, kept while the job runs: a job that panics still gets one.
enum JobKey {
    Create(String),
    Finish(String),
    Record(String),
    Ledger(PathBuf),
    Discard(PathBuf),
    Pending(PathBuf),
    SlackThread(PathBuf),
    ScanSlackThreads,
    CheckResolved,
}

impl JobKey {
    fn of(job: &WriteJob) -> JobKey {
        match job {
            WriteJob::Create { record, .. } => JobKey::Create(record.incident_id.clone()),
            WriteJob::Finish { workspace, .. } => JobKey::Finish(workspace.incident_id.clone()),
            WriteJob::Record { record, .. } => JobKey::Record(record.incident_id.clone()),
            WriteJob::Ledger { path, .. } => JobKey::Ledger(path.clone()),
            WriteJob::Discard { dir } => JobKey::Discard(dir.clone()),
            WriteJob::Pending { path, .. } => JobKey::Pending(path.clone()),
            WriteJob::SlackThread { workspace, .. } => JobKey::SlackThread(workspace.clone()),
            WriteJob::ScanSlackThreads { .. } => JobKey::ScanSlackThreads,
            WriteJob::CheckResolved { .. } => JobKey::CheckResolved,
        }
    }

    /// The result of a job that panicked (a bug: the panic message is in the log).
    fn failed(self) -> WriteDone {
        let err = |what: &str| io::Error::other(format!("the workspace writer failed on {what}"));
        match self {
            JobKey::Create(incident_id) => WriteDone::Created {
                workspace: Err(err(&format!("incident {incident_id}"))),
                incident_id,
            },
            JobKey::Finish(incident_id) => WriteDone::Finished {
                errors: vec![err(&format!("incident {incident_id}"))],
                incident_id,
                summary: None,
            },
            JobKey::Record(incident_id) => WriteDone::Recorded {
                written: Err(err(&format!("incident {incident_id}"))),
                incident_id,
            },
            JobKey::Ledger(path) => WriteDone::Ledger {
                written: Err(err(&path.display().to_string())),
                path,
            },
            JobKey::Discard(dir) => WriteDone::Discarded {
                removed: Err(err(&dir.display().to_string())),
                dir,
            },
            JobKey::Pending(path) => WriteDone::Pending {
                written: Err(err(&path.display().to_string())),
                path,
            },
            JobKey::SlackThread(workspace) => WriteDone::SlackThread {
                written: Err(err(&workspace.display().to_string())),
                workspace,
            },
            JobKey::ScanSlackThreads => WriteDone::SlackThreads {
                records: Vec::new(),
                unreadable: 0,
            },
            JobKey::CheckResolved => WriteDone::Resolved {
                incidents: Vec::new(),
            },
        }
    }
}

/// Runs one job; a panic becomes a failed result instead of a dead thread.
fn perform_guarded(files: &mut dyn WorkspaceFiles, job: WriteJob) -> WriteDone {
    let key = JobKey::of(&job);
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| perform(files, job)))
        .unwrap_or_else(|_| key.failed())
}

/// The thread and its two channels.
struct Worker {
    jobs: Option<SyncSender<WriteJob>>,
    done: Receiver<WriteDone>,
    /// Disconnects when the thread ends.
    exited: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

/// The loop's handle on the workspace writer.
pub struct WorkspaceWriter {
    worker: Option<Worker>,
    /// Runs the jobs on the caller's thread when there is no worker thread (the real disk
    /// once a thread was started).
    inline: Box<dyn WorkspaceFiles>,
    inline_done: VecDeque<WriteDone>,
    /// Wakes the loop when a job ran inline, so its result is taken like a worker's.
    waker: Option<Arc<mio::Waker>>,
    backlog: VecDeque<WriteJob>,
    /// Jobs given to the thread and not answered yet.
    in_flight: usize,
    exit_limit: Duration,
}

impl WorkspaceWriter {
    /// Starts the writer thread on `files`; it wakes the loop with each result.
    pub fn start(
        files: Box<dyn WorkspaceFiles>,
        waker: Arc<mio::Waker>,
    ) -> io::Result<WorkspaceWriter> {
        let (job_tx, job_rx) = mpsc::sync_channel::<WriteJob>(WRITE_QUEUE_CAPACITY);
        let (done_tx, done_rx) = mpsc::channel();
        let (exited_tx, exited_rx) = mpsc::channel::<()>();
        let thread_waker = Arc::clone(&waker);
        let thread = thread::Builder::new()
            .name("workspace-writer".into())
            .spawn(move || {
                let _exited = exited_tx;
                let mut files = files;
                for job in job_rx {
                    if done_tx.send(perform_guarded(files.as_mut(), job)).is_err() {
                        return;
                    }
                    if let Err(err) = thread_waker.wake() {
                        log::warn!("workspace writer: cannot wake the event loop: {err}");
                    }
                }
            })?;
        Ok(WorkspaceWriter {
            worker: Some(Worker {
                jobs: Some(job_tx),
                done: done_rx,
                exited: exited_rx,
                thread: Some(thread),
            }),
            inline: Box::new(Disk),
            inline_done: VecDeque::new(),
            waker: Some(waker),
            backlog: VecDeque::new(),
            in_flight: 0,
            exit_limit: EXIT_DRAIN_LIMIT,
        })
    }

    /// A writer without a thread: each job runs when it is submitted, on the caller's
    /// thread, and its result is taken with the next [`results`](Self::results). For a
    /// pipeline that has no loop yet, and the fallback when the thread cannot start.
    pub fn on_this_thread(
        files: Box<dyn WorkspaceFiles>,
        waker: Option<Arc<mio::Waker>>,
    ) -> WorkspaceWriter {
        WorkspaceWriter {
            worker: None,
            inline: files,
            inline_done: VecDeque::new(),
            waker,
            backlog: VecDeque::new(),
            in_flight: 0,
            exit_limit: EXIT_DRAIN_LIMIT,
        }
    }

    /// How long dropping the writer waits for its thread (default [`EXIT_DRAIN_LIMIT`]).
    pub fn with_exit_limit(mut self, limit: Duration) -> WorkspaceWriter {
        self.exit_limit = limit;
        self
    }

    /// Whether the jobs run on a thread of their own.
    pub fn is_threaded(&self) -> bool {
        self.worker.is_some()
    }

    /// Queues a job; never blocks. Jobs run in the order submitted.
    pub fn submit(&mut self, job: WriteJob) {
        if self.worker.is_none() {
            return self.run_inline(job);
        }
        self.backlog.push_back(job);
        self.hand_over();
    }

    /// Results since the last call, in the order the jobs ran; gives the thread more of the
    /// backlog as it makes room. Never blocks.
    pub fn results(&mut self) -> Vec<WriteDone> {
        if self.is_idle() {
            // The loop asks on every turn; with nothing out, that costs nothing.
            return Vec::new();
        }
        let mut out: Vec<WriteDone> = self.inline_done.drain(..).collect();
        if let Some(worker) = &self.worker {
            let before = out.len();
            out.extend(worker.done.try_iter());
            self.in_flight -= out.len() - before;
        }
        self.hand_over();
        out.extend(self.inline_done.drain(..));
        out
    }

    /// Nothing queued, nothing running, no result waiting.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.backlog.is_empty() && self.inline_done.is_empty()
    }

    /// The channel is full and jobs wait in the backlog: the disk is slower than the work.
    pub fn is_backed_up(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Moves backlog jobs into the channel while it has room.
    fn hand_over(&mut self) {
        let Some(jobs) = self.worker.as_ref().and_then(|w| w.jobs.as_ref()) else {
            return;
        };
        while let Some(job) = self.backlog.pop_front() {
            match jobs.try_send(job) {
                Ok(()) => self.in_flight += 1,
                Err(TrySendError::Full(job)) => {
                    self.backlog.push_front(job);
                    return;
                }
                Err(TrySendError::Disconnected(job)) => {
                    self.backlog.push_front(job);
                    return self.lose_thread();
                }
            }
        }
    }

    /// The thread is gone. It cannot end while the writer lives (a job that panics still
    /// gets its result); should it all the same, what it held is lost, and from then on jobs
    /// run on the caller's thread.
    fn lose_thread(&mut self) {
        log::error!(
            "workspace writer thread stopped; {} workspace jobs were lost, the rest run on \
             the loop thread",
            self.in_flight
        );
        self.worker = None;
        self.in_flight = 0;
        for job in std::mem::take(&mut self.backlog) {
            self.run_inline(job);
        }
    }

    fn run_inline(&mut self, job: WriteJob) {
        self.inline_done
            .push_back(perform_guarded(self.inline.as_mut(), job));
        if let Some(waker) = &self.waker {
            if let Err(err) = waker.wake() {
                log::warn!("workspace writer: cannot wake the event loop: {err}");
            }
        }
    }
}

impl WriteDone {
    /// The errors of a result nobody will handle any more, for the log.
    fn errors(&self) -> Vec<&io::Error> {
        match self {
            WriteDone::Created { workspace, .. } => workspace.as_ref().err().into_iter().collect(),
            WriteDone::Finished { errors, .. } => errors.iter().collect(),
            WriteDone::Discarded { removed, .. } => removed.as_ref().err().into_iter().collect(),
            WriteDone::Pending { written, .. }
            | WriteDone::Recorded { written, .. }
            | WriteDone::Ledger { written, .. }
            | WriteDone::SlackThread { written, .. } => {
                written.as_ref().err().into_iter().collect()
            }
            WriteDone::SlackThreads { .. } | WriteDone::Resolved { .. } => Vec::new(),
        }
    }
}

impl Drop for WorkspaceWriter {
    /// Hands the backlog to the thread and lets it finish, for at most the exit limit; a
    /// thread still busy then is left behind. Errors of results nobody takes are logged.
    fn drop(&mut self) {
        let Some(mut worker) = self.worker.take() else {
            return;
        };
        let deadline = Instant::now() + self.exit_limit;
        let mut late = Vec::new();
        if let Some(jobs) = worker.jobs.take() {
            'backlog: while let Some(mut job) = self.backlog.pop_front() {
                loop {
                    match jobs.try_send(job) {
                        Ok(()) => break,
                        Err(TrySendError::Disconnected(_)) => break 'backlog,
                        Err(TrySendError::Full(back)) => {
                            job = back;
                            // A result means the thread took a job: there is room again.
                            let left = deadline.saturating_duration_since(Instant::now());
                            match worker.done.recv_timeout(left) {
                                Ok(done) => late.push(done),
                                Err(_) => {
                                    self.backlog.push_front(job);
                                    break 'backlog;
                                }
                            }
                        }
                    }
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let finished = matches!(
            worker.exited.recv_timeout(left),
            Err(RecvTimeoutError::Disconnected)
        );
        late.extend(worker.done.try_iter());
        for done in &late {
            for err in done.errors() {
                log::error!("workspace writer: {err}");
            }
        }
        if finished {
            if let Some(thread) = worker.thread.take() {
                let _ = thread.join();
            }
        } else {
            log::error!(
                "workspace writer: still busy after {:?} at exit ({} jobs not started); \
                 not waiting for it",
                self.exit_limit,
                self.backlog.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::workspace::{new_incident_id, status, INCIDENT_FILE, RESULT_FILE};
    use crate::events::FaultEvent;
    use std::sync::Mutex;
    use std::time::SystemTime;

    const WAIT: Duration = Duration::from_secs(20);

    fn record(cluster: &str, sequence: u64) -> IncidentRecord {
        IncidentRecord::new(
            new_incident_id(cluster, SystemTime::now(), sequence),
            cluster.into(),
            None,
            Default::default(),
            FaultEvent {
                fault_id: format!("f-{sequence}"),
                ..FaultEvent::default()
            },
            SystemTime::now(),
        )
    }

    fn result_for(record: &IncidentRecord) -> AgentResult {
        AgentResult {
            incident_id: record.incident_id.clone(),
            cluster: record.cluster.clone(),
            status: status::INVESTIGATED.into(),
            exit_code: Some(0),
            signal: None,
            started_at: "2026-12-01T00:00:00Z".into(),
            finished_at: "2026-12-01T00:00:01Z".into(),
            duration_seconds: 1.0,
            failure_reason: None,
            report_present: true,
        }
    }

    /// The real disk, with every call recorded (which call, on what, on which thread), and
    /// a gate each call waits at while the test holds it closed.
    #[derive(Clone, Default)]
    struct Watched {
        calls: Arc<Mutex<Vec<(String, thread::ThreadId)>>>,
        gate: Arc<(Mutex<bool>, std::sync::Condvar)>,
    }

    impl Watched {
        fn hold(&self) {
            *self.gate.0.lock().unwrap() = true;
        }
        fn release(&self) {
            *self.gate.0.lock().unwrap() = false;
            self.gate.1.notify_all();
        }
        fn pass(&self, call: String) {
            self.calls
                .lock()
                .unwrap()
                .push((call, thread::current().id()));
            let (held, changed) = &*self.gate;
            let mut held = held.lock().unwrap();
            while *held {
                held = changed.wait(held).unwrap();
            }
        }
        fn calls(&self) -> Vec<String> {
            self.calls
                .lock()
                .unwrap()
                .iter()
                .map(|(c, _)| c.clone())
                .collect()
        }
    }

    impl WorkspaceFiles for Watched {
        fn create(
            &mut self,
            root: &Path,
            record: &IncidentRecord,
            permissions: Option<&ClusterPermissions>,
        ) -> io::Result<Workspace> {
            self.pass(format!("create {}", record.incident_id));
            Disk.create(root, record, permissions)
        }
        fn replace(&mut self, path: &Path, bytes: &[u8]) -> io::Result<()> {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            self.pass(format!("replace {name}"));
            Disk.replace(path, bytes)
        }
        fn read_regular(&mut self, path: &Path, max: u64) -> io::Result<Vec<u8>> {
            self.pass("read report".into());
            Disk.read_regular(path, max)
        }
        fn remove_dir(&mut self, dir: &Path) -> io::Result<()> {
            self.pass("remove".into());
            Disk.remove_dir(dir)
        }
    }

    fn loop_waker() -> (mio::Poll, Arc<mio::Waker>) {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), crate::token::WAKER).unwrap());
        (poll, waker)
    }

    /// Takes results until `count` have come, waiting on the waker (bounded).
    fn collect(writer: &mut WorkspaceWriter, poll: &mut mio::Poll, count: usize) -> Vec<WriteDone> {
        let mut events = mio::Events::with_capacity(4);
        let deadline = Instant::now() + WAIT;
        let mut out = writer.results();
        while out.len() < count && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            poll.poll(&mut events, Some(left)).unwrap();
            out.extend(writer.results());
        }
        out
    }

    #[test]
    fn jobs_run_on_the_writer_thread_in_the_order_given_and_wake_the_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (mut poll, waker) = loop_waker();
        let files = Watched::default();
        let mut writer = WorkspaceWriter::start(Box::new(files.clone()), waker).unwrap();
        let records: Vec<IncidentRecord> = (0..3).map(|i| record("prod", i)).collect();
        for record in &records {
            writer.submit(WriteJob::Create {
                root: dir.path().to_path_buf(),
                record: record.clone(),
                permissions: None,
            });
        }
        let created = collect(&mut writer, &mut poll, 3);
        let ids: Vec<&str> = created
            .iter()
            .map(|done| match done {
                WriteDone::Created {
                    incident_id,
                    workspace: Ok(_),
                } => incident_id.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        let wanted: Vec<&str> = records.iter().map(|r| r.incident_id.as_str()).collect();
        assert_eq!(ids, wanted);
        assert!(writer.is_idle());

        let WriteDone::Created {
            workspace: Ok(workspace),
            ..
        } = &created[0]
        else {
            unreachable!()
        };
        fs::write(
            workspace.report_path(),
            "## Summary\nThe pod ran out of memory.\n",
        )
        .unwrap();
        let mut ended = records[0].clone();
        ended.status = status::INVESTIGATED.into();
        writer.submit(WriteJob::Finish {
            workspace: workspace.clone(),
            record: ended.clone(),
            result: result_for(&ended),
            summarize_report: true,
        });
        let finished = collect(&mut writer, &mut poll, 1);
        let [WriteDone::Finished {
            errors, summary, ..
        }] = finished.as_slice()
        else {
            panic!("{finished:?}");
        };
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(
            summary.as_ref().and_then(|s| s.summary.as_deref()),
            Some("The pod ran out of memory.")
        );
        assert_eq!(workspace.read_incident().unwrap().status, "investigated");
        assert!(workspace.result_path().is_file());

        let calls = files.calls.lock().unwrap().clone();
        assert!(calls
            .iter()
            .all(|(_, thread)| *thread != thread::current().id()));
        let last: Vec<&str> = calls[calls.len() - 3..]
            .iter()
            .map(|(c, _)| c.as_str())
            .collect();
        assert_eq!(
            last,
            [
                &format!("replace {INCIDENT_FILE}"),
                &format!("replace {RESULT_FILE}"),
                "read report"
            ]
        );
    }

    #[test]
    fn a_failed_write_comes_back_naming_its_file_and_leaves_no_partial_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let (mut poll, waker) = loop_waker();
        let mut writer = WorkspaceWriter::start(Box::new(Disk), waker).unwrap();
        // The root is a regular file: nothing can be made under it, even by root.
        let root = dir.path().join("not-a-directory");
        fs::write(&root, "x").unwrap();
        writer.submit(WriteJob::Create {
            root: root.clone(),
            record: record("prod", 1),
            permissions: None,
        });
        let path = dir.path().join("gone").join("pending.jsonl");
        fs::write(dir.path().join("gone"), "x").unwrap();
        writer.submit(WriteJob::Pending {
            path: path.clone(),
            text: "{\"fault\":1}\n".into(),
        });
        let done = collect(&mut writer, &mut poll, 2);
        match &done[0] {
            WriteDone::Created {
                workspace: Err(e), ..
            } => assert!(e.to_string().contains(&root.display().to_string()), "{e}"),
            other => panic!("{other:?}"),
        }
        match &done[1] {
            WriteDone::Pending {
                written: Err(e), ..
            } => assert!(e.to_string().contains("gone"), "{e}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn jobs_beyond_the_channel_wait_in_the_backlog_in_order_and_none_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (mut poll, waker) = loop_waker();
        let files = Watched::default();
        files.hold();
        let mut writer = WorkspaceWriter::start(Box::new(files.clone()), waker).unwrap();
        let count = WRITE_QUEUE_CAPACITY + 10;
        let records: Vec<IncidentRecord> = (0..count as u64).map(|i| record("c", i)).collect();
        for record in &records {
            writer.submit(WriteJob::Create {
                root: dir.path().to_path_buf(),
                record: record.clone(),
                permissions: None,
            });
        }
        // The thread holds one job; the channel is full; the rest wait, and submit returned.
        assert!(writer.is_backed_up());
        assert!(!writer.is_idle());
        files.release();
        let done = collect(&mut writer, &mut poll, count);
        let ids: Vec<String> = done
            .into_iter()
            .map(|d| match d {
                WriteDone::Created { incident_id, .. } => incident_id,
                other => panic!("{other:?}"),
            })
            .collect();
        let wanted: Vec<String> = records.into_iter().map(|r| r.incident_id).collect();
        assert_eq!(ids, wanted);
        assert!(writer.is_idle() && !writer.is_backed_up());
    }

    #[test]
    fn dropping_the_writer_finishes_every_job_it_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let (_poll, waker) = loop_waker();
        let files = Watched::default();
        files.hold();
        let mut writer = WorkspaceWriter::start(Box::new(files.clone()), waker)
            .unwrap()
            .with_exit_limit(WAIT);
        let count = WRITE_QUEUE_CAPACITY + 5;
        for i in 0..count as u64 {
            writer.submit(WriteJob::Create {
                root: dir.path().to_path_buf(),
                record: record("c", i),
                permissions: None,
            });
        }
        assert!(writer.is_backed_up());
        let releaser = {
            let files = files.clone();
            thread::spawn(move || files.release())
        };
        drop(writer);
        releaser.join().unwrap();
        let made = fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(made, count, "every accepted job ran before the writer went");
        assert_eq!(files.calls().len(), count);
    }

    #[test]
    fn a_writer_stuck_on_the_disk_does_not_hold_up_its_drop() {
        let dir = tempfile::tempdir().unwrap();
        let (_poll, waker) = loop_waker();
        let files = Watched::default();
        files.hold();
        let mut writer = WorkspaceWriter::start(Box::new(files.clone()), waker)
            .unwrap()
            .with_exit_limit(Duration::from_millis(50));
        writer.submit(WriteJob::Create {
            root: dir.path().to_path_buf(),
            record: record("c", 1),
            permissions: None,
        });
        let (dropped_tx, dropped_rx) = mpsc::channel();
        thread::spawn(move || {
            drop(writer);
            let _ = dropped_tx.send(());
        });
        let dropped = dropped_rx.recv_timeout(WAIT);
        files.release();
        assert!(dropped.is_ok(), "drop waited for a stuck disk");
    }

    #[test]
    fn without_a_thread_jobs_run_at_once_and_their_results_wait_for_the_caller() {
        let dir = tempfile::tempdir().unwrap();
        let files = Watched::default();
        let mut writer = WorkspaceWriter::on_this_thread(Box::new(files.clone()), None);
        assert!(!writer.is_threaded());
        writer.submit(WriteJob::Create {
            root: dir.path().to_path_buf(),
            record: record("c", 1),
            permissions: None,
        });
        assert_eq!(files.calls().len(), 1);
        assert!(!writer.is_idle(), "a result is waiting");
        assert!(matches!(
            writer.results().as_slice(),
            [WriteDone::Created {
                workspace: Ok(_),
                ..
            }]
        ));
        assert!(writer.is_idle());
    }

    #[test]
    fn a_fifo_where_the_report_belongs_is_no_report_and_no_wait() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("investigation.md");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path and a mode.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let err = Disk.read_regular(&fifo, MAX_REPORT_BYTES).unwrap_err();
        assert!(err.to_string().contains("investigation.md"), "{err}");
        let link = dir.path().join("link.md");
        std::os::unix::fs::symlink("/etc/hostname", &link).unwrap();
        assert!(Disk.read_regular(&link, MAX_REPORT_BYTES).is_err());
        let report = dir.path().join("report.md");
        fs::write(&report, "abcdef").unwrap();
        assert_eq!(Disk.read_regular(&report, 3).unwrap(), b"abc");
    }
}
