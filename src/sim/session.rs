//! The MCP session table of one simulated server process.

use super::faults::random_u64;
use super::stream::StreamCtl;
use std::collections::HashMap;
use std::sync::Arc;

/// Sessions kept per cluster. The fork's sessions never expire; this bound is the
/// simulator's own safety limit (the oldest session is forgotten, as if it had been
/// deleted), so that a client that initializes in a loop cannot grow the table without
/// bound.
pub(crate) const MAX_SESSIONS: usize = 10_000;

/// Log levels in increasing severity, as MCP (syslog) orders them.
const LEVELS: [&str; 8] = [
    "debug",
    "info",
    "notice",
    "warning",
    "error",
    "critical",
    "alert",
    "emergency",
];

pub(crate) fn level_rank(level: &str) -> Option<usize> {
    LEVELS.iter().position(|l| *l == level)
}

/// The GET stream attached to a session, owned by the thread of connection `conn_id`.
pub(crate) struct StreamLink {
    pub conn_id: u64,
    pub ctl: Arc<StreamCtl>,
}

pub(crate) struct Session {
    /// Rank of the level set with `logging/setLevel`; until then nothing is logged to the
    /// session, as the Go server does.
    pub level: Option<usize>,
    pub stream: Option<StreamLink>,
    created_seq: u64,
}

impl Session {
    /// Whether a notification at `level` reaches this session's client.
    pub(crate) fn logs(&self, level: &str) -> bool {
        match (self.level, level_rank(level)) {
            (Some(min), Some(rank)) => rank >= min,
            _ => false,
        }
    }
}

#[derive(Default)]
pub(crate) struct SessionTable {
    map: HashMap<String, Session>,
    next_seq: u64,
}

impl SessionTable {
    /// Creates a session and returns its id; may evict (and return) the oldest session.
    pub(crate) fn create(&mut self) -> (String, Option<Session>) {
        let evicted = if self.map.len() >= MAX_SESSIONS {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, s)| s.created_seq)
                .map(|(id, _)| id.clone());
            oldest.and_then(|id| self.map.remove(&id))
        } else {
            None
        };
        let id = new_session_id();
        self.next_seq += 1;
        self.map.insert(
            id.clone(),
            Session {
                level: None,
                stream: None,
                created_seq: self.next_seq,
            },
        );
        (id, evicted)
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Session> {
        self.map.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Session> {
        self.map.get_mut(id)
    }

    pub(crate) fn contains(&self, id: &str) -> bool {
        self.map.contains_key(id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Session> {
        self.map.remove(id)
    }

    /// Forgets every session, returning them so their streams can be ended.
    pub(crate) fn take_all(&mut self) -> Vec<Session> {
        self.map.drain().map(|(_, s)| s).collect()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &Session)> {
        self.map.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&String, &mut Session)> {
        self.map.iter_mut()
    }

    /// Detaches the stream of `id` if connection `conn_id` still owns it.
    pub(crate) fn detach_stream(&mut self, id: &str, conn_id: u64) -> bool {
        match self.map.get_mut(id) {
            Some(s) if s.stream.as_ref().is_some_and(|l| l.conn_id == conn_id) => {
                s.stream = None;
                true
            }
            _ => false,
        }
    }
}

/// 32 lowercase hex digits: visible ASCII, unguessable enough for a test server.
fn new_session_id() -> String {
    format!("{:016x}{:016x}", random_u64(), random_u64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_logged_before_set_level() {
        let mut t = SessionTable::default();
        let (id, _) = t.create();
        assert!(!t.get_mut(&id).unwrap().logs("critical"));
        t.get_mut(&id).unwrap().level = level_rank("warning");
        let s = t.get_mut(&id).unwrap();
        assert!(s.logs("warning") && s.logs("error"));
        assert!(!s.logs("info"));
    }

    #[test]
    fn session_ids_are_unique_visible_ascii() {
        let mut t = SessionTable::default();
        let (a, _) = t.create();
        let (b, _) = t.create();
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| (0x21..=0x7e).contains(&c)));
    }

    #[test]
    fn table_is_bounded_by_evicting_the_oldest() {
        let mut t = SessionTable::default();
        let (first, _) = t.create();
        for _ in 1..MAX_SESSIONS {
            assert!(t.create().1.is_none());
        }
        let (_, evicted) = t.create();
        assert!(evicted.is_some());
        assert!(!t.contains(&first));
        assert_eq!(t.iter().count(), MAX_SESSIONS);
    }

    #[test]
    fn detach_only_by_the_owning_connection() {
        let mut t = SessionTable::default();
        let (id, _) = t.create();
        let (ctl, _rx) = StreamCtl::new();
        t.get_mut(&id).unwrap().stream = Some(StreamLink { conn_id: 7, ctl });
        assert!(!t.detach_stream(&id, 8));
        assert!(t.detach_stream(&id, 7));
        assert!(!t.detach_stream(&id, 7));
    }
}
