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
    pub fault_id: String,
    /// Which of the cluster's `distinct` conditions this is.
    pub condition: u64,
    pub fault_type: String,
    pub severity: String,
}

impl FaultSpec {
    /// The `seq`-th fault of `cluster`; with `distinct > 0` conditions repeat every
    /// `distinct` faults, and a repeated condition carries the same faultId.
    pub(crate) fn nth(cluster: &str, seq: u64, distinct: u64) -> FaultSpec {
        let condition = if distinct == 0 { seq } else { seq % distinct };
        FaultSpec {
            fault_id: fault_id(cluster, condition),
            condition,
            fault_type: FAULT_TYPES[(condition % FAULT_TYPES.len() as u64) as usize].to_string(),
            severity: SEVERITIES[(condition % SEVERITIES.len() as u64) as usize].to_string(),
        }
    }
}

/// 16 lowercase hex digits, a stable hash (FNV-1a) of the cluster name and condition.
pub(crate) fn fault_id(cluster: &str, condition: u64) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in cluster
        .as_bytes()
        .iter()
        .chain(b"/")
        .chain(&condition.to_le_bytes())
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
    uid: String,
    context: String,
}

fn resource_for(cluster: &str, spec: &FaultSpec) -> Resource {
    let tag = &spec.fault_id[..5];
    let uid = {
        let id = &spec.fault_id;
        let more = fault_id(cluster, spec.condition ^ 0x5eed);
        format!(
            "{}-{}-{}-{}-{}",
            &id[..8],
            &id[8..12],
            &id[12..16],
            &more[..4],
            &more[4..16]
        )
    };
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
        uid,
        context,
    }
}

/// The `data` of a `kubernetes/faults` notification.
pub(crate) fn fault_object(
    cluster: &str,
    subscription_id: &str,
    spec: &FaultSpec,
    now: SystemTime,
) -> Value {
    let r = resource_for(cluster, spec);
    let mut resource = json!({
        "apiVersion": r.api_version,
        "kind": r.kind,
        "name": r.name,
        "uid": r.uid,
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

/// The `data` of a `kubernetes/events` notification: a Kubernetes Event, no faultId.
pub(crate) fn event_object(
    cluster: &str,
    subscription_id: &str,
    spec: &FaultSpec,
    now: SystemTime,
) -> Value {
    let r = resource_for(cluster, spec);
    let reason = match spec.fault_type.as_str() {
        "NodeUnhealthy" => "NodeNotReady",
        "DeploymentFailure" => "ProgressDeadlineExceeded",
        "JobFailure" => "BackoffLimitExceeded",
        _ => "BackOff",
    };
    let ts = rfc3339(now);
    json!({
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "event": {
            "type": if spec.severity == "info" { "Normal" } else { "Warning" },
            "reason": reason,
            "message": r.context,
            "namespace": r.namespace.unwrap_or("default"),
            "involvedObject": {
                "apiVersion": r.api_version,
                "kind": r.kind,
                "name": r.name,
                "namespace": r.namespace,
                "uid": r.uid,
            },
            "count": spec.condition + 1,
            "firstTimestamp": ts,
            "lastTimestamp": ts,
        },
    })
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
    fn fault_ids_are_sixteen_lowercase_hex() {
        let id = fault_id("sim-000", 7);
        assert_eq!(id.len(), 16);
        assert!(id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    }

    #[test]
    fn fault_ids_repeat_every_distinct_faults() {
        let a = FaultSpec::nth("sim-001", 1, 3);
        let b = FaultSpec::nth("sim-001", 4, 3);
        let c = FaultSpec::nth("sim-001", 2, 3);
        assert_eq!(a, b);
        assert_ne!(a.fault_id, c.fault_id);
    }

    #[test]
    fn zero_distinct_makes_every_fault_new() {
        let ids: std::collections::HashSet<String> = (0..1000)
            .map(|n| FaultSpec::nth("sim-000", n, 0).fault_id)
            .collect();
        assert_eq!(ids.len(), 1000);
    }

    #[test]
    fn fault_ids_differ_between_clusters() {
        assert_ne!(fault_id("sim-000", 0), fault_id("sim-001", 0));
    }

    #[test]
    fn fault_types_and_severities_rotate() {
        let types: std::collections::HashSet<String> = (0..5)
            .map(|n| FaultSpec::nth("c", n, 0).fault_type)
            .collect();
        assert_eq!(types.len(), 5);
        let sev: std::collections::HashSet<String> =
            (0..7).map(|n| FaultSpec::nth("c", n, 0).severity).collect();
        assert_eq!(sev.len(), 3);
    }

    #[test]
    fn fault_object_has_the_protocol_fields() {
        let spec = FaultSpec::nth("sim-002", 1, 0);
        let v = fault_object("sim-002", "sub-1", &spec, UNIX_EPOCH);
        assert_eq!(v["cluster"], "sim-002");
        assert_eq!(v["subscriptionId"], "sub-1");
        assert_eq!(v["faultId"], spec.fault_id.as_str());
        assert_eq!(v["faultType"], "CrashLoop");
        assert_eq!(v["resource"]["kind"], "Pod");
        assert_eq!(v["resource"]["namespace"], "shop");
        assert!(v["context"]
            .as_str()
            .unwrap()
            .starts_with("Back-off restarting failed container"));
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00Z");
    }

    #[test]
    fn node_faults_have_no_namespace() {
        let spec = FaultSpec::nth("c", 2, 0);
        assert_eq!(spec.fault_type, "NodeUnhealthy");
        let v = fault_object("c", "s", &spec, UNIX_EPOCH);
        assert!(v["resource"].get("namespace").is_none());
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
