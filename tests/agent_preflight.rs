//! The permission preflight against fake `kubectl` scripts: answers, denials, a check that
//! hangs past the timeout, a kubectl that is missing, and the worker thread that wakes the
//! event loop.

mod common;

use common::exec::write_executable;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nightcrier::agent::permissions::ClusterPermissions;
use nightcrier::agent::preflight::{run_preflight, PreflightRequest, PreflightWorker};

const TIMEOUT: Duration = Duration::from_secs(10);

/// Writes a fake kubectl answering `yes` to reads except for resources listed in `deny`
/// (no), `broken` (an error on stderr, no answer) and `hang` (sleeps, its pid in hang.pid);
/// writes (create, patch, delete) answer `no`: a read-only kubeconfig.
/// Every invocation's arguments are appended to calls.log.
fn fake_kubectl(dir: &Path, deny: &str, broken: &str, hang: &str) -> PathBuf {
    fake_kubectl_writing(dir, deny, broken, hang, "")
}

/// As [`fake_kubectl`], but the writes listed in `writable` (as `verb/resource`) answer yes.
fn fake_kubectl_writing(
    dir: &Path,
    deny: &str,
    broken: &str,
    hang: &str,
    writable: &str,
) -> PathBuf {
    let log = dir.join("calls.log");
    let pid = dir.join("hang.pid");
    let script = format!(
        r#"#!/bin/sh
echo "$*" >> '{log}'
[ "$1" = --kubeconfig ] && [ "$3 $4" = "auth can-i" ] || {{ echo "unexpected: $*" >&2; exit 9; }}
resource=$6
case "$7" in --subresource=*) resource="$resource/${{7#--subresource=}}" ;; esac
case " {deny} " in *" $resource "*) echo no; exit 1 ;; esac
case " {broken} " in *" $resource "*) echo "error: You must be logged in to the server (Unauthorized)" >&2; exit 1 ;; esac
case " {hang} " in *" $resource "*) echo $$ > '{pid}'; exec sleep 60 ;; esac
case "$5" in create|patch|delete)
  case " {writable} " in *" $5/$resource "*) echo yes; exit 0 ;; esac
  echo no; exit 1 ;;
esac
echo yes
"#,
        log = log.display(),
        pid = pid.display(),
    );
    let path = dir.join("kubectl");
    write_executable(&path, &script);
    path
}

fn kubeconfig(dir: &Path) -> PathBuf {
    let path = dir.join("kubeconfig");
    fs::write(&path, "apiVersion: v1\nkind: Config\n").unwrap();
    path
}

fn calls(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("calls.log"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

fn check<'a>(
    p: &'a ClusterPermissions,
    resource: &str,
) -> &'a nightcrier::agent::permissions::PermissionCheck {
    p.checks.iter().find(|c| c.resource == resource).unwrap()
}

#[test]
fn all_allowed_meets_the_minimum_without_checking_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "", "", "");
    let config = kubeconfig(dir.path());
    let p = run_preflight("prod", &config, false, &kubectl, TIMEOUT);
    assert_eq!(p.cluster, "prod");
    assert!(p.kubeconfig_readable);
    assert_eq!(p.kubeconfig, config.display().to_string());
    assert!(p.minimum_met);
    assert!(p.can_get_pods && p.can_get_logs && p.can_get_events);
    assert!(p.can_get_deployments && p.can_get_services && p.can_get_nodes);
    assert_eq!(p.can_get_secrets, None);
    assert_eq!(p.can_get_configmaps, None);
    assert_eq!(p.checks.len(), 12);
    assert!(!p.can_write && p.read_only_verified);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);

    let mut calls = calls(dir.path());
    calls.sort();
    let k = config.display();
    assert_eq!(
        calls,
        [
            format!("--kubeconfig {k} auth can-i create deployments"),
            format!("--kubeconfig {k} auth can-i create pods"),
            format!("--kubeconfig {k} auth can-i delete deployments"),
            format!("--kubeconfig {k} auth can-i delete pods"),
            format!("--kubeconfig {k} auth can-i get deployments"),
            format!("--kubeconfig {k} auth can-i get nodes"),
            format!("--kubeconfig {k} auth can-i get pods"),
            format!("--kubeconfig {k} auth can-i get pods --subresource=log"),
            format!("--kubeconfig {k} auth can-i get services"),
            format!("--kubeconfig {k} auth can-i list events"),
            format!("--kubeconfig {k} auth can-i patch deployments"),
            format!("--kubeconfig {k} auth can-i patch pods"),
        ]
    );
}

#[test]
fn denied_logs_fail_the_minimum_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "pods/log nodes", "", "");
    let p = run_preflight("c", &kubeconfig(dir.path()), false, &kubectl, TIMEOUT);
    assert!(!p.minimum_met);
    assert!(!p.can_get_logs);
    assert!(!p.can_get_nodes);
    assert!(p.can_get_pods);
    assert_eq!(
        check(&p, "pods/log").error,
        None,
        "a denial is an answer, not an error"
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("minimum") && w.contains("pods/log")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn secrets_and_configmaps_are_checked_only_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "configmaps", "", "");
    let p = run_preflight("c", &kubeconfig(dir.path()), true, &kubectl, TIMEOUT);
    assert_eq!(p.checks.len(), 14);
    assert_eq!(p.can_get_secrets, Some(true));
    assert_eq!(p.can_get_configmaps, Some(false));
    assert!(calls(dir.path())
        .iter()
        .any(|c| c.ends_with("can-i get secrets")));
}

#[test]
fn a_kubeconfig_that_can_write_is_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl_writing(dir.path(), "", "", "", "delete/pods patch/deployments");
    let p = run_preflight("prod", &kubeconfig(dir.path()), false, &kubectl, TIMEOUT);
    assert!(p.can_write);
    assert!(!p.read_only_verified);
    assert_eq!(p.write_access, ["delete pods", "patch deployments"]);
    assert!(p.minimum_met, "reads still count: {:?}", p.checks);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("CAN WRITE") && w.contains("delete pods")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn kubectl_errors_are_recorded_per_check() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "", "events", "");
    let p = run_preflight("c", &kubeconfig(dir.path()), false, &kubectl, TIMEOUT);
    let events = check(&p, "events");
    assert!(!events.allowed);
    assert_eq!(
        events.error.as_deref(),
        Some("error: You must be logged in to the server (Unauthorized)")
    );
    assert!(!p.minimum_met);
    assert!(p
        .warnings
        .iter()
        .any(|w| w.contains("list events") && w.contains("Unauthorized")));
}

#[test]
fn a_hanging_check_is_killed_at_the_timeout_and_the_rest_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "", "", "nodes");
    let started = Instant::now();
    let p = run_preflight(
        "c",
        &kubeconfig(dir.path()),
        false,
        &kubectl,
        Duration::from_millis(700),
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "returned before the timeout: {took:?}"
    );
    assert!(took < Duration::from_secs(8), "took {took:?}");
    let nodes = check(&p, "nodes");
    assert!(!nodes.allowed);
    assert_eq!(nodes.error.as_deref(), Some("timed out after 700ms"));
    assert!(p.minimum_met, "the other checks answered: {:?}", p.checks);

    let pid: i32 = fs::read_to_string(dir.path().join("hang.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SAFETY: signal 0 only checks for existence.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    assert!(!alive, "hanging kubectl {pid} was not killed and reaped");
}

#[test]
fn missing_kubectl_errors_every_check_with_one_clear_warning() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-kubectl-here");
    let p = run_preflight("c", &kubeconfig(dir.path()), false, &missing, TIMEOUT);
    assert!(p.kubeconfig_readable);
    assert!(!p.minimum_met);
    assert!(p.checks.iter().all(|c| !c.allowed
        && c.error
            .as_deref()
            .is_some_and(|e| e.contains("no-kubectl-here"))));
    let kubectl_warnings: Vec<_> = p
        .warnings
        .iter()
        .filter(|w| w.starts_with("kubectl "))
        .collect();
    assert_eq!(kubectl_warnings.len(), 1, "{:?}", p.warnings);
    assert!(kubectl_warnings[0].contains("could not be started"));
}

#[test]
fn unreadable_kubeconfig_skips_kubectl() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "", "", "");
    let p = run_preflight(
        "c",
        &dir.path().join("missing-kubeconfig"),
        false,
        &kubectl,
        TIMEOUT,
    );
    assert!(!p.kubeconfig_readable);
    assert!(!p.minimum_met);
    assert!(p.checks.iter().all(|c| !c.allowed && c.error.is_some()));
    assert!(
        p.warnings[0].contains("missing-kubeconfig"),
        "{:?}",
        p.warnings
    );
    assert!(
        calls(dir.path()).is_empty(),
        "kubectl ran without a kubeconfig"
    );
}

#[test]
fn worker_runs_preflights_off_thread_and_wakes_the_loop() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = fake_kubectl(dir.path(), "nodes", "", "");
    let config = kubeconfig(dir.path());
    let mut poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
    let worker = PreflightWorker::start(waker).unwrap();
    for cluster in ["a", "b"] {
        worker.submit(PreflightRequest {
            cluster: cluster.into(),
            kubeconfig: config.clone(),
            allow_secrets_access: false,
            kubectl: kubectl.clone(),
            timeout: TIMEOUT,
        });
    }
    let mut events = mio::Events::with_capacity(4);
    let mut results = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while results.len() < 2 && Instant::now() < deadline {
        let left = deadline.saturating_duration_since(Instant::now());
        match poll.poll(&mut events, Some(left)) {
            Ok(()) => {}
            // Children exiting may interrupt the wait, as they would in the event loop.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("poll: {e}"),
        }
        assert!(events.iter().all(|e| e.token() == mio::Token(7)));
        results.extend(worker.results());
    }
    // Preflights run at the same time: their results come in either order.
    let mut clusters: Vec<&str> = results.iter().map(|p| p.cluster.as_str()).collect();
    clusters.sort_unstable();
    assert_eq!(clusters, ["a", "b"]);
    assert!(results.iter().all(|p| p.minimum_met && !p.can_get_nodes));
    drop(worker);
}

/// A kubectl whose `get pods` check writes its pid to `hang-<kubeconfig file name>.pid`
/// and sleeps; every other check answers yes.
fn hanging_kubectl(dir: &Path) -> PathBuf {
    let script = format!(
        r#"#!/bin/sh
[ "$6" = pods ] && [ "$5" = get ] && {{ echo $$ > '{dir}/hang-'"$(basename "$2")"'.pid'; exec sleep 60; }}
echo yes
"#,
        dir = dir.display()
    );
    let path = dir.join("kubectl");
    write_executable(&path, &script);
    path
}

fn hang_pid(dir: &Path, kubeconfig_name: &str) -> Option<i32> {
    fs::read_to_string(dir.join(format!("hang-{kubeconfig_name}.pid")))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn poll_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn request(cluster: &str, kubeconfig: PathBuf, kubectl: &Path) -> PreflightRequest {
    PreflightRequest {
        cluster: cluster.into(),
        kubeconfig,
        allow_secrets_access: false,
        kubectl: kubectl.to_path_buf(),
        timeout: Duration::from_secs(30),
    }
}

#[test]
fn preflights_of_several_clusters_run_at_the_same_time() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = hanging_kubectl(dir.path());
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
    let worker = PreflightWorker::start(waker).unwrap();
    for cluster in ["a", "b", "c"] {
        let config = dir.path().join(format!("kc-{cluster}"));
        fs::write(&config, "apiVersion: v1\nkind: Config\n").unwrap();
        worker.submit(request(cluster, config, &kubectl));
    }
    // Each cluster's check hangs for 30 s: one after another, b would not start for 30 s.
    poll_until(
        "every cluster's checks to start",
        Duration::from_secs(10),
        || {
            ["kc-a", "kc-b", "kc-c"]
                .iter()
                .all(|k| hang_pid(dir.path(), k).is_some())
        },
    );
    drop(worker);
    for k in ["kc-a", "kc-b", "kc-c"] {
        let pid = hang_pid(dir.path(), k).unwrap();
        poll_until(
            "the hung check to be killed",
            Duration::from_secs(10),
            || !alive(pid),
        );
    }
}

#[test]
fn dropping_the_worker_does_not_wait_for_a_running_preflight() {
    let dir = tempfile::tempdir().unwrap();
    let kubectl = hanging_kubectl(dir.path());
    let poll = mio::Poll::new().unwrap();
    let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
    let worker = PreflightWorker::start(waker).unwrap();
    worker.submit(request("a", kubeconfig(dir.path()), &kubectl));
    poll_until("the check to start", Duration::from_secs(10), || {
        hang_pid(dir.path(), "kubeconfig").is_some()
    });
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(worker);
        let _ = done_tx.send(());
    });
    assert!(
        done_rx.recv_timeout(Duration::from_secs(5)).is_ok(),
        "dropping the worker waited for a preflight that hangs for 30 s"
    );
    // Its checks are killed, not left behind.
    let pid = hang_pid(dir.path(), "kubeconfig").unwrap();
    poll_until(
        "the hung check to be killed",
        Duration::from_secs(10),
        || !alive(pid),
    );
}
