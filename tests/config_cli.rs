//! `nightcrier check` and friends, run as the built binary: exit codes, readable
//! summaries with secrets redacted, and no panic on any file.

use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_nightcrier");

/// Runs the binary with a clean NIGHTCRIER_* environment.
fn nightcrier(args: &[&str], dir: &Path) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NIGHTCRIER_") {
            command.env_remove(key);
        }
    }
    command.output().expect("run nightcrier")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `check` on `contents` must exit 2, name the file, and not panic.
fn assert_refused(name: &str, contents: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    assert_refused_path(&path, dir.path())
}

fn assert_refused_path(path: &Path, dir: &Path) -> String {
    let out = nightcrier(&["check", "--config", path.to_str().unwrap()], dir);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("configuration refused"), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
    stderr
}

const VALID: &str = r#"
[[clusters]]
name = "prod-eu-1"
environment = "production"
labels = { team = "payments" }
priority = 10
severity_threshold = "critical"
[clusters.mcp]
endpoint = "https://mcp.example/mcp"
api_key = "SUPERSECRETKEY"
[clusters.triage]
enabled = true
kubeconfig = "kc/prod.yaml"
model = "opus"

[[clusters]]
name = "dev"
enabled = false
[clusters.mcp]
endpoint = "http://127.0.0.1:8080/mcp"

[slack]
webhook_url = "https://hooks.example/services/T0/B0/WEBHOOKSECRET"
"#;

#[test]
fn check_prints_every_cluster_with_secrets_redacted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.toml");
    std::fs::write(&path, VALID).unwrap();
    let out = nightcrier(&["check", "--config", path.to_str().unwrap()], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    for expected in [
        "cluster prod-eu-1:",
        "cluster dev:",
        "production",
        "team=payments",
        "https://mcp.example/mcp",
        "set (redacted)",
        "kc/prod.yaml",
        "opus",
        "critical (cluster setting)",
        "warning (global)",
        "webhook set (redacted)",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert!(!stdout.contains("SUPERSECRETKEY"));
    assert!(!stdout.contains("WEBHOOKSECRET"));
    assert!(!text(&out.stderr).contains("SECRET"));
}

#[test]
fn check_reports_every_problem_naming_file_cluster_and_field() {
    let bad = "[[clusters]]\nname = \"eu-1\"\n[clusters.mcp]\nendpoint = \"ftp://h/mcp\"\n\n[queue]\ncluster_queue_size = 0\n";
    let stderr = assert_refused("bad.toml", bad.as_bytes());
    assert!(
        stderr.contains("bad.toml:4:12: cluster \"eu-1\": field mcp.endpoint: scheme \"ftp\" is not http or https"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.toml:7:22: field queue.cluster_queue_size"),
        "{stderr}"
    );
    assert!(stderr.contains("(2 problems)"), "{stderr}");
}

#[test]
fn check_refuses_a_truncated_file() {
    let truncated = &VALID[..VALID.find("api_key").unwrap() + 12];
    assert_refused("truncated.toml", truncated.as_bytes());
}

#[test]
fn check_refuses_a_binary_file() {
    let binary: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let stderr = assert_refused("binary.toml", &binary);
    assert!(
        stderr.contains("UTF-8") || stderr.contains("invalid TOML"),
        "{stderr}"
    );
}

#[test]
fn check_refuses_nul_bytes_and_control_characters() {
    assert_refused("nul.toml", b"name = \"a\0b\"\n\x01\x02");
}

#[test]
fn check_refuses_an_empty_file() {
    let stderr = assert_refused("empty.toml", b"");
    assert!(stderr.contains("no cluster configured"), "{stderr}");
}

#[test]
fn check_refuses_a_huge_file_without_reading_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.toml");
    let file = std::fs::File::create(&path).unwrap();
    file.set_len(17 * 1024 * 1024).unwrap();
    let stderr = assert_refused_path(&path, dir.path());
    assert!(stderr.contains("16 MiB"), "{stderr}");
}

#[test]
fn check_refuses_deeply_nested_values() {
    let mut deep = String::from("x = ");
    deep.push_str(&"[".repeat(100_000));
    deep.push_str(&"]".repeat(100_000));
    assert_refused("deep.toml", deep.as_bytes());
    let dotted = format!("{} = 1\n", vec!["k"; 100_000].join("."));
    assert_refused("dotted.toml", dotted.as_bytes());
    let inline = format!("x = {}1{}\n", "{a=".repeat(50_000), "}".repeat(50_000));
    assert_refused("inline.toml", inline.as_bytes());
}

#[test]
fn check_refuses_huge_keys_and_values_with_short_messages() {
    let long_key = format!("{} = 1\n", "k".repeat(100_000));
    let stderr = assert_refused("key.toml", long_key.as_bytes());
    assert!(stderr.len() < 2_000, "{} bytes", stderr.len());
    let long_value = format!("log_level = \"{}\"\nclusters = []\n", "v".repeat(1_000_000));
    let stderr = assert_refused("value.toml", long_value.as_bytes());
    assert!(stderr.len() < 2_000, "{} bytes", stderr.len());
}

#[test]
fn check_on_a_missing_file_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.toml");
    assert_refused_path(&missing, dir.path());
}

#[test]
fn check_without_any_file_explains_the_search() {
    let dir = tempfile::tempdir().unwrap();
    let out = nightcrier(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("./nightcrier.toml"), "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
}

#[test]
fn check_finds_config_nightcrier_toml_in_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(dir.path().join("config/nightcrier.toml"), VALID).unwrap();
    let out = nightcrier(&["check"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("config/nightcrier.toml"));
}

#[test]
fn check_flags_override_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n.toml");
    std::fs::write(&path, VALID).unwrap();
    let out = nightcrier(
        &[
            "check",
            "--config",
            path.to_str().unwrap(),
            "--severity-threshold=error",
            "--health-listen",
            "off",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout.contains("error (global)"), "{stdout}");
    assert!(stdout.contains("health                 off"), "{stdout}");
}

#[test]
fn bad_usage_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["check", "--bogus"][..],
        &["nope"],
        &[],
        &["run", "--config"],
    ] {
        let out = nightcrier(args, dir.path());
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(text(&out.stderr).contains("Usage"), "{args:?}");
    }
}

#[test]
fn version_and_help_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let out = nightcrier(&["--version"], dir.path());
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        text(&out.stdout).trim(),
        format!("nightcrier {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        &["--help"][..],
        &["help"],
        &["check", "--help"],
        &["run", "--help"],
    ] {
        let out = nightcrier(args, dir.path());
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("--config FILE"), "{args:?}");
    }
}

#[test]
fn run_refuses_a_bad_file_before_starting() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "log_level = 3\n").unwrap();
    let out = nightcrier(&["run", "--config", path.to_str().unwrap()], dir.path());
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("field log_level: expected a string"),
        "{stderr}"
    );
    assert!(stderr.contains("nothing was started"), "{stderr}");
}

#[test]
fn the_example_configuration_checks_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = nightcrier(
        &["check", "--config", "config/nightcrier.example.toml"],
        root,
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // Its one warning: the kubeconfig an operator still has to make.
    let stdout = text(&out.stdout);
    let warnings: Vec<&str> = stdout
        .split("warnings:")
        .nth(1)
        .unwrap_or("")
        .lines()
        .filter(|l| l.trim_start().starts_with("- "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stdout}");
    assert!(
        warnings[0].contains("cluster=dev-local: triage kubeconfig")
            && warnings[0].contains("config/kubeconfigs/dev-local.yaml does not exist"),
        "{stdout}"
    );
}

#[test]
fn check_warns_when_a_triage_kubeconfig_does_not_exist() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("n.toml");
    std::fs::write(
        &config,
        "[[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\
         [clusters.triage]\nenabled = true\nkubeconfig = \"kc/a.yaml\"\n",
    )
    .unwrap();
    let check = || nightcrier(&["check", "--config", config.to_str().unwrap()], dir.path());
    let out = check();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let expected = format!(
        "cluster=a: triage kubeconfig {} does not exist",
        dir.path().join("kc/a.yaml").display()
    );
    assert!(
        text(&out.stdout).contains(&expected),
        "{}",
        text(&out.stdout)
    );
    std::fs::create_dir(dir.path().join("kc")).unwrap();
    std::fs::write(dir.path().join("kc/a.yaml"), "# kubeconfig\n").unwrap();
    let out = check();
    assert_eq!(out.status.code(), Some(0));
    assert!(
        !text(&out.stdout).contains("warnings:"),
        "{}",
        text(&out.stdout)
    );
}
