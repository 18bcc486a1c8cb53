//! A cluster nightcrier stops watching raises one Slack message after
//! `alerts.cluster_down_after`, one "recovered" when it is active again, and a flapping one
//! no more than one such pair per `alerts.flap_window`. The simulated server really stops
//! listening and comes back on the same port.

mod common;

use std::time::{Duration, Instant};

use common::webhook::WebhookReceiver;
use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::health::board::Published;

fn status(p: &Published, name: &str) -> Option<ConnectionStatus> {
    p.clusters.iter().find(|c| c.name == name).map(|c| c.status)
}

fn alerts(receiver: &WebhookReceiver) -> Vec<String> {
    receiver
        .requests()
        .into_iter()
        .map(|r| r.body)
        .filter(|b| b.contains("nightcrier is not watching") || b.contains("watches cluster"))
        .collect()
}

#[test]
fn a_silent_cluster_raises_one_alarm_one_recovery_and_flapping_is_damped() {
    let receiver = WebhookReceiver::start(vec![]);
    let sim = quiet_sim(2);
    let [victim, steady] = [&sim.clusters()[0], &sim.clusters()[1]];
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "{FAST_TIMINGS}\n[slack]\nwebhook_url = {:?}\nca_file = {:?}\n\
         [alerts]\ncluster_down_after = \"1s\"\nflap_window = \"1h\"\n",
        receiver.url(),
        receiver.ca_pem_path().display().to_string()
    );
    text.push_str(&cluster_toml(victim, ""));
    text.push_str(&cluster_toml(steady, ""));
    let running = start_pipeline_loop(&parse_config(&text, dir.path()));
    running.wait_all_active(2);

    // Down: one message once the delay has passed, and the gauge.
    let down = Instant::now();
    victim.stop_listening();
    let (published, silent) = running.board.wait_for(WAIT, |p| {
        p.pipeline
            .silent_clusters
            .iter()
            .any(|c| c == victim.name())
    });
    assert!(silent, "{:?}", published.pipeline.silent_clusters);
    assert!(
        down.elapsed() >= Duration::from_secs(1),
        "reported before the delay"
    );
    assert!(receiver.wait_for_requests(1, WAIT));
    let sent = alerts(&receiver);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0].contains(&format!(
            "nightcrier is not watching cluster {}",
            victim.name()
        )),
        "{}",
        sent[0]
    );
    assert!(!sent[0].contains(steady.name()), "{}", sent[0]);

    // Up: one recovered message, and the gauge back to 0.
    victim.restart().unwrap();
    let (published, up) = running.board.wait_for(WAIT, |p| {
        status(p, victim.name()) == Some(ConnectionStatus::Active)
            && p.pipeline.silent_clusters.is_empty()
    });
    assert!(up, "{:?}", published.pipeline.silent_clusters);
    assert!(receiver.wait_for_requests(2, WAIT));
    let sent = alerts(&receiver);
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[1].contains(&format!(
            "nightcrier watches cluster {} again",
            victim.name()
        )),
        "{}",
        sent[1]
    );

    // Down again, for longer than the delay, within the flap window: nothing more.
    let down = Instant::now();
    victim.stop_listening();
    let (published, long_down) = running.board.wait_for(WAIT, |p| {
        status(p, victim.name()) != Some(ConnectionStatus::Active)
            && down.elapsed() >= Duration::from_secs(3)
    });
    assert!(long_down, "{:?}", status(&published, victim.name()));
    assert!(published.pipeline.silent_clusters.is_empty(), "damped");
    victim.restart().unwrap();
    let (published, up) = running.board.wait_for(WAIT, |p| {
        status(p, victim.name()) == Some(ConnectionStatus::Active)
    });
    assert!(up, "{:?}", status(&published, victim.name()));
    // A few more snapshots, so that a message the flap caused would have been sent.
    let seen = published.sequence;
    running.board.wait_for(WAIT, |p| p.sequence >= seen + 3);
    assert_eq!(alerts(&receiver).len(), 2, "{:?}", alerts(&receiver));
    running.stop().unwrap();
}
