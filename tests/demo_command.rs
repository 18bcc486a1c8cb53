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
        assert_eq!(value("faults"), 3, "{line}");
        assert_eq!(value("deduplicated"), 1, "{line}");
        assert_eq!(value("investigated"), 2, "{line}");
        assert_eq!(value("resubscribed"), 1, "{line}");
    }
    assert_eq!(reports(&cwd.path().join("run/incidents")), 4, "{stdout}");
}
