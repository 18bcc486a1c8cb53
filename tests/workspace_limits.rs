//! Workspaces that cannot fill the disk, on real files: agent logs capped with a marker,
//! retention removing the oldest finished workspaces within its bounds (never a running
//! one, never a directory that is not an incident), and a full disk (a small tmpfs, filled
//! up) that keeps faults queued instead of losing them, counted as `no_space`, and at
//! shutdown leaves every queued fault in the log when `pending.jsonl` cannot be written.
//!
//! The full-disk tests mount a tmpfs and so need root; they fail, not skip, without it.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use common::exec::{executable, wait_for_exit};
use common::peers::repo_root;
use common::*;
use nightcrier::agent::executor::{
    AgentExecutor, AgentJob, AgentOutcome, AgentPolicy, FinishedAgent,
};
use nightcrier::agent::output::truncation_marker;
use nightcrier::agent::retention::{sweep, SweepRequest};
use nightcrier::agent::workspace::{new_incident_id, IncidentRecord, Workspace, WriteFailure};
use nightcrier::config::WorkspaceConfig;
use nightcrier::events::FaultEvent;
use nightcrier::health::board::Published;
use nightcrier::metrics::counters::ClusterCounters;

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(dir).unwrap();
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .expect("mount(8) runs");
        assert!(
            output.status.success(),
            "cannot mount a {size} tmpfs at {} (this test needs root and mount(8)): {}",
            dir.display(),
            String::from_utf8_lossy(&output.stderr)
        );
        Tmpfs {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a filler file until the file system is full; returns its path.
    fn fill(&self) -> PathBuf {
        let path = self.dir.join("filler");
        let mut file = fs::File::create(&path).unwrap();
        let chunk = vec![0x5a; 64 * 1024];
        for _ in 0..100_000 {
            if let Err(e) = file.write_all(&chunk) {
                assert_eq!(WriteFailure::of(&e), WriteFailure::NoSpace, "{e}");
                // Pages of a partial write may still be free: fill them byte by byte.
                while file.write_all(&[0x5a]).is_ok() {}
                return path;
            }
        }
        panic!("{} never filled up", self.dir.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

fn fault() -> FaultEvent {
    FaultEvent::from_fault_data(
        r#"{"faultId":"f-1","faultType":"CrashLoop","severity":"critical",
            "resource":{"kind":"Pod","name":"api","namespace":"shop"}}"#,
    )
    .unwrap()
}

fn make_workspace(root: &Path, created: SystemTime, sequence: u64) -> Workspace {
    let record = IncidentRecord::new(
        new_incident_id("prod", created, sequence),
        "prod".into(),
        None,
        BTreeMap::new(),
        fault(),
        created,
    );
    Workspace::create(root, &record, None).unwrap()
}

fn run_agent(
    workspace: &Workspace,
    script: PathBuf,
    kubeconfig: &Path,
    policy: AgentPolicy,
) -> FinishedAgent {
    let mut executor = AgentExecutor::new(Duration::from_secs(2)).with_policy(policy);
    let job = AgentJob {
        incident_id: workspace.incident_id.clone(),
        cluster: "prod".into(),
        workspace: workspace.clone(),
        script,
        kubeconfig: kubeconfig.to_path_buf(),
        model: "sonnet".into(),
        cli: "claude".into(),
        allowed_tools: "Bash".into(),
        timeout: Duration::from_secs(60),
        system_prompt_file: None,
        prompt: "Investigate".into(),
    };
    let (id, _) = executor.spawn(job, Instant::now()).unwrap();
    let pid = executor.pid(id).unwrap();
    assert!(wait_for_exit(pid, WAIT), "agent {pid} did not exit");
    let mut out = Vec::new();
    executor.reap(Instant::now(), &mut out);
    out.pop().expect("the agent was reaped")
}

#[test]
fn agent_output_is_cut_at_the_cap_with_a_marker_while_the_agent_runs_on() {
    let dir = tempfile::tempdir().unwrap();
    let workspace = make_workspace(&dir.path().join("incidents"), SystemTime::now(), 1);
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(&kubeconfig, "# k\n").unwrap();
    // 200 KiB on each stream, then a report: the agent must not block or die on the cap.
    let agent = executable(
        dir.path(),
        "loud-agent",
        "#!/bin/sh\nhead -c 204800 /dev/zero | tr '\\0' o\nhead -c 204800 /dev/zero | tr '\\0' e >&2\necho 'last words' >&2\necho '## Summary' > output/investigation.md\n",
    );
    let cap = 4096;
    let finished = run_agent(
        &workspace,
        agent,
        &kubeconfig,
        AgentPolicy {
            max_output_bytes: cap,
            ..AgentPolicy::default()
        },
    );
    assert_eq!(finished.outcome, AgentOutcome::Investigated);
    assert!(finished.output_truncated);
    let marker = truncation_marker(cap);
    for (path, fill) in [
        (workspace.stdout_log_path(), b'o'),
        (workspace.stderr_log_path(), b'e'),
    ] {
        let log = fs::read(&path).unwrap();
        assert_eq!(
            log.len() as u64,
            cap + marker.len() as u64,
            "{}",
            path.display()
        );
        assert!(log[..cap as usize].iter().all(|&b| b == fill));
        assert!(log.ends_with(marker.as_bytes()));
    }
}

#[test]
fn a_full_disk_under_a_running_agent_is_counted_and_its_own_error_still_named() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "1m");
    let workspace = make_workspace(&disk.dir.join("incidents"), SystemTime::now(), 1);
    let kubeconfig = dir.path().join("kubeconfig");
    fs::write(&kubeconfig, "# k\n").unwrap();
    let agent = executable(
        dir.path(),
        "failing-agent",
        "#!/bin/sh\nhead -c 65536 /dev/zero | tr '\\0' o\necho 'error: model API unreachable' >&2\nexit 3\n",
    );
    disk.fill();
    let finished = run_agent(&workspace, agent, &kubeconfig, AgentPolicy::default());
    assert_eq!(
        finished.outcome,
        AgentOutcome::Failed("exit code 3: error: model API unreachable".into())
    );
    assert!(
        finished.write_failures.contains(&WriteFailure::NoSpace),
        "{:?}",
        finished.write_failures
    );
}

fn counter(p: &Published, cluster: &str, pick: fn(&ClusterCounters) -> u64) -> u64 {
    p.pipeline.clusters.get(cluster).map(pick).unwrap_or(0)
}

fn incident_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
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

/// A config for one simulated cluster with triage by the stub agent into `root`, also
/// written to `dir/nightcrier.toml` for the daemon binary.
fn triage_config(
    dir: &Path,
    root: &Path,
    cluster: &nightcrier::sim::SimCluster,
    extra: &str,
) -> nightcrier::config::Config {
    let stub = repo_root().join("scripts/stub-agent.sh");
    let agent = executable(
        dir,
        "agent",
        &format!(
            "#!/bin/sh\nSTUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            stub.display()
        ),
    );
    let kubectl = executable(
        dir,
        "kubectl",
        "#!/bin/sh\ncase \"$5\" in create|patch|delete) echo no; exit 1 ;; esac\necho yes\n",
    );
    let kubeconfig = dir.join("kubeconfig");
    fs::write(&kubeconfig, "# k\n").unwrap();
    let text = format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n[agent]\nscript = {:?}\ntimeout = \"20s\"\n[preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n{extra}\n{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
        root.display().to_string(),
        agent.display().to_string(),
        kubectl.display().to_string(),
        cluster_toml(cluster, ""),
        kubeconfig.display().to_string(),
    );
    fs::write(dir.join("nightcrier.toml"), &text).unwrap();
    parse_config(&text, dir)
}

#[test]
fn faults_stay_queued_while_the_disk_is_full_and_run_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "1m");
    let root = disk.dir.join("incidents");
    fs::create_dir_all(&root).unwrap();
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let config = triage_config(dir.path(), &root, cluster, "");
    let running = start_pipeline_loop(&config);
    running.wait_status(
        cluster.name(),
        nightcrier::cluster::status::ConnectionStatus::Active,
    );
    let filler = disk.fill();
    for fault_type in ["CrashLoop", "PodCrash", "JobFailure"] {
        cluster.emit_fault("critical", fault_type).unwrap();
    }
    let name = cluster.name();
    let (published, done) = running.board.wait_for(WAIT, |p| {
        counter(p, name, |c| c.write_errors_no_space) >= 1
            && p.pipeline
                .clusters
                .get(name)
                .is_some_and(|c| c.queue_depth == 3)
    });
    assert!(done, "{:#?}", published.pipeline.clusters);
    let counters = &published.pipeline.clusters[name];
    assert_eq!(counters.faults_received, 3);
    assert_eq!(counters.faults_triaged, 0);
    assert_eq!(
        counters.agents_failed, 0,
        "a full disk is not an agent failure"
    );
    assert_eq!(counters.faults_dropped + counters.faults_rejected, 0);
    assert_eq!(counters.breaker, "closed");
    assert!(
        incident_dirs(&root).is_empty(),
        "no half-made workspace is left: {:?}",
        incident_dirs(&root)
    );

    fs::remove_file(&filler).unwrap();
    let (published, done) = running
        .board
        .wait_for(WAIT, |p| counter(p, name, |c| c.agents_investigated) == 3);
    assert!(done, "{:#?}", published.pipeline.clusters);
    assert_eq!(incident_dirs(&root).len(), 3);
    running.stop().unwrap();
    drop(sim);
}

#[test]
fn retention_removes_the_oldest_workspaces_within_count_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let now = SystemTime::now();
    let made: Vec<Workspace> = (0..6u32)
        .map(|i| {
            let workspace = make_workspace(&root, now - DAY * (10 - i), u64::from(i));
            fs::write(workspace.stdout_log_path(), vec![b'x'; 64 * 1024]).unwrap();
            workspace
        })
        .collect();
    fs::create_dir_all(root.join("not-an-incident")).unwrap();
    fs::write(root.join("pending.jsonl.resumed"), "{}\n").unwrap();
    let running: HashSet<String> = [made[0].incident_id.clone()].into();
    let report = sweep(&SweepRequest {
        root: root.clone(),
        bounds: WorkspaceConfig {
            max_age: 30 * DAY,
            max_incidents: 4,
            max_bytes: 1 << 30,
            sweep_interval: Duration::from_secs(60),
        },
        running: running.clone(),
        running_grace: Duration::from_secs(660),
        requested_at: now,
    });
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        report.removed,
        [made[1].incident_id.clone(), made[2].incident_id.clone()],
        "the oldest finished ones go first; the running one stays"
    );
    for workspace in &made {
        let removed = report.removed.contains(&workspace.incident_id);
        assert_eq!(
            !workspace.dir.exists(),
            removed,
            "{}",
            workspace.incident_id
        );
    }
    assert!(root.join("not-an-incident").is_dir());
    assert!(root.join("pending.jsonl.resumed").is_file());

    // Bytes: what is left must fit, and again the oldest go first.
    let per_workspace = report.kept_bytes / report.kept as u64;
    let max_bytes = per_workspace * 2 + per_workspace / 2;
    let report = sweep(&SweepRequest {
        root: root.clone(),
        bounds: WorkspaceConfig {
            max_age: 30 * DAY,
            max_incidents: 100,
            max_bytes,
            sweep_interval: Duration::from_secs(60),
        },
        running,
        running_grace: Duration::from_secs(660),
        requested_at: now,
    });
    assert_eq!(
        report.removed,
        [made[3].incident_id.clone(), made[4].incident_id.clone()],
    );
    assert!(
        report.kept_bytes <= max_bytes,
        "{} > {max_bytes}",
        report.kept_bytes
    );
    assert!(made[0].dir.exists() && made[5].dir.exists());
}

#[test]
fn the_daemon_removes_workspaces_past_their_age_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let now = SystemTime::now();
    let old: Vec<Workspace> = (0..3)
        .map(|i| make_workspace(&root, now - DAY * (40 + i), u64::from(i)))
        .collect();
    let recent = make_workspace(&root, now - DAY, 9);
    let sim = quiet_sim(1);
    let config = triage_config(
        dir.path(),
        &root,
        &sim.clusters()[0],
        "[workspace]\nmax_age = \"30d\"\nmax_incidents = 10\n",
    );
    assert_eq!(config.workspace.max_age, 30 * DAY);
    let running = start_pipeline_loop(&config);
    let deadline = Instant::now() + WAIT;
    while old.iter().any(|w| w.dir.exists()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        old.iter().all(|w| !w.dir.exists()),
        "old workspaces left: {:?}",
        incident_dirs(&root)
    );
    assert!(recent.dir.exists(), "a workspace within the bounds stays");
    running.stop().unwrap();
}

#[test]
fn sigterm_on_a_full_disk_logs_every_queued_fault_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "1m");
    let root = disk.dir.join("incidents");
    fs::create_dir_all(&root).unwrap();
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let config = triage_config(dir.path(), &root, cluster, "[health]\nenabled = false\n");
    let config_path = config.source.clone();
    let log_path = dir.path().join("daemon.log");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["run", "--config"])
        .arg(&config_path)
        .env("RUST_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    assert!(
        cluster.wait_for(|s| s.subscribes == 1 && s.get_streams_open == 1, WAIT),
        "daemon never subscribed: {:?}",
        cluster.stats()
    );
    disk.fill();
    let faults = [
        cluster.emit_fault("critical", "CrashLoop").unwrap(),
        cluster.emit_fault("critical", "PodCrash").unwrap(),
    ];
    let log = || fs::read_to_string(&log_path).unwrap_or_default();
    let deadline = Instant::now() + WAIT;
    while !log().contains("reason=no_space") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(log().contains("reason=no_space"), "{}", log());

    // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
    unsafe {
        libc::kill(daemon.id() as libc::pid_t, libc::SIGTERM);
    }
    assert!(wait_for_exit(daemon.id(), WAIT), "daemon did not exit");
    let status = daemon.wait().unwrap();
    let log = log();
    assert!(status.success(), "exit {status:?}\n{log}");
    assert!(!root.join("pending.jsonl").exists());
    assert!(
        log.contains("pending.jsonl") && log.contains("the 2 queued faults were:"),
        "{log}"
    );
    for id in &faults {
        assert!(
            log.lines()
                .any(|l| l.contains("pending: {") && l.contains(id.as_str())),
            "fault {id} is not in the log:\n{log}"
        );
    }
}

#[test]
fn an_unfinished_workspace_is_kept_for_the_longest_run_then_counts_as_a_leftover() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let now = SystemTime::now();
    let with_status = |age: Duration, sequence: u64, status: &str| {
        let mut record = IncidentRecord::new(
            new_incident_id("prod", now - age, sequence),
            "prod".into(),
            None,
            BTreeMap::new(),
            fault(),
            now - age,
        );
        record.status = status.into();
        Workspace::create(&root, &record, None).unwrap()
    };
    // Running elsewhere (another daemon on this root, or this one before a restart).
    let live = with_status(Duration::from_secs(300), 1, "running");
    // Left `running` by a crash two hours ago; an agent runs at most 11 minutes here.
    let leftover = with_status(Duration::from_secs(7200), 2, "running");
    let finished = with_status(Duration::from_secs(3600), 3, "investigated");
    let report = sweep(&SweepRequest {
        root: root.clone(),
        bounds: WorkspaceConfig {
            max_age: 30 * DAY,
            max_incidents: 1,
            max_bytes: 1 << 30,
            sweep_interval: Duration::from_secs(60),
        },
        running: HashSet::new(),
        running_grace: Duration::from_secs(660),
        requested_at: now,
    });
    assert_eq!(
        report.removed,
        [leftover.incident_id.clone(), finished.incident_id.clone()]
    );
    assert!(live.dir.exists());
}
