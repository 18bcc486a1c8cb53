//! The real binary under SIGTERM with an agent running, faults queued and a session open:
//! it closes the session, stops the agent's process group after the shutdown timeout,
//! writes the queued faults to `pending.jsonl` and exits 0; the next start runs them.

mod common;

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;

use common::exec::{executable, mkfifo};
use common::peers::repo_root;
use common::*;
use nightcrier::sim::Simulator;

/// Blocks (bounded) until a writer has written a line to the FIFO.
fn wait_fifo(path: &Path) -> String {
    let (tx, rx) = mpsc::channel();
    let path = path.to_owned();
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Ok(mut fifo) = File::open(&path) {
            let _ = fifo.read_to_string(&mut text);
        }
        let _ = tx.send(text);
    });
    rx.recv_timeout(WAIT).expect("the agent never started")
}

fn config_text(dir: &Path, sim: &Simulator, agent: &Path) -> String {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, "# test\n").unwrap();
    let kubectl = executable(dir, "kubectl", "#!/bin/sh\necho yes\n");
    format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\nshutdown_timeout = \"1s\"\n{FAST_TIMINGS}\n[health]\nenabled = false\n[agent]\nscript = {:?}\ntimeout = \"60s\"\nkill_grace = \"500ms\"\nmax_concurrent_agents = 1\n[preflight]\nkubectl = {:?}\n{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
        dir.join("incidents").display().to_string(),
        agent.display().to_string(),
        kubectl.display().to_string(),
        cluster_toml(&sim.clusters()[0], ""),
        kubeconfig.display().to_string(),
    )
}

#[test]
fn sigterm_stops_agents_closes_sessions_and_keeps_queued_faults_for_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let fifo = dir.path().join("started");
    mkfifo(&fifo);
    let stub = repo_root().join("scripts/stub-agent.sh");
    let hanging = executable(
        dir.path(),
        "agent-hang",
        &format!(
            "#!/bin/sh\necho \"$INCIDENT_ID\" > {}\nSTUB_AGENT_MODE=hang exec {} \"$@\"\n",
            fifo.display(),
            stub.display()
        ),
    );
    let config_path = dir.path().join("nightcrier.toml");
    std::fs::write(&config_path, config_text(dir.path(), &sim, &hanging)).unwrap();

    let mut daemon = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(dir.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let pid = daemon.id() as libc::pid_t;
    assert!(
        cluster.wait_for(|s| s.subscribes == 1 && s.get_streams_open == 1, WAIT),
        "daemon never subscribed: {:?}",
        cluster.stats()
    );
    let first = cluster.emit_fault("critical", "CrashLoop").unwrap();
    let incident = wait_fifo(&fifo);
    let queued = [
        cluster.emit_fault("critical", "PodCrash").unwrap(),
        cluster.emit_fault("warning", "JobFailure").unwrap(),
    ];

    // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(daemon.wait());
    });
    let status = rx
        .recv_timeout(WAIT)
        .expect("daemon did not exit after SIGTERM")
        .unwrap();
    waiter.join().unwrap();
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(
        cluster.wait_for(|s| s.deletes == 1 && s.get_streams_open == 0, WAIT),
        "session not deleted: {:?}",
        cluster.stats()
    );

    let workspace = dir.path().join("incidents");
    let incident_dir = workspace.join(incident.trim());
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(incident_dir.join("result.json")).unwrap())
            .unwrap();
    assert_ne!(result["status"], "investigated", "{result}");
    let pending = std::fs::read_to_string(workspace.join("pending.jsonl")).unwrap();
    let lines: Vec<&str> = pending.lines().collect();
    assert_eq!(lines.len(), 2, "{pending}");
    for id in &queued {
        assert!(
            pending.contains(id.as_str()),
            "{id} not pending:\n{pending}"
        );
    }
    assert!(!pending.contains(&first));

    // The next start takes them back and investigates them.
    let ok_agent = executable(
        dir.path(),
        "agent-ok",
        &format!(
            "#!/bin/sh\nSTUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            stub.display()
        ),
    );
    let config = parse_config(&config_text(dir.path(), &sim, &ok_agent), dir.path());
    let running = start_pipeline_loop(&config);
    let (published, done) = running.board.wait_for(WAIT, |p| {
        p.pipeline
            .clusters
            .get(cluster.name())
            .is_some_and(|c| c.agents_investigated == 2)
    });
    assert!(done, "{:#?}", published.pipeline);
    assert!(!workspace.join("pending.jsonl").exists());
    let resumed: Vec<_> = std::fs::read_dir(&workspace)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && p != &incident_dir)
        .collect();
    assert_eq!(resumed.len(), 2, "{resumed:?}");
    for dir in resumed {
        let permissions =
            std::fs::read_to_string(dir.join("incident_cluster_permissions.json")).unwrap();
        assert!(
            permissions.contains("minimum_met"),
            "resumed faults wait for the preflight:\n{permissions}"
        );
    }
    assert!(workspace.join("pending.jsonl.resumed").exists());
    running.stop().unwrap();
}
