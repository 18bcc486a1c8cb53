//! Workspace files are written off the loop thread, once per state change. The real daemon
//! runs under strace(1), every thread's and child's system calls in a file of their own, so
//! the test sees which thread touched which file; and an agent that leaves a FIFO where its
//! report belongs cannot stall triage.
//!
//! strace must be installed (scripts/setup.sh installs it) and able to trace the process it
//! starts; these tests fail, not skip, without it.

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::exec::{executable, wait_for_exit};
use common::peers::repo_root;
use common::webhook::WebhookReceiver;
use common::*;
use nightcrier::metrics::counters::ClusterCounters;
use nightcrier::sim::SimCluster;

/// What the loop thread may still do under the workspace root: look for `pending.jsonl` and
/// `silences.json` and `budget.json` at start, and make what a starting agent's process
/// needs before it
/// exists (its home and tmp directories, its two log files, opened without a write or a
/// sync).
const LOOP_MAY_TOUCH: [&str; 7] = [
    "pending.jsonl",
    "silences.json",
    "budget.json",
    ".agent-home",
    "/tmp",
    "agent-stdout.log",
    "agent-stderr.log",
];

/// The system calls traced: every way to write, sync, rename, make or open a file.
const TRACED: &str = "trace=execve,open,openat,creat,write,pwrite64,writev,pwritev,pwritev2,\
rename,renameat,renameat2,fsync,fdatasync,sync_file_range,mkdir,mkdirat,unlink,unlinkat";

/// Who made the system calls of one trace file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// The daemon's main thread, which runs the event loop.
    Loop,
    /// Another thread of the daemon.
    Worker,
    /// A child process (an agent, kubectl, bwrap).
    Child,
}

struct ThreadTrace {
    tid: u32,
    role: Role,
    lines: Vec<String>,
}

struct TracedRun {
    _dir: tempfile::TempDir,
    root: PathBuf,
    threads: Vec<ThreadTrace>,
    incidents: Vec<PathBuf>,
}

impl TracedRun {
    fn of(&self, role: Role) -> impl Iterator<Item = (&ThreadTrace, &String)> {
        self.threads
            .iter()
            .filter(move |t| t.role == role)
            .flat_map(|t| t.lines.iter().map(move |l| (t, l)))
    }

    /// The daemon's own lines (loop and worker threads, no children).
    fn daemon(&self) -> impl Iterator<Item = (&ThreadTrace, &String)> {
        self.of(Role::Loop).chain(self.of(Role::Worker))
    }
}

fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_nightcrier"))
}

fn config_text(dir: &Path, root: &Path, cluster: &SimCluster, slack: &WebhookReceiver) -> String {
    let stub = repo_root().join("scripts/stub-agent.sh");
    let agent = executable(
        dir,
        "agent",
        &format!(
            "#!/bin/sh\nSTUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            stub.display()
        ),
    );
    let kubectl = read_only_kubectl(dir);
    let kubeconfig = dir.join("kubeconfig");
    fs::write(&kubeconfig, "# k\n").unwrap();
    format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n[health]\nenabled = false\n\
         [agent]\nscript = {:?}\ntimeout = \"20s\"\nmax_concurrent_agents = 2\n\
         [preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n\
         [slack]\nwebhook_url = {:?}\nca_file = {:?}\n\
         {}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
        root.display().to_string(),
        agent.display().to_string(),
        kubectl.display().to_string(),
        slack.url(),
        slack.ca_pem_path().display().to_string(),
        cluster_toml(cluster, ""),
        kubeconfig.display().to_string(),
    )
}

/// A kubectl that says a kubeconfig may read everything and write nothing.
fn read_only_kubectl(dir: &Path) -> PathBuf {
    executable(
        dir,
        "kubectl",
        "#!/bin/sh\ncase \"$5\" in create|patch|delete) echo no; exit 1 ;; esac\necho yes\n",
    )
}

/// The first child of `pid` (strace's: the daemon it started).
fn child_of(pid: u32) -> Option<u32> {
    let children = fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

fn read_traces(dir: &Path, prefix: &str) -> Vec<ThreadTrace> {
    let binary = format!("execve(\"{}\"", binary().display());
    let mut threads = Vec::new();
    for entry in fs::read_dir(dir).unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(tid) = name
            .strip_prefix(prefix)
            .and_then(|t| t.strip_prefix('.'))
            .and_then(|t| t.parse().ok())
        else {
            continue;
        };
        let lines: Vec<String> = fs::read_to_string(entry.path())
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        let role = match lines.iter().find(|l| l.starts_with("execve(")) {
            Some(line) if line.starts_with(&binary) => Role::Loop,
            Some(_) => Role::Child,
            None => Role::Worker,
        };
        threads.push(ThreadTrace { tid, role, lines });
    }
    threads
}

/// Runs the daemon under strace with one simulated cluster and Slack, lets `faults` faults
/// be investigated and reported, stops it with SIGTERM, and reads the traces.
fn traced_daemon_run(faults: usize) -> TracedRun {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let traces = dir.path().join("traces");
    fs::create_dir_all(&traces).unwrap();
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let config = dir.path().join("nightcrier.toml");
    fs::write(&config, config_text(dir.path(), &root, cluster, &receiver)).unwrap();
    let log_path = dir.path().join("daemon.log");
    let mut strace = Command::new("strace")
        .args([
            "-f",
            "-ff",
            "-qq",
            "-y",
            "-s",
            "64",
            "-e",
            TRACED,
            "-e",
            "signal=none",
        ])
        .arg("-o")
        .arg(traces.join("trace"))
        .arg("--")
        .arg(binary())
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(fs::File::create(&log_path).unwrap())
        .spawn()
        .expect("strace(1) runs (scripts/setup.sh installs it)");
    let log = || fs::read_to_string(&log_path).unwrap_or_default();
    let subscribed = cluster.wait_for(|s| s.subscribes == 1 && s.get_streams_open == 1, WAIT);
    assert!(subscribed, "daemon never subscribed:\n{}", log());
    let daemon = child_of(strace.id()).expect("strace started the daemon");
    for _ in 0..faults {
        cluster.emit_fault("critical", "CrashLoop").unwrap();
    }
    assert!(
        receiver.wait_for_requests(faults, WAIT),
        "{} Slack messages of {faults}:\n{}",
        receiver.requests().len(),
        log()
    );
    // Each message is sent once its incident is complete, the last one included.
    let incidents: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(incidents.len(), faults, "{incidents:?}");

    // SAFETY: kill(2) on a process this test started (through strace), not yet reaped.
    unsafe {
        libc::kill(daemon as libc::pid_t, libc::SIGTERM);
    }
    assert!(wait_for_exit(strace.id(), WAIT), "daemon did not exit");
    let status = strace.wait().unwrap();
    assert!(status.success(), "exit {status:?}\n{}", log());
    let threads = read_traces(&traces, "trace");
    assert_eq!(
        threads.iter().filter(|t| t.role == Role::Loop).count(),
        1,
        "no trace of the daemon's main thread in {}",
        traces.display()
    );
    TracedRun {
        _dir: dir,
        root,
        threads,
        incidents,
    }
}

/// The files a traced line is about: for a call on a descriptor, the path strace's `-y`
/// shows for it; for a call on paths, its quoted arguments.
fn files_of(line: &str) -> Vec<&str> {
    let args = line.split_once('(').map_or("", |(_, args)| args);
    if is_call(line, &SYNCS) || is_call(line, &WRITES) {
        let path = args
            .split_once('<')
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(path, _)| path);
        return path.into_iter().collect();
    }
    args.split('"').skip(1).step_by(2).collect()
}

fn is_call(line: &str, names: &[&str]) -> bool {
    names
        .iter()
        .any(|name| line.starts_with(name) && line[name.len()..].starts_with('('))
}

const SYNCS: [&str; 3] = ["fsync", "fdatasync", "sync_file_range"];
const WRITES: [&str; 5] = ["write", "pwrite64", "writev", "pwritev", "pwritev2"];
const RENAMES: [&str; 3] = ["rename", "renameat", "renameat2"];

#[test]
fn the_loop_thread_never_writes_syncs_or_reads_back_a_workspace_file() {
    let run = traced_daemon_run(2);
    let root = run.root.display().to_string();
    let offending: Vec<&String> = run
        .of(Role::Loop)
        .map(|(_, line)| line)
        .filter(|line| {
            if is_call(line, &SYNCS) {
                return true;
            }
            files_of(line).iter().any(|file| {
                file.starts_with(&root)
                    && (is_call(line, &WRITES)
                        || !LOOP_MAY_TOUCH.iter().any(|allowed| file.ends_with(allowed)))
            })
        })
        .collect();
    assert!(
        offending.is_empty(),
        "the loop thread touched workspace files:\n{}",
        offending
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    );

    // One thread of the daemon does every workspace sync.
    let syncing: std::collections::BTreeSet<u32> = run
        .daemon()
        .filter(|(_, line)| {
            is_call(line, &SYNCS) && files_of(line).iter().any(|f| f.starts_with(&root))
        })
        .map(|(thread, _)| thread.tid)
        .collect();
    assert_eq!(syncing.len(), 1, "workspace syncs on threads {syncing:?}");
}

#[test]
fn each_incident_is_written_once_per_state_change_and_never_read_back() {
    let run = traced_daemon_run(2);
    for incident in &run.incidents {
        let dir = incident.display().to_string();
        let inside = |line: &&String| files_of(line).iter().any(|f| f.starts_with(&dir));
        let mut replaced: BTreeMap<String, usize> = BTreeMap::new();
        for (_, line) in run.daemon().filter(|(_, l)| is_call(l, &RENAMES)) {
            // rename("from", "to"): the second quoted path is the file replaced.
            let to = line.split('"').nth(3).unwrap_or_default();
            if let Some(name) = to.strip_prefix(&format!("{dir}/")) {
                *replaced.entry(name.to_owned()).or_default() += 1;
            }
        }
        let expected: BTreeMap<String, usize> = [
            ("incident.json", 2),
            ("incident_cluster_permissions.json", 1),
            ("result.json", 1),
        ]
        .iter()
        .map(|(name, count)| (name.to_string(), *count))
        .collect();
        assert_eq!(
            replaced, expected,
            "{dir}: incident.json once when made (running) and once at the end, the others once"
        );

        // Each replacement syncs its file and then its directory.
        let syncs = run
            .daemon()
            .filter(|(_, l)| is_call(l, &SYNCS))
            .map(|(_, l)| l)
            .filter(inside)
            .count();
        assert_eq!(syncs, 2 * 4, "{dir}: fsyncs");

        let opened = |file: &str| {
            let path = format!("{dir}/{file}");
            run.daemon()
                .filter(|(_, l)| is_call(l, &["open", "openat"]))
                .filter(|(_, l)| l.contains(&format!("\"{path}\"")) && !l.contains("O_CREAT"))
                .count()
        };
        assert_eq!(opened("incident.json"), 0, "{dir}: incident.json read back");
        assert_eq!(
            opened("output/investigation.md"),
            1,
            "{dir}: the report is read once, for the Slack message"
        );
    }
}

/// An agent may leave anything in its workspace. A FIFO where the report belongs blocks
/// whoever opens it for reading until a writer comes, which is never: reading it must not
/// hold up the loop, nor the writes of every incident after it.
#[test]
fn a_fifo_left_as_the_report_does_not_stall_triage() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(2);
    let [fifo_cluster, good_cluster] = [&sim.clusters()[0], &sim.clusters()[1]];
    let stub = repo_root().join("scripts/stub-agent.sh");
    // The first cluster's agent leaves a FIFO and fails; the other investigates.
    let agent = executable(
        dir.path(),
        "agent",
        &format!(
            "#!/bin/sh\nif [ \"$CLUSTER_NAME\" = {} ]; then mkfifo output/investigation.md; exit 1; fi\n\
             STUB_AGENT_DELAY=0.05 exec {} \"$@\"\n",
            fifo_cluster.name(),
            stub.display()
        ),
    );
    let kubectl = read_only_kubectl(dir.path());
    let mut text = format!(
        "workspace_root = {:?}\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
         [agent]\nscript = {:?}\ntimeout = \"20s\"\nmax_concurrent_agents = 2\n\
         [preflight]\nkubectl = {:?}\ntimeout = \"5s\"\n\
         [slack]\nwebhook_url = {:?}\nca_file = {:?}\nnotify_on_agent_failure = true\n",
        root.display().to_string(),
        agent.display().to_string(),
        kubectl.display().to_string(),
        receiver.url(),
        receiver.ca_pem_path().display().to_string(),
    );
    for cluster in [fifo_cluster, good_cluster] {
        let kubeconfig = dir.path().join(format!("kubeconfig-{}", cluster.name()));
        fs::write(&kubeconfig, "# k\n").unwrap();
        text.push_str(&format!(
            "{}[clusters.triage]\nenabled = true\nkubeconfig = {:?}\n",
            cluster_toml(cluster, ""),
            kubeconfig.display().to_string()
        ));
    }
    let running = start_pipeline_loop(&parse_config(&text, dir.path()));
    running.wait_all_active(2);

    fifo_cluster.emit_fault("critical", "CrashLoop").unwrap();
    let fifo = wait_for_fifo(&root);
    good_cluster.emit_fault("critical", "PodCrash").unwrap();
    let (published, settled) = running.board.wait_for(WAIT, |p| {
        let count = |name: &str, pick: fn(&ClusterCounters) -> u64| {
            p.pipeline.clusters.get(name).map_or(0, pick)
        };
        count(fifo_cluster.name(), |c| c.agents_failed) == 1
            && count(good_cluster.name(), |c| c.agents_investigated) == 1
    });
    let messages = settled && receiver.wait_for_requests(2, WAIT);
    // Whatever the outcome, a reader blocked on the FIFO is let go, so the loop can stop.
    release_fifo_reader(&fifo);
    assert!(
        settled,
        "the FIFO agent's end and the other cluster's investigation were not both counted: {:#?}",
        published.pipeline
    );
    assert!(messages, "Slack got {:?}", receiver.requests());
    let bodies: Vec<String> = receiver.requests().into_iter().map(|r| r.body).collect();
    assert!(
        bodies.iter().any(|b| b.contains(fifo_cluster.name())),
        "{bodies:?}"
    );
    assert!(
        bodies.iter().any(|b| b.contains(good_cluster.name())),
        "{bodies:?}"
    );
    running.stop().unwrap();
}

/// The FIFO the agent made, once it exists.
fn wait_for_fifo(root: &Path) -> PathBuf {
    use std::os::unix::fs::FileTypeExt;
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        let found = fs::read_dir(root).ok().and_then(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path().join("output/investigation.md")))
                .find(|p| fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_fifo()))
        });
        if let Some(fifo) = found {
            return fifo;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no agent made its FIFO under {}", root.display());
}

/// Opens the FIFO for writing without blocking and closes it: a reader blocked in open(2)
/// then reads end-of-file. Without a reader the open fails with ENXIO, which is fine.
fn release_fifo_reader(fifo: &Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let _ = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo);
}
