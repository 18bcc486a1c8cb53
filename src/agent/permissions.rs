//! What a cluster's kubeconfig lets an agent do, as the preflight found it. Written into
//! every workspace of the cluster as `incident_cluster_permissions.json`, so the agent (and
//! whoever reads its report) knows which evidence it could not have gathered.

use serde::{Deserialize, Serialize};

/// One `kubectl auth can-i VERB RESOURCE` answer. `error` is set when kubectl gave no
/// yes/no answer (not found, no connection, timed out); `allowed` is then false.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PermissionCheck {
    pub verb: String,
    pub resource: String,
    pub allowed: bool,
    pub error: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClusterPermissions {
    pub cluster: String,
    pub checked_at: String,
    pub kubeconfig: String,
    pub kubeconfig_readable: bool,
    pub checks: Vec<PermissionCheck>,
    pub can_get_pods: bool,
    pub can_get_logs: bool,
    pub can_get_events: bool,
    pub can_get_deployments: bool,
    pub can_get_services: bool,
    pub can_get_nodes: bool,
    /// `None` when secrets were not checked (`allow_secrets_access = false`).
    pub can_get_secrets: Option<bool>,
    pub can_get_configmaps: Option<bool>,
    /// Pods, pod logs and events: the least an investigation needs.
    pub minimum_met: bool,
    pub warnings: Vec<String>,
    /// The kubeconfig can create, patch or delete something (see `write_access`). A
    /// triage kubeconfig should be read-only: an agent runs a model on text from the cluster.
    #[serde(default)]
    pub can_write: bool,
    /// The write checks that were allowed, as `"VERB RESOURCE"`.
    #[serde(default)]
    pub write_access: Vec<String>,
    /// Every write check answered `no`: the kubeconfig is known to be read-only.
    #[serde(default)]
    pub read_only_verified: bool,
}

/// The checks every preflight runs, as (verb, resource). `pods/log` is a subresource.
pub const BASE_CHECKS: [(&str, &str); 6] = [
    ("get", "pods"),
    ("get", "pods/log"),
    ("list", "events"),
    ("get", "deployments"),
    ("get", "services"),
    ("get", "nodes"),
];

/// The writes a triage kubeconfig should not be able to make, as (verb, resource).
pub const WRITE_CHECKS: [(&str, &str); 6] = [
    ("create", "pods"),
    ("patch", "pods"),
    ("delete", "pods"),
    ("create", "deployments"),
    ("patch", "deployments"),
    ("delete", "deployments"),
];

fn is_write(verb: &str) -> bool {
    WRITE_CHECKS.iter().any(|(v, _)| *v == verb)
}

/// Checked only for clusters with `allow_secrets_access = true`.
pub const SECRET_CHECKS: [(&str, &str); 2] = [("get", "secrets"), ("get", "configmaps")];

impl ClusterPermissions {
    /// Derives the summary fields from the individual checks and adds the warnings an
    /// operator needs to see. `warnings` holds those the caller already has (unreadable
    /// kubeconfig, missing kubectl).
    pub fn from_checks(
        cluster: &str,
        checked_at: String,
        kubeconfig: String,
        kubeconfig_readable: bool,
        checks: Vec<PermissionCheck>,
        mut warnings: Vec<String>,
    ) -> ClusterPermissions {
        // The read checks; the write checks are summarized on their own below.
        let allowed = |resource: &str| -> Option<bool> {
            checks
                .iter()
                .find(|c| c.resource == resource && !is_write(&c.verb))
                .map(|c| c.allowed)
        };
        let writes: Vec<&PermissionCheck> = checks.iter().filter(|c| is_write(&c.verb)).collect();
        let write_access: Vec<String> = writes
            .iter()
            .filter(|c| c.allowed)
            .map(|c| format!("{} {}", c.verb, c.resource))
            .collect();
        let can_write = !write_access.is_empty();
        let read_only_verified =
            !writes.is_empty() && writes.iter().all(|c| !c.allowed && c.error.is_none());
        let can_get_pods = allowed("pods").unwrap_or(false);
        let can_get_logs = allowed("pods/log").unwrap_or(false);
        let can_get_events = allowed("events").unwrap_or(false);
        let minimum_met = can_get_pods && can_get_logs && can_get_events;
        for check in &checks {
            if let Some(error) = &check.error {
                warnings.push(format!(
                    "{} {}: check failed: {error}",
                    check.verb, check.resource
                ));
            }
        }
        if !minimum_met {
            let missing: Vec<&str> = [
                ("pods", can_get_pods),
                ("pods/log", can_get_logs),
                ("events", can_get_events),
            ]
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(name, _)| *name)
            .collect();
            warnings.push(format!(
                "minimum permissions not met: agent cannot read {}",
                missing.join(", ")
            ));
        }
        if can_write {
            warnings.push(format!(
                "kubeconfig CAN WRITE to the cluster ({}); a triage kubeconfig should be \
                 read-only (set triage.require_read_only = true to refuse it)",
                write_access.join(", ")
            ));
        }
        let can_get_secrets = allowed("secrets");
        if can_get_secrets == Some(true) {
            warnings.push("agent can read secrets (allow_secrets_access = true)".to_string());
        }
        ClusterPermissions {
            cluster: cluster.to_string(),
            checked_at,
            kubeconfig,
            kubeconfig_readable,
            can_get_pods,
            can_get_logs,
            can_get_events,
            can_get_deployments: allowed("deployments").unwrap_or(false),
            can_get_services: allowed("services").unwrap_or(false),
            can_get_nodes: allowed("nodes").unwrap_or(false),
            can_get_secrets,
            can_get_configmaps: allowed("configmaps"),
            minimum_met,
            checks,
            warnings,
            can_write,
            write_access,
            read_only_verified,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(verb: &str, resource: &str, allowed: bool) -> PermissionCheck {
        PermissionCheck {
            verb: verb.into(),
            resource: resource.into(),
            allowed,
            error: None,
        }
    }

    fn all_base(allowed: bool) -> Vec<PermissionCheck> {
        BASE_CHECKS
            .iter()
            .map(|(v, r)| check(v, r, allowed))
            .collect()
    }

    fn with_writes(mut checks: Vec<PermissionCheck>, allowed: &[&str]) -> Vec<PermissionCheck> {
        for (verb, resource) in WRITE_CHECKS {
            let name = format!("{verb} {resource}");
            checks.push(check(verb, resource, allowed.contains(&name.as_str())));
        }
        checks
    }

    #[test]
    fn a_kubeconfig_that_can_write_is_flagged_with_what_it_can_do() {
        let checks = with_writes(all_base(true), &["delete pods", "patch deployments"]);
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(p.can_write);
        assert!(!p.read_only_verified);
        assert_eq!(p.write_access, ["delete pods", "patch deployments"]);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.contains("CAN WRITE") && w.contains("delete pods")),
            "{:?}",
            p.warnings
        );
        assert!(p.can_get_pods, "a write check must not count as a read");
    }

    #[test]
    fn read_only_is_verified_only_when_every_write_check_answered_no() {
        let checks = with_writes(all_base(true), &[]);
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(!p.can_write);
        assert!(p.read_only_verified);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);

        let mut checks = with_writes(all_base(true), &[]);
        let last = checks.len() - 1;
        checks[last].error = Some("timed out after 1s".into());
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(!p.can_write);
        assert!(!p.read_only_verified, "an unanswered check proves nothing");

        let p = ClusterPermissions::from_checks(
            "c",
            "t".into(),
            "k".into(),
            true,
            all_base(true),
            vec![],
        );
        assert!(!p.read_only_verified, "no write checks ran");
    }

    #[test]
    fn minimum_needs_pods_logs_and_events() {
        let p = ClusterPermissions::from_checks(
            "c",
            "t".into(),
            "k".into(),
            true,
            all_base(true),
            vec![],
        );
        assert!(p.minimum_met);
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
        assert_eq!(p.can_get_secrets, None);

        let mut checks = all_base(true);
        checks[1].allowed = false;
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(!p.minimum_met);
        assert!(!p.can_get_logs);
        assert!(
            p.warnings.iter().any(|w| w.contains("pods/log")),
            "{:?}",
            p.warnings
        );
    }

    #[test]
    fn nodes_are_not_part_of_the_minimum() {
        let mut checks = all_base(true);
        checks[5].allowed = false;
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(p.minimum_met);
        assert!(!p.can_get_nodes);
    }

    #[test]
    fn secret_checks_are_reported_only_when_run() {
        let mut checks = all_base(true);
        checks.push(check("get", "secrets", true));
        checks.push(check("get", "configmaps", false));
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert_eq!(p.can_get_secrets, Some(true));
        assert_eq!(p.can_get_configmaps, Some(false));
        assert!(p.warnings.iter().any(|w| w.contains("secrets")));
    }

    #[test]
    fn errored_checks_become_warnings() {
        let mut checks = all_base(true);
        checks[2].allowed = false;
        checks[2].error = Some("timed out after 1s".into());
        let p = ClusterPermissions::from_checks("c", "t".into(), "k".into(), true, checks, vec![]);
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("list events") && w.contains("timed out")));
    }
}
