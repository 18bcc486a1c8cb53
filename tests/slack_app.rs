//! Slack app mode end to end against a local HTTPS fake of the Web API: the simulator's
//! faults become incidents, the stub agent (a real child process) investigates, and each
//! incident gets one root message, edited in place with the outcome, with repeats as replies
//! in its thread, across a restart, within Slack's rate limits.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::exec::executable;
use common::fake_slack::{FakeSlack, Message, Scripted, TOKEN};
use common::peers::repo_root;
use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::config::Config;
use nightcrier::sim::{SimCluster, SimOptions, Simulator};

const CHANNEL: &str = "C0INCIDENTS";

struct Setup {
    dir: tempfile::TempDir,
    workspace: PathBuf,
    agent: PathBuf,
    kubectl: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        Setup::with_agent("ok")
    }

    /// The stub agent in `mode` (`ok`, `fail`, ...).
    fn with_agent(mode: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let kubectl = executable(
            dir.path(),
            "kubectl",
            "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = nodes ] && { echo no; exit 1; }; done\necho yes\n",
        );
        let stub = repo_root().join("scripts/stub-agent.sh");
        let agent = executable(
            dir.path(),
            &format!("agent-{mode}"),
            // The report's "Current Status" is what the test last wrote into
            // `resource-status` (unhealthy until then).
            &format!(
                "#!/bin/sh\nstatus=$(cat {:?} 2>/dev/null || echo unhealthy)\n\
                 STUB_AGENT_MODE={mode} STUB_AGENT_DELAY=0.05 STUB_AGENT_RESOURCE_STATUS=$status \
                 exec {} \"$@\"\n",
                dir.path().join("resource-status").display().to_string(),
                stub.display()
            ),
        );
        Setup {
            workspace: dir.path().join("incidents"),
            dir,
            agent,
            kubectl,
        }
    }

    /// Triage of every cluster of `sim`, app mode against `slack`.
    fn config(
        &self,
        sim: &Simulator,
        slack: &FakeSlack,
        extra_slack: &str,
        agents: usize,
    ) -> String {
        let mut text = format!(
            "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
             [dedup]\nwindow = \"1s\"\n\
             [agent]\nscript = {:?}\ntimeout = \"20s\"\nkill_grace = \"500ms\"\nmax_concurrent_agents = {agents}\n\
             [preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n\
             [slack]\nbot_token = {TOKEN:?}\nchannel = {CHANNEL:?}\napi_url = {:?}\nca_file = {:?}\n{extra_slack}\n",
            self.workspace.display().to_string(),
            self.agent.display().to_string(),
            self.kubectl.display().to_string(),
            slack.api_url(),
            slack.ca_pem_path().display().to_string(),
        );
        for cluster in sim.clusters() {
            let kubeconfig = self
                .dir
                .path()
                .join(format!("kubeconfig-{}", cluster.name()));
            std::fs::write(&kubeconfig, "# kubeconfig\n").unwrap();
            text.push_str(&format!(
                "{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
                cluster_toml(cluster, ""),
                kubeconfig.display().to_string()
            ));
        }
        text
    }

    fn thread_files(&self) -> Vec<serde_json::Value> {
        let mut records = Vec::new();
        for entry in std::fs::read_dir(&self.workspace)
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = entry.path().join("slack.json");
            if let Ok(text) = std::fs::read_to_string(&path) {
                records.push(serde_json::from_str(&text).unwrap());
            }
        }
        records
    }
}

/// The daemon's loop on `text`, a configuration made by `setup`, once `cluster` is active.
fn start_on(setup: &Setup, text: &str, cluster: &SimCluster) -> (Config, RunningLoop) {
    let config = parse_config(text, setup.dir.path());
    let running = start_pipeline_loop(&config);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    (config, running)
}

/// One fault on one resource, over and over: every emit is the same fault.
fn repeating_sim(clusters: usize) -> Simulator {
    Simulator::start(SimOptions {
        clusters,
        rate_per_sec: 0.0,
        distinct_faults: 1,
        fault_dedup_window: Duration::from_millis(1),
        ..SimOptions::default()
    })
    .unwrap()
}

fn roots(messages: &[Message]) -> Vec<&Message> {
    messages.iter().filter(|m| m.thread_ts.is_none()).collect()
}

fn emit(cluster: &SimCluster) {
    assert!(cluster.emit_fault("critical", "CrashLoop").is_some());
}

/// The same fault again and again (the dedup window lets one through every second) until
/// Slack has a message `seen` accepts; false if none came after 40 tries.
fn emit_until(cluster: &SimCluster, slack: &FakeSlack, seen: impl Fn(&Message) -> bool) -> bool {
    for _ in 0..40 {
        emit(cluster);
        let (_, found) = slack.wait_until(Duration::from_millis(500), |m, _| m.iter().any(&seen));
        if found {
            return true;
        }
    }
    false
}

fn outcome_landed(messages: &[Message], n: usize) -> bool {
    roots(messages)
        .iter()
        .filter(|m| m.text.contains("(investigated)"))
        .count()
        >= n
}

#[test]
fn incident_has_one_root_updated_with_the_outcome_and_a_repeat_replies_in_its_thread() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let (_, running) = start_on(
        &setup,
        &setup.config(&sim, &slack, "channel_interval = \"50ms\"", 2),
        cluster,
    );
    emit(cluster);

    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let calls = slack.calls();
    assert_eq!(calls[0].method, "chat.postMessage");
    assert_eq!(
        calls[0].authorization.as_deref(),
        Some(&*format!("Bearer {TOKEN}"))
    );
    assert!(calls[0]
        .content_type
        .as_deref()
        .is_some_and(|t| t.starts_with("application/json")));
    let first = calls[0].body.to_string();
    assert!(first.contains("Investigating"), "{first}");
    assert_eq!(calls[0].body["channel"], CHANNEL);
    assert_eq!(calls[1].method, "chat.update");
    let root = roots(&messages)[0].clone();
    assert_eq!(calls[1].body["ts"], root.ts.as_str());
    assert_eq!(root.updates, 1);
    let header = root.blocks[0]["text"]["text"].as_str().unwrap().to_string();
    assert!(header.contains("CRITICAL"), "{header}");
    assert!(header.contains("CrashLoop"), "{header}");
    assert!(header.contains(cluster.name()), "{header}");
    assert!(!root.blocks.to_string().contains(TOKEN));
    let threads = setup.thread_files();
    assert_eq!(threads.len(), 1, "{threads:?}");
    assert_eq!(threads[0]["ts"], root.ts.as_str());
    assert_eq!(threads[0]["channel"], CHANNEL);

    // The same fault again, once the dedup window let it through: a reply in the thread
    // and the root edited again; never a second root.
    let replied = emit_until(cluster, &slack, |m| {
        m.thread_ts.as_deref() == Some(root.ts.as_str())
    });
    assert!(replied, "{:#?}", slack.messages());
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter().any(|m| m.ts == root.ts && m.updates >= 3)
    });
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages).len(), 1, "{messages:#?}");
    let reply = messages.iter().find(|m| m.thread_ts.is_some()).unwrap();
    assert!(reply.text.contains("Seen again (run 2)"), "{}", reply.text);
    running.stop().unwrap();
}

#[test]
fn restart_keeps_updating_the_same_root_message() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let (config, running) = start_on(&setup, &setup.config(&sim, &slack, "", 2), cluster);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    running.stop().unwrap();
    let root_ts = roots(&messages)[0].ts.clone();

    // A new daemon: the fault comes back, and its thread is found in the workspace.
    let running = start_pipeline_loop(&config);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter().any(|m| m.ts == root_ts && m.updates >= 3)
            && m.iter()
                .any(|m| m.thread_ts.as_deref() == Some(root_ts.as_str()))
    });
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages).len(), 1, "{messages:#?}");
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert!(root.text.contains("(investigated)"), "{}", root.text);
    let posts = slack
        .calls()
        .iter()
        .filter(|c| c.method == "chat.postMessage" && c.body.get("thread_ts").is_none())
        .count();
    assert_eq!(posts, 1, "one root message in all");
    running.stop().unwrap();
}

#[test]
fn rate_limits_and_long_messages_are_retried_and_refusals_are_counted() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    slack.script(
        "chat.postMessage",
        vec![Scripted::rate_limited("1"), Scripted::error("msg_too_long")],
    );
    slack.script("chat.update", vec![Scripted::error("internal_error")]);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let (_, running) = start_on(&setup, &setup.config(&sim, &slack, "", 2), cluster);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let calls = slack.calls();
    let statuses: Vec<(String, u16, bool)> = calls
        .iter()
        .map(|c| (c.method.clone(), c.status, c.ok))
        .collect();
    assert_eq!(
        statuses[..5],
        [
            ("chat.postMessage".into(), 429, false),
            ("chat.postMessage".into(), 200, false),
            ("chat.postMessage".into(), 200, true),
            ("chat.update".into(), 200, false),
            ("chat.update".into(), 200, true),
        ],
        "{statuses:?}"
    );
    // Retry-After: 1 was waited for.
    assert!(calls[1].at.duration_since(calls[0].at) >= Duration::from_millis(950));
    // msg_too_long: sent again as text alone.
    assert!(calls[2].body.get("blocks").is_none(), "{}", calls[2].body);
    assert!(calls[2].body["text"]
        .as_str()
        .unwrap()
        .contains("CrashLoop"));
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| p.pipeline.slack.delivered >= 2);
    assert!(done, "{:?}", published.pipeline.slack);
    let errors = &published.pipeline.slack.api_errors;
    assert_eq!(errors.get("ratelimited"), Some(&1), "{errors:?}");
    assert_eq!(errors.get("msg_too_long"), Some(&1), "{errors:?}");
    assert_eq!(errors.get("internal_error"), Some(&1), "{errors:?}");
    running.stop().unwrap();
}

#[test]
fn channel_not_found_is_named_in_metrics_and_nothing_else_is_sent() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&["C0OTHER"], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let (_, running) = start_on(&setup, &setup.config(&sim, &slack, "", 2), cluster);
    emit(cluster);
    let (published, done) = running.board.wait_for(WAIT, |p| {
        p.pipeline.slack.api_errors.get("channel_not_found") == Some(&1)
            && p.pipeline
                .clusters
                .get(cluster.name())
                .is_some_and(|c| c.agents_investigated == 1)
    });
    assert!(done, "{:?}", published.pipeline.slack);
    // The outcome had no root message to edit: dropped, and counted as failed.
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| p.pipeline.slack.failed >= 2);
    assert!(done, "{:?}", published.pipeline.slack);
    let calls = slack.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert!(setup.thread_files().is_empty());
    running.stop().unwrap();
}

/// Fifty incidents at once, all in one channel: every root and every outcome lands, no two
/// messages in the channel closer than the interval, and chat.update within its tier.
#[test]
fn fifty_incidents_at_once_stay_within_the_rate_limit_and_all_land() {
    let setup = Setup::new();
    // The fake refuses anything closer than half the client's interval.
    let slack = FakeSlack::start(&[CHANNEL], Duration::from_millis(50));
    let sim = Simulator::start(SimOptions {
        clusters: 5,
        rate_per_sec: 0.0,
        ..SimOptions::default()
    })
    .unwrap();
    let config = parse_config(
        &setup.config(&sim, &slack, "channel_interval = \"100ms\"", 10),
        setup.dir.path(),
    );
    let running = start_pipeline_loop(&config);
    for cluster in sim.clusters() {
        running.wait_status(cluster.name(), ConnectionStatus::Active);
    }
    for cluster in sim.clusters() {
        for _ in 0..10 {
            emit(cluster);
        }
    }
    let (messages, done) = slack.wait_until(Duration::from_secs(60), |m, _| outcome_landed(m, 50));
    assert!(done, "{} messages", messages.len());
    assert_eq!(roots(&messages).len(), 50);
    assert!(roots(&messages).iter().all(|m| m.updates == 1));
    assert_eq!(
        slack.too_soon(),
        0,
        "calls closer than the channel interval"
    );
    let calls = slack.calls();
    assert!(calls.iter().all(|c| c.status == 200 && c.ok));
    let updates: Vec<_> = calls.iter().filter(|c| c.method == "chat.update").collect();
    assert_eq!(updates.len(), 50);
    // All answered ok: every update named a root message that was already there.
    running.stop().unwrap();
}

#[test]
fn bot_token_with_a_webhook_or_without_a_channel_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let both = "[slack]\nbot_token = \"xoxb-1\"\nchannel = \"C1\"\nwebhook_url = \"https://hooks.example/services/x\"\n";
    let source = dir.path().join("nightcrier.toml");
    let errors = nightcrier::config::parse_str(both, &source, &[], &Default::default())
        .unwrap_err()
        .to_string();
    assert!(errors.contains("bot_token"), "{errors}");
    assert!(errors.contains("not both"), "{errors}");
    assert!(!errors.contains("xoxb-1"), "{errors}");
    let no_channel = "[slack]\nbot_token = \"xoxb-1\"\n";
    let errors = nightcrier::config::parse_str(no_channel, &source, &[], &Default::default())
        .unwrap_err()
        .to_string();
    assert!(errors.contains("slack.channel"), "{errors}");
}

#[test]
fn routes_send_each_clusters_incidents_to_its_channel() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL, "C0TEAMB", "C0CRASH"], Duration::ZERO);
    let sim = quiet_sim(3);
    let [a, b, c] = [0, 1, 2].map(|i| &sim.clusters()[i]);
    let routes = format!(
        "[[slack.routes]]\ncluster = {:?}\nchannel = \"C0TEAMB\"\n\
         [[slack.routes]]\ncluster = {:?}\nfault_type = \"Crash*\"\nchannel = \"C0CRASH\"\n",
        b.name(),
        c.name()
    );
    let text = setup.config(&sim, &slack, "", 4).replacen(
        "\n[[clusters]]",
        &format!("\n{routes}\n[[clusters]]"),
        1,
    );
    let config = parse_config(&text, setup.dir.path());
    let running = start_pipeline_loop(&config);
    for cluster in [a, b, c] {
        running.wait_status(cluster.name(), ConnectionStatus::Active);
    }
    for cluster in [a, b, c] {
        assert!(cluster.emit_fault("critical", "CrashLoop").is_some());
    }
    assert!(c.emit_fault("warning", "ImagePull").is_some());
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 4));
    assert!(done, "{messages:#?}");
    let channel_of = |cluster: &SimCluster, fault: &str| -> Vec<String> {
        roots(&messages)
            .iter()
            .filter(|m| m.text.contains(&format!("{fault} on {}:", cluster.name())))
            .map(|m| m.channel.clone())
            .collect()
    };
    assert_eq!(channel_of(a, "CrashLoop"), [CHANNEL]);
    assert_eq!(channel_of(b, "CrashLoop"), ["C0TEAMB"]);
    assert_eq!(channel_of(c, "CrashLoop"), ["C0CRASH"]);
    assert_eq!(channel_of(c, "ImagePull"), [CHANNEL]);
    running.stop().unwrap();
}

#[test]
fn routes_must_name_a_destination_of_the_mode_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("nightcrier.toml");
    let parse = |text: &str| {
        nightcrier::config::parse_str(text, &source, &[], &Default::default())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let cluster =
        "[[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n";
    let app = "[slack]\nbot_token = \"xoxb-1\"\nchannel = \"C1\"\n";
    let errors = parse(&format!(
        "{app}[[slack.routes]]\ncluster = \"a\"\nwebhook_url = \"https://hooks.example/services/SECRET\"\n{cluster}"
    ));
    assert!(errors.contains("slack.routes[0]"), "{errors}");
    assert!(errors.contains("set channel, not a webhook"), "{errors}");
    assert!(!errors.contains("SECRET"), "{errors}");
    let errors = parse(&format!(
        "{app}[[slack.routes]]\ncluster = \"a\"\n{cluster}"
    ));
    assert!(errors.contains("names no channel"), "{errors}");
    let errors = parse(&format!(
        "[slack]\nwebhook_url = \"https://hooks.example/services/x\"\n[[slack.routes]]\nchannel = \"C1\"\n{cluster}"
    ));
    assert!(
        errors.contains("set webhook_url, not a channel"),
        "{errors}"
    );
    assert!(parse(&format!(
        "{app}[[slack.routes]]\nlabels = {{ team = \"pay*\" }}\nchannel = \"C2\"\n{cluster}"
    ))
    .is_empty());
}

#[test]
fn check_shows_the_route_of_each_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[slack]\nbot_token = \"xoxb-secret-1\"\nchannel = \"C0ALL\"\n\
        [[slack.routes]]\nfault_type = \"OOM*\"\nlabels = { team = \"payments\" }\nchannel = \"C0PAYMEM\"\n\
        [[slack.routes]]\ncluster = \"prod-*\"\nchannel = \"C0PROD\"\n\
        [[clusters]]\nname = \"prod-eu-1\"\nlabels = { team = \"payments\" }\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\
        [[clusters]]\nname = \"staging-1\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:2/mcp\"\n";
    let config = parse_config(text, dir.path());
    let summary = nightcrier::config::render_summary(&config);
    assert!(
        summary.contains(
            "slack route            route 2 -> channel C0PROD (fault type OOM*: route 1 -> channel C0PAYMEM)"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("slack route            default -> channel C0ALL"),
        "{summary}"
    );
    assert!(!summary.contains("xoxb-secret-1"), "{summary}");
}

/// The Web API reached through an HTTP proxy with CONNECT: the proxy's credentials from
/// `slack.proxy` go as `Proxy-Authorization`, and wrong ones are refused (407) and counted.
#[test]
fn app_mode_tunnels_through_a_connect_proxy_with_its_credentials() {
    use common::connect_proxy::ConnectProxy;
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    // "ops:s3cret" in base64.
    let proxy = ConnectProxy::start(Some("Basic b3BzOnMzY3JldA==".to_string()));
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let good = format!("proxy = \"http://ops:s3cret@{}\"", proxy.addr());
    let (_, running) = start_on(&setup, &setup.config(&sim, &slack, &good, 2), cluster);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    running.stop().unwrap();
    let tunnels = proxy.tunnels();
    let target = slack
        .api_url()
        .trim_start_matches("https://")
        .trim_end_matches("/api")
        .to_string();
    assert_eq!(tunnels, vec![(target.clone(), true), (target, true)]);

    // Wrong credentials: the proxy refuses, nothing reaches Slack, the error is counted.
    let setup = Setup::new();
    let bad = format!(
        "proxy = \"http://ops:wrong@{}\"\nmax_attempts = 1",
        proxy.addr()
    );
    let config = parse_config(&setup.config(&sim, &slack, &bad, 2), setup.dir.path());
    let before = slack.calls().len();
    let running = start_pipeline_loop(&config);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    emit(cluster);
    let (published, done) = running.board.wait_for(WAIT, |p| {
        p.pipeline.slack.api_errors.get("transport_error") == Some(&1)
    });
    assert!(done, "{:?}", published.pipeline.slack);
    assert_eq!(slack.calls().len(), before);
    assert!(proxy.tunnels().iter().any(|(_, allowed)| !allowed));
    running.stop().unwrap();
}

/// A failed run edits the root to the failure (whatever notify_on_agent_failure says), and
/// the system-degraded alert goes to the default channel as a message of its own.
#[test]
fn failed_run_updates_the_root_and_the_degraded_alert_is_posted() {
    let setup = Setup::with_agent("fail");
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let text = setup.config(&sim, &slack, "", 2).replace(
        "[agent]\n",
        "[breaker]\nglobal_failure_threshold = 1\n[agent]\n",
    );
    let (_, running) = start_on(&setup, &text, cluster);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.text.contains("(agent failed)") && m.updates == 1)
            && m.iter().any(|m| m.text.contains("nightcrier degraded"))
    });
    assert!(done, "{messages:#?}");
    let alert = messages
        .iter()
        .find(|m| m.text.contains("nightcrier degraded"))
        .unwrap();
    assert_eq!(alert.channel, CHANNEL);
    assert!(alert.thread_ts.is_none());
    assert_eq!(
        roots(&messages).len(),
        2,
        "the incident's root and the alert"
    );
    running.stop().unwrap();
}

/// The operator marks a finished incident resolved with a `resolved` file in its
/// workspace: the root message says so and a reply records it.
#[test]
fn a_resolved_file_updates_the_root_to_resolved() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let (_, running) = start_on(
        &setup,
        &setup.config(&sim, &slack, "resolved_check_interval = \"200ms\"", 2),
        cluster,
    );
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let root_ts = roots(&messages)[0].ts.clone();
    // Not resolved before the operator says so.
    assert!(!messages.iter().any(|m| m.text.contains("resolved")));
    let workspace = std::fs::read_dir(&setup.workspace)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("slack.json").is_file())
        .unwrap();
    std::fs::write(workspace.join("resolved"), "rolled back to v2.13\n").unwrap();
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.ts == root_ts && m.text.contains("(resolved)"))
            && m.iter().any(|m| {
                m.thread_ts.as_deref() == Some(root_ts.as_str())
                    && m.text.contains("Marked resolved")
            })
    });
    assert!(done, "{messages:#?}");
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert!(root
        .blocks
        .to_string()
        .contains(":large_green_circle: Resolved"));
    assert!(root.blocks.to_string().contains("Root cause"));
    running.stop().unwrap();
}

/// A later run of the same fault whose report finds the resource healthy resolves the
/// incident: the root says so, a reply names the run, and a `resolved` file in that run's
/// workspace keeps it resolved across a restart. A first run that finds it healthy only
/// says so.
#[test]
fn a_later_run_that_finds_the_resource_healthy_resolves_the_incident() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let config = parse_config(
        &setup.config(
            &sim,
            &slack,
            "channel_interval = \"50ms\"\nresolved_check_interval = \"100ms\"",
            2,
        ),
        setup.dir.path(),
    );
    std::fs::write(setup.dir.path().join("resource-status"), "healthy").unwrap();
    let running = start_pipeline_loop(&config);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let root_ts = roots(&messages)[0].ts.clone();
    let first = roots(&messages)[0].blocks.to_string();
    assert!(first.contains("*Resource now*\\nhealthy"), "{first}");
    assert!(!first.contains("Resolved"), "{first}");

    // The fault comes back and is still there at first: run 2 says unhealthy.
    std::fs::write(setup.dir.path().join("resource-status"), "unhealthy").unwrap();
    let replied = emit_until(cluster, &slack, |m| {
        m.thread_ts.as_deref() == Some(root_ts.as_str()) && m.text.contains("(run 2)")
    });
    assert!(replied, "{:#?}", slack.messages());
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.ts == root_ts && m.text.contains("(investigated)") && m.updates >= 3)
    });
    assert!(done, "{messages:#?}");
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert!(root
        .blocks
        .to_string()
        .contains("*Resource now*\\nunhealthy"));

    // Run 3 finds it healthy: resolved.
    std::fs::write(setup.dir.path().join("resource-status"), "healthy").unwrap();
    let resolved = emit_until(cluster, &slack, |m| {
        m.thread_ts.as_deref() == Some(root_ts.as_str())
            && m.text.contains("Run 3 found")
            && m.text.contains("healthy: resolved")
    });
    assert!(resolved, "{:#?}", slack.messages());
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.ts == root_ts && m.text.contains("(resolved)"))
    });
    assert!(done, "{messages:#?}");
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert!(
        root.blocks
            .to_string()
            .contains("Resolved: run 3 found the resource healthy"),
        "{:#}",
        root.blocks
    );
    assert_eq!(roots(&messages).len(), 1, "{messages:#?}");
    running.stop().unwrap();

    // The `resolved` file is in the workspace of run 3, next to its thread record.
    let run3 = std::fs::read_dir(&setup.workspace)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            std::fs::read_to_string(p.join("slack.json")).is_ok_and(|t| t.contains("\"runs\": 3"))
        })
        .expect("run 3's slack.json");
    let note = std::fs::read_to_string(run3.join("resolved")).unwrap();
    assert!(note.contains("run 3 found the resource healthy"), "{note}");

    // After a restart, nothing is marked resolved a second time.
    let calls_before = slack.calls().len();
    let running = start_pipeline_loop(&config);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    let (messages, marked) = slack.wait_until(Duration::from_millis(1500), |m, _| {
        m.iter().any(|m| m.text.contains("Marked resolved"))
    });
    assert!(!marked, "{messages:#?}");
    assert_eq!(slack.calls().len(), calls_before);
    running.stop().unwrap();
}

/// Webhook mode as before, and through the same CONNECT proxy when one is set.
#[test]
fn webhook_mode_still_posts_one_message_and_tunnels_through_a_proxy() {
    use common::connect_proxy::ConnectProxy;
    use common::webhook::WebhookReceiver;
    let setup = Setup::new();
    let receiver = WebhookReceiver::start(vec![]);
    let proxy = ConnectProxy::start(None);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let kubeconfig = setup.dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "# kubeconfig\n").unwrap();
    let text = format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
         [agent]\nscript = {:?}\ntimeout = \"20s\"\nkill_grace = \"500ms\"\n\
         [preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n\
         [slack]\nwebhook_url = {:?}\nca_file = {:?}\nproxy = \"http://{}\"\n\
         {}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
        setup.workspace.display().to_string(),
        setup.agent.display().to_string(),
        setup.kubectl.display().to_string(),
        receiver.url(),
        receiver.ca_pem_path().display().to_string(),
        proxy.addr(),
        cluster_toml(cluster, ""),
        kubeconfig.display().to_string(),
    );
    let running = start_pipeline_loop(&parse_config(&text, setup.dir.path()));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    emit(cluster);
    assert!(receiver.wait_for_requests(1, WAIT));
    let requests = receiver.requests();
    assert_eq!(requests.len(), 1);
    let body: serde_json::Value = serde_json::from_str(&requests[0].body).unwrap();
    assert!(
        body["text"].as_str().unwrap().contains("Investigated"),
        "{body}"
    );
    assert!(
        setup.thread_files().is_empty(),
        "webhook mode keeps no thread"
    );
    assert_eq!(proxy.tunnels(), vec![(receiver.addr().to_string(), true)]);
    running.stop().unwrap();
}

/// Runs the daemon on `config`, logging to `log`; stopped by [`stop_daemon`].
fn spawn_daemon(config: &std::path::Path, log: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["run", "--config"])
        .arg(config)
        .args(["--health-listen", "off"])
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn signal(daemon: &std::process::Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
    assert_eq!(unsafe { libc::kill(daemon.id() as libc::pid_t, signal) }, 0);
}

/// SIGTERM, then the exit within the time bound; returns the daemon's log.
fn stop_daemon(daemon: std::process::Child, log: &std::path::Path) -> String {
    signal(&daemon, libc::SIGTERM);
    let (tx, rx) = std::sync::mpsc::channel();
    let mut daemon = daemon;
    std::thread::spawn(move || {
        let _ = tx.send(daemon.wait());
    });
    let status = rx.recv_timeout(WAIT).expect("daemon exits").unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{log}");
    log
}

/// Emits a fault once the daemon has subscribed (before, the simulator sends it nowhere).
fn emit_until_sent(cluster: &SimCluster) {
    let deadline = std::time::Instant::now() + WAIT;
    while cluster.emit_fault("critical", "CrashLoop").is_none() {
        assert!(std::time::Instant::now() < deadline, "never subscribed");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGHUP, then the daemon's word that the new configuration is in use.
fn reload(daemon: &std::process::Child, log: &std::path::Path, times: usize) {
    signal(daemon, libc::SIGHUP);
    let deadline = std::time::Instant::now() + WAIT;
    while std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("configuration reloaded")
        .count()
        < times
    {
        assert!(std::time::Instant::now() < deadline, "no reload in the log");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A repeat of a fault that has a thread, silenced by a silence added at a reload: a reply
/// in the thread says so, and no new incident is investigated.
#[test]
fn a_silenced_repeat_replies_in_the_faults_thread() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let config_path = setup.dir.path().join("nightcrier.toml");
    let text = setup.config(&sim, &slack, "", 2);
    std::fs::write(&config_path, &text).unwrap();
    let log = setup.dir.path().join("daemon.log");
    let daemon = spawn_daemon(&config_path, &log);
    emit_until_sent(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let root_ts = roots(&messages)[0].ts.clone();

    let silence = format!(
        "[[silences]]\nname = \"shop-upgrade\"\nstarts_at = \"2020-01-01T00:00:00Z\"\n\
         ends_at = \"2099-01-01T00:00:00Z\"\nmatchers = {{ cluster = {:?} }}\n",
        cluster.name()
    );
    let text = text.replacen("\n[[clusters]]", &format!("\n{silence}\n[[clusters]]"), 1);
    std::fs::write(&config_path, text).unwrap();
    reload(&daemon, &log, 1);
    emit_until_sent(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter().any(|m| {
            m.thread_ts.as_deref() == Some(root_ts.as_str()) && m.text.contains("silenced")
        })
    });
    assert!(done, "{messages:#?}");
    let reply = messages.iter().find(|m| m.thread_ts.is_some()).unwrap();
    assert!(reply.text.contains("`file:shop-upgrade`"), "{}", reply.text);
    assert_eq!(roots(&messages).len(), 1);
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert_eq!(root.updates, 1, "the root keeps its outcome");
    stop_daemon(daemon, &log);
}

/// The daemon itself: a SIGHUP with new routes sends the next incident to the new channel.
#[test]
fn a_reload_applies_new_routes() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL, "C0FIRST", "C0SECOND"], Duration::ZERO);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let config_path = setup.dir.path().join("nightcrier.toml");
    let write = |channel: &str| {
        let routes = format!(
            "[[slack.routes]]\ncluster = {:?}\nchannel = {channel:?}\n",
            cluster.name()
        );
        let text = setup.config(&sim, &slack, "", 2).replacen(
            "\n[[clusters]]",
            &format!("\n{routes}\n[[clusters]]"),
            1,
        );
        std::fs::write(&config_path, text).unwrap();
    };
    write("C0FIRST");
    let log_path = setup.dir.path().join("daemon.log");
    let daemon = spawn_daemon(&config_path, &log_path);
    emit_until_sent(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages)[0].channel, "C0FIRST");

    write("C0SECOND");
    reload(&daemon, &log_path, 1);
    emit_until_sent(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 2));
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages)[1].channel, "C0SECOND");
    let log = stop_daemon(daemon, &log_path);
    assert!(!log.contains(TOKEN), "the bot token is never logged");
}

/// The reply in `root_ts`'s thread that contains `needle`, waited for.
fn wait_reply(slack: &FakeSlack, root_ts: &str, needle: &str) -> Vec<Message> {
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.thread_ts.as_deref() == Some(root_ts) && m.text.contains(needle))
    });
    assert!(done, "{messages:#?}");
    messages
}

/// Two clusters with the same fault within the correlation window: one root message, and
/// the cluster that joins after it went out gets a reply in its thread, not a root.
#[test]
fn a_cluster_that_joins_a_correlated_incident_replies_in_its_thread() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = quiet_sim(2);
    let [a, b] = [&sim.clusters()[0], &sim.clusters()[1]];
    let correlation = "\n[correlation]\nwindow = \"60s\"\nhold = \"100ms\"\n";
    let config = parse_config(
        &setup.config(&sim, &slack, correlation, 2),
        setup.dir.path(),
    );
    let running = start_pipeline_loop(&config);
    running.wait_status(a.name(), ConnectionStatus::Active);
    running.wait_status(b.name(), ConnectionStatus::Active);

    a.emit_fleet_fault("critical", "CrashLoop").unwrap();
    let (messages, done) = slack.wait_until(WAIT, |m, _| !roots(m).is_empty());
    assert!(done, "{messages:#?}");
    let root_ts = roots(&messages)[0].ts.clone();
    let joined = b.emit_fleet_fault("critical", "CrashLoop").unwrap();

    let messages = wait_reply(&slack, &root_ts, &format!("Same fault on {}", b.name()));
    let reply = messages.iter().find(|m| m.thread_ts.is_some()).unwrap();
    assert!(
        reply.text.contains(&format!("`{joined}`")),
        "{}",
        reply.text
    );
    assert!(
        reply.text.ends_with("Z)"),
        "the time it came: {}",
        reply.text
    );
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages).len(), 1, "{messages:#?}");
    assert_eq!(
        messages.iter().filter(|m| m.thread_ts.is_some()).count(),
        1,
        "one reply: {messages:#?}"
    );
    running.stop().unwrap();
}

/// A repeat of a fault that has a thread, refused for the budget: a reply in the thread
/// says no agent ran and until when; no new root.
#[test]
fn a_repeat_refused_for_the_budget_replies_in_the_faults_thread() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let budget = "\n[budget]\nruns_per_day = 1\n";
    let (_, running) = start_on(&setup, &setup.config(&sim, &slack, budget, 2), cluster);
    emit(cluster);
    let (messages, done) = slack.wait_until(WAIT, |m, _| outcome_landed(m, 1));
    assert!(done, "{messages:#?}");
    let root_ts = roots(&messages)[0].ts.clone();

    // The same fault again, once the dedup window let it through.
    let replied = emit_until(cluster, &slack, |m| {
        m.thread_ts.as_deref() == Some(root_ts.as_str())
    });
    assert!(replied, "{:#?}", slack.messages());
    let messages = slack.messages();
    let reply = messages.iter().find(|m| m.thread_ts.is_some()).unwrap();
    assert!(
        reply.text.contains("triage budget reached"),
        "{}",
        reply.text
    );
    assert!(
        reply.text.contains("fleet runs per day (1)"),
        "{}",
        reply.text
    );
    assert!(reply.text.contains("until 20"), "{}", reply.text);
    let root = messages.iter().find(|m| m.ts == root_ts).unwrap();
    assert_eq!(root.updates, 1, "the root keeps its outcome");
    // The first refusal of the window also posts the channel's one budget notice.
    let (messages, done) = slack.wait_until(WAIT, |m, _| {
        m.iter()
            .any(|m| m.thread_ts.is_none() && m.text.contains("triage budget reached"))
    });
    assert!(done, "{messages:#?}");
    let roots = roots(&messages);
    assert_eq!(
        roots.len(),
        2,
        "the incident's root and the notice: {messages:#?}"
    );
    running.stop().unwrap();
}

/// In app mode too, a cluster that stops being watched raises one message of its own in
/// the default channel, and one when it is watched again.
#[test]
fn a_silent_cluster_is_announced_in_the_channel() {
    let setup = Setup::new();
    let slack = FakeSlack::start(&[CHANNEL], Duration::ZERO);
    let sim = repeating_sim(1);
    let cluster = &sim.clusters()[0];
    let extra = "channel_interval = \"50ms\"\n[alerts]\ncluster_down_after = \"1s\"\n";
    let (_, running) = start_on(&setup, &setup.config(&sim, &slack, extra, 1), cluster);
    cluster.stop_listening();
    let down = format!("nightcrier is not watching cluster {}", cluster.name());
    let (messages, done) = slack.wait_until(WAIT, |m, _| m.iter().any(|m| m.text.contains(&down)));
    assert!(done, "{messages:#?}");
    cluster.restart().unwrap();
    let up = format!("nightcrier watches cluster {} again", cluster.name());
    let (messages, done) = slack.wait_until(WAIT, |m, _| m.iter().any(|m| m.text.contains(&up)));
    assert!(done, "{messages:#?}");
    assert_eq!(roots(&messages).len(), 2, "{messages:#?}");
    assert!(messages.iter().all(|m| m.thread_ts.is_none()));
    running.stop().unwrap();
}
