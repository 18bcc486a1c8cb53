//! One directory per incident: what happened (`incident.json`), what the agent may do
//! (`incident_cluster_permissions.json`), what it said (`agent-*.log`, `output/`) and how
//! the run ended (`result.json`).
//!
//! Every file is written atomically (temp file in the same directory, fsync, rename), so a
//! reader never sees half a JSON document, and every error names the file it concerns.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::agent::permissions::ClusterPermissions;
use crate::config::fnv1a64;
use crate::events::FaultEvent;

pub const INCIDENT_FILE: &str = "incident.json";
pub const PERMISSIONS_FILE: &str = "incident_cluster_permissions.json";
pub const RESULT_FILE: &str = "result.json";
pub const OUTPUT_DIR: &str = "output";
pub const REPORT_FILE: &str = "investigation.md";
pub const STDOUT_LOG: &str = "agent-stdout.log";
pub const STDERR_LOG: &str = "agent-stderr.log";
/// The agent's `HOME` when it runs on this host: its CLI's settings and caches;
/// `run-agent.sh` gives the CLI the same directory.
pub const HOME_DIR: &str = ".agent-home";
/// Mounted as `/tmp` for a confined agent.
pub const TMP_DIR: &str = "tmp";
/// Largest part of the agent's report read back (for the Slack summary).
pub const MAX_REPORT_BYTES: u64 = 1024 * 1024;

/// The values of `IncidentRecord::status` and `AgentResult::status`.
pub mod status {
    pub const QUEUED: &str = "queued";
    pub const RUNNING: &str = "running";
    pub const INVESTIGATED: &str = "investigated";
    pub const AGENT_FAILED: &str = "agent_failed";
    pub const TIMED_OUT: &str = "timed_out";
    /// A silence held for the fault: no agent ran (`silence_id` names the silence).
    pub const SILENCED: &str = "silenced";
    /// Over a spend ceiling (`[budget]`): recorded, no agent started.
    pub const BUDGET_EXHAUSTED: &str = "budget_exhausted";
}

/// A new incident id: `20261124T041500Z-<cluster>-<6 hex>`.
///
/// The hex part is the sequence offset by a per-process salt, so ids from one process never
/// collide (for 16M incidents per second and cluster) and two processes started in the same
/// second almost surely differ. `Workspace::create` refuses an existing directory, so even
/// that remote case cannot mix two incidents.
pub fn new_incident_id(cluster: &str, now: SystemTime, sequence: u64) -> String {
    let salt = process_salt();
    let tag = (salt.wrapping_add(sequence)) & 0x00ff_ffff;
    format!(
        "{}-{}-{tag:06x}",
        compact_utc(now),
        file_safe(cluster, MAX_CLUSTER_PART)
    )
}

fn process_salt() -> u64 {
    // Fixed for the life of the process, so that distinct sequences give distinct tags.
    static SALT: AtomicU64 = AtomicU64::new(0);
    let salt = SALT.load(Ordering::Relaxed);
    if salt != 0 {
        return salt;
    }
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut seed = std::process::id().to_le_bytes().to_vec();
    seed.extend_from_slice(&started.to_le_bytes());
    let fresh = fnv1a64(&seed) | 1;
    match SALT.compare_exchange(0, fresh, Ordering::Relaxed, Ordering::Relaxed) {
        Ok(_) => fresh,
        Err(existing) => existing,
    }
}

/// Cluster names are validated by the configuration (at most 63 characters).
const MAX_CLUSTER_PART: usize = 63;
/// Far above any id `new_incident_id` makes, far below a file name's 255 bytes.
const MAX_ID_LEN: usize = 200;

/// Keeps a name a single safe path component even if an unvalidated one slips through.
fn file_safe(name: &str, max_len: usize) -> String {
    let mut out: String = name
        .chars()
        .take(max_len)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !out.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        out.insert(0, 'x');
    }
    out
}

/// UTC calendar fields of a time; times before 1970 count as the epoch.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
}

fn civil(t: SystemTime) -> Civil {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    // Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's civil_from_days).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3_600,
        minute: rem % 3_600 / 60,
        second: rem % 60,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// When an incident's workspace was made, read from its id (`20261124T041500Z-...`).
/// `None` for a name that is not an incident id: such a directory is not ours.
pub fn incident_time(id: &str) -> Option<SystemTime> {
    let stamp = id.get(..16)?;
    let rest = id.get(16..)?;
    if !rest.starts_with('-') || stamp.as_bytes()[8] != b'T' || stamp.as_bytes()[15] != b'Z' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let text = stamp.get(range)?;
        text.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| text.parse().ok())?
    };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute, second) = (digits(9..11)?, digits(11..13)?, digits(13..15)?);
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs)
        .ok()
        .map(|s| UNIX_EPOCH + std::time::Duration::from_secs(s))
}

/// RFC 3339 in UTC with whole seconds: `2026-11-24T04:15:00Z`.
pub fn rfc3339(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// The basic ISO 8601 form used in incident ids: `20261124T041500Z`.
fn compact_utc(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// `incident.json`: the fault as nightcrier accepted it, and where its triage stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct IncidentRecord {
    pub incident_id: String,
    pub cluster: String,
    pub environment: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub fault: FaultEvent,
    pub status: String,
    pub received_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The silence that held for the fault (status `silenced`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_id: Option<String>,
    /// A correlated incident: every cluster that had the fault, with its fault id and
    /// when it arrived (the incident's own cluster first).
    #[serde(rename = "clusters", default, skip_serializing_if = "Vec::is_empty")]
    pub correlated: Vec<CorrelatedFault>,
}

/// One cluster's fault in a correlated incident.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct CorrelatedFault {
    pub cluster: String,
    pub fault_id: String,
    pub received_at: String,
}

impl IncidentRecord {
    /// A record in status `queued`.
    pub fn new(
        incident_id: String,
        cluster: String,
        environment: Option<String>,
        labels: BTreeMap<String, String>,
        fault: FaultEvent,
        received_at: SystemTime,
    ) -> IncidentRecord {
        IncidentRecord {
            incident_id,
            cluster,
            environment,
            labels,
            fault,
            status: status::QUEUED.to_string(),
            received_at: rfc3339(received_at),
            started_at: None,
            finished_at: None,
            silence_id: None,
            correlated: Vec::new(),
        }
    }
}

/// `result.json`: how one agent run ended.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentResult {
    pub incident_id: String,
    pub cluster: String,
    pub status: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started_at: String,
    pub finished_at: String,
    pub duration_seconds: f64,
    pub failure_reason: Option<String>,
    pub report_present: bool,
}

/// What `incident_cluster_permissions.json` says when the cluster had no preflight.
#[derive(Serialize)]
struct NoPreflight<'a> {
    cluster: &'a str,
    preflight: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub dir: PathBuf,
    pub incident_id: String,
}

impl Workspace {
    /// Creates `root/<incident-id>/` with `output/`, `incident.json` and
    /// `incident_cluster_permissions.json`. The directory must not exist yet. The returned
    /// `dir` is absolute, because agents run with the workspace as their working directory.
    pub fn create(
        root: &Path,
        record: &IncidentRecord,
        permissions: Option<&ClusterPermissions>,
    ) -> io::Result<Workspace> {
        fs::create_dir_all(root).map_err(|e| at("cannot create workspace root", root, e))?;
        let root =
            fs::canonicalize(root).map_err(|e| at("cannot resolve workspace root", root, e))?;
        let id = file_safe(&record.incident_id, MAX_ID_LEN);
        let dir = root.join(&id);
        fs::create_dir(&dir).map_err(|e| at("cannot create workspace", &dir, e))?;
        let output = dir.join(OUTPUT_DIR);
        fs::create_dir(&output).map_err(|e| at("cannot create", &output, e))?;
        let workspace = Workspace {
            dir,
            incident_id: id,
        };
        workspace.update_incident(record)?;
        let permissions_path = workspace.permissions_path();
        match permissions {
            Some(permissions) => write_json_atomic(&permissions_path, permissions)?,
            None => write_json_atomic(
                &permissions_path,
                &NoPreflight {
                    cluster: &record.cluster,
                    preflight: "not_run",
                    reason: "no permission preflight ran for this cluster",
                },
            )?,
        }
        Ok(workspace)
    }

    /// Rewrites `incident.json`.
    pub fn update_incident(&self, record: &IncidentRecord) -> io::Result<()> {
        write_json_atomic(&self.incident_path(), record)
    }

    /// Reads `incident.json` back.
    pub fn read_incident(&self) -> io::Result<IncidentRecord> {
        let path = self.incident_path();
        let text = fs::read(&path).map_err(|e| at("cannot read", &path, e))?;
        serde_json::from_slice(&text).map_err(|e| at("cannot parse", &path, io::Error::other(e)))
    }

    /// Writes `result.json`.
    pub fn write_result(&self, result: &AgentResult) -> io::Result<()> {
        write_json_atomic(&self.result_path(), result)
    }

    pub fn incident_path(&self) -> PathBuf {
        self.dir.join(INCIDENT_FILE)
    }
    pub fn permissions_path(&self) -> PathBuf {
        self.dir.join(PERMISSIONS_FILE)
    }
    pub fn result_path(&self) -> PathBuf {
        self.dir.join(RESULT_FILE)
    }
    pub fn output_dir(&self) -> PathBuf {
        self.dir.join(OUTPUT_DIR)
    }
    /// `output/investigation.md`, the agent's report.
    pub fn report_path(&self) -> PathBuf {
        self.dir.join(OUTPUT_DIR).join(REPORT_FILE)
    }
    pub fn stdout_log_path(&self) -> PathBuf {
        self.dir.join(STDOUT_LOG)
    }
    pub fn stderr_log_path(&self) -> PathBuf {
        self.dir.join(STDERR_LOG)
    }
    pub fn home_dir(&self) -> PathBuf {
        self.dir.join(HOME_DIR)
    }
    pub fn tmp_dir(&self) -> PathBuf {
        self.dir.join(TMP_DIR)
    }

    /// Whether the agent left a non-empty regular file as its report. A symlink does not
    /// count: the report is read later and must not lead outside the workspace.
    pub fn report_present(&self) -> bool {
        fs::symlink_metadata(self.report_path())
            .map(|m| m.is_file() && m.len() > 0)
            .unwrap_or(false)
    }
}

/// Why a workspace write failed, as `nightcrier_workspace_write_errors_total` counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteFailure {
    /// ENOSPC or EDQUOT: the disk (or the quota) is full.
    NoSpace,
    /// Anything else: permissions, a read-only file system, an I/O error.
    Other,
}

impl WriteFailure {
    pub fn of(err: &io::Error) -> WriteFailure {
        let full = err.kind() == io::ErrorKind::StorageFull
            || matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        if full {
            WriteFailure::NoSpace
        } else {
            WriteFailure::Other
        }
    }

    /// The `reason` label.
    pub fn reason(self) -> &'static str {
        match self {
            WriteFailure::NoSpace => "no_space",
            WriteFailure::Other => "io_error",
        }
    }
}

/// Wraps an I/O error with what was being done and to which file.
fn at(what: &str, path: &Path, err: io::Error) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

/// Serializes `value` and writes it to `path` atomically.
pub fn write_json_atomic<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<()> {
    write_atomic(path, &json_bytes(path, value)?)
}

/// `value` as the pretty JSON written to `path`, with a final newline.
pub fn json_bytes<T: Serialize + ?Sized>(path: &Path, value: &T) -> io::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value)
        .map_err(|e| at("cannot serialize", path, io::Error::other(e)))?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// The first `max` bytes of a regular file. The path is the agent's to fill: a symlink is
/// not followed, and a FIFO or a device is refused after an open that does not wait for a
/// writer, so nothing an agent leaves can block the reader.
pub fn read_regular_file(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| at("cannot open", path, e))?;
    let meta = file.metadata().map_err(|e| at("cannot stat", path, e))?;
    if !meta.is_file() {
        return Err(at(
            "cannot read",
            path,
            io::Error::new(io::ErrorKind::InvalidInput, "not a regular file"),
        ));
    }
    let mut bytes = Vec::new();
    file.take(max)
        .read_to_end(&mut bytes)
        .map_err(|e| at("cannot read", path, e))?;
    Ok(bytes)
}

/// Writes `bytes` to a temp file next to `path`, syncs it, and renames it over `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let temp = dir.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(err) = written {
        let _ = fs::remove_file(&temp);
        return Err(at("cannot write", path, err));
    }
    if let Err(err) = fs::rename(&temp, path) {
        let _ = fs::remove_file(&temp);
        return Err(at("cannot replace", path, err));
    }
    // Makes the rename itself durable; a directory that cannot be synced is not an error.
    if let Ok(dir) = File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_secs(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(at_secs(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at_secs(951_782_400)), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(at_secs(1_795_494_900)), "2026-11-24T04:35:00Z");
        assert_eq!(rfc3339(at_secs(4_107_542_399)), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn times_before_the_epoch_format_as_the_epoch() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        assert_eq!(rfc3339(before), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn incident_id_starts_with_compact_utc_time_and_cluster() {
        let id = new_incident_id("prod-eu.1", at_secs(1_795_494_900), 7);
        let (prefix, tag) = id.rsplit_once('-').unwrap();
        assert_eq!(prefix, "20261124T043500Z-prod-eu.1");
        assert_eq!(tag.len(), 6);
        assert!(tag.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn incident_time_reads_back_the_id_it_was_made_with() {
        for secs in [0, 951_782_400, 1_795_494_900, 4_107_542_399] {
            let id = new_incident_id("prod", at_secs(secs), 3);
            assert_eq!(incident_time(&id), Some(at_secs(secs)), "{id}");
        }
        for foreign in [
            "pending.jsonl",
            "lost+found",
            "20261124T041500Z",
            "2026x124T041500Z-a",
        ] {
            assert_eq!(incident_time(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn incident_ids_of_one_process_never_repeat() {
        let now = at_secs(1_795_494_900);
        let ids: std::collections::BTreeSet<String> = (0..10_000)
            .map(|seq| new_incident_id("c", now, seq))
            .collect();
        assert_eq!(ids.len(), 10_000);
    }

    #[test]
    fn incident_id_is_one_safe_path_component_even_for_bad_names() {
        let id = new_incident_id("../etc/pass wd", at_secs(0), 1);
        assert!(!id.contains('/') && !id.contains(' '));
        assert!(!id.starts_with('.'));
    }
}
