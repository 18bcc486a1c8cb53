//! Silences and maintenance windows: a fault whose labels every matcher of a silence accepts,
//! while the silence holds, is recorded as silenced and starts no agent and no Slack
//! message. Silences come from the file (`[[silences]]`, applied again on reload) and from
//! the admin listener's Alertmanager-v2-shaped API (kept in `silences.json` under
//! `workspace_root`).

pub mod api;
pub mod matcher;
pub mod store;
pub mod window;

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::config::ClusterConfig;
use matcher::Matcher;
use window::ActiveTime;

/// One silence: all of its matchers must accept a fault while `active` holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Silence {
    /// `file:<name>` for the file's, a UUID for the API's.
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub active: ActiveTime,
    pub comment: String,
    pub created_by: String,
}

impl Silence {
    pub fn matches(&self, fault: &FaultLabels<'_>, at: Timestamp) -> bool {
        self.active.contains(at) && self.matchers.iter().all(|m| m.matches(fault.get(&m.name)))
    }
}

/// The labels of one fault a matcher can test: the cluster's name, environment and labels,
/// and the fault's type and resource. Borrowed from the fault as it arrives.
#[derive(Clone, Copy, Debug)]
pub struct FaultLabels<'a> {
    pub cluster: &'a ClusterConfig,
    pub fault_type: &'a str,
    pub namespace: Option<&'a str>,
    pub resource_kind: &'a str,
    pub resource_name: &'a str,
}

impl<'a> FaultLabels<'a> {
    /// The value of label `name`; the fault's own names win over a cluster label so named.
    pub fn get(&self, name: &str) -> Option<&'a str> {
        match name {
            "cluster" => Some(&self.cluster.name),
            "environment" => self.cluster.environment.as_deref(),
            "namespace" => self.namespace,
            "fault_type" => Some(self.fault_type),
            "resource_kind" => Some(self.resource_kind),
            "resource_name" => Some(self.resource_name),
            label => self.cluster.labels.get(label).map(String::as_str),
        }
    }
}

/// The silences the intake checks: the file's and the API's (replaced whole when the API
/// changes them), with how many faults each has silenced.
#[derive(Debug, Default)]
pub struct SilenceSet {
    file: Vec<Silence>,
    runtime: Arc<Vec<Silence>>,
    /// Faults silenced, by silence id, since the start (kept across reloads).
    silenced: BTreeMap<String, u64>,
}

impl SilenceSet {
    pub fn new(file: Vec<Silence>, runtime: Arc<Vec<Silence>>) -> SilenceSet {
        SilenceSet {
            file,
            runtime,
            silenced: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.file.is_empty() && self.runtime.is_empty()
    }

    pub fn file(&self) -> &[Silence] {
        &self.file
    }

    /// The file's silences after a reload.
    pub fn set_file(&mut self, file: Vec<Silence>) {
        self.file = file;
    }

    /// The API's silences after a change. Counts of silences gone are forgotten.
    pub fn set_runtime(&mut self, runtime: Arc<Vec<Silence>>) {
        self.runtime = runtime;
        let (file, runtime) = (&self.file, &self.runtime);
        self.silenced
            .retain(|id, _| file.iter().chain(runtime.iter()).any(|s| &s.id == id));
    }

    /// The first silence that holds for `fault` at `at`, counted; `None` when none does.
    pub fn silence(&mut self, fault: &FaultLabels<'_>, at: Timestamp) -> Option<&Silence> {
        let found = self
            .file
            .iter()
            .chain(self.runtime.iter())
            .find(|s| s.matches(fault, at))?;
        match self.silenced.get_mut(&found.id) {
            Some(count) => *count += 1,
            None => {
                self.silenced.insert(found.id.clone(), 1);
            }
        }
        Some(found)
    }

    /// Faults silenced by each silence since the start.
    pub fn silenced_counts(&self) -> &BTreeMap<String, u64> {
        &self.silenced
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> ClusterConfig {
        let text = "[[clusters]]\nname = \"prod-eu-1\"\nenvironment = \"production\"\n\
                    labels = { team = \"payments\" }\n\
                    [clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n";
        let config = crate::config::parse_str(
            text,
            std::path::Path::new("t.toml"),
            &[],
            &crate::config::FlagOverrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        config.clusters[0].clone()
    }

    fn silence(id: &str, matchers: Vec<Matcher>) -> Silence {
        Silence {
            id: id.into(),
            matchers,
            active: ActiveTime::Between {
                starts_at: "2026-01-01T00:00:00Z".parse().unwrap(),
                ends_at: "2027-01-01T00:00:00Z".parse().unwrap(),
            },
            comment: String::new(),
            created_by: String::new(),
        }
    }

    #[test]
    fn every_matcher_must_accept_and_the_first_silence_is_counted() {
        let cluster = cluster();
        let fault = FaultLabels {
            cluster: &cluster,
            fault_type: "CrashLoop",
            namespace: Some("shop"),
            resource_kind: "Pod",
            resource_name: "api-7d9f8c6b5-x2kq9",
        };
        let at: Timestamp = "2026-06-01T00:00:00Z".parse().unwrap();
        let mut set = SilenceSet::new(
            vec![silence(
                "file:other-team",
                vec![
                    Matcher::exact("environment", "production", true).unwrap(),
                    Matcher::exact("team", "search", true).unwrap(),
                ],
            )],
            Arc::new(vec![silence(
                "rt",
                vec![
                    Matcher::glob("cluster", "prod-*", true).unwrap(),
                    Matcher::exact("team", "payments", true).unwrap(),
                    Matcher::regex("resource_name", "api-.*", true).unwrap(),
                    Matcher::exact("namespace", "kube-system", false).unwrap(),
                ],
            )]),
        );
        assert_eq!(set.silence(&fault, at).map(|s| s.id.as_str()), Some("rt"));
        assert_eq!(set.silence(&fault, at).map(|s| s.id.as_str()), Some("rt"));
        assert_eq!(set.silenced_counts().get("rt"), Some(&2));
        let late: Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        assert!(set.silence(&fault, late).is_none(), "over at ends_at");
        let other = FaultLabels {
            namespace: Some("kube-system"),
            ..fault
        };
        assert!(set.silence(&other, at).is_none(), "!= refuses kube-system");
    }
}
