//! The real agent CLIs, end to end through the daemon: a simulated fault becomes an incident,
//! the daemon starts `scripts/run-agent.sh` on the host (`AGENT_RUNTIME=none`), the script
//! starts the real CLI from npm (installed under `.peers/agents` by
//! `scripts/install-peers.sh`), the CLI talks to a scripted stand-in of its model API
//! (`tests/peers/model_api.py`, on 127.0.0.1) that makes it run its own shell tool to write
//! `output/investigation.md`, and the incident ends `investigated`. Only `agent.cli` changes
//! between the CLIs; the model each one is asked for must be one it serves. When the model API
//! refuses, the CLI's own error is the incident's failure reason.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::exec::executable;
use common::peers::{peer_python, repo_root};
use common::{cluster_toml, FAST_TIMINGS};
use nightcrier::config::default_model;
use nightcrier::sim::{SimOptions, Simulator};

/// What the stand-in's refusals say (tests/peers/model_api.py, FAIL_MARKER).
const FAIL_MARKER: &str = "stand-in refused the request";
/// A CLI starts, asks its model twice and runs one command: far below this.
const RUN_WAIT: Duration = Duration::from_secs(150);
const START_WAIT: Duration = Duration::from_secs(30);

/// A child process stopped (SIGTERM, then SIGKILL) by its own PID when dropped.
struct Process {
    child: Option<Child>,
    name: &'static str,
}

impl Process {
    /// SIGTERM and a bounded wait for the exit; SIGKILL past it. Returns whether it exited
    /// on SIGTERM with status 0.
    fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else {
            return false;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) on our own child, not reaped yet (only the waiter below reaps it).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let (tx, rx) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let clean = match rx.recv_timeout(START_WAIT) {
            Ok(status) => status.is_ok_and(|s| s.success()),
            Err(_) => {
                // SAFETY: as above; the waiter has not returned, so the child is unreaped.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                eprintln!("{} ignored SIGTERM; killed", self.name);
                false
            }
        };
        let _ = waiter.join();
        clean
    }
}

impl Process {
    /// Whether the process has ended; an ended one is reaped and no longer signalled.
    fn exited(&mut self) -> bool {
        let Some(child) = self.child.as_mut() else {
            return true;
        };
        if matches!(child.try_wait(), Ok(None)) {
            return false;
        }
        self.child = None;
        true
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The proxy every CLI is given for hosts other than 127.0.0.1: it records the first line of
/// each request (`CONNECT api.example.com:443 …`) and refuses it, so any traffic a CLI tries
/// beyond the model API stand-in shows up here and never leaves the machine.
struct ProxyTrap {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ProxyTrap {
    fn start() -> ProxyTrap {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy trap");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_seen, thread_stop) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = stream.set_nonblocking(false);
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut first = String::new();
                        let _ = BufReader::new(&stream).read_line(&mut first);
                        thread_seen.lock().unwrap().push(first.trim().to_owned());
                        let _ = (&stream)
                            .write_all(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        ProxyTrap {
            port,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for ProxyTrap {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Cli {
    Claude,
    Gemini,
    Codex,
}

impl Cli {
    fn name(self) -> &'static str {
        match self {
            Cli::Claude => "claude",
            Cli::Gemini => "gemini",
            Cli::Codex => "codex",
        }
    }

    fn api(self) -> &'static str {
        match self {
            Cli::Claude => "anthropic",
            Cli::Gemini => "gemini",
            Cli::Codex => "openai",
        }
    }

    /// Key and endpoint, under the names an operator would set.
    fn api_env(self, base: &str) -> [(&'static str, String); 2] {
        match self {
            Cli::Claude => [
                ("ANTHROPIC_API_KEY", "test-key".into()),
                ("ANTHROPIC_BASE_URL", base.into()),
            ],
            Cli::Gemini => [
                ("GEMINI_API_KEY", "test-key".into()),
                ("GOOGLE_GEMINI_BASE_URL", base.into()),
            ],
            // OPENAI_API_KEY, not CODEX_API_KEY: run-agent.sh hands it to codex.
            Cli::Codex => [
                ("OPENAI_API_KEY", "test-key".into()),
                ("OPENAI_BASE_URL", format!("{base}/v1")),
            ],
        }
    }

    /// Whether the model a request named is one this CLI serves.
    fn serves(self, model: &str) -> bool {
        match self {
            Cli::Claude => model.starts_with("claude-"),
            Cli::Gemini => model.starts_with("gemini-"),
            Cli::Codex => model.starts_with("gpt-"),
        }
    }

    /// The model the daemon's default for this CLI must reach the API as.
    fn requested_default(self, model: &str) -> bool {
        let default = default_model(self.name());
        match self {
            // claude resolves its alias to a full model id.
            Cli::Claude => model.starts_with("claude-") && model.contains(default),
            Cli::Gemini | Cli::Codex => model == default,
        }
    }
}

/// The installed CLI's directory; a missing CLI fails the test with the command to run.
fn agent_bin_dir(cli: Cli) -> PathBuf {
    let dir = repo_root().join(".peers/agents/node_modules/.bin");
    let path = dir.join(cli.name());
    assert!(
        path.exists(),
        "{} not found: run scripts/install-peers.sh (it installs the pinned agent CLIs \
         under .peers/agents)",
        path.display()
    );
    dir
}

/// Lines of a child's pipe, drained on a thread so the child never blocks.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// `tests/peers/model_api.py` for `cli`'s API, refusing every model request with `fail`.
fn start_model_api(cli: Cli, log: &Path, fail: Option<u16>) -> (Process, u16) {
    let mut command = Command::new(peer_python());
    command
        .arg(repo_root().join("tests/peers/model_api.py"))
        .args(["--api", cli.api()])
        .arg("--log")
        .arg(log);
    if let Some(status) = fail {
        command.args(["--fail", &status.to_string()]);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tests/peers/model_api.py");
    let lines = lines_of(child.stdout.take().expect("piped stdout"));
    let process = Process {
        child: Some(child),
        name: "model API stand-in",
    };
    let line = lines
        .recv_timeout(START_WAIT)
        .expect("model API stand-in printed no port");
    let port = line
        .strip_prefix("port ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("model API stand-in printed {line:?}, not `port N`"));
    (process, port)
}

/// One request the stand-in answered (a line of its log).
#[derive(Debug)]
struct ApiRequest {
    model: String,
    shell_tool: bool,
    answer: String,
}

fn api_requests(log: &Path) -> Vec<ApiRequest> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("stand-in log line");
            ApiRequest {
                model: v["model"].as_str().unwrap_or_default().to_owned(),
                shell_tool: v["shell_tool"].as_bool().unwrap_or(false),
                answer: v["answer"].as_str().unwrap_or_default().to_owned(),
            }
        })
        .collect()
}

struct Run {
    /// What the CLI tried to reach besides 127.0.0.1 (through the proxy trap).
    outside: Vec<String>,
    dir: tempfile::TempDir,
    cluster: String,
    api_log: PathBuf,
    daemon_log: PathBuf,
    result: serde_json::Value,
    incident: PathBuf,
}

/// One fault from the simulator, triaged by `cli` through the daemon with the default
/// agent settings; returns once the incident's `result.json` is written.
fn triage_one_fault(cli: Cli, fail: Option<u16>) -> Run {
    let bin_dir = agent_bin_dir(cli);
    let dir = tempfile::tempdir().unwrap();
    let api_log = dir.path().join("model-api.jsonl");
    let (mut api, port) = start_model_api(cli, &api_log, fail);
    let trap = ProxyTrap::start();
    let sim = Simulator::start(SimOptions {
        clusters: 1,
        name_prefix: cli.name().to_string(),
        rate_per_sec: 20.0,
        faults_per_cluster: Some(1),
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let cluster = &sim.clusters()[0];

    let workspace_root = dir.path().join("incidents");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "# the cluster's read-only kubeconfig\n").unwrap();
    let kubectl = executable(dir.path(), "kubectl", "#!/bin/sh\necho yes\n");
    let config = dir.path().join("nightcrier.toml");
    // The agent section names only the CLI: model, tools and the rest are the defaults.
    let text = format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
         [health]\nenabled = false\n[agent]\nscript = {:?}\ncli = \"{}\"\n\
         [preflight]\nkubectl = {:?}\n\
         {}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
        workspace_root.display().to_string(),
        repo_root()
            .join("scripts/run-agent.sh")
            .display()
            .to_string(),
        cli.name(),
        kubectl.display().to_string(),
        cluster_toml(cluster, ""),
        kubeconfig.display().to_string(),
    );
    std::fs::write(&config, text).unwrap();

    // Nothing of this process's environment reaches the daemon: no real key or endpoint,
    // no proxy; the stand-in on 127.0.0.1 is the only model API.
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let daemon_log = dir.path().join("daemon.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_nightcrier"));
    command
        .args(["run", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .env("RUST_LOG", "info")
        .env("AGENT_RUNTIME", "none");
    let proxy = format!("http://127.0.0.1:{}", trap.port);
    for name in ["HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"] {
        command.env(name, &proxy);
    }
    for name in ["NO_PROXY", "no_proxy"] {
        command.env(name, "127.0.0.1,localhost");
    }
    for (name, value) in cli.api_env(&format!("http://127.0.0.1:{port}")) {
        command.env(name, value);
    }
    let mut daemon = Process {
        child: Some(
            command
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&daemon_log).unwrap())
                .spawn()
                .expect("start nightcrier"),
        ),
        name: "nightcrier",
    };

    // The daemon is another process: nothing to wait on but the file it writes last.
    let deadline = Instant::now() + RUN_WAIT;
    let (incident, result) = loop {
        let finished = std::fs::read_dir(&workspace_root)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .find_map(|incident| {
                let text = std::fs::read_to_string(incident.join("result.json")).ok()?;
                let result: serde_json::Value = serde_json::from_str(&text).ok()?;
                Some((incident, result))
            });
        if let Some(found) = finished {
            break found;
        }
        let daemon_exited = daemon.exited();
        assert!(
            Instant::now() < deadline && !daemon_exited,
            "no result.json ({}); daemon log:\n{}",
            if daemon_exited {
                "nightcrier exited".to_string()
            } else {
                format!("after {RUN_WAIT:?}")
            },
            std::fs::read_to_string(&daemon_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        daemon.stop(),
        "nightcrier did not stop cleanly on SIGTERM; its log:\n{}",
        std::fs::read_to_string(&daemon_log).unwrap_or_default()
    );
    api.stop();
    let outside = trap.requests();
    Run {
        outside,
        cluster: cluster.name().to_string(),
        dir,
        api_log,
        daemon_log,
        result,
        incident,
    }
}

impl Run {
    fn file(&self, name: &str) -> String {
        std::fs::read_to_string(self.incident.join(name)).unwrap_or_default()
    }

    /// Everything a failed assertion needs to be understood.
    fn context(&self) -> String {
        format!(
            "result.json: {:#}\n--- agent-stdout.log\n{}\n--- agent-stderr.log\n{}\n--- model API \
             log\n{}\n--- daemon log\n{}\n(in {})",
            self.result,
            self.file("agent-stdout.log"),
            self.file("agent-stderr.log"),
            std::fs::read_to_string(&self.api_log).unwrap_or_default(),
            std::fs::read_to_string(&self.daemon_log).unwrap_or_default(),
            self.dir.path().display(),
        )
    }

    fn assert_investigated_with_a_model_it_serves(&self, cli: Cli) {
        let context = self.context();
        assert_eq!(self.result["status"], "investigated", "{context}");
        assert!(
            self.outside.is_empty(),
            "{} tried to reach other hosts (update checks, telemetry?): {:?}\n{context}",
            cli.name(),
            self.outside
        );
        // The shell command the stand-in asked for ran in the workspace, with the incident's
        // variables, and wrote the report.
        let report = self.file("output/investigation.md");
        assert!(
            report.contains(&format!(
                "stand-in investigation of cluster {}",
                self.cluster
            )),
            "report:\n{report}\n{context}"
        );
        assert!(
            report.contains("incident.json present in the workspace"),
            "{report}"
        );
        let requests = api_requests(&self.api_log);
        let answers: Vec<&str> = requests
            .iter()
            .filter(|r| r.shell_tool)
            .map(|r| r.answer.as_str())
            .collect();
        assert!(
            answers.contains(&"shell call") && answers.contains(&"final text"),
            "the CLI never went through both turns: {answers:?}\n{context}"
        );
        for request in requests.iter().filter(|r| !r.model.is_empty()) {
            assert!(
                cli.serves(&request.model),
                "{} asked for model {:?}, which it does not serve\n{context}",
                cli.name(),
                request.model
            );
        }
        assert!(
            requests
                .iter()
                .any(|r| r.shell_tool && cli.requested_default(&r.model)),
            "no request of the investigation named the default model {:?}\n{context}",
            default_model(cli.name())
        );
    }

    fn assert_failed_with_the_clis_own_error(&self, cli: Cli) {
        let context = self.context();
        assert_eq!(self.result["status"], "agent_failed", "{context}");
        let reason = self.result["failure_reason"].as_str().unwrap_or_default();
        assert!(
            reason.starts_with(&format!("exit code 1: {}: ", cli.name())),
            "reason {reason:?}\n{context}"
        );
        assert!(
            reason.contains(FAIL_MARKER),
            "reason {reason:?} lacks the API's error\n{context}"
        );
        assert!(
            !api_requests(&self.api_log).is_empty(),
            "the CLI never reached the API\n{context}"
        );
    }
}

#[test]
fn claude_investigates_a_fault_end_to_end_with_the_default_agent_settings() {
    triage_one_fault(Cli::Claude, None).assert_investigated_with_a_model_it_serves(Cli::Claude);
}

#[test]
fn gemini_investigates_a_fault_end_to_end_when_only_the_cli_changes() {
    triage_one_fault(Cli::Gemini, None).assert_investigated_with_a_model_it_serves(Cli::Gemini);
}

#[test]
fn codex_investigates_a_fault_end_to_end_when_only_the_cli_changes() {
    triage_one_fault(Cli::Codex, None).assert_investigated_with_a_model_it_serves(Cli::Codex);
}

// claude retries a 401 with backoff for minutes, a 400 it reports at once; gemini reports
// either at once, codex a 401 after a few quick retries.
#[test]
fn claude_api_error_is_the_failure_reason() {
    triage_one_fault(Cli::Claude, Some(400)).assert_failed_with_the_clis_own_error(Cli::Claude);
}

#[test]
fn gemini_api_error_is_the_failure_reason() {
    triage_one_fault(Cli::Gemini, Some(401)).assert_failed_with_the_clis_own_error(Cli::Gemini);
}

#[test]
fn codex_api_error_is_the_failure_reason() {
    triage_one_fault(Cli::Codex, Some(401)).assert_failed_with_the_clis_own_error(Cli::Codex);
}
