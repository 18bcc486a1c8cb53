//! A host-mode agent (AGENT_RUNTIME=none) confined with bubblewrap, as real child
//! processes: it reads its own kubeconfig and writes its own workspace, and nothing else —
//! not another cluster's kubeconfig, not the daemon's configuration, not another
//! incident's workspace — and its environment holds only the allowlist. The same probe run
//! unconfined reaches all of them, so the probe itself is shown to work.
//!
//! Every test in this file shares the process environment set up once in `daemon_env`
//! (the daemon's environment is what the executor filters).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

use common::exec::{wait_for_exit, write_executable};
use nightcrier::agent::environment::BUILTIN_ALLOW;
use nightcrier::agent::executor::{
    AgentExecutor, AgentJob, AgentOutcome, AgentPolicy, FinishedAgent,
};
use nightcrier::agent::workspace::{new_incident_id, IncidentRecord, Workspace};
use nightcrier::config::Confinement;
use nightcrier::events::FaultEvent;

const WAIT: Duration = Duration::from_secs(30);
const SECRET_NAME: &str = "DAEMON_DATABASE_PASSWORD";
const SECRET_VALUE: &str = "hunter2-not-for-agents";
const MODEL_KEY: &str = "sk-allowed-model-key";

/// Records what the agent can reach: for each line `LABEL MODE PATH` of `probe-targets`
/// in the workspace, `LABEL: allowed` or `LABEL: denied`; its environment goes to env.txt.
/// Used as an agent script and as a fake `claude` under run-agent.sh.
const PROBE: &str = r###"#!/bin/sh
{
echo "## Summary"
while read -r label mode path; do
  case "$mode" in
    read) if cat "$path" >/dev/null 2>&1; then r=allowed; else r=denied; fi ;;
    list) if ls "$path" >/dev/null 2>&1; then r=allowed; else r=denied; fi ;;
    write) if ( echo probe >> "$path" ) 2>/dev/null; then r=allowed; else r=denied; fi ;;
  esac
  echo "$label: $r"
done < probe-targets
} > output/report.tmp
env > env.txt
mv output/report.tmp output/investigation.md
"###;

/// The daemon's environment for every test here: a secret the agent must not see, a model
/// key it must see, host mode, and the fake `claude` first on PATH. Returns the bin dir.
fn daemon_env() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // Shared by every test of this process, so it lives in cargo's test scratch space
        // rather than a temporary directory no test owns.
        let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join("agent_confinement/bin");
        fs::create_dir_all(&bin).unwrap();
        write_executable(&bin.join("claude"), PROBE);
        write_executable(&bin.join("probe-agent"), PROBE);
        let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .unwrap();
        std::env::set_var("PATH", path);
        std::env::set_var("AGENT_RUNTIME", "none");
        std::env::set_var(SECRET_NAME, SECRET_VALUE);
        std::env::set_var("ANTHROPIC_API_KEY", MODEL_KEY);
        bin
    })
}

/// Two clusters' kubeconfigs, a daemon configuration, another incident's workspace with a
/// report, and a new workspace for cluster `prod` listing what the probe should try.
struct Scene {
    _dir: tempfile::TempDir,
    root: PathBuf,
    own_kubeconfig: PathBuf,
    other_kubeconfig: PathBuf,
    daemon_config: PathBuf,
    other_report: PathBuf,
    workspace: Workspace,
}

fn fault() -> FaultEvent {
    FaultEvent::from_fault_data(
        r#"{"faultId":"f-1","faultType":"CrashLoop","severity":"critical",
            "resource":{"kind":"Pod","name":"api","namespace":"shop"}}"#,
    )
    .unwrap()
}

fn workspace(root: &Path, cluster: &str, sequence: u64) -> Workspace {
    let record = IncidentRecord::new(
        new_incident_id(cluster, SystemTime::now(), sequence),
        cluster.to_string(),
        None,
        BTreeMap::new(),
        fault(),
        SystemTime::now(),
    );
    Workspace::create(root, &record, None).unwrap()
}

fn scene() -> Scene {
    daemon_env();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let kube = dir.path().join("kube");
    fs::create_dir_all(&kube).unwrap();
    let own_kubeconfig = kube.join("prod.yaml");
    let other_kubeconfig = kube.join("staging.yaml");
    fs::write(&own_kubeconfig, "# prod credentials\n").unwrap();
    fs::write(&other_kubeconfig, "# staging credentials\n").unwrap();
    let daemon_config = dir.path().join("nightcrier.toml");
    fs::write(
        &daemon_config,
        "[slack]\nwebhook_url = \"https://hooks.example/x\"\n",
    )
    .unwrap();
    let other = workspace(&root, "staging", 1);
    let other_report = other.report_path();
    fs::write(&other_report, "## Summary\nstaging secrets\n").unwrap();
    let workspace = workspace(&root, "prod", 2);
    let targets = [
        ("own_kubeconfig", "read", &own_kubeconfig),
        ("other_kubeconfig", "read", &other_kubeconfig),
        ("daemon_config", "read", &daemon_config),
        ("other_workspace", "list", &other.dir),
        ("other_report", "read", &other_report),
        ("other_report_write", "write", &other_report),
        ("own_kubeconfig_write", "write", &own_kubeconfig),
        ("incident_json_write", "write", &workspace.incident_path()),
    ]
    .iter()
    .map(|(label, mode, path)| format!("{label} {mode} {}\n", path.display()))
    .collect::<String>();
    fs::write(workspace.dir.join("probe-targets"), targets).unwrap();
    Scene {
        _dir: dir,
        root,
        own_kubeconfig,
        other_kubeconfig,
        daemon_config,
        other_report,
        workspace,
    }
}

fn run(scene: &Scene, script: PathBuf, confinement: Confinement) -> FinishedAgent {
    let mut executor = AgentExecutor::new(Duration::from_secs(2)).with_policy(AgentPolicy {
        confinement,
        ..AgentPolicy::default()
    });
    if confinement != Confinement::Off {
        assert!(
            executor.sandbox().is_ok(),
            "bubblewrap must work here (install the bubblewrap package): {:?}",
            executor.sandbox()
        );
    }
    let job = AgentJob {
        incident_id: scene.workspace.incident_id.clone(),
        cluster: "prod".into(),
        workspace: scene.workspace.clone(),
        script,
        kubeconfig: scene.own_kubeconfig.clone(),
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
    let finished = out.pop().expect("the agent was reaped");
    assert_eq!(
        finished.outcome,
        AgentOutcome::Investigated,
        "stderr: {}",
        fs::read_to_string(scene.workspace.stderr_log_path()).unwrap_or_default()
    );
    finished
}

/// The probe's answers, label → allowed.
fn reach(scene: &Scene) -> BTreeMap<String, bool> {
    fs::read_to_string(scene.workspace.report_path())
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(label, answer)| (label.to_string(), answer == "allowed"))
        .collect()
}

fn agent_env(scene: &Scene) -> BTreeMap<String, String> {
    fs::read_to_string(scene.workspace.dir.join("env.txt"))
        .unwrap()
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn assert_confined(scene: &Scene) {
    let reach = reach(scene);
    let expected: BTreeMap<String, bool> = [
        ("own_kubeconfig", true),
        ("other_kubeconfig", false),
        ("daemon_config", false),
        ("other_workspace", false),
        ("other_report", false),
        ("other_report_write", false),
        ("own_kubeconfig_write", false),
        ("incident_json_write", false),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), *v))
    .collect();
    assert_eq!(reach, expected);
    assert_eq!(
        fs::read_to_string(&scene.other_report).unwrap(),
        "## Summary\nstaging secrets\n"
    );
    assert_eq!(
        fs::read_to_string(&scene.own_kubeconfig).unwrap(),
        "# prod credentials\n"
    );
    assert!(
        scene.workspace.read_incident().is_ok(),
        "incident.json intact"
    );
}

/// Every variable is on the allowlist (or set by the executor or the shell).
fn assert_allowlisted_env(scene: &Scene) {
    let env = agent_env(scene);
    assert_eq!(env.get(SECRET_NAME), None, "the daemon's secret leaked");
    assert_eq!(env.get("CARGO_MANIFEST_DIR"), None);
    assert_eq!(
        env.get("ANTHROPIC_API_KEY").map(String::as_str),
        Some(MODEL_KEY)
    );
    assert_eq!(
        env.get("HOME").map(PathBuf::from),
        Some(scene.workspace.home_dir()),
        "the agent's home is its own, in the workspace"
    );
    assert_eq!(env.get("CLUSTER_NAME").map(String::as_str), Some("prod"));
    assert_eq!(
        env.get("KUBECONFIG").map(PathBuf::from),
        Some(scene.own_kubeconfig.clone())
    );
    // The executor's own, the shell's, and the settings run-agent.sh gives every CLI.
    let set_by_us: BTreeSet<&str> = [
        "HOME",
        "TMPDIR",
        "DISABLE_AUTOUPDATER",
        "DISABLE_TELEMETRY",
        "DISABLE_ERROR_REPORTING",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
        "INCIDENT_ID",
        "CLUSTER_NAME",
        "KUBECONFIG",
        "PWD",
        "OLDPWD",
        "SHLVL",
        "_",
    ]
    .into();
    for name in env.keys() {
        let allowed = set_by_us.contains(name.as_str())
            || BUILTIN_ALLOW
                .iter()
                .any(|pattern| match pattern.strip_suffix('*') {
                    Some(prefix) => name.starts_with(prefix),
                    None => pattern == name,
                });
        assert!(allowed, "{name} is not on the allowlist: {env:?}");
    }
}

#[test]
fn confined_agent_reaches_only_its_workspace_and_kubeconfig() {
    let scene = scene();
    let finished = run(&scene, daemon_env().join("probe-agent"), Confinement::Bwrap);
    assert!(finished.write_failures.is_empty());
    assert_confined(&scene);
    assert_allowlisted_env(&scene);
    assert!(
        !scene.root.join("planted").exists(),
        "nothing reaches the workspace root"
    );
}

#[test]
fn run_agent_sh_on_the_host_is_confined_by_default() {
    // AGENT_RUNTIME=none in the daemon's environment and agent.confinement at its default.
    let scene = scene();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/run-agent.sh");
    run(&scene, script, Confinement::Auto);
    assert_confined(&scene);
    assert_allowlisted_env(&scene);
}

#[test]
fn unconfined_agent_reaches_everything_so_the_probe_is_real() {
    let scene = scene();
    run(&scene, daemon_env().join("probe-agent"), Confinement::Off);
    let reach = reach(&scene);
    for label in [
        "other_kubeconfig",
        "daemon_config",
        "other_workspace",
        "other_report",
    ] {
        assert_eq!(reach.get(label), Some(&true), "{label}: {reach:?}");
    }
    assert!(
        fs::read_to_string(&scene.daemon_config).is_ok(),
        "the control scene has a daemon config"
    );
    let _ = &scene.other_kubeconfig;
    // The environment is filtered with or without a sandbox.
    assert_allowlisted_env(&scene);
}

#[test]
fn a_confined_agent_ends_at_its_deadline_with_everything_it_started() {
    let scene = scene();
    let marker = scene.workspace.dir.join("still-alive");
    let agent = daemon_env().join("stubborn-agent");
    write_executable(
        &agent,
        "#!/bin/sh\ntrap '' TERM\n(trap '' TERM; while :; do sleep 0.05; touch still-alive; done) &\nwhile :; do sleep 1; done\n",
    );
    let mut executor = AgentExecutor::new(Duration::from_millis(300)).with_policy(AgentPolicy {
        confinement: Confinement::Bwrap,
        ..AgentPolicy::default()
    });
    let job = AgentJob {
        incident_id: scene.workspace.incident_id.clone(),
        cluster: "prod".into(),
        workspace: scene.workspace.clone(),
        script: agent,
        kubeconfig: scene.own_kubeconfig.clone(),
        model: "sonnet".into(),
        cli: "claude".into(),
        allowed_tools: "Bash".into(),
        timeout: Duration::from_secs(1),
        system_prompt_file: None,
        prompt: "Investigate".into(),
    };
    let (id, deadline) = executor.spawn(job, Instant::now()).unwrap();
    let pid = executor.pid(id).unwrap();
    // The background loop is running once it has touched its file.
    let started = Instant::now();
    while !marker.exists() && started.elapsed() < WAIT {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(marker.exists(), "the agent's background loop never ran");
    // The agent ignores SIGTERM, but bubblewrap does not: it exits on the first signal and
    // takes every process of the sandbox with it.
    assert!(
        executor.on_deadline(id, deadline).is_some(),
        "SIGTERM first"
    );
    assert!(wait_for_exit(pid, WAIT), "SIGTERM ends the sandbox");
    let mut out = Vec::new();
    executor.reap(Instant::now(), &mut out);
    assert_eq!(out.pop().map(|f| f.outcome), Some(AgentOutcome::TimedOut));
    // Nothing inside keeps running: the file stops changing.
    fs::remove_file(&marker).unwrap();
    let quiet_until = Instant::now() + Duration::from_millis(300);
    while Instant::now() < quiet_until {
        assert!(!marker.exists(), "a process of the sandbox survived");
        std::thread::sleep(Duration::from_millis(20));
    }
}
