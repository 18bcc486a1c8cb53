//! Correlation across clusters, end to end: simulated servers send the same fault (a pod
//! of the same Deployment, each cluster's pod with its own name), the pipeline makes one
//! incident with one run of the stub agent (a real child process), `incident.json` lists
//! every cluster, and Slack names them.

mod common;

use std::path::{Path, PathBuf};

use common::exec::executable;
use common::peers::repo_root;
use common::webhook::WebhookReceiver;
use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::health::board::Published;
use nightcrier::sim::SimCluster;

struct Fleet {
    dir: tempfile::TempDir,
    workspace: PathBuf,
}

impl Fleet {
    fn new() -> Fleet {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("incidents");
        Fleet { dir, workspace }
    }

    /// Globals: the stub agent, a kubectl that allows reads, and `extra`.
    fn globals(&self, extra: &str) -> String {
        let kubectl = executable(
            self.dir.path(),
            "kubectl",
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = nodes ] && { echo no; exit 1; }; done\necho yes\n",
        );
        let stub = repo_root().join("scripts/stub-agent.sh");
        let agent = executable(
            self.dir.path(),
            "agent",
            &format!(
                "#!/bin/sh\nSTUB_AGENT_MODE=ok STUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
                stub.display()
            ),
        );
        format!(
            "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n[agent]\n\
             script = {:?}\ntimeout = \"20s\"\nkill_grace = \"500ms\"\nmax_concurrent_agents = 4\n\
             [preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n{extra}\n",
            self.workspace.display().to_string(),
            agent.display().to_string(),
            kubectl.display().to_string(),
        )
    }

    /// A triage-enabled cluster; `settings` go into its `[[clusters]]` table.
    fn cluster(&self, cluster: &SimCluster, settings: &str) -> String {
        let kubeconfig = self
            .dir
            .path()
            .join(format!("kubeconfig-{}", cluster.name()));
        std::fs::write(&kubeconfig, "# kubeconfig\n").unwrap();
        format!(
            "{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
            cluster_toml(cluster, "")
                .replace("[clusters.mcp]", &format!("{settings}\n[clusters.mcp]")),
            kubeconfig.display().to_string()
        )
    }

    fn incidents(&self) -> Vec<serde_json::Value> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.workspace)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs.iter()
            .map(|dir| json(&dir.join("incident.json")))
            .collect()
    }
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn total(p: &Published, pick: fn(&nightcrier::metrics::counters::ClusterCounters) -> u64) -> u64 {
    p.pipeline.clusters.values().map(pick).sum()
}

/// The clusters an incident lists, with their fault ids, in order.
fn listed(incident: &serde_json::Value) -> Vec<(String, String)> {
    incident["clusters"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .map(|m| {
                    assert!(
                        m["received_at"].as_str().is_some_and(|t| t.ends_with('Z')),
                        "{m}"
                    );
                    (
                        m["cluster"].as_str().unwrap_or_default().to_owned(),
                        m["fault_id"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_active(running: &RunningLoop, clusters: &[SimCluster]) {
    for cluster in clusters {
        running.wait_status(cluster.name(), ConnectionStatus::Active);
    }
}

#[test]
fn the_same_fault_on_five_clusters_is_one_incident_with_one_agent_run() {
    let fleet = Fleet::new();
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(6);
    let clusters = sim.clusters();
    let slack = format!(
        "[slack]\nwebhook_url = {:?}\nca_file = {:?}\n[correlation]\nwindow = \"10s\"\nhold = \"2s\"\n",
        receiver.url(),
        receiver.ca_pem_path().display().to_string()
    );
    let mut text = fleet.globals(&slack);
    for (i, cluster) in clusters.iter().enumerate() {
        // The fourth cluster matters most: the agent runs there, whoever reported first.
        let priority = if i == 3 { "priority = 10" } else { "" };
        text.push_str(&fleet.cluster(cluster, priority));
    }
    let running = start_pipeline_loop(&parse_config(&text, fleet.dir.path()));
    wait_active(&running, clusters);

    let ids: Vec<(String, String)> = clusters[..5]
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.emit_fleet_fault("critical", "CrashLoop").unwrap(),
            )
        })
        .collect();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        total(p, |c| c.agents_investigated) == 1 && p.pipeline.slack.delivered == 1
    });
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(total(&published, |c| c.faults_triaged), 1, "one agent run");
    assert_eq!(total(&published, |c| c.faults_correlated), 4);
    assert_eq!(published.pipeline.correlation.incidents, 1);

    let incidents = fleet.incidents();
    assert_eq!(incidents.len(), 1, "{incidents:#?}");
    let incident = &incidents[0];
    assert_eq!(
        incident["cluster"],
        clusters[3].name(),
        "the highest priority runs it"
    );
    assert_eq!(incident["status"], "investigated");
    let mut members = listed(incident);
    members.sort();
    assert_eq!(members, ids);

    let requests = receiver.requests();
    let message = &requests[0].body;
    assert!(
        message.contains("Same fault on 4 more clusters"),
        "{message}"
    );
    for (cluster, _) in ids.iter().filter(|(c, _)| c != clusters[3].name()) {
        assert!(
            message.contains(cluster.as_str()),
            "{cluster} not named: {message}"
        );
    }

    // A cluster that reports after the message joins the incident, and is summed up once
    // the window ends.
    let late = clusters[5]
        .emit_fleet_fault("critical", "CrashLoop")
        .unwrap();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        p.pipeline.correlation.cluster_count == 1 && p.pipeline.slack.delivered == 2
    });
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(total(&published, |c| c.faults_triaged), 1, "still one run");
    assert_eq!(published.pipeline.correlation.cluster_sum, 6);
    let incidents = fleet.incidents();
    assert_eq!(incidents.len(), 1);
    let members = listed(&incidents[0]);
    assert_eq!(members.len(), 6, "{members:?}");
    assert_eq!(members[5], (clusters[5].name().to_owned(), late));
    assert_eq!(incidents[0]["status"], "investigated", "its end is kept");
    let summary = &receiver.requests()[1].body;
    assert!(
        summary.contains(&format!(
            "1 more clusters had the fault of incident {}",
            incidents[0]["incident_id"].as_str().unwrap_or("?")
        )) && summary.contains(clusters[5].name()),
        "{summary}"
    );
    running.stop().unwrap();
}

#[test]
fn the_same_fault_after_the_window_is_a_new_incident() {
    let fleet = Fleet::new();
    let sim = quiet_sim(2);
    let [a, b] = [&sim.clusters()[0], &sim.clusters()[1]];
    let mut text = fleet.globals("[correlation]\nwindow = \"1s\"\nhold = \"100ms\"\n");
    text.push_str(&fleet.cluster(a, ""));
    text.push_str(&fleet.cluster(b, ""));
    let running = start_pipeline_loop(&parse_config(&text, fleet.dir.path()));
    wait_active(&running, sim.clusters());

    a.emit_fleet_fault("critical", "CrashLoop").unwrap();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        total(p, |c| c.agents_investigated) == 1 && p.pipeline.correlation.cluster_count == 1
    });
    assert!(done, "{:#?}", published.pipeline);
    b.emit_fleet_fault("critical", "CrashLoop").unwrap();
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| total(p, |c| c.agents_investigated) == 2);
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(total(&published, |c| c.faults_correlated), 0);
    let incidents = fleet.incidents();
    assert_eq!(incidents.len(), 2);
    for incident in &incidents {
        assert_eq!(listed(incident).len(), 1, "{incident}");
    }
    running.stop().unwrap();
}

#[test]
fn a_cluster_that_opts_out_keeps_its_own_incident() {
    let fleet = Fleet::new();
    let sim = quiet_sim(3);
    let clusters = sim.clusters();
    let mut text = fleet.globals("[correlation]\nhold = \"1s\"\n");
    text.push_str(&fleet.cluster(&clusters[0], ""));
    text.push_str(&fleet.cluster(&clusters[1], ""));
    text.push_str(&fleet.cluster(&clusters[2], "correlate = false"));
    let running = start_pipeline_loop(&parse_config(&text, fleet.dir.path()));
    wait_active(&running, clusters);
    for cluster in clusters {
        cluster.emit_fleet_fault("critical", "CrashLoop").unwrap();
    }
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| total(p, |c| c.agents_investigated) == 2);
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(total(&published, |c| c.faults_correlated), 1);
    let mut counts: Vec<usize> = fleet.incidents().iter().map(|i| listed(i).len()).collect();
    counts.sort();
    assert_eq!(
        counts,
        [0, 2],
        "the opted-out cluster's incident lists no others"
    );
    running.stop().unwrap();
}

#[test]
fn correlation_turned_off_runs_every_cluster_on_its_own() {
    let fleet = Fleet::new();
    let sim = quiet_sim(3);
    let clusters = sim.clusters();
    let mut text = fleet.globals("[correlation]\nenabled = false\n");
    for cluster in clusters {
        text.push_str(&fleet.cluster(cluster, ""));
    }
    let running = start_pipeline_loop(&parse_config(&text, fleet.dir.path()));
    wait_active(&running, clusters);
    for cluster in clusters {
        cluster.emit_fleet_fault("critical", "CrashLoop").unwrap();
    }
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| total(p, |c| c.agents_investigated) == 3);
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(total(&published, |c| c.faults_correlated), 0);
    assert_eq!(published.pipeline.correlation.incidents, 0);
    assert_eq!(fleet.incidents().len(), 3);
    running.stop().unwrap();
}
