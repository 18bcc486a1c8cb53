//! `nightcrier demo`, run as the built binary the way `scripts/demo.sh` runs it: the
//! simulator behaving like the real events server, the stub agent. Each healthy simulated
//! server drops its subscription midway; the demo shows nightcrier subscribing again and
//! deduplicating the repeat the new subscription brings.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::exec::wait_for_exit;

/// Runs `nightcrier demo ARGS` in `cwd`; returns its standard output after a successful exit.
fn run_demo(cwd: &Path, args: &[&str]) -> String {
    let stdout_path = cwd.join("demo.stdout");
    let stderr_path = cwd.join("demo.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .arg("demo")
        .args(args)
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        // The default directory goes under the temp dir: this test's own.
        .env("TMPDIR", cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let exited = wait_for_exit(child.id(), Duration::from_secs(60));
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(exited, "nightcrier demo still running after 60 s\n{stdout}");
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");
    stdout
}

/// Investigation reports under `incidents`, one per workspace.
fn reports(incidents: &Path) -> usize {
    std::fs::read_dir(incidents)
        .unwrap_or_else(|e| panic!("{}: {e}", incidents.display()))
        .filter(|entry| {
            let workspace = entry.as_ref().unwrap().path();
            workspace.join("output/investigation.md").is_file()
        })
        .count()
}

#[test]
fn demo_with_a_relative_dir_keeps_its_investigations_under_that_dir() {
    let cwd = tempfile::tempdir().unwrap();
    let stdout = run_demo(cwd.path(), &["--dir", "kept", "--duration", "20"]);
    let incidents = cwd.path().join("kept/incidents");
    let written = reports(&incidents);
    assert!(
        written > 0,
        "no investigation under {}\n{stdout}",
        incidents.display()
    );
    assert!(
        !cwd.path().join("kept/kept").exists(),
        "DIR was nested in itself"
    );
    let line = format!(
        "{written} investigations written under {}",
        incidents.display()
    );
    assert!(stdout.contains(&line), "expected {line:?} in\n{stdout}");
}

#[test]
fn demo_recovers_dropped_subscriptions_and_deduplicates_the_repeats() {
    let cwd = tempfile::tempdir().unwrap();
    let stdout = run_demo(cwd.path(), &["--dir", "run", "--duration", "40"]);
    let summary = stdout
        .split("\nSummary\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{stdout}"));
    for cluster in ["demo-000", "demo-001"] {
        let line = summary
            .lines()
            .find(|l| l.trim_start().starts_with(cluster))
            .unwrap_or_else(|| panic!("no line for {cluster}:\n{summary}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        let value = |name: &str| {
            let at = words.iter().position(|w| *w == name).unwrap();
            words[at + 1].parse::<u64>().unwrap()
        };
        // Three faults of its own, and the fault both clusters share.
        assert_eq!(value("faults"), 4, "{line}");
        assert_eq!(value("resubscribed"), 1, "{line}");
        // The shared fault runs once, on the higher-priority demo-000. On demo-001 the
        // demo's silence holds for PodCrash: its first fault and the repeat after the
        // resubscription (silences come before dedup) are silenced, not investigated.
        let (investigated, correlated, silenced, deduplicated) = if cluster == "demo-000" {
            (3, 0, 0, 1)
        } else {
            (1, 1, 2, 0)
        };
        assert_eq!(value("investigated"), investigated, "{line}");
        assert_eq!(value("correlated"), correlated, "{line}");
        assert_eq!(value("silenced"), silenced, "{line}");
        assert_eq!(value("deduplicated"), deduplicated, "{line}");
    }
    assert_eq!(reports(&cwd.path().join("run/incidents")), 4, "{stdout}");
    assert!(
        summary.contains(
            "2 PodCrash faults of demo-001 silenced by \"demo-maintenance\": recorded, not investigated"
        ),
        "{summary}"
    );
    let silenced_records = std::fs::read_dir(cwd.path().join("run/incidents"))
        .unwrap()
        .filter_map(|e| std::fs::read_to_string(e.unwrap().path().join("incident.json")).ok())
        .filter(|text| text.contains("\"status\": \"silenced\""))
        .count();
    assert_eq!(silenced_records, 1, "the silenced fault is recorded once");
    assert!(
        summary.contains("one investigation for the same fault on demo-000, demo-001: "),
        "{summary}"
    );
}

#[test]
fn demo_says_where_its_files_are_kept_and_aligns_its_status_columns() {
    let cwd = tempfile::tempdir().unwrap();
    let stdout = run_demo(cwd.path(), &["--duration", "20"]);
    let dirs: Vec<_> = std::fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let kept = &dirs[0];
    assert!(kept
        .file_name()
        .unwrap()
        .to_string_lossy()
        .starts_with("nightcrier-demo-"));
    let last = stdout.lines().last().unwrap_or("");
    assert_eq!(
        last,
        format!(
            "The demo's files are kept in {0} (remove them with: rm -r {0})",
            kept.display()
        ),
        "{stdout}"
    );
    assert!(kept.join("nightcrier.toml").is_file());
    // Every status line has its counters at the same column, whatever the status word.
    let columns: std::collections::BTreeSet<usize> = stdout
        .lines()
        .filter(|l| l.starts_with("  demo-") && l.contains(" faults "))
        .filter(|l| !l.contains("deduplicated"))
        .map(|l| l.find(" faults ").unwrap())
        .collect();
    assert_eq!(columns.len(), 1, "{stdout}");
    assert!(stdout.contains("disconnected  faults"), "{stdout}");
}

#[test]
fn an_interrupted_demo_says_it_was_cut_short_and_exits_130() {
    let cwd = tempfile::tempdir().unwrap();
    let stdout_path = cwd.path().join("demo.stdout");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["demo", "--dir", "run", "--duration", "60"])
        .current_dir(cwd.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first status block is printed once the loop runs: then interrupt it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !std::fs::read_to_string(&stdout_path)
        .unwrap_or_default()
        .contains("[ 0.0s]")
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child's PID, not reaped yet.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let exited = wait_for_exit(child.id(), Duration::from_secs(30));
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    assert!(exited, "demo still running 30 s after SIGINT\n{stdout}");
    assert_eq!(status.code(), Some(130), "{stdout}");
    assert!(stdout.contains("\nCut short by SIGINT after "), "{stdout}");
    assert!(stdout.contains("\nSummary\n"), "{stdout}");
    assert!(stdout.contains("The demo's files are kept in "), "{stdout}");
}

#[test]
fn bad_demo_and_simulate_command_lines_exit_64() {
    for args in [
        &["demo", "--clusters", "2"][..],
        &["demo", "--nope"],
        &["simulate", "--nope"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{args:?}: {stderr}");
    }
    let help = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).starts_with("Usage: nightcrier simulate"));
}
