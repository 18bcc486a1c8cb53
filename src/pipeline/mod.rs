//! From fault to finished triage, on the loop thread: intake (severity filter, dedup, the
//! bounded queue), dispatch (fair across clusters, per-cluster circuit breakers, at most
//! `max_concurrent_agents` agents), agent completion, Slack, and the pending file that
//! carries queued faults across a restart. Every workspace file is written (and the
//! agent's report read) by the workspace writer's thread, never here.

pub mod budget;
mod budget_gate;
mod correlated_incidents;
pub mod correlation;
mod dispatch;
mod incident_slack;
mod intake;
pub mod pending;
mod silence;
pub mod silent_clusters;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use mio::Token;

use crate::agent::breaker::CircuitBreaker;
use crate::agent::executor::{AgentExecutor, AgentId, AgentOutcome, AgentPolicy};
use crate::agent::permissions::ClusterPermissions;
use crate::agent::preflight::{PreflightRequest, PreflightWorker};
use crate::agent::retention::{RetentionWorker, SweepRequest};
use crate::agent::workspace::IncidentRecord;
use crate::agent::workspace_writer::{Disk, WorkspaceWriter, WriteJob};
use crate::config::{
    AgentConfig, BreakerConfig, ClusterConfig, Config, PreflightConfig, Secret, Severity,
    WorkspaceConfig,
};
use crate::dedup::{DedupSlot, Deduplicator};
use crate::events::{ClusterEvent, EventSink, FaultView};
use crate::metrics::counters::{ClusterCounters, DurationHistogram, PipelineSnapshot};
use crate::name_map::NameMap;
use crate::net::dns::Answer;
use crate::net::proxy::HttpProxy;
use crate::notify::sender::SlackNotifier;
use crate::notify::slack::{RetryPolicy, TriageNotification};
use crate::notify::slack_app::{SlackApp, SlackAppSettings};
use crate::queue::{OverflowPolicy, ShardedQueue};
use crate::reload::ReloadPlan;
use crate::stage::{Stage, StageContext};

/// The settings the pipeline takes from the configuration.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    pub severity_threshold: Severity,
    pub workspace_root: PathBuf,
    pub workspace: WorkspaceConfig,
    pub agent: AgentConfig,
    pub breaker: BreakerConfig,
    pub preflight: PreflightConfig,
    pub cluster_queue_size: usize,
    pub global_queue_size: usize,
    pub overflow_policy: OverflowPolicy,
    pub dedup_window: Duration,
    pub dedup_max_entries: usize,
    pub correlation: crate::config::CorrelationConfig,
    pub budget: crate::config::BudgetConfig,
    pub alerts: crate::config::AlertsConfig,
    pub notify_on_agent_failure: bool,
    /// Take `pending.jsonl` from the workspace root at start.
    pub resume_pending: bool,
    /// `[[silences]]` of the file; the API's are handed in by the loop.
    pub silences: Vec<crate::silence::Silence>,
    /// The silences API's token: hidden from agents like the other secrets.
    pub admin_token: Option<Secret>,
    /// Slack app mode (one thread per incident), when a bot token is set.
    pub slack_app: Option<SlackAppSettings>,
    /// `[[slack.routes]]`; a reload applies new ones.
    pub slack_routes: Vec<crate::config::SlackRoute>,
    /// The HTTP proxy Slack is reached through (`slack.proxy`, else `HTTPS_PROXY`).
    pub slack_proxy: Option<HttpProxy>,
}

impl PipelineSettings {
    pub fn from_config(config: &Config) -> Self {
        PipelineSettings {
            severity_threshold: config.severity_threshold,
            workspace_root: config.workspace_root.clone(),
            workspace: config.workspace.clone(),
            agent: config.agent.clone(),
            breaker: config.breaker.clone(),
            preflight: config.preflight.clone(),
            cluster_queue_size: config.queue.cluster_queue_size,
            global_queue_size: config.queue.global_queue_size,
            overflow_policy: config.queue.overflow_policy,
            dedup_window: config.dedup.window,
            dedup_max_entries: config.dedup.max_entries,
            correlation: config.correlation.clone(),
            budget: config.budget.clone(),
            alerts: config.alerts.clone(),
            notify_on_agent_failure: config.slack.notify_on_agent_failure,
            resume_pending: true,
            silences: config.silences.clone(),
            admin_token: config.admin.token.clone(),
            slack_app: slack_app_settings(config),
            slack_routes: config.slack.routes.clone(),
            slack_proxy: slack_proxy(config),
        }
    }
}

/// The proxy for Slack, when Slack is on and one is set or in the environment.
fn slack_proxy(config: &Config) -> Option<HttpProxy> {
    let slack = &config.slack;
    if slack.webhook_url.is_none() && slack.bot_token.is_none() {
        return None;
    }
    match HttpProxy::from_setting_or_env(slack.proxy.as_ref()) {
        Ok(proxy) => proxy,
        Err(e) => {
            log::error!("HTTPS_PROXY is not usable ({e}); Slack is reached directly");
            None
        }
    }
}

/// App mode's settings, when the configuration asks for it (a bot token and a channel).
fn slack_app_settings(config: &Config) -> Option<SlackAppSettings> {
    let slack = &config.slack;
    if slack.webhook_url.is_some() {
        return None;
    }
    let api_url = crate::config::Endpoint::parse(&slack.api_url).ok()?;
    Some(SlackAppSettings {
        proxy: slack_proxy(config),
        resolved_check_interval: slack.resolved_check_interval,
        channel: slack.channel.clone()?,
        api_url,
        bot_token: slack.bot_token.clone()?,
        ca_file: slack.ca_file.clone(),
        channel_interval: slack.channel_interval,
        attempt_timeout: config.connection.read_timeout,
        retry: RetryPolicy {
            max_attempts: slack.max_attempts,
            ..RetryPolicy::default()
        },
    })
}

/// One cluster as the pipeline sees it.
struct ClusterSlot {
    config: Arc<ClusterConfig>,
    shard: usize,
    /// Its keys in the deduplicator (forgotten with the slot).
    dedup: DedupSlot,
    breaker: CircuitBreaker,
    counters: ClusterCounters,
    permissions: Option<ClusterPermissions>,
    /// Bounds this cluster's per-fault log lines (queued, skipped, dropped).
    log_budget: crate::logging::LogBudget,
}

/// The fault queue holds at most this many bytes of faults, whatever its count bounds say
/// (a fault's fields are capped, so this is about 250 faults of the largest kind).
pub const QUEUE_MAX_BYTES: usize = 16 * 1024 * 1024;

/// A fault waiting for an agent.
struct QueuedFault {
    event: ClusterEvent,
    /// The correlation group it was released from: its incident lists the group's faults.
    correlation: Option<u64>,
}

/// A fault whose workspace the writer is making; its agent starts once it is made.
struct Preparing {
    event: ClusterEvent,
    /// What incident.json says (status `running`); the end is recorded from it.
    record: IncidentRecord,
    kubeconfig: PathBuf,
    model: String,
    /// The daemon is stopping and the fault went to `pending.jsonl`: its workspace is
    /// removed again, no agent starts.
    handed_to_pending: bool,
}

/// A run that ended (or never started) whose end the writer is recording: it is counted,
/// and its Slack message sent, once the files say so.
struct Ending {
    cluster: String,
    outcome: AgentOutcome,
    /// The message, lacking only the report's summary.
    notification: Option<TriageNotification>,
    /// The agent's report, for the message to point to.
    report: Option<PathBuf>,
    /// Webhook mode: the route's webhook, when a route names one.
    webhook: Option<crate::config::Secret>,
}

/// `pending.jsonl` handed to the writer at shutdown, kept until it says how that went.
struct PendingSave {
    text: Arc<str>,
    faults: usize,
    /// The cluster of each fault, to count a failed write against.
    clusters: Vec<String>,
}

pub struct TriagePipeline {
    settings: PipelineSettings,
    clusters: NameMap<String, ClusterSlot>,
    /// Queue shard index → cluster name.
    shard_names: Vec<String>,
    /// Shard indexes of clusters forgotten, for the next cluster added.
    free_shards: Vec<usize>,
    /// Clusters removed by a reload while they still had queued faults or running agents:
    /// forgotten as soon as that work is done.
    removed: HashSet<String>,
    queue: ShardedQueue<QueuedFault>,
    silences: silence::SilenceStage,
    dedup: Deduplicator,
    correlation: correlated_incidents::Correlation,
    budget: budget_gate::Budget,
    silent_clusters: silent_clusters::SilentClusterWatch,
    executor: AgentExecutor,
    /// Agent timeouts (few: at most `max_concurrent_agents`).
    deadlines: Vec<(Instant, AgentId)>,
    preflight: Option<PreflightWorker>,
    /// Clusters whose preflight is running: their agents wait for the permission record.
    preflight_waiting: HashSet<String>,
    slack: Option<SlackNotifier>,
    slack_app: Option<SlackApp>,
    /// App mode: when the writer is next asked about `resolved` files, and whether it is
    /// answering one question now.
    next_resolution_check: Option<Instant>,
    resolution_check_in_flight: bool,
    agent_duration: DurationHistogram,
    /// Agent failures in a row across all clusters, for the system-degraded alert.
    consecutive_failures: u32,
    system_degraded: bool,
    accepting: bool,
    incidents_started: u64,
    /// Every workspace file goes through it, off the loop thread.
    writer: WorkspaceWriter,
    /// Faults whose workspace is being made, by incident id; each holds an agent's place.
    preparing: HashMap<String, Preparing>,
    /// The incident of every running agent, by incident id (at most
    /// `max_concurrent_agents`): its end and its Slack message are built from it, never
    /// from incident.json read back.
    running: HashMap<String, IncidentRecord>,
    /// Runs whose end is being written, by incident id.
    endings: HashMap<String, Ending>,
    pending_save: Option<PendingSave>,
    reload_ok: bool,
    reload_at: SystemTime,
    reload_failures: u64,
    /// The webhook URL, kept to hide it from agents again after a reload.
    webhook: Option<String>,
    retention: Option<RetentionWorker>,
    next_sweep: Option<Instant>,
    sweep_in_flight: bool,
    sweep_again: bool,
    /// A workspace could not be created on a full disk: no agent starts before this.
    disk_full_until: Option<Instant>,
}

impl TriagePipeline {
    pub fn new(
        settings: PipelineSettings,
        clusters: &[Arc<ClusterConfig>],
        slack: Option<(crate::config::Secret, Option<PathBuf>, u32, Duration)>,
    ) -> Result<TriagePipeline, String> {
        // The admin token too: an agent that could change silences could hide faults.
        let admin_token = settings.admin_token.as_ref().map(Secret::expose);
        // The webhook URL or the bot token: either is hidden from agents.
        let webhook = slack
            .as_ref()
            .map(|(url, ..)| url.expose().to_owned())
            .or_else(|| {
                settings
                    .slack_app
                    .as_ref()
                    .map(|app| app.bot_token.expose().to_owned())
            });
        let slack_secrets = slack_secrets(webhook.as_deref(), &settings.slack_routes);
        let hidden_secrets: Vec<Option<&str>> = slack_secrets
            .iter()
            .map(|s| Some(s.as_str()))
            .chain([admin_token])
            .collect();
        let hidden = hidden_env(
            std::env::vars_os(),
            clusters.iter().map(|c| c.as_ref()),
            &hidden_secrets,
        );
        let slack = match slack {
            Some((url, ca_file, attempts, timeout)) => {
                let policy = RetryPolicy {
                    max_attempts: attempts,
                    ..RetryPolicy::default()
                };
                Some(
                    SlackNotifier::new(&url, ca_file, policy, timeout)?
                        .with_proxy(settings.slack_proxy.clone()),
                )
            }
            None => None,
        };
        let slack_app = settings.slack_app.clone().map(SlackApp::new);
        let mut pipeline = TriagePipeline {
            queue: ShardedQueue::new(
                settings.cluster_queue_size,
                settings.global_queue_size,
                settings.overflow_policy,
            )
            .with_byte_bound(QUEUE_MAX_BYTES, |queued| queued.event.event.held_bytes()),
            silences: silence::SilenceStage::new(settings.silences.clone()),
            dedup: Deduplicator::new(settings.dedup_window, settings.dedup_max_entries),
            correlation: correlated_incidents::Correlation::new(&settings.correlation),
            budget: budget_gate::Budget::load(&settings.workspace_root),
            silent_clusters: silent_clusters::SilentClusterWatch::new(
                settings.alerts.cluster_down_after,
                settings.alerts.flap_window,
            ),
            executor: AgentExecutor::new(settings.agent.kill_grace)
                .with_policy(AgentPolicy::from_config(&settings.agent, hidden)),
            settings,
            clusters: NameMap::default(),
            shard_names: Vec::new(),
            free_shards: Vec::new(),
            removed: HashSet::new(),
            deadlines: Vec::new(),
            preflight: None,
            preflight_waiting: HashSet::new(),
            slack,
            slack_app,
            next_resolution_check: None,
            resolution_check_in_flight: false,
            agent_duration: DurationHistogram::default(),
            consecutive_failures: 0,
            system_degraded: false,
            accepting: true,
            incidents_started: 0,
            writer: WorkspaceWriter::on_this_thread(Box::new(Disk), None),
            preparing: HashMap::new(),
            running: HashMap::new(),
            endings: HashMap::new(),
            pending_save: None,
            reload_ok: true,
            reload_at: SystemTime::now(),
            reload_failures: 0,
            webhook: None,
            retention: None,
            next_sweep: None,
            sweep_in_flight: false,
            sweep_again: false,
            disk_full_until: None,
        };
        for config in clusters {
            pipeline.add_cluster(config.clone());
        }
        pipeline.webhook = webhook;
        Ok(pipeline)
    }

    /// Registers a cluster (or updates its configuration without losing its queue).
    pub fn add_cluster(&mut self, config: Arc<ClusterConfig>) {
        if let Some(slot) = self.clusters.get_mut(&config.name) {
            // Back before its remaining work was done: it stays.
            self.removed.remove(&config.name);
            self.queue.add_shard(slot.shard, config.priority);
            slot.config = config;
            self.count_correlating();
            return;
        }
        let shard = match self.free_shards.pop() {
            Some(shard) => {
                self.shard_names[shard].clone_from(&config.name);
                shard
            }
            None => {
                self.shard_names.push(config.name.clone());
                self.shard_names.len() - 1
            }
        };
        self.queue.add_shard(shard, config.priority);
        let breaker = CircuitBreaker::new(
            self.settings.breaker.failure_threshold,
            self.settings.breaker.cooldown,
        );
        let dedup = self.dedup.slot(&config.name);
        self.clusters.insert(
            config.name.clone(),
            ClusterSlot {
                config,
                shard,
                dedup,
                breaker,
                counters: ClusterCounters {
                    breaker: "closed",
                    ..ClusterCounters::default()
                },
                permissions: None,
                log_budget: crate::logging::LogBudget::default(),
            },
        );
        self.count_correlating();
    }

    pub fn counters(&self, cluster: &str) -> Option<&ClusterCounters> {
        self.clusters.get(cluster).map(|s| &s.counters)
    }

    /// Asks the retention worker for a sweep now (or right after the running one),
    /// and schedules the next periodic one.
    fn request_sweep(&mut self, now: Instant) {
        self.next_sweep = Some(now + self.settings.workspace.sweep_interval);
        let Some(worker) = self.retention.as_ref() else {
            return;
        };
        if self.sweep_in_flight {
            self.sweep_again = true;
            return;
        }
        self.sweep_in_flight = worker.submit(SweepRequest {
            root: self.settings.workspace_root.clone(),
            bounds: self.settings.workspace.clone(),
            running: self.incidents_in_flight(),
            running_grace: self.settings.agent.timeout
                + self.settings.agent.kill_grace
                + Duration::from_secs(60),
            requested_at: SystemTime::now(),
        });
    }

    fn take_sweep_reports(&mut self, now: Instant) {
        let Some(worker) = self.retention.as_ref() else {
            return;
        };
        let reports: Vec<_> = worker.results().collect();
        if reports.is_empty() {
            return;
        }
        for report in reports {
            self.sweep_in_flight = false;
            for error in &report.errors {
                log::warn!("workspace retention: {error}");
            }
            if !report.removed.is_empty() {
                log::info!(
                    "workspace retention removed {} incident workspaces (oldest {}); {} kept, {} bytes",
                    report.removed.len(),
                    report.removed[0],
                    report.kept,
                    report.kept_bytes
                );
            }
        }
        if std::mem::take(&mut self.sweep_again) {
            self.request_sweep(now);
        }
    }

    /// Incidents whose workspace is being made, used by an agent, or written at its end.
    fn incidents_in_flight(&self) -> HashSet<String> {
        let mut incidents = self.executor.running_incidents();
        incidents.extend(self.preparing.keys().cloned());
        incidents.extend(self.endings.keys().cloned());
        incidents
    }

    /// A cluster's work not done yet: faults held for correlation, workspaces being made,
    /// agents running, ends being written.
    fn work_in_flight(&self, cluster: &str) -> usize {
        self.correlation.groups.held_for(cluster)
            + self.executor.running_for(cluster)
            + self
                .preparing
                .values()
                .filter(|p| p.event.cluster_name() == cluster)
                .count()
            + self
                .endings
                .values()
                .filter(|e| e.cluster == cluster)
                .count()
    }

    /// Forgets a cluster entirely (slot, queue shard, dedup keys), so its series leave
    /// /metrics too and its memory is given back.
    fn forget_cluster(&mut self, name: &str) {
        self.removed.remove(name);
        if let Some(slot) = self.clusters.remove(name) {
            self.queue.remove_shard(slot.shard);
            self.free_shards.push(slot.shard);
        }
        self.preflight_waiting.remove(name);
        self.dedup.forget_cluster(name);
        self.count_correlating();
    }

    /// Forgets removed clusters whose remaining work is done.
    fn reclaim_removed(&mut self) {
        if self.removed.is_empty() {
            return;
        }
        let done: Vec<String> = self
            .removed
            .iter()
            .filter(|name| {
                self.work_in_flight(name) == 0
                    && self
                        .clusters
                        .get(*name)
                        .is_none_or(|slot| self.queue.shard_len(slot.shard) == 0)
            })
            .cloned()
            .collect();
        for name in done {
            self.forget_cluster(&name);
            log::info!("cluster={name} removed: its remaining work is done");
        }
    }

    fn submit_preflights(&mut self, only: Option<&[String]>) {
        let Some(worker) = self.preflight.as_ref() else {
            return;
        };
        for slot in self.clusters.values() {
            let config = &slot.config;
            if only.is_some_and(|names| !names.contains(&config.name)) {
                continue;
            }
            let Some(kubeconfig) = config.triage.kubeconfig.clone() else {
                continue;
            };
            if !config.triage_ready() {
                continue;
            }
            let submitted = worker.submit(PreflightRequest {
                cluster: config.name.clone(),
                kubeconfig,
                allow_secrets_access: config.triage.allow_secrets_access,
                kubectl: PathBuf::from(&self.settings.preflight.kubectl),
                timeout: self.settings.preflight.timeout,
            });
            // Only a preflight that will answer may hold the cluster's faults back.
            if submitted {
                self.preflight_waiting.insert(config.name.clone());
            } else {
                self.preflight_waiting.remove(&config.name);
            }
        }
    }
}

impl EventSink for TriagePipeline {
    fn deliver(&mut self, event: ClusterEvent, now: Instant) {
        self.admit(event, now);
    }

    fn offer(&mut self, cluster: &Arc<ClusterConfig>, fault: &FaultView<'_>, now: Instant) {
        let arrival = match fault.key() {
            Some(_) => intake::Arrival::InPlace(fault),
            // A derived key comes from the bounded fields: the owned fault has both.
            None => intake::Arrival::Owned(Box::new(fault.to_event()), SystemTime::now()),
        };
        self.admit_arrival(cluster, arrival, now);
    }
}

impl Stage for TriagePipeline {
    fn start(&mut self, ctx: &mut StageContext) {
        self.writer = match WorkspaceWriter::start(Box::new(Disk), ctx.waker.clone()) {
            Ok(writer) => writer,
            Err(e) => {
                log::error!(
                    "workspace writer did not start: {e}; workspace files are written on the \
                     loop thread"
                );
                WorkspaceWriter::on_this_thread(Box::new(Disk), Some(ctx.waker.clone()))
            }
        };
        match PreflightWorker::start(ctx.waker.clone()) {
            Ok(worker) => self.preflight = Some(worker),
            Err(e) => log::error!(
                "preflight worker did not start: {e}; triage runs without a permission record"
            ),
        }
        self.submit_preflights(None);
        match RetentionWorker::start(ctx.waker.clone()) {
            Ok(worker) => self.retention = Some(worker),
            Err(e) => log::error!(
                "workspace retention worker did not start: {e}; old workspaces are not removed"
            ),
        }
        self.request_sweep(ctx.now);
        if self.slack_app.is_some() {
            // Before any incident is made: the writer runs jobs in order.
            self.writer.submit(WriteJob::ScanSlackThreads {
                root: self.settings.workspace_root.clone(),
            });
        }
        if self.settings.resume_pending {
            self.resume_pending(ctx.now);
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        // Asked on every turn of the loop: the earliest of each part's own, without
        // gathering them first.
        let mut next = self.next_sweep;
        let mut consider = |at: Option<Instant>| {
            if let Some(at) = at {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        };
        consider(self.deadlines.iter().map(|(at, _)| *at).min());
        consider(self.dedup.next_expiry());
        if !self.correlation.groups.is_empty() {
            consider(self.correlation.groups.next_deadline());
        }
        if let Some(slack) = &self.slack {
            consider(slack.next_deadline());
        }
        if let Some(app) = &self.slack_app {
            consider(app.next_deadline());
            consider(self.next_resolution_check);
        }
        consider(self.disk_full_until);
        next
    }

    fn on_tick(&mut self, ctx: &mut StageContext) {
        let now = ctx.now;
        self.take_write_results(ctx);
        self.dedup.expire(now);
        self.tick_correlation(ctx);
        self.tick_budget(ctx);
        if self.deadlines.iter().any(|(at, _)| *at <= now) {
            let due: Vec<AgentId> = self
                .deadlines
                .iter()
                .filter(|(at, _)| *at <= now)
                .map(|(_, id)| *id)
                .collect();
            self.deadlines.retain(|(at, _)| *at > now);
            for id in due {
                if let Some(next) = self.executor.on_deadline(id, now) {
                    self.deadlines.push((next, id));
                }
            }
        }
        if let Some(slack) = self.slack.as_mut() {
            slack.on_tick(ctx);
        }
        if let Some(app) = self.slack_app.as_mut() {
            app.on_tick(ctx);
        }
        self.check_resolutions(now);
        self.persist_slack_threads();
        if self.next_sweep.is_some_and(|at| at <= now) {
            self.request_sweep(now);
        }
        self.dispatch(ctx);
        self.reclaim_removed();
    }

    fn on_ready(&mut self, ctx: &mut StageContext, token: Token) {
        let crate::token::Owner::Stage(id) = crate::token::owner(token) else {
            return;
        };
        if SlackApp::owns(id) {
            if let Some(app) = self.slack_app.as_mut() {
                app.on_ready(ctx, id);
            }
            self.persist_slack_threads();
        } else if let Some(slack) = self.slack.as_mut() {
            slack.on_ready(ctx, id);
        }
    }

    fn on_resolved(&mut self, ctx: &mut StageContext, answer: Answer) {
        let app_call = matches!(
            crate::token::dns_owner(answer.key),
            crate::token::DnsOwner::Stage(id) if SlackApp::owns(id)
        );
        if app_call {
            if let Some(app) = self.slack_app.as_mut() {
                app.on_resolved(ctx, answer);
            }
            self.persist_slack_threads();
        } else if let Some(slack) = self.slack.as_mut() {
            slack.on_resolved(ctx, answer);
        }
    }

    fn on_child_exit(&mut self, ctx: &mut StageContext) {
        self.reap(ctx);
    }

    fn on_wake(&mut self, ctx: &mut StageContext) {
        self.take_write_results(ctx);
        self.take_sweep_reports(ctx.now);
        let Some(worker) = self.preflight.as_ref() else {
            return;
        };
        let results: Vec<ClusterPermissions> = worker.results().collect();
        for permissions in results {
            self.preflight_waiting.remove(&permissions.cluster);
            let Some(slot) = self.clusters.get_mut(&permissions.cluster) else {
                continue;
            };
            for warning in &permissions.warnings {
                log::warn!("cluster={} preflight: {warning}", permissions.cluster);
            }
            log::info!(
                "cluster={} preflight: minimum permissions {}",
                permissions.cluster,
                if permissions.minimum_met {
                    "met"
                } else {
                    "NOT met"
                }
            );
            slot.permissions = Some(permissions);
        }
    }

    fn snapshot(&self) -> PipelineSnapshot {
        let mut snapshot = PipelineSnapshot {
            agents_running: self.executor.running(),
            agents_starting: self.preparing.len(),
            queue_depth: self.queue.len(),
            faults_held: self.correlation.groups.held(),
            agent_duration: self.agent_duration.clone(),
            correlation: self.correlation.counters.clone(),
            budget: self.budget_remaining(),
            silent_clusters: self.silent_cluster_names(),
            slack: match (&self.slack, &self.slack_app) {
                (Some(webhook), _) => webhook.counters(),
                (None, Some(app)) => app.counters(),
                (None, None) => Default::default(),
            },
            system_degraded: self.system_degraded,
            config_last_reload_successful: self.reload_ok,
            config_last_reload_timestamp_seconds: self
                .reload_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
            config_reload_failures: self.reload_failures,
            faults_silenced: self.silences.set.silenced_counts().clone(),
            ..PipelineSnapshot::default()
        };
        for (name, slot) in &self.clusters {
            let mut counters = slot.counters.clone();
            counters.queue_depth = self.queue.shard_len(slot.shard);
            counters.agents_running = self.executor.running_for(name);
            counters.breaker = slot.breaker.state_name();
            counters.budget_remaining =
                self.cluster_budget_remaining(slot.config.triage.max_runs_per_day, name);
            snapshot.clusters.insert(name.clone(), counters);
            if let Some(permissions) = &slot.permissions {
                snapshot
                    .permissions
                    .insert(name.clone(), permissions.clone());
            }
        }
        snapshot
    }

    fn on_cluster_health(
        &mut self,
        ctx: &mut StageContext,
        clusters: &[crate::cluster::status::HealthSnapshot],
    ) {
        self.watch_clusters(ctx, clusters);
    }

    fn begin_shutdown(&mut self, ctx: &mut StageContext) {
        self.release_held(ctx.now);
        self.accepting = false;
        self.save_pending();
        self.save_budget();
        if self.executor.running() > 0 {
            log::info!(
                "waiting for {} running agents to finish",
                self.executor.running()
            );
        }
    }

    /// No agent running, every file written (within the shutdown timeout: the loop stops
    /// waiting then), every Slack message delivered.
    fn is_drained(&self) -> bool {
        self.executor.running() == 0
            && self.preparing.is_empty()
            && self.endings.is_empty()
            && self.writer.is_idle()
            && self.slack.as_ref().is_none_or(SlackNotifier::is_idle)
            && self.slack_app.as_ref().is_none_or(SlackApp::is_idle)
    }

    fn terminate(&mut self, _ctx: &mut StageContext) -> Duration {
        let stopped = self.executor.terminate_all();
        if stopped > 0 {
            log::warn!("sent SIGTERM to {stopped} agent process groups");
        }
        self.settings.agent.kill_grace
    }

    fn apply_reload(&mut self, _ctx: &mut StageContext, config: &Config, plan: &ReloadPlan) {
        // Live: thresholds, agent settings, preflight, notification choice. Queue, dedup
        // and Slack settings keep their running values (the reload names them).
        let fresh = PipelineSettings::from_config(config);
        self.settings.severity_threshold = fresh.severity_threshold;
        self.settings.workspace = fresh.workspace;
        self.settings.agent = fresh.agent;
        self.settings.preflight = fresh.preflight;
        self.settings.notify_on_agent_failure = fresh.notify_on_agent_failure;
        if self.silences.set.file() != fresh.silences.as_slice() {
            log::info!("silences in the file: {} now", fresh.silences.len());
            self.silences.set.set_file(fresh.silences);
        }
        // Open incidents keep their window; new ones take the new settings.
        self.correlation.enabled = fresh.correlation.enabled;
        self.correlation
            .groups
            .set_timing(fresh.correlation.window, fresh.correlation.hold);
        self.settings.correlation = fresh.correlation;
        self.silent_clusters
            .set_timing(fresh.alerts.cluster_down_after, fresh.alerts.flap_window);
        // New ceilings apply at once to what was already spent.
        self.settings.budget = fresh.budget;
        self.settings.slack_routes = fresh.slack_routes;
        for cluster in plan.start.iter().chain(&plan.reconnect).chain(&plan.update) {
            self.add_cluster(cluster.clone());
        }
        for name in &plan.stop {
            let Some(shard) = self.clusters.get(name).map(|s| s.shard) else {
                continue;
            };
            let queued = self.queue.shard_len(shard);
            if queued == 0 && self.work_in_flight(name) == 0 {
                self.forget_cluster(name);
                log::info!("cluster={name} removed");
            } else {
                // Its queued faults and running agents finish; no new faults arrive.
                self.removed.insert(name.clone());
                log::info!(
                    "cluster={name} removed: {queued} queued faults and {} running agents finish first",
                    self.work_in_flight(name)
                );
            }
        }
        self.submit_preflights(Some(&plan.preflight));
        // New API keys are hidden from agents at once, new agent settings apply to the
        // next agent.
        let slack_secrets = slack_secrets(self.webhook.as_deref(), &self.settings.slack_routes);
        let reload_secrets: Vec<Option<&str>> = slack_secrets
            .iter()
            .map(|s| Some(s.as_str()))
            .chain([
                self.settings.admin_token.as_ref().map(Secret::expose),
                config.admin.token.as_ref().map(Secret::expose),
            ])
            .collect();
        let hidden = hidden_env(std::env::vars_os(), config.clusters.iter(), &reload_secrets);
        self.executor
            .set_policy(AgentPolicy::from_config(&self.settings.agent, hidden));
        self.reload_ok = true;
        self.reload_at = SystemTime::now();
    }

    fn set_runtime_silences(&mut self, silences: Arc<Vec<crate::silence::Silence>>) {
        self.silences.set_runtime(silences);
    }

    fn reload_failed(&mut self) {
        self.reload_ok = false;
        self.reload_at = SystemTime::now();
        self.reload_failures += 1;
    }

    fn kill(&mut self, ctx: &mut StageContext) {
        if self.executor.running() > 0 {
            log::warn!("killing {} agent process groups", self.executor.running());
            self.executor.kill_all();
        }
        self.reap(ctx);
    }
}

/// Environment variables agents must never get, even when `agent.env_allow` names them:
/// every `NIGHTCRIER_*` variable, and any variable holding an MCP API key or the webhook URL
/// (`api_key_env` / `webhook_url_env`, under whatever name).
/// The webhook URL or bot token, and every route's webhook URL.
fn slack_secrets(main: Option<&str>, routes: &[crate::config::SlackRoute]) -> Vec<String> {
    main.map(str::to_owned)
        .into_iter()
        .chain(
            routes
                .iter()
                .filter_map(|r| r.webhook_url.as_ref().map(|u| u.expose().to_owned())),
        )
        .collect()
}

fn hidden_env<'a>(
    vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
    clusters: impl Iterator<Item = &'a ClusterConfig>,
    others: &[Option<&str>],
) -> Vec<String> {
    let mut secrets: Vec<String> = clusters
        .filter_map(|c| c.mcp.api_key.as_ref().map(|k| k.expose().to_owned()))
        .collect();
    secrets.extend(others.iter().flatten().map(|s| s.to_string()));
    vars.filter_map(|(name, value)| Some((name.into_string().ok()?, value)))
        .filter(|(name, value)| {
            name.starts_with("NIGHTCRIER_")
                || value
                    .to_str()
                    .is_some_and(|v| !v.is_empty() && secrets.iter().any(|s| s == v))
        })
        .map(|(name, _)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Endpoint, Secret};

    #[test]
    fn agents_never_see_api_keys_webhook_admin_token_or_nightcrier_variables() {
        let mut cluster =
            ClusterConfig::new("a", Endpoint::parse("http://127.0.0.1:1/mcp").unwrap());
        cluster.mcp.api_key = Some(Secret::new("key-123"));
        let vars = [
            ("MY_MCP_KEY", "key-123"),
            ("HOOK", "https://hooks.example/services/T/B/X"),
            ("NIGHTCRIER_ANYTHING", "x"),
            ("ADMIN_TOKEN", "admin-s3cret"),
            ("PATH", "/usr/bin"),
            ("EMPTY", ""),
        ]
        .map(|(k, v)| (k.into(), v.into()));
        let mut hidden = hidden_env(
            vars.into_iter(),
            std::iter::once(&cluster),
            &[
                Some("https://hooks.example/services/T/B/X"),
                Some("admin-s3cret"),
            ],
        );
        hidden.sort();
        assert_eq!(
            hidden,
            ["ADMIN_TOKEN", "HOOK", "MY_MCP_KEY", "NIGHTCRIER_ANYTHING"]
        );
    }

    #[test]
    fn a_cluster_whose_preflight_could_not_be_submitted_is_not_held_back() {
        let text =
            "[[clusters]]\nname = \"a\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\
                    [clusters.triage]\nenabled = true\nkubeconfig = \"kc-a\"\n";
        let config = crate::config::parse_str(
            text,
            std::path::Path::new("t.toml"),
            &[],
            &crate::config::FlagOverrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
        let mut settings = PipelineSettings::from_config(&config);
        settings.resume_pending = false;
        let mut p = TriagePipeline::new(settings, &clusters, None).unwrap();
        p.preflight = Some(PreflightWorker::stopped());
        p.submit_preflights(None);
        // No result will ever come for it, so waiting would hold its faults forever.
        assert!(p.preflight_waiting.is_empty(), "{:?}", p.preflight_waiting);
    }

    fn parse(text: &str) -> Config {
        crate::config::parse_str(
            text,
            std::path::Path::new("t.toml"),
            &[],
            &crate::config::FlagOverrides::default(),
        )
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_cluster_removed_with_work_left_is_reclaimed_once_the_work_is_done() {
        let cluster = |name: &str, port: u16| {
            format!(
                "[[clusters]]\nname = \"{name}\"\nseverity_threshold = \"info\"\n[clusters.mcp]\n\
                 endpoint = \"http://127.0.0.1:{port}/mcp\"\n[clusters.triage]\nenabled = true\n\
                 kubeconfig = \"kc-{name}\"\n"
            )
        };
        // Both have the same fault: correlation would hold it, which is tested on its own.
        let both = parse(&format!(
            "[correlation]\nenabled = false\n{}{}",
            cluster("gone", 1),
            cluster("kept", 2)
        ));
        let clusters: Vec<_> = both.clusters.iter().cloned().map(Arc::new).collect();
        let mut settings = PipelineSettings::from_config(&both);
        settings.resume_pending = false;
        let mut p = TriagePipeline::new(settings, &clusters, None).unwrap();
        let now = Instant::now();
        p.admit(
            ClusterEvent {
                cluster: p.clusters["gone"].config.clone(),
                event: crate::events::FaultEvent {
                    fault_id: "f1".into(),
                    fault_type: "CrashLoop".into(),
                    severity: "critical".into(),
                    ..Default::default()
                },
                received_at: SystemTime::now(),
            },
            now,
        );
        assert_eq!(p.queue.len(), 1);

        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), Token(usize::MAX)).unwrap());
        let resolver = crate::net::dns::Resolver::start(waker.clone()).unwrap();
        let mut tls = crate::net::tls::TlsConfigs::new();
        let mut inbound = crate::net::transport::ReadBuffers::with_capacity(1024);
        let mut ctx = StageContext {
            now,
            registry: poll.registry(),
            resolver: &resolver,
            tls: &mut tls,
            inbound: &mut inbound,
            waker: &waker,
        };
        let only_kept = parse(&cluster("kept", 2));
        let plan = ReloadPlan {
            stop: vec!["gone".into()],
            ..ReloadPlan::default()
        };
        p.apply_reload(&mut ctx, &only_kept, &plan);
        // Its queued fault still has to run.
        assert!(p.counters("gone").is_some());

        // The work is done (here: its fault taken from the queue).
        assert!(p.queue.pop_fair(|_| true).is_some());
        p.on_tick(&mut ctx);
        assert!(
            p.counters("gone").is_none(),
            "the removed cluster was never reclaimed"
        );
        assert!(p.counters("kept").is_some());
        assert_eq!(p.dedup.len(), 0, "its dedup keys stay behind");
    }

    #[test]
    fn a_fault_whose_workspace_is_being_made_at_shutdown_goes_to_pending_and_runs_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("incidents");
        let config = parse(&format!(
            "workspace_root = {:?}\n[[clusters]]\nname = \"c\"\nseverity_threshold = \"info\"\n\
             [clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n[clusters.triage]\n\
             enabled = true\nkubeconfig = \"kc-c\"\n",
            root.display().to_string()
        ));
        let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
        let mut settings = PipelineSettings::from_config(&config);
        settings.resume_pending = false;
        let mut p = TriagePipeline::new(settings, &clusters, None).unwrap();
        p.admit(
            ClusterEvent {
                cluster: p.clusters["c"].config.clone(),
                event: crate::events::FaultEvent {
                    fault_id: "made-at-shutdown".into(),
                    fault_type: "CrashLoop".into(),
                    severity: "critical".into(),
                    ..Default::default()
                },
                received_at: SystemTime::now(),
            },
            Instant::now(),
        );

        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), Token(usize::MAX)).unwrap());
        let resolver = crate::net::dns::Resolver::start(waker.clone()).unwrap();
        let mut tls = crate::net::tls::TlsConfigs::new();
        let mut inbound = crate::net::transport::ReadBuffers::with_capacity(1024);
        let mut ctx = StageContext {
            now: Instant::now(),
            registry: poll.registry(),
            resolver: &resolver,
            tls: &mut tls,
            inbound: &mut inbound,
            waker: &waker,
        };
        // The writer is asked for the workspace; the daemon stops before its answer is taken.
        p.dispatch(&mut ctx);
        assert_eq!((p.preparing.len(), p.queue.len()), (1, 0));
        p.begin_shutdown(&mut ctx);
        assert!(!p.is_drained(), "the writer still has answers to give");
        for _ in 0..3 {
            p.take_write_results(&mut ctx);
        }
        assert!(p.is_drained());
        assert_eq!(p.executor.running(), 0, "no agent starts while stopping");
        let pending = std::fs::read_to_string(root.join(pending::PENDING_FILE)).unwrap();
        assert!(pending.contains("made-at-shutdown"), "{pending}");
        let left: Vec<_> = std::fs::read_dir(&root)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        assert!(left.is_empty(), "its workspace was removed again: {left:?}");
    }
}
