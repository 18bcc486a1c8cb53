//! `nightcrier demo`, run as the built binary the way `scripts/demo.sh` runs it.

use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

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
    let stdout_path = cwd.path().join("demo.stdout");
    let stderr_path = cwd.path().join("demo.stderr");
    let mut child = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["demo", "--dir", "kept", "--duration", "20"])
        .current_dir(cwd.path())
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "nightcrier demo (pid {}) still running after 60 s",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = std::fs::read_to_string(&stdout_path).unwrap();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(status.success(), "{status}\n{stdout}\n{stderr}");

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
