//! The running daemon: the validated configuration becomes one event loop holding every
//! enabled cluster's session.

use std::sync::Arc;

use crate::cluster::connection::ConnectionSettings;
use crate::config::Config;
use crate::event_loop::{EventLoop, LoopOptions};
use crate::events::{ClusterEvent, EventSink};
use crate::health::board::HealthBoard;
use crate::registry::Registry;

/// Logs every fault with its cluster, and counts them.
#[derive(Default)]
pub struct LoggingSink {
    pub received: u64,
}

impl EventSink for LoggingSink {
    fn deliver(&mut self, event: ClusterEvent) {
        self.received += 1;
        let fault = &event.event;
        log::info!(
            "cluster={} fault={} type={} severity={} resource={}/{}/{}",
            event.cluster_name(),
            fault.fault_id,
            fault.fault_type,
            fault.severity,
            fault.resource.namespace.as_deref().unwrap_or("-"),
            fault.resource.kind,
            fault.resource.name
        );
    }
}

pub fn run(config: Config) -> Result<(), String> {
    let registry = Registry::load(&config);
    let clusters: Vec<_> = registry
        .enabled()
        .into_iter()
        .map(|c| Arc::new(c.clone()))
        .collect();
    log::info!(
        "starting: {} clusters configured, {} enabled{}",
        registry.len(),
        clusters.len(),
        config
            .shard
            .map(|s| format!(" in shard {}/{}", s.index, s.count))
            .unwrap_or_default()
    );
    let options = LoopOptions {
        settings: ConnectionSettings::from_config(&config),
        shutdown_timeout: config.shutdown_timeout,
        publish_interval: config.health.publish_interval,
        handle_signals: true,
    };
    let mut event_loop = EventLoop::new(options, LoggingSink::default(), HealthBoard::new())
        .map_err(|e| format!("event loop: {e}"))?;
    event_loop
        .run(&clusters)
        .map_err(|e| format!("event loop: {e}"))?;
    log::info!("stopped after {} faults", event_loop.sink().received);
    Ok(())
}
