//! The cluster registry: the clusters this replica watches (after shard filtering),
//! looked up by name, and the difference between two registries for a reload.

use std::collections::HashMap;
use std::fmt;

use crate::config::{ClusterConfig, Config};

/// The clusters of one configuration that this replica owns, in file order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Registry {
    clusters: Vec<ClusterConfig>,
    by_name: HashMap<String, usize>,
}

impl Registry {
    /// Every cluster of `cfg` that its shard (if any) owns.
    pub fn load(cfg: &Config) -> Registry {
        let clusters: Vec<ClusterConfig> = cfg
            .clusters
            .iter()
            .filter(|c| cfg.shard.is_none_or(|shard| shard.owns(&c.name)))
            .cloned()
            .collect();
        Registry::from_clusters(clusters)
    }

    /// A registry of exactly these clusters (names are assumed unique, as validation ensures).
    pub fn from_clusters(clusters: Vec<ClusterConfig>) -> Registry {
        let by_name = clusters
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.clone(), i))
            .collect();
        Registry { clusters, by_name }
    }

    pub fn get(&self, name: &str) -> Option<&ClusterConfig> {
        self.by_name.get(name).map(|&i| &self.clusters[i])
    }

    /// All clusters, enabled or not, in file order.
    pub fn list(&self) -> &[ClusterConfig] {
        &self.clusters
    }

    /// Enabled clusters, highest priority first; equal priorities keep file order.
    pub fn enabled(&self) -> Vec<&ClusterConfig> {
        let mut enabled: Vec<&ClusterConfig> = self.clusters.iter().filter(|c| c.enabled).collect();
        enabled.sort_by_key(|c| std::cmp::Reverse(c.priority));
        enabled
    }

    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }
}

/// What changed between two registries, by cluster name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistryDiff {
    /// In the new registry only, in its order.
    pub added: Vec<String>,
    /// In the old registry only, in its order.
    pub removed: Vec<String>,
    /// In both, with different settings, in the new registry's order.
    pub changed: Vec<ClusterChange>,
}

impl RegistryDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The settings that differ for one cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterChange {
    pub name: String,
    pub fields: Vec<ChangedField>,
}

impl ClusterChange {
    /// A change of how to reach the server needs a new session.
    pub fn needs_reconnect(&self) -> bool {
        self.fields.iter().any(|f| f.is_connection_setting())
    }

    /// A change of triage credentials or permissions needs a new preflight check.
    pub fn needs_preflight(&self) -> bool {
        self.fields.iter().any(|f| {
            matches!(
                f,
                ChangedField::TriageEnabled
                    | ChangedField::TriageKubeconfig
                    | ChangedField::TriageAllowSecretsAccess
            )
        })
    }
}

/// One cluster setting, as named in the configuration file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ChangedField {
    McpEndpoint,
    McpApiKey,
    McpCaFile,
    McpInsecureSkipTlsVerify,
    Environment,
    Labels,
    Priority,
    Enabled,
    SeverityThreshold,
    TriageEnabled,
    TriageKubeconfig,
    TriageAllowSecretsAccess,
    TriageModel,
}

impl ChangedField {
    /// The dotted field name within a `[[clusters]]` entry.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangedField::McpEndpoint => "mcp.endpoint",
            ChangedField::McpApiKey => "mcp.api_key",
            ChangedField::McpCaFile => "mcp.ca_file",
            ChangedField::McpInsecureSkipTlsVerify => "mcp.insecure_skip_tls_verify",
            ChangedField::Environment => "environment",
            ChangedField::Labels => "labels",
            ChangedField::Priority => "priority",
            ChangedField::Enabled => "enabled",
            ChangedField::SeverityThreshold => "severity_threshold",
            ChangedField::TriageEnabled => "triage.enabled",
            ChangedField::TriageKubeconfig => "triage.kubeconfig",
            ChangedField::TriageAllowSecretsAccess => "triage.allow_secrets_access",
            ChangedField::TriageModel => "triage.model",
        }
    }

    /// True for the `mcp.*` settings.
    pub fn is_connection_setting(self) -> bool {
        matches!(
            self,
            ChangedField::McpEndpoint
                | ChangedField::McpApiKey
                | ChangedField::McpCaFile
                | ChangedField::McpInsecureSkipTlsVerify
        )
    }
}

impl fmt::Display for ChangedField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The fields in which two configurations of the same cluster differ.
pub fn changed_fields(old: &ClusterConfig, new: &ClusterConfig) -> Vec<ChangedField> {
    let checks = [
        (
            old.mcp.endpoint != new.mcp.endpoint,
            ChangedField::McpEndpoint,
        ),
        (old.mcp.api_key != new.mcp.api_key, ChangedField::McpApiKey),
        (old.mcp.ca_file != new.mcp.ca_file, ChangedField::McpCaFile),
        (
            old.mcp.insecure_skip_tls_verify != new.mcp.insecure_skip_tls_verify,
            ChangedField::McpInsecureSkipTlsVerify,
        ),
        (
            old.environment != new.environment,
            ChangedField::Environment,
        ),
        (old.labels != new.labels, ChangedField::Labels),
        (old.priority != new.priority, ChangedField::Priority),
        (old.enabled != new.enabled, ChangedField::Enabled),
        (
            old.severity_threshold != new.severity_threshold,
            ChangedField::SeverityThreshold,
        ),
        (
            old.triage.enabled != new.triage.enabled,
            ChangedField::TriageEnabled,
        ),
        (
            old.triage.kubeconfig != new.triage.kubeconfig,
            ChangedField::TriageKubeconfig,
        ),
        (
            old.triage.allow_secrets_access != new.triage.allow_secrets_access,
            ChangedField::TriageAllowSecretsAccess,
        ),
        (
            old.triage.model != new.triage.model,
            ChangedField::TriageModel,
        ),
    ];
    checks
        .into_iter()
        .filter_map(|(differs, field)| differs.then_some(field))
        .collect()
}

/// What a reload from `old` to `new` must add, remove and update.
pub fn diff(old: &Registry, new: &Registry) -> RegistryDiff {
    let added = new
        .list()
        .iter()
        .filter(|c| old.get(&c.name).is_none())
        .map(|c| c.name.clone())
        .collect();
    let removed = old
        .list()
        .iter()
        .filter(|c| new.get(&c.name).is_none())
        .map(|c| c.name.clone())
        .collect();
    let changed = new
        .list()
        .iter()
        .filter_map(|new_cluster| {
            let old_cluster = old.get(&new_cluster.name)?;
            let fields = changed_fields(old_cluster, new_cluster);
            (!fields.is_empty()).then(|| ClusterChange {
                name: new_cluster.name.clone(),
                fields,
            })
        })
        .collect();
    RegistryDiff {
        added,
        removed,
        changed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Endpoint, Secret, Severity, Shard};
    use std::path::PathBuf;

    fn cluster(name: &str, priority: i32, enabled: bool) -> ClusterConfig {
        let endpoint = Endpoint::parse(&format!("http://{name}.example:8080/mcp")).unwrap();
        let mut c = ClusterConfig::new(name, endpoint);
        c.priority = priority;
        c.enabled = enabled;
        c
    }

    fn config_with(clusters: Vec<ClusterConfig>) -> Config {
        let mut cfg = Config::defaults(PathBuf::from("test.toml"));
        cfg.clusters = clusters;
        cfg
    }

    #[test]
    fn get_finds_clusters_by_exact_name() {
        let reg = Registry::load(&config_with(vec![
            cluster("a", 0, true),
            cluster("b", 0, false),
        ]));
        assert_eq!(reg.get("b").map(|c| c.name.as_str()), Some("b"));
        assert!(reg.get("B").is_none());
        assert!(reg.get("c").is_none());
        assert_eq!(reg.len(), 2);
        assert!(!reg.is_empty());
    }

    #[test]
    fn list_keeps_file_order_including_disabled() {
        let reg = Registry::load(&config_with(vec![
            cluster("z", 0, true),
            cluster("a", 5, false),
            cluster("m", 1, true),
        ]));
        let names: Vec<_> = reg.list().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z", "a", "m"]);
    }

    #[test]
    fn enabled_is_priority_descending_then_file_order() {
        let reg = Registry::load(&config_with(vec![
            cluster("low", -1, true),
            cluster("first-ten", 10, true),
            cluster("off", 100, false),
            cluster("zero", 0, true),
            cluster("second-ten", 10, true),
        ]));
        let names: Vec<_> = reg.enabled().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["first-ten", "second-ten", "zero", "low"]);
    }

    #[test]
    fn load_keeps_only_the_clusters_this_shard_owns() {
        let clusters: Vec<_> = (0..30)
            .map(|i| cluster(&format!("c{i}"), 0, true))
            .collect();
        let mut total = 0;
        for index in 0..3 {
            let mut cfg = config_with(clusters.clone());
            cfg.shard = Some(Shard { index, count: 3 });
            let reg = Registry::load(&cfg);
            assert!(reg.list().iter().all(|c| cfg.shard.unwrap().owns(&c.name)));
            total += reg.len();
        }
        assert_eq!(total, 30);
    }

    #[test]
    fn diff_reports_added_and_removed_names() {
        let old = Registry::from_clusters(vec![cluster("a", 0, true), cluster("b", 0, true)]);
        let new = Registry::from_clusters(vec![cluster("b", 0, true), cluster("c", 0, true)]);
        let d = diff(&old, &new);
        assert_eq!(d.added, ["c"]);
        assert_eq!(d.removed, ["a"]);
        assert!(d.changed.is_empty());
    }

    #[test]
    fn identical_registries_have_an_empty_diff() {
        let reg = Registry::from_clusters(vec![cluster("a", 0, true)]);
        assert!(diff(&reg, &reg.clone()).is_empty());
    }

    #[test]
    fn diff_names_each_changed_field() {
        type Edit = fn(&mut ClusterConfig);
        let edits: [(Edit, ChangedField); 13] = [
            (
                |c| c.mcp.endpoint = Endpoint::parse("https://other:9/mcp").unwrap(),
                ChangedField::McpEndpoint,
            ),
            (
                |c| c.mcp.api_key = Some(Secret::new("k")),
                ChangedField::McpApiKey,
            ),
            (
                |c| c.mcp.ca_file = Some("ca.pem".into()),
                ChangedField::McpCaFile,
            ),
            (
                |c| c.mcp.insecure_skip_tls_verify = true,
                ChangedField::McpInsecureSkipTlsVerify,
            ),
            (
                |c| c.environment = Some("prod".into()),
                ChangedField::Environment,
            ),
            (
                |c| {
                    c.labels.insert("team".into(), "x".into());
                },
                ChangedField::Labels,
            ),
            (|c| c.priority = 7, ChangedField::Priority),
            (|c| c.enabled = false, ChangedField::Enabled),
            (
                |c| c.severity_threshold = Some(Severity::Critical),
                ChangedField::SeverityThreshold,
            ),
            (|c| c.triage.enabled = true, ChangedField::TriageEnabled),
            (
                |c| c.triage.kubeconfig = Some("kc".into()),
                ChangedField::TriageKubeconfig,
            ),
            (
                |c| c.triage.allow_secrets_access = true,
                ChangedField::TriageAllowSecretsAccess,
            ),
            (
                |c| c.triage.model = Some("opus".into()),
                ChangedField::TriageModel,
            ),
        ];
        for (edit, field) in edits {
            let old = Registry::from_clusters(vec![cluster("a", 0, true)]);
            let mut changed = cluster("a", 0, true);
            edit(&mut changed);
            let d = diff(&old, &Registry::from_clusters(vec![changed]));
            assert_eq!(
                d.changed,
                vec![ClusterChange {
                    name: "a".into(),
                    fields: vec![field],
                }],
                "{field}"
            );
            assert_eq!(
                d.changed[0].needs_reconnect(),
                field.as_str().starts_with("mcp.")
            );
        }
    }

    #[test]
    fn several_changes_are_listed_together() {
        let old = Registry::from_clusters(vec![cluster("a", 0, true)]);
        let mut changed = cluster("a", 3, true);
        changed.triage.model = Some("opus".into());
        let d = diff(&old, &Registry::from_clusters(vec![changed]));
        assert_eq!(
            d.changed[0].fields,
            [ChangedField::Priority, ChangedField::TriageModel]
        );
        assert!(!d.changed[0].needs_reconnect());
        assert!(!d.changed[0].needs_preflight());
    }

    #[test]
    fn triage_credential_changes_need_a_preflight() {
        let change = ClusterChange {
            name: "a".into(),
            fields: vec![ChangedField::TriageKubeconfig],
        };
        assert!(change.needs_preflight());
        assert!(!change.needs_reconnect());
    }
}
