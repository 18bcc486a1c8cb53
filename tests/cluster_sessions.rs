//! The event loop against the built-in simulator: many sessions at once, and every way a
//! server can misbehave, each confined to its own cluster.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::sim::{Behaviour, ReplyFormat, SimOptions, Simulator};

fn sim(options: SimOptions) -> Simulator {
    Simulator::start(options).expect("simulator starts")
}

fn count_by_cluster(events: &[nightcrier::events::ClusterEvent]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for event in events {
        *counts.entry(event.cluster_name().to_owned()).or_default() += 1;
    }
    counts
}

#[test]
fn ten_clusters_deliver_every_fault_at_once() {
    let sim = sim(SimOptions {
        clusters: 10,
        rate_per_sec: 50.0,
        faults_per_cluster: Some(20),
        ..SimOptions::default()
    });
    let running = start_loop(&config_for(&sim, ""));
    let events = running.collect(200);
    assert_eq!(
        events.len(),
        200,
        "faults received: {:?}",
        count_by_cluster(&events)
    );
    let counts = count_by_cluster(&events);
    assert_eq!(counts.len(), 10);
    assert!(counts.values().all(|&n| n == 20), "{counts:?}");
    // The simulator counts a fault as sent once its write returned, which can be just
    // after the daemon has read it: wait (bounded) for the last counts.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while sim.clusters().iter().any(|c| c.stats().faults_sent < 20) {
        assert!(
            std::time::Instant::now() < deadline,
            "the simulator never counted 20 faults sent per cluster"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    for cluster in sim.clusters() {
        let sent: BTreeSet<String> = cluster.stats().fault_ids_sent.into_iter().collect();
        let received: BTreeSet<String> = events
            .iter()
            .filter(|e| e.cluster_name() == cluster.name())
            .map(|e| e.event.fault_id.clone())
            .collect();
        assert_eq!(sent, received, "cluster {}", cluster.name());
    }
    running.wait_all_active(10);
    running.stop().unwrap();
}

#[test]
fn handshake_follows_protocol_order_with_both_reply_formats() {
    for format in [ReplyFormat::Json, ReplyFormat::Sse] {
        let sim = sim(SimOptions {
            clusters: 1,
            rate_per_sec: 0.0,
            reply_format: format,
            ..SimOptions::default()
        });
        let running = start_loop(&config_for(&sim, ""));
        let name = sim.clusters()[0].name().to_owned();
        let snapshot = running.wait_status(&name, ConnectionStatus::Active);
        assert_eq!(snapshot.protocol_version.as_deref(), Some("2025-11-25"));
        let stats = sim.clusters()[0].stats();
        assert_eq!(
            (
                stats.sessions_created,
                stats.initialized,
                stats.set_level_calls,
                stats.subscribes
            ),
            (1, 1, 1, 1),
            "{format:?}"
        );
        assert_eq!(stats.get_streams_open, 1);
        let id = sim.clusters()[0]
            .emit_fault("critical", "CrashLoop")
            .unwrap();
        let events = running.collect(1);
        assert_eq!(events[0].event.fault_id, id);
        running.stop().unwrap();
    }
}

#[test]
fn killed_server_is_reconnected_and_resubscribed_while_others_flow() {
    let sim = quiet_sim(3);
    let running = start_loop(&config_for(&sim, ""));
    running.wait_all_active(3);
    let victim = &sim.clusters()[0];
    victim.stop_listening();
    running.wait_status(victim.name(), ConnectionStatus::Failed);

    // The others keep delivering while the victim is down.
    for other in &sim.clusters()[1..] {
        let id = other.emit_fault("warning", "PodCrash").unwrap();
        let event = running
            .collect(1)
            .pop()
            .expect("fault from a healthy cluster");
        assert_eq!(event.event.fault_id, id);
        assert_eq!(event.cluster_name(), other.name());
    }

    victim.restart().unwrap();
    let snapshot = running.wait_cluster(
        victim.name(),
        |c| c.status == ConnectionStatus::Active && c.reconnects >= 1,
        "active again",
    );
    assert!(snapshot.last_error.is_some());
    assert!(
        victim.stats().subscribes >= 1,
        "resubscribed on the new server"
    );
    let id = victim.emit_fault("critical", "CrashLoop").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn expired_session_reinitializes() {
    let sim = quiet_sim(1);
    let running = start_loop(&config_for(&sim, ""));
    let cluster = &sim.clusters()[0];
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    cluster.expire_sessions();
    assert!(
        cluster.wait_for(
            |s| s.sessions_created == 2 && s.subscribes == 2 && s.get_streams_open == 1,
            WAIT
        ),
        "no new session: {:?}",
        cluster.stats()
    );
    let snapshot = running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert!(
        snapshot.stream_gaps >= 1,
        "the lost stream is counted as a gap"
    );
    let id = cluster.emit_fault("critical", "CrashLoop").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn dropped_stream_is_reopened_on_the_same_session() {
    let sim = quiet_sim(1);
    let running = start_loop(&config_for(&sim, ""));
    let cluster = &sim.clusters()[0];
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    cluster.drop_connections();
    assert!(
        cluster.wait_for(
            |s| s.get_streams_opened == 2 && s.get_streams_open == 1,
            WAIT
        ),
        "stream not reopened: {:?}",
        cluster.stats()
    );
    let stats = cluster.stats();
    assert_eq!(stats.sessions_created, 1, "same session kept");
    let snapshot = running.wait_cluster(cluster.name(), |c| c.stream_gaps == 1, "one gap");
    assert_eq!(snapshot.status, ConnectionStatus::Active);
    let id = cluster.emit_fault("info", "JobFailure").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn stalled_server_hits_the_read_timeout_and_recovers() {
    let sim = quiet_sim(1);
    let mut text = String::from(
        "[reconnect]\ninitial = \"50ms\"\nmax = \"200ms\"\n[connection]\nread_timeout = \"300ms\"\nping_interval = \"100ms\"\n",
    );
    text.push_str(&cluster_toml(&sim.clusters()[0], ""));
    let config = parse_config(&text, std::path::Path::new("."));
    let running = start_loop(&config);
    let cluster = &sim.clusters()[0];
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert!(cluster.wait_for(|s| s.pings >= 1, WAIT), "pings are sent");
    cluster.set_behaviour(Behaviour::Stall);
    let snapshot = running.wait_cluster(
        cluster.name(),
        |c| {
            c.last_error
                .as_deref()
                .is_some_and(|e| e.contains("no reply within"))
        },
        "read timeout",
    );
    assert!(
        snapshot.errors.ping >= 1 || snapshot.errors.initialize >= 1,
        "{snapshot:#?}"
    );
    cluster.set_behaviour(Behaviour::Normal);
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    running.stop().unwrap();
}

#[test]
fn one_server_answering_garbage_does_not_disturb_the_other_nine() {
    let sim = sim(SimOptions {
        clusters: 10,
        rate_per_sec: 50.0,
        faults_per_cluster: Some(10),
        behaviours: vec![(0, Behaviour::Garbage)],
        ..SimOptions::default()
    });
    let running = start_loop(&config_for(&sim, ""));
    let events = running.collect(90);
    let counts = count_by_cluster(&events);
    assert_eq!(events.len(), 90, "{counts:?}");
    assert!(!counts.contains_key(sim.clusters()[0].name()));
    let bad = running.wait_cluster(
        sim.clusters()[0].name(),
        |c| c.last_error.is_some() && c.retry_count >= 2,
        "repeated failures",
    );
    assert_ne!(bad.status, ConnectionStatus::Active);
    let (published, _) = running.board.wait_for(WAIT, |p| p.summary.active == 9);
    assert_eq!(published.summary.active, 9);
    running.stop().unwrap();
}

#[test]
fn missing_events_subscribe_tool_is_a_named_error_with_long_backoff() {
    let sim = sim(SimOptions {
        clusters: 1,
        rate_per_sec: 0.0,
        behaviours: vec![(0, Behaviour::RefuseTool)],
        ..SimOptions::default()
    });
    let running = start_loop(&config_for(&sim, ""));
    let snapshot = running.wait_status(sim.clusters()[0].name(), ConnectionStatus::Failed);
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("events_subscribe"), "{error}");
    assert!(error.starts_with("subscribe"), "{error}");
    // Permanent errors wait the maximum backoff (400ms in FAST_TIMINGS), not the initial.
    let retry_in = snapshot.retry_in.expect("a retry is scheduled");
    assert!(retry_in > Duration::from_millis(200), "{retry_in:?}");
    running.stop().unwrap();
}

#[test]
fn stateless_server_is_a_named_error() {
    let sim = sim(SimOptions {
        clusters: 1,
        rate_per_sec: 0.0,
        behaviours: vec![(0, Behaviour::Stateless)],
        ..SimOptions::default()
    });
    let running = start_loop(&config_for(&sim, ""));
    let snapshot = running.wait_cluster(
        sim.clusters()[0].name(),
        |c| c.last_error.is_some(),
        "an error",
    );
    assert!(snapshot.last_error.unwrap().contains("405"));
    running.stop().unwrap();
}

#[test]
fn subscription_error_degrades_then_resubscribes() {
    let sim = sim(SimOptions {
        clusters: 1,
        rate_per_sec: 0.0,
        behaviours: vec![(0, Behaviour::SubscriptionError)],
        ..SimOptions::default()
    });
    let running = start_loop(&config_for(&sim, ""));
    let cluster = &sim.clusters()[0];
    assert!(
        cluster.wait_for(
            |s| s.subscription_errors_sent >= 1 && s.subscribes >= 2,
            WAIT
        ),
        "{:?}",
        cluster.stats()
    );
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    // The server fails every subscription; resubscribes back off instead of looping.
    assert!(
        !cluster.wait_for(|s| s.subscribes >= 30, Duration::from_secs(1)),
        "tight resubscribe loop: {:?}",
        cluster.stats()
    );
    running.stop().unwrap();
}

#[test]
fn api_key_is_sent_as_bearer_token_and_a_wrong_key_fails() {
    let sim = sim(SimOptions {
        clusters: 2,
        rate_per_sec: 0.0,
        api_key: Some("s3cret-key".into()),
        ..SimOptions::default()
    });
    let mut text = String::from(FAST_TIMINGS);
    text.push_str(&cluster_toml(
        &sim.clusters()[0],
        "api_key = \"s3cret-key\"",
    ));
    text.push_str(&cluster_toml(&sim.clusters()[1], "api_key = \"wrong-key\""));
    let running = start_loop(&parse_config(&text, std::path::Path::new(".")));
    running.wait_status(sim.clusters()[0].name(), ConnectionStatus::Active);
    let bad = running.wait_cluster(
        sim.clusters()[1].name(),
        |c| c.last_error.is_some(),
        "error",
    );
    let error = bad.last_error.unwrap();
    assert!(error.contains("401"), "{error}");
    assert!(
        !error.contains("wrong-key"),
        "secrets never in errors: {error}"
    );
    running.stop().unwrap();
}

#[test]
fn shutdown_deletes_every_session() {
    let sim = quiet_sim(4);
    let running = start_loop(&config_for(&sim, ""));
    running.wait_all_active(4);
    running.stop().unwrap();
    for cluster in sim.clusters() {
        assert!(
            cluster.wait_for(|s| s.deletes == 1 && s.get_streams_open == 0, WAIT),
            "{}: {:?}",
            cluster.name(),
            cluster.stats()
        );
    }
}

#[test]
fn tls_sessions_verify_against_the_cluster_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let (tls, ca_path) = tls_material(dir.path());
    let tls = tls.sim();
    let sim = sim(SimOptions {
        clusters: 3,
        rate_per_sec: 50.0,
        faults_per_cluster: Some(5),
        tls: Some(tls),
        ..SimOptions::default()
    });
    let clusters = sim.clusters();
    let mut text = String::from(FAST_TIMINGS);
    // With the CA: verified. Without it: the handshake fails. Skipping verification: works.
    text.push_str(&cluster_toml(
        &clusters[0],
        &format!("ca_file = {:?}", ca_path.display().to_string()),
    ));
    text.push_str(&cluster_toml(&clusters[1], ""));
    text.push_str(&cluster_toml(
        &clusters[2],
        "insecure_skip_tls_verify = true",
    ));
    let running = start_loop(&parse_config(&text, dir.path()));
    let events = running.collect(10);
    let counts = count_by_cluster(&events);
    assert_eq!(counts.get(clusters[0].name()), Some(&5), "{counts:?}");
    assert_eq!(counts.get(clusters[2].name()), Some(&5), "{counts:?}");
    let untrusted = running.wait_cluster(clusters[1].name(), |c| c.errors.tls >= 1, "tls error");
    assert!(untrusted.last_error.unwrap().contains("tls"));
    running.stop().unwrap();
}
