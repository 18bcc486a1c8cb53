//! What the event loop drives besides the cluster connections (the triage pipeline in the
//! daemon, a plain sink in tests), and the loop's parts lent to it for one call. Kept apart
//! from the driver (`event_loop`), so the pipeline and the notifier never depend on it.

use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::{Registry, Token, Waker};

use crate::config::Config;
use crate::events::{ClusterEvent, EventSink};
use crate::metrics::counters::PipelineSnapshot;
use crate::net::dns::{Answer, Resolver};
use crate::net::tls::TlsConfigs;
use crate::net::transport::ReadBuffers;
use crate::reload::ReloadPlan;

/// The loop's shared parts, lent to the stage for one call.
pub struct StageContext<'a> {
    pub now: Instant,
    pub registry: &'a Registry,
    pub resolver: &'a Resolver,
    pub tls: &'a mut TlsConfigs,
    pub inbound: &'a mut ReadBuffers,
    pub waker: &'a Arc<Waker>,
}

/// What the loop drives besides the cluster connections: the triage pipeline in the daemon,
/// a plain sink in tests. Every hook runs on the loop thread.
pub trait Stage: EventSink {
    fn start(&mut self, _ctx: &mut StageContext) {}
    /// The earliest moment `on_tick` has work to do.
    fn next_deadline(&self) -> Option<Instant> {
        None
    }
    /// After every loop iteration: due timers, dispatching.
    fn on_tick(&mut self, _ctx: &mut StageContext) {}
    fn on_ready(&mut self, _ctx: &mut StageContext, _token: Token) {}
    fn on_resolved(&mut self, _ctx: &mut StageContext, _answer: Answer) {}
    /// SIGCHLD arrived (signals coalesce: check every child).
    fn on_child_exit(&mut self, _ctx: &mut StageContext) {}
    /// The waker fired (a side thread may have results).
    fn on_wake(&mut self, _ctx: &mut StageContext) {}
    fn snapshot(&self) -> PipelineSnapshot {
        PipelineSnapshot::default()
    }
    /// The clusters' connection states, each time the loop publishes them.
    fn on_cluster_health(
        &mut self,
        _ctx: &mut StageContext,
        _clusters: &[crate::cluster::status::HealthSnapshot],
    ) {
    }
    /// Stop taking work; let running work finish.
    fn begin_shutdown(&mut self, _ctx: &mut StageContext) {}
    fn is_drained(&self) -> bool {
        true
    }
    /// The shutdown timeout passed: ask running work to stop. Returns how long to wait
    /// before `kill`.
    fn terminate(&mut self, _ctx: &mut StageContext) -> Duration {
        Duration::ZERO
    }
    fn kill(&mut self, _ctx: &mut StageContext) {}
    /// A reloaded configuration was applied to the connections; apply it to the stage.
    fn apply_reload(&mut self, _ctx: &mut StageContext, _config: &Config, _plan: &ReloadPlan) {}
    /// A reload was refused (invalid file); the stage only counts it.
    fn reload_failed(&mut self) {}
    /// The silences made through the admin API changed; these are all of them now.
    fn set_runtime_silences(&mut self, _silences: Arc<Vec<crate::silence::Silence>>) {}
}

impl Stage for Sender<ClusterEvent> {}
