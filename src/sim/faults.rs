//! Plausible fault and event payloads, with stable faultIds so repeats exercise dedup.

use serde_json::{json, Value};
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const FAULT_TYPES: [&str; 5] = [
    "PodCrash",
    "CrashLoop",
    "NodeUnhealthy",
    "DeploymentFailure",
    "JobFailure",
];

/// Weighted towards warnings, as real clusters are.
const SEVERITIES: [&str; 7] = [
    "critical", "warning", "warning", "info", "critical", "warning", "info",
];

/// What the subscription was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Faults,
    Events,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Faults => "faults",
            Mode::Events => "events",
        }
    }

    /// The `notifications/message` level and logger for this mode.
    pub(crate) fn level_and_logger(self) -> (&'static str, &'static str) {
        match self {
            Mode::Faults => ("warning", "kubernetes/faults"),
            Mode::Events => ("info", "kubernetes/events"),
        }
    }
}

/// One fault condition of a cluster, before it is addressed to a subscription.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FaultSpec {
    /// `hex(SHA-256("cluster:faultType:uid:container")[..8])`, as the fork computes it.
    pub fault_id: String,
    /// Position in the cluster's fault sequence (decides Normal/Warning in events mode).
    pub seq: u64,
    /// Which of the cluster's `distinct` conditions this is.
    pub condition: u64,
    pub fault_type: String,
    pub severity: String,
    /// Resource uid: stable per simulated cluster and condition.
    pub uid: String,
    /// Container name; empty for faults of a whole resource.
    pub container: String,
    /// The pod's name when it belongs to the fleet-wide `api` Deployment (a name with a
    /// ReplicaSet hash and a pod suffix, different on each cluster).
    pub fleet_pod: Option<String>,
}

impl FaultSpec {
    /// The `seq`-th fault of the simulated cluster `name`, whose payloads name the cluster
    /// `payload_cluster`. With `distinct > 0` conditions repeat every `distinct` faults, and
    /// a repeated condition carries the same faultId.
    pub(crate) fn nth(name: &str, payload_cluster: &str, seq: u64, distinct: u64) -> FaultSpec {
        let condition = if distinct == 0 { seq } else { seq % distinct };
        let fault_type = FAULT_TYPES[(condition % FAULT_TYPES.len() as u64) as usize];
        let severity = SEVERITIES[(condition % SEVERITIES.len() as u64) as usize];
        FaultSpec::with_type(name, payload_cluster, seq, condition, fault_type, severity)
    }

    /// A fault of a chosen type and severity for condition `condition`.
    pub(crate) fn with_type(
        name: &str,
        payload_cluster: &str,
        seq: u64,
        condition: u64,
        fault_type: &str,
        severity: &str,
    ) -> FaultSpec {
        let id = stable_hex(name, condition);
        let more = stable_hex(name, condition ^ 0x5eed);
        let uid = format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &more[..4],
            &more[4..16]
        );
        let container = match fault_type {
            "PodCrash" | "CrashLoop" => "api",
            _ => "",
        };
        FaultSpec {
            fault_id: fault_id(payload_cluster, fault_type, &uid, container),
            seq,
            condition,
            fault_type: fault_type.to_string(),
            severity: severity.to_string(),
            uid,
            container: container.to_string(),
            fleet_pod: None,
        }
    }

    /// A fault of a Pod of the `api` Deployment that every simulated cluster runs: the same
    /// fault on each cluster, with a pod name of the cluster's own.
    pub(crate) fn of_fleet_pod(
        name: &str,
        payload_cluster: &str,
        seq: u64,
        fault_type: &str,
        severity: &str,
    ) -> FaultSpec {
        let mut spec = FaultSpec::with_type(
            name,
            payload_cluster,
            seq,
            seq | (1 << 62),
            fault_type,
            severity,
        );
        let generated = |n: u64, len: usize| -> String {
            const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
            let mut h = n;
            (0..len)
                .map(|_| {
                    let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
                    h /= ALPHABET.len() as u64;
                    c
                })
                .collect()
        };
        let hash = u64::from_str_radix(&stable_hex(name, 0x0a91), 16).unwrap_or(0);
        let pod = u64::from_str_radix(&stable_hex(name, seq | (1 << 62)), 16).unwrap_or(0);
        spec.fleet_pod = Some(format!("api-{}-{}", generated(hash, 9), generated(pod, 5)));
        spec
    }

    /// Events mode: every third fault of the sequence (seq 2, 5, 8, ...) is reported as a
    /// `Normal` event, the others as `Warning`, so that clients' type filters can be checked.
    pub(crate) fn event_type(&self) -> &'static str {
        if self.seq % 3 == 2 {
            "Normal"
        } else {
            "Warning"
        }
    }
}

/// The fork's faultId: hex of the first 8 bytes of SHA-256 over
/// `"cluster:faultType:uid:container"`.
pub(crate) fn fault_id(cluster: &str, fault_type: &str, uid: &str, container: &str) -> String {
    let input = format!("{cluster}:{fault_type}:{uid}:{container}");
    let digest = sha256(input.as_bytes());
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 from the TLS library's crypto provider (no extra dependency).
fn sha256(data: &[u8]) -> Vec<u8> {
    let suite = rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256;
    let hash = match suite {
        rustls::SupportedCipherSuite::Tls13(s) => s.common.hash_provider,
        rustls::SupportedCipherSuite::Tls12(s) => s.common.hash_provider,
    };
    hash.hash(data).as_ref().to_vec()
}

/// 16 lowercase hex digits, a stable hash (FNV-1a) of the cluster name and a number.
pub(crate) fn stable_hex(cluster: &str, n: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cluster
        .as_bytes()
        .iter()
        .chain(b"/")
        .chain(&n.to_le_bytes())
    {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

struct Resource {
    api_version: &'static str,
    kind: &'static str,
    name: String,
    namespace: Option<&'static str>,
    context: String,
}

fn resource_for(spec: &FaultSpec) -> Resource {
    // Eight hex digits: never taken for a generated pod suffix, so that the faults of
    // different simulated clusters correlate only when they are meant to.
    let tag = &spec.uid[..8];
    if let Some(pod) = &spec.fleet_pod {
        return Resource {
            api_version: "v1",
            kind: "Pod",
            name: pod.clone(),
            namespace: Some("shop"),
            context: format!("Back-off restarting failed container api in pod {pod}"),
        };
    }
    let (api_version, kind, name, namespace, context) = match spec.fault_type.as_str() {
        "NodeUnhealthy" => (
            "v1",
            "Node",
            format!("node-{tag}"),
            None,
            "Node condition Ready is False: kubelet stopped posting node status".to_string(),
        ),
        "DeploymentFailure" => (
            "apps/v1",
            "Deployment",
            format!("web-{tag}"),
            Some("shop"),
            "Deployment exceeded its progress deadline".to_string(),
        ),
        "JobFailure" => (
            "batch/v1",
            "Job",
            format!("report-{tag}"),
            Some("shop"),
            "Job has reached the specified backoff limit".to_string(),
        ),
        "PodCrash" => (
            "v1",
            "Pod",
            format!("api-{tag}"),
            Some("shop"),
            "Container api terminated with exit code 137 (OOMKilled)".to_string(),
        ),
        _ => (
            "v1",
            "Pod",
            format!("api-{tag}"),
            Some("shop"),
            format!("Back-off restarting failed container api in pod api-{tag}"),
        ),
    };
    Resource {
        api_version,
        kind,
        name,
        namespace,
        context,
    }
}

/// The `data` of a `kubernetes/faults` notification (the fork's
/// `ResourceFaultNotification`; `resource.namespace` is absent for Nodes).
pub(crate) fn fault_object(
    cluster: &str,
    subscription_id: &str,
    spec: &FaultSpec,
    now: SystemTime,
) -> Value {
    let r = resource_for(spec);
    let mut resource = json!({
        "apiVersion": r.api_version,
        "kind": r.kind,
        "name": r.name,
        "uid": spec.uid,
    });
    if let Some(ns) = r.namespace {
        resource["namespace"] = json!(ns);
    }
    json!({
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "faultId": spec.fault_id,
        "faultType": spec.fault_type,
        "severity": spec.severity,
        "resource": resource,
        "context": r.context,
        "timestamp": rfc3339(now),
    })
}

/// The Kubernetes Event a fault shows up as in events mode (see [`FaultSpec::event_type`]).
pub(crate) struct SimEvent {
    pub api_version: &'static str,
    pub event_type: &'static str,
    pub reason: &'static str,
    pub message: String,
    pub namespace: Option<&'static str>,
    pub kind: &'static str,
    pub name: String,
}

pub(crate) fn event_for(spec: &FaultSpec) -> SimEvent {
    let r = resource_for(spec);
    let event_type = spec.event_type();
    let (reason, message) = if event_type == "Normal" {
        match r.kind {
            "Node" => (
                "NodeReady",
                format!("Node {} status is now: NodeReady", r.name),
            ),
            "Deployment" => (
                "ScalingReplicaSet",
                format!("Scaled up replica set {}-5d8f to 2", r.name),
            ),
            "Job" => ("SuccessfulCreate", format!("Created pod: {}-x2k9p", r.name)),
            _ => (
                "Pulled",
                "Container image \"registry.local/api:1.4\" already present on machine".to_string(),
            ),
        }
    } else {
        let reason = match spec.fault_type.as_str() {
            "NodeUnhealthy" => "NodeNotReady",
            "DeploymentFailure" => "ProgressDeadlineExceeded",
            "JobFailure" => "BackoffLimitExceeded",
            _ => "BackOff",
        };
        (reason, r.context)
    };
    SimEvent {
        api_version: r.api_version,
        event_type,
        reason,
        message,
        namespace: r.namespace,
        kind: r.kind,
        name: r.name,
    }
}

/// The `data` of a `kubernetes/events` notification: the fork's `EventNotification`, the
/// event nested under `event`, no faultId. Empty `labels` and an empty involved-object
/// namespace are left out, as the fork's `omitempty` does.
pub(crate) fn event_object(
    cluster: &str,
    subscription_id: &str,
    spec: &FaultSpec,
    now: SystemTime,
) -> Value {
    let r = resource_for(spec);
    let e = event_for(spec);
    let ts = rfc3339(now);
    let mut involved = json!({
        "apiVersion": r.api_version,
        "kind": e.kind,
        "name": e.name,
        "uid": spec.uid,
    });
    if let Some(ns) = e.namespace {
        involved["namespace"] = json!(ns);
    }
    json!({
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "event": {
            "namespace": e.namespace.unwrap_or("default"),
            "timestamp": ts,
            "type": e.event_type,
            "reason": e.reason,
            "message": e.message,
            "involvedObject": involved,
            "count": 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
        },
    })
}

/// `events_list`'s text for these events (oldest first), optionally of one namespace:
/// the fork's `# The following events (YAML format) were found:` followed by a YAML list
/// of `{InvolvedObject, Message, Namespace, Reason, Timestamp, Type}` (strings quoted), or
/// `# No events found`.
pub(crate) fn events_list_text<'a>(
    events: impl Iterator<Item = &'a (FaultSpec, SystemTime)>,
    namespace: Option<&str>,
) -> String {
    let q = |s: &str| Value::String(s.to_string()).to_string();
    let mut yaml = String::new();
    for (spec, at) in events {
        let e = event_for(spec);
        let ns = e.namespace.unwrap_or("default");
        if namespace.is_some_and(|n| n != ns) {
            continue;
        }
        // Go's time.String() of a UTC time: "2026-11-20 10:00:00 +0000 UTC".
        let ts = rfc3339(*at).replace('T', " ").replace('Z', " +0000 UTC");
        yaml.push_str(&format!(
            "- InvolvedObject:\n    Kind: {}\n    Name: {}\n    apiVersion: {}\n  Message: {}\n  \
             Namespace: {}\n  Reason: {}\n  Timestamp: {}\n  Type: {}\n",
            q(e.kind),
            q(&e.name),
            q(e.api_version),
            q(&e.message),
            q(ns),
            q(e.reason),
            q(&ts),
            q(e.event_type),
        ));
    }
    if yaml.is_empty() {
        "# No events found".to_string()
    } else {
        format!("# The following events (YAML format) were found:\n{yaml}")
    }
}

/// A complete JSON-RPC `notifications/message`.
pub(crate) fn log_notification(level: &str, logger: &str, data: Value) -> Value {
    json!({
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": level, "logger": logger, "data": data},
    })
}

/// RFC 3339 UTC timestamp with second precision, e.g. `2026-11-20T10:00:00Z`.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// An unpredictable 64-bit value, good enough for session and subscription ids.
pub(crate) fn random_u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    h.write_u128(nanos);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn fault_id_is_the_forks_sha256_prefix() {
        // echo -n "sim-000:CrashLoop:abc:api" | sha256sum → 49680c6c9e6def18…
        assert_eq!(
            fault_id("sim-000", "CrashLoop", "abc", "api"),
            "49680c6c9e6def18"
        );
    }

    #[test]
    fn fault_ids_repeat_every_distinct_faults() {
        let a = FaultSpec::nth("sim-001", "sim-001", 1, 3);
        let b = FaultSpec::nth("sim-001", "sim-001", 4, 3);
        let c = FaultSpec::nth("sim-001", "sim-001", 2, 3);
        assert_eq!((a.fault_id.clone(), a.uid.clone()), (b.fault_id, b.uid));
        assert_ne!(a.fault_id, c.fault_id);
    }

    #[test]
    fn zero_distinct_makes_every_fault_new() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|n| FaultSpec::nth("sim-000", "sim-000", n, 0).fault_id)
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn fault_ids_differ_between_clusters_even_with_an_empty_cluster_field() {
        let a = FaultSpec::nth("sim-000", "", 0, 0);
        let b = FaultSpec::nth("sim-001", "", 0, 0);
        assert_ne!(a.fault_id, b.fault_id);
        assert_ne!(
            a.fault_id,
            FaultSpec::nth("sim-000", "sim-000", 0, 0).fault_id
        );
    }

    #[test]
    fn fault_types_and_severities_rotate() {
        let types: std::collections::HashSet<String> = (0..5)
            .map(|n| FaultSpec::nth("c", "c", n, 0).fault_type)
            .collect();
        assert_eq!(types.len(), 5);
        let sev: std::collections::HashSet<String> = (0..7)
            .map(|n| FaultSpec::nth("c", "c", n, 0).severity)
            .collect();
        assert_eq!(sev.len(), 3);
    }

    #[test]
    fn fault_object_has_the_protocol_fields() {
        let spec = FaultSpec::nth("sim-002", "sim-002", 1, 0);
        let v = fault_object("sim-002", "sub-1", &spec, UNIX_EPOCH);
        assert_eq!(v["cluster"], "sim-002");
        assert_eq!(v["subscriptionId"], "sub-1");
        assert_eq!(v["faultId"], spec.fault_id.as_str());
        assert_eq!(v["faultType"], "CrashLoop");
        assert_eq!(v["resource"]["kind"], "Pod");
        assert_eq!(v["resource"]["namespace"], "shop");
        assert_eq!(v["resource"]["uid"], spec.uid.as_str());
        assert_eq!(
            v["faultId"],
            fault_id("sim-002", "CrashLoop", &spec.uid, "api").as_str()
        );
        assert!(v["context"]
            .as_str()
            .unwrap()
            .starts_with("Back-off restarting failed container"));
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn node_faults_have_no_namespace() {
        let spec = FaultSpec::nth("c", "c", 2, 0);
        assert_eq!(spec.fault_type, "NodeUnhealthy");
        let v = fault_object("c", "s", &spec, UNIX_EPOCH);
        assert!(v["resource"].get("namespace").is_none());
    }

    #[test]
    fn events_are_nested_and_every_third_is_normal() {
        let types: Vec<String> = (0..6)
            .map(|n| {
                let spec = FaultSpec::nth("c", "c", n, 0);
                let v = event_object("c", "sub-1", &spec, UNIX_EPOCH);
                assert_eq!(v["subscriptionId"], "sub-1");
                assert!(v.get("type").is_none() && v.get("faultId").is_none());
                let e = &v["event"];
                assert_eq!(e["involvedObject"]["uid"], spec.uid.as_str());
                assert!(e.get("labels").is_none());
                e["type"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(
            types,
            ["Warning", "Warning", "Normal", "Warning", "Warning", "Normal"]
        );
        let crash = event_object("c", "s", &FaultSpec::nth("c", "c", 1, 0), UNIX_EPOCH);
        assert_eq!(crash["event"]["reason"], "BackOff");
        assert_eq!(crash["event"]["involvedObject"]["kind"], "Pod");
    }

    #[test]
    fn events_list_is_yaml_under_the_forks_heading() {
        assert_eq!(
            events_list_text(std::iter::empty(), None),
            "# No events found"
        );
        let t = UNIX_EPOCH + Duration::from_secs(1_795_168_800);
        let events = [
            (FaultSpec::nth("c", "c", 1, 0), t),
            (FaultSpec::nth("c", "c", 2, 0), t),
        ];
        let text = events_list_text(events.iter(), None);
        assert!(
            text.starts_with("# The following events (YAML format) were found:\n- InvolvedObject:\n    Kind: \"Pod\"\n"),
            "{text}"
        );
        assert!(text.contains("  Timestamp: \"2026-11-20 10:00:00 +0000 UTC\"\n"));
        assert!(
            text.contains("  Namespace: \"default\"\n  Reason: \"NodeReady\""),
            "{text}"
        );
        let shop = events_list_text(events.iter(), Some("shop"));
        assert_eq!(shop.matches("- InvolvedObject:").count(), 1);
    }

    #[test]
    fn rfc3339_formats_known_instants() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_168_800);
        assert_eq!(rfc3339(t), "2026-11-20T10:00:00Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400 + 86_399);
        assert_eq!(rfc3339(leap), "2000-02-29T23:59:59Z");
    }

    #[test]
    fn random_values_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
