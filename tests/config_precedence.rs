//! Defaults, the single-cluster form, and precedence: flags > NIGHTCRIER_* environment
//! > file > defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::LevelFilter;
use nightcrier::config::{
    load, parse_str, AgentConfig, BreakerConfig, Config, Confinement, ConnectionConfig,
    DedupConfig, FlagOverrides, HealthConfig, LoadOptions, LogFormat, OverflowPolicy,
    PreflightConfig, QueueConfig, ReconnectConfig, Severity, Shard, SlackConfig, SubscribeMode,
    WorkspaceConfig,
};

const MINIMAL: &str =
    "[[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:8080/mcp\"\n";

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_with(text: &str, env_pairs: &[(&str, &str)], flags: FlagOverrides) -> Config {
    parse_str(text, Path::new("nightcrier.toml"), &env(env_pairs), &flags).unwrap()
}

#[test]
fn a_minimal_file_yields_every_default() {
    let config = load_with(MINIMAL, &[], FlagOverrides::default());
    assert_eq!(config.source, PathBuf::from("nightcrier.toml"));
    assert_eq!(config.log_level, LevelFilter::Info);
    assert_eq!(config.log_format, LogFormat::Text);
    assert_eq!(config.subscribe_mode, SubscribeMode::Faults);
    assert_eq!(config.severity_threshold, Severity::Warning);
    assert_eq!(config.workspace_root, PathBuf::from("./incidents"));
    assert_eq!(config.shard, None);
    assert_eq!(config.shutdown_timeout, Duration::from_secs(30));
    assert_eq!(
        config.reconnect,
        ReconnectConfig {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
            stable_after: Duration::from_secs(30),
        }
    );
    assert_eq!(
        config.connection,
        ConnectionConfig {
            connect_timeout: Duration::from_secs(10),
            read_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            subscription_audit_interval: Duration::from_secs(60),
            tcp_keepalive: Duration::from_secs(60),
            control_idle_timeout: Duration::from_secs(5),
            max_event_bytes: 1_048_576,
            max_header_bytes: 16_384,
            batch_window: Some(Duration::from_millis(250)),
        }
    );
    assert_eq!(
        config.queue,
        QueueConfig {
            cluster_queue_size: 100,
            global_queue_size: 1000,
            overflow_policy: OverflowPolicy::DropOldest,
        }
    );
    assert_eq!(
        config.dedup,
        DedupConfig {
            window: Duration::from_secs(300),
            max_entries: 10_000,
        }
    );
    assert_eq!(
        config.agent,
        AgentConfig {
            script: PathBuf::from("scripts/run-agent.sh"),
            cli: "claude".into(),
            model: "sonnet".into(),
            allowed_tools: "Read,Grep,Glob,Bash,Write".into(),
            timeout: Duration::from_secs(600),
            kill_grace: Duration::from_secs(10),
            max_concurrent_agents: 2,
            system_prompt_file: None,
            confinement: Confinement::Auto,
            env_allow: vec![],
            confine_read_only: vec![],
            max_output_bytes: 1024 * 1024,
        }
    );
    assert_eq!(
        config.workspace,
        WorkspaceConfig {
            max_age: Duration::from_secs(30 * 24 * 60 * 60),
            max_incidents: 1000,
            max_bytes: 1024 * 1024 * 1024,
            sweep_interval: Duration::from_secs(600),
        }
    );
    assert_eq!(
        config.breaker,
        BreakerConfig {
            failure_threshold: 3,
            cooldown: Duration::from_secs(300),
            global_failure_threshold: 5,
        }
    );
    assert_eq!(
        config.preflight,
        PreflightConfig {
            kubectl: "kubectl".into(),
            timeout: Duration::from_secs(10),
            require_read_only: false,
        }
    );
    assert_eq!(
        config.health,
        HealthConfig {
            enabled: true,
            listen: "127.0.0.1:8080".parse().unwrap(),
            publish_interval: Duration::from_secs(1),
        }
    );
    assert_eq!(
        config.slack,
        SlackConfig {
            webhook_url: None,
            ca_file: None,
            notify_on_agent_failure: false,
            max_attempts: 5,
            bot_token: None,
            channel: None,
            api_url: "https://slack.com/api".to_string(),
            channel_interval: Duration::from_secs(1),
            routes: Vec::new(),
            proxy: None,
            resolved_check_interval: Duration::from_secs(30),
        }
    );
    let mut expected = Config::defaults(PathBuf::from("nightcrier.toml"));
    expected.clusters = config.clusters.clone();
    assert_eq!(config, expected);
}

#[test]
fn cluster_defaults_are_enabled_priority_zero_and_no_triage() {
    let config = load_with(MINIMAL, &[], FlagOverrides::default());
    let c = &config.clusters[0];
    assert_eq!(c.name, "a");
    assert!(c.enabled);
    assert_eq!(c.priority, 0);
    assert_eq!(c.environment, None);
    assert!(c.labels.is_empty());
    assert_eq!(c.severity_threshold, None);
    assert_eq!(c.mcp.api_key, None);
    assert_eq!(c.mcp.ca_file, None);
    assert!(!c.mcp.insecure_skip_tls_verify);
    assert!(!c.triage.enabled);
    assert_eq!(c.triage.kubeconfig, None);
    assert!(!c.triage.allow_secrets_access);
    assert_eq!(c.triage.model, None);
    assert_eq!(c.mcp.endpoint.path, "/mcp");
}

#[test]
fn every_setting_can_be_written_in_the_file() {
    let text = format!(
        r#"
log_level = "debug"
subscribe_mode = "events"
severity_threshold = "error"
workspace_root = "/var/lib/nightcrier"
shard = "1/4"
shutdown_timeout = "45s"
{MINIMAL}
[reconnect]
initial = "500ms"
max = "2m"
multiplier = 3
jitter = 0.25
stable_after = "1m"
[connection]
connect_timeout = "3s"
read_timeout = "20s"
ping_interval = "15s"
tcp_keepalive = "2m"
max_event_bytes = 2048
max_header_bytes = 8192
[queue]
cluster_queue_size = 10
global_queue_size = 20
overflow_policy = "reject"
[dedup]
window = "1h"
max_entries = 50
[agent]
script = "/opt/run.sh"
cli = "goose"
model = "opus"
allowed_tools = "Read"
timeout = "5m"
kill_grace = "2s"
max_concurrent_agents = 8
[breaker]
failure_threshold = 2
cooldown = "10m"
global_failure_threshold = 9
[preflight]
kubectl = "/usr/bin/kubectl"
timeout = "4s"
[health]
enabled = true
listen = "[::1]:9000"
publish_interval = "250ms"
[slack]
webhook_url = "https://hooks.example/services/T/B/X"
notify_on_agent_failure = true
max_attempts = 2
"#
    );
    let c = load_with(&text, &[], FlagOverrides::default());
    assert_eq!(c.log_level, LevelFilter::Debug);
    assert_eq!(c.subscribe_mode, SubscribeMode::Events);
    assert_eq!(c.severity_threshold, Severity::Error);
    assert_eq!(c.workspace_root, PathBuf::from("/var/lib/nightcrier"));
    assert_eq!(c.shard, Some(Shard { index: 1, count: 4 }));
    assert_eq!(c.shutdown_timeout, Duration::from_secs(45));
    assert_eq!(c.reconnect.initial, Duration::from_millis(500));
    assert_eq!(c.reconnect.max, Duration::from_secs(120));
    assert_eq!(c.reconnect.multiplier, 3.0);
    assert_eq!(c.reconnect.jitter, 0.25);
    assert_eq!(c.reconnect.stable_after, Duration::from_secs(60));
    assert_eq!(c.connection.tcp_keepalive, Duration::from_secs(120));
    assert_eq!(c.connection.max_event_bytes, 2048);
    assert_eq!(c.connection.max_header_bytes, 8192);
    assert_eq!(c.queue.overflow_policy, OverflowPolicy::RejectNewest);
    assert_eq!(c.queue.global_queue_size, 20);
    assert_eq!(c.dedup.window, Duration::from_secs(3600));
    assert_eq!(c.dedup.max_entries, 50);
    assert_eq!(c.agent.script, PathBuf::from("/opt/run.sh"));
    assert_eq!(c.agent.cli, "goose");
    assert_eq!(c.agent.max_concurrent_agents, 8);
    assert_eq!(c.agent.kill_grace, Duration::from_secs(2));
    assert_eq!(c.breaker.global_failure_threshold, 9);
    assert_eq!(c.preflight.kubectl, "/usr/bin/kubectl");
    assert_eq!(c.health.listen, "[::1]:9000".parse::<SocketAddr>().unwrap());
    assert_eq!(c.health.publish_interval, Duration::from_millis(250));
    assert!(c.slack.notify_on_agent_failure);
    assert_eq!(c.slack.max_attempts, 2);
    assert_eq!(
        c.slack.webhook_url.as_ref().unwrap().expose(),
        "https://hooks.example/services/T/B/X"
    );
}

#[test]
fn single_cluster_form_becomes_one_cluster_named_default() {
    let text = "mcp_endpoint = \"https://mcp.example/mcp\"\napi_key = \"k\"\n";
    let config = load_with(text, &[], FlagOverrides::default());
    assert_eq!(config.clusters.len(), 1);
    let c = &config.clusters[0];
    assert_eq!(c.name, "default");
    assert!(c.enabled);
    assert!(c.mcp.endpoint.tls);
    assert_eq!(c.mcp.api_key.as_ref().unwrap().expose(), "k");
    assert!(!c.triage.enabled);
}

#[test]
fn single_cluster_with_kubeconfig_enables_triage_by_default() {
    let text =
        "mcp_endpoint = \"http://h/mcp\"\nkubeconfig = \"kc.yaml\"\ncluster_name = \"edge-7\"\n";
    let config = load_with(text, &[], FlagOverrides::default());
    let c = &config.clusters[0];
    assert_eq!(c.name, "edge-7");
    assert!(c.triage_ready());
    assert_eq!(c.triage.kubeconfig, Some(PathBuf::from("kc.yaml")));

    let off = format!("{text}triage_enabled = false\n");
    let config = load_with(&off, &[], FlagOverrides::default());
    assert!(!config.clusters[0].triage.enabled);
}

#[test]
fn single_cluster_form_can_come_entirely_from_the_environment() {
    let config = load_with(
        "",
        &[
            ("NIGHTCRIER_MCP_ENDPOINT", "http://10.0.0.1:8080/mcp"),
            ("NIGHTCRIER_KUBECONFIG", "kc.yaml"),
        ],
        FlagOverrides::default(),
    );
    let c = &config.clusters[0];
    assert_eq!(c.mcp.endpoint.host, "10.0.0.1");
    assert!(c.triage_ready());
}

#[test]
fn single_cluster_bad_name_is_refused() {
    let text = "mcp_endpoint = \"http://h/mcp\"\ncluster_name = \"a/b\"\n";
    let errors = parse_str(text, Path::new("f.toml"), &[], &FlagOverrides::default())
        .unwrap_err()
        .0;
    assert_eq!(errors[0].field, "cluster_name");
    assert!(errors[0].message.contains("not safe"));
}

fn flags_all() -> FlagOverrides {
    FlagOverrides {
        log_level: Some("trace".into()),
        log_format: Some("json".into()),
        health_listen: Some("127.0.0.1:7003".into()),
        admin_listen: Some("127.0.0.1:7103".into()),
        workspace_root: Some(PathBuf::from("/flag/ws")),
        severity_threshold: Some("critical".into()),
        shard: Some("2/3".into()),
        subscribe_mode: Some("events".into()),
    }
}

const ENV_ALL: &[(&str, &str)] = &[
    ("NIGHTCRIER_LOG_LEVEL", "debug"),
    ("NIGHTCRIER_LOG_FORMAT", "text"),
    ("NIGHTCRIER_HEALTH_LISTEN", "127.0.0.1:7002"),
    ("NIGHTCRIER_ADMIN_LISTEN", "127.0.0.1:7102"),
    ("NIGHTCRIER_WORKSPACE_ROOT", "/env/ws"),
    ("NIGHTCRIER_SEVERITY_THRESHOLD", "error"),
    ("NIGHTCRIER_SHARD", "1/3"),
    ("NIGHTCRIER_SUBSCRIBE_MODE", "faults"),
    ("NIGHTCRIER_MAX_CONCURRENT_AGENTS", "7"),
    ("NIGHTCRIER_AGENT_MODEL", "env-model"),
    ("NIGHTCRIER_SLACK_WEBHOOK_URL", "https://hooks.example/env"),
];

fn file_all() -> String {
    format!(
        "log_level = \"warn\"\nlog_format = \"json\"\nseverity_threshold = \"info\"\nworkspace_root = \"/file/ws\"\n\
         shard = \"0/3\"\nsubscribe_mode = \"faults\"\n{MINIMAL}\
         [health]\nlisten = \"127.0.0.1:7001\"\n[admin]\nlisten = \"127.0.0.1:7101\"\n[agent]\nmax_concurrent_agents = 5\nmodel = \"file-model\"\n\
         [slack]\nwebhook_url_env = \"HOOK\"\n"
    )
}

#[test]
fn defaults_apply_when_nothing_else_is_set() {
    let c = load_with(MINIMAL, &[], FlagOverrides::default());
    assert_eq!(c.log_level, LevelFilter::Info);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.severity_threshold, Severity::Warning);
    assert_eq!(c.workspace_root, PathBuf::from("./incidents"));
    assert_eq!(
        c.health.listen,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.agent.max_concurrent_agents, 2);
}

#[test]
fn file_beats_defaults() {
    let c = load_with(
        &file_all(),
        &[("HOOK", "https://hooks.example/file")],
        FlagOverrides::default(),
    );
    assert_eq!(c.log_level, LevelFilter::Warn);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.severity_threshold, Severity::Info);
    assert_eq!(c.workspace_root, PathBuf::from("/file/ws"));
    assert_eq!(c.shard, Some(Shard { index: 0, count: 3 }));
    assert_eq!(
        c.health.listen,
        "127.0.0.1:7001".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.agent.max_concurrent_agents, 5);
    assert_eq!(c.admin.listen, Some("127.0.0.1:7101".parse().unwrap()));
    assert_eq!(c.agent.model, "file-model");
    assert_eq!(
        c.slack.webhook_url.unwrap().expose(),
        "https://hooks.example/file"
    );
}

#[test]
fn environment_beats_file() {
    let c = load_with(&file_all(), ENV_ALL, FlagOverrides::default());
    assert_eq!(c.log_level, LevelFilter::Debug);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.severity_threshold, Severity::Error);
    assert_eq!(c.workspace_root, PathBuf::from("/env/ws"));
    assert_eq!(c.shard, Some(Shard { index: 1, count: 3 }));
    assert_eq!(c.subscribe_mode, SubscribeMode::Faults);
    assert_eq!(
        c.health.listen,
        "127.0.0.1:7002".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.agent.max_concurrent_agents, 7);
    assert_eq!(c.admin.listen, Some("127.0.0.1:7102".parse().unwrap()));
    assert_eq!(c.agent.model, "env-model");
    // The variable replaces the file's webhook_url_env, whose HOOK is not even set.
    assert_eq!(
        c.slack.webhook_url.unwrap().expose(),
        "https://hooks.example/env"
    );
}

#[test]
fn flags_beat_environment() {
    let c = load_with(&file_all(), ENV_ALL, flags_all());
    assert_eq!(c.log_level, LevelFilter::Trace);
    assert_eq!(c.log_format, LogFormat::Json);
    assert_eq!(c.severity_threshold, Severity::Critical);
    assert_eq!(c.workspace_root, PathBuf::from("/flag/ws"));
    assert_eq!(c.shard, Some(Shard { index: 2, count: 3 }));
    assert_eq!(c.subscribe_mode, SubscribeMode::Events);
    assert_eq!(
        c.health.listen,
        "127.0.0.1:7003".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(c.admin.listen, Some("127.0.0.1:7103".parse().unwrap()));
}

#[test]
fn override_paths_stay_relative_to_the_working_directory() {
    let text = format!("workspace_root = \"ws\"\n{MINIMAL}");
    let from_file = parse_str(
        &text,
        Path::new("conf/n.toml"),
        &[],
        &FlagOverrides::default(),
    )
    .unwrap();
    assert_eq!(from_file.workspace_root, PathBuf::from("conf/ws"));
    let from_env = parse_str(
        &text,
        Path::new("conf/n.toml"),
        &env(&[("NIGHTCRIER_WORKSPACE_ROOT", "ws")]),
        &FlagOverrides::default(),
    )
    .unwrap();
    assert_eq!(from_env.workspace_root, PathBuf::from("ws"));
}

#[test]
fn health_listen_off_disables_the_server() {
    let c = load_with(
        MINIMAL,
        &[("NIGHTCRIER_HEALTH_LISTEN", "off")],
        FlagOverrides::default(),
    );
    assert!(!c.health.enabled);
    let flags = FlagOverrides {
        health_listen: Some("off".into()),
        ..FlagOverrides::default()
    };
    let c = load_with(
        MINIMAL,
        &[("NIGHTCRIER_HEALTH_LISTEN", "127.0.0.1:1")],
        flags,
    );
    assert!(!c.health.enabled);
}

#[test]
fn health_address_from_a_flag_enables_a_server_the_file_disabled() {
    let text = format!("{MINIMAL}[health]\nenabled = false\n");
    assert!(
        !load_with(&text, &[], FlagOverrides::default())
            .health
            .enabled
    );
    let flags = FlagOverrides {
        health_listen: Some("127.0.0.1:0".into()),
        ..FlagOverrides::default()
    };
    let c = load_with(&text, &[], flags);
    assert!(c.health.enabled);
    assert_eq!(c.health.listen.port(), 0);
}

#[test]
fn bad_flag_value_names_the_flag() {
    let flags = FlagOverrides {
        severity_threshold: Some("sev0".into()),
        ..FlagOverrides::default()
    };
    let errors = parse_str(MINIMAL, Path::new("f.toml"), &[], &flags).unwrap_err();
    let text = errors.to_string();
    assert!(text.contains("--severity-threshold"), "{text}");
    assert!(text.contains("field severity_threshold"), "{text}");
}

#[test]
fn empty_environment_variables_are_ignored() {
    let c = load_with(
        MINIMAL,
        &[("NIGHTCRIER_LOG_LEVEL", "")],
        FlagOverrides::default(),
    );
    assert_eq!(c.log_level, LevelFilter::Info);
}

#[test]
fn load_finds_the_file_through_nightcrier_config() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("from-env.toml");
    std::fs::write(&path, MINIMAL).unwrap();
    let opts = LoadOptions {
        config_path: None,
        env: env(&[("NIGHTCRIER_CONFIG", path.to_str().unwrap())]),
        flags: FlagOverrides::default(),
    };
    assert_eq!(load(&opts).unwrap().source, path);
}

#[test]
fn config_flag_beats_nightcrier_config() {
    let dir = tempfile::tempdir().unwrap();
    let flag_path = dir.path().join("flag.toml");
    std::fs::write(&flag_path, MINIMAL).unwrap();
    let opts = LoadOptions {
        config_path: Some(flag_path.clone()),
        env: env(&[("NIGHTCRIER_CONFIG", "/nonexistent/env.toml")]),
        flags: FlagOverrides::default(),
    };
    assert_eq!(load(&opts).unwrap().source, flag_path);
}

#[test]
fn load_reports_a_missing_file_by_name() {
    let opts = LoadOptions {
        config_path: Some(PathBuf::from("/nonexistent/n.toml")),
        ..LoadOptions::default()
    };
    let errors = load(&opts).unwrap_err();
    assert_eq!(errors.0[0].file, PathBuf::from("/nonexistent/n.toml"));
    assert!(errors.to_string().contains("cannot read file"));
}
