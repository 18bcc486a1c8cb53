//! The two child-process primitives the agents and the preflight checks share: waiting for
//! a child's exit without reaping it (so its `Child` still owns the status and its pid, and
//! so its process group id, cannot be reused meanwhile), and signalling its process group.

use std::io;

/// Whether child `pid` has exited, leaving it unreaped. With `block`, waits until it has.
/// A child that is not ours to wait for (already reaped: ECHILD) counts as exited.
pub fn exited_unreaped(pid: i32, block: bool) -> bool {
    let mut flags = libc::WEXITED | libc::WNOWAIT;
    if !block {
        flags |= libc::WNOHANG;
    }
    loop {
        // SAFETY: waitid writes only into the siginfo we pass; WNOWAIT leaves the child
        // unreaped for its `Child` to collect.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
        if rc == 0 {
            // With WNOHANG a child still running leaves the siginfo zeroed.
            return block || siginfo_pid(&info) != 0;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return true;
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn siginfo_pid(info: &libc::siginfo_t) -> libc::pid_t {
    // SAFETY: waitid filled a SIGCHLD siginfo (or left it zeroed), where si_pid is valid.
    unsafe { info.si_pid() }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn siginfo_pid(info: &libc::siginfo_t) -> libc::pid_t {
    info.si_pid
}

/// Sends `signal` to the process group led by `pgid` (a child started with
/// `process_group(0)` and not reaped yet, so the id is still ours). A group that is already
/// gone (ESRCH) is not an error.
pub fn signal_group(pgid: i32, signal: i32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ESRCH) {
        return Ok(());
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    #[test]
    fn a_child_is_seen_exited_yet_left_for_its_owner_to_reap() {
        let mut child = Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(!exited_unreaped(pid, false));
        signal_group(pid, libc::SIGKILL).unwrap();
        assert!(exited_unreaped(pid, true));
        // Still unreaped: its owner gets the status.
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(libc::SIGKILL)
        );
        // Gone now: signalling it is not an error.
        assert!(signal_group(pid, libc::SIGTERM).is_ok());
    }
}
