//! config/systemd/nightcrier.service: `systemd-analyze verify` takes it without a word, and
//! its settings fit the daemon (stop time, file descriptors, reload, what agents need).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::exec::output_within;
use common::peers::repo_root;
use nightcrier::config::Config;
use nightcrier::limits::needed_fds;

const BIN: &str = env!("CARGO_BIN_EXE_nightcrier");
const INSTALLED_BIN: &str = "/usr/local/bin/nightcrier";

fn unit_text() -> String {
    std::fs::read_to_string(repo_root().join("config/systemd/nightcrier.service")).unwrap()
}

/// The values of `key` in the unit, in order (comments skipped).
fn values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .filter(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().to_string())
        .collect()
}

fn value(unit: &str, key: &str) -> String {
    let all = values(unit, key);
    assert_eq!(all.len(), 1, "{key}: {all:?}");
    all[0].clone()
}

/// `systemd-analyze verify` on `unit` saved as nightcrier.service, with the binary it starts
/// at `binary` (verify checks that every command exists); returns (exit ok, what it said).
fn verify(unit: &str, binary: &Path, dir: &Path) -> (bool, String) {
    let file = dir.join("nightcrier.service");
    std::fs::write(&file, unit.replace(INSTALLED_BIN, binary.to_str().unwrap())).unwrap();
    let out = output_within(
        Command::new("systemd-analyze").arg("verify").arg(&file),
        b"",
        Duration::from_secs(60),
        "systemd-analyze verify",
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn systemd_analyze_verify_takes_the_unit_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_text();
    assert!(unit.contains(&format!("ExecStart={INSTALLED_BIN} run ")));
    let (ok, said) = verify(&unit, Path::new(BIN), dir.path());
    assert!(ok, "{said}");
    assert_eq!(said, "", "systemd-analyze verify had something to say");
}

#[test]
fn systemd_analyze_verify_speaks_up_about_a_broken_unit() {
    let dir = tempfile::tempdir().unwrap();
    let broken = unit_text().replace("TimeoutStopSec=", "TimeoutStopSecs=");
    let (_, said) = verify(&broken, Path::new(BIN), dir.path());
    assert!(said.contains("TimeoutStopSecs"), "{said}");
    let (ok, said) = verify(
        &unit_text(),
        &PathBuf::from("/nonexistent/nightcrier"),
        dir.path(),
    );
    assert!(!ok, "a unit whose binary is missing verified: {said}");
}

#[test]
fn unit_stops_reloads_and_opens_what_the_daemon_needs() {
    let unit = unit_text();
    let defaults = Config::defaults(PathBuf::from("nightcrier.toml"));

    // systemd kills what is left only after the daemon's own shutdown: running agents get
    // shutdown_timeout, then kill_grace between SIGTERM and SIGKILL.
    let stop = value(&unit, "TimeoutStopSec");
    let stop = Duration::from_secs(stop.parse().expect("TimeoutStopSec in seconds"));
    let needed = defaults.shutdown_timeout + defaults.agent.kill_grace;
    assert!(
        stop > needed,
        "TimeoutStopSec {stop:?} is not above {needed:?}"
    );
    assert_eq!(value(&unit, "KillSignal"), "SIGTERM");

    assert_eq!(value(&unit, "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(value(&unit, "Restart"), "on-failure");

    // The figure the unit's comment gives: 16384 holds about 8,000 clusters with the
    // default two agents, by the daemon's own count of what it needs.
    let nofile: u64 = value(&unit, "LimitNOFILE").parse().unwrap();
    let agents = defaults.agent.max_concurrent_agents;
    assert!(needed_fds(8_000, agents) <= nofile);
    assert!(needed_fds(8_500, agents) > nofile);

    // Its own user; the system read-only but for the workspace.
    let user = value(&unit, "User");
    assert!(!user.is_empty() && user != "root");
    let sysusers =
        std::fs::read_to_string(repo_root().join("config/systemd/nightcrier.sysusers")).unwrap();
    assert!(
        sysusers
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["u", user.as_str()])),
        "nightcrier.sysusers does not make {user}"
    );
    assert_eq!(value(&unit, "ProtectSystem"), "strict");
    assert_eq!(value(&unit, "NoNewPrivileges"), "yes");
    let workdir = value(&unit, "WorkingDirectory");
    assert_eq!(workdir, "/var/lib/nightcrier");
    assert!(values(&unit, "ReadWritePaths").contains(&workdir));
    assert_eq!(value(&unit, "StateDirectory"), "nightcrier");

    // Agents on the host are confined with bubblewrap: user, mount and pid namespaces.
    for key in ["RestrictNamespaces", "PrivateUsers", "SystemCallFilter"] {
        assert!(values(&unit, key).is_empty(), "{key} would stop bubblewrap");
    }
}
