//! The silences made through the admin API, in Alertmanager's v2 shape, kept in
//! `<workspace_root>/silences.json` (replaced atomically on every change) so they survive a
//! restart. The admin thread owns the store; every change hands the loop a new compiled
//! set, so the intake never waits on this lock.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::matcher::Matcher;
use super::window::ActiveTime;
use super::Silence;
use crate::agent::workspace::{read_regular_file, write_json_atomic};

/// The file under `workspace_root`.
pub const SILENCES_FILE: &str = "silences.json";
/// Largest `silences.json` read.
const MAX_FILE_BYTES: u64 = 8 * 1024 * 1024;
/// Silences held (active, pending and recently expired together).
pub const MAX_SILENCES: usize = 1000;
/// Matchers in one silence.
const MAX_MATCHERS: usize = 32;
/// Characters of a comment or an author.
const MAX_TEXT_CHARS: usize = 2000;
/// How long an expired silence is still listed (Alertmanager's default retention).
const EXPIRED_KEPT: SignedDuration = SignedDuration::from_hours(5 * 24);

/// A matcher as the API sends and lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiMatcher {
    pub name: String,
    pub value: String,
    pub is_regex: bool,
    #[serde(default = "equal_by_default")]
    pub is_equal: bool,
}

fn equal_by_default() -> bool {
    true
}

/// A silence as posted: `id` present to update one.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostableSilence {
    #[serde(default)]
    pub id: Option<String>,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    #[serde(default)]
    pub created_by: String,
    #[serde(default)]
    pub comment: String,
}

/// A silence as kept and listed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredSilence {
    pub id: String,
    pub matchers: Vec<ApiMatcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub updated_at: Timestamp,
    pub created_by: String,
    pub comment: String,
}

impl StoredSilence {
    /// `pending`, `active` or `expired` at `now`.
    pub fn state(&self, now: Timestamp) -> &'static str {
        if self.ends_at <= now {
            "expired"
        } else if now < self.starts_at {
            "pending"
        } else {
            "active"
        }
    }

    fn compile(&self) -> Result<Silence, String> {
        let matchers = compile_matchers(&self.matchers)?;
        Ok(Silence {
            id: self.id.clone(),
            matchers,
            active: ActiveTime::Between {
                starts_at: self.starts_at,
                ends_at: self.ends_at,
            },
            comment: self.comment.clone(),
            created_by: self.created_by.clone(),
        })
    }
}

fn compile_matchers(matchers: &[ApiMatcher]) -> Result<Vec<Matcher>, String> {
    matchers
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let made = if m.is_regex {
                Matcher::regex(&m.name, &m.value, m.is_equal)
            } else {
                Matcher::exact(&m.name, &m.value, m.is_equal)
            };
            made.map_err(|e| format!("matchers[{i}]: {e}"))
        })
        .collect()
}

/// Why a change was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum StoreError {
    /// The silence is not acceptable (400).
    Invalid(String),
    /// No silence has this id (404).
    NotFound(String),
    /// It could not be written (500).
    Io(String),
}

/// What the loop is told after every change: the compiled silences.
pub type Publish = Box<dyn Fn(Arc<Vec<Silence>>) + Send + Sync>;

pub struct SilenceStore {
    path: PathBuf,
    silences: Mutex<Vec<StoredSilence>>,
    publish: Publish,
}

impl SilenceStore {
    /// The store under `workspace_root`, with what `silences.json` holds (nothing when it
    /// does not exist). A file that cannot be read or parsed is an error naming it.
    pub fn open(workspace_root: &Path, publish: Publish) -> Result<SilenceStore, String> {
        let path = workspace_root.join(SILENCES_FILE);
        let silences = match read_regular_file(&path, MAX_FILE_BYTES + 1) {
            Ok(bytes) if bytes.len() as u64 > MAX_FILE_BYTES => {
                return Err(format!(
                    "{} is larger than {MAX_FILE_BYTES} bytes",
                    path.display()
                ))
            }
            Ok(bytes) => serde_json::from_slice::<Vec<StoredSilence>>(&bytes)
                .map_err(|e| format!("cannot parse {}: {e}", path.display()))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e.to_string()),
        };
        for silence in &silences {
            silence
                .compile()
                .map_err(|e| format!("{}: silence {}: {e}", path.display(), silence.id))?;
        }
        Ok(SilenceStore {
            path,
            silences: Mutex::new(silences),
            publish,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<StoredSilence>> {
        // A panic while holding it left whole values behind: every change is one assignment.
        self.silences.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The silences the intake checks (each was compiled when it was stored).
    pub fn compiled(&self) -> Arc<Vec<Silence>> {
        Arc::new(
            self.lock()
                .iter()
                .filter_map(|s| s.compile().ok())
                .collect(),
        )
    }

    pub fn list(&self) -> Vec<StoredSilence> {
        self.lock().clone()
    }

    pub fn get(&self, id: &str) -> Option<StoredSilence> {
        self.lock().iter().find(|s| s.id == id).cloned()
    }

    /// Creates a silence, or updates the one named by `posted.id` while it has not expired
    /// (an expired one is replaced by a new silence, as Alertmanager does). Returns the id.
    pub fn upsert(&self, posted: PostableSilence, now: Timestamp) -> Result<String, StoreError> {
        check_posted(&posted, now).map_err(StoreError::Invalid)?;
        let mut silences = self.lock();
        let mut next = silences.clone();
        next.retain(|s| s.ends_at + EXPIRED_KEPT > now);
        let existing = match posted.id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => match next.iter().position(|s| s.id == id) {
                Some(at) => Some(at).filter(|&at| next[at].ends_at > now),
                None => return Err(StoreError::NotFound(id.to_string())),
            },
            None => None,
        };
        let id = match existing {
            Some(at) => next[at].id.clone(),
            None => new_id().map_err(|e| StoreError::Io(format!("cannot make an id: {e}")))?,
        };
        let silence = StoredSilence {
            id: id.clone(),
            matchers: posted.matchers,
            // A silence cannot start in the past, as in Alertmanager.
            starts_at: posted.starts_at.max(now),
            ends_at: posted.ends_at,
            updated_at: now,
            created_by: posted.created_by,
            comment: posted.comment,
        };
        match existing {
            Some(at) => next[at] = silence,
            None => {
                if next.len() >= MAX_SILENCES {
                    return Err(StoreError::Invalid(format!(
                        "already {MAX_SILENCES} silences; expire some first"
                    )));
                }
                next.push(silence);
            }
        }
        self.commit(&mut silences, next)?;
        Ok(id)
    }

    /// Ends the silence `id` now. Expiring an expired one changes nothing.
    pub fn expire(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let mut silences = self.lock();
        let mut next = silences.clone();
        let Some(silence) = next.iter_mut().find(|s| s.id == id) else {
            return Err(StoreError::NotFound(id.to_string()));
        };
        if silence.ends_at <= now {
            return Ok(());
        }
        silence.ends_at = now;
        if silence.starts_at > now {
            silence.starts_at = now;
        }
        silence.updated_at = now;
        self.commit(&mut silences, next)
    }

    /// Writes `next`, then makes it the current set and hands it to the loop.
    fn commit(
        &self,
        silences: &mut MutexGuard<'_, Vec<StoredSilence>>,
        next: Vec<StoredSilence>,
    ) -> Result<(), StoreError> {
        if let Some(root) = self.path.parent() {
            std::fs::create_dir_all(root)
                .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", root.display())))?;
        }
        write_json_atomic(&self.path, &next).map_err(|e| StoreError::Io(e.to_string()))?;
        **silences = next;
        let compiled = silences.iter().filter_map(|s| s.compile().ok()).collect();
        (self.publish)(Arc::new(compiled));
        Ok(())
    }
}

fn check_posted(posted: &PostableSilence, now: Timestamp) -> Result<(), String> {
    if posted.matchers.is_empty() {
        return Err("a silence needs at least one matcher".into());
    }
    if posted.matchers.len() > MAX_MATCHERS {
        return Err(format!("more than {MAX_MATCHERS} matchers"));
    }
    let matchers = compile_matchers(&posted.matchers)?;
    if matchers.iter().all(|m| m.matches(Some(""))) {
        return Err("at least one matcher must not match the empty string \
                    (a silence of everything is refused)"
            .into());
    }
    if posted.ends_at <= posted.starts_at {
        return Err(format!(
            "endsAt ({}) is not after startsAt ({})",
            posted.ends_at, posted.starts_at
        ));
    }
    if posted.ends_at <= now {
        return Err(format!("endsAt ({}) is in the past", posted.ends_at));
    }
    for (field, text) in [
        ("comment", &posted.comment),
        ("createdBy", &posted.created_by),
    ] {
        if text.chars().count() > MAX_TEXT_CHARS {
            return Err(format!(
                "{field} is longer than {MAX_TEXT_CHARS} characters"
            ));
        }
    }
    Ok(())
}

/// A random version-4 UUID, as Alertmanager's silence ids are.
fn new_id() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    // SAFETY: `bytes` is writable for its whole length during the call.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if got != bytes.len() as isize {
        return Err(io::Error::last_os_error());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn posted(value: &str, ends: &str) -> PostableSilence {
        PostableSilence {
            id: None,
            matchers: vec![ApiMatcher {
                name: "namespace".into(),
                value: value.into(),
                is_regex: false,
                is_equal: true,
            }],
            starts_at: "2026-12-01T10:00:00Z".parse().unwrap(),
            ends_at: ends.parse().unwrap(),
            created_by: "ops".into(),
            comment: "upgrade".into(),
        }
    }

    #[test]
    fn created_updated_and_expired_silences_persist_and_are_published() {
        let root = tempfile::tempdir().unwrap();
        let published = Arc::new(AtomicUsize::new(0));
        let seen = published.clone();
        let publish: Publish = Box::new(move |set| seen.store(set.len() + 100, Ordering::SeqCst));
        let store = SilenceStore::open(root.path(), publish).unwrap();
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let id = store
            .upsert(posted("shop", "2026-12-01T12:00:00Z"), now)
            .unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(published.load(Ordering::SeqCst), 101);
        let mut update = posted("shop-v2", "2026-12-01T13:00:00Z");
        update.id = Some(id.clone());
        assert_eq!(store.upsert(update, now).unwrap(), id, "updated in place");
        store
            .expire(&id, now + SignedDuration::from_mins(5))
            .unwrap();

        let reopened = SilenceStore::open(root.path(), Box::new(|_| {})).unwrap();
        let kept = reopened.get(&id).unwrap();
        assert_eq!(kept.matchers[0].value, "shop-v2");
        assert_eq!(kept.ends_at, now + SignedDuration::from_mins(5));
        assert_eq!(kept.state(now + SignedDuration::from_mins(6)), "expired");
        let mut unknown = posted("x", "2026-12-01T13:00:00Z");
        unknown.id = Some("no-such-id".into());
        assert_eq!(
            reopened.upsert(unknown, now),
            Err(StoreError::NotFound("no-such-id".into()))
        );
    }

    #[test]
    fn silences_of_everything_past_ends_and_bad_regexes_are_refused() {
        let root = tempfile::tempdir().unwrap();
        let store = SilenceStore::open(root.path(), Box::new(|_| {})).unwrap();
        let now: Timestamp = "2026-12-01T10:00:00Z".parse().unwrap();
        let refused = |p: PostableSilence| match store.upsert(p, now) {
            Err(StoreError::Invalid(message)) => message,
            other => panic!("{other:?}"),
        };
        assert!(refused(posted("", "2026-12-01T12:00:00Z")).contains("empty string"));
        assert!(refused(posted("shop", "2026-12-01T09:00:00Z")).contains("not after"));
        let mut bad = posted("shop", "2026-12-01T12:00:00Z");
        bad.matchers[0].is_regex = true;
        bad.matchers[0].value = "(".into();
        assert!(refused(bad).contains("matchers[0]"));
        assert!(!root.path().join(SILENCES_FILE).exists(), "nothing written");
    }
}
