//! The Kubernetes manifests under config/kubernetes, checked offline with the tools an
//! operator uses: `kubectl kustomize` builds them, kubernetes-validate checks every core
//! object against the Kubernetes schemas, promtool checks the alert rules, and the binary
//! itself (`nightcrier check`, with the shard each pod computes) says which replica owns
//! which cluster, for every replica count from 1 to 8.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime};

use common::exec::output_within;
use common::peers::{
    peer_kubectl, peer_kubernetes_validate, peer_promtool, peer_python, repo_root,
};
use common::snapshots;
use nightcrier::batch_window::Wakeups;
use nightcrier::cluster::manager::HealthSummary;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::health::board::Published;
use nightcrier::metrics::counters::{ClusterCounters, PipelineSnapshot};
use nightcrier::metrics::render::render;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_nightcrier");
/// Each tool run takes well under a second; the bound only keeps a hung tool from hanging
/// the suite.
const TOOL_LIMIT: Duration = Duration::from_secs(120);
/// The replica counts the shard arithmetic is checked for.
const REPLICA_COUNTS: std::ops::RangeInclusive<u32> = 1..=8;

fn kubernetes_dir() -> PathBuf {
    repo_root().join("config/kubernetes")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn run(command: &mut Command, input: &[u8], what: &str) -> Output {
    output_within(command, input, TOOL_LIMIT, what)
}

/// `kubectl kustomize DIR`, which must succeed.
fn kustomize(dir: &Path) -> String {
    let out = run(
        Command::new(peer_kubectl()).arg("kustomize").arg(dir),
        b"",
        "kubectl kustomize",
    );
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// The documents of a YAML stream, as JSON (PyYAML in the peers' venv reads the YAML).
fn yaml_documents(yaml: &str) -> Vec<Value> {
    let out = run(
        Command::new(peer_python()).args([
            "-c",
            "import json, sys, yaml\n\
             json.dump([d for d in yaml.safe_load_all(sys.stdin) if d is not None], sys.stdout)",
        ]),
        yaml.as_bytes(),
        "python yaml to json",
    );
    assert!(out.status.success(), "YAML: {}", text(&out.stderr));
    match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(docs)) => docs,
        other => panic!("not a list of documents: {other:?}"),
    }
}

fn kind_and_name(doc: &Value) -> (String, String) {
    (
        doc["kind"].as_str().unwrap_or_default().to_string(),
        doc["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} among {:?}", kinds(docs)))
}

fn kinds(docs: &[Value]) -> Vec<(String, String)> {
    docs.iter().map(kind_and_name).collect()
}

/// kubernetes-validate --strict on a file; returns (passed, everything it printed).
fn validate(file: &Path) -> (bool, String) {
    let out = run(
        Command::new(peer_kubernetes_validate())
            .arg("--strict")
            .arg(file),
        b"",
        "kubernetes-validate",
    );
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// Kinds kubernetes-validate has no schema for (the Prometheus Operator's); promtool and the
/// structural checks below cover them.
fn is_custom_kind(doc: &Value) -> bool {
    doc["apiVersion"]
        .as_str()
        .is_some_and(|v| v.starts_with("monitoring.coreos.com/"))
}

/// Validates a YAML stream and asserts that every core object in it passed by name.
fn assert_core_objects_pass_the_schemas(yaml: &str, file: &Path) {
    std::fs::write(file, yaml).unwrap();
    let (passed, report) = validate(file);
    assert!(passed, "{}: {report}", file.display());
    let docs = yaml_documents(yaml);
    assert!(!docs.is_empty(), "{} is empty", file.display());
    for doc in docs.iter().filter(|d| !is_custom_kind(d)) {
        let (kind, name) = kind_and_name(doc);
        let line = format!("passed for resource {}/{name}", kind.to_lowercase());
        assert!(report.contains(&line), "no `{line}` in:\n{report}");
    }
}

#[test]
fn every_core_object_of_the_manifests_passes_the_kubernetes_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let main = kustomize(&kubernetes_dir());
    let docs = yaml_documents(&main);
    let found: BTreeSet<String> = docs.iter().map(|d| kind_and_name(d).0).collect();
    let expected: BTreeSet<String> = [
        "Namespace",
        "ServiceAccount",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "PodMonitor",
        "PrometheusRule",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(found, expected);
    for doc in &docs {
        let (kind, name) = kind_and_name(doc);
        if kind != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "nightcrier", "{kind} {name}");
        }
    }
    assert_core_objects_pass_the_schemas(&main, &dir.path().join("nightcrier.yaml"));

    let rbac = kustomize(&kubernetes_dir().join("triage-rbac"));
    assert_core_objects_pass_the_schemas(&rbac, &dir.path().join("triage-rbac.yaml"));

    let secrets = std::fs::read_to_string(kubernetes_dir().join("secrets.example.yaml")).unwrap();
    assert_core_objects_pass_the_schemas(&secrets, &dir.path().join("secrets.yaml"));
}

#[test]
fn the_schema_check_refuses_a_misspelled_field() {
    let dir = tempfile::tempdir().unwrap();
    let main = kustomize(&kubernetes_dir());
    assert_eq!(main.matches("  serviceName: nightcrier\n").count(), 1);
    let broken = main.replace("  serviceName: nightcrier\n", "  serviceNmae: nightcrier\n");
    let file = dir.path().join("broken.yaml");
    std::fs::write(&file, broken).unwrap();
    let (passed, report) = validate(&file);
    assert!(!passed, "a misspelled field passed:\n{report}");
    assert!(report.contains("serviceNmae"), "{report}");
}

/// The container named `nightcrier` of the StatefulSet.
fn daemon_container(statefulset: &Value) -> &Value {
    statefulset["spec"]["template"]["spec"]["containers"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "nightcrier"))
        .expect("a container named nightcrier")
}

/// The value of each environment variable of a container, in order.
fn env_of(container: &Value) -> Vec<(String, Value)> {
    container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

/// The shard string of pod `index`, as the kubelet expands NIGHTCRIER_SHARD: `$(POD_INDEX)`
/// becomes the pod's index, which POD_INDEX takes from the pod-index label. The kubelet
/// expands only variables defined earlier in the list.
fn shard_of_pod(statefulset: &Value, index: u32) -> String {
    let env = env_of(daemon_container(statefulset));
    let position = |name: &str| {
        env.iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no {name} in {env:?}"))
    };
    let (pod_index, shard) = (position("POD_INDEX"), position("NIGHTCRIER_SHARD"));
    assert!(
        pod_index < shard,
        "POD_INDEX must come before NIGHTCRIER_SHARD"
    );
    assert_eq!(
        env[pod_index].1["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let template = env[shard].1["value"].as_str().expect("a literal value");
    assert_eq!(template.matches("$(POD_INDEX)").count(), 1, "{template}");
    template.replace("$(POD_INDEX)", &index.to_string())
}

/// A configuration of `names`, each an MCP server nothing connects to (`check` never
/// connects).
fn clusters_config(names: &[String]) -> String {
    names
        .iter()
        .map(|name| {
            format!(
                "[[clusters]]\nname = \"{name}\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:9/mcp\"\n\n"
            )
        })
        .collect()
}

/// The clusters `nightcrier check` says this replica watches, with NIGHTCRIER_SHARD set as
/// the pod sets it.
fn owned_clusters(config: &Path, shard: &str) -> BTreeSet<String> {
    let mut command = Command::new(BIN);
    command
        .arg("check")
        .arg("--config")
        .arg(config)
        .env("NIGHTCRIER_SHARD", shard);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("NIGHTCRIER_") && key != "NIGHTCRIER_SHARD" {
            command.env_remove(key);
        }
    }
    let out = run(&mut command, b"", "nightcrier check");
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "check with shard {shard}: {}{stdout}",
        text(&out.stderr)
    );
    let shard_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("shard "))
        .unwrap_or_else(|| panic!("no shard line in:\n{stdout}"));
    assert_eq!(
        shard_line.split_whitespace().nth(1),
        Some(shard),
        "{shard_line}"
    );
    let mut owned = BTreeSet::new();
    let mut current: Option<String> = None;
    for line in stdout.lines() {
        if let Some(name) = line
            .strip_prefix("cluster ")
            .and_then(|l| l.strip_suffix(':'))
        {
            current = Some(name.to_string());
        } else if let (Some(name), Some(state)) = (&current, line.trim().strip_prefix("enabled")) {
            match state.trim() {
                "yes" => {
                    owned.insert(name.clone());
                }
                "yes, but another shard owns it" => {}
                other => panic!("cluster {name}: enabled {other:?}"),
            }
            current = None;
        }
    }
    owned
}

/// config/kubernetes as an operator changes its replica count: the `count` of the
/// kustomization's `replicas` entry, the one place for it.
fn manifests_with_replicas(dir: &Path, replicas: u32) -> Vec<Value> {
    for entry in std::fs::read_dir(kubernetes_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    let kustomization = dir.join("kustomization.yaml");
    let text = std::fs::read_to_string(&kustomization).unwrap();
    let count_line = "\n    count: 2\n";
    assert_eq!(text.matches(count_line).count(), 1, "{text}");
    std::fs::write(
        &kustomization,
        text.replace(count_line, &format!("\n    count: {replicas}\n")),
    )
    .unwrap();
    yaml_documents(&kustomize(dir))
}

#[test]
fn replicas_split_the_clusters_so_each_has_exactly_one_owner_for_1_to_8_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let mut names: Vec<String> = (0..120).map(|i| format!("cluster-{i:03}")).collect();
    names.extend(
        [
            "prod-eu-1",
            "prod-us-1",
            "a",
            "Z9",
            "edge.store-0042",
            "x_y",
        ]
        .iter()
        .map(|n| n.to_string()),
    );
    let config = dir.path().join("clusters.toml");
    std::fs::write(&config, clusters_config(&names)).unwrap();

    for replicas in REPLICA_COUNTS {
        let build = tempfile::tempdir().unwrap();
        let docs = manifests_with_replicas(build.path(), replicas);
        let statefulset = find(&docs, "StatefulSet", "nightcrier");
        assert_eq!(statefulset["spec"]["replicas"], replicas);

        let mut owners: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for index in 0..replicas {
            let shard = shard_of_pod(statefulset, index);
            assert_eq!(shard, format!("{index}/{replicas}"));
            let owned = owned_clusters(&config, &shard);
            assert!(
                !owned.is_empty(),
                "replica {index} of {replicas} owns no cluster"
            );
            for name in &names {
                if owned.contains(name) {
                    owners.entry(name).or_default().push(index);
                }
            }
        }
        for name in &names {
            assert_eq!(
                owners.get(name.as_str()).map(Vec::len),
                Some(1),
                "{replicas} replicas: cluster {name} is owned by {:?}",
                owners.get(name.as_str())
            );
        }
    }
}

#[test]
fn probes_ports_and_selectors_fit_the_pods() {
    let docs = yaml_documents(&kustomize(&kubernetes_dir()));
    let statefulset = find(&docs, "StatefulSet", "nightcrier");
    let pod = &statefulset["spec"]["template"];
    let labels = pod["metadata"]["labels"].as_object().expect("pod labels");
    let selects_the_pods = |selector: &Value, what: &str| {
        let wanted = selector["matchLabels"].as_object().expect("matchLabels");
        assert!(!wanted.is_empty(), "{what} selects everything");
        for (key, value) in wanted {
            assert_eq!(labels.get(key), Some(value), "{what} selects {key}={value}");
        }
    };
    selects_the_pods(&statefulset["spec"]["selector"], "the StatefulSet");
    selects_the_pods(
        &serde_json::json!({"matchLabels": find(&docs, "Service", "nightcrier")["spec"]["selector"]}),
        "the Service",
    );
    selects_the_pods(
        &find(&docs, "PodDisruptionBudget", "nightcrier")["spec"]["selector"],
        "the PodDisruptionBudget",
    );
    selects_the_pods(
        &find(&docs, "NetworkPolicy", "nightcrier")["spec"]["podSelector"],
        "the NetworkPolicy",
    );
    let monitor = find(&docs, "PodMonitor", "nightcrier");
    selects_the_pods(&monitor["spec"]["selector"], "the PodMonitor");
    // The alerts' `up{job="nightcrier"}`: the job label is the value of this pod label.
    let job_label = monitor["spec"]["jobLabel"].as_str().expect("jobLabel");
    assert_eq!(labels.get(job_label), Some(&Value::from("nightcrier")));

    // The health port: where the configuration listens, what the probes, the Service, the
    // PodMonitor and the NetworkPolicy name.
    let container = daemon_container(statefulset);
    let port = container["ports"]
        .as_array()
        .and_then(|p| p.iter().find(|p| p["name"] == "health"))
        .expect("a port named health");
    let config_text = std::fs::read_to_string(kubernetes_dir().join("nightcrier.toml")).unwrap();
    let config: toml::Table = config_text.parse().unwrap();
    let listen = config["health"]["listen"].as_str().unwrap();
    assert_eq!(
        listen,
        format!("0.0.0.0:{}", port["containerPort"]),
        "health.listen must be the container's health port on every address"
    );
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["startupProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        assert_eq!(container[probe]["httpGet"]["port"], "health", "{probe}");
    }
    let service = find(&docs, "Service", "nightcrier");
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "health");
    assert_eq!(monitor["spec"]["podMetricsEndpoints"][0]["port"], "health");
    assert_eq!(
        monitor["spec"]["podMetricsEndpoints"][0]["path"],
        "/metrics"
    );
    let policy = find(&docs, "NetworkPolicy", "nightcrier");
    assert_eq!(policy["spec"]["ingress"][0]["ports"][0]["port"], "health");

    // The image's command is the daemon; the configuration is the generated ConfigMap.
    assert_eq!(
        container["args"],
        serde_json::json!(["run", "--config", "/etc/nightcrier/nightcrier.toml"])
    );
    let volumes = pod["spec"]["volumes"].as_array().unwrap();
    let config_map = volumes
        .iter()
        .find(|v| v["name"] == "config")
        .and_then(|v| v["configMap"]["name"].as_str())
        .expect("the config volume");
    let generated = find(&docs, "ConfigMap", config_map);
    assert_eq!(generated["data"]["nightcrier.toml"], config_text.as_str());

    // Stopping: longer than the daemon's own shutdown_timeout + agent.kill_grace.
    let defaults = nightcrier::config::Config::defaults(PathBuf::from("nightcrier.toml"));
    let needed = defaults.shutdown_timeout + defaults.agent.kill_grace;
    let grace = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        Duration::from_secs(grace) > needed,
        "terminationGracePeriodSeconds {grace} is not above {needed:?}"
    );
    // The daemon runs as the image's user, never as root.
    assert_eq!(pod["spec"]["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["spec"]["securityContext"]["runAsUser"], 10001);
}

/// The paths a configuration value names under `prefix`: the mount's directory and the file
/// (the Secret's key).
fn secret_file<'a>(path: &'a str, mounts: &BTreeMap<String, String>) -> (String, &'a str) {
    let (dir, key) = path.rsplit_once('/').expect("an absolute path");
    let secret = mounts
        .get(dir)
        .unwrap_or_else(|| panic!("{path}: no Secret is mounted at {dir}"));
    (secret.clone(), key)
}

#[test]
fn configuration_names_only_files_the_pod_mounts_and_passes_check() {
    let docs = yaml_documents(&kustomize(&kubernetes_dir()));
    let statefulset = find(&docs, "StatefulSet", "nightcrier");
    let pod = &statefulset["spec"]["template"]["spec"];
    // mount path -> Secret name, for the Secret volumes.
    let mut mounts = BTreeMap::new();
    for mount in daemon_container(statefulset)["volumeMounts"]
        .as_array()
        .unwrap()
    {
        let claims = statefulset["spec"]["volumeClaimTemplates"]
            .as_array()
            .unwrap();
        let Some(volume) = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
        else {
            assert!(
                claims
                    .iter()
                    .any(|c| c["metadata"]["name"] == mount["name"]),
                "no volume for {mount}"
            );
            continue;
        };
        if let Some(secret) = volume["secret"]["secretName"].as_str() {
            assert_eq!(mount["readOnly"], true, "{mount}");
            mounts.insert(
                mount["mountPath"].as_str().unwrap().to_string(),
                secret.to_string(),
            );
        }
    }
    let secrets = yaml_documents(
        &std::fs::read_to_string(kubernetes_dir().join("secrets.example.yaml")).unwrap(),
    );
    let example = |secret: &str, key: &str| -> String {
        find(&secrets, "Secret", secret)["stringData"][key]
            .as_str()
            .unwrap_or_else(|| panic!("secrets.example.yaml: Secret {secret} has no {key}"))
            .to_string()
    };
    // The model API key comes in as environment.
    let env_from = daemon_container(statefulset)["envFrom"][0]["secretRef"]["name"]
        .as_str()
        .expect("envFrom a Secret");
    assert!(!example(env_from, "ANTHROPIC_API_KEY").is_empty());

    // Every secret file the configuration names, written from secrets.example.yaml under a
    // stand-in root, so that `nightcrier check` reads exactly what the pod would.
    let root = tempfile::tempdir().unwrap();
    let config_text = std::fs::read_to_string(kubernetes_dir().join("nightcrier.toml")).unwrap();
    let config: toml::Table = config_text.parse().unwrap();
    let mut files = Vec::new();
    files.push(config["slack"]["webhook_url_file"].as_str().unwrap());
    for cluster in config["clusters"].as_array().unwrap() {
        files.push(cluster["mcp"]["api_key_file"].as_str().unwrap());
        files.push(cluster["triage"]["kubeconfig"].as_str().unwrap());
    }
    let mut rooted = config_text.clone();
    for path in &files {
        let (secret, key) = secret_file(path, &mounts);
        let local = root.path().join(path.trim_start_matches('/'));
        std::fs::create_dir_all(local.parent().unwrap()).unwrap();
        std::fs::write(&local, example(&secret, key)).unwrap();
        rooted = rooted.replace(&format!("\"{path}\""), &format!("{:?}", local));
    }
    // The prompt and launcher come with the agent-runner image (config/container).
    let prompt = config["agent"]["system_prompt_file"].as_str().unwrap();
    assert_eq!(
        prompt,
        "/usr/local/share/nightcrier/triage-system-prompt.md"
    );
    rooted = rooted.replace(
        &format!("\"{prompt}\""),
        &format!("{:?}", repo_root().join("config/triage-system-prompt.md")),
    );
    assert_eq!(
        config["agent"]["script"].as_str(),
        Some("/usr/local/lib/nightcrier/run-agent.sh")
    );
    let dockerfile =
        std::fs::read_to_string(repo_root().join("config/container/agent-runner.Dockerfile"))
            .unwrap();
    assert!(dockerfile.contains("COPY run-agent.sh /usr/local/lib/nightcrier/run-agent.sh"));
    assert!(dockerfile.contains(
        "COPY triage-system-prompt.md /usr/local/share/nightcrier/triage-system-prompt.md"
    ));

    let file = root.path().join("nightcrier.toml");
    std::fs::write(&file, rooted).unwrap();
    let out = run(
        Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&file)
            .env_remove("NIGHTCRIER_CONFIG"),
        b"",
        "nightcrier check",
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", text(&out.stderr));
    for cluster in config["clusters"].as_array().unwrap() {
        let name = cluster["name"].as_str().unwrap();
        assert!(stdout.contains(&format!("cluster {name}:")), "{stdout}");
    }
    assert!(
        stdout.contains("api_key                set (redacted)"),
        "{stdout}"
    );
}

/// `spec` of the PrometheusRule, as a Prometheus rule file.
fn rule_file(docs: &[Value], dir: &Path) -> (PathBuf, Value) {
    let rule = find(docs, "PrometheusRule", "nightcrier");
    let spec = rule["spec"].clone();
    let path = dir.join("rules.json");
    // JSON is YAML: promtool reads it as a rule file.
    std::fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    (path, spec)
}

fn promtool_check(file: &Path) -> (bool, String) {
    let out = run(
        Command::new(peer_promtool())
            .args(["check", "rules"])
            .arg(file),
        b"",
        "promtool check rules",
    );
    (
        out.status.success(),
        format!("{}{}", text(&out.stdout), text(&out.stderr)),
    )
}

/// The metric families the daemon's /metrics serves, from its renderer with one cluster.
fn exported_families() -> BTreeSet<String> {
    let mut pipeline = PipelineSnapshot::default();
    pipeline
        .clusters
        .insert("alpha".to_string(), ClusterCounters::default());
    let published = Published {
        clusters: vec![snapshots::snapshot("alpha", ConnectionStatus::Active)],
        summary: HealthSummary::default(),
        pipeline,
        at: Instant::now(),
        wall: SystemTime::now(),
        sequence: 1,
        stopping: false,
        wakeups: Wakeups::default(),
    };
    render(&published)
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn alert_rules_pass_promtool_and_use_only_metrics_the_daemon_exports() {
    let dir = tempfile::tempdir().unwrap();
    let docs = yaml_documents(&kustomize(&kubernetes_dir()));
    let (file, spec) = rule_file(&docs, dir.path());
    let (passed, report) = promtool_check(&file);
    assert!(passed, "{report}");
    let rules: Vec<&Value> = spec["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert!(
        report.contains(&format!("SUCCESS: {} rules found", rules.len())),
        "{report}"
    );

    let families = exported_families();
    assert!(
        families.contains("nightcrier_connection_status"),
        "{families:?}"
    );
    for rule in &rules {
        let expr = rule["expr"].as_str().unwrap();
        let alert = rule["alert"].as_str().unwrap();
        assert!(
            ["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")),
            "{alert}: severity"
        );
        let mut names = expr
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("nightcrier_"))
            .peekable();
        if names.peek().is_none() {
            assert!(expr.contains("up{job=\"nightcrier\"}"), "{alert}: {expr}");
        }
        for name in names {
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| families.contains(*base))
                .unwrap_or(name);
            assert!(
                families.contains(family),
                "{alert} uses {name}, which /metrics does not serve"
            );
        }
    }

    // promtool refuses a broken expression, so the check above can fail.
    let mut broken = spec.clone();
    broken["groups"][0]["rules"][0]["expr"] = Value::from("up{job=\"nightcrier\" == 0");
    let broken_file = dir.path().join("broken.json");
    std::fs::write(&broken_file, serde_json::to_vec(&broken).unwrap()).unwrap();
    assert!(
        !promtool_check(&broken_file).0,
        "promtool took a broken expression"
    );
}

#[test]
fn triage_role_is_read_only_and_covers_what_the_preflight_checks() {
    let docs = yaml_documents(&kustomize(&kubernetes_dir().join("triage-rbac")));
    let role = find(&docs, "ClusterRole", "nightcrier-triage");
    let mut readable = BTreeSet::new();
    for rule in role["rules"].as_array().unwrap() {
        for verb in rule["verbs"].as_array().unwrap() {
            let verb = verb.as_str().unwrap();
            assert!(
                ["get", "list", "watch"].contains(&verb),
                "the triage role may {verb}: {rule}"
            );
        }
        for resource in rule["resources"].as_array().unwrap() {
            let resource = resource.as_str().unwrap();
            assert!(
                !["secrets", "configmaps", "*"].contains(&resource),
                "the triage role reads {resource}"
            );
            assert!(
                !["pods/exec", "pods/attach", "pods/portforward"].contains(&resource),
                "{resource}"
            );
            for group in rule["apiGroups"].as_array().unwrap() {
                readable.insert((group.as_str().unwrap().to_string(), resource.to_string()));
            }
        }
    }
    // The preflight's `kubectl auth can-i` reads (docs/operations.md, Preflight).
    for (group, resource) in [
        ("", "pods"),
        ("", "pods/log"),
        ("", "events"),
        ("apps", "deployments"),
        ("", "services"),
        ("", "nodes"),
    ] {
        assert!(
            readable.contains(&(group.to_string(), resource.to_string())),
            "the triage role cannot read {group}/{resource}"
        );
    }
    let binding = find(&docs, "ClusterRoleBinding", "nightcrier-triage");
    assert_eq!(binding["roleRef"]["name"], "nightcrier-triage");
    assert_eq!(binding["subjects"][0]["name"], "nightcrier-triage");
    assert_eq!(binding["subjects"][0]["namespace"], "nightcrier");
    let account = find(&docs, "ServiceAccount", "nightcrier-triage");
    assert_eq!(account["metadata"]["namespace"], "nightcrier");
    let token = find(&docs, "Secret", "nightcrier-triage-token");
    assert_eq!(token["type"], "kubernetes.io/service-account-token");
    assert_eq!(
        token["metadata"]["annotations"]["kubernetes.io/service-account.name"],
        "nightcrier-triage"
    );
}
