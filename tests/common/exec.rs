//! Executables and FIFOs for tests.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Writes an executable script. Another test thread may fork while a write descriptor is
/// open, and exec of a file open for writing fails (ETXTBSY); so `install(1)`, a separate
/// process, writes the executable, and this process only ever writes the source copy.
pub fn write_executable(path: &Path, text: &str) {
    let source = path.with_extension("src");
    std::fs::write(&source, text).unwrap();
    let status = Command::new("install")
        .arg("-m")
        .arg("755")
        .arg(&source)
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "install {}", path.display());
}

/// `write_executable` for `dir/name`; returns the path.
pub fn executable(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    write_executable(&path, text);
    path
}

pub fn mkfifo(path: &Path) {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path and a mode.
    let rc = unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) };
    assert_eq!(rc, 0, "mkfifo {}", path.display());
}

/// Waits until process `pid` has exited (its pidfd is readable), without reaping it.
pub fn wait_for_exit(pid: u32, timeout: std::time::Duration) -> bool {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    assert!(
        fd >= 0,
        "pidfd_open({pid}): {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut poll = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut poll, 1, left.as_millis() as i32) };
        if rc > 0 {
            return true;
        }
        if rc == 0 || std::time::Instant::now() >= deadline {
            return false;
        }
    }
}

/// Runs `command` to its end with `input` on stdin and returns its output; past `limit` it
/// is killed by its PID and the test fails, naming `what`.
pub fn output_within(
    command: &mut Command,
    input: &[u8],
    limit: std::time::Duration,
    what: &str,
) -> std::process::Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id() as libc::pid_t;
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        // A tool that exits without reading its input closes the pipe: not an error here.
        let _ = stdin.write_all(&input);
    });
    let (done_tx, done) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(limit) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            // SAFETY: kill(2) on our own child, not reaped yet (its waiter has not returned).
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
            panic!("{what} did not finish within {limit:?}");
        }
    };
    writer.join().unwrap();
    output
}
