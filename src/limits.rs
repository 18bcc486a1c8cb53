//! The open-file limit. Every cluster holds a socket or two, and every agent its output
//! files and a pid handle; the common default soft limit of 1024 runs out a little past
//! 450 clusters. At start the soft `RLIMIT_NOFILE` is raised toward the hard limit, and an
//! operator is told plainly when even that is not enough.

use std::io;

/// File descriptors per cluster: the event stream and the control connection.
const PER_CLUSTER: u64 = 2;
/// File descriptors per running agent: stdout and stderr files, pid handle, margin.
const PER_AGENT: u64 = 4;
/// Listener, signal pipe, poll, waker, logs, the health server and its clients.
const MARGIN: u64 = 64;

/// The limit before and after raising it, and what the configuration needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdLimit {
    pub soft_before: u64,
    pub soft: u64,
    /// `u64::MAX` when unlimited.
    pub hard: u64,
    pub needed: u64,
    pub clusters: usize,
    pub max_agents: usize,
}

/// The file descriptors `clusters` connections and `max_agents` agents need.
pub fn needed_fds(clusters: usize, max_agents: usize) -> u64 {
    PER_CLUSTER
        .saturating_mul(clusters as u64)
        .saturating_add(PER_AGENT.saturating_mul(max_agents as u64))
        .saturating_add(MARGIN)
}

/// The soft limit to set, if it must change: up to what is needed, never past the hard
/// limit, never lowered.
pub fn plan(soft: u64, hard: u64, needed: u64) -> Option<u64> {
    if soft >= needed {
        return None;
    }
    let target = hard.min(needed.max(soft));
    (target > soft).then_some(target)
}

/// Raises the limit for `clusters` and `agents` and logs the outcome: a warning when it is
/// short (or unknown); with `announce`, the limit itself otherwise (at start, not on every
/// reload).
pub fn apply_fd_limit(clusters: usize, agents: usize, announce: bool) {
    match raise_fd_limit(clusters, agents) {
        Ok(limit) => match limit.message() {
            Some(message) => log::warn!("{message}"),
            None if announce => log::info!(
                "file descriptor limit {} (needed about {})",
                limit.soft,
                limit.needed
            ),
            None => {}
        },
        Err(e) => log::warn!("file descriptor limit unknown: {e}"),
    }
}

/// Raises the soft limit of this process if it is below what `clusters` and `max_agents`
/// need. Call again after a reload that adds clusters. An error reading the limit is
/// returned; a refused raise is logged and shows as an insufficient [`FdLimit`].
pub fn raise_fd_limit(clusters: usize, max_agents: usize) -> io::Result<FdLimit> {
    let needed = needed_fds(clusters, max_agents);
    let (soft_before, hard) = get_nofile()?;
    let mut soft = soft_before;
    if let Some(target) = plan(soft_before, hard, needed) {
        match set_nofile_soft(target, hard) {
            Ok(()) => {
                soft = target;
                log::info!("raised the file descriptor limit from {soft_before} to {target}");
            }
            Err(e) => log::warn!(
                "cannot raise the file descriptor limit from {soft_before} to {target}: {e}"
            ),
        }
    }
    Ok(FdLimit {
        soft_before,
        soft,
        hard,
        needed,
        clusters,
        max_agents,
    })
}

impl FdLimit {
    /// A limit as read elsewhere, for checks and messages.
    pub fn new(soft: u64, hard: u64, clusters: usize, max_agents: usize) -> FdLimit {
        FdLimit {
            soft_before: soft,
            soft,
            hard,
            needed: needed_fds(clusters, max_agents),
            clusters,
            max_agents,
        }
    }

    pub fn sufficient(&self) -> bool {
        self.soft >= self.needed
    }

    /// What an operator must do, when the limit is too low.
    pub fn message(&self) -> Option<String> {
        if self.sufficient() {
            return None;
        }
        let hard = if self.hard == u64::MAX {
            "unlimited".to_string()
        } else {
            self.hard.to_string()
        };
        let suggested = self
            .needed
            .checked_next_power_of_two()
            .unwrap_or(self.needed);
        Some(format!(
            "file descriptor limit {} (hard {hard}) is below the {} needed for {} and {}; \
             raise it (ulimit -n {suggested}, LimitNOFILE= in systemd, or the container \
             runtime's nofile ulimit)",
            self.soft,
            thousands(self.needed),
            counted(self.clusters, "cluster"),
            counted(self.max_agents, "agent"),
        ))
    }
}

fn counted(count: usize, noun: &str) -> String {
    let plural = if count == 1 { "" } else { "s" };
    format!("{} {noun}{plural}", thousands(count as u64))
}

/// `2100` → `2,100`.
fn thousands(value: u64) -> String {
    let digits = value.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn from_rlim(value: libc::rlim_t) -> u64 {
    if value == libc::RLIM_INFINITY {
        u64::MAX
    } else {
        value
    }
}

fn to_rlim(value: u64) -> libc::rlim_t {
    if value == u64::MAX {
        libc::RLIM_INFINITY
    } else {
        value
    }
}

fn get_nofile() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own and pass by pointer.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("reading the file descriptor limit (RLIMIT_NOFILE): {e}"),
        ));
    }
    Ok((from_rlim(limit.rlim_cur), from_rlim(limit.rlim_max)))
}

fn set_nofile_soft(soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: to_rlim(soft),
        rlim_max: to_rlim(hard),
    };
    // SAFETY: setrlimit only reads the rlimit we pass by pointer.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn need_is_two_per_cluster_four_per_agent_plus_margin() {
        assert_eq!(needed_fds(0, 0), 64);
        assert_eq!(needed_fds(1000, 2), 2000 + 8 + 64);
        assert_eq!(needed_fds(100, 10), 200 + 40 + 64);
    }

    #[test]
    fn enough_soft_limit_is_left_alone() {
        assert_eq!(plan(4096, 4096, 2072), None);
        assert_eq!(plan(2072, 4096, 2072), None);
    }

    #[test]
    fn low_soft_limit_is_raised_to_what_is_needed() {
        assert_eq!(plan(1024, 524_288, 2072), Some(2072));
    }

    #[test]
    fn raise_stops_at_the_hard_limit() {
        assert_eq!(plan(1024, 1500, 2072), Some(1500));
        assert_eq!(plan(1024, 1024, 2072), None, "nothing to gain");
    }

    #[test]
    fn unlimited_hard_limit_allows_the_full_need() {
        assert_eq!(plan(1024, u64::MAX, 10_000), Some(10_000));
        assert_eq!(to_rlim(u64::MAX), libc::RLIM_INFINITY);
        assert_eq!(from_rlim(libc::RLIM_INFINITY), u64::MAX);
    }

    #[test]
    fn sufficient_limit_has_no_message() {
        let limit = FdLimit::new(4096, 4096, 1000, 2);
        assert!(limit.sufficient());
        assert_eq!(limit.message(), None);
    }

    #[test]
    fn insufficient_limit_message_names_the_numbers_and_the_remedies() {
        let limit = FdLimit::new(1024, 1024, 1000, 2);
        assert!(!limit.sufficient());
        assert_eq!(
            limit.message().unwrap(),
            "file descriptor limit 1024 (hard 1024) is below the 2,072 needed for 1,000 \
             clusters and 2 agents; raise it (ulimit -n 4096, LimitNOFILE= in systemd, or the \
             container runtime's nofile ulimit)"
        );
    }

    #[test]
    fn message_says_unlimited_and_singular() {
        let limit = FdLimit::new(16, u64::MAX, 1, 1);
        let message = limit.message().unwrap();
        assert!(message.contains("(hard unlimited)"), "{message}");
        assert!(message.contains("for 1 cluster and 1 agent;"), "{message}");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn raising_this_process_limit_reaches_the_need_or_the_hard_limit() {
        // A small need, which this process's limit already meets or can be raised to.
        let limit = raise_fd_limit(10, 1).unwrap();
        assert!(limit.soft >= limit.soft_before);
        assert!(limit.soft >= limit.needed.min(limit.hard));
        assert_eq!(get_nofile().unwrap().0, limit.soft);
    }
}
