//! `nightcrier demo` as a user runs it: the real binary, the simulator behaving like the real
//! events server, the stub agent. Each healthy simulated server drops its subscription
//! midway; the demo shows nightcrier subscribing again and deduplicating the repeat.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::exec::wait_for_exit;

#[test]
fn demo_recovers_dropped_subscriptions_and_deduplicates_the_repeats() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["demo", "--duration", "40", "--dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    if !wait_for_exit(pid, Duration::from_secs(60)) {
        let _ = child.kill();
    }
    let status = child.wait().unwrap();
    let output = reader.join().unwrap();
    assert!(status.success(), "{status:?}\n{output}");
    let summary = output
        .split("\nSummary\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no summary:\n{output}"));
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
    let incidents = std::fs::read_dir(dir.path().join("incidents"))
        .unwrap()
        .count();
    assert_eq!(incidents, 4, "{output}");
}
