//! The agent scripts' side of the contract: argument checks, how run-agent.sh invokes a CLI
//! on the host and in a container (against fake `claude` and `docker` binaries), and its
//! timeout.

mod common;

use common::exec::write_executable;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("bin")).unwrap();
        fs::create_dir_all(dir.path().join("ws/output")).unwrap();
        fs::write(
            dir.path().join("ws/incident_cluster_permissions.json"),
            "{}",
        )
        .unwrap();
        fs::write(dir.path().join("kubeconfig"), "apiVersion: v1\n").unwrap();
        fs::write(dir.path().join("system.md"), "You are a careful SRE.").unwrap();
        Env { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn fake(&self, name: &str, body: &str) {
        let path = self.path("bin").join(name);
        write_executable(&path, &format!("#!/bin/sh\n{body}\n"));
    }
    fn contract_args(&self, agent: &str, timeout: &str) -> Vec<String> {
        [
            "--workspace",
            self.path("ws").to_str().unwrap(),
            "--kubeconfig",
            self.path("kubeconfig").to_str().unwrap(),
            "--model",
            "sonnet",
            "--agent",
            agent,
            "--allowed-tools",
            "Read,Bash",
            "--timeout",
            timeout,
            "--system-prompt-file",
            self.path("system.md").to_str().unwrap(),
            "Investigate incident i-1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
    fn run(&self, script_name: &str, args: &[String], env: &[(&str, &str)]) -> Output {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        Command::new(script(script_name))
            .args(args)
            .env_clear()
            .env("PATH", path)
            .env("INCIDENT_ID", "i-1")
            .env("CLUSTER_NAME", "prod")
            .env("KUBECONFIG", self.path("kubeconfig"))
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn run_agent_rejects_bad_arguments_with_exit_2() {
    let env = Env::new();
    let cases: [(Vec<String>, &str); 4] = [
        (env.contract_args("clippy", "60"), "unknown agent 'clippy'"),
        (
            env.contract_args("claude", "soon"),
            "--timeout must be a positive number",
        ),
        (
            env.contract_args("claude", "60")[2..].to_vec(),
            "--workspace is required",
        ),
        (
            {
                let mut args = env.contract_args("claude", "60");
                args[3] = env.path("missing").display().to_string();
                args
            },
            "is not a readable file",
        ),
    ];
    for (args, message) in cases {
        let out = env.run("run-agent.sh", &args, &[("AGENT_RUNTIME", "none")]);
        assert_eq!(out.status.code(), Some(2), "{message}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(message),
            "want {message:?} in {}",
            stderr(&out)
        );
    }
    let mut extra = env.contract_args("claude", "60");
    extra.push("second prompt".into());
    let out = env.run("run-agent.sh", &extra, &[("AGENT_RUNTIME", "none")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("exactly one PROMPT"));
}

#[test]
fn run_agent_on_the_host_runs_claude_non_interactively_in_the_workspace() {
    let env = Env::new();
    env.fake(
        "claude",
        r#"for a in "$@"; do printf '%s\n--\n' "$a"; done > claude-args
printf '%s\n' "$KUBECONFIG" > claude-env
pwd > claude-cwd
echo '## Summary' > output/investigation.md"#,
    );
    let out = env.run(
        "run-agent.sh",
        &env.contract_args("claude", "60"),
        &[("AGENT_RUNTIME", "none")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let args = fs::read_to_string(env.path("ws/claude-args")).unwrap();
    let args: Vec<&str> = args.split("\n--\n").collect();
    assert_eq!(
        &args[..8],
        [
            "--print",
            "--output-format",
            "text",
            "--model",
            "sonnet",
            "--allowedTools",
            "Read,Bash",
            "--append-system-prompt"
        ]
    );
    assert_eq!(args[8], "You are a careful SRE.");
    // `--allowedTools` takes a list: the prompt comes after `--`, or it would be swallowed.
    assert_eq!(args[9], "--");
    let args = [&args[..9], &args[10..]].concat();
    assert!(args[9].starts_with("Investigate incident i-1"));
    let report = env.path("ws/output/investigation.md");
    let ws = fs::canonicalize(env.path("ws")).unwrap();
    assert!(
        args[9].contains(&format!("{}/output/investigation.md", ws.display())),
        "{}",
        args[9]
    );
    let kubeconfig = fs::canonicalize(env.path("kubeconfig")).unwrap();
    assert_eq!(
        fs::read_to_string(env.path("ws/claude-env"))
            .unwrap()
            .trim(),
        kubeconfig.to_str().unwrap()
    );
    assert_eq!(
        fs::read_to_string(env.path("ws/claude-cwd"))
            .unwrap()
            .trim(),
        ws.to_str().unwrap()
    );
    assert!(report.exists());
}

#[test]
fn run_agent_in_docker_mounts_kubeconfig_and_permissions_read_only() {
    let env = Env::new();
    env.fake(
        "docker",
        r#"for a in "$@"; do printf '%s\n' "$a"; done > "$DOCKER_ARGS""#,
    );
    let record = env.path("docker-args");
    let out = env.run(
        "run-agent.sh",
        &env.contract_args("gemini", "60"),
        &[
            ("AGENT_RUNTIME", "docker"),
            ("DOCKER_ARGS", record.to_str().unwrap()),
            ("GEMINI_API_KEY", "secret-value-123"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let args = fs::read_to_string(&record).unwrap();
    let args: Vec<&str> = args.lines().collect();
    let ws = fs::canonicalize(env.path("ws")).unwrap();
    let kubeconfig = fs::canonicalize(env.path("kubeconfig")).unwrap();
    assert_eq!(&args[..3], ["run", "--rm", "--init"]);
    for wanted in [
        format!("type=bind,src={},dst=/workspace", ws.display()),
        format!("type=bind,src={},dst=/run/nightcrier/kubeconfig,readonly", kubeconfig.display()),
        format!(
            "type=bind,src={}/incident_cluster_permissions.json,dst=/workspace/incident_cluster_permissions.json,readonly",
            ws.display()
        ),
        "KUBECONFIG=/run/nightcrier/kubeconfig".to_string(),
        "INCIDENT_ID=i-1".to_string(),
        "CLUSTER_NAME=prod".to_string(),
        "GEMINI_API_KEY".to_string(),
        "nightcrier-agent:latest".to_string(),
    ] {
        assert!(args.contains(&wanted.as_str()), "missing {wanted} in {args:?}");
    }
    assert!(
        !args.iter().any(|a| a.contains("secret-value-123")),
        "API key on the command line"
    );
    let image = args
        .iter()
        .position(|a| *a == "nightcrier-agent:latest")
        .unwrap();
    assert_eq!(
        &args[image + 1..image + 5],
        ["timeout", "--kill-after=10", "60", "gemini"]
    );
    assert!(args.contains(&"--approval-mode") && args.contains(&"--prompt"));
}

#[test]
fn run_agent_stops_a_cli_at_its_timeout_with_exit_124() {
    let env = Env::new();
    env.fake("claude", "exec sleep 30");
    let out = env.run(
        "run-agent.sh",
        &env.contract_args("claude", "1"),
        &[("AGENT_RUNTIME", "none")],
    );
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(stderr(&out).contains("timed out after 1s"));
}

#[test]
fn run_agent_without_the_cli_exits_127() {
    let env = Env::new();
    // Only the system directories: the CLI is not installed there.
    let out = Command::new(script("run-agent.sh"))
        .args(env.contract_args("goose", "60"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AGENT_RUNTIME", "none")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    assert!(stderr(&out).contains("goose CLI not found"));
}

#[test]
fn stub_agent_requires_the_contract_environment() {
    let env = Env::new();
    let out = Command::new(script("stub-agent.sh"))
        .args(env.contract_args("claude", "60"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("INCIDENT_ID is not set"));
}

#[test]
fn stub_agent_rejects_unknown_options() {
    let env = Env::new();
    let mut args = env.contract_args("claude", "60");
    args.insert(0, "--colour".into());
    let out = env.run("stub-agent.sh", &args, &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown option --colour"));
}

#[test]
fn run_agent_starts_goose_with_a_provider_from_the_key_and_its_developer_tools() {
    let env = Env::new();
    env.fake(
        "goose",
        r#"for a in "$@"; do printf '%s\n--\n' "$a"; done > goose-args
printf '%s %s %s\n' "$GOOSE_PROVIDER" "$GOOSE_MODEL" "$GOOSE_MODE" > goose-env
echo '## Summary' > output/investigation.md"#,
    );
    let mut args = env.contract_args("goose", "60");
    args[5] = "auto".into();
    let out = env.run(
        "run-agent.sh",
        &args,
        &[("AGENT_RUNTIME", "none"), ("OPENAI_API_KEY", "k")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let args = fs::read_to_string(env.path("ws/goose-args")).unwrap();
    let args: Vec<&str> = args.split("\n--\n").collect();
    assert_eq!(
        &args[..5],
        [
            "run",
            "--no-session",
            "--with-builtin",
            "developer",
            "--text"
        ]
    );
    assert!(args[5].starts_with("You are a careful SRE."), "{}", args[5]);
    assert_eq!(
        fs::read_to_string(env.path("ws/goose-env")).unwrap().trim(),
        "openai gpt-5.5 auto"
    );

    // No provider and no key: refused before anything runs.
    let out = env.run(
        "run-agent.sh",
        &env.contract_args("goose", "60"),
        &[("AGENT_RUNTIME", "none")],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("goose needs GOOSE_PROVIDER"));
}

#[test]
fn run_agent_ends_a_failed_run_with_the_clis_own_error_line() {
    let env = Env::new();
    env.fake(
        "gemini",
        r#"echo 'partial answer'
echo 'YOLO mode is enabled.' >&2
echo 'Error when talking to Gemini API: 401 key rejected' >&2
echo '    at throwErrorIfNotOK (file:///bundle.js:1:2)' >&2
echo '}' >&2
printf '\033[31mAn unexpected critical error occurred:[object Object]\033[0m\n' >&2
exit 1"#,
    );
    env.fake(
        "claude",
        r#"echo 'API Error: 400 stand-in says no'
echo 'a warning' >&2
exit 1"#,
    );
    for (cli, want) in [
        (
            "gemini",
            "gemini: Error when talking to Gemini API: 401 key rejected",
        ),
        ("claude", "claude: API Error: 400 stand-in says no"),
    ] {
        // As nightcrier runs it: stdout and stderr are files, which the script reads back.
        let (stdout, stderr_log) = (env.path("stdout.log"), env.path("stderr.log"));
        let path = format!(
            "{}:{}",
            env.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let status = Command::new(script("run-agent.sh"))
            .args(env.contract_args(cli, "60"))
            .env_clear()
            .env("PATH", path)
            .env("AGENT_RUNTIME", "none")
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr_log).unwrap())
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(1));
        let text = fs::read_to_string(&stderr_log).unwrap();
        assert_eq!(text.lines().last(), Some(want), "{text}");
        assert!(text.contains(&format!("run-agent: {cli} exited with status 1")));
    }
}

#[test]
fn stub_agent_evidence_lines_end_at_a_word_never_inside_one() {
    let env = Env::new();
    let context = format!(
        "Container api terminated with \\\"exit code 137\\\" {}",
        "OOMKilled again ".repeat(30)
    );
    fs::write(
        env.path("ws/incident.json"),
        format!(
            "{{\n  \"incident_id\": \"i-1\",\n  \"cluster\": \"prod\",\n  \"fault\": {{\n    \"faultId\": \"abc123\",\n    \
             \"faultType\": \"PodCrash\",\n    \"severity\": \"critical\",\n    \"resource\": {{\n      \"kind\": \"Pod\",\n      \
             \"name\": \"api-1\",\n      \"namespace\": \"shop\"\n    }},\n    \"context\": \"{context}\"\n  }},\n  \"status\": \"running\"\n}}\n"
        ),
    )
    .unwrap();
    let mut args = env.contract_args("claude", "30");
    let prompt = "Investigate incident i-1 on Kubernetes cluster prod. ".repeat(8);
    *args.last_mut().unwrap() = prompt.clone();
    let out = env.run("stub-agent.sh", &args, &[("STUB_AGENT_DELAY", "0")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = fs::read_to_string(env.path("ws/output/investigation.md")).unwrap();
    let line = |label: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(label))
            .unwrap_or_else(|| panic!("no {label} line in\n{report}"))
            .to_string()
    };
    for (label, full) in [
        ("- Prompt: ", prompt.as_str()),
        ("- Context: ", context.as_str()),
    ] {
        let shown = line(label);
        let kept = shown
            .strip_suffix(" …")
            .unwrap_or_else(|| panic!("{label}{shown} is not marked as cut"));
        assert!(kept.chars().count() <= 200, "{shown}");
        // What is kept is the text's start, and the text goes on with a space after it.
        assert!(
            full.starts_with(kept) && full[kept.len()..].starts_with(' '),
            "{label}{shown}"
        );
    }
    assert_eq!(
        line("- Fault: "),
        "PodCrash (critical) on Pod shop/api-1, faultId abc123"
    );
}
