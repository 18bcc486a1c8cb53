//! The daemon's loop against the simulator behaving like the real events server
//! (kubernetes-mcp-server with events on go-sdk 1.2.0): it cancels subscriptions silently,
//! never expires sessions, answers in Markdown, refuses replays. Each test is one way the
//! real server loses faults, and what nightcrier does about it.

mod common;

use std::time::Duration;

use common::*;
use nightcrier::cluster::connection::GapCause;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::sim::{Behaviour, SimCluster, SimOptions, Simulator};

/// The fork's session monitor drops subscriptions of vanished sessions every 30 s; here
/// every 100 ms, so a test can count what is left soon after.
const MONITOR: Duration = Duration::from_millis(100);

fn sim(behaviour: Behaviour) -> Simulator {
    Simulator::start(SimOptions {
        clusters: 1,
        rate_per_sec: 0.0,
        session_monitor_interval: MONITOR,
        behaviours: vec![(0, behaviour)],
        ..SimOptions::default()
    })
    .expect("simulator starts")
}

/// FAST_TIMINGS (backoff from 50 ms to 400 ms) with the subscription audit every `audit`.
fn config(sim: &Simulator, audit: &str) -> nightcrier::config::Config {
    config_with_backoff(sim, "50ms", "400ms", audit)
}

fn config_with_backoff(
    sim: &Simulator,
    initial: &str,
    max: &str,
    audit: &str,
) -> nightcrier::config::Config {
    let timings = FAST_TIMINGS
        .replace(
            "initial = \"50ms\"\nmax = \"400ms\"",
            &format!("initial = \"{initial}\"\nmax = \"{max}\""),
        )
        .replace(
            "ping_interval = \"30s\"",
            &format!("ping_interval = \"30s\"\nsubscription_audit_interval = \"{audit}\""),
        );
    let mut text = format!("{timings}\n");
    for cluster in sim.clusters() {
        text.push_str(&cluster_toml(cluster, ""));
    }
    parse_config(&text, std::path::Path::new("."))
}

/// Waits until the server holds exactly one subscription, of a session it still has.
fn one_subscription_left(cluster: &SimCluster) -> Vec<nightcrier::sim::SimSubscription> {
    let ok = cluster.wait_for(|s| s.subscriptions_active == 1, WAIT);
    let subscriptions = cluster.subscriptions();
    assert!(ok, "subscriptions on the server: {subscriptions:#?}");
    subscriptions
}

#[test]
fn stream_cut_with_the_session_kept_is_renewed_and_later_faults_arrive() {
    let sim = sim(Behaviour::Normal);
    let cluster = &sim.clusters()[0];
    // A one-second stream reopen, so a fault surely finds the stream gone.
    let running = start_loop(&config_with_backoff(&sim, "1s", "2s", "60s"));
    let before = running.wait_status(cluster.name(), ConnectionStatus::Active);
    let first = before.subscription_id.clone().unwrap();
    cluster.emit_fault("critical", "CrashLoop");
    assert_eq!(running.collect(1).len(), 1);

    let session = cluster.sessions().pop().unwrap();
    assert!(cluster.cut_stream(&session));
    // The server finds no stream attached: it cancels the subscription and tells no one.
    let lost = cluster.emit_fault("critical", "PodCrash");
    assert!(
        cluster.wait_for(|s| s.subscriptions_cancelled_undeliverable == 1, WAIT),
        "{:?}",
        cluster.stats()
    );
    let renewed = running.wait_cluster(
        cluster.name(),
        |c| c.subscription_renewals == 1 && c.subscription_id.as_deref() != Some(&first),
        "a renewed subscription",
    );
    assert_eq!(renewed.status, ConnectionStatus::Active);
    assert_eq!(cluster.sessions(), [session], "the session was kept");
    let gap = renewed.subscription_gaps.last().cloned().unwrap();
    assert_eq!(gap.cause, GapCause::StreamEnded);
    let end = gap.end.expect("the gap closed");
    let length = end.duration_since(gap.start).unwrap();
    // One backoff delay (1 s ± 10 %) plus a few local round trips.
    assert!(length < Duration::from_secs(3), "gap of {length:?}");

    let mut sent = Vec::new();
    for _ in 0..3 {
        sent.push(cluster.emit_fault("warning", "JobFailure").unwrap());
    }
    let received: Vec<String> = running
        .collect(3)
        .into_iter()
        .map(|e| e.event.fault_id)
        .collect();
    assert_eq!(received, sent, "every fault after the renewal arrives");
    assert!(!received.contains(&lost.unwrap_or_default()));
    let left = one_subscription_left(cluster);
    assert_eq!(Some(&left[0].id), renewed.subscription_id.as_ref());
    running.stop().unwrap();
}

#[test]
fn subscription_cancelled_while_the_stream_stays_attached_is_renewed_within_one_audit() {
    let sim = sim(Behaviour::Normal);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "1s"));
    let before = running.wait_status(cluster.name(), ConnectionStatus::Active);
    let streams = cluster.stats().get_streams_opened;
    assert_eq!(cluster.cancel_all_subscriptions(), 1);
    let renewed = running.wait_cluster(
        cluster.name(),
        |c| c.subscription_renewals == 1,
        "a renewed subscription",
    );
    assert_ne!(renewed.subscription_id, before.subscription_id);
    assert_eq!(
        cluster.stats().get_streams_opened,
        streams,
        "the stream stayed"
    );
    let gap = renewed.subscription_gaps.last().cloned().unwrap();
    assert_eq!(gap.cause, GapCause::SubscriptionLost);
    assert!(gap.end.is_some());
    let id = cluster.emit_fault("critical", "CrashLoop").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    one_subscription_left(cluster);
    running.stop().unwrap();
}

#[test]
fn twenty_forced_reinitializations_leave_exactly_one_subscription() {
    let sim = sim(Behaviour::Normal);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "60s"));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    for round in 0..20 {
        let failures = running
            .board
            .latest()
            .clusters
            .first()
            .map_or(0, |c| c.errors.stream + c.errors.initialize);
        // Garbage on every answer and on the open stream: the session fails and a new one
        // starts once the server is sane again, while the server still holds the old one.
        cluster.set_behaviour(Behaviour::Garbage);
        running.wait_cluster(
            cluster.name(),
            |c| c.errors.stream + c.errors.initialize > failures,
            "a failed session",
        );
        cluster.set_behaviour(Behaviour::Normal);
        running.wait_cluster(
            cluster.name(),
            |c| {
                c.status == ConnectionStatus::Active
                    && c.errors.stream + c.errors.initialize > failures
            },
            &format!("active again (round {round})"),
        );
    }
    let left = one_subscription_left(cluster);
    let snapshot = running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert_eq!(Some(&left[0].id), snapshot.subscription_id.as_ref());
    assert!(
        cluster.stats().deletes >= 20,
        "replaced sessions ended: {:?}",
        cluster.stats()
    );
    assert_eq!(cluster.sessions().len(), 1, "no session left behind");
    running.stop().unwrap();
}

#[test]
fn twenty_failed_subscribes_leave_exactly_one_subscription() {
    let sim = sim(Behaviour::SubscribeReplyLost);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "60s"));
    // Twenty attempts at up to 400 ms of backoff each, on a loaded machine.
    assert!(
        cluster.wait_for(|s| s.subscribes >= 20, 3 * WAIT),
        "{:?}",
        cluster.stats()
    );
    cluster.set_behaviour(Behaviour::Normal);
    let snapshot = running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert!(snapshot.errors.subscribe + snapshot.errors.stream >= 20);
    let left = one_subscription_left(cluster);
    assert_eq!(Some(&left[0].id), snapshot.subscription_id.as_ref());
    assert_eq!(
        cluster.sessions().len(),
        1,
        "every replaced session was ended"
    );
    running.stop().unwrap();
}

#[test]
fn replies_with_connection_close_and_the_fin_in_the_same_segment_keep_the_session() {
    let sim = sim(Behaviour::ConnectionClose);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "1s"));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    // Several audits, each on a new control connection closed after its reply.
    assert!(cluster.wait_for(|s| s.list_subscriptions_calls >= 3, WAIT));
    let snapshot = running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert_eq!(
        snapshot.errors.stream + snapshot.errors.initialize,
        0,
        "{snapshot:#?}"
    );
    assert_eq!(cluster.stats().sessions_created, 1);
    let id = cluster.emit_fault("critical", "CrashLoop").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn replay_refused_with_400_reopens_the_stream_on_the_same_session() {
    let sim = sim(Behaviour::EventIds);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "60s"));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    cluster.emit_fault("critical", "CrashLoop");
    assert_eq!(running.collect(1).len(), 1);
    let session = cluster.sessions().pop().unwrap();
    assert!(cluster.cut_stream(&session));
    // Reopened with Last-Event-ID, refused with 400, reopened without it.
    assert!(
        cluster.wait_for(
            |s| s.get_streams_opened == 2 && s.get_streams_open == 1,
            WAIT
        ),
        "{:?}",
        cluster.stats()
    );
    let snapshot = running.wait_cluster(
        cluster.name(),
        |c| c.subscription_gaps.last().is_some_and(|g| g.end.is_some()),
        "the gap closed",
    );
    assert_eq!(snapshot.errors.stream, 0);
    assert_eq!(cluster.stats().sessions_created, 1, "no new session");
    let id = cluster.emit_fault("critical", "PodCrash").unwrap();
    assert_eq!(running.collect(1)[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn server_without_the_list_tool_is_given_a_new_subscription_and_keeps_one() {
    let sim = sim(Behaviour::NoListTool);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "1s"));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert!(cluster.wait_for(|s| s.subscribes >= 3 && s.unsubscribes >= 2, WAIT));
    one_subscription_left(cluster);
    let id = cluster.emit_fault("critical", "CrashLoop").unwrap();
    let received = running.collect(1);
    assert_eq!(received[0].event.fault_id, id);
    running.stop().unwrap();
}

#[test]
fn server_errors_are_counted_and_the_session_stays() {
    let sim = sim(Behaviour::Normal);
    let cluster = &sim.clusters()[0];
    let running = start_loop(&config(&sim, "60s"));
    running.wait_status(cluster.name(), ConnectionStatus::Active);
    assert_eq!(cluster.emit_server_error("watch failed:\nforged line"), 1);
    let snapshot = running.wait_cluster(
        cluster.name(),
        |c| c.server_log_messages == 1,
        "a counted server message",
    );
    assert_eq!(snapshot.status, ConnectionStatus::Active);
    running.stop().unwrap();
}
