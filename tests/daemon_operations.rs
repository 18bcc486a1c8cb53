//! Operating the real binary: its health and metrics endpoints over real HTTP in healthy,
//! failed and changing states, and SIGHUP reloads that add, remove, modify and reconnect
//! clusters — and a bad reload that changes nothing.

mod common;

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use nightcrier::sim::{Behaviour, SimCluster, SimOptions, Simulator};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET; returns status and body (`None` while nothing listens yet).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

/// Polls an endpoint of the daemon (another process: nothing to wait on but its answers)
/// until `accept` holds; bounded in time.
fn poll(port: u16, path: &str, what: &str, accept: impl Fn(u16, &str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((status, body)) = get(port, path) {
            if accept(status, &body) {
                return body;
            }
            last = Some((status, body));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{path} never showed {what}; last answer: {last:?}");
}

fn metric(text: &str, name: &str, cluster: Option<&str>) -> Option<f64> {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .find(|line| cluster.is_none_or(|c| line.contains(&format!("cluster=\"{c}\""))))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
}

fn cluster_names(body: &str) -> BTreeSet<String> {
    let doc: serde_json::Value = serde_json::from_str(body).unwrap();
    doc["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect()
}

fn write_config(path: &Path, port: u16, clusters: &[(&SimCluster, &str)], extra: &str) {
    let mut text = format!(
        "{FAST_TIMINGS}\n{extra}\n[health]\nlisten = \"127.0.0.1:{port}\"\npublish_interval = \"200ms\"\n"
    );
    for (cluster, cluster_extra) in clusters {
        text.push_str(&format!(
            "[[clusters]]\nname = \"{}\"\n{cluster_extra}\n[clusters.mcp]\nendpoint = \"{}\"\n",
            cluster.name(),
            cluster.endpoint()
        ));
    }
    // Rename into place so the daemon never reads a half-written file.
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

fn signal(child: &Child, signal: libc::c_int) {
    // SAFETY: kill(2) on our own child's PID, which is not reaped yet.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0);
}

fn python_parses(text: &str) {
    let (ok, _, stderr) = common::peers::parse_metrics_with_python(text);
    assert!(ok, "prometheus_client refused /metrics: {stderr}");
}

fn spawn_daemon(config: &Path, log: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_nightcrier"))
        .args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// SIGTERM, then the exit within the time bound; returns the daemon's log.
fn stop_daemon(mut daemon: Child, log: &Path) -> String {
    signal(&daemon, libc::SIGTERM);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(daemon.wait());
    });
    let status = rx.recv_timeout(WAIT).expect("daemon exits").unwrap();
    let log = std::fs::read_to_string(log).unwrap();
    assert!(status.success(), "{status:?}\n{log}");
    log
}

#[test]
fn degraded_subscription_shows_in_health_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimOptions {
        clusters: 2,
        rate_per_sec: 0.0,
        behaviours: vec![(1, Behaviour::SubscriptionError)],
        ..SimOptions::default()
    })
    .unwrap();
    let [good, troubled] = [0, 1].map(|i| &sim.clusters()[i]);
    let port = free_port();
    let config = dir.path().join("nightcrier.toml");
    write_config(&config, port, &[(good, ""), (troubled, "")], "");
    let daemon = spawn_daemon(&config, &dir.path().join("daemon.log"));
    let body = poll(
        port,
        "/health/clusters",
        "a degraded cluster",
        |status, body| status == 200 && body.contains("\"degraded\":true"),
    );
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    let find = |name: &str| {
        doc["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .cloned()
            .unwrap()
    };
    assert_eq!(find(troubled.name())["degraded"], true);
    assert_eq!(find(good.name())["degraded"], false);
    assert_eq!(
        get(port, "/readyz").unwrap().0,
        200,
        "degraded is still ready"
    );
    let metrics = poll(port, "/metrics", "degraded gauge", |_, body| {
        metric(
            body,
            "nightcrier_connection_degraded",
            Some(troubled.name()),
        ) == Some(1.0)
    });
    assert_eq!(
        metric(
            &metrics,
            "nightcrier_connection_degraded",
            Some(good.name())
        ),
        Some(0.0)
    );
    stop_daemon(daemon, &dir.path().join("daemon.log"));
}

#[test]
fn endpoints_show_state_and_sighup_reloads_without_disturbing_other_clusters() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulator::start(SimOptions {
        clusters: 4,
        rate_per_sec: 0.0,
        behaviours: vec![(3, Behaviour::Garbage)],
        ..SimOptions::default()
    })
    .unwrap();
    let [a, b, c, bad] = [0, 1, 2, 3].map(|i| &sim.clusters()[i]);
    let port = free_port();
    let config = dir.path().join("nightcrier.toml");
    write_config(
        &config,
        port,
        &[(a, "labels = { team = \"a\" }"), (b, ""), (bad, "")],
        "",
    );
    let daemon = spawn_daemon(&config, &dir.path().join("daemon.log"));

    // Ready: every cluster tried, at least one active (the garbage one failed).
    poll(port, "/readyz", "ready", |status, _| status == 200);
    // The garbage cluster is `connecting` between its failures: wait for a moment it is not.
    let body = poll(
        port,
        "/health/clusters",
        "2 active, 1 failed",
        |status, body| {
            status == 200 && body.contains("\"active\":2") && body.contains("\"unhealthy\":1")
        },
    );
    let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["summary"]["total"], 3);
    assert_eq!(doc["summary"]["unhealthy"], 1);
    let failed = doc["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == bad.name())
        .unwrap();
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"].as_str().unwrap().contains("HTTP"),
        "{failed}"
    );
    let (status, one) = get(port, &format!("/health/clusters/{}", a.name())).unwrap();
    assert_eq!(status, 200);
    let one: serde_json::Value = serde_json::from_str(&one).unwrap();
    assert_eq!(
        (one["status"].as_str(), one["labels"]["team"].as_str()),
        (Some("active"), Some("a"))
    );
    assert_eq!(get(port, "/health/clusters/nope").unwrap().0, 404);
    assert_eq!(get(port, "/healthz").unwrap().0, 200);

    // Counters move when faults flow, and the exposition parses.
    a.emit_fault("critical", "CrashLoop").unwrap();
    a.emit_fault("warning", "PodCrash").unwrap();
    let metrics = poll(port, "/metrics", "2 faults on a", |_, body| {
        metric(body, "nightcrier_faults_received_total", Some(a.name())) == Some(2.0)
    });
    assert_eq!(
        metric(&metrics, "nightcrier_faults_received_total", Some(b.name())),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "nightcrier_faults_skipped_total", Some(a.name())),
        Some(2.0)
    );
    python_parses(&metrics);

    // Reload: b removed, c added, a relabelled in place.
    write_config(
        &config,
        port,
        &[(a, "labels = { team = \"b\" }"), (c, ""), (bad, "")],
        "",
    );
    signal(&daemon, libc::SIGHUP);
    let body = poll(port, "/health/clusters", "c active, b gone", |_, body| {
        cluster_names(body) == [a.name(), c.name(), bad.name()].map(String::from).into()
            && body.contains("\"active\":2")
    });
    assert!(body.contains("\"team\":\"b\""), "labels updated: {body}");
    assert!(
        b.wait_for(|s| s.deletes == 1, WAIT),
        "removed cluster's session deleted"
    );
    assert_eq!(
        a.stats().sessions_created,
        1,
        "a relabel does not reconnect"
    );
    let metrics = poll(port, "/metrics", "reload ok", |_, body| {
        metric(body, "nightcrier_config_last_reload_successful", None) == Some(1.0)
    });
    assert_eq!(
        metric(&metrics, "nightcrier_config_reload_failures_total", None),
        Some(0.0)
    );
    assert_eq!(
        metric(&metrics, "nightcrier_faults_received_total", Some(b.name())),
        None,
        "a removed cluster's series leave /metrics"
    );
    assert_eq!(
        metric(&metrics, "nightcrier_faults_received_total", Some(c.name())),
        Some(0.0)
    );

    // A bad file changes nothing.
    std::fs::write(
        &config,
        "[queue]\ncluster_queue_size = 0\n[[clusters]]\nname = \"x\"\n",
    )
    .unwrap();
    signal(&daemon, libc::SIGHUP);
    let metrics = poll(port, "/metrics", "reload failure", |_, body| {
        metric(body, "nightcrier_config_reload_failures_total", None) == Some(1.0)
    });
    assert_eq!(
        metric(&metrics, "nightcrier_config_last_reload_successful", None),
        Some(0.0)
    );
    let body = get(port, "/health/clusters").unwrap().1;
    assert_eq!(
        cluster_names(&body),
        [a.name(), c.name(), bad.name()].map(String::from).into()
    );
    assert!(body.contains("\"active\":2"));

    // A connection setting changed: only that cluster reconnects.
    write_config(
        &config,
        port,
        &[(a, "labels = { team = \"b\" }"), (c, ""), (bad, "")],
        "",
    );
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        &format!("endpoint = \"{}\"", c.endpoint()),
        &format!("endpoint = \"{}\"\napi_key = \"rotated\"", c.endpoint()),
        1,
    );
    std::fs::write(&config, text).unwrap();
    signal(&daemon, libc::SIGHUP);
    assert!(
        c.wait_for(|s| s.sessions_created == 2 && s.subscribes == 2, WAIT),
        "c reconnected: {:?}",
        c.stats()
    );
    assert_eq!(a.stats().sessions_created, 1);

    let log = stop_daemon(daemon, &dir.path().join("daemon.log"));
    assert!(log.contains("reload refused"), "{log}");
    assert!(!log.contains("rotated"), "secrets stay out of the log");
}

#[test]
fn a_health_port_in_use_is_said_once_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let config = dir.path().join("n.toml");
    std::fs::write(
        &config,
        format!(
            "mcp_endpoint = \"http://127.0.0.1:1/mcp\"\n[health]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )
    .unwrap();
    for (log_level, shape) in [
        ("info", "ERROR nightcrier::cli] "),
        ("off", "nightcrier run: "),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_nightcrier"))
            .args(["run", "--log-level", log_level, "--config"])
            .arg(&config)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let message = format!(
            "{shape}health server: cannot listen on 127.0.0.1:{port}: Address already in use"
        );
        assert!(stderr.contains(&message), "{log_level}: {stderr}");
        assert_eq!(
            stderr.matches("cannot listen on").count(),
            1,
            "{log_level}: {stderr}"
        );
    }
    drop(taken);
}

/// The sum of a per-cluster counter over every cluster.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| line.starts_with(name) && line[name.len()..].starts_with(['{', ' ']))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A flow of faults from the simulator's clusters, read with `batch_window` at `window` and
/// health snapshots every `publish_interval`: every fault arrives, and no subscription is
/// lost; returns (wake-ups, batch waits) from `/metrics`.
fn flow_through(options: SimOptions, window: &str, publish_interval: &str) -> (f64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let all = (options.clusters as u64 * options.faults_per_cluster.unwrap()) as f64;
    let sim = Simulator::start(options).unwrap();
    let port = free_port();
    let config = dir.path().join("nightcrier.toml");
    let mut text = format!(
        "{FAST_TIMINGS}batch_window = \"{window}\"\n[health]\nlisten = \"127.0.0.1:{port}\"\npublish_interval = \"{publish_interval}\"\n"
    );
    for cluster in sim.clusters() {
        text.push_str(&format!(
            "[[clusters]]\nname = \"{}\"\n[clusters.mcp]\nendpoint = \"{}\"\n",
            cluster.name(),
            cluster.endpoint()
        ));
    }
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("daemon.log");
    let daemon = spawn_daemon(&config, &log);
    let metrics = poll(port, "/metrics", "every fault received", |_, body| {
        metric_sum(body, "nightcrier_faults_received_total") >= all
    });
    let log = stop_daemon(daemon, &log);
    assert_eq!(
        metric_sum(&metrics, "nightcrier_faults_received_total"),
        all,
        "{log}"
    );
    assert_eq!(
        metric_sum(&metrics, "nightcrier_subscription_gaps_total"),
        0.0,
        "{log}"
    );
    let wakeups = metric(&metrics, "nightcrier_loop_wakeups_total", None).unwrap();
    let waits = metric(&metrics, "nightcrier_loop_batch_waits_total", None).unwrap();
    (wakeups, waits)
}

#[test]
fn a_flow_of_faults_is_read_in_batches_and_none_is_lost() {
    // 300 faults over about 1.5 s: one wake-up per fault, or a few per 250 ms window (the
    // connects, the health snapshots every 200 ms and the timers wake the loop too).
    let flow = || SimOptions {
        clusters: 2,
        rate_per_sec: 100.0,
        faults_per_cluster: Some(150),
        ..SimOptions::default()
    };
    let (batched_wakeups, batched_waits) = flow_through(flow(), "250ms", "200ms");
    let (single_wakeups, single_waits) = flow_through(flow(), "off", "200ms");
    assert_eq!(single_waits, 0.0);
    assert!(batched_waits >= 2.0, "{batched_waits} batch waits");
    assert!(
        batched_wakeups * 2.0 < single_wakeups,
        "{batched_wakeups} wake-ups batched, {single_wakeups} without"
    );
}

#[test]
fn a_dense_flow_is_read_every_few_milliseconds_and_loses_nothing() {
    // 4,000 faults a second from one cluster, about 5.6 MB/s, against a server that cancels
    // a subscription whose write stays blocked for 300 ms. Reads come back with whole
    // 16 KiB chunks, so the wait shrinks to a few milliseconds instead of growing to the
    // 1 s window: many short waits (a 1 s wait would allow about one per second of flow).
    let flood = SimOptions {
        clusters: 1,
        rate_per_sec: 4000.0,
        faults_per_cluster: Some(8000),
        write_block_timeout: Some(Duration::from_millis(300)),
        ..SimOptions::default()
    };
    let (wakeups, waits) = flow_through(flood, "1s", "10s");
    assert!(waits >= 50.0, "{waits} waits, {wakeups} wake-ups");
}
