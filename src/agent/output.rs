//! Copies an agent's stdout and stderr from pipes into `agent-stdout.log` and
//! `agent-stderr.log`, each capped at `agent.max_output_bytes`: past the cap one marker line
//! is written and the rest is read and discarded, so the agent never blocks on a full pipe
//! and never fills the disk through its output.
//!
//! One small thread per running agent (like the preflight's waiter threads), because the
//! cap must hold while the agent runs: a file the child writes itself can only be limited
//! with `RLIMIT_FSIZE`, which applies to every file it writes (kubectl's caches, the
//! CLI's session files) and kills it with SIGXFSZ. The relay also keeps the last few KiB of
//! each stream in memory, so the failure reason is the agent's own last line even when the
//! log was cut or could not be written (a full disk).

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::process::{ChildStderr, ChildStdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// How much of each stream's end is kept in memory for the failure reason: enough for the
/// CLI's error line above a stack trace.
pub const TAIL_BYTES: usize = 16 * 1024;
const CHUNK: usize = 16 * 1024;
/// How often the relay looks at its stop flag while the pipes stay open.
const STOP_CHECK: Duration = Duration::from_millis(100);
const RELAY_STACK: usize = 64 * 1024;

/// What became of one stream.
#[derive(Debug, Default)]
pub struct StreamReport {
    /// Bytes the agent wrote to the stream.
    pub seen: u64,
    /// Bytes written to the log file (the marker not included).
    pub written: u64,
    pub truncated: bool,
    /// The first error writing the log file; the stream was then discarded.
    pub write_error: Option<io::Error>,
    /// The last `TAIL_BYTES` the agent wrote.
    pub tail: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct RelayReport {
    pub stdout: StreamReport,
    pub stderr: StreamReport,
}

/// The line appended where a log was cut.
pub fn truncation_marker(cap: u64) -> String {
    format!("\n[nightcrier: output cut at {cap} bytes (agent.max_output_bytes); the rest was discarded]\n")
}

struct Stream {
    pipe: Box<dyn ReadFd + Send>,
    file: File,
    open: bool,
    report: StreamReport,
}

trait ReadFd: Read {
    fn fd(&self) -> RawFd;
}
impl ReadFd for ChildStdout {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}
impl ReadFd for ChildStderr {
    fn fd(&self) -> RawFd {
        self.as_raw_fd()
    }
}

impl Stream {
    /// Takes one chunk the agent wrote: into the file up to the cap, into the tail always.
    fn take(&mut self, bytes: &[u8], cap: u64) {
        let report = &mut self.report;
        report.seen += bytes.len() as u64;
        keep_tail(&mut report.tail, bytes);
        if report.write_error.is_some() || report.truncated {
            return;
        }
        let room = cap.saturating_sub(report.written);
        let keep = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let result = self.file.write_all(&bytes[..keep]).and_then(|()| {
            if keep < bytes.len() {
                self.file.write_all(truncation_marker(cap).as_bytes())
            } else {
                Ok(())
            }
        });
        match result {
            Ok(()) => {
                report.written += keep as u64;
                report.truncated = keep < bytes.len();
            }
            Err(err) => report.write_error = Some(err),
        }
    }
}

fn keep_tail(tail: &mut Vec<u8>, bytes: &[u8]) {
    let bytes = &bytes[bytes.len().saturating_sub(TAIL_BYTES)..];
    tail.extend_from_slice(bytes);
    if tail.len() > TAIL_BYTES {
        let cut = tail.len() - TAIL_BYTES;
        tail.drain(..cut);
    }
}

/// A running relay for one agent.
pub struct OutputRelay {
    done: mpsc::Receiver<RelayReport>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl OutputRelay {
    pub fn start(
        stdout: ChildStdout,
        stderr: ChildStderr,
        stdout_log: File,
        stderr_log: File,
        cap: u64,
    ) -> io::Result<OutputRelay> {
        let (tx, done) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let mut streams = [
            Stream {
                pipe: Box::new(stdout),
                file: stdout_log,
                open: true,
                report: StreamReport::default(),
            },
            Stream {
                pipe: Box::new(stderr),
                file: stderr_log,
                open: true,
                report: StreamReport::default(),
            },
        ];
        let thread = thread::Builder::new()
            .name("agent-output".into())
            .stack_size(RELAY_STACK)
            .spawn(move || {
                relay(&mut streams, cap, &stopped);
                let [stdout, stderr] = streams;
                let _ = tx.send(RelayReport {
                    stdout: stdout.report,
                    stderr: stderr.report,
                });
            })?;
        Ok(OutputRelay {
            done,
            stop,
            thread: Some(thread),
        })
    }

    /// The report once both pipes have closed, waiting at most `wait` (the agent's group is
    /// dead by now, so its pipes close at once unless a process escaped the group). `None`
    /// if they are still open: the relay is told to stop and left to end on its own.
    pub fn finish(mut self, wait: Duration) -> Option<RelayReport> {
        match self.done.recv_timeout(wait) {
            Ok(report) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
                Some(report)
            }
            Err(_) => None,
        }
    }
}

impl Drop for OutputRelay {
    fn drop(&mut self) {
        // A relay not joined in `finish` stops at its next check and ends by itself.
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(streams: &mut [Stream; 2], cap: u64, stop: &AtomicBool) {
    let mut chunk = vec![0u8; CHUNK];
    while streams.iter().any(|s| s.open) && !stop.load(Ordering::Relaxed) {
        let mut fds: Vec<libc::pollfd> = streams
            .iter()
            .map(|s| libc::pollfd {
                fd: if s.open { s.pipe.fd() } else { -1 },
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: poll reads and writes only the array we pass, with its true length.
        let rc = unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                STOP_CHECK.as_millis() as libc::c_int,
            )
        };
        if rc < 0 {
            if io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return;
        }
        for (stream, fd) in streams.iter_mut().zip(&fds) {
            if !stream.open || fd.revents == 0 {
                continue;
            }
            match stream.pipe.read(&mut chunk) {
                Ok(0) => stream.open = false,
                Ok(n) => stream.take(&chunk[..n], cap),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => stream.open = false,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_the_last_bytes() {
        let mut tail = Vec::new();
        keep_tail(&mut tail, &vec![b'a'; TAIL_BYTES]);
        keep_tail(&mut tail, b"error: last");
        assert_eq!(tail.len(), TAIL_BYTES);
        assert!(tail.ends_with(b"error: last"));
        let mut tail = Vec::new();
        keep_tail(&mut tail, &vec![b'b'; 3 * TAIL_BYTES]);
        assert_eq!(tail.len(), TAIL_BYTES);
    }
}
