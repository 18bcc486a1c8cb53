//! Fault events as kubernetes-mcp-server sends them, and the cluster-tagged form the rest of
//! the pipeline consumes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::{fnv1a64, ClusterConfig, Severity};

/// The `data` object of a `kubernetes/faults` log notification. Unknown fields are ignored;
/// everything but the fault id is optional because servers differ in what they fill in.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultEvent {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The server's own name for its cluster; the configured cluster name is the one that counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default)]
    pub fault_id: String,
    #[serde(default)]
    pub fault_type: String,
    #[serde(default)]
    pub severity: String,
    #[serde(default)]
    pub resource: ResourceRef,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// True when the server sent no `faultId` and nightcrier derived one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fault_id_derived: bool,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// The `data` of a `kubernetes/events` notification: the fork nests the Kubernetes event
/// under `event` (`{subscriptionId, cluster, event:{type, reason, involvedObject, …}}`).
/// A flat event (the same fields at the top level) is accepted too.
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct EventNotification {
    subscription_id: Option<String>,
    cluster: Option<String>,
    event: Option<KubeEvent>,
    #[serde(flatten)]
    flat: KubeEvent,
}

/// A Kubernetes event as the fork serializes it (`pkg/events/notification.go`).
#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct KubeEvent {
    #[serde(rename = "type")]
    event_type: String,
    reason: String,
    message: Option<String>,
    involved_object: ResourceRef,
    timestamp: Option<String>,
    last_timestamp: Option<String>,
}

/// Bounds on wire strings we keep: a fault is a few hundred bytes, anything larger is noise.
const MAX_ID_LEN: usize = 128;
/// `context` is kept up to this many bytes (the real server sends up to ~60 KB of container
/// logs); the rest is cut with a visible marker.
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;
/// `faultType`, `severity`, `kind`, `namespace`, `name`, `apiVersion`, `timestamp`: a
/// Kubernetes name is at most 253 bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// The marker that ends a cut field.
const CUT_MARKER: &str = "…";

/// Cuts `text` to at most `max` bytes (on a character boundary), ending it with `marker`
/// when it was cut; the result, marker included, stays within `max`.
fn cap(text: &mut String, max: usize, marker: &str) {
    if text.len() <= max {
        return;
    }
    let mut end = max.saturating_sub(marker.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(marker);
}

fn cap_context(context: &mut String) {
    if context.len() > MAX_CONTEXT_BYTES {
        let marker = format!(
            "\n[… {} bytes of context cut by nightcrier]",
            context.len() - MAX_CONTEXT_BYTES
        );
        cap(context, MAX_CONTEXT_BYTES, &marker);
    }
}

impl FaultEvent {
    /// Parses the `data` of a `kubernetes/faults` notification.
    pub fn from_fault_data(data: &str) -> Result<FaultEvent, serde_json::Error> {
        serde_json::from_str(data).map(FaultEvent::from_deserialized)
    }

    /// Finishes a fault deserialized as part of a larger message, as
    /// [`FaultEvent::from_fault_data`] does.
    pub fn from_deserialized(mut fault: FaultEvent) -> FaultEvent {
        fault.normalize();
        fault
    }

    /// Parses the `data` of a `kubernetes/events` notification into the fault shape. Events
    /// carry no fault id: one is derived from the reason and the involved object, so the
    /// same condition on the same object deduplicates.
    pub fn from_event_data(data: &str) -> Result<FaultEvent, serde_json::Error> {
        let notification: EventNotification = serde_json::from_str(data)?;
        let event = notification.event.unwrap_or(notification.flat);
        let severity = if event.event_type.eq_ignore_ascii_case("warning") {
            "warning"
        } else {
            "info"
        };
        let mut fault = FaultEvent {
            subscription_id: notification.subscription_id,
            cluster: notification.cluster,
            fault_id: String::new(),
            fault_type: event.reason,
            severity: severity.to_string(),
            resource: event.involved_object,
            context: event.message,
            timestamp: event.timestamp.or(event.last_timestamp),
            fault_id_derived: false,
        };
        fault.normalize();
        Ok(fault)
    }

    /// About the bytes this fault holds: its strings plus a fixed overhead. What the queue's
    /// byte bound counts.
    pub fn held_bytes(&self) -> usize {
        let r = &self.resource;
        let optional = [
            &self.subscription_id,
            &self.cluster,
            &self.context,
            &self.timestamp,
            &r.api_version,
            &r.namespace,
            &r.uid,
        ]
        .into_iter()
        .flatten()
        .map(String::len)
        .sum::<usize>();
        std::mem::size_of::<FaultEvent>()
            + optional
            + self.fault_id.len()
            + self.fault_type.len()
            + self.severity.len()
            + r.kind.len()
            + r.name.len()
    }

    /// The severity as nightcrier orders it; unknown names count as `warning` so that a
    /// server with a new severity is not silently filtered out.
    pub fn severity_level(&self) -> Severity {
        Severity::named(&self.severity).unwrap_or(Severity::Warning)
    }

    fn normalize(&mut self) {
        // A single-cluster or in-cluster server names its cluster "": no name at all.
        if self.cluster.as_deref() == Some("") {
            self.cluster = None;
        }
        self.cap_fields();
        if !usable_fault_id(&self.fault_id) {
            self.fault_id = self.derived_key();
            self.fault_id_derived = true;
        }
    }

    /// Every wire string within its bound (`MAX_*` above), so a queued fault, its log lines
    /// and its prompt stay small whatever the server sends.
    fn cap_fields(&mut self) {
        for field in [&mut self.fault_type, &mut self.severity] {
            cap(field, MAX_FIELD_BYTES, CUT_MARKER);
        }
        let resource = &mut self.resource;
        for field in [&mut resource.kind, &mut resource.name] {
            cap(field, MAX_FIELD_BYTES, CUT_MARKER);
        }
        for field in [
            &mut resource.namespace,
            &mut resource.api_version,
            &mut self.timestamp,
        ]
        .into_iter()
        .flatten()
        {
            cap(field, MAX_FIELD_BYTES, CUT_MARKER);
        }
        for field in [
            &mut self.subscription_id,
            &mut self.cluster,
            &mut resource.uid,
        ]
        .into_iter()
        .flatten()
        {
            cap(field, MAX_ID_LEN, CUT_MARKER);
        }
        if let Some(context) = &mut self.context {
            cap_context(context);
        }
    }

    /// A stable key for a fault that arrived without a usable `faultId`: the same condition on
    /// the same resource always maps to the same key.
    fn derived_key(&self) -> String {
        let parts = [
            self.fault_type.as_str(),
            self.resource.kind.as_str(),
            self.resource.namespace.as_deref().unwrap_or(""),
            self.resource.name.as_str(),
            self.resource.uid.as_deref().unwrap_or(""),
        ];
        // NUL separators keep ("ab", "c") and ("a", "bc") apart.
        format!("{:016x}", fnv1a64(parts.join("\0").as_bytes()))
    }
}

/// A `faultId` kept as the fault's key: present, short, visible ASCII. Any other id is
/// replaced by a derived key.
fn usable_fault_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_LEN && id.bytes().all(|b| b.is_ascii_graphic())
}

/// A fault as it stands in the message text it arrived in: the strings are borrowed from
/// that text (owned only where the JSON escaped something), not yet bounded or normalized.
/// The intake decides on a view (severity, dedup key) without copying a byte, and
/// [`FaultView::to_event`] makes the [`FaultEvent`] of a fault that goes further.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultView<'a> {
    pub subscription_id: Option<Cow<'a, str>>,
    pub cluster: Option<Cow<'a, str>>,
    pub fault_id: Cow<'a, str>,
    pub fault_type: Cow<'a, str>,
    pub severity: Cow<'a, str>,
    pub resource: ResourceView<'a>,
    pub context: Option<Cow<'a, str>>,
    pub timestamp: Option<Cow<'a, str>>,
    pub fault_id_derived: bool,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResourceView<'a> {
    pub api_version: Option<Cow<'a, str>>,
    pub kind: Cow<'a, str>,
    pub name: Cow<'a, str>,
    pub namespace: Option<Cow<'a, str>>,
    pub uid: Option<Cow<'a, str>>,
}

impl FaultView<'_> {
    /// The fault, owned and normalized: what [`FaultEvent::from_fault_data`] gives for the
    /// same `data`.
    pub fn to_event(&self) -> FaultEvent {
        fn owned(text: &Option<Cow<'_, str>>) -> Option<String> {
            text.as_deref().map(str::to_owned)
        }
        let r = &self.resource;
        FaultEvent::from_deserialized(FaultEvent {
            subscription_id: owned(&self.subscription_id),
            cluster: owned(&self.cluster),
            fault_id: self.fault_id.clone().into_owned(),
            fault_type: self.fault_type.clone().into_owned(),
            severity: self.severity.clone().into_owned(),
            resource: ResourceRef {
                api_version: owned(&r.api_version),
                kind: r.kind.clone().into_owned(),
                name: r.name.clone().into_owned(),
                namespace: owned(&r.namespace),
                uid: owned(&r.uid),
            },
            context: owned(&self.context),
            timestamp: owned(&self.timestamp),
            fault_id_derived: self.fault_id_derived,
        })
    }

    /// The fault's key, when the server's `faultId` is kept as it is (see
    /// [`FaultEvent::fault_id`] after normalizing); `None` when a key must be derived.
    pub fn key(&self) -> Option<&str> {
        usable_fault_id(&self.fault_id).then_some(&*self.fault_id)
    }
}

/// A fault tagged with the configuration of the cluster it came from. The configuration is
/// shared, so tagging costs one reference count, not a copy of labels and paths.
#[derive(Debug, Clone)]
pub struct ClusterEvent {
    pub cluster: Arc<ClusterConfig>,
    pub event: FaultEvent,
    pub received_at: SystemTime,
}

impl ClusterEvent {
    pub fn cluster_name(&self) -> &str {
        &self.cluster.name
    }
    pub fn labels(&self) -> &std::collections::BTreeMap<String, String> {
        &self.cluster.labels
    }
    pub fn kubeconfig(&self) -> Option<&std::path::Path> {
        self.cluster.triage.kubeconfig.as_deref()
    }
}

/// Receives every fault the connections deliver; `now` is the loop's clock.
pub trait EventSink {
    fn deliver(&mut self, event: ClusterEvent, now: std::time::Instant);

    /// A fault read in place from its message (see [`FaultView`]); a sink that can decide
    /// on the view alone copies only what it keeps.
    fn offer(
        &mut self,
        cluster: &Arc<ClusterConfig>,
        fault: &FaultView<'_>,
        now: std::time::Instant,
    ) {
        self.deliver(
            ClusterEvent {
                cluster: Arc::clone(cluster),
                event: fault.to_event(),
                received_at: SystemTime::now(),
            },
            now,
        );
    }
}

impl EventSink for std::sync::mpsc::Sender<ClusterEvent> {
    fn deliver(&mut self, event: ClusterEvent, _now: std::time::Instant) {
        // A closed receiver means the consumer is gone; the loop is then shutting down.
        let _ = self.send(event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FAULT: &str = r#"{"subscriptionId":"sub-1","cluster":"prod-us-east-1","faultId":"9f2c4e1a7b3d5c60",
        "faultType":"CrashLoop","severity":"critical",
        "resource":{"apiVersion":"v1","kind":"Pod","name":"api-7d9f","namespace":"shop","uid":"u-1"},
        "context":"Back-off restarting failed container api","timestamp":"2026-11-20T10:00:00Z","extra":{"x":1}}"#;

    #[test]
    fn fault_fields_parse_and_unknown_fields_are_ignored() {
        let fault = FaultEvent::from_fault_data(FAULT).unwrap();
        assert_eq!(fault.fault_id, "9f2c4e1a7b3d5c60");
        assert_eq!(fault.fault_type, "CrashLoop");
        assert_eq!(fault.severity_level(), Severity::Critical);
        assert_eq!(fault.resource.namespace.as_deref(), Some("shop"));
        assert!(!fault.fault_id_derived);
    }

    #[test]
    fn missing_fault_id_gets_a_stable_derived_key() {
        let data = r#"{"faultType":"PodCrash","severity":"warning","resource":{"kind":"Pod","name":"a","uid":"u"}}"#;
        let first = FaultEvent::from_fault_data(data).unwrap();
        let second = FaultEvent::from_fault_data(data).unwrap();
        assert!(first.fault_id_derived);
        assert_eq!(first.fault_id.len(), 16);
        assert_eq!(first.fault_id, second.fault_id);
        let other = data.replace("\"a\"", "\"b\"");
        assert_ne!(
            FaultEvent::from_fault_data(&other).unwrap().fault_id,
            first.fault_id
        );
    }

    #[test]
    fn fault_id_with_control_characters_is_replaced() {
        let data = r#"{"faultId":"../../etc\n","faultType":"PodCrash","resource":{"kind":"Pod","name":"a"}}"#;
        let fault = FaultEvent::from_fault_data(data).unwrap();
        assert!(fault.fault_id_derived);
        assert!(fault.fault_id.bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn kube_event_maps_to_fault_shape() {
        let data = r#"{"type":"Warning","reason":"BackOff","message":"restarting","involvedObject":{"kind":"Pod","name":"p","namespace":"n"}}"#;
        let fault = FaultEvent::from_event_data(data).unwrap();
        assert_eq!(fault.fault_type, "BackOff");
        assert_eq!(fault.severity_level(), Severity::Warning);
        assert_eq!(fault.resource.name, "p");
        assert!(fault.fault_id_derived);
    }

    #[test]
    fn nested_event_of_the_fork_maps_to_fault_shape() {
        let data = r#"{"subscriptionId":"sub-1a2b3c4d","cluster":"","event":{"namespace":"shop",
            "timestamp":"2026-11-20T10:00:00Z","type":"Warning","reason":"BackOff",
            "message":"Back-off restarting failed container","labels":{"app":"api"},
            "involvedObject":{"apiVersion":"v1","kind":"Pod","name":"api-7d9f","namespace":"shop","uid":"u-1"},
            "count":3,"firstTimestamp":"2026-11-20T09:58:00Z","lastTimestamp":"2026-11-20T10:00:00Z"}}"#;
        let fault = FaultEvent::from_event_data(data).unwrap();
        assert_eq!(fault.fault_type, "BackOff");
        assert_eq!(fault.severity_level(), Severity::Warning);
        assert_eq!(fault.resource.kind, "Pod");
        assert_eq!(fault.resource.name, "api-7d9f");
        assert_eq!(fault.resource.namespace.as_deref(), Some("shop"));
        assert_eq!(
            fault.context.as_deref(),
            Some("Back-off restarting failed container")
        );
        assert_eq!(fault.subscription_id.as_deref(), Some("sub-1a2b3c4d"));
        assert_eq!(fault.cluster, None, "an empty cluster name is no name");
        assert!(fault.fault_id_derived);
    }

    #[test]
    fn normal_nested_event_is_info() {
        let data = r#"{"subscriptionId":"s","event":{"type":"Normal","reason":"Pulled","involvedObject":{"kind":"Pod","name":"p"}}}"#;
        let fault = FaultEvent::from_event_data(data).unwrap();
        assert_eq!(fault.severity_level(), Severity::Info);
        assert_eq!(fault.fault_type, "Pulled");
    }

    #[test]
    fn same_event_condition_derives_the_same_key() {
        let a = r#"{"event":{"type":"Warning","reason":"BackOff","message":"one","involvedObject":{"kind":"Pod","name":"p","uid":"u"}}}"#;
        let b = r#"{"event":{"type":"Warning","reason":"BackOff","message":"two","involvedObject":{"kind":"Pod","name":"p","uid":"u"}}}"#;
        assert_eq!(
            FaultEvent::from_event_data(a).unwrap().fault_id,
            FaultEvent::from_event_data(b).unwrap().fault_id
        );
    }

    #[test]
    fn empty_cluster_name_of_a_fault_is_none() {
        let data = r#"{"cluster":"","faultId":"0000000000000001","faultType":"CrashLoop"}"#;
        assert_eq!(FaultEvent::from_fault_data(data).unwrap().cluster, None);
    }

    #[test]
    fn every_wire_string_is_capped_and_context_cut_with_a_visible_marker() {
        let big = "é".repeat(300_000);
        let data = serde_json::json!({"faultId": "1", "faultType": big, "severity": big,
            "subscriptionId": big, "cluster": big, "timestamp": big, "context": big,
            "resource": {"kind": big, "name": big, "namespace": big, "apiVersion": big, "uid": big}});
        let fault = FaultEvent::from_fault_data(&data.to_string()).unwrap();
        let r = &fault.resource;
        for field in [&fault.fault_type, &fault.severity, &r.kind, &r.name] {
            assert!(
                field.len() <= MAX_FIELD_BYTES && field.ends_with('…'),
                "{}",
                field.len()
            );
        }
        for field in [&r.namespace, &r.api_version, &fault.timestamp] {
            assert!(field.as_ref().unwrap().len() <= MAX_FIELD_BYTES);
        }
        for field in [&fault.subscription_id, &fault.cluster, &r.uid] {
            assert!(field.as_ref().unwrap().len() <= MAX_ID_LEN);
        }
        let context = fault.context.unwrap();
        assert!(context.len() <= MAX_CONTEXT_BYTES, "{}", context.len());
        assert!(context.ends_with("bytes of context cut by nightcrier]"));
        assert!(context.starts_with("éé"));
    }

    #[test]
    fn fields_within_their_bounds_are_kept_whole() {
        let context = "x".repeat(MAX_CONTEXT_BYTES);
        let data =
            serde_json::json!({"faultId": "1", "faultType": "CrashLoop", "context": context});
        let fault = FaultEvent::from_fault_data(&data.to_string()).unwrap();
        assert_eq!(fault.context.as_deref(), Some(context.as_str()));
        assert_eq!(fault.fault_type, "CrashLoop");
    }

    #[test]
    fn unknown_severity_counts_as_warning() {
        let data = r#"{"faultId":"0000000000000001","severity":"catastrophic"}"#;
        assert_eq!(
            FaultEvent::from_fault_data(data).unwrap().severity_level(),
            Severity::Warning
        );
    }
}
