//! Correlation: the same fault on several clusters is one incident. A fault opens a group
//! under its [`Signature`]; for `window` from that moment a fault with the same signature
//! from any other cluster joins the group instead of starting an agent. The first fault
//! waits at most `hold` for joiners, then one of the group's faults is released to the
//! queue: the one of the highest-priority cluster that can triage.
//!
//! No I/O and no clock: time comes in as `now`, faults go out as return values.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::agent::workspace::{rfc3339, CorrelatedFault, IncidentRecord};
use crate::events::{ClusterEvent, FaultEvent};

/// What makes two faults on two clusters the same fault.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Signature {
    pub fault_type: String,
    pub kind: String,
    pub namespace: String,
    /// The workload, not the pod: see [`workload_of`].
    pub workload: String,
}

impl Signature {
    pub fn of(fault_type: &str, kind: &str, namespace: Option<&str>, name: &str) -> Signature {
        Signature {
            fault_type: fault_type.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.unwrap_or("").to_owned(),
            workload: workload_of(kind, name).to_owned(),
        }
    }

    pub fn of_fault(fault: &FaultEvent) -> Signature {
        let r = &fault.resource;
        Signature::of(&fault.fault_type, &r.kind, r.namespace.as_deref(), &r.name)
    }
}

/// The characters Kubernetes uses for generated name suffixes (pod names, pod-template
/// hashes): digits and consonants, no vowels, so that real words are rarely taken for one.
const GENERATED: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn is_generated(part: &str, lengths: std::ops::RangeInclusive<usize>) -> bool {
    lengths.contains(&part.len()) && part.bytes().all(|b| GENERATED.contains(&b))
}

/// The workload a resource belongs to. A Pod's name loses its random five-character suffix
/// and then a ReplicaSet's pod-template hash (`api-7d9f8c6b5-x2kq9` → `api`,
/// `node-exporter-x2kq9` → `node-exporter`); a ReplicaSet's name loses its hash; any other
/// kind keeps its name.
pub fn workload_of<'a>(kind: &str, name: &'a str) -> &'a str {
    let strip = |name: &'a str, lengths: std::ops::RangeInclusive<usize>| -> &'a str {
        match name.rsplit_once('-') {
            Some((base, suffix)) if !base.is_empty() && is_generated(suffix, lengths) => base,
            _ => name,
        }
    };
    match kind {
        "Pod" => {
            let without_pod = strip(name, 5..=5);
            if without_pod.len() == name.len() {
                return name;
            }
            strip(without_pod, 6..=10)
        }
        "ReplicaSet" => strip(name, 6..=10),
        _ => name,
    }
}

/// Open groups at most: about 300 bytes each, so a few MiB. When all are taken, a new
/// fault is not grouped (it runs on its own, as without correlation) until windows end.
pub const MAX_OPEN_GROUPS: usize = 10_000;

/// How a fault went through correlation.
#[derive(Debug)]
pub enum Correlated {
    /// It opened a group and waits in it for joiners, until [`CorrelationGroups::release_due`].
    Held,
    /// It opened a group with no hold: it goes to the queue now.
    Release(Box<ClusterEvent>, u64),
}

/// One group: the faults of one signature within one window.
#[derive(Debug)]
struct Group {
    id: u64,
    opened: Instant,
    /// Until then the faults that could run wait here; `None` once one was released.
    release_at: Option<Instant>,
    /// Faults from clusters that can triage, held until the release.
    candidates: Vec<(i32, ClusterEvent)>,
    members: Vec<CorrelatedFault>,
    /// The incident made for the released fault, and its latest `incident.json`.
    record: Option<IncidentRecord>,
    /// The Slack message was built: clusters that join after it are summed up at the end.
    notified: bool,
    late: Vec<String>,
}

/// A group whose window ended.
#[derive(Debug)]
pub struct ClosedGroup {
    pub incident_id: Option<String>,
    /// Distinct clusters in the incident.
    pub clusters: usize,
    /// Clusters that joined after the Slack message, in order.
    pub late: Vec<String>,
}

/// The open groups, by signature.
#[derive(Debug)]
pub struct CorrelationGroups {
    window: Duration,
    hold: Duration,
    groups: HashMap<Signature, Group>,
    /// Group id → signature, for the dispatch side.
    by_id: HashMap<u64, Signature>,
    /// Incident id → group id, while the group is open.
    by_incident: HashMap<String, u64>,
    next_id: u64,
}

impl CorrelationGroups {
    pub fn new(window: Duration, hold: Duration) -> CorrelationGroups {
        CorrelationGroups {
            window,
            hold: hold.min(window),
            groups: HashMap::new(),
            by_id: HashMap::new(),
            by_incident: HashMap::new(),
            next_id: 0,
        }
    }

    pub fn set_timing(&mut self, window: Duration, hold: Duration) {
        self.window = window;
        self.hold = hold.min(window);
    }

    /// Open groups.
    pub fn open_groups(&self) -> usize {
        self.groups.len()
    }

    /// No group can be opened now.
    pub fn is_full(&self) -> bool {
        self.groups.len() >= MAX_OPEN_GROUPS
    }

    /// Faults waiting for their group's hold to end.
    pub fn held(&self) -> usize {
        self.groups.values().map(|g| g.candidates.len()).sum()
    }

    /// Faults of `cluster` waiting for their group's hold to end.
    pub fn held_for(&self, cluster: &str) -> usize {
        self.groups
            .values()
            .flat_map(|g| &g.candidates)
            .filter(|(_, event)| event.cluster_name() == cluster)
            .count()
    }

    /// A group of `signature` takes joiners now.
    pub fn is_open(&self, signature: &Signature, now: Instant) -> bool {
        self.groups
            .get(signature)
            .is_some_and(|g| now < g.opened + self.window)
    }

    /// No incident is open: no fault can join one.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// ... and `cluster` is not in it yet.
    pub fn is_open_without(&self, signature: &Signature, cluster: &str, now: Instant) -> bool {
        self.groups.get(signature).is_some_and(|g| {
            now < g.opened + self.window && g.members.iter().all(|m| m.cluster != cluster)
        })
    }

    /// The cluster whose fault opened the group.
    pub fn first_cluster(&self, id: u64) -> Option<&str> {
        let signature = self.by_id.get(&id)?;
        let group = self.groups.get(signature)?;
        group.members.first().map(|m| m.cluster.as_str())
    }

    pub fn member_count(&self, id: u64) -> usize {
        self.by_id
            .get(&id)
            .and_then(|s| self.groups.get(s))
            .map_or(0, |g| g.members.len())
    }

    /// The open group whose incident this is.
    pub fn group_of_incident(&self, incident_id: &str) -> Option<u64> {
        self.by_incident.get(incident_id).copied()
    }

    /// The open group of `signature`, if any, takes the fault as a member (and, when
    /// `runnable` and the group still holds, as a candidate to run).
    pub fn join(
        &mut self,
        signature: &Signature,
        member: CorrelatedFault,
        runnable: Option<(i32, ClusterEvent)>,
        now: Instant,
    ) -> Option<u64> {
        let group = self.groups.get_mut(signature)?;
        if now >= group.opened + self.window {
            return None;
        }
        if group.notified {
            group.late.push(member.cluster.clone());
        }
        if let Some(record) = group.record.as_mut() {
            record.correlated.push(member.clone());
        }
        group.members.push(member);
        if let (Some(candidate), Some(_)) = (runnable, group.release_at) {
            group.candidates.push(candidate);
        }
        Some(group.id)
    }

    /// Opens a group for a fault that can run. A group of the same signature whose window
    /// ended but was not closed yet is closed first; its end is returned.
    pub fn open(
        &mut self,
        signature: Signature,
        priority: i32,
        event: ClusterEvent,
        now: Instant,
    ) -> (Correlated, Option<ClosedGroup>) {
        let closed = self
            .groups
            .remove(&signature)
            .map(|group| self.close(group));
        self.next_id += 1;
        let id = self.next_id;
        let member = member_of(&event);
        let mut group = Group {
            id,
            opened: now,
            release_at: Some(now + self.hold),
            candidates: Vec::new(),
            members: vec![member],
            record: None,
            notified: false,
            late: Vec::new(),
        };
        let outcome = if self.hold.is_zero() {
            group.release_at = None;
            Correlated::Release(Box::new(event), id)
        } else {
            group.candidates.push((priority, event));
            Correlated::Held
        };
        self.by_id.insert(id, signature.clone());
        self.groups.insert(signature, group);
        (outcome, closed)
    }

    /// The faults whose hold ended: for each group, the fault of its highest-priority
    /// cluster (the first to arrive among equals).
    pub fn release_due(&mut self, now: Instant) -> Vec<(ClusterEvent, u64)> {
        self.release(|at| at <= now)
    }

    /// Every held fault, at once (the daemon is stopping).
    pub fn release_all(&mut self) -> Vec<(ClusterEvent, u64)> {
        self.release(|_| true)
    }

    fn release(&mut self, due: impl Fn(Instant) -> bool) -> Vec<(ClusterEvent, u64)> {
        let mut released = Vec::new();
        for group in self.groups.values_mut() {
            if !group.release_at.is_some_and(&due) {
                continue;
            }
            group.release_at = None;
            let candidates = std::mem::take(&mut group.candidates);
            let mut best: Option<(i32, ClusterEvent)> = None;
            for (priority, event) in candidates {
                if best.as_ref().is_none_or(|(p, _)| priority > *p) {
                    best = Some((priority, event));
                }
            }
            if let Some((_, event)) = best {
                released.push((event, group.id));
            }
        }
        released.sort_by_key(|(_, id)| *id);
        released
    }

    /// The groups whose window ended, removed.
    pub fn close_due(&mut self, now: Instant) -> Vec<ClosedGroup> {
        let ended: Vec<Signature> = self
            .groups
            .iter()
            .filter(|(_, g)| g.release_at.is_none() && now >= g.opened + self.window)
            .map(|(s, _)| s.clone())
            .collect();
        let mut closed = Vec::with_capacity(ended.len());
        for signature in ended {
            if let Some(group) = self.groups.remove(&signature) {
                closed.push(self.close(group));
            }
        }
        closed
    }

    fn close(&mut self, group: Group) -> ClosedGroup {
        self.by_id.remove(&group.id);
        if let Some(record) = &group.record {
            self.by_incident.remove(&record.incident_id);
        }
        let mut clusters: Vec<&str> = group.members.iter().map(|m| m.cluster.as_str()).collect();
        clusters.sort_unstable();
        clusters.dedup();
        ClosedGroup {
            incident_id: group.record.map(|r| r.incident_id),
            clusters: clusters.len(),
            late: group.late,
        }
    }

    /// When the next hold or window ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.groups
            .values()
            .map(|g| g.release_at.unwrap_or(g.opened + self.window))
            .min()
    }

    fn group_mut(&mut self, id: u64) -> Option<&mut Group> {
        let signature = self.by_id.get(&id)?;
        self.groups.get_mut(signature)
    }

    /// The released fault's incident is made: its record lists every member so far, and
    /// the group keeps it to rewrite when more join.
    pub fn attach(&mut self, id: u64, record: &mut IncidentRecord) {
        let Some(group) = self.group_mut(id) else {
            return;
        };
        record.correlated.clone_from(&group.members);
        if let Some(old) = group.record.replace(record.clone()) {
            // Made again (the disk was full the first time): the old id is gone.
            self.by_incident.remove(&old.incident_id);
        }
        self.by_incident.insert(record.incident_id.clone(), id);
    }

    /// The incident's latest `incident.json` (its status changed).
    pub fn update(&mut self, id: u64, record: &IncidentRecord) {
        if let Some(group) = self.group_mut(id) {
            group.record = Some(record.clone());
        }
    }

    /// Its Slack message is built now: later joiners are summed up when the window ends.
    pub fn notified(&mut self, id: u64) {
        if let Some(group) = self.group_mut(id) {
            group.notified = true;
        }
    }

    /// The group's incident record, once made.
    pub fn record(&self, id: u64) -> Option<&IncidentRecord> {
        let signature = self.by_id.get(&id)?;
        self.groups.get(signature)?.record.as_ref()
    }
}

/// The fault as the incident lists it.
pub fn member_of(event: &ClusterEvent) -> CorrelatedFault {
    CorrelatedFault {
        cluster: event.cluster_name().to_owned(),
        fault_id: event.event.fault_id.clone(),
        received_at: rfc3339(event.received_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ClusterConfig, Endpoint};
    use std::sync::Arc;
    use std::time::SystemTime;

    #[test]
    fn a_pod_belongs_to_its_workload() {
        assert_eq!(workload_of("Pod", "api-7d9f8c6b5-x2kq9"), "api");
        assert_eq!(workload_of("Pod", "node-exporter-x2kq9"), "node-exporter");
        assert_eq!(
            workload_of("Pod", "checkout-api-5c8d7b9f4-7wz2m"),
            "checkout-api"
        );
        assert_eq!(workload_of("ReplicaSet", "api-7d9f8c6b5"), "api");
        // Words are not generated suffixes; names without one stay whole.
        assert_eq!(workload_of("Pod", "api-server"), "api-server");
        assert_eq!(workload_of("Pod", "web-0"), "web-0");
        assert_eq!(workload_of("Pod", "-x2kq9"), "-x2kq9");
        assert_eq!(workload_of("Deployment", "api-7d9f8c6b5"), "api-7d9f8c6b5");
    }

    #[test]
    fn signature_is_type_kind_namespace_and_workload() {
        let a = Signature::of("CrashLoop", "Pod", Some("shop"), "api-7d9f8c6b5-x2kq9");
        let b = Signature::of("CrashLoop", "Pod", Some("shop"), "api-6b7c8d9f5-p4tzq");
        assert_eq!(a, b, "two pods of one workload");
        assert_ne!(
            a,
            Signature::of("CrashLoop", "Pod", Some("blog"), "api-7d9f8c6b5-x2kq9")
        );
        assert_ne!(
            a,
            Signature::of("OOMKilled", "Pod", Some("shop"), "api-7d9f8c6b5-x2kq9")
        );
        assert_ne!(
            a,
            Signature::of("CrashLoop", "Pod", Some("shop"), "web-7d9f8c6b5-x2kq9")
        );
    }

    fn event(cluster: &str) -> ClusterEvent {
        let config =
            ClusterConfig::new(cluster, Endpoint::parse("http://127.0.0.1:1/mcp").unwrap());
        ClusterEvent {
            cluster: Arc::new(config),
            event: FaultEvent {
                fault_id: format!("id-{cluster}"),
                fault_type: "CrashLoop".into(),
                ..FaultEvent::default()
            },
            received_at: SystemTime::now(),
        }
    }

    fn sig() -> Signature {
        Signature::of("CrashLoop", "Pod", Some("shop"), "api-7d9f8c6b5-x2kq9")
    }

    #[test]
    fn the_highest_priority_runnable_fault_is_released_after_the_hold() {
        let mut groups = CorrelationGroups::new(Duration::from_secs(600), Duration::from_secs(2));
        let t0 = Instant::now();
        let (outcome, _) = groups.open(sig(), 0, event("a"), t0);
        assert!(matches!(outcome, Correlated::Held), "{outcome:?}");
        let joined = |g: &mut CorrelationGroups, c: &str, p: Option<i32>, at| {
            g.join(&sig(), member_of(&event(c)), p.map(|p| (p, event(c))), at)
        };
        assert!(joined(&mut groups, "b", Some(5), t0 + Duration::from_secs(1)).is_some());
        assert!(joined(&mut groups, "c", None, t0 + Duration::from_secs(1)).is_some());
        assert!(joined(&mut groups, "d", Some(5), t0 + Duration::from_secs(1)).is_some());
        assert!(groups.release_due(t0 + Duration::from_secs(1)).is_empty());
        let released = groups.release_due(t0 + Duration::from_secs(2));
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].0.cluster_name(), "b", "first among the highest");
        assert!(groups.release_due(t0 + Duration::from_secs(3)).is_empty());
        // A joiner after the release is a member only.
        assert!(joined(&mut groups, "e", Some(9), t0 + Duration::from_secs(599)).is_some());
        assert!(joined(&mut groups, "f", Some(9), t0 + Duration::from_secs(600)).is_none());
        let closed = groups.close_due(t0 + Duration::from_secs(600));
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].clusters, 5);
        assert_eq!(groups.open_groups(), 0);
    }

    #[test]
    fn open_groups_are_bounded_and_freed_when_their_windows_end() {
        let mut groups = CorrelationGroups::new(Duration::from_secs(60), Duration::ZERO);
        let t0 = Instant::now();
        for i in 0..MAX_OPEN_GROUPS {
            let signature = Signature::of("CrashLoop", "Pod", Some("shop"), &format!("w{i}"));
            groups.open(signature, 0, event("a"), t0);
        }
        assert!(groups.is_full());
        assert_eq!(groups.close_due(t0 + Duration::from_secs(59)).len(), 0);
        assert_eq!(
            groups.close_due(t0 + Duration::from_secs(60)).len(),
            MAX_OPEN_GROUPS
        );
        assert!(!groups.is_full());
    }

    #[test]
    fn joiners_after_the_message_are_late_and_land_in_the_record() {
        let mut groups = CorrelationGroups::new(Duration::from_secs(60), Duration::ZERO);
        let t0 = Instant::now();
        let (outcome, _) = groups.open(sig(), 0, event("a"), t0);
        let Correlated::Release(_, id) = outcome else {
            panic!("no hold: released at once, got {outcome:?}");
        };
        let mut record = IncidentRecord::new(
            "inc".into(),
            "a".into(),
            None,
            Default::default(),
            FaultEvent::default(),
            SystemTime::now(),
        );
        groups.attach(id, &mut record);
        assert_eq!(record.correlated.len(), 1);
        groups.join(&sig(), member_of(&event("b")), None, t0);
        groups.notified(id);
        groups.join(&sig(), member_of(&event("c")), None, t0);
        let kept = groups.record(id).unwrap();
        assert_eq!(kept.correlated.len(), 3);
        let closed = groups.close_due(t0 + Duration::from_secs(60));
        assert_eq!(closed[0].late, ["c"]);
        assert_eq!(closed[0].incident_id.as_deref(), Some("inc"));
    }
}
