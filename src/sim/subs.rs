//! The event subscriptions of one simulated server process: the fork's
//! `EventSubscriptionManager` table (id → session, mode, filters, createdAt, degraded).

use super::faults::{random_u64, FaultSpec, Mode};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

pub(crate) struct Subscription {
    pub id: String,
    pub session: String,
    pub mode: Mode,
    /// The filters as the fork's `ToMap` shows them (only the ones given).
    pub filters: Map<String, Value>,
    pub created_at: SystemTime,
    pub degraded: bool,
    /// faultId → when it was last sent, for the per-subscription dedup window.
    sent: HashMap<String, Instant>,
}

/// faultIds remembered per subscription before the oldest are forgotten; bounds memory for
/// long runs with every fault distinct.
const DEDUP_KEPT: usize = 4096;

impl Subscription {
    /// Whether `spec` passes this subscription's dedup window (and records it if so).
    pub(crate) fn admit_fault(&mut self, spec: &FaultSpec, window: Duration, now: Instant) -> bool {
        if let Some(at) = self.sent.get(&spec.fault_id) {
            if now.duration_since(*at) < window {
                return false;
            }
        }
        if self.sent.len() >= DEDUP_KEPT {
            self.sent.retain(|_, at| now.duration_since(*at) < window);
            if self.sent.len() >= DEDUP_KEPT {
                let oldest = self.sent.iter().min_by_key(|(_, at)| **at);
                if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                    self.sent.remove(&k);
                }
            }
        }
        self.sent.insert(spec.fault_id.clone(), now);
        true
    }

    /// Whether an events-mode notification of `event` passes the subscription's filters
    /// (the fork's `SubscriptionFilters.Matches`; `labelSelector` matches everything
    /// because simulated objects carry no labels).
    pub(crate) fn matches_event(&self, e: &super::faults::SimEvent) -> bool {
        let s = |k: &str| self.filters.get(k).and_then(Value::as_str);
        let namespace = e.namespace.unwrap_or("default");
        if let Some(list) = self.filters.get("namespaces").and_then(Value::as_array) {
            if !list.iter().any(|n| n.as_str() == Some(namespace)) {
                return false;
            }
        }
        s("involvedKind").is_none_or(|k| k == e.kind)
            && s("involvedName").is_none_or(|n| n == e.name)
            && s("involvedNamespace").is_none_or(|n| Some(n) == e.namespace)
            && s("type").is_none_or(|t| t == e.event_type)
            && s("reason").is_none_or(|r| e.reason.starts_with(r))
    }
}

#[derive(Default)]
pub(crate) struct SubscriptionTable {
    /// In creation order, which is also the order the fork lists a session's subscriptions.
    subs: Vec<Subscription>,
}

impl SubscriptionTable {
    pub(crate) fn len(&self) -> usize {
        self.subs.len()
    }

    pub(crate) fn count_for(&self, session: &str) -> usize {
        self.subs.iter().filter(|s| s.session == session).count()
    }

    /// Creates a subscription after the fork's limit checks (session first, then server).
    pub(crate) fn create(
        &mut self,
        session: &str,
        mode: Mode,
        filters: Map<String, Value>,
        per_session: usize,
        per_server: usize,
    ) -> Result<&Subscription, String> {
        if self.count_for(session) >= per_session {
            return Err(format!(
                "session has reached maximum subscriptions ({per_session})"
            ));
        }
        if self.subs.len() >= per_server {
            return Err(format!(
                "server has reached maximum subscriptions ({per_server})"
            ));
        }
        let id = loop {
            let id = format!("sub-{:08x}", random_u64() & 0xffff_ffff);
            if !self.subs.iter().any(|s| s.id == id) {
                break id;
            }
        };
        self.subs.push(Subscription {
            id,
            session: session.to_string(),
            mode,
            filters,
            created_at: SystemTime::now(),
            degraded: false,
            sent: HashMap::new(),
        });
        Ok(&self.subs[self.subs.len() - 1])
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Subscription> {
        self.subs.iter().find(|s| s.id == id)
    }

    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Subscription> {
        self.subs.iter_mut().find(|s| s.id == id)
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Subscription> {
        let i = self.subs.iter().position(|s| s.id == id)?;
        Some(self.subs.remove(i))
    }

    /// Removes every subscription for which `drop` holds; returns how many went.
    pub(crate) fn remove_where(&mut self, mut drop: impl FnMut(&Subscription) -> bool) -> usize {
        let before = self.subs.len();
        self.subs.retain(|s| !drop(s));
        before - self.subs.len()
    }

    pub(crate) fn clear(&mut self) -> usize {
        let n = self.subs.len();
        self.subs.clear();
        n
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Subscription> {
        self.subs.iter()
    }

    #[cfg(test)]
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Subscription> {
        self.subs.iter_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_checked_per_session_first_then_per_server() {
        let mut t = SubscriptionTable::default();
        for i in 0..3 {
            t.create(&format!("s{i}"), Mode::Faults, Map::new(), 2, 4)
                .unwrap();
        }
        t.create("s0", Mode::Faults, Map::new(), 2, 4).unwrap();
        let err = t.create("s0", Mode::Faults, Map::new(), 2, 4).err();
        assert_eq!(
            err.as_deref(),
            Some("session has reached maximum subscriptions (2)")
        );
        let err = t.create("s9", Mode::Faults, Map::new(), 2, 4).err();
        assert_eq!(
            err.as_deref(),
            Some("server has reached maximum subscriptions (4)")
        );
    }

    #[test]
    fn subscription_ids_are_sub_and_eight_hex_digits() {
        let mut t = SubscriptionTable::default();
        let id = t
            .create("s", Mode::Events, Map::new(), 10, 100)
            .unwrap()
            .id
            .clone();
        let hex = id.strip_prefix("sub-").unwrap();
        assert_eq!(hex.len(), 8);
        assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn a_repeated_fault_id_is_withheld_within_the_window_per_subscription() {
        let mut t = SubscriptionTable::default();
        t.create("s", Mode::Faults, Map::new(), 10, 100).unwrap();
        t.create("s", Mode::Faults, Map::new(), 10, 100).unwrap();
        let spec = FaultSpec::nth("c", "c", 0, 0);
        let now = Instant::now();
        let window = Duration::from_secs(900);
        let mut subs = t.iter_mut();
        let (a, b) = (subs.next().unwrap(), subs.next().unwrap());
        assert!(a.admit_fault(&spec, window, now));
        assert!(!a.admit_fault(&spec, window, now + Duration::from_secs(899)));
        assert!(
            b.admit_fault(&spec, window, now),
            "each subscription has its own"
        );
        assert!(a.admit_fault(&spec, window, now + Duration::from_secs(900)));
        assert!(b.admit_fault(&spec, Duration::ZERO, now));
    }
}
