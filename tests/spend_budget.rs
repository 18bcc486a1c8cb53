//! Spend budgets with the real binary: faults over `[budget] runs_per_day` become
//! `budget_exhausted` incidents with one Slack notice, and what was spent survives a
//! restart (budget.json) and a SIGHUP reload that raises the ceiling.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::exec::executable;
use common::peers::repo_root;
use common::webhook::WebhookReceiver;
use common::*;
use nightcrier::sim::SimCluster;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    Some(text.split_once("\r\n\r\n")?.1.to_owned())
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|line| line.starts_with(series) && line[series.len()..].starts_with(' '))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

/// Polls /metrics of the daemon (another process) until `accept` holds; bounded in time.
fn poll_metrics(port: u16, what: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(body) = get(port, "/metrics") {
            if accept(&body) {
                return body;
            }
            last = Some(body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "/metrics never showed {what}; last answer:\n{}",
        last.unwrap_or_default()
    );
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    workspace: PathBuf,
    port: u16,
    slack: String,
}

impl Setup {
    fn new(receiver: &WebhookReceiver) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("nightcrier.toml");
        let workspace = dir.path().join("incidents");
        let slack = format!(
            "[slack]\nwebhook_url = {:?}\nca_file = {:?}\n",
            receiver.url(),
            receiver.ca_pem_path().display().to_string()
        );
        Setup {
            dir,
            config,
            workspace,
            port: free_port(),
            slack,
        }
    }

    fn write_config(&self, cluster: &SimCluster, runs_per_day: u64) {
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
        let kubeconfig = self.dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, "# kubeconfig\n").unwrap();
        let text = format!(
            "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
             [agent]\nscript = {:?}\ntimeout = \"20s\"\n[preflight]\nkubectl = {:?}\n\
             [health]\nlisten = \"127.0.0.1:{}\"\npublish_interval = \"200ms\"\n{}\n\
             [budget]\nruns_per_day = {runs_per_day}\n\
             [[clusters]]\nname = \"{}\"\n[clusters.mcp]\nendpoint = \"{}\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
            self.workspace.display().to_string(),
            agent.display().to_string(),
            kubectl.display().to_string(),
            self.port,
            self.slack,
            cluster.name(),
            cluster.endpoint(),
            kubeconfig.display().to_string(),
        );
        let temp = self.config.with_extension("tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, &self.config).unwrap();
    }

    fn spawn(&self, log: &str) -> (Child, PathBuf) {
        let log = self.dir.path().join(log);
        let child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    }

    fn statuses(&self) -> Vec<String> {
        let mut statuses: Vec<String> = std::fs::read_dir(&self.workspace)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok().map(|e| e.path().join("incident.json")))
                    .filter_map(|p| std::fs::read_to_string(p).ok())
                    .filter_map(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
                    .map(|v| v["status"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        statuses.sort();
        statuses
    }
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0);
}

fn stop(mut daemon: Child, log: &Path) -> String {
    signal(&daemon, libc::SIGTERM);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(daemon.wait());
    });
    let status = rx.recv_timeout(WAIT).expect("daemon exits").unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    log
}

fn active(port: u16) {
    poll_metrics(port, "the cluster active", |body| {
        body.lines().any(|l| {
            l.starts_with("nightcrier_connection_status{")
                && l.contains("status=\"active\"")
                && l.ends_with(" 1")
        })
    });
}

fn notices(receiver: &WebhookReceiver) -> usize {
    receiver
        .requests()
        .iter()
        .filter(|r| r.body.contains("budget reached"))
        .count()
}

#[test]
fn over_budget_faults_are_recorded_with_one_notice_and_the_spend_survives_restart_and_reload() {
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let setup = Setup::new(&receiver);
    setup.write_config(cluster, 2);
    let (daemon, log) = setup.spawn("first.log");
    active(setup.port);
    let exhausted = format!(
        "nightcrier_faults_budget_exhausted_total{{cluster=\"{}\",environment=\"\"}}",
        cluster.name()
    );
    let investigated = format!(
        "nightcrier_agent_runs_total{{cluster=\"{}\",environment=\"\",outcome=\"investigated\"}}",
        cluster.name()
    );
    let remaining = "nightcrier_budget_remaining{budget=\"runs_per_day\"}";
    for _ in 0..3 {
        cluster.emit_fault("critical", "CrashLoop").unwrap();
    }
    let body = poll_metrics(setup.port, "two runs and one fault over budget", |body| {
        metric(body, &investigated) == Some(2.0) && metric(body, &exhausted) == Some(1.0)
    });
    assert_eq!(metric(&body, remaining), Some(0.0), "{body}");
    assert_eq!(
        setup.statuses(),
        ["budget_exhausted", "investigated", "investigated"]
    );
    assert!(
        receiver.wait_for_requests(3, WAIT),
        "two reports and the notice"
    );
    assert_eq!(notices(&receiver), 1);
    let notice = receiver
        .requests()
        .into_iter()
        .find(|r| r.body.contains("budget reached"))
        .unwrap();
    assert!(
        notice
            .body
            .contains("fleet runs per day (2) used. No agent runs until 20"),
        "{}",
        notice.body
    );
    // A second fault over the ceiling is recorded too, without a second notice.
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    poll_metrics(setup.port, "a second fault over budget", |body| {
        metric(body, &exhausted) == Some(2.0)
    });
    let first_log = stop(daemon, &log);
    assert!(
        first_log.contains("budget_exhausted: fleet runs per day (2) used"),
        "{first_log}"
    );
    let ledger: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(setup.workspace.join("budget.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ledger["fleet_day"], 2, "{ledger}");

    // Restarted, the daemon knows the day's runs are spent.
    let (daemon, log) = setup.spawn("second.log");
    active(setup.port);
    let body = poll_metrics(setup.port, "the spent budget", |body| {
        metric(body, remaining).is_some()
    });
    assert_eq!(metric(&body, remaining), Some(0.0), "{body}");
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    poll_metrics(
        setup.port,
        "a fault over budget after the restart",
        |body| metric(body, &exhausted) == Some(1.0),
    );

    // A reload raises the ceiling by one: one more run, counted on what was spent.
    setup.write_config(cluster, 3);
    signal(&daemon, libc::SIGHUP);
    poll_metrics(setup.port, "one run left after the reload", |body| {
        metric(body, remaining) == Some(1.0)
    });
    cluster.emit_fault("critical", "CrashLoop").unwrap();
    let body = poll_metrics(setup.port, "the run the reload allowed", |body| {
        metric(body, &investigated) == Some(1.0)
    });
    assert_eq!(metric(&body, remaining), Some(0.0), "{body}");
    stop(daemon, &log);
    assert_eq!(
        setup.statuses(),
        [
            "budget_exhausted",
            "budget_exhausted",
            "budget_exhausted",
            "investigated",
            "investigated",
            "investigated"
        ]
    );
    assert_eq!(
        notices(&receiver),
        1,
        "one notice for the day, across the restart"
    );
}
