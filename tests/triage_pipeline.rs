//! From fault to finished triage, end to end: the simulator's faults pass the pipeline, the
//! stub agent (a real child process) investigates with its cluster's own kubeconfig, the
//! workspace holds every file, and Slack gets its message.

mod common;

use std::path::{Path, PathBuf};

use common::exec::executable;
use common::peers::repo_root;
use common::webhook::WebhookReceiver;
use common::*;
use nightcrier::health::board::Published;
use nightcrier::sim::{SimOptions, Simulator};

/// A kubectl that answers `auth can-i` with yes, except "no" for nodes.
fn fake_kubectl(dir: &Path) -> PathBuf {
    executable(
        dir,
        "kubectl",
        "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = nodes ] && { echo no; exit 1; }; done\necho yes\n",
    )
}

/// The stub agent with a fixed mode.
fn agent(dir: &Path, mode: &str) -> PathBuf {
    let stub = repo_root().join("scripts/stub-agent.sh");
    executable(
        dir,
        &format!("agent-{mode}"),
        &format!(
            "#!/bin/sh\nSTUB_AGENT_MODE={mode} STUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            stub.display()
        ),
    )
}

struct Triage {
    dir: tempfile::TempDir,
    workspace: PathBuf,
    kubectl: PathBuf,
}

impl Triage {
    fn new() -> Triage {
        let dir = tempfile::tempdir().unwrap();
        let workspace = dir.path().join("incidents");
        let kubectl = fake_kubectl(dir.path());
        Triage {
            dir,
            workspace,
            kubectl,
        }
    }

    fn kubeconfig(&self, cluster: &str) -> PathBuf {
        let path = self.dir.path().join(format!("kubeconfig-{cluster}"));
        std::fs::write(&path, format!("# kubeconfig of {cluster}\n")).unwrap();
        path
    }

    /// Globals for a triage run with `agent` and `extra`.
    fn globals(&self, agent: &Path, extra: &str) -> String {
        format!(
            "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n[agent]\nscript = {:?}\ntimeout = \"20s\"\nkill_grace = \"500ms\"\nmax_concurrent_agents = 2\n[preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n{extra}\n",
            self.workspace.display().to_string(),
            agent.display().to_string(),
            self.kubectl.display().to_string(),
        )
    }

    fn triage_cluster(&self, cluster: &nightcrier::sim::SimCluster) -> String {
        let kubeconfig = self.kubeconfig(cluster.name());
        format!(
            "{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
            cluster_toml(cluster, ""),
            kubeconfig.display().to_string()
        )
    }

    fn incidents(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = std::fs::read_dir(&self.workspace)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        dirs
    }
}

fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn counter(
    p: &Published,
    cluster: &str,
    pick: fn(&nightcrier::metrics::counters::ClusterCounters) -> u64,
) -> u64 {
    p.pipeline.clusters.get(cluster).map(pick).unwrap_or(0)
}

/// `clusters` simulated servers, each sending two faults soon after subscribing.
fn two_faults_each(clusters: usize) -> Simulator {
    Simulator::start(SimOptions {
        clusters,
        rate_per_sec: 20.0,
        faults_per_cluster: Some(2),
        ..SimOptions::default()
    })
    .unwrap()
}

#[test]
fn multi_cluster_faults_become_incidents_with_each_clusters_kubeconfig() {
    let triage = Triage::new();
    let sim = two_faults_each(4);
    let [a, b, c, off] = [0, 1, 2, 3].map(|i| &sim.clusters()[i]);
    let mut text = triage
        .globals(&agent(triage.dir.path(), "ok"), "")
        .replace("[agent]\n", "[agent]\nmodel = \"global-model\"\n");
    text.push_str(&triage.triage_cluster(a));
    text.push_str("model = \"override-model\"\n");
    text.push_str(&triage.triage_cluster(b));
    text.push_str(&cluster_toml(c, ""));
    text.push_str(
        &cluster_toml(off, "").replace("[clusters.mcp]", "enabled = false\n[clusters.mcp]"),
    );
    let config = parse_config(&text, triage.dir.path());
    let running = start_pipeline_loop(&config);
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, a.name(), |c| c.agents_investigated) == 2
            && counter(p, b.name(), |c| c.agents_investigated) == 2
            && counter(p, c.name(), |c| c.faults_skipped) == 2
    });
    assert!(done, "{:#?}", published.pipeline.clusters);
    assert_eq!(counter(&published, c.name(), |c| c.faults_triaged), 0);
    let incidents = triage.incidents();
    assert_eq!(incidents.len(), 4, "{incidents:?}");
    for dir in &incidents {
        let incident = json(&dir.join("incident.json"));
        let cluster = incident["cluster"].as_str().unwrap().to_owned();
        assert!(cluster == a.name() || cluster == b.name(), "{cluster}");
        assert_eq!(incident["status"], "investigated");
        let report = std::fs::read_to_string(dir.join("output/investigation.md")).unwrap();
        let own = triage.dir.path().join(format!("kubeconfig-{cluster}"));
        assert!(
            report.contains(&own.display().to_string()),
            "agent got {cluster}'s kubeconfig:\n{report}"
        );
        let permissions = json(&dir.join("incident_cluster_permissions.json"));
        assert_eq!(permissions["cluster"], cluster.as_str());
        assert_eq!(permissions["can_get_pods"], true);
        assert_eq!(
            permissions["can_get_nodes"], false,
            "the fake kubectl said no"
        );
        assert_eq!(permissions["minimum_met"], true);
        assert!(
            permissions["can_get_secrets"].is_null(),
            "secrets not checked without allow_secrets_access"
        );
        let result = json(&dir.join("result.json"));
        assert_eq!(result["status"], "investigated");
        assert_eq!(result["exit_code"], 0);
        assert!(dir.join("agent-stdout.log").exists());
        let model = if cluster == a.name() {
            "override-model"
        } else {
            "global-model"
        };
        assert!(
            report.contains(&format!("model {model}")),
            "{cluster} runs {model}:\n{report}"
        );
    }
    assert_eq!(
        off.stats().connections_accepted,
        0,
        "a disabled cluster is never connected"
    );
    assert!(!published.clusters.iter().any(|s| s.name == off.name()));
    running.stop().unwrap();
}

#[test]
fn failing_agents_open_the_breaker_and_faults_are_counted_not_run() {
    let triage = Triage::new();
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let mut text = triage
        .globals(
            &agent(triage.dir.path(), "fail"),
            "[breaker]\nfailure_threshold = 2\ncooldown = \"1h\"\nglobal_failure_threshold = 2\n",
        )
        .replace("max_concurrent_agents = 2", "max_concurrent_agents = 1");
    text.push_str(&triage.triage_cluster(cluster));
    let running = start_pipeline_loop(&parse_config(&text, triage.dir.path()));
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    for fault_type in ["CrashLoop", "PodCrash", "JobFailure", "NodeUnhealthy"] {
        cluster.emit_fault("critical", fault_type).unwrap();
    }
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, cluster.name(), |c| c.agents_failed) == 2
            && counter(p, cluster.name(), |c| c.faults_breaker_open) == 2
    });
    assert!(done, "{:#?}", published.pipeline);
    let counters = &published.pipeline.clusters[cluster.name()];
    assert_eq!(counters.breaker, "open");
    assert_eq!(counters.faults_triaged, 2, "only two agents ran");
    assert!(
        published.pipeline.system_degraded,
        "two failures in a row cross the global threshold"
    );
    cluster.emit_fault("critical", "DeploymentFailure").unwrap();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, cluster.name(), |c| c.faults_breaker_open) == 3
    });
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(
        published.pipeline.clusters[cluster.name()].faults_triaged,
        2
    );
    running.stop().unwrap();
}

#[test]
fn single_cluster_mode_triages_with_the_top_level_kubeconfig() {
    let triage = Triage::new();
    let sim = two_faults_each(1);
    let kubeconfig = triage.kubeconfig("single");
    let mut text = format!(
        "mcp_endpoint = {:?}\nkubeconfig = {:?}\n",
        sim.clusters()[0].endpoint(),
        kubeconfig.display().to_string()
    );
    text.push_str(&triage.globals(&agent(triage.dir.path(), "ok"), ""));
    let config = parse_config(&text, triage.dir.path());
    assert_eq!(config.clusters.len(), 1);
    let name = config.clusters[0].name.clone();
    let running = start_pipeline_loop(&config);
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| counter(p, &name, |c| c.agents_investigated) == 2);
    assert!(done, "{:#?}", published.pipeline);
    for dir in triage.incidents() {
        let report = std::fs::read_to_string(dir.join("output/investigation.md")).unwrap();
        assert!(report.contains(&kubeconfig.display().to_string()));
    }
    running.stop().unwrap();
}

#[test]
fn hung_agent_is_killed_at_its_timeout() {
    let triage = Triage::new();
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let mut text = triage.globals(&agent(triage.dir.path(), "hang"), "");
    text = text.replace("timeout = \"20s\"", "timeout = \"1s\"");
    text.push_str(&triage.triage_cluster(cluster));
    let running = start_pipeline_loop(&parse_config(&text, triage.dir.path()));
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, cluster.name(), |c| c.agents_timed_out) == 1
    });
    assert!(done, "{:#?}", published.pipeline);
    assert_eq!(published.pipeline.agents_running, 0);
    let incidents = triage.incidents();
    assert_eq!(incidents.len(), 1);
    let result = json(&incidents[0].join("result.json"));
    assert_eq!(result["status"], "timed_out");
    running.stop().unwrap();
}

#[test]
fn slack_message_survives_a_429_and_a_500() {
    let triage = Triage::new();
    let receiver = WebhookReceiver::start(vec![(429, Some("1")), (500, None)]);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let slack = format!(
        "[slack]\nwebhook_url = {:?}\nca_file = {:?}\n",
        receiver.url(),
        receiver.ca_pem_path().display().to_string()
    );
    let mut text = triage.globals(&agent(triage.dir.path(), "ok"), &slack);
    text.push_str(&triage.triage_cluster(cluster));
    let running = start_pipeline_loop(&parse_config(&text, triage.dir.path()));
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    assert!(
        receiver.wait_for_requests(3, WAIT),
        "requests: {:?}",
        receiver.requests().len()
    );
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| p.pipeline.slack.delivered == 1);
    assert!(done, "{:?}", published.pipeline.slack);
    assert_eq!(published.pipeline.slack.retried, 2);
    let requests = receiver.requests();
    let answered: Vec<u16> = requests.iter().map(|r| r.answered).collect();
    assert_eq!(answered, vec![429, 500, 200]);
    let body: serde_json::Value = serde_json::from_str(&requests[2].body).unwrap();
    let text = body.to_string();
    assert!(body["blocks"].is_array());
    assert!(text.contains(cluster.name()), "{text}");
    assert!(text.contains("CrashLoop"), "{text}");
    assert!(
        !text.contains("services/T000"),
        "the webhook URL is not in the message"
    );
    running.stop().unwrap();
}

/// A relay with a self-signed certificate made by `openssl req -x509` (CA:TRUE), pinned as
/// `slack.ca_file`: Slack deliveries verify it like cluster connections do.
#[test]
fn slack_webhook_with_a_pinned_openssl_self_signed_certificate_is_delivered() {
    let triage = Triage::new();
    let cert =
        common::openssl::self_signed(triage.dir.path(), "relay", "127.0.0.1", "IP:127.0.0.1", &[]);
    let receiver = WebhookReceiver::start_with_certificate(vec![], &cert.cert_pem, &cert.key_pem);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let slack = format!(
        "[slack]\nwebhook_url = {:?}\nca_file = {:?}\n",
        receiver.url(),
        cert.cert_path.display().to_string()
    );
    let mut text = triage.globals(&agent(triage.dir.path(), "ok"), &slack);
    text.push_str(&triage.triage_cluster(cluster));
    let running = start_pipeline_loop(&parse_config(&text, triage.dir.path()));
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| p.pipeline.slack.delivered == 1);
    assert!(done, "{:?}", published.pipeline.slack);
    assert_eq!(published.pipeline.slack.retried, 0);
    assert_eq!(receiver.requests().len(), 1);
    assert!(receiver.connection_errors().is_empty());
    running.stop().unwrap();
}

#[test]
fn events_mode_warnings_reach_triage_and_normal_events_are_filtered() {
    let triage = Triage::new();
    // The simulator's events mode: every third event (2, 5, …) is `Normal`.
    let sim = Simulator::start(SimOptions {
        clusters: 1,
        rate_per_sec: 20.0,
        faults_per_cluster: Some(6),
        ..SimOptions::default()
    })
    .unwrap();
    let cluster = &sim.clusters()[0];
    let mut text = triage.globals(&agent(triage.dir.path(), "ok"), "").replace(
        "severity_threshold = \"info\"",
        "severity_threshold = \"warning\"\nsubscribe_mode = \"events\"",
    );
    text.push_str(&triage.triage_cluster(cluster));
    let config = parse_config(&text, triage.dir.path());
    let running = start_pipeline_loop(&config);
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, cluster.name(), |c| c.faults_received) == 6
            && counter(p, cluster.name(), |c| c.agents_investigated) == 4
    });
    assert!(done, "{:#?}", published.pipeline.clusters);
    assert_eq!(
        counter(&published, cluster.name(), |c| c.faults_filtered),
        2
    );
    for dir in triage.incidents() {
        let incident = json(&dir.join("incident.json"));
        assert_eq!(incident["fault"]["severity"], "warning", "{incident:#}");
        assert_eq!(incident["status"], "investigated");
    }
    running.stop().unwrap();
}

/// The Slack message is built from what the loop already holds: an agent that removes its
/// incident.json still gets its message (the loop never reads the file back).
#[test]
fn slack_message_does_not_read_incident_json_back() {
    let triage = Triage::new();
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let stub = repo_root().join("scripts/stub-agent.sh");
    let agent = executable(
        triage.dir.path(),
        "agent-removes-incident",
        &format!(
            "#!/bin/sh\nSTUB_AGENT_MODE=ok STUB_AGENT_DELAY=0.05 {} \"$@\"\nstatus=$?\nrm -f incident.json\nexit $status\n",
            stub.display()
        ),
    );
    let slack = format!(
        "[slack]\nwebhook_url = {:?}\nca_file = {:?}\n",
        receiver.url(),
        receiver.ca_pem_path().display().to_string()
    );
    let mut text = triage.globals(&agent, &slack);
    text.push_str(&triage.triage_cluster(cluster));
    let running = start_pipeline_loop(&parse_config(&text, triage.dir.path()));
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    assert!(
        receiver.wait_for_requests(1, WAIT),
        "no Slack message for an incident whose incident.json is gone"
    );
    let body = receiver.requests()[0].body.clone();
    assert!(body.contains(cluster.name()), "{body}");
    assert!(body.contains("CrashLoop"), "{body}");
    running.stop().unwrap();
}
