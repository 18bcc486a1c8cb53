//! The permission preflight: is the kubeconfig readable, what does `kubectl auth can-i`
//! say for each resource an investigation needs, and can it write (`create`, `patch`,
//! `delete` on pods and deployments), which a triage kubeconfig should not.
//!
//! Runs off the event loop: each check is a `kubectl` child in its own process group, all
//! started at once and bounded by one deadline; a check that has not answered by then is
//! killed with its group and recorded as timed out.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use crate::agent::permissions::{
    ClusterPermissions, PermissionCheck, BASE_CHECKS, SECRET_CHECKS, WRITE_CHECKS,
};
use crate::agent::workspace::rfc3339;
use crate::worker_pool::WorkerPool;

/// kubectl prints one word; anything past this is diagnostics we only need the end of.
const MAX_CHECK_OUTPUT: usize = 8 * 1024;
const MAX_ERROR_CHARS: usize = 300;

/// How many clusters' preflights run at the same time (each is a handful of `kubectl`
/// children), so cluster N of a fleet waits about N / 4 timeouts, not N.
pub const PREFLIGHT_PARALLEL: usize = 4;

/// How often a running preflight looks at the stop flag.
const STOP_CHECK: Duration = Duration::from_millis(50);

/// Runs the whole preflight for one cluster and blocks until it is done (at most about
/// `timeout`, plus the time to kill what did not answer).
pub fn run_preflight(
    cluster: &str,
    kubeconfig: &Path,
    allow_secrets_access: bool,
    kubectl: &Path,
    timeout: Duration,
) -> ClusterPermissions {
    let never = AtomicBool::new(false);
    run_preflight_until(
        cluster,
        kubeconfig,
        allow_secrets_access,
        kubectl,
        timeout,
        &never,
    )
}

/// As [`run_preflight`], but setting `stop` ends it early: checks still running are
/// killed and recorded as stopped.
fn run_preflight_until(
    cluster: &str,
    kubeconfig: &Path,
    allow_secrets_access: bool,
    kubectl: &Path,
    timeout: Duration,
    stop: &AtomicBool,
) -> ClusterPermissions {
    let checked_at = rfc3339(SystemTime::now());
    let mut wanted: Vec<(&str, &str)> = BASE_CHECKS.to_vec();
    if allow_secrets_access {
        wanted.extend_from_slice(&SECRET_CHECKS);
    }
    wanted.extend_from_slice(&WRITE_CHECKS);
    let mut warnings = Vec::new();
    let readable = match kubeconfig_readable(kubeconfig) {
        Ok(()) => true,
        Err(reason) => {
            warnings.push(format!(
                "kubeconfig {} is not readable: {reason}; no permission checks ran",
                kubeconfig.display()
            ));
            false
        }
    };
    let checks = if readable {
        run_checks(kubeconfig, kubectl, &wanted, timeout, stop, &mut warnings)
    } else {
        wanted
            .iter()
            .map(|(verb, resource)| PermissionCheck {
                verb: verb.to_string(),
                resource: resource.to_string(),
                allowed: false,
                error: Some("skipped: kubeconfig not readable".to_string()),
            })
            .collect()
    };
    ClusterPermissions::from_checks(
        cluster,
        checked_at,
        kubeconfig.display().to_string(),
        readable,
        checks,
        warnings,
    )
}

fn kubeconfig_readable(path: &Path) -> Result<(), String> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let meta = file.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    Ok(())
}

/// A started check: the child, and the thread that tells us when it has exited.
struct StartedCheck {
    index: usize,
    child: Child,
    pid: i32,
    waiter: Option<JoinHandle<()>>,
}

fn run_checks(
    kubeconfig: &Path,
    kubectl: &Path,
    wanted: &[(&str, &str)],
    timeout: Duration,
    stop: &AtomicBool,
    warnings: &mut Vec<String>,
) -> Vec<PermissionCheck> {
    let mut errors: Vec<Option<String>> = vec![None; wanted.len()];
    let mut answers: Vec<Option<bool>> = vec![None; wanted.len()];
    let mut started = Vec::new();
    let (exited_tx, exited_rx) = mpsc::channel::<usize>();
    let mut spawn_warning = None;

    for (index, (verb, resource)) in wanted.iter().enumerate() {
        match start_check(kubeconfig, kubectl, verb, resource) {
            Ok(child) => {
                let pid = child.id() as i32;
                let tx = exited_tx.clone();
                let waiter =
                    thread::Builder::new()
                        .name("preflight-wait".into())
                        .spawn(move || {
                            super::child::exited_unreaped(pid, true);
                            let _ = tx.send(index);
                        });
                match waiter {
                    Ok(handle) => started.push(StartedCheck {
                        index,
                        child,
                        pid,
                        waiter: Some(handle),
                    }),
                    Err(err) => {
                        errors[index] = Some(format!("cannot start a waiter thread: {err}"));
                        started.push(StartedCheck {
                            index,
                            child,
                            pid,
                            waiter: None,
                        });
                    }
                }
            }
            Err(err) => {
                spawn_warning.get_or_insert_with(|| {
                    format!(
                        "kubectl {} could not be started: {err}; permissions are unknown",
                        kubectl.display()
                    )
                });
                errors[index] = Some(format!("cannot run {}: {err}", kubectl.display()));
            }
        }
    }
    // Only the waiters hold senders now: a disconnect means every child has exited.
    drop(exited_tx);
    warnings.extend(spawn_warning);

    let deadline = Instant::now() + timeout;
    let mut exited = vec![false; wanted.len()];
    let mut pending = started.iter().filter(|s| s.waiter.is_some()).count();
    let mut stopped = false;
    while pending > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            stopped = true;
            break;
        }
        match exited_rx.recv_timeout((deadline - now).min(STOP_CHECK)) {
            Ok(index) => {
                exited[index] = true;
                pending -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }

    for check in &mut started {
        // The child is not reaped yet, so its pid (and process group id) cannot have been
        // reused: killing the group here is safe, and also ends anything the check left
        // behind (credential plugins holding our pipes open).
        let _ = super::child::signal_group(check.pid, libc::SIGKILL);
        let status = check.child.wait();
        let stdout = drain_nonblocking(check.child.stdout.take());
        let stderr = drain_nonblocking(check.child.stderr.take());
        if let Some(waiter) = check.waiter.take() {
            let _ = waiter.join();
        }
        if errors[check.index].is_some() {
            continue;
        }
        if !exited[check.index] {
            errors[check.index] = Some(if stopped {
                "stopped: nightcrier is shutting down".to_string()
            } else {
                format!("timed out after {timeout:?}")
            });
            continue;
        }
        match parse_answer(&stdout) {
            Some(allowed) => answers[check.index] = Some(allowed),
            None => {
                let detail = last_line(&stderr).unwrap_or_else(|| match status {
                    Ok(status) => format!("no answer ({status})"),
                    Err(err) => format!("no answer: {err}"),
                });
                errors[check.index] = Some(detail);
            }
        }
    }

    wanted
        .iter()
        .enumerate()
        .map(|(index, (verb, resource))| PermissionCheck {
            verb: verb.to_string(),
            resource: resource.to_string(),
            allowed: answers[index].unwrap_or(false),
            error: errors[index].take(),
        })
        .collect()
}

fn start_check(kubeconfig: &Path, kubectl: &Path, verb: &str, resource: &str) -> io::Result<Child> {
    let mut command = Command::new(kubectl);
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["auth", "can-i", verb]);
    // `pods/log` would read as "the pod named log"; the subresource has its own flag.
    match resource.split_once('/') {
        Some((kind, sub)) => command.arg(kind).arg(format!("--subresource={sub}")),
        None => command.arg(resource),
    };
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
}

/// Reads what is buffered in a pipe without waiting for writers that may still hold it.
fn drain_nonblocking<R: Read + AsRawFd>(pipe: Option<R>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let fd = pipe.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; only the O_NONBLOCK flag changes.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match pipe.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&chunk[..n]);
                if out.len() > MAX_CHECK_OUTPUT {
                    // Keep the tail: the error kubectl ends with is what matters.
                    let cut = out.len() - MAX_CHECK_OUTPUT;
                    out.drain(..cut);
                }
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    out
}

/// `yes` or `no` (kubectl may add a reason after `no`); anything else is not an answer.
fn parse_answer(stdout: &[u8]) -> Option<bool> {
    let text = String::from_utf8_lossy(stdout);
    let first = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let word = first
        .split(|c: char| c.is_whitespace() || c == '-' || c == ',')
        .next()
        .unwrap_or("");
    match word {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

pub(crate) fn last_line(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    let clean: String = line
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_ERROR_CHARS)
        .collect();
    Some(clean)
}

/// One cluster's preflight, as the loop asks for it.
#[derive(Debug, Clone, PartialEq)]
pub struct PreflightRequest {
    pub cluster: String,
    pub kubeconfig: PathBuf,
    pub allow_secrets_access: bool,
    pub kubectl: PathBuf,
    pub timeout: Duration,
}

/// Runs up to [`PREFLIGHT_PARALLEL`] clusters' preflights at a time on its own threads
/// (started with the first preflights) and wakes the loop after each. Dropping it never
/// waits: running checks are killed (within about 50 ms) by threads that then end on their
/// own.
pub struct PreflightWorker {
    pool: Option<WorkerPool<PreflightRequest>>,
    results: mpsc::Receiver<ClusterPermissions>,
    stop: Arc<AtomicBool>,
}

impl PreflightWorker {
    pub fn start(waker: Arc<mio::Waker>) -> io::Result<PreflightWorker> {
        let (result_tx, result_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let serving = Arc::clone(&stop);
        let pool = WorkerPool::new(
            "preflight",
            PREFLIGHT_PARALLEL,
            None,
            Arc::new(move |requests: &Mutex<mpsc::Receiver<PreflightRequest>>| {
                serve(requests, &result_tx, &serving, &waker)
            }),
        );
        Ok(PreflightWorker {
            pool: Some(pool),
            results: result_rx,
            stop,
        })
    }

    /// Queues a preflight; its result shows up in [`results`](Self::results). False if it
    /// could not be queued (no worker thread runs): no result will come for it.
    pub fn submit(&self, request: PreflightRequest) -> bool {
        let submitted = self.pool.as_ref().map(|pool| pool.submit(request));
        match submitted {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                log::warn!("preflight: request dropped: {e}");
                false
            }
            None => {
                log::warn!("preflight: worker threads have stopped; request dropped");
                false
            }
        }
    }

    /// Results finished since the last call, without blocking.
    pub fn results(&self) -> impl Iterator<Item = ClusterPermissions> + '_ {
        self.results.try_iter()
    }
}

/// One worker thread: takes the next request, runs it, hands the result back.
fn serve(
    requests: &Mutex<mpsc::Receiver<PreflightRequest>>,
    results: &mpsc::Sender<ClusterPermissions>,
    stop: &AtomicBool,
    waker: &mio::Waker,
) {
    loop {
        // The lock is held only while waiting for the next request.
        let request = match requests.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(request) = request else {
            return;
        };
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let permissions = run_preflight_until(
            &request.cluster,
            &request.kubeconfig,
            request.allow_secrets_access,
            &request.kubectl,
            request.timeout,
            stop,
        );
        if stop.load(Ordering::Relaxed) || results.send(permissions).is_err() {
            return;
        }
        if let Err(err) = waker.wake() {
            log::warn!("preflight: cannot wake the event loop: {err}");
        }
    }
}

impl PreflightWorker {
    /// A worker whose threads are gone: every submission fails.
    #[cfg(test)]
    pub(crate) fn stopped() -> PreflightWorker {
        let (_, results) = mpsc::channel();
        PreflightWorker {
            pool: None,
            results,
            stop: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl Drop for PreflightWorker {
    /// Skips queued requests and tells running ones to kill their checks; does not wait.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.pool.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_is_the_first_word_of_stdout() {
        assert_eq!(parse_answer(b"yes\n"), Some(true));
        assert_eq!(parse_answer(b"no\n"), Some(false));
        assert_eq!(parse_answer(b"no - RBAC: role not found\n"), Some(false));
        assert_eq!(parse_answer(b"\n  yes  \n"), Some(true));
        assert_eq!(parse_answer(b""), None);
        assert_eq!(parse_answer(b"yesterday"), None);
        assert_eq!(parse_answer(b"error: bad"), None);
    }

    #[test]
    fn error_detail_is_the_last_line_without_control_characters() {
        let stderr = b"warning: x\nerror: You must be logged in\x1b[0m\n\n";
        assert_eq!(
            last_line(stderr).as_deref(),
            Some("error: You must be logged in[0m")
        );
        assert_eq!(last_line(b"\n \n"), None);
        let long = vec![b'e'; 10_000];
        assert_eq!(last_line(&long).map(|l| l.len()), Some(MAX_ERROR_CHARS));
    }
}
