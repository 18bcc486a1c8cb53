//! The running daemon: the validated configuration becomes one event loop holding every
//! enabled cluster's session and the triage pipeline behind it.

use std::sync::Arc;

use crate::admin::server::AdminServer;
use crate::cluster::connection::ConnectionSettings;
use crate::config::{ClusterConfig, Config, LoadOptions};
use crate::event_loop::{Command, EventLoop, LoopOptions, SignalSet};
use crate::health::board::HealthBoard;
use crate::health::server::HealthServer;
use crate::pipeline::{PipelineSettings, TriagePipeline};
use crate::registry::Registry;
use crate::reload::Reloader;
use crate::silence::api::SilenceApi;
use crate::silence::store::{Publish, SilenceStore, SILENCES_FILE};

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
    // Snapshots are published with health off too: the silent-cluster watch reads them.
    let mut options = loop_options(&config, SignalSet::All);
    let admin = config.admin.clone();
    let workspace_root = config.workspace_root.clone();
    options.reloader = Some(Reloader::new(
        config,
        Box::new(move || crate::config::load(&load)),
    ));
    let mut event_loop =
        EventLoop::new(options, pipeline, board).map_err(|e| format!("event loop: {e}"))?;
    // The API's silences hold whether or not the admin listener is on this time.
    let handle = event_loop.handle();
    let publish: Publish = Box::new(move |silences| handle.send(Command::Silences(silences)));
    let store = SilenceStore::open(&workspace_root, publish)?;
    let silences = store.compiled();
    if !silences.is_empty() {
        log::info!(
            "silences of the admin API restored from {}: {}",
            workspace_root.join(SILENCES_FILE).display(),
            silences.len()
        );
    }
    event_loop.handle().send(Command::Silences(silences));
    // Kept alive for the run too; its own listener, never the health one.
    let _admin = match admin.listen {
        Some(listen) => {
            if admin.token.is_none() {
                log::warn!(
                    "admin.token is not set: the silences API only lists; creating and \
                     expiring silences is refused"
                );
            }
            let api = SilenceApi::new(Arc::new(store), admin.token.clone());
            let router = crate::admin::router(workspace_root.clone(), api);
            let server = AdminServer::start(listen, router).map_err(|e| e.to_string())?;
            log::info!(
                "incident pages on http://{0}/incidents, silences API on http://{0}/api/v2/silences",
                server.local_addr()
            );
            Some(server)
        }
        None => None,
    };
    event_loop
        .run(&clusters)
        .map_err(|e| format!("event loop: {e}"))?;
    log::info!("stopped");
    Ok(())
}
