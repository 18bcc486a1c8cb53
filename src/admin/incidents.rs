//! The incidents as the workspace layout holds them (`<workspace_root>/<incident-id>/`
//! with `incident.json`, `result.json`, `incident_cluster_permissions.json` and
//! `output/investigation.md`, see [`crate::agent::workspace`]), read for the admin pages.
//!
//! An agent can write anything inside its own workspace, links included, so every file is
//! opened relative to its directory without following a symbolic link at any step
//! (`openat` with `O_NOFOLLOW`), must be a regular file, and is read up to a bound. The
//! incident id in a URL is checked to be one (see [`is_incident_id`]) before it names a
//! directory.

use std::ffi::CString;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::agent::workspace::{
    incident_time, AgentResult, IncidentRecord, INCIDENT_FILE, OUTPUT_DIR, PERMISSIONS_FILE,
    REPORT_FILE, RESULT_FILE,
};

/// Largest JSON file read from a workspace.
const MAX_JSON_BYTES: u64 = 1024 * 1024;
/// Largest report shown; the same bound as the report read for Slack.
pub const MAX_REPORT_BYTES: u64 = 1024 * 1024;
/// Longest incident id accepted (ids nightcrier makes are under 90 bytes).
const MAX_ID_LEN: usize = 200;

/// Whether `text` is an incident id as nightcrier makes them
/// (`20261124T041500Z-<cluster>-<6 hex>`): letters, digits, `.`, `_` and `-` only, starting
/// with the UTC time. Such a text is one path component and never `.` or `..`.
pub fn is_incident_id(text: &str) -> bool {
    text.len() <= MAX_ID_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && incident_time(text).is_some()
}

/// Orders incident ids by age: the UTC second they start with, then (within one second)
/// their hex tag, which one process counts up, then the whole id.
fn age_key(id: &str) -> (&str, &str, &str) {
    let stamp = id.get(..16).unwrap_or(id);
    let tag = id.rsplit_once('-').map_or("", |(_, tag)| tag);
    (stamp, tag, id)
}

/// One row of the incident list.
#[derive(Debug)]
pub struct IncidentSummary {
    pub id: String,
    /// `incident.json`, or why it could not be read.
    pub record: Result<IncidentRecord, String>,
    /// `result.json` once the run ended.
    pub result: Option<AgentResult>,
}

/// One page of the list, newest first.
#[derive(Debug)]
pub struct IncidentPage {
    pub incidents: Vec<IncidentSummary>,
    /// Incident workspaces under the root in all.
    pub total: usize,
    /// The id to list from for the next (older) page, when there is one.
    pub older_than: Option<String>,
}

/// The investigation report of an incident.
#[derive(Debug)]
pub struct Report {
    pub markdown: String,
    /// The report was longer than [`MAX_REPORT_BYTES`]; the rest is not shown.
    pub cut: bool,
}

/// Everything the incident page shows. A file that is missing is `None`; one that could
/// not be read or parsed is an error naming it.
#[derive(Debug)]
pub struct IncidentDetail {
    pub id: String,
    pub record: Result<IncidentRecord, String>,
    pub result: Option<Result<AgentResult, String>>,
    pub report: Option<Result<Report, String>>,
    pub permissions: Option<Result<serde_json::Value, String>>,
}

/// The workspaces under one `workspace_root`.
#[derive(Debug, Clone)]
pub struct IncidentStore {
    root: PathBuf,
}

impl IncidentStore {
    pub fn new(root: PathBuf) -> IncidentStore {
        IncidentStore { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Up to `limit` incidents, newest first, older than `older_than` when given. A root
    /// that does not exist yet holds no incidents.
    pub fn list(&self, older_than: Option<&str>, limit: usize) -> io::Result<IncidentPage> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok(IncidentPage {
                    incidents: Vec::new(),
                    total: 0,
                    older_than: None,
                })
            }
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot list {}: {e}", self.root.display()),
                ))
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|name| is_incident_id(name))
            .collect();
        let total = ids.len();
        ids.sort_unstable_by(|a, b| age_key(b).cmp(&age_key(a)));
        let start = older_than.map_or(0, |before| {
            let before = age_key(before);
            ids.partition_point(|id| age_key(id) >= before)
        });
        let page: Vec<String> = ids.iter().skip(start).take(limit).cloned().collect();
        let older_than = (start + page.len() < ids.len())
            .then(|| page.last().cloned())
            .flatten();
        let incidents = page
            .into_iter()
            .map(|id| {
                let dir = WorkspaceDir::open(&self.root, &id);
                let record = dir
                    .as_ref()
                    .map_err(Clone::clone)
                    .and_then(|dir| dir.json::<IncidentRecord>(&[INCIDENT_FILE]))
                    .and_then(|found| found.ok_or_else(|| format!("no {INCIDENT_FILE}")));
                let result = dir
                    .ok()
                    .and_then(|dir| dir.json::<AgentResult>(&[RESULT_FILE]).ok().flatten());
                IncidentSummary { id, record, result }
            })
            .collect();
        Ok(IncidentPage {
            incidents,
            total,
            older_than,
        })
    }

    /// The incident `id`, or `None` when there is no such workspace (or `id` is not an id).
    pub fn get(&self, id: &str) -> Option<IncidentDetail> {
        if !is_incident_id(id) {
            return None;
        }
        let dir = match WorkspaceDir::open(&self.root, id) {
            Ok(dir) => dir,
            Err(_) if !self.root.join(id).exists() => return None,
            Err(e) => {
                return Some(IncidentDetail {
                    id: id.to_string(),
                    record: Err(e),
                    result: None,
                    report: None,
                    permissions: None,
                })
            }
        };
        let record = dir
            .json::<IncidentRecord>(&[INCIDENT_FILE])
            .and_then(|found| found.ok_or_else(|| format!("no {INCIDENT_FILE}")));
        let report = dir
            .bytes(&[OUTPUT_DIR, REPORT_FILE], MAX_REPORT_BYTES)
            .transpose()
            .map(|read| {
                read.map(|(bytes, cut)| Report {
                    markdown: String::from_utf8_lossy(&bytes).into_owned(),
                    cut,
                })
            });
        Some(IncidentDetail {
            id: id.to_string(),
            record,
            result: dir.json::<AgentResult>(&[RESULT_FILE]).transpose(),
            report,
            permissions: dir
                .json::<serde_json::Value>(&[PERMISSIONS_FILE])
                .transpose(),
        })
    }
}

/// An incident's directory, opened without following a link.
struct WorkspaceDir {
    fd: OwnedFd,
    id: String,
}

impl WorkspaceDir {
    fn open(root: &Path, id: &str) -> Result<WorkspaceDir, String> {
        let dir = File::open(root)
            .map_err(|e| format!("cannot open {}: {e}", root.display()))
            .map(OwnedFd::from)?;
        let fd = open_at(&dir, id, true).map_err(|e| format!("cannot open {id}: {e}"))?;
        Ok(WorkspaceDir {
            fd,
            id: id.to_string(),
        })
    }

    /// The file at `path` (components below the workspace), up to `limit` bytes, and whether
    /// it was longer; `None` when it does not exist.
    fn bytes(&self, path: &[&str], limit: u64) -> Result<Option<(Vec<u8>, bool)>, String> {
        let shown = path.join("/");
        let named = |e: io::Error| format!("cannot read {}/{shown}: {e}", self.id);
        let mut dir: Option<OwnedFd> = None;
        let (file_name, dirs) = path
            .split_last()
            .ok_or_else(|| named(io::ErrorKind::InvalidInput.into()))?;
        for name in dirs {
            let parent = dir.as_ref().unwrap_or(&self.fd);
            match open_at(parent, name, true) {
                Ok(fd) => dir = Some(fd),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(named(e)),
            }
        }
        let parent = dir.as_ref().unwrap_or(&self.fd);
        let file = match open_at(parent, file_name, false) {
            Ok(fd) => File::from(fd),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(named(e)),
        };
        let metadata = file.metadata().map_err(named)?;
        if !metadata.is_file() {
            return Err(format!("{}/{shown} is not a regular file", self.id));
        }
        let mut bytes = Vec::new();
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(named)?;
        let cut = bytes.len() as u64 > limit;
        bytes.truncate(limit as usize);
        Ok(Some((bytes, cut)))
    }

    /// The JSON file at `path`, parsed; `None` when it does not exist.
    fn json<T: serde::de::DeserializeOwned>(&self, path: &[&str]) -> Result<Option<T>, String> {
        let Some((bytes, cut)) = self.bytes(path, MAX_JSON_BYTES)? else {
            return Ok(None);
        };
        let shown = path.join("/");
        if cut {
            return Err(format!(
                "{}/{shown} is larger than {MAX_JSON_BYTES} bytes",
                self.id
            ));
        }
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| format!("cannot parse {}/{shown}: {e}", self.id))
    }
}

/// `openat(dir, name)` read-only, never following a symbolic link; `directory` asks for a
/// directory.
fn open_at(dir: &impl AsRawFd, name: &str, directory: bool) -> io::Result<OwnedFd> {
    let name = CString::new(Path::new(name).as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    if directory {
        flags |= libc::O_DIRECTORY;
    }
    // SAFETY: `name` is a NUL-terminated string that outlives the call; the descriptor
    // returned, when valid, is owned by nobody else.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened by this call and is not owned elsewhere.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    const ID: &str = "20261124T052240Z-tri-000-c54e92";

    fn record(id: &str) -> String {
        format!(
            "{{\"incident_id\":\"{id}\",\"cluster\":\"tri-000\",\"environment\":null,\"labels\":{{}},\
             \"fault\":{{\"faultId\":\"f1\",\"faultType\":\"PodCrash\",\"severity\":\"critical\",\
             \"resource\":{{\"kind\":\"Pod\",\"name\":\"api\"}}}},\"status\":\"running\",\
             \"received_at\":\"2026-11-24T05:22:40Z\",\"started_at\":null,\"finished_at\":null}}"
        )
    }

    fn workspace(root: &Path, id: &str) -> PathBuf {
        let dir = root.join(id);
        std::fs::create_dir_all(dir.join("output")).unwrap();
        std::fs::write(dir.join(INCIDENT_FILE), record(id)).unwrap();
        dir
    }

    #[test]
    fn incident_ids_are_single_safe_components() {
        assert!(is_incident_id(ID));
        for bad in [
            "",
            "..",
            ".",
            "../20261124T052240Z-a-000000",
            "20261124T052240Z-a/../../etc",
            "20261124T052240Z-a%2f..",
            "20261124T052240Z-a\0",
            "pending.jsonl",
            "x20261124T052240Z-a-000000",
        ] {
            assert!(!is_incident_id(bad), "{bad:?}");
        }
        assert!(!is_incident_id(&format!("{ID}{}", "a".repeat(200))));
    }

    #[test]
    fn list_is_newest_first_and_pages_by_id() {
        let root = tempfile::tempdir().unwrap();
        let ids = [
            "20261124T052240Z-a-000001",
            "20261124T052241Z-b-000002",
            "20261125T000000Z-a-000003",
        ];
        for id in ids {
            workspace(root.path(), id);
        }
        std::fs::write(root.path().join("pending.jsonl"), "{}").unwrap();
        std::fs::create_dir(root.path().join("lost+found")).unwrap();
        let store = IncidentStore::new(root.path().to_path_buf());
        let first = store.list(None, 2).unwrap();
        assert_eq!(first.total, 3);
        let shown: Vec<&str> = first.incidents.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(shown, [ids[2], ids[1]]);
        assert_eq!(first.older_than.as_deref(), Some(ids[1]));
        assert_eq!(
            first.incidents[0].record.as_ref().unwrap().incident_id,
            ids[2]
        );
        let second = store.list(first.older_than.as_deref(), 2).unwrap();
        let shown: Vec<&str> = second.incidents.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(shown, [ids[0]]);
        assert_eq!(second.older_than, None);
    }

    #[test]
    fn within_one_second_the_later_tag_is_newer_whatever_the_cluster() {
        let root = tempfile::tempdir().unwrap();
        let ids = ["20261124T052240Z-b-000001", "20261124T052240Z-a-000002"];
        for id in ids {
            workspace(root.path(), id);
        }
        let store = IncidentStore::new(root.path().to_path_buf());
        let page = store.list(None, 1).unwrap();
        assert_eq!(page.incidents[0].id, ids[1]);
        let older = store.list(page.older_than.as_deref(), 1).unwrap();
        assert_eq!(older.incidents[0].id, ids[0]);
    }

    #[test]
    fn a_root_not_made_yet_has_no_incidents() {
        let root = tempfile::tempdir().unwrap();
        let store = IncidentStore::new(root.path().join("later"));
        assert_eq!(store.list(None, 10).unwrap().total, 0);
    }

    #[test]
    fn missing_files_are_none_and_bad_ones_are_named_errors() {
        let root = tempfile::tempdir().unwrap();
        let dir = workspace(root.path(), ID);
        std::fs::write(dir.join(RESULT_FILE), "{not json").unwrap();
        let store = IncidentStore::new(root.path().to_path_buf());
        let detail = store.get(ID).unwrap();
        assert_eq!(detail.record.unwrap().cluster, "tri-000");
        assert!(detail.report.is_none());
        assert!(detail.permissions.is_none());
        let error = detail.result.unwrap().unwrap_err();
        assert!(error.contains("result.json"), "{error}");
        assert!(store.get("20261124T052240Z-none-000000").is_none());
        assert!(store.get("../etc").is_none());
    }

    #[test]
    fn links_planted_in_a_workspace_are_never_followed() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "api_key = \"s3cret\"").unwrap();
        let dir = workspace(root.path(), ID);
        symlink(
            outside.path().join("secret"),
            dir.join("output").join(REPORT_FILE),
        )
        .unwrap();
        symlink(outside.path().join("secret"), dir.join(RESULT_FILE)).unwrap();
        // A whole workspace that is a link, and an output directory that is one.
        let other = "20261124T052241Z-tri-000-c54e93";
        symlink(outside.path(), root.path().join(other)).unwrap();
        let third = "20261124T052242Z-tri-000-c54e94";
        let third_dir = workspace(root.path(), third);
        std::fs::remove_dir(third_dir.join("output")).unwrap();
        std::fs::create_dir(outside.path().join("output")).unwrap();
        std::fs::write(outside.path().join("output").join(REPORT_FILE), "s3cret").unwrap();
        symlink(outside.path().join("output"), third_dir.join("output")).unwrap();

        let store = IncidentStore::new(root.path().to_path_buf());
        let detail = store.get(ID).unwrap();
        assert!(detail.report.unwrap().is_err());
        assert!(detail.result.unwrap().is_err());
        assert!(store.get(other).unwrap().record.is_err());
        assert!(store.get(third).unwrap().report.unwrap().is_err());
        let page = store.list(None, 10).unwrap();
        assert_eq!(page.total, 3);
        assert!(page.incidents.iter().all(|i| i.result.is_none()));
    }

    #[test]
    fn a_long_report_is_cut_at_the_bound() {
        let root = tempfile::tempdir().unwrap();
        let dir = workspace(root.path(), ID);
        let long = "x".repeat(MAX_REPORT_BYTES as usize + 10);
        std::fs::write(dir.join("output").join(REPORT_FILE), long).unwrap();
        let report = IncidentStore::new(root.path().to_path_buf())
            .get(ID)
            .unwrap()
            .report
            .unwrap()
            .unwrap();
        assert!(report.cut);
        assert_eq!(report.markdown.len(), MAX_REPORT_BYTES as usize);
    }
}
