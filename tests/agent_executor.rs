//! The executor against real child processes running the real stub agent: outcomes, what
//! the agent leaves in the workspace and what `result.json` will say (the executor itself
//! writes no JSON), the timeout's SIGTERM-then-SIGKILL of the whole process group, and no
//! zombie left behind.

mod common;

use common::exec::write_executable;
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nightcrier::agent::executor::{
    start_failure, AgentExecutor, AgentId, AgentJob, AgentOutcome, AgentPolicy, FinishedAgent,
    SpawnError,
};
use nightcrier::agent::workspace::{new_incident_id, AgentResult, IncidentRecord, Workspace};
use nightcrier::events::FaultEvent;

const WAIT: Duration = Duration::from_secs(20);

fn stub_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/stub-agent.sh")
}

/// A script that runs the stub agent with the given environment knobs. Tests run in
/// parallel, so knobs go into a wrapper rather than into this process's environment.
fn stub_with(dir: &Path, name: &str, env: &[(&str, &str)]) -> PathBuf {
    let mut text = String::from("#!/bin/sh\n");
    for (key, value) in env {
        text.push_str(&format!("export {key}='{value}'\n"));
    }
    text.push_str(&format!("exec '{}' \"$@\"\n", stub_script().display()));
    let path = dir.join(name);
    write_executable(&path, &text);
    path
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    bin: PathBuf,
    kubeconfig: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let bin = dir.path().join("bin");
    fs::create_dir_all(&bin).unwrap();
    let kubeconfig = dir.path().join("kubeconfig-prod");
    fs::write(&kubeconfig, "apiVersion: v1\nkind: Config\n").unwrap();
    Setup {
        root,
        bin,
        kubeconfig,
        _dir: dir,
    }
}

fn fault() -> FaultEvent {
    FaultEvent::from_fault_data(
        r#"{"faultId":"f-1","faultType":"CrashLoop","severity":"critical",
            "resource":{"kind":"Pod","name":"api-7d9f","namespace":"shop"},
            "context":"Back-off restarting failed container api"}"#,
    )
    .unwrap()
}

fn job(
    setup: &Setup,
    cluster: &str,
    sequence: u64,
    script: PathBuf,
    kubeconfig: &Path,
) -> AgentJob {
    let incident_id = new_incident_id(cluster, SystemTime::now(), sequence);
    let record = IncidentRecord::new(
        incident_id.clone(),
        cluster.to_string(),
        Some("prod".into()),
        BTreeMap::from([("team".to_string(), "shop".to_string())]),
        fault(),
        SystemTime::now(),
    );
    let workspace = Workspace::create(&setup.root, &record, None).unwrap();
    AgentJob {
        incident_id,
        cluster: cluster.to_string(),
        workspace,
        script,
        kubeconfig: kubeconfig.to_path_buf(),
        model: "sonnet".into(),
        cli: "claude".into(),
        allowed_tools: "Read,Grep,Glob,Bash".into(),
        timeout: Duration::from_secs(600),
        system_prompt_file: None,
        prompt: "Investigate the fault described in incident.json".into(),
    }
}

fn pidfd(pid: u32) -> OwnedFd {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Waits for the process to exit (the pidfd becomes readable), without reaping it.
fn wait_for_exit(pid: u32, timeout: Duration) -> bool {
    let fd = pidfd(pid);
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || Instant::now() >= deadline {
            return false;
        }
    }
}

/// Alive means: exists and is not a zombie waiting for its reaper.
fn process_alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|s| s.chars().next()), Some('Z') | Some('X'))
        }
        Err(_) => false,
    }
}

fn gone(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    let rc = unsafe { libc::kill(pid as libc::pid_t, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Waits for the agent's exit, then reaps it.
fn finish(executor: &mut AgentExecutor, id: AgentId) -> FinishedAgent {
    let pid = executor.pid(id).expect("agent is running");
    assert!(wait_for_exit(pid, WAIT), "agent {pid} did not exit");
    let mut out = Vec::new();
    executor.reap(Instant::now(), &mut out);
    assert_eq!(out.len(), 1);
    assert!(gone(pid), "agent {pid} was not reaped");
    out.pop().unwrap()
}

/// The incident as it was made, with the run's end settled into it.
fn settled(finished: &FinishedAgent) -> nightcrier::agent::workspace::IncidentRecord {
    let mut record = finished.workspace.read_incident().unwrap();
    finished.settle(&mut record);
    record
}

#[test]
fn stub_agent_success_leaves_its_report_and_is_investigated() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let job = job(&setup, "prod-eu", 1, stub_script(), &setup.kubeconfig);
    let incident_id = job.incident_id.clone();
    let (id, deadline) = executor.spawn(job, Instant::now()).unwrap();
    assert!(deadline > Instant::now() + Duration::from_secs(500));
    assert_eq!(executor.running(), 1);
    assert_eq!(executor.running_for("prod-eu"), 1);
    assert_eq!(executor.running_for("other"), 0);

    let finished = finish(&mut executor, id);
    assert_eq!(finished.outcome, AgentOutcome::Investigated);
    assert_eq!(finished.exit_code, Some(0));
    assert_eq!(finished.incident_id, incident_id);
    assert_eq!(executor.running(), 0);

    let report = fs::read_to_string(finished.workspace.report_path()).unwrap();
    for section in [
        "## Summary",
        "## Root Cause",
        "## Confidence",
        "## Evidence",
        "## Recommended Actions",
    ] {
        assert!(report.contains(section), "missing {section} in {report}");
    }
    assert!(report.contains(&incident_id));
    assert!(report.contains("Cluster: prod-eu"));
    assert!(report.contains("CrashLoop"));

    let result = finished.result();
    assert_eq!(result.status, "investigated");
    assert_eq!(result.incident_id, incident_id);
    assert!(result.report_present);
    assert_eq!(result.failure_reason, None);
    let record = settled(&finished);
    assert_eq!(record.status, "investigated");
    assert!(record.started_at.is_some() && record.finished_at.is_some());
    assert!(fs::read_to_string(finished.workspace.stdout_log_path())
        .unwrap()
        .contains("wrote"));
}

#[test]
fn each_agent_gets_its_own_clusters_kubeconfig_and_environment() {
    let setup = setup();
    let other_kubeconfig = setup.bin.join("kubeconfig-staging");
    fs::write(&other_kubeconfig, "apiVersion: v1\n").unwrap();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let prod = job(&setup, "prod", 1, stub_script(), &setup.kubeconfig);
    let staging = job(&setup, "staging", 2, stub_script(), &other_kubeconfig);
    let (prod_id, _) = executor.spawn(prod, Instant::now()).unwrap();
    let (staging_id, _) = executor.spawn(staging, Instant::now()).unwrap();
    let pids = [prod_id, staging_id].map(|id| executor.pid(id).unwrap());
    let mut out = Vec::new();
    for pid in pids {
        assert!(wait_for_exit(pid, WAIT));
    }
    executor.reap(Instant::now(), &mut out);
    assert_eq!(out.len(), 2);
    for (id, cluster, kubeconfig) in [
        (prod_id, "prod", &setup.kubeconfig),
        (staging_id, "staging", &other_kubeconfig),
    ] {
        let finished = out
            .iter()
            .find(|f| f.id == id)
            .expect("this agent finished");
        assert_eq!(finished.cluster, cluster);
        let report = fs::read_to_string(finished.workspace.report_path()).unwrap();
        let kubeconfig = kubeconfig.display().to_string();
        assert!(
            report.contains(&format!("KUBECONFIG: {kubeconfig}\n")),
            "{report}"
        );
        assert!(
            report.contains(&format!("--kubeconfig: {kubeconfig}\n")),
            "{report}"
        );
        assert!(report.contains(&format!("Incident: {}\n", finished.incident_id)));
        assert!(report.contains(&format!("Cluster: {cluster}\n")));
    }
    assert_eq!(executor.running(), 0);
}

#[test]
fn failing_agent_reports_exit_code_and_last_stderr_line() {
    let setup = setup();
    let script = stub_with(
        &setup.bin,
        "fail.sh",
        &[("STUB_AGENT_MODE", "fail"), ("STUB_AGENT_DELAY", "0")],
    );
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let (id, _) = executor
        .spawn(
            job(&setup, "c", 1, script, &setup.kubeconfig),
            Instant::now(),
        )
        .unwrap();
    let finished = finish(&mut executor, id);
    assert_eq!(
        finished.outcome,
        AgentOutcome::Failed(
            "exit code 3: stub-agent: failing as asked (STUB_AGENT_MODE=fail)".into()
        )
    );
    let result = finished.result();
    assert_eq!(result.status, "agent_failed");
    assert_eq!(result.exit_code, Some(3));
    assert!(!result.report_present);
    assert_eq!(settled(&finished).status, "agent_failed");
}

#[test]
fn exit_zero_without_report_is_a_failure() {
    let setup = setup();
    let script = stub_with(
        &setup.bin,
        "noreport.sh",
        &[("STUB_AGENT_MODE", "noreport")],
    );
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let (id, _) = executor
        .spawn(
            job(&setup, "c", 1, script, &setup.kubeconfig),
            Instant::now(),
        )
        .unwrap();
    let finished = finish(&mut executor, id);
    assert_eq!(
        finished.outcome,
        AgentOutcome::Failed("agent exited 0 but wrote no output/investigation.md".into())
    );
    assert_eq!(finished.result().exit_code, Some(0));
}

/// Starts a hanging stub and returns its id and the pid of its grandchild, once the stub
/// has set SIGTERM to ignored.
fn spawn_hanging(setup: &Setup, executor: &mut AgentExecutor) -> (AgentId, u32) {
    let fifo = setup.bin.join("ready.fifo");
    let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
    let script = stub_with(
        &setup.bin,
        "hang.sh",
        &[
            ("STUB_AGENT_MODE", "hang"),
            ("STUB_AGENT_DELAY", "0"),
            ("STUB_AGENT_READY_FILE", fifo.to_str().unwrap()),
        ],
    );
    let (id, _) = executor
        .spawn(
            job(setup, "c", 1, script, &setup.kubeconfig),
            Instant::now(),
        )
        .unwrap();
    // Non-blocking open, then poll: bounded even if the stub never writes.
    // SAFETY: a valid path; the descriptor is owned below.
    let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_NONBLOCK) };
    assert!(fd >= 0);
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut poll, 1, WAIT.as_millis() as i32) };
    assert_eq!(ready, 1, "hanging stub never reported ready");
    let mut buf = [0u8; 64];
    // SAFETY: reading into a local buffer of the given length.
    let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n > 0);
    let grandchild: u32 = std::str::from_utf8(&buf[..n as usize])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (id, grandchild)
}

#[test]
fn hung_agent_gets_sigterm_then_sigkill_and_its_whole_group_dies() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let (id, grandchild) = spawn_hanging(&setup, &mut executor);
    let pid = executor.pid(id).unwrap();
    assert!(process_alive(grandchild));

    let now = Instant::now();
    assert_eq!(
        executor.on_deadline(id, now),
        Some(now + Duration::from_secs(2))
    );
    // SIGTERM is ignored by the stub: it must still be running.
    assert!(
        !wait_for_exit(pid, Duration::from_millis(300)),
        "stub should ignore SIGTERM"
    );
    let mut out = Vec::new();
    executor.reap(Instant::now(), &mut out);
    assert!(out.is_empty());

    assert_eq!(executor.on_deadline(id, Instant::now()), None);
    let finished = finish(&mut executor, id);
    assert_eq!(finished.outcome, AgentOutcome::TimedOut);
    assert_eq!(finished.signal, Some(libc::SIGKILL));
    assert!(
        assert_dead(grandchild),
        "grandchild {grandchild} survived the group kill"
    );
    assert_eq!(finished.result().status, "timed_out");
    assert_eq!(settled(&finished).status, "timed_out");
    assert_eq!(executor.on_deadline(id, Instant::now()), None);
}

fn assert_dead(pid: u32) -> bool {
    // The grandchild is not ours to reap: dead means exited, whether or not its new
    // parent has collected it yet.
    !process_alive(pid) || (wait_for_exit(pid, WAIT) && !process_alive(pid))
}

#[test]
fn kill_all_ends_agents_that_ignore_sigterm_at_shutdown() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let (id, grandchild) = spawn_hanging(&setup, &mut executor);
    assert_eq!(executor.terminate_all(), 1);
    executor.kill_all();
    let finished = finish(&mut executor, id);
    assert_eq!(
        finished.outcome,
        AgentOutcome::Failed("stopped at shutdown: killed by signal 9".into())
    );
    assert!(assert_dead(grandchild));
}

/// An agent that sleeps for a minute and honours SIGTERM.
fn spawn_slow(setup: &Setup, executor: &mut AgentExecutor) -> AgentId {
    let script = stub_with(&setup.bin, "slow.sh", &[("STUB_AGENT_DELAY", "60")]);
    let job = job(setup, "c", 1, script, &setup.kubeconfig);
    executor.spawn(job, Instant::now()).unwrap().0
}

#[test]
fn terminate_all_stops_agents_that_honour_sigterm() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let id = spawn_slow(&setup, &mut executor);
    assert_eq!(executor.terminate_all(), 1);
    let finished = finish(&mut executor, id);
    assert_eq!(
        finished.outcome,
        AgentOutcome::Failed("stopped at shutdown: killed by signal 15".into())
    );
    assert_eq!(executor.terminate_all(), 0);
}

#[test]
fn reap_without_exited_children_changes_nothing() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let id = spawn_slow(&setup, &mut executor);
    let mut out = Vec::new();
    executor.reap(Instant::now(), &mut out);
    assert!(out.is_empty());
    assert_eq!(executor.running(), 1);
    executor.kill_all();
    finish(&mut executor, id);
}

#[test]
fn missing_script_is_a_spawn_error_that_names_it() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let job = job(
        &setup,
        "c",
        1,
        setup.bin.join("no-such-agent.sh"),
        &setup.kubeconfig,
    );
    let workspace = job.workspace.clone();
    let err = executor.spawn(job, Instant::now()).unwrap_err();
    assert!(matches!(err, SpawnError::Start { .. }));
    assert!(err.to_string().contains("no-such-agent.sh"), "{err}");
    assert_eq!(executor.running(), 0);
    assert!(!workspace.result_path().exists(), "the caller records it");
    let mut record = workspace.read_incident().unwrap();
    let result: AgentResult = start_failure(&mut record, &err.to_string(), SystemTime::now());
    assert_eq!(result.status, "agent_failed");
    assert!(result.failure_reason.unwrap().contains("no-such-agent.sh"));
    assert_eq!(record.status, "agent_failed");
    assert!(record.finished_at.is_some());
}

#[test]
fn deadline_for_unknown_agent_is_ignored() {
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    assert_eq!(executor.on_deadline(AgentId(42), Instant::now()), None);
}

#[test]
fn dropping_the_executor_kills_and_reaps_its_agents() {
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let (id, grandchild) = spawn_hanging(&setup, &mut executor);
    let pid = executor.pid(id).unwrap();
    drop(executor);
    assert!(gone(pid), "agent {pid} left behind");
    assert!(assert_dead(grandchild));
}

#[test]
fn hidden_environment_variables_do_not_reach_the_agent_even_when_allowed() {
    // Cargo sets both for the test process; both are allowed, one is hidden, the other is
    // the control.
    assert!(std::env::var("CARGO_PKG_NAME").is_ok() && std::env::var("CARGO_MANIFEST_DIR").is_ok());
    let setup = setup();
    let seen = setup.bin.join("seen-env");
    let wrapper = setup.bin.join("env-agent.sh");
    write_executable(
        &wrapper,
        &format!(
            "#!/bin/sh\necho \"${{CARGO_PKG_NAME-hidden}} ${{CARGO_MANIFEST_DIR:+visible}}\" > '{}'\nexec '{}' \"$@\"\n",
            seen.display(),
            stub_script().display()
        ),
    );
    let mut executor = AgentExecutor::new(Duration::from_secs(2)).with_policy(AgentPolicy {
        env_allow: vec!["CARGO_*".to_string()],
        hidden_env: vec!["CARGO_PKG_NAME".to_string()],
        ..AgentPolicy::default()
    });
    let (id, _) = executor
        .spawn(
            job(&setup, "c", 1, wrapper, &setup.kubeconfig),
            Instant::now(),
        )
        .unwrap();
    let finished = finish(&mut executor, id);
    assert_eq!(finished.outcome, AgentOutcome::Investigated);
    assert_eq!(fs::read_to_string(&seen).unwrap().trim(), "hidden visible");
}

#[test]
fn the_executor_writes_no_json_file_of_the_workspace() {
    use std::os::unix::fs::MetadataExt;
    let setup = setup();
    let mut executor = AgentExecutor::new(Duration::from_secs(2));
    let job = job(&setup, "prod-eu", 1, stub_script(), &setup.kubeconfig);
    let incident = job.workspace.incident_path();
    // Every write replaces the file (a new inode): the caller wrote it once already, and
    // records the end through the workspace writer.
    let before = fs::metadata(&incident).unwrap().ino();
    let (id, _) = executor.spawn(job, Instant::now()).unwrap();
    let after_spawn = fs::metadata(&incident).unwrap().ino();
    let finished = finish(&mut executor, id);
    let after_reap = fs::metadata(&incident).unwrap().ino();
    assert_eq!(
        (before, before),
        (after_spawn, after_reap),
        "incident.json rewritten"
    );
    assert!(!finished.workspace.result_path().exists());
    // The end it hands over records both times.
    let record = settled(&finished);
    assert!(record.started_at.is_some() && record.finished_at.is_some());
    assert_eq!(finished.result().finished_at, record.finished_at.unwrap());
}
