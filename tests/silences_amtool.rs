//! Silences against the real daemon with Alertmanager's own `amtool` (Debian's
//! prometheus-alertmanager package; scripts/setup.sh takes the binary out of it): a silence
//! created with amtool holds for a simulated cluster's fault, which is recorded in status
//! `silenced` with the silence's id, counted in /metrics and triaged by no agent; the
//! silence outlives a restart; expired with amtool, the next such fault is triaged. Writes
//! without the token are refused, by amtool and on a raw socket.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::exec::{executable, wait_for_exit};
use common::peers::peer_amtool;
use common::*;

const TOKEN: &str = "s3cret-admin-token";
const FAULT_TYPE: &str = "ShopUpgradeCrash";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One request over a real socket: status and body (`None` while nothing listens yet).
fn request(
    port: u16,
    method: &str,
    target: &str,
    extra: &str,
    body: &str,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// Polls until `found` gives a value; bounded in time.
fn wait_for<T>(what: &str, mut found: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if let Some(value) = found() {
            return value;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("never saw {what}");
}

/// `incident.json` of every workspace under `root`.
fn incidents(root: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("incident.json")).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
}

fn with_status(root: &Path, status: &str) -> Vec<serde_json::Value> {
    incidents(root)
        .into_iter()
        .filter(|i| i["status"] == status)
        .collect()
}

struct Daemon {
    child: Option<Child>,
}

impl Daemon {
    fn start(config: &Path, log: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
            .args(["run", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::options().create(true).append(true).open(log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child: Some(child) }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID, not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            if !wait_for_exit(child.id(), WAIT) {
                let _ = child.kill();
            }
            let status = child.wait().unwrap();
            assert!(status.success(), "daemon {status}");
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs amtool against the admin listener, with the token when `http_config` is given.
fn amtool(admin: u16, http_config: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(peer_amtool());
    command.arg(format!("--alertmanager.url=http://127.0.0.1:{admin}"));
    if let Some(path) = http_config {
        command.arg(format!("--http.config.file={}", path.display()));
    }
    let child = command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    assert!(wait_for_exit(pid, WAIT), "amtool {args:?} still running");
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn silenced_count(health: u16, id: &str) -> Option<u64> {
    let (status, body) = request(health, "GET", "/metrics", "", "")?;
    assert_eq!(status, 200);
    let prefix = format!("nightcrier_silence_faults_total{{silence=\"{id}\"}} ");
    body.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|n| n.parse().ok())
}

#[test]
fn amtool_creates_queries_and_expires_a_silence_that_holds_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "# read-only\n").unwrap();
    let kubectl = executable(
        dir.path(),
        "kubectl",
        "#!/bin/sh\ncase \"$5\" in create|patch|delete) echo no; exit 1 ;; esac\necho yes\n",
    );
    let runs = dir.path().join("agent-runs");
    let agent = executable(
        dir.path(),
        "agent.sh",
        &format!(
            "#!/bin/sh\nworkspace=$2\necho run >> '{}'\nmkdir -p \"$workspace/output\"\n\
             printf '## Summary\\nok\\n' > \"$workspace/output/investigation.md\"\n",
            runs.display()
        ),
    );
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let http_config = dir.path().join("amtool-http.yml");
    std::fs::write(
        &http_config,
        format!("authorization:\n  credentials: {TOKEN}\n"),
    )
    .unwrap();
    let (health, admin) = (free_port(), free_port());
    let config = dir.path().join("nightcrier.toml");
    std::fs::write(
        &config,
        format!(
            "workspace_root = \"{root}\"\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
             [agent]\nscript = \"{agent}\"\ncli = \"stub\"\nmodel = \"m\"\nconfinement = \"none\"\n\
             [preflight]\nkubectl = \"{kubectl}\"\n\
             [health]\nlisten = \"127.0.0.1:{health}\"\npublish_interval = \"100ms\"\n\
             [admin]\nlisten = \"127.0.0.1:{admin}\"\ntoken_file = \"{token}\"\n\
             [[clusters]]\nname = \"{name}\"\n[clusters.mcp]\nendpoint = \"{endpoint}\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = \"{kubeconfig}\"\n",
            root = root.display(),
            agent = agent.display(),
            kubectl = kubectl.display(),
            token = token_file.display(),
            kubeconfig = kubeconfig.display(),
            name = cluster.name(),
            endpoint = cluster.endpoint(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let active = || {
        wait_for("the cluster active", || {
            let (_, body) = request(health, "GET", "/health/clusters", "", "")?;
            (body.contains("\"status\":\"active\"") && body.contains("\"minimum_met\":true"))
                .then_some(())
        })
    };
    let mut daemon = Daemon::start(&config, &log);
    active();

    // Writes without the token are refused, by amtool and on a raw socket.
    let silence = format!(
        "{{\"matchers\":[{{\"name\":\"fault_type\",\"value\":\"{FAULT_TYPE}\",\"isRegex\":false,\"isEqual\":true}}],\
         \"startsAt\":\"2026-01-01T00:00:00Z\",\"endsAt\":\"2099-01-01T00:00:00Z\",\"createdBy\":\"t\",\"comment\":\"t\"}}"
    );
    for auth in ["", "Authorization: Bearer wrong\r\n"] {
        let (status, _) = request(admin, "POST", "/api/v2/silences", auth, &silence).unwrap();
        assert_eq!(status, 401, "{auth:?}");
    }
    let refused = amtool(
        admin,
        None,
        &[
            "silence",
            "add",
            &format!("fault_type={FAULT_TYPE}"),
            "--comment=x",
        ],
    );
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("401"),
        "{refused:?}"
    );

    let added = amtool(
        admin,
        Some(&http_config),
        &[
            "silence",
            "add",
            &format!("fault_type={FAULT_TYPE}"),
            &format!("cluster=~{}.*", &cluster.name()[..3]),
            "--comment=shop upgrade",
            "--author=alice",
            "--duration=2h",
        ],
    );
    assert!(added.status.success(), "{added:?}");
    let id = stdout(&added).trim().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id:?}");
    let queried = amtool(admin, None, &["silence", "query", "-o", "json"]);
    let listed: serde_json::Value = serde_json::from_slice(&queried.stdout).unwrap();
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed[0]["status"]["state"], "active");
    assert_eq!(listed[0]["createdBy"], "alice");

    // The silence holds: the fault is recorded as silenced, counted, and runs no agent.
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    let recorded = wait_for("a silenced incident", || {
        with_status(&root, "silenced").into_iter().next()
    });
    assert_eq!(recorded["silence_id"], id.as_str());
    assert_eq!(recorded["fault"]["faultType"], FAULT_TYPE);
    wait_for("the silence counted", || {
        (silenced_count(health, &id) == Some(1)).then_some(())
    });

    // A restart keeps it.
    daemon.stop();
    let mut daemon = Daemon::start(&config, &log);
    active();
    let queried = amtool(admin, None, &["silence", "query", "-q"]);
    assert_eq!(stdout(&queried).trim(), id, "{queried:?}");
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    wait_for("a second silenced incident", || {
        (with_status(&root, "silenced").len() == 2).then_some(())
    });

    // Expired, it no longer holds: the next fault is triaged.
    let expired = amtool(admin, Some(&http_config), &["silence", "expire", &id]);
    assert!(expired.status.success(), "{expired:?}");
    assert_eq!(
        stdout(&amtool(admin, None, &["silence", "query", "-q"])).trim(),
        ""
    );
    assert_eq!(
        stdout(&amtool(
            admin,
            None,
            &["silence", "query", "--expired", "-q"]
        ))
        .trim(),
        id
    );
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    let investigated = wait_for("an investigated incident", || {
        with_status(&root, "investigated").into_iter().next()
    });
    assert_eq!(investigated["fault"]["faultType"], FAULT_TYPE);
    daemon.stop();

    let agent_runs = std::fs::read_to_string(&runs).unwrap_or_default();
    assert_eq!(
        agent_runs.lines().count(),
        1,
        "only the fault after the expiry"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(&format!("silence {id} created through the admin API")),
        "{text}"
    );
    assert!(text.contains(&format!("by silence {id}")), "{text}");
    assert!(text.contains(&format!("silence {id} expired")), "{text}");
}

#[test]
fn a_silence_added_to_the_file_holds_after_a_reload_and_stops_when_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let health = free_port();
    let config = dir.path().join("nightcrier.toml");
    let write_config = |silences: &str| {
        std::fs::write(
            &config,
            format!(
                "workspace_root = \"{root}\"\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
                 [health]\nlisten = \"127.0.0.1:{health}\"\npublish_interval = \"100ms\"\n\
                 [[clusters]]\nname = \"{name}\"\nenvironment = \"staging\"\n\
                 labels = {{ team = \"shop\" }}\n[clusters.mcp]\nendpoint = \"{endpoint}\"\n{silences}",
                root = root.display(),
                name = cluster.name(),
                endpoint = cluster.endpoint(),
            ),
        )
        .unwrap()
    };
    write_config("");
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon::start(&config, &log);
    let pid = daemon.child.as_ref().unwrap().id() as libc::pid_t;
    wait_for("the cluster active", || {
        let (_, body) = request(health, "GET", "/health/clusters", "", "")?;
        body.contains("\"status\":\"active\"").then_some(())
    });
    let skipped = |n: u64| {
        let line = format!(
            "nightcrier_faults_skipped_total{{cluster=\"{}\",environment=\"staging\"}} {n}",
            cluster.name()
        );
        wait_for(&line.clone(), || {
            let (_, body) = request(health, "GET", "/metrics", "", "")?;
            body.lines().any(|l| l == line).then_some(())
        })
    };
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    skipped(1);

    write_config(&format!(
        "[[silences]]\nname = \"shop-window\"\ncomment = \"shop maintenance\"\n\
         weekly = {{ days = [\"mon\", \"tue\", \"wed\", \"thu\", \"fri\", \"sat\", \"sun\"], \
         start = \"00:00\", end = \"00:00\", time_zone = \"Europe/Berlin\" }}\n\
         matchers = {{ team = \"shop\", environment = \"stag*\", fault_type = {{ regex = \"{FAULT_TYPE}|Other\" }} }}\n"
    ));
    // SAFETY: kill(2) on the daemon this test started, by its PID.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for("the reload applied", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("silences in the file: 1 now").then_some(())
    });
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    let recorded = wait_for("a silenced incident", || {
        with_status(&root, "silenced").into_iter().next()
    });
    assert_eq!(recorded["silence_id"], "file:shop-window");

    write_config("");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGHUP) };
    wait_for("the second reload applied", || {
        let text = std::fs::read_to_string(&log).ok()?;
        text.contains("silences in the file: 0 now").then_some(())
    });
    assert!(cluster.emit_fault("critical", FAULT_TYPE).is_some());
    skipped(2);
    daemon.stop();
    assert_eq!(with_status(&root, "silenced").len(), 1);
}
