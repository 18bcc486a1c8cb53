//! The read-only check through the daemon: a kubeconfig that can create, patch or delete
//! is flagged in /health/clusters and in every workspace of its cluster, and with
//! `triage.require_read_only = true` its faults are refused, counted as skipped with the
//! reason, and never get a workspace or an agent.

mod common;

use std::path::{Path, PathBuf};

use common::exec::executable;
use common::peers::repo_root;
use common::*;
use nightcrier::health::board::Published;
use nightcrier::health::render::clusters_document;
use nightcrier::metrics::counters::ClusterCounters;
use nightcrier::sim::{SimOptions, Simulator};

/// `auth can-i` says yes to everything, except writes for a kubeconfig whose path says
/// `readonly`.
fn fake_kubectl(dir: &Path) -> PathBuf {
    executable(
        dir,
        "kubectl",
        "#!/bin/sh\ncase \"$2\" in *readonly*) case \"$5\" in create|patch|delete) echo no; exit 1 ;; esac ;; esac\necho yes\n",
    )
}

fn stub_agent(dir: &Path) -> PathBuf {
    let stub = repo_root().join("scripts/stub-agent.sh");
    executable(
        dir,
        "agent",
        &format!(
            "#!/bin/sh\nSTUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            stub.display()
        ),
    )
}

fn counter(p: &Published, cluster: &str, pick: fn(&ClusterCounters) -> u64) -> u64 {
    p.pipeline.clusters.get(cluster).map(pick).unwrap_or(0)
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_kubeconfig_that_can_write_is_flagged_and_refused_where_read_only_is_required() {
    let dir = tempfile::tempdir().unwrap();
    let workspace_root = dir.path().join("incidents");
    let sim = Simulator::start(SimOptions {
        clusters: 3,
        rate_per_sec: 20.0,
        faults_per_cluster: Some(2),
        ..SimOptions::default()
    })
    .unwrap();
    let [writer, reader, legacy] = [0, 1, 2].map(|i| &sim.clusters()[i]);
    let mut text = format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n[agent]\nscript = {:?}\ntimeout = \"20s\"\n[preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n",
        workspace_root.display().to_string(),
        stub_agent(dir.path()).display().to_string(),
        fake_kubectl(dir.path()).display().to_string(),
    );
    for (cluster, kubeconfig, require) in [
        (writer, "kubeconfig-writer", "require_read_only = true\n"),
        (reader, "kubeconfig-readonly", "require_read_only = true\n"),
        (legacy, "kubeconfig-legacy", ""),
    ] {
        let path = dir.path().join(kubeconfig);
        std::fs::write(&path, "# kubeconfig\n").unwrap();
        text.push_str(&format!(
            "{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n{require}",
            cluster_toml(cluster, ""),
            path.display().to_string()
        ));
    }
    let running = start_pipeline_loop(&parse_config(&text, dir.path()));
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, writer.name(), |c| c.triage_refused_can_write) == 2
            && counter(p, reader.name(), |c| c.agents_investigated) == 2
            && counter(p, legacy.name(), |c| c.agents_investigated) == 2
    });
    assert!(done, "{:#?}", published.pipeline.clusters);
    let refused = &published.pipeline.clusters[writer.name()];
    assert_eq!(refused.faults_skipped, 2, "refusals count as skipped");
    assert_eq!(refused.faults_triaged, 0);
    assert_eq!(
        refused.agents_failed, 0,
        "a refusal is not an agent failure"
    );
    assert_eq!(refused.breaker, "closed");

    let health = serde_json::to_value(clusters_document(&published)).unwrap();
    let flag = |name: &str| {
        health["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .map(|c| c["kubeconfig_can_write"].clone())
    };
    assert_eq!(flag(writer.name()), Some(serde_json::json!(true)));
    assert_eq!(flag(legacy.name()), Some(serde_json::json!(true)));
    assert_eq!(flag(reader.name()), Some(serde_json::json!(false)));

    let mut incidents: Vec<PathBuf> = std::fs::read_dir(&workspace_root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    incidents.sort();
    assert_eq!(incidents.len(), 4, "{incidents:?}");
    for dir in &incidents {
        let permissions = json(&dir.join("incident_cluster_permissions.json"));
        let cluster = permissions["cluster"].as_str().unwrap().to_owned();
        assert_ne!(cluster, writer.name(), "a refused cluster got a workspace");
        if cluster == legacy.name() {
            assert_eq!(permissions["can_write"], true);
            let access = permissions["write_access"].as_array().unwrap();
            assert!(access.iter().any(|a| a == "delete pods"), "{access:?}");
            assert!(permissions["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .any(|w| w.as_str().unwrap().contains("CAN WRITE")));
        } else {
            assert_eq!(permissions["can_write"], false);
            assert_eq!(permissions["read_only_verified"], true);
        }
    }
    running.stop().unwrap();
}
