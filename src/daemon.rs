//! The running daemon: the validated configuration becomes one event loop holding every
//! enabled cluster's session and the triage pipeline behind it.

use std::sync::Arc;

use crate::admin::server::AdminServer;
use crate::cluster::connection::ConnectionSettings;
use crate::config::{ClusterConfig, Config, LoadOptions};
use crate::event_loop::{EventLoop, LoopOptions, SignalSet};
use crate::health::board::HealthBoard;
use crate::health::server::HealthServer;
use crate::pipeline::{PipelineSettings, TriagePipeline};
use crate::registry::Registry;
use crate::reload::Reloader;

/// The enabled clusters of this replica, shared between the connections and the pipeline.
pub fn enabled_clusters(config: &Config) -> Vec<Arc<ClusterConfig>> {
    Registry::load(config)
        .enabled()
        .into_iter()
        .map(|c| Arc::new(c.clone()))
        .collect()
}

/// Builds the triage pipeline a configuration asks for.
pub fn pipeline_for(
    config: &Config,
    clusters: &[Arc<ClusterConfig>],
) -> Result<TriagePipeline, String> {
    let slack = config.slack.webhook_url.clone().map(|url| {
        (
            url,
            config.slack.ca_file.clone(),
            config.slack.max_attempts,
            config.connection.read_timeout,
        )
    });
    TriagePipeline::new(PipelineSettings::from_config(config), clusters, slack)
}

pub fn loop_options(config: &Config, signals: SignalSet) -> LoopOptions {
    LoopOptions {
        settings: ConnectionSettings::from_config(config),
        shutdown_timeout: config.shutdown_timeout,
        publish_interval: Some(config.health.publish_interval),
        signals,
        reloader: None,
    }
}

/// Runs until SIGTERM/SIGINT. SIGHUP reads the configuration again with `load`.
pub fn run(config: Config, mut load: LoadOptions) -> Result<(), String> {
    // Reload the file that was found, even if it was found by searching.
    load.config_path = Some(config.source.clone());
    let clusters = enabled_clusters(&config);
    log::info!(
        "starting: {} clusters enabled{}, {} with triage",
        clusters.len(),
        config
            .shard
            .map(|s| format!(" in shard {}/{}", s.index, s.count))
            .unwrap_or_default(),
        clusters.iter().filter(|c| c.triage_ready()).count()
    );
    crate::limits::apply_fd_limit(clusters.len(), config.agent.max_concurrent_agents, true);
    let pipeline = pipeline_for(&config, &clusters)?;
    let board = HealthBoard::new();
    // Kept alive for the run; dropping it stops the health thread.
    let _health = if config.health.enabled {
        let stale_after = config.health.publish_interval * 3;
        // The error names the server and the address: `health server: cannot listen on …`.
        let server = HealthServer::start(config.health.listen, board.clone(), stale_after)
            .map_err(|e| e.to_string())?;
        log::info!("health and metrics on http://{}", server.local_addr());
        Some(server)
    } else {
        None
    };
    // Kept alive for the run too; its own listener, never the health one.
    let _admin = match config.admin.listen {
        Some(listen) => {
            let router = crate::admin::router(config.workspace_root.clone());
            let server = AdminServer::start(listen, router).map_err(|e| e.to_string())?;
            log::info!("incident pages on http://{}/incidents", server.local_addr());
            Some(server)
        }
        None => None,
    };
    // Snapshots are published with health off too: the silent-cluster watch reads them.
    let mut options = loop_options(&config, SignalSet::All);
    options.reloader = Some(Reloader::new(
        config,
        Box::new(move || crate::config::load(&load)),
    ));
    let mut event_loop =
        EventLoop::new(options, pipeline, board).map_err(|e| format!("event loop: {e}"))?;
    event_loop
        .run(&clusters)
        .map_err(|e| format!("event loop: {e}"))?;
    log::info!("stopped");
    Ok(())
}
