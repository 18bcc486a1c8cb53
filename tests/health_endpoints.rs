//! The health server over real HTTP on 127.0.0.1, serving hand-built snapshots in three
//! states: healthy (all active), degraded (one failed, one active but degraded) and failed
//! (all failed); plus readiness, staleness and the error answers.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use nightcrier::agent::permissions::{ClusterPermissions, PermissionCheck};
use nightcrier::batch_window::Wakeups;
use nightcrier::cluster::manager::HealthSummary;
use nightcrier::cluster::status::{ConnectionStatus, HealthSnapshot};
use nightcrier::health::board::{HealthBoard, Published};
use nightcrier::health::server::HealthServer;
use nightcrier::metrics::counters::{ClusterCounters, PipelineSnapshot};
use serde_json::Value;

use common::snapshots::{snapshot, wall};

const STALE_AFTER: Duration = Duration::from_secs(3);

fn cluster(name: &str, status: ConnectionStatus) -> HealthSnapshot {
    HealthSnapshot {
        environment: Some("prod".to_string()),
        labels: BTreeMap::from([("region".to_string(), "eu-west".to_string())]),
        protocol_version: Some("2025-06-18".to_string()),
        subscription_id: Some("sub-1".to_string()),
        ..snapshot(name, status)
    }
}

fn failed(name: &str, error: &str) -> HealthSnapshot {
    let mut snapshot = cluster(name, ConnectionStatus::Failed);
    snapshot.last_error = Some(error.to_string());
    snapshot.last_error_at = Some(wall() - Duration::from_secs(2));
    snapshot.retry_count = 3;
    snapshot.retry_in = Some(Duration::from_millis(3500));
    snapshot.errors.count("connecting");
    snapshot.errors.count("connecting");
    snapshot.errors.count("tls");
    snapshot
}

fn permissions(cluster: &str) -> ClusterPermissions {
    let checks = vec![
        check("get", "pods", true),
        check("get", "pods/log", true),
        check("list", "events", true),
        check("get", "nodes", false),
    ];
    ClusterPermissions::from_checks(
        cluster,
        "2026-11-24T04:00:00Z".to_string(),
        "kubeconfigs/alpha.yaml".to_string(),
        true,
        checks,
        Vec::new(),
    )
}

fn check(verb: &str, resource: &str, allowed: bool) -> PermissionCheck {
    PermissionCheck {
        verb: verb.to_string(),
        resource: resource.to_string(),
        allowed,
        error: None,
    }
}

fn published(clusters: Vec<HealthSnapshot>) -> Published {
    let summary = HealthSummary {
        total: clusters.len(),
        active: clusters
            .iter()
            .filter(|c| c.status == ConnectionStatus::Active)
            .count(),
        unhealthy: clusters
            .iter()
            .filter(|c| c.status == ConnectionStatus::Failed)
            .count(),
        triage_enabled: clusters.iter().filter(|c| c.triage_enabled).count(),
    };
    let mut pipeline = PipelineSnapshot::default();
    pipeline.clusters.insert(
        "alpha".to_string(),
        ClusterCounters {
            faults_received: 9,
            faults_dropped: 2,
            faults_rejected: 1,
            queue_depth: 4,
            breaker: "open",
            ..ClusterCounters::default()
        },
    );
    pipeline
        .permissions
        .insert("alpha".to_string(), permissions("alpha"));
    Published {
        clusters,
        summary,
        pipeline,
        at: Instant::now(),
        wall: wall(),
        sequence: 0,
        stopping: false,
        wakeups: Wakeups::default(),
    }
}

fn healthy() -> Published {
    published(vec![
        cluster("alpha", ConnectionStatus::Active),
        cluster("beta", ConnectionStatus::Active),
    ])
}

fn degraded() -> Published {
    let mut beta = cluster("beta", ConnectionStatus::Active);
    beta.degraded = true;
    published(vec![
        failed("alpha", "connecting: connection refused"),
        beta,
    ])
}

fn all_failed() -> Published {
    published(vec![
        failed("alpha", "tls: certificate expired"),
        failed("beta", "connecting: connection refused"),
    ])
}

struct Served {
    board: HealthBoard,
    server: HealthServer,
}

fn serve(state: Published) -> Served {
    let board = HealthBoard::new();
    board.publish(state);
    let server =
        HealthServer::start("127.0.0.1:0".parse().unwrap(), board.clone(), STALE_AFTER).unwrap();
    Served { board, server }
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// One HTTP/1.0 request (so the answer is neither chunked nor kept alive).
fn request(addr: SocketAddr, method: &str, path: &str) -> Answer {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(stream, "{method} {path} HTTP/1.0\r\nHost: test\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(field, value)| (field.trim().to_string(), value.trim().to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_string(),
    }
}

fn get(served: &Served, path: &str) -> Answer {
    request(served.server.local_addr(), "GET", path)
}

#[test]
fn healthy_state_is_live_ready_and_lists_every_cluster() {
    let served = serve(healthy());
    let live = get(&served, "/healthz");
    assert_eq!((live.status, live.body.as_str()), (200, "ok\n"));

    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 200);
    let ready = ready.json();
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["tried"], 2);
    assert_eq!(ready["total"], 2);
    assert_eq!(ready["active"], 2);

    let list = get(&served, "/health/clusters").json();
    let names: Vec<&str> = list["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alpha", "beta"]);
    assert_eq!(
        list["summary"],
        serde_json::json!({"total": 2, "active": 2, "unhealthy": 0, "triage_enabled": 2})
    );
    assert_eq!(list["generated_at"], "2026-11-24T04:15:00Z");
    for c in list["clusters"].as_array().unwrap() {
        assert_eq!(c["status"], "active");
        assert_eq!(c["error"], Value::Null);
        assert_eq!(c["retry_in"], Value::Null);
        assert_eq!(c["last_event"], "2026-11-24T04:14:30Z");
        assert_eq!(c["connected_since"], "2026-11-24T04:05:00Z");
        assert_eq!(c["event_count"], 12);
    }
}

#[test]
fn one_cluster_shows_labels_permissions_and_pipeline_counters() {
    let served = serve(healthy());
    let alpha = get(&served, "/health/clusters/alpha").json();
    assert_eq!(alpha["name"], "alpha");
    assert_eq!(alpha["environment"], "prod");
    assert_eq!(alpha["labels"], serde_json::json!({"region": "eu-west"}));
    assert_eq!(alpha["triage_enabled"], true);
    assert_eq!(alpha["permissions"]["can_get_pods"], true);
    assert_eq!(alpha["permissions"]["can_get_nodes"], false);
    assert_eq!(alpha["permissions"]["minimum_met"], true);
    assert_eq!(alpha["queue_depth"], 4);
    assert_eq!(alpha["dropped"], 3, "dropped + rejected");
    assert_eq!(alpha["breaker"], "open");
    assert_eq!(alpha["reconnects"], 1);
    assert_eq!(alpha["stream_gaps"], 0);

    // beta has no pipeline counters or preflight yet: defaults, not absent fields.
    let beta = get(&served, "/health/clusters/beta").json();
    assert_eq!(beta["permissions"], Value::Null);
    assert_eq!(beta["breaker"], "closed");
    assert_eq!(beta["queue_depth"], 0);
    assert_eq!(beta["dropped"], 0);
}

#[test]
fn degraded_state_is_ready_and_shows_the_error_and_retry() {
    let served = serve(degraded());
    assert_eq!(get(&served, "/healthz").status, 200);
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 200, "{}", ready.body);

    let list = get(&served, "/health/clusters").json();
    assert_eq!(list["summary"]["active"], 1);
    assert_eq!(list["summary"]["unhealthy"], 1);
    let alpha = &list["clusters"][0];
    assert_eq!(alpha["status"], "failed");
    assert_eq!(alpha["error"], "connecting: connection refused");
    assert_eq!(alpha["retry_in"], 3.5);
    assert_eq!(alpha["last_event"], Value::Null);
    assert_eq!(alpha["connected_since"], Value::Null);
    assert_eq!(alpha["errors"]["connecting"], 2);
    assert_eq!(alpha["errors"]["tls"], 1);
    assert_eq!(alpha["errors"]["stream"], 0);
    let beta = &list["clusters"][1];
    assert_eq!(beta["status"], "active");
    assert_eq!(beta["degraded"], true);
}

#[test]
fn failed_state_is_live_but_not_ready() {
    let served = serve(all_failed());
    assert_eq!(get(&served, "/healthz").status, 200);
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(
        ready.json(),
        serde_json::json!({"ready": false, "reason": "no cluster active", "tried": 2, "total": 2, "active": 0})
    );
    let list = get(&served, "/health/clusters").json();
    assert_eq!(list["summary"]["unhealthy"], 2);
    assert_eq!(list["clusters"][0]["error"], "tls: certificate expired");
    assert_eq!(list["clusters"][1]["status"], "failed");
}

#[test]
fn readiness_waits_until_every_cluster_was_tried() {
    let served = serve(published(vec![
        cluster("alpha", ConnectionStatus::Active),
        cluster("beta", ConnectionStatus::Connecting),
    ]));
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 503);
    let ready = ready.json();
    assert_eq!(ready["reason"], "1 of 2 clusters not yet tried");
    assert_eq!(ready["tried"], 1);
    assert_eq!(ready["active"], 1);

    // The loop publishes beta's first failure: every cluster tried, one active → ready.
    served.board.publish(published(vec![
        cluster("alpha", ConnectionStatus::Active),
        failed("beta", "initialize: 500"),
    ]));
    assert_eq!(get(&served, "/readyz").status, 200);
}

#[test]
fn no_clusters_and_stopping_are_not_ready() {
    let served = serve(published(Vec::new()));
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reason"], "no clusters");

    let mut stopping = healthy();
    stopping.stopping = true;
    served.board.publish(stopping);
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reason"], "stopping");
}

#[test]
fn stale_snapshot_fails_liveness_and_readiness() {
    let mut stale = healthy();
    stale.at = Instant::now()
        .checked_sub(STALE_AFTER * 2)
        .expect("clock far enough from boot");
    let served = serve(stale);
    let live = get(&served, "/healthz");
    assert_eq!(live.status, 503);
    assert!(live.body.starts_with("stale: "), "{}", live.body);
    let ready = get(&served, "/readyz");
    assert_eq!(ready.status, 503);
    assert!(ready.json()["reason"]
        .as_str()
        .unwrap()
        .starts_with("stale: "));

    // The loop publishes again: alive.
    served.board.publish(healthy());
    assert_eq!(get(&served, "/healthz").status, 200);
}

#[test]
fn unknown_cluster_and_unknown_path_are_404() {
    let served = serve(healthy());
    let unknown = get(&served, "/health/clusters/gamma");
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        serde_json::json!({"error": "unknown cluster"})
    );
    let missing = get(&served, "/nothing-here");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json(), serde_json::json!({"error": "not found"}));
}

#[test]
fn methods_other_than_get_are_405() {
    let served = serve(healthy());
    for (method, path) in [
        ("POST", "/healthz"),
        ("DELETE", "/health/clusters/alpha"),
        ("PUT", "/metrics"),
    ] {
        let answer = request(served.server.local_addr(), method, path);
        assert_eq!(answer.status, 405, "{method} {path}");
        assert_eq!(answer.header("allow"), Some("GET"));
        assert_eq!(
            answer.json(),
            serde_json::json!({"error": "method not allowed"})
        );
    }
}

#[test]
fn metrics_are_served_as_prometheus_text() {
    let served = serve(healthy());
    let metrics = get(&served, "/metrics");
    assert_eq!(metrics.status, 200);
    let content_type = metrics.header("content-type").unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    assert!(metrics
        .body
        .contains("nightcrier_faults_received_total{cluster=\"alpha\",environment=\"prod\"} 9\n"));
}

#[test]
fn binding_a_taken_address_names_it() {
    let served = serve(healthy());
    let taken = served.server.local_addr();
    let error = HealthServer::start(taken, HealthBoard::new(), STALE_AFTER)
        .err()
        .expect("second bind fails");
    assert!(error.to_string().contains(&taken.to_string()), "{error}");
}

#[test]
fn dropping_the_server_stops_it_promptly() {
    let served = serve(healthy());
    assert_eq!(get(&served, "/healthz").status, 200);
    let started = Instant::now();
    drop(served);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
