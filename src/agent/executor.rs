//! Runs triage agents as child processes, one process group each, and turns their ends
//! into outcomes.
//!
//! The loop calls [`AgentExecutor::reap`] on every SIGCHLD; signals coalesce, so `reap`
//! checks every child we own and never calls `waitpid(-1)` (that would steal the statuses
//! of children other parts of the process own). Before a child is reaped its whole group
//! gets SIGKILL: anything the agent left running dies with it, and because the leader is
//! still an unreaped zombie at that moment, its group id cannot belong to anyone else.
//!
//! The child's environment is an allowlist (see [`environment`](crate::agent::environment)),
//! an agent that runs on this host is confined with bubblewrap (see
//! [`confinement`](crate::agent::confinement)), and its output goes through a relay that caps
//! each log (see [`output`](crate::agent::output)).
//!
//! The executor writes no JSON: a run's end comes back as a [`FinishedAgent`], whose
//! [`result`](FinishedAgent::result) and [`settle`](FinishedAgent::settle) the caller hands to
//! the workspace writer, off the loop thread.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use crate::agent::confinement::{self, SandboxLayout};
use crate::agent::environment::{allowed_env, runs_on_host};
use crate::agent::failure_line::failure_line;
use crate::agent::output::{OutputRelay, RelayReport};
use crate::agent::preflight::last_line;
use crate::agent::workspace::{
    rfc3339, status, AgentResult, IncidentRecord, Workspace, WriteFailure, OUTPUT_DIR, REPORT_FILE,
};
use crate::config::{AgentConfig, Confinement};

/// Only the end of the agent's stderr is read, for the failure reason.
const STDERR_TAIL_BYTES: u64 = 4096;

/// Durations are clamped to this so `now + duration` can never overflow an `Instant`.
const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// The exit code the agent contract (like `timeout(1)`) uses for "ran out of time".
const EXIT_TIMED_OUT: i32 = 124;

/// How long the reaper waits for the output relay to copy the last bytes of a dead agent.
const RELAY_FINISH_WAIT: Duration = Duration::from_millis(200);

/// `PATH` for an agent when the daemon has none.
const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// What an agent may see and how much it may write: from `[agent]`, plus the names of
/// the variables holding nightcrier's own secrets.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentPolicy {
    pub confinement: Confinement,
    pub env_allow: Vec<String>,
    pub confine_read_only: Vec<PathBuf>,
    pub max_output_bytes: u64,
    /// Never passed, even when allowed (API keys, the webhook URL, `NIGHTCRIER_*`).
    pub hidden_env: Vec<String>,
}

impl AgentPolicy {
    pub fn from_config(agent: &AgentConfig, hidden_env: Vec<String>) -> AgentPolicy {
        AgentPolicy {
            confinement: agent.confinement,
            env_allow: agent.env_allow.clone(),
            confine_read_only: agent.confine_read_only.clone(),
            max_output_bytes: agent.max_output_bytes,
            hidden_env,
        }
    }
}

impl Default for AgentPolicy {
    fn default() -> Self {
        AgentPolicy::from_config(&AgentConfig::default(), Vec::new())
    }
}

/// Where an agent runs and what confines it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// On this host, in a bubblewrap sandbox.
    Sandbox,
    /// On this host without a sandbox; `warn` when confinement was wanted but is missing.
    HostUnconfined { warn: bool },
    /// In a container started by the agent script: the container confines it.
    Container,
    /// `agent.confinement = "bwrap"` and bubblewrap does not work: not started.
    Refused,
}

/// Decides the placement from `agent.confinement`, whether bubblewrap works here, and
/// whether the agent runs on this host (`AGENT_RUNTIME=none`).
fn placement(confinement: Confinement, sandbox_works: bool, host: bool) -> Placement {
    match (confinement, sandbox_works, host) {
        (Confinement::Bwrap, true, _) | (Confinement::Auto, true, true) => Placement::Sandbox,
        (Confinement::Bwrap, false, _) => Placement::Refused,
        (Confinement::Auto, false, true) => Placement::HostUnconfined { warn: true },
        (Confinement::Off, _, true) => Placement::HostUnconfined { warn: false },
        (Confinement::Auto | Confinement::Off, _, false) => Placement::Container,
    }
}

/// Whether bubblewrap works here: its path, or why not.
type Sandbox = Result<PathBuf, String>;

fn find_sandbox(confinement: Confinement) -> Sandbox {
    if confinement == Confinement::Off {
        return Err("agent.confinement = \"none\"".to_string());
    }
    let path = std::env::var_os("PATH");
    let bwrap = confinement::find_program("bwrap", path.as_deref()).ok_or_else(|| {
        "bwrap (Debian package bubblewrap) is not installed or not on PATH".to_string()
    })?;
    confinement::probe(&bwrap)?;
    Ok(bwrap)
}

/// Everything needed to start one agent run.
#[derive(Debug, Clone)]
pub struct AgentJob {
    pub incident_id: String,
    pub cluster: String,
    pub workspace: Workspace,
    pub script: PathBuf,
    pub kubeconfig: PathBuf,
    pub model: String,
    pub cli: String,
    pub allowed_tools: String,
    pub timeout: Duration,
    pub system_prompt_file: Option<PathBuf>,
    pub prompt: String,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct AgentId(pub u64);

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentOutcome {
    Investigated,
    Failed(String),
    TimedOut,
}

impl AgentOutcome {
    /// The status written to `incident.json` and `result.json`.
    pub fn status(&self) -> &'static str {
        match self {
            AgentOutcome::Investigated => status::INVESTIGATED,
            AgentOutcome::Failed(_) => status::AGENT_FAILED,
            AgentOutcome::TimedOut => status::TIMED_OUT,
        }
    }
}

#[derive(Debug)]
pub struct FinishedAgent {
    pub id: AgentId,
    pub incident_id: String,
    pub cluster: String,
    pub workspace: Workspace,
    pub outcome: AgentOutcome,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub started: SystemTime,
    pub duration: Duration,
    /// Whether the agent left its report (a non-empty regular file).
    pub report_present: bool,
    /// Writes of the agent's logs that failed during the run.
    pub write_failures: Vec<WriteFailure>,
    /// Whether a log was cut at `agent.max_output_bytes`.
    pub output_truncated: bool,
}

impl FinishedAgent {
    /// What `result.json` says about this run.
    pub fn result(&self) -> AgentResult {
        AgentResult {
            incident_id: self.workspace.incident_id.clone(),
            cluster: self.cluster.clone(),
            status: self.outcome.status().to_string(),
            exit_code: self.exit_code,
            signal: self.signal,
            started_at: rfc3339(self.started),
            finished_at: rfc3339(self.started + self.duration),
            duration_seconds: self.duration.as_secs_f64(),
            failure_reason: match &self.outcome {
                AgentOutcome::Failed(reason) => Some(reason.clone()),
                AgentOutcome::TimedOut => Some(format!(
                    "timed out after {:.0}s",
                    self.duration.as_secs_f64()
                )),
                AgentOutcome::Investigated => None,
            },
            report_present: self.report_present,
        }
    }

    /// Sets the incident's final status and both times of the run.
    pub fn settle(&self, record: &mut IncidentRecord) {
        record.status = self.outcome.status().to_string();
        record.started_at = Some(rfc3339(self.started));
        record.finished_at = Some(rfc3339(self.started + self.duration));
    }
}

/// What `result.json` says about a run that never started, and the incident's final state.
pub fn start_failure(record: &mut IncidentRecord, reason: &str, at: SystemTime) -> AgentResult {
    let outcome = AgentOutcome::Failed(reason.to_string());
    record.status = outcome.status().to_string();
    record.finished_at = Some(rfc3339(at));
    AgentResult {
        incident_id: record.incident_id.clone(),
        cluster: record.cluster.clone(),
        status: outcome.status().to_string(),
        exit_code: None,
        signal: None,
        started_at: rfc3339(at),
        finished_at: rfc3339(at),
        duration_seconds: 0.0,
        failure_reason: Some(reason.to_string()),
        report_present: false,
    }
}

#[derive(Debug)]
pub enum SpawnError {
    /// The workspace log file could not be created.
    Log { path: PathBuf, source: io::Error },
    /// The agent script could not be started.
    Start { script: PathBuf, source: io::Error },
    /// The thread that copies the agent's output to its logs could not be started.
    Relay(io::Error),
    /// `agent.confinement = "bwrap"` and bubblewrap does not work here.
    Confinement(String),
}

impl SpawnError {
    /// The kernel refused the agent's arguments as too long (E2BIG): the fault's data, not
    /// the host, made this start fail.
    pub fn caused_by_fault_data(&self) -> bool {
        matches!(self, SpawnError::Start { source, .. } if source.raw_os_error() == Some(libc::E2BIG))
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpawnError::Log { path, source } => {
                write!(f, "cannot create agent log {}: {source}", path.display())
            }
            SpawnError::Start { script, source } => {
                write!(
                    f,
                    "cannot start agent script {}: {source}",
                    script.display()
                )
            }
            SpawnError::Relay(source) => {
                write!(f, "cannot start the agent's output relay: {source}")
            }
            SpawnError::Confinement(reason) => {
                write!(f, "agent.confinement = \"bwrap\" but {reason}")
            }
        }
    }
}

impl std::error::Error for SpawnError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SpawnError::Log { source, .. }
            | SpawnError::Start { source, .. }
            | SpawnError::Relay(source) => Some(source),
            SpawnError::Confinement(_) => None,
        }
    }
}

struct RunningAgent {
    incident_id: String,
    cluster: String,
    /// `agent.cli`, to find the CLI's own error line in its output.
    cli: String,
    workspace: Workspace,
    child: Child,
    /// Also the process group id: the child leads its own group.
    pid: i32,
    started: SystemTime,
    started_at: Instant,
    timed_out: bool,
    kill_sent: bool,
    stopping: bool,
    relay: Option<OutputRelay>,
    write_failures: Vec<WriteFailure>,
}

impl RunningAgent {
    fn signal_group(&self, signal: i32) {
        // The child is not reaped yet, so the group id is still ours.
        if let Err(err) = super::child::signal_group(self.pid, signal) {
            log::warn!(
                "incident {}: cannot signal agent group {}: {err}",
                self.incident_id,
                self.pid
            );
        }
    }
}

pub struct AgentExecutor {
    kill_grace: Duration,
    next_id: u64,
    agents: BTreeMap<AgentId, RunningAgent>,
    policy: AgentPolicy,
    sandbox: Sandbox,
}

impl AgentExecutor {
    pub fn new(kill_grace: Duration) -> Self {
        let policy = AgentPolicy::default();
        AgentExecutor {
            kill_grace: kill_grace.min(MAX_DURATION),
            next_id: 1,
            agents: BTreeMap::new(),
            sandbox: find_sandbox(policy.confinement),
            policy,
        }
    }

    /// Sets what agents may see (see [`set_policy`](Self::set_policy)).
    pub fn with_policy(mut self, policy: AgentPolicy) -> Self {
        self.set_policy(policy);
        self
    }

    /// Replaces the policy (at start and after a reload). The hidden variables are the
    /// names holding nightcrier's own secrets: an agent's report may be posted to Slack, so
    /// what it can read, it can leak. Checks bubblewrap again when confinement changed, and
    /// says loudly when agents on this host will run unconfined.
    pub fn set_policy(&mut self, policy: AgentPolicy) {
        if policy.confinement != self.policy.confinement {
            self.sandbox = find_sandbox(policy.confinement);
        }
        self.policy = policy;
        let host = std::env::var_os(crate::agent::environment::RUNTIME_VARIABLE)
            .is_some_and(|v| v == "none");
        match (&self.sandbox, self.policy.confinement) {
            (Ok(bwrap), Confinement::Bwrap) => log::info!(
                "every agent is confined with {} (agent.confinement = \"bwrap\")",
                bwrap.display()
            ),
            (Ok(bwrap), _) if host => log::info!(
                "agents run on this host (AGENT_RUNTIME=none), confined with {}",
                bwrap.display()
            ),
            (Ok(_), _) => log::debug!(
                "agents run in containers (AGENT_RUNTIME is not none): no host confinement"
            ),
            (Err(reason), Confinement::Bwrap) => log::error!(
                "agent.confinement = \"bwrap\" but {reason}: no agent will start until it works"
            ),
            (Err(reason), _) if host => log::warn!(
                "AGENTS RUN UNCONFINED: AGENT_RUNTIME=none and {reason}; every agent can read \
                 what this daemon's user can read, other clusters' kubeconfigs included \
                 (install bubblewrap, or set agent.confinement = \"bwrap\" to refuse)"
            ),
            (Err(_), _) => {}
        }
    }

    /// The bubblewrap binary agents are confined with, or why there is none.
    pub fn sandbox(&self) -> Result<&Path, &str> {
        self.sandbox.as_deref().map_err(String::as_str)
    }

    /// Starts `script --workspace DIR --kubeconfig FILE --model M --agent CLI
    /// --allowed-tools T --timeout SECS [--system-prompt-file F] PROMPT` in its own session
    /// and process group, in the workspace, with the allowlisted environment plus
    /// `INCIDENT_ID`, `CLUSTER_NAME`, `KUBECONFIG` (and `HOME` on this host), in a sandbox
    /// when the policy says so, its output going through a capped relay.
    /// Returns the id and the deadline at which the loop must call
    /// [`on_deadline`](Self::on_deadline).
    pub fn spawn(&mut self, job: AgentJob, now: Instant) -> Result<(AgentId, Instant), SpawnError> {
        let started = SystemTime::now();
        let workspace = job.workspace.clone();
        // The child runs in the workspace, so relative paths would point elsewhere.
        let script = absolute_program(&job.script);
        let kubeconfig = absolute(&job.kubeconfig);
        let timeout = job.timeout.min(MAX_DURATION);
        let timeout_secs = timeout.as_secs_f64().ceil().max(1.0) as u64;

        let policy = &self.policy;
        let daemon_env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        let mut env = allowed_env(
            daemon_env.iter().cloned(),
            &policy.env_allow,
            false,
            &policy.hidden_env,
        );
        let host = runs_on_host(&env);
        let placement = placement(policy.confinement, self.sandbox.is_ok(), host);
        let sandbox = match (placement, &self.sandbox) {
            (Placement::Sandbox, Ok(bwrap)) => Some(bwrap.clone()),
            (Placement::Refused, Err(reason)) | (Placement::Sandbox, Err(reason)) => {
                return Err(SpawnError::Confinement(reason.clone()));
            }
            (Placement::HostUnconfined { warn: true }, Err(reason)) => {
                log::warn!(
                    "incident {}: agent on cluster {} runs UNCONFINED on this host: {reason}",
                    job.incident_id,
                    job.cluster
                );
                None
            }
            _ => None,
        };
        // On this host the agent gets a home of its own in the workspace (its CLI's settings
        // and caches), never the daemon's, which holds other credentials. A container agent
        // gets the container runtime client's variables instead; its CLI has its own home.
        let own_home = placement != Placement::Container;
        if !own_home {
            env = allowed_env(daemon_env, &policy.env_allow, true, &policy.hidden_env);
        }
        if !env.iter().any(|(name, _)| name == "PATH") {
            env.push(("PATH".into(), DEFAULT_PATH.into()));
        }
        let log_error = |path: PathBuf| {
            move |source: io::Error| SpawnError::Log {
                path: path.clone(),
                source,
            }
        };
        if own_home {
            confinement::private_dir(&workspace.home_dir())
                .map_err(log_error(workspace.home_dir()))?;
        }
        if sandbox.is_some() {
            confinement::private_dir(&workspace.tmp_dir())
                .map_err(log_error(workspace.tmp_dir()))?;
        }
        let stdout_log = create_log(&workspace.stdout_log_path())?;
        let stderr_log = create_log(&workspace.stderr_log_path())?;

        let mut command = match &sandbox {
            Some(bwrap) => sandboxed(
                bwrap,
                &workspace,
                &env,
                &policy.confine_read_only,
                &kubeconfig,
                &script,
                job.system_prompt_file.as_deref(),
            ),
            None => Command::new(&script),
        };
        command
            .arg("--workspace")
            .arg(&workspace.dir)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--model", &job.model, "--agent", &job.cli])
            .args(["--allowed-tools", &job.allowed_tools])
            .arg("--timeout")
            .arg(timeout_secs.to_string());
        if let Some(file) = &job.system_prompt_file {
            command.arg("--system-prompt-file").arg(absolute(file));
        }
        command
            .arg(&job.prompt)
            .env_clear()
            .envs(env)
            .env("INCIDENT_ID", &job.incident_id)
            .env("CLUSTER_NAME", &job.cluster)
            .env("KUBECONFIG", &kubeconfig)
            .current_dir(&workspace.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if own_home {
            command.env("HOME", workspace.home_dir());
        }
        // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent. A new
        // session is also a new process group led by the child (its group id is its pid), and
        // it has no controlling terminal an agent could push input into.
        unsafe {
            command.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }

        // The caller wrote incident.json as `running` when it created the workspace, and
        // records the run's end (or a failed start): one write per state change.
        let mut child = command
            .spawn()
            .map_err(|source| SpawnError::Start { script, source })?;
        let pid = child.id() as i32;
        let relay = match (child.stdout.take(), child.stderr.take()) {
            (Some(out), Some(err)) => {
                OutputRelay::start(out, err, stdout_log, stderr_log, policy.max_output_bytes)
            }
            _ => Err(io::Error::other("the agent's output pipes are missing")),
        };
        let relay = match relay {
            Ok(relay) => relay,
            Err(source) => {
                // Without a reader the agent would block on its first full pipe.
                // The child is unreaped, so its group id is still ours.
                let _ = super::child::signal_group(pid, libc::SIGKILL);
                let _ = child.wait();
                return Err(SpawnError::Relay(source));
            }
        };
        let id = AgentId(self.next_id);
        self.next_id += 1;
        log::info!(
            "incident {}: agent started on cluster {} (pid {}{})",
            job.incident_id,
            job.cluster,
            pid,
            if sandbox.is_some() { ", confined" } else { "" }
        );
        self.agents.insert(
            id,
            RunningAgent {
                incident_id: job.incident_id,
                cluster: job.cluster,
                cli: job.cli,
                workspace,
                pid,
                child,
                started,
                started_at: now,
                timed_out: false,
                kill_sent: false,
                stopping: false,
                relay: Some(relay),
                write_failures: Vec::new(),
            },
        );
        Ok((id, now + timeout))
    }

    /// Collects every agent that has exited. Call on each SIGCHLD; calling it spuriously is
    /// harmless.
    pub fn reap(&mut self, now: Instant, out: &mut Vec<FinishedAgent>) {
        let exited: Vec<AgentId> = self
            .agents
            .iter()
            .filter(|(_, agent)| has_exited(agent.pid))
            .map(|(id, _)| *id)
            .collect();
        for id in exited {
            let Some(mut agent) = self.agents.remove(&id) else {
                continue;
            };
            // Stragglers in the group die before the leader's pid is released.
            agent.signal_group(libc::SIGKILL);
            let exit = match agent.child.wait() {
                Ok(exit) => Some(exit),
                Err(err) => {
                    log::warn!("incident {}: cannot reap agent: {err}", agent.incident_id);
                    None
                }
            };
            out.push(self.finish(id, agent, exit, now));
        }
    }

    fn finish(
        &self,
        id: AgentId,
        mut agent: RunningAgent,
        exit: Option<ExitStatus>,
        now: Instant,
    ) -> FinishedAgent {
        let duration = now.saturating_duration_since(agent.started_at);
        let output = agent
            .relay
            .take()
            .and_then(|relay| relay.finish(RELAY_FINISH_WAIT));
        let mut write_failures = std::mem::take(&mut agent.write_failures);
        let mut output_truncated = false;
        if let Some(RelayReport { stdout, stderr }) = &output {
            for (name, stream) in [("stdout", stdout), ("stderr", stderr)] {
                output_truncated |= stream.truncated;
                if let Some(err) = &stream.write_error {
                    log::error!(
                        "incident {}: agent {name} log not written: {err}",
                        agent.incident_id
                    );
                    write_failures.push(WriteFailure::of(err));
                }
            }
        }
        let facts = ExitFacts {
            exit_code: exit.and_then(|e| e.code()),
            signal: exit.and_then(|e| e.signal()),
            timed_out: agent.timed_out,
            stopping: agent.stopping,
            report_present: agent.workspace.report_present(),
        };
        let outcome = classify(&facts, || match &output {
            Some(report) => failure_line(&agent.cli, &report.stdout.tail, &report.stderr.tail),
            None => stderr_tail(&agent.workspace.stderr_log_path()),
        });
        match &outcome {
            AgentOutcome::Investigated => log::info!(
                "incident {}: agent finished on cluster {} in {:.1}s",
                agent.incident_id,
                agent.cluster,
                duration.as_secs_f64()
            ),
            other => log::warn!(
                "incident {}: agent on cluster {} {}",
                agent.incident_id,
                agent.cluster,
                match other {
                    AgentOutcome::Failed(reason) => format!("failed: {reason}"),
                    _ => format!("timed out after {:.1}s", duration.as_secs_f64()),
                }
            ),
        }
        FinishedAgent {
            id,
            incident_id: agent.incident_id,
            cluster: agent.cluster,
            workspace: agent.workspace,
            outcome,
            exit_code: facts.exit_code,
            signal: facts.signal,
            started: agent.started,
            duration,
            report_present: facts.report_present,
            write_failures,
            output_truncated,
        }
    }

    /// The agent's deadline passed: the first call sends SIGTERM to its group and returns
    /// when to call again; the second sends SIGKILL and returns `None`. An unknown or
    /// already finished id returns `None`.
    pub fn on_deadline(&mut self, id: AgentId, now: Instant) -> Option<Instant> {
        let agent = self.agents.get_mut(&id)?;
        if !agent.timed_out {
            agent.timed_out = true;
            log::warn!(
                "incident {}: agent on cluster {} reached its timeout; sending SIGTERM",
                agent.incident_id,
                agent.cluster
            );
            agent.signal_group(libc::SIGTERM);
            return Some(now + self.kill_grace);
        }
        if !agent.kill_sent {
            agent.kill_sent = true;
            log::warn!(
                "incident {}: agent ignored SIGTERM for {:?}; sending SIGKILL",
                agent.incident_id,
                self.kill_grace
            );
            agent.signal_group(libc::SIGKILL);
        }
        None
    }

    /// The process id (and process group id) of a running agent.
    pub fn pid(&self, id: AgentId) -> Option<u32> {
        self.agents.get(&id).map(|agent| agent.child.id())
    }

    pub fn running(&self) -> usize {
        self.agents.len()
    }

    /// The incident ids (workspace directory names) of the running agents.
    pub fn running_incidents(&self) -> std::collections::HashSet<String> {
        self.agents
            .values()
            .map(|a| a.workspace.incident_id.clone())
            .collect()
    }

    pub fn running_for(&self, cluster: &str) -> usize {
        self.agents
            .values()
            .filter(|a| a.cluster == cluster)
            .count()
    }

    /// Shutdown, first step: SIGTERM to every agent group. Returns how many were signalled.
    /// The agents stay owned until reaped.
    pub fn terminate_all(&mut self) -> usize {
        let mut signalled = 0;
        for agent in self.agents.values_mut().filter(|a| !a.kill_sent) {
            agent.stopping = true;
            agent.signal_group(libc::SIGTERM);
            signalled += 1;
        }
        signalled
    }

    /// Shutdown, last step: SIGKILL to every remaining agent group.
    pub fn kill_all(&mut self) {
        for agent in self.agents.values_mut() {
            agent.stopping = true;
            agent.kill_sent = true;
            agent.signal_group(libc::SIGKILL);
        }
    }
}

impl Drop for AgentExecutor {
    /// No agent outlives its executor, and none is left a zombie.
    fn drop(&mut self) {
        for agent in self.agents.values_mut() {
            agent.signal_group(libc::SIGKILL);
            let _ = agent.child.wait();
        }
    }
}

/// `bwrap ARGS -- SCRIPT`: the script in a sandbox that shows it its workspace, its own
/// kubeconfig and the tools on its `PATH` (see [`confinement`]).
fn sandboxed(
    bwrap: &Path,
    workspace: &Workspace,
    env: &[(OsString, OsString)],
    confine_read_only: &[PathBuf],
    kubeconfig: &Path,
    script: &Path,
    system_prompt_file: Option<&Path>,
) -> Command {
    let path_var = env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.as_os_str());
    let read_only = confinement::tool_paths(path_var, confine_read_only);
    let protected = [
        workspace.incident_path(),
        workspace.permissions_path(),
        workspace.stdout_log_path(),
        workspace.stderr_log_path(),
    ];
    let tmp = workspace.tmp_dir();
    let prompt_file = system_prompt_file.map(absolute);
    let layout = SandboxLayout {
        workspace: &workspace.dir,
        tmp: &tmp,
        protected: &protected,
        kubeconfig,
        script: script.is_absolute().then_some(script),
        system_prompt_file: prompt_file.as_deref(),
        read_only: &read_only,
    };
    let mut command = Command::new(bwrap);
    command
        .args(confinement::bwrap_args(&layout))
        .arg("--")
        .arg(script);
    command
}

/// Whether the child has exited, without reaping it.
fn has_exited(pid: i32) -> bool {
    super::child::exited_unreaped(pid, false)
}

/// What is known about an agent's end, for [`classify`].
#[derive(Debug, Clone, Copy)]
struct ExitFacts {
    exit_code: Option<i32>,
    signal: Option<i32>,
    timed_out: bool,
    stopping: bool,
    report_present: bool,
}

/// Turns an agent's end into an outcome. `stderr_tail` is only read for failures.
fn classify(facts: &ExitFacts, stderr_tail: impl FnOnce() -> Option<String>) -> AgentOutcome {
    if facts.timed_out {
        return AgentOutcome::TimedOut;
    }
    let reason = match (facts.exit_code, facts.signal) {
        (Some(0), _) if facts.report_present => return AgentOutcome::Investigated,
        (Some(0), _) => format!("agent exited 0 but wrote no {OUTPUT_DIR}/{REPORT_FILE}"),
        (Some(EXIT_TIMED_OUT), _) if !facts.stopping => return AgentOutcome::TimedOut,
        (Some(code), _) => match stderr_tail() {
            Some(line) => format!("exit code {code}: {line}"),
            None => format!("exit code {code}"),
        },
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => "exit status unavailable".to_string(),
    };
    if facts.stopping {
        AgentOutcome::Failed(format!("stopped at shutdown: {reason}"))
    } else {
        AgentOutcome::Failed(reason)
    }
}

fn stderr_tail(path: &Path) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(STDERR_TAIL_BYTES)))
        .ok()?;
    let mut tail = Vec::new();
    file.take(STDERR_TAIL_BYTES).read_to_end(&mut tail).ok()?;
    last_line(&tail)
}

fn create_log(path: &Path) -> Result<File, SpawnError> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .map_err(|source| SpawnError::Log {
            path: path.to_path_buf(),
            source,
        })
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// A bare program name is looked up on PATH; anything with a directory is made absolute.
fn absolute_program(path: &Path) -> PathBuf {
    let bare = matches!(
        path.components().collect::<Vec<_>>().as_slice(),
        [Component::Normal(_)]
    );
    if bare {
        path.to_path_buf()
    } else {
        absolute(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(exit_code: Option<i32>, signal: Option<i32>) -> ExitFacts {
        ExitFacts {
            exit_code,
            signal,
            timed_out: false,
            stopping: false,
            report_present: false,
        }
    }

    fn no_stderr() -> Option<String> {
        None
    }

    #[test]
    fn only_an_argument_list_too_long_is_a_start_failure_caused_by_fault_data() {
        let start = |errno| SpawnError::Start {
            script: PathBuf::from("agent"),
            source: io::Error::from_raw_os_error(errno),
        };
        assert!(start(libc::E2BIG).caused_by_fault_data());
        assert!(!start(libc::ENOENT).caused_by_fault_data());
        assert!(!SpawnError::Confinement("no bwrap".into()).caused_by_fault_data());
    }

    #[test]
    fn exit_zero_with_report_is_investigated() {
        let f = ExitFacts {
            report_present: true,
            ..facts(Some(0), None)
        };
        assert_eq!(classify(&f, no_stderr), AgentOutcome::Investigated);
    }

    #[test]
    fn exit_zero_without_report_is_a_failure() {
        assert_eq!(
            classify(&facts(Some(0), None), no_stderr),
            AgentOutcome::Failed("agent exited 0 but wrote no output/investigation.md".into())
        );
    }

    #[test]
    fn non_zero_exit_names_code_and_last_stderr_line() {
        let outcome = classify(&facts(Some(3), None), || Some("error: no API key".into()));
        assert_eq!(
            outcome,
            AgentOutcome::Failed("exit code 3: error: no API key".into())
        );
        assert_eq!(
            classify(&facts(Some(3), None), no_stderr),
            AgentOutcome::Failed("exit code 3".into())
        );
    }

    #[test]
    fn killed_after_our_deadline_is_timed_out_whatever_the_status() {
        for (code, signal) in [(None, Some(9)), (Some(0), None), (Some(143), None)] {
            let f = ExitFacts {
                timed_out: true,
                report_present: true,
                ..facts(code, signal)
            };
            assert_eq!(classify(&f, no_stderr), AgentOutcome::TimedOut);
        }
    }

    #[test]
    fn exit_124_is_the_agents_own_timeout() {
        assert_eq!(
            classify(&facts(Some(124), None), no_stderr),
            AgentOutcome::TimedOut
        );
    }

    #[test]
    fn killed_by_a_foreign_signal_is_a_failure() {
        assert_eq!(
            classify(&facts(None, Some(11)), no_stderr),
            AgentOutcome::Failed("killed by signal 11".into())
        );
    }

    #[test]
    fn shutdown_failures_say_so() {
        let f = ExitFacts {
            stopping: true,
            ..facts(None, Some(15))
        };
        assert_eq!(
            classify(&f, no_stderr),
            AgentOutcome::Failed("stopped at shutdown: killed by signal 15".into())
        );
    }

    #[test]
    fn host_agents_are_sandboxed_when_bubblewrap_works_and_warned_about_when_not() {
        use Confinement::Auto;
        assert_eq!(placement(Auto, true, true), Placement::Sandbox);
        assert_eq!(
            placement(Auto, false, true),
            Placement::HostUnconfined { warn: true }
        );
        assert_eq!(placement(Auto, true, false), Placement::Container);
        assert_eq!(placement(Auto, false, false), Placement::Container);
    }

    #[test]
    fn bwrap_confines_every_agent_or_refuses_and_none_never_confines() {
        use Confinement::{Bwrap, Off};
        for host in [true, false] {
            assert_eq!(placement(Bwrap, true, host), Placement::Sandbox);
            assert_eq!(placement(Bwrap, false, host), Placement::Refused);
        }
        assert_eq!(
            placement(Off, true, true),
            Placement::HostUnconfined { warn: false }
        );
        assert_eq!(placement(Off, true, false), Placement::Container);
    }

    #[test]
    fn bare_program_names_stay_bare_and_paths_become_absolute() {
        assert_eq!(
            absolute_program(Path::new("run-agent")),
            PathBuf::from("run-agent")
        );
        assert!(absolute_program(Path::new("scripts/run-agent.sh")).is_absolute());
        assert!(absolute_program(Path::new("./run-agent.sh")).is_absolute());
    }
}
