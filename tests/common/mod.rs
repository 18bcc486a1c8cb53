//! Shared harness for the integration tests: a simulator, a loop on its own thread, and
//! event-driven waits (the loop's published health, the event channel) with time bounds.
#![allow(dead_code, unused_imports)]

use std::path::Path;
use std::sync::mpsc::{self, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nightcrier::cluster::status::{ConnectionStatus, HealthSnapshot};
use nightcrier::config::{self, Config, FlagOverrides};
use nightcrier::event_loop::{EventLoop, LoopHandle, SignalSet};
use nightcrier::events::ClusterEvent;
use nightcrier::health::board::HealthBoard;
use nightcrier::sim::{SimCluster, SimOptions, Simulator};
use nightcrier::stage::Stage;

pub mod connect_proxy;
pub mod exec;
pub mod fake_slack;
pub mod openssl;
pub mod peers;
pub mod snapshots;
pub mod tls;
pub mod webhook;
pub use tls::tls_material;

pub const WAIT: Duration = Duration::from_secs(20);

/// A simulator whose clusters send faults only on demand (`emit_fault`).
pub fn quiet_sim(clusters: usize) -> Simulator {
    Simulator::start(SimOptions {
        clusters,
        rate_per_sec: 0.0,
        ..SimOptions::default()
    })
    .expect("simulator starts")
}

/// Fast timings so failure paths finish in well under a second.
pub const FAST_TIMINGS: &str = r#"
[reconnect]
initial = "50ms"
max = "400ms"
multiplier = 2.0
jitter = 0.1
stable_after = "30s"

[connection]
connect_timeout = "2s"
read_timeout = "2s"
ping_interval = "30s"
"#;

pub fn cluster_toml(cluster: &SimCluster, mcp_extra: &str) -> String {
    format!(
        "[[clusters]]\nname = \"{}\"\n[clusters.mcp]\nendpoint = \"{}\"\n{}\n",
        cluster.name(),
        cluster.endpoint(),
        mcp_extra
    )
}

pub fn parse_config(text: &str, dir: &Path) -> Config {
    let source = dir.join("nightcrier.toml");
    match config::parse_str(text, &source, &[], &FlagOverrides::default()) {
        Ok(config) => config,
        Err(errors) => panic!("test config invalid:\n{errors}\n---\n{text}"),
    }
}

/// A config with every simulator cluster, fast timings and `extra` globals.
pub fn config_for(sim: &Simulator, extra: &str) -> Config {
    let mut text = format!("{extra}\n{FAST_TIMINGS}\n");
    for cluster in sim.clusters() {
        text.push_str(&cluster_toml(cluster, ""));
    }
    parse_config(&text, Path::new("."))
}

pub struct RunningLoop {
    pub handle: LoopHandle,
    pub board: HealthBoard,
    pub events: Receiver<ClusterEvent>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

pub fn start_loop(config: &Config) -> RunningLoop {
    let (event_tx, events) = mpsc::channel();
    let mut running = start_stage_loop(config, SignalSet::None, move |_| event_tx);
    running.events = events;
    running
}

/// Runs a loop with the daemon's triage pipeline; agents are reaped on SIGCHLD.
pub fn start_pipeline_loop(config: &Config) -> RunningLoop {
    start_stage_loop(config, SignalSet::ChildOnly, |clusters| {
        nightcrier::daemon::pipeline_for(config, clusters).expect("pipeline")
    })
}

pub fn start_stage_loop<S: Stage + Send + 'static>(
    config: &Config,
    signals: SignalSet,
    make_stage: impl FnOnce(&[Arc<nightcrier::config::ClusterConfig>]) -> S,
) -> RunningLoop {
    let _ = env_logger::builder().is_test(true).try_init();
    let mut options = nightcrier::daemon::loop_options(config, signals);
    options.publish_interval = Some(Duration::from_millis(200));
    options.shutdown_timeout = options.shutdown_timeout.min(Duration::from_secs(10));
    let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
    let stage = make_stage(&clusters);
    let board = HealthBoard::new();
    let (handle_tx, handle_rx) = mpsc::channel();
    let loop_board = board.clone();
    let thread = std::thread::spawn(move || {
        let mut event_loop = EventLoop::new(options, stage, loop_board)?;
        handle_tx
            .send(event_loop.handle())
            .expect("test thread waits for the handle");
        event_loop.run(&clusters)
    });
    let handle = handle_rx
        .recv_timeout(WAIT)
        .expect("event loop did not start");
    let (_, events) = mpsc::channel();
    RunningLoop {
        handle,
        board,
        events,
        thread: Some(thread),
    }
}

impl RunningLoop {
    /// Waits until `name` reports `status`; returns its snapshot or panics with the last one.
    pub fn wait_status(&self, name: &str, status: ConnectionStatus) -> HealthSnapshot {
        self.wait_cluster(name, |c| c.status == status, &format!("status {status}"))
    }

    pub fn wait_cluster(
        &self,
        name: &str,
        condition: impl Fn(&HealthSnapshot) -> bool,
        what: &str,
    ) -> HealthSnapshot {
        let (published, ok) = self.board.wait_for(WAIT, |p| {
            p.clusters.iter().any(|c| c.name == name && condition(c))
        });
        let snapshot = published.clusters.iter().find(|c| c.name == name).cloned();
        match (ok, snapshot) {
            (true, Some(snapshot)) => snapshot,
            (_, snapshot) => panic!("cluster {name} never reached {what}; last: {snapshot:#?}"),
        }
    }

    pub fn wait_all_active(&self, count: usize) {
        let (published, ok) = self.board.wait_for(WAIT, |p| p.summary.active == count);
        assert!(
            ok,
            "not all {count} clusters active: {:#?}",
            published.summary
        );
    }

    /// Receives events until `count` have arrived or the time bound passes.
    pub fn collect(&self, count: usize) -> Vec<ClusterEvent> {
        let deadline = Instant::now() + WAIT;
        let mut received = Vec::new();
        while received.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => received.push(event),
                Err(_) => break,
            }
        }
        received
    }

    /// Shuts the loop down and returns what `run` returned.
    pub fn stop(mut self) -> std::io::Result<()> {
        self.handle.shutdown();
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            _ => panic!("event loop thread panicked"),
        }
    }
}

impl Drop for RunningLoop {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.shutdown();
            let _ = thread.join();
        }
    }
}
