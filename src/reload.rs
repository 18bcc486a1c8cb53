//! SIGHUP: read the configuration file again and work out what to do with it. A file that
//! does not validate changes nothing. A valid one is applied as a diff: clusters added or
//! enabled start, clusters removed or disabled stop (their sessions are DELETEd), clusters
//! whose connection settings changed reconnect, and every other change (labels, severity,
//! triage, model, priority) applies in place without touching the session.

use std::sync::Arc;

use crate::config::{ClusterConfig, Config, ConfigErrors};
use crate::registry::{self, Registry};

/// Reads the configuration again (the file the daemon started with, same flags and env).
pub type ConfigSource = Box<dyn FnMut() -> Result<Config, ConfigErrors> + Send>;

pub struct Reloader {
    /// The configuration last applied.
    pub current: Config,
    /// The configuration the daemon started with: settings that cannot change in place
    /// keep these values until a restart.
    pub started: Config,
    pub source: ConfigSource,
}

impl Reloader {
    pub fn new(config: Config, source: ConfigSource) -> Reloader {
        Reloader {
            current: config.clone(),
            started: config,
            source,
        }
    }
}

/// What a new configuration means for the running daemon.
#[derive(Debug, Default)]
pub struct ReloadPlan {
    /// Added, or newly enabled: connect.
    pub start: Vec<Arc<ClusterConfig>>,
    /// Removed, or disabled: close the session.
    pub stop: Vec<String>,
    /// Connection settings changed: close and connect again.
    pub reconnect: Vec<Arc<ClusterConfig>>,
    /// Other settings changed: apply in place.
    pub update: Vec<Arc<ClusterConfig>>,
    /// Triage settings changed or the cluster is new: run the permission preflight.
    pub preflight: Vec<String>,
    /// Global settings that changed but only take effect after a restart.
    pub needs_restart: Vec<&'static str>,
}

impl ReloadPlan {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty()
            && self.stop.is_empty()
            && self.reconnect.is_empty()
            && self.update.is_empty()
            && self.needs_restart.is_empty()
    }

    pub fn describe(&self) -> String {
        let names = |list: &[Arc<ClusterConfig>]| -> String {
            list.iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(",")
        };
        format!(
            "started [{}], stopped [{}], reconnected [{}], updated in place [{}]",
            names(&self.start),
            self.stop.join(","),
            names(&self.reconnect),
            names(&self.update)
        )
    }
}

/// `old` is the configuration last applied, `started` the one the daemon started with.
pub fn plan(old: &Config, new: &Config, started: &Config) -> ReloadPlan {
    let old_registry = Registry::load(old);
    let new_registry = Registry::load(new);
    let diff = registry::diff(&old_registry, &new_registry);
    let mut plan = ReloadPlan::default();
    let shared = |name: &str| new_registry.get(name).map(|c| Arc::new(c.clone()));
    for name in &diff.added {
        if let Some(config) = shared(name).filter(|c| c.enabled) {
            plan.preflight.push(name.clone());
            plan.start.push(config);
        }
    }
    for name in &diff.removed {
        if old_registry.get(name).is_some_and(|c| c.enabled) {
            plan.stop.push(name.clone());
        }
    }
    for change in &diff.changed {
        let (Some(before), Some(after)) = (old_registry.get(&change.name), shared(&change.name))
        else {
            continue;
        };
        if change.needs_preflight() && after.enabled {
            plan.preflight.push(change.name.clone());
        }
        match (before.enabled, after.enabled) {
            (true, false) => plan.stop.push(change.name.clone()),
            (false, true) => {
                plan.preflight.push(change.name.clone());
                plan.start.push(after);
            }
            (false, false) => {}
            (true, true) if change.needs_reconnect() => plan.reconnect.push(after),
            (true, true) => plan.update.push(after),
        }
    }
    plan.preflight.sort();
    plan.preflight.dedup();
    plan.needs_restart = restart_only_changes(started, new);
    plan
}

/// Global settings the running daemon cannot change in place, compared with the values it
/// runs with (those it started with). `shard` is not among them: the cluster diff applies it.
fn restart_only_changes(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |name: &'static str, differs: bool| {
        if differs {
            changed.push(name);
        }
    };
    check("health", old.health != new.health);
    check("admin", old.admin != new.admin);
    check("queue", old.queue != new.queue);
    check("dedup", old.dedup != new.dedup);
    check("slack", old.slack != new.slack);
    check("log_level", old.log_level != new.log_level);
    check("log_format", old.log_format != new.log_format);
    check(
        "agent.kill_grace",
        old.agent.kill_grace != new.agent.kill_grace,
    );
    check("workspace_root", old.workspace_root != new.workspace_root);
    check("subscribe_mode", old.subscribe_mode != new.subscribe_mode);
    check("breaker", old.breaker != new.breaker);
    check(
        "shutdown_timeout",
        old.shutdown_timeout != new.shutdown_timeout,
    );
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{parse_str, FlagOverrides};
    use std::path::Path;

    fn config(clusters: &str, globals: &str) -> Config {
        let text = format!("{globals}\n{clusters}");
        parse_str(&text, Path::new("t.toml"), &[], &FlagOverrides::default())
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn cluster(name: &str, port: u16, extra: &str) -> String {
        format!("[[clusters]]\nname = \"{name}\"\n{extra}\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:{port}/mcp\"\n")
    }

    fn names(list: &[Arc<ClusterConfig>]) -> Vec<&str> {
        list.iter().map(|c| c.name.as_str()).collect()
    }

    #[test]
    fn added_removed_and_changed_clusters_are_sorted_into_actions() {
        let old = config(
            &[
                cluster("keep", 1, ""),
                cluster("gone", 2, ""),
                cluster("relabel", 3, "labels = { team = \"a\" }"),
                cluster("move", 4, ""),
                cluster("off", 5, ""),
            ]
            .concat(),
            "",
        );
        let new = config(
            &[
                cluster("keep", 1, ""),
                cluster("relabel", 3, "labels = { team = \"b\" }"),
                cluster("move", 40, ""),
                cluster("off", 5, "enabled = false"),
                cluster("new", 6, ""),
            ]
            .concat(),
            "",
        );
        let plan = plan(&old, &new, &old);
        assert_eq!(names(&plan.start), ["new"]);
        let mut stopped = plan.stop.clone();
        stopped.sort();
        assert_eq!(stopped, ["gone", "off"]);
        assert_eq!(names(&plan.reconnect), ["move"]);
        assert_eq!(names(&plan.update), ["relabel"]);
        assert_eq!(plan.preflight, ["new"]);
        assert!(plan.needs_restart.is_empty());
    }

    #[test]
    fn triage_change_reruns_preflight_without_reconnecting() {
        let old = config(&cluster("a", 1, ""), "");
        let new = config(
            &format!(
                "{}[clusters.triage]\nenabled = true\nkubeconfig = \"kc\"\n",
                cluster("a", 1, "")
            ),
            "",
        );
        let plan = plan(&old, &new, &old);
        assert_eq!(names(&plan.update), ["a"]);
        assert!(plan.reconnect.is_empty());
        assert_eq!(plan.preflight, ["a"]);
    }

    #[test]
    fn global_changes_that_cannot_apply_live_are_named() {
        let old = config(&cluster("a", 1, ""), "");
        let new = config(
            &cluster("a", 1, ""),
            "[health]\nlisten = \"127.0.0.1:9999\"\n[queue]\nglobal_queue_size = 5000",
        );
        let plan = plan(&old, &new, &old);
        assert_eq!(plan.needs_restart, ["health", "queue"]);
    }

    #[test]
    fn identical_files_plan_nothing() {
        let text = cluster("a", 1, "");
        let config = config(&text, "");
        assert!(plan(&config, &config, &config).is_empty());
    }
}
