//! Every validation rule of the configuration: each error names the file, the
//! cluster and the field, with the line and column where the file has one.

use std::path::{Path, PathBuf};

use nightcrier::config::{parse_str, Config, ConfigError, FlagOverrides, Severity};

const FILE: &str = "conf/test.toml";

fn parse_env(text: &str, env: &[(&str, &str)]) -> Result<Config, Vec<ConfigError>> {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_str(text, Path::new(FILE), &env, &FlagOverrides::default()).map_err(|e| e.0)
}

fn parse(text: &str) -> Result<Config, Vec<ConfigError>> {
    parse_env(text, &[])
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(errors) => errors,
    }
}

/// The one error about `field`, checked to name the file, the cluster and a position.
fn error_for(errors: &[ConfigError], field: &str) -> ConfigError {
    let matching: Vec<_> = errors.iter().filter(|e| e.field == field).collect();
    assert_eq!(matching.len(), 1, "one error for {field} in {errors:#?}");
    let error = matching[0].clone();
    assert_eq!(error.file, PathBuf::from(FILE));
    error
}

fn assert_rule(text: &str, cluster: Option<&str>, field: &str, message_part: &str) -> ConfigError {
    let errors = errors(text);
    let error = error_for(&errors, field);
    assert_eq!(error.cluster.as_deref(), cluster, "{error}");
    assert!(
        error.message.contains(message_part),
        "{error} should contain {message_part:?}"
    );
    assert!(error.line_col.is_some(), "{error} has no position");
    let shown = error.to_string();
    assert!(shown.starts_with(FILE), "{shown}");
    if let Some(cluster) = cluster {
        assert!(shown.contains(cluster), "{shown}");
    }
    error
}

fn cluster(name: &str, extra: &str) -> String {
    format!("[[clusters]]\nname = \"{name}\"\n{extra}\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:8080/mcp\"\n")
}

fn with_mcp(name: &str, mcp: &str) -> String {
    format!("[[clusters]]\nname = \"{name}\"\n[clusters.mcp]\n{mcp}\n")
}

#[test]
fn a_valid_two_cluster_file_loads() {
    let text = format!("{}{}", cluster("a", ""), cluster("b", "priority = 2"));
    let config = parse(&text).unwrap();
    assert_eq!(config.clusters.len(), 2);
    assert_eq!(config.clusters[1].priority, 2);
}

#[test]
fn unknown_cluster_key_suggests_the_close_one() {
    let text = cluster("eu-1", "prority = 3");
    let e = assert_rule(
        &text,
        Some("eu-1"),
        "clusters[0].prority",
        "did you mean `priority`?",
    );
    assert_eq!(e.line_col, Some((3, 1)));
    assert!(e
        .to_string()
        .contains("cluster \"eu-1\": field prority: unknown key"));
}

#[test]
fn unknown_global_key_suggests_the_close_one() {
    let text = format!("log_levle = \"info\"\n{}", cluster("a", ""));
    assert_rule(&text, None, "log_levle", "did you mean `log_level`?");
}

#[test]
fn unknown_key_in_a_section_is_reported_with_its_path() {
    let text = format!("{}[queue]\nglobal_queue_sise = 5\n", cluster("a", ""));
    assert_rule(
        &text,
        None,
        "queue.global_queue_sise",
        "did you mean `global_queue_size`?",
    );
}

#[test]
fn key_in_the_wrong_table_names_its_section() {
    let text = format!("{}\n", cluster("a", "endpoint = \"http://x\"")).replace(
        "[[clusters]]\nname = \"a\"\nendpoint",
        "[[clusters]]\nname = \"a\"\nendpoint",
    );
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].endpoint",
        "belongs in [clusters.mcp]",
    );
}

#[test]
fn unknown_key_far_from_any_allowed_key_has_no_suggestion() {
    let text = cluster("a", "colour = \"red\"");
    let e = assert_rule(&text, Some("a"), "clusters[0].colour", "unknown key");
    assert_eq!(e.message, "unknown key");
}

#[test]
fn duplicate_cluster_names_are_refused() {
    let text = format!("{}{}", cluster("eu-1", ""), cluster("eu-1", ""));
    let e = assert_rule(
        &text,
        Some("clusters[1]"),
        "clusters[1].name",
        "duplicate cluster name \"eu-1\"",
    );
    assert!(e.message.contains("clusters[0]"));
}

#[test]
fn names_differing_only_in_case_are_duplicates() {
    let text = format!("{}{}", cluster("EU-1", ""), cluster("eu-1", ""));
    assert_rule(&text, Some("clusters[1]"), "clusters[1].name", "duplicate");
}

#[test]
fn unsafe_cluster_names_are_refused() {
    for name in [
        "../etc",
        "a/b",
        ".",
        "..",
        "-x",
        "has space",
        &"n".repeat(64),
    ] {
        let text = cluster(name, "");
        assert_rule(
            &text,
            Some("clusters[0]"),
            "clusters[0].name",
            "not safe as a file name",
        );
    }
}

#[test]
fn cluster_without_name_is_refused_and_shown_by_index() {
    let text = "[[clusters]]\n[clusters.mcp]\nendpoint = \"http://h/\"\n";
    let e = assert_rule(
        text,
        Some("clusters[0]"),
        "clusters[0].name",
        "missing required key `name`",
    );
    assert_eq!(e.line_col, Some((1, 1)));
}

#[test]
fn cluster_without_endpoint_is_refused() {
    let text = "[[clusters]]\nname = \"a\"\n";
    assert_rule(
        text,
        Some("a"),
        "clusters[0].mcp.endpoint",
        "missing required key `endpoint`",
    );
    let text = "[[clusters]]\nname = \"a\"\n[clusters.mcp]\napi_key = \"k\"\n";
    let e = assert_rule(
        text,
        Some("a"),
        "clusters[0].mcp.endpoint",
        "missing required key",
    );
    assert_eq!(e.line_col, Some((3, 1)));
}

#[test]
fn non_http_endpoint_is_refused() {
    let text = with_mcp("eu-1", "endpoint = \"ftp://h/mcp\"");
    let e = assert_rule(
        &text,
        Some("eu-1"),
        "clusters[0].mcp.endpoint",
        "scheme \"ftp\" is not http or https",
    );
    assert_eq!(e.line_col, Some((4, 12)));
    assert_eq!(
        e.to_string(),
        "conf/test.toml:4:12: cluster \"eu-1\": field mcp.endpoint: scheme \"ftp\" is not http or https"
    );
}

#[test]
fn endpoint_without_host_is_refused() {
    let text = with_mcp("a", "endpoint = \"http:///mcp\"");
    assert_rule(&text, Some("a"), "clusters[0].mcp.endpoint", "no host");
}

#[test]
fn endpoint_with_bad_port_is_refused() {
    let text = with_mcp("a", "endpoint = \"http://h:99999/mcp\"");
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.endpoint",
        "port \"99999\"",
    );
}

#[test]
fn endpoint_with_credentials_is_refused_without_echoing_them() {
    let text = with_mcp("a", "endpoint = \"https://bob:hunter2@h/mcp\"");
    let e = assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.endpoint",
        "credentials in the URL",
    );
    assert!(!e.to_string().contains("hunter2"));
}

#[test]
fn endpoint_of_the_wrong_type_is_refused() {
    let text = with_mcp("a", "endpoint = 8080");
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.endpoint",
        "expected a string, found integer",
    );
}

#[test]
fn mcp_endpoint_together_with_clusters_is_refused() {
    let text = format!("mcp_endpoint = \"http://h/mcp\"\n{}", cluster("a", ""));
    let e = assert_rule(
        &text,
        None,
        "mcp_endpoint",
        "cannot be combined with [[clusters]]",
    );
    assert_eq!(e.line_col, Some((1, 16)));
}

#[test]
fn clusters_together_with_mcp_endpoint_from_the_environment_is_refused() {
    let text = cluster("a", "");
    let errors = parse_env(&text, &[("NIGHTCRIER_MCP_ENDPOINT", "http://h/mcp")]).unwrap_err();
    let e = error_for(&errors, "mcp_endpoint");
    assert!(e.message.contains("NIGHTCRIER_MCP_ENDPOINT"), "{e}");
    assert!(e.message.contains("cannot be combined"), "{e}");
}

#[test]
fn single_cluster_keys_together_with_clusters_are_refused() {
    let text = format!(
        "kubeconfig = \"kc\"\ntriage_enabled = true\n{}",
        cluster("a", "")
    );
    assert_rule(&text, None, "kubeconfig", "single-cluster form");
    assert_rule(&text, None, "triage_enabled", "single-cluster form");
}

#[test]
fn neither_mcp_endpoint_nor_clusters_is_refused() {
    let errors = errors("log_level = \"info\"\n");
    let e = error_for(&errors, "mcp_endpoint");
    assert!(e.message.contains("no cluster configured"), "{e}");
    assert_eq!(e.file, PathBuf::from(FILE));
}

#[test]
fn empty_file_is_refused_as_having_no_cluster() {
    let e = error_for(&errors(""), "mcp_endpoint");
    assert!(e.message.contains("no cluster configured"));
}

#[test]
fn inline_key_and_key_file_together_are_refused() {
    let text = with_mcp(
        "a",
        "endpoint = \"http://h/\"\napi_key = \"k\"\napi_key_file = \"k.txt\"",
    );
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.api_key_file",
        "set only one of api_key, api_key_file and api_key_env",
    );
}

#[test]
fn key_file_and_key_env_together_are_refused() {
    let text = with_mcp(
        "a",
        "endpoint = \"http://h/\"\napi_key_env = \"K\"\napi_key_file = \"k.txt\"",
    );
    let errors = errors(&text);
    // Reported on the later of the two in the table's key order.
    let e = errors
        .iter()
        .find(|e| e.message.contains("set only one of"))
        .expect("conflict reported");
    assert_eq!(e.cluster.as_deref(), Some("a"));
    assert!(e.field.starts_with("clusters[0].mcp.api_key_"));
}

#[test]
fn unreadable_api_key_file_is_refused() {
    let text = with_mcp(
        "a",
        "endpoint = \"http://h/\"\napi_key_file = \"no/such/key\"",
    );
    let e = assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.api_key_file",
        "cannot read",
    );
    // Relative to the configuration file's directory.
    assert!(e.message.contains("conf/no/such/key"), "{e}");
}

#[test]
fn empty_api_key_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("key"), "\n").unwrap();
    let text = with_mcp("a", "endpoint = \"http://h/\"\napi_key_file = \"key\"");
    let source = dir.path().join("c.toml");
    let errors = parse_str(&text, &source, &[], &FlagOverrides::default())
        .unwrap_err()
        .0;
    let e = errors
        .iter()
        .find(|e| e.field == "clusters[0].mcp.api_key_file")
        .unwrap();
    assert!(e.message.contains("is empty"), "{e}");
    assert_eq!(e.file, source);
}

#[test]
fn api_key_file_is_read_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/key"), "s3cr3t\n").unwrap();
    let text = with_mcp(
        "a",
        "endpoint = \"http://h/\"\napi_key_file = \"secrets/key\"",
    );
    let config = parse_str(
        &text,
        &dir.path().join("c.toml"),
        &[],
        &FlagOverrides::default(),
    )
    .unwrap();
    let key = config.clusters[0].mcp.api_key.as_ref().unwrap();
    assert_eq!(key.expose(), "s3cr3t");
}

#[test]
fn api_key_env_that_is_not_set_is_refused() {
    let text = with_mcp("a", "endpoint = \"http://h/\"\napi_key_env = \"EU1_KEY\"");
    let e = assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.api_key_env",
        "\"EU1_KEY\" is not set",
    );
    assert!(e.message.contains("environment variable"));
}

#[test]
fn api_key_env_reads_the_passed_environment() {
    let text = with_mcp("a", "endpoint = \"http://h/\"\napi_key_env = \"EU1_KEY\"");
    let config = parse_env(&text, &[("EU1_KEY", "tok")]).unwrap();
    assert_eq!(
        config.clusters[0].mcp.api_key.as_ref().unwrap().expose(),
        "tok"
    );
}

#[test]
fn api_key_with_a_line_break_is_refused() {
    let text = with_mcp("a", "endpoint = \"http://h/\"\napi_key = \"abc\\ndef\"");
    let e = assert_rule(&text, Some("a"), "clusters[0].mcp.api_key", "line break");
    assert!(!e.to_string().contains("abc"));
}

#[test]
fn triage_enabled_without_kubeconfig_is_refused() {
    let text = format!("{}[clusters.triage]\nenabled = true\n", cluster("a", ""));
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].triage.enabled",
        "no kubeconfig",
    );
}

#[test]
fn single_cluster_triage_enabled_without_kubeconfig_is_refused() {
    let text = "mcp_endpoint = \"http://h/mcp\"\ntriage_enabled = true\n";
    assert_rule(text, Some("default"), "triage_enabled", "no kubeconfig");
}

#[test]
fn unknown_global_severity_is_refused() {
    let text = format!("severity_threshold = \"urgent\"\n{}", cluster("a", ""));
    let e = assert_rule(
        &text,
        None,
        "severity_threshold",
        "unknown severity \"urgent\"",
    );
    assert!(e.message.contains("debug, info, warning, error, critical"));
}

#[test]
fn unknown_cluster_severity_is_refused() {
    let text = cluster("a", "severity_threshold = \"sev1\"");
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].severity_threshold",
        "unknown severity",
    );
}

#[test]
fn severities_are_accepted_in_any_case() {
    let text = format!(
        "severity_threshold = \"CRITICAL\"\n{}",
        cluster("a", "severity_threshold = \"Info\"")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.severity_threshold, Severity::Critical);
    assert_eq!(config.clusters[0].severity_threshold, Some(Severity::Info));
}

#[test]
fn unknown_subscribe_mode_is_refused() {
    let text = format!("subscribe_mode = \"everything\"\n{}", cluster("a", ""));
    assert_rule(&text, None, "subscribe_mode", "unknown subscribe mode");
}

#[test]
fn unknown_overflow_policy_is_refused() {
    let text = format!(
        "{}[queue]\noverflow_policy = \"oldest\"\n",
        cluster("a", "")
    );
    assert_rule(
        &text,
        None,
        "queue.overflow_policy",
        "unknown overflow policy",
    );
}

#[test]
fn zero_queue_size_is_refused() {
    let text = format!("{}[queue]\ncluster_queue_size = 0\n", cluster("a", ""));
    assert_rule(
        &text,
        None,
        "queue.cluster_queue_size",
        "must be from 1 to 1000000, got 0",
    );
}

#[test]
fn absurd_queue_size_is_refused() {
    let text = format!("{}[queue]\nglobal_queue_size = 1000001\n", cluster("a", ""));
    assert_rule(&text, None, "queue.global_queue_size", "got 1000001");
}

#[test]
fn cluster_queue_larger_than_global_queue_is_refused() {
    let text = format!("{}[queue]\nglobal_queue_size = 50\n", cluster("a", ""));
    let e = assert_rule(
        &text,
        None,
        "queue.global_queue_size",
        "is larger than global_queue_size",
    );
    assert!(
        e.message.contains("(100)") && e.message.contains("(50)"),
        "{e}"
    );
}

#[test]
fn zero_timeout_is_refused() {
    let text = format!("{}[connection]\nread_timeout = \"0s\"\n", cluster("a", ""));
    assert_rule(&text, None, "connection.read_timeout", "greater than zero");
    let text = format!("{}[agent]\ntimeout = 0\n", cluster("a", ""));
    assert_rule(&text, None, "agent.timeout", "greater than zero");
}

#[test]
fn timeout_over_a_day_is_refused() {
    let text = format!("shutdown_timeout = \"25h\"\n{}", cluster("a", ""));
    assert_rule(&text, None, "shutdown_timeout", "24h limit");
}

#[test]
fn malformed_duration_is_refused() {
    let text = format!("{}[dedup]\nwindow = \"5 minutes\"\n", cluster("a", ""));
    assert_rule(&text, None, "dedup.window", "duration");
    let text = format!("{}[dedup]\nwindow = true\n", cluster("a", ""));
    assert_rule(&text, None, "dedup.window", "expected a duration");
}

#[test]
fn reconnect_initial_longer_than_max_is_refused() {
    let text = format!(
        "{}[reconnect]\ninitial = \"2m\"\nmax = \"1m\"\n",
        cluster("a", "")
    );
    assert_rule(
        &text,
        None,
        "reconnect.max",
        "initial backoff 2m is longer than max 1m",
    );
}

#[test]
fn reconnect_multiplier_outside_one_to_ten_is_refused() {
    for value in ["0.5", "11", "0"] {
        let text = format!("{}[reconnect]\nmultiplier = {value}\n", cluster("a", ""));
        assert_rule(&text, None, "reconnect.multiplier", "must be from 1 to 10");
    }
}

#[test]
fn reconnect_jitter_outside_zero_to_one_is_refused() {
    for value in ["-0.1", "1.5"] {
        let text = format!("{}[reconnect]\njitter = {value}\n", cluster("a", ""));
        assert_rule(&text, None, "reconnect.jitter", "must be from 0 to 1");
    }
    let text = format!("{}[reconnect]\njitter = nan\n", cluster("a", ""));
    assert_rule(&text, None, "reconnect.jitter", "finite");
}

#[test]
fn max_concurrent_agents_outside_one_to_256_is_refused() {
    for value in ["0", "257"] {
        let text = format!(
            "{}[agent]\nmax_concurrent_agents = {value}\n",
            cluster("a", "")
        );
        assert_rule(
            &text,
            None,
            "agent.max_concurrent_agents",
            "must be from 1 to 256",
        );
    }
}

#[test]
fn max_event_bytes_outside_1kib_to_64mib_is_refused() {
    for value in ["1023", "67108865"] {
        let text = format!(
            "{}[connection]\nmax_event_bytes = {value}\n",
            cluster("a", "")
        );
        assert_rule(
            &text,
            None,
            "connection.max_event_bytes",
            "must be from 1024 to 67108864",
        );
    }
}

#[test]
fn batch_window_is_off_or_above_zero_and_at_most_a_second() {
    let window = |value: &str| {
        let text = format!("{}[connection]\nbatch_window = {value}\n", cluster("a", ""));
        parse(&text).map(|c| c.connection.batch_window)
    };
    use std::time::Duration;
    assert_eq!(window("\"off\""), Ok(None));
    assert_eq!(window("\"20ms\""), Ok(Some(Duration::from_millis(20))));
    assert_eq!(window("1"), Ok(Some(Duration::from_secs(1))));
    for value in ["\"0s\"", "\"1001ms\"", "2"] {
        let text = format!("{}[connection]\nbatch_window = {value}\n", cluster("a", ""));
        assert_rule(
            &text,
            None,
            "connection.batch_window",
            "must be \"off\" or above zero and at most 1s",
        );
    }
    let text = format!(
        "{}[connection]\nbatch_window = \"soon\"\n",
        cluster("a", "")
    );
    assert_rule(&text, None, "connection.batch_window", "or \"off\"");
}

#[test]
fn integer_too_large_for_64_bits_is_refused() {
    let text = format!(
        "{}[queue]\nglobal_queue_size = 0xffffffffffffffff\n",
        cluster("a", "")
    );
    assert_rule(&text, None, "queue.global_queue_size", "too large");
}

#[test]
fn priority_outside_i32_is_refused() {
    let text = cluster("a", "priority = 3000000000");
    assert_rule(&text, Some("a"), "clusters[0].priority", "must be from");
}

#[test]
fn bad_health_listen_address_is_refused() {
    for value in ["localhost", "127.0.0.1", "127.0.0.1:99999", ""] {
        let text = format!("{}[health]\nlisten = \"{value}\"\n", cluster("a", ""));
        assert_rule(&text, None, "health.listen", "not an address and port");
    }
}

#[test]
fn bad_shard_is_refused() {
    for (value, part) in [
        ("3/3", "below the count"),
        ("0/0", "from 1 to"),
        ("x", "index/count"),
    ] {
        let text = format!("shard = \"{value}\"\n{}", cluster("a", ""));
        assert_rule(&text, None, "shard", part);
    }
}

#[test]
fn unreadable_ca_file_is_refused() {
    let text = with_mcp(
        "a",
        "endpoint = \"https://h/\"\nca_file = \"missing-ca.pem\"",
    );
    assert_rule(&text, Some("a"), "clusters[0].mcp.ca_file", "cannot read");
}

#[test]
fn ca_file_that_is_a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("ca")).unwrap();
    let text = with_mcp("a", "endpoint = \"https://h/\"\nca_file = \"ca\"");
    let errors = parse_str(
        &text,
        &dir.path().join("c.toml"),
        &[],
        &FlagOverrides::default(),
    )
    .unwrap_err()
    .0;
    assert!(
        errors[0].message.contains("not a regular file"),
        "{errors:?}"
    );
}

#[test]
fn insecure_skip_tls_verify_on_http_is_refused() {
    let text = with_mcp(
        "a",
        "endpoint = \"http://h/\"\ninsecure_skip_tls_verify = true",
    );
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].mcp.insecure_skip_tls_verify",
        "endpoint is http://",
    );
}

#[test]
fn insecure_skip_tls_verify_on_https_is_allowed_with_a_warning() {
    let text = with_mcp(
        "a",
        "endpoint = \"https://h/\"\ninsecure_skip_tls_verify = true",
    );
    let config = parse(&text).unwrap();
    assert!(config.clusters[0].mcp.insecure_skip_tls_verify);
    assert!(config.warnings().iter().any(|w| w.contains("not checked")));
}

#[test]
fn ca_file_on_http_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), "pem").unwrap();
    let text = with_mcp("a", "endpoint = \"http://h/\"\nca_file = \"ca.pem\"");
    let errors = parse_str(
        &text,
        &dir.path().join("c.toml"),
        &[],
        &FlagOverrides::default(),
    )
    .unwrap_err()
    .0;
    assert_eq!(errors[0].field, "clusters[0].mcp.ca_file");
    assert!(errors[0].message.contains("http://"));
}

#[test]
fn unreadable_system_prompt_file_is_refused() {
    let text = format!(
        "{}[agent]\nsystem_prompt_file = \"nope.md\"\n",
        cluster("a", "")
    );
    assert_rule(&text, None, "agent.system_prompt_file", "cannot read");
}

#[test]
fn no_enabled_clusters_is_allowed_but_warned() {
    let config = parse(&cluster("a", "enabled = false")).unwrap();
    assert!(config
        .warnings()
        .iter()
        .any(|w| w.contains("no enabled clusters")));
    let config = parse("clusters = []\n").unwrap();
    assert!(config.clusters.is_empty());
    assert!(!config.warnings().is_empty());
}

#[test]
fn label_values_must_be_strings() {
    let text = cluster("a", "labels = { team = 3 }");
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].labels.team",
        "expected a string",
    );
}

#[test]
fn clusters_must_be_an_array_of_tables() {
    let e = error_for(&errors("clusters = \"a\"\n"), "clusters");
    assert!(e.message.contains("array of tables"), "{e}");
    let e = error_for(&errors("clusters = [1]\n"), "clusters[0]");
    assert!(e.message.contains("expected a table"), "{e}");
}

#[test]
fn slack_webhook_sources_are_mutually_exclusive() {
    let text = format!(
        "{}[slack]\nwebhook_url = \"https://hooks.example/x\"\nwebhook_url_env = \"HOOK\"\n",
        cluster("a", "")
    );
    assert_rule(
        &text,
        None,
        "slack.webhook_url_env",
        "set only one of webhook_url",
    );
}

#[test]
fn bad_slack_webhook_is_refused_without_echoing_it() {
    let text = format!(
        "{}[slack]\nwebhook_url = \"hooks.example/T0/SECRETPART\"\n",
        cluster("a", "")
    );
    let e = assert_rule(
        &text,
        None,
        "slack.webhook_url",
        "webhook URL is not usable",
    );
    assert!(!e.to_string().contains("SECRETPART"));
}

#[test]
fn bad_environment_value_names_the_variable() {
    let text = cluster("a", "");
    let errors = parse_env(&text, &[("NIGHTCRIER_MAX_CONCURRENT_AGENTS", "lots")]).unwrap_err();
    let e = error_for(&errors, "agent.max_concurrent_agents");
    assert!(
        e.message.contains("NIGHTCRIER_MAX_CONCURRENT_AGENTS"),
        "{e}"
    );
    let errors = parse_env(&text, &[("NIGHTCRIER_LOG_LEVEL", "chatty")]).unwrap_err();
    let e = error_for(&errors, "log_level");
    assert!(
        e.message.contains("NIGHTCRIER_LOG_LEVEL") && e.message.contains("chatty"),
        "{e}"
    );
}

#[test]
fn every_error_is_reported_not_just_the_first() {
    let text = format!(
        "log_level = \"loud\"\n[queue]\ncluster_queue_size = 0\n{}{}",
        with_mcp("a", "endpoint = \"ftp://h/\""),
        cluster("b", "bogus = 1")
    );
    let errors = errors(&text);
    let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "log_level",
            "queue.cluster_queue_size",
            "clusters[0].mcp.endpoint",
            "clusters[1].bogus"
        ]
    );
    // In file order.
    let lines: Vec<_> = errors.iter().map(|e| e.line_col.unwrap().0).collect();
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{lines:?}");
}

#[test]
fn invalid_toml_is_refused_with_its_position() {
    let errors = errors("[[clusters]]\nname = \"a\n");
    assert!(
        errors[0].message.starts_with("invalid TOML"),
        "{:?}",
        errors[0]
    );
    assert_eq!(errors[0].line_col.map(|(line, _)| line), Some(2));
    assert_eq!(errors[0].file, PathBuf::from(FILE));
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let text = format!(
        "{}[slack]\nwebhook_url = \"https://hooks.example/T0/B0/XYZSECRET\"\n",
        with_mcp("a", "endpoint = \"http://h/\"\napi_key = \"APIKEYSECRET\"")
    );
    let config = parse(&text).unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("APIKEYSECRET"));
    assert!(!debug.contains("XYZSECRET"));
    assert!(debug.contains("<redacted>"));
}

#[test]
fn relative_paths_resolve_against_the_config_file_directory() {
    let text = format!(
        "workspace_root = \"ws\"\n{}[clusters.triage]\nenabled = true\nkubeconfig = \"kc/a.yaml\"\n",
        cluster("a", "")
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.workspace_root, PathBuf::from("conf/ws"));
    assert_eq!(
        config.clusters[0].triage.kubeconfig,
        Some(PathBuf::from("conf/kc/a.yaml"))
    );
    assert!(config.clusters[0].triage_ready());
}

#[test]
fn the_example_configuration_validates() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/nightcrier.example.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = parse_str(&text, &path, &[], &FlagOverrides::default()).unwrap();
    assert_eq!(config.clusters.len(), 2);
    assert!(config.clusters.iter().any(|c| c.triage_ready()));
    // Its one warning: the kubeconfig an operator still has to make.
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("cluster=dev-local: triage kubeconfig ")
            && warnings[0].contains("does not exist"),
        "{warnings:?}"
    );
}

#[test]
fn confinement_env_allow_and_retention_settings_are_validated() {
    let base = cluster("a", "");
    assert_rule(
        &format!("{base}[agent]\nconfinement = \"chroot\"\n"),
        None,
        "agent.confinement",
        "expected \"auto\", \"bwrap\" or \"none\"",
    );
    assert_rule(
        &format!("{base}[agent]\nenv_allow = [\"OK_NAME\", \"BAD-NAME\"]\n"),
        None,
        "agent.env_allow",
        "\"BAD-NAME\" is not an environment variable name",
    );
    assert_rule(
        &format!("{base}[agent]\nenv_allow = \"ANTHROPIC_API_KEY\"\n"),
        None,
        "agent.env_allow",
        "expected an array of strings",
    );
    assert_rule(
        &format!("{base}[agent]\nmax_output_bytes = 100\n"),
        None,
        "agent.max_output_bytes",
        "must be from 4096",
    );
    assert_rule(
        &format!("{base}[workspace]\nmax_age = \"0d\"\n"),
        None,
        "workspace.max_age",
        "greater than zero",
    );
    assert_rule(
        &format!("{base}[workspace]\nmax_incidents = 0\n"),
        None,
        "workspace.max_incidents",
        "must be from 1",
    );
    assert_rule(
        "[[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:8080/mcp\"\n[clusters.triage]\nrequire_read_only = \"yes\"\n",
        Some("a"),
        "clusters[0].triage.require_read_only",
        "expected true or false",
    );
    let config = parse(&format!(
        "{base}[agent]\nconfinement = \"bwrap\"\nenv_allow = [\"CORP_*\"]\nconfine_read_only = [\"tools\"]\n[workspace]\nmax_age = \"2d\"\n[preflight]\nrequire_read_only = true\n"
    ))
    .unwrap();
    assert_eq!(config.agent.env_allow, ["CORP_*"]);
    assert_eq!(
        config.agent.confine_read_only,
        [PathBuf::from("conf/tools")]
    );
    assert_eq!(config.workspace.max_age.as_secs(), 2 * 86_400);
    assert!(config.clusters[0].requires_read_only(&config.preflight));
}

#[test]
fn changing_only_the_agent_cli_gives_a_model_that_cli_serves() {
    for (cli, model) in [
        ("claude", "sonnet"),
        ("codex", "gpt-6.2-sol"),
        ("gemini", "gemini-2.5-pro"),
        ("goose", "auto"),
    ] {
        let text = format!("{}[agent]\ncli = \"{cli}\"\n", cluster("a", ""));
        let config = parse(&text).unwrap();
        assert_eq!(config.agent.cli, cli);
        assert_eq!(config.agent.model, model, "default model of {cli}");
        assert_eq!(config.clusters[0].effective_model(&config.agent), model);
    }
}

#[test]
fn agent_model_of_another_vendor_than_the_cli_is_refused() {
    let text = format!(
        "{}[agent]\ncli = \"gemini\"\nmodel = \"sonnet\"\n",
        cluster("a", "")
    );
    assert_rule(&text, None, "agent.model", "the gemini CLI does not serve");
    let text = format!(
        "{}[agent]\ncli = \"codex\"\nmodel = \"gemini-2.5-pro\"\n",
        cluster("a", "")
    );
    assert_rule(
        &text,
        None,
        "agent.model",
        "\"gemini-2.5-pro\" is one of the Gemini models",
    );
}

#[test]
fn cluster_triage_model_must_be_one_the_agent_cli_serves() {
    let text = format!(
        "{}[clusters.triage]\nmodel = \"opus\"\n[agent]\ncli = \"codex\"\n",
        cluster("a", "")
    );
    assert_rule(
        &text,
        Some("a"),
        "clusters[0].triage.model",
        "the codex CLI does not serve",
    );
}

#[test]
fn unknown_agent_cli_is_refused() {
    let text = format!("{}[agent]\ncli = \"claude-code\"\n", cluster("a", ""));
    assert_rule(
        &text,
        None,
        "agent.cli",
        "expected claude, codex, gemini, goose or stub",
    );
}

#[test]
fn admin_listener_is_off_by_default_and_loopback_only_when_on() {
    let base = cluster("a", "");
    assert_eq!(parse(&base).unwrap().admin.listen, None);
    let off = format!("{base}[admin]\nlisten = \"off\"\n");
    assert_eq!(parse(&off).unwrap().admin.listen, None);
    for loopback in ["127.0.0.1:9090", "127.0.0.2:0", "[::1]:9090"] {
        let text = format!("{base}[admin]\nlisten = \"{loopback}\"\n");
        assert_eq!(
            parse(&text).unwrap().admin.listen,
            Some(loopback.parse().unwrap()),
            "{loopback}"
        );
    }
    for open in ["0.0.0.0:9090", "10.1.2.3:9090", "[::]:9090"] {
        let text = format!("{base}[admin]\nlisten = \"{open}\"\n");
        let error = assert_rule(&text, None, "admin.listen", "is not a loopback address");
        assert!(error.message.contains("no authentication"), "{error}");
    }
    assert_rule(
        &format!("{base}[admin]\nlisten = \"localhost:9090\"\n"),
        None,
        "admin.listen",
        "is not an address and port",
    );
}

#[test]
fn admin_listener_is_never_the_health_listener() {
    let text = format!(
        "{}[health]\nlisten = \"127.0.0.1:9090\"\n[admin]\nlisten = \"127.0.0.1:9090\"\n",
        cluster("a", "")
    );
    assert_rule(&text, None, "admin.listen", "is also health.listen");
    // With the health server off, the address is free for the admin listener.
    let off = text.replace("[health]\n", "[health]\nenabled = false\n");
    assert!(parse(&off).unwrap().admin.listen.is_some());
}

#[test]
fn an_admin_address_from_the_environment_is_checked_as_well() {
    let errors = parse_env(
        &cluster("a", ""),
        &[("NIGHTCRIER_ADMIN_LISTEN", "0.0.0.0:9")],
    )
    .unwrap_err();
    let error = error_for(&errors, "admin.listen");
    assert!(
        error.to_string().contains("NIGHTCRIER_ADMIN_LISTEN"),
        "{error}"
    );
}

#[test]
fn correlation_hold_longer_than_its_window_is_refused() {
    let text = format!(
        "[correlation]\nwindow = \"5s\"\nhold = \"10s\"\n{}",
        cluster("a", "")
    );
    assert_rule(
        &text,
        None,
        "correlation.hold",
        "at most correlation.window (5s)",
    );
}

#[test]
fn budgets_and_alerts_are_read_and_bounded() {
    let text = format!(
        "[budget]\nruns_per_hour = 20\nagent_seconds_per_day = 3600\n\
         [alerts]\ncluster_down_after = \"2m\"\n{}",
        cluster(
            "a",
            "correlate = false\n[clusters.triage]\nmax_runs_per_day = 7"
        )
    );
    let config = parse(&text).unwrap();
    assert_eq!(config.budget.runs_per_hour, Some(20));
    assert_eq!(config.budget.runs_per_day, None, "unset is unlimited");
    assert_eq!(config.budget.agent_seconds_per_day, Some(3600));
    assert_eq!(config.alerts.cluster_down_after.as_secs(), 120);
    assert_eq!(config.clusters[0].triage.max_runs_per_day, Some(7));
    assert!(!config.clusters[0].correlate);
    assert_rule(
        &format!("[budget]\nruns_per_day = -1\n{}", cluster("a", "")),
        None,
        "budget.runs_per_day",
        "must be from 0 to 1000000000",
    );
}
