//! Slack app mode: one thread per incident through the Web API, over the event loop's own
//! HTTPS client. The root message is posted when the agent starts and edited in place with
//! the outcome; a repeat of the same fault replies in the thread and edits the root again.
//!
//! Each incident's messages go out in order, one call at a time; incidents take turns
//! (round robin), and every call waits for the channel's interval, its method's tier and
//! any `Retry-After`. Each call is one POST on a fresh connection. The bot token never
//! reaches a log line.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::incident_message;
use super::report::ResourceStatus;
use super::slack::{NotificationKind, RetryPolicy, TriageNotification};
use super::slack_api::{self, ApiCall, ApiMethod, ApiOutcome, MAX_ANSWER_BYTES};
use super::slack_pacing::RateGate;
use super::slack_thread::{thread_key, SlackThreadRecord};
use crate::config::{Endpoint, Secret};
use crate::metrics::counters::SlackCounters;
use crate::net::client::{HttpClient, Progress, TlsTarget};
use crate::net::dns::Answer;
use crate::net::http::{write_request, ResponseEvent};
use crate::net::proxy::{HttpProxy, ProxyTunnel, TunnelProgress};
use crate::net::tls;
use crate::stage::StageContext;
use crate::token;

const MAX_ANSWER_HEAD: usize = 16 * 1024;
const KEEPALIVE: Duration = Duration::from_secs(60);

/// Stage token ids at and above this are app mode's, below it webhook mode's.
pub const FIRST_CALL_ID: u64 = 1 << 40;

/// Threads remembered for repeats (thread key → root message), beyond which the oldest is
/// forgotten and its fault, if it comes back, starts a new thread.
const MAX_KNOWN_THREADS: usize = 10_000;

/// How app mode is set up.
#[derive(Clone, Debug)]
pub struct SlackAppSettings {
    /// The channel incidents go to.
    pub channel: String,
    /// The Web API base, `https://slack.com/api` in production.
    pub api_url: Endpoint,
    pub bot_token: Secret,
    pub ca_file: Option<PathBuf>,
    pub channel_interval: Duration,
    pub attempt_timeout: Duration,
    pub retry: RetryPolicy,
    /// How often finished incidents are looked at for the operator's `resolved` file.
    pub resolved_check_interval: Duration,
    /// An HTTP proxy to tunnel through (`slack.proxy`, else `HTTPS_PROXY` minus `NO_PROXY`).
    pub proxy: Option<HttpProxy>,
}

/// A `slack.json` to write into an incident workspace, and a `resolved` file with this
/// text when a run found the resource healthy again.
#[derive(Debug, Clone, PartialEq)]
pub struct ThreadToPersist {
    pub workspace: PathBuf,
    pub record: SlackThreadRecord,
    pub resolved: Option<String>,
}

/// An incident's start as the pipeline knows it.
pub struct IncidentStart {
    pub workspace: PathBuf,
    pub channel: String,
    pub notification: TriageNotification,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MessageKind {
    Root,
    UpdateRoot,
    Reply,
    /// A message of its own, in no thread (the system-degraded alerts).
    Standalone,
}

struct Pending {
    kind: MessageKind,
    message: Value,
    attempt: u32,
    shortened: bool,
}

/// One incident's thread and the messages waiting for it.
struct IncidentThread {
    workspace: PathBuf,
    channel: String,
    ts: Option<String>,
    thread_key: String,
    runs: u32,
    queue: VecDeque<Pending>,
    in_flight: bool,
    /// Backing off after a transient failure.
    not_before: Option<Instant>,
    /// The run ended: the thread is forgotten once its last message went.
    finished: bool,
    /// The root message could not be posted: nothing else of the incident can be sent.
    root_failed: bool,
    /// When it last had a call started (a count across incidents; 0: never).
    /// The turn since which it waits: its creation or its last call (a count shared by
    /// both, so the incident waiting longest goes next and a stream of new incidents never
    /// starves an older one).
    waiting_since: u64,
}

impl IncidentThread {
    /// Queues a message; a thread that had nothing waiting starts waiting now, behind every
    /// thread already waiting (one with a call in flight as well: its next message has
    /// waited only since now).
    fn push(&mut self, message: Pending, turns: &mut u64) {
        if self.queue.is_empty() {
            *turns += 1;
            self.waiting_since = *turns;
        }
        self.queue.push_back(message);
    }
}

struct InFlight {
    incident: String,
    pending: Pending,
    call: ApiCall,
    tunnel: Option<ProxyTunnel>,
    client: Option<HttpClient>,
    deadline: Instant,
    status: Option<u16>,
    retry_after: Option<String>,
    answer: Vec<u8>,
}

pub struct SlackApp {
    settings: SlackAppSettings,
    gate: RateGate,
    threads: HashMap<String, IncidentThread>,
    /// Incidents with a thread open, in the order they came.
    rotation: VecDeque<String>,
    /// Thread key → root message, for repeats; `known_order` evicts the oldest.
    known: HashMap<String, SlackThreadRecord>,
    known_order: VecDeque<String>,
    /// Threads whose last run ended, by thread key, with that run's workspace: the
    /// operator's `resolved` file is looked for there.
    awaiting_resolution: HashMap<String, PathBuf>,
    calls: HashMap<u64, InFlight>,
    next_id: u64,
    /// Threads opened and calls started so far, to order incidents by how long they wait.
    turns: u64,
    wake_at: Option<Instant>,
    to_persist: Vec<ThreadToPersist>,
    counters: SlackCounters,
}

impl SlackApp {
    pub fn new(settings: SlackAppSettings) -> SlackApp {
        SlackApp {
            gate: RateGate::new(settings.channel_interval),
            settings,
            threads: HashMap::new(),
            rotation: VecDeque::new(),
            known: HashMap::new(),
            known_order: VecDeque::new(),
            awaiting_resolution: HashMap::new(),
            calls: HashMap::new(),
            next_id: FIRST_CALL_ID,
            turns: 0,
            wake_at: None,
            to_persist: Vec::new(),
            counters: SlackCounters::default(),
        }
    }

    pub fn owns(id: u64) -> bool {
        id >= FIRST_CALL_ID
    }

    pub fn counters(&self) -> SlackCounters {
        self.counters.clone()
    }

    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.threads.values().all(|t| t.queue.is_empty())
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.calls
            .values()
            .map(|c| c.deadline)
            .chain(self.wake_at)
            .min()
    }

    /// Threads found in the workspaces at start (record, workspace, marked resolved): a
    /// repeat of their fault joins them, and an unresolved one is watched for `resolved`.
    pub fn learn_threads(&mut self, found: Vec<(SlackThreadRecord, PathBuf, bool)>) {
        for (record, workspace, resolved) in found {
            let newer = self
                .known
                .get(&record.thread_key)
                .is_none_or(|known| known.runs <= record.runs);
            if newer {
                if resolved {
                    self.awaiting_resolution.remove(&record.thread_key);
                } else {
                    self.awaiting_resolution
                        .insert(record.thread_key.clone(), workspace);
                }
                self.remember(record);
            }
        }
    }

    /// Threads to look for a `resolved` file in (thread key, workspace), at most `max`.
    pub fn resolution_candidates(&self, max: usize) -> Vec<(String, PathBuf)> {
        self.awaiting_resolution
            .iter()
            .take(max)
            .map(|(key, dir)| (key.clone(), dir.clone()))
            .collect()
    }

    /// The operator marked the incident in `workspace` resolved: its thread's root message
    /// says so, and a reply records it. A thread that has moved on to a newer run is left.
    pub fn mark_resolved(
        &mut self,
        ctx: &mut StageContext,
        thread_key: &str,
        workspace: &std::path::Path,
        notification: &TriageNotification,
        report_path: Option<&str>,
    ) {
        if self
            .awaiting_resolution
            .get(thread_key)
            .map(PathBuf::as_path)
            != Some(workspace)
        {
            return;
        }
        self.awaiting_resolution.remove(thread_key);
        let Some(root) = self.known.get(thread_key).cloned() else {
            return;
        };
        log::info!(
            "slack: incident {} marked resolved; its root message is updated",
            notification.incident_id
        );
        let mut queue = VecDeque::new();
        queue.push_back(pending(
            MessageKind::UpdateRoot,
            incident_message::resolved(notification, report_path, "marked by the operator"),
        ));
        queue.push_back(pending(
            MessageKind::Reply,
            incident_message::resolved_reply(notification),
        ));
        self.open_side_thread(
            "resolved",
            workspace.to_path_buf(),
            root.channel,
            Some(root.ts),
            thread_key,
            queue,
        );
        self.pump(ctx);
    }

    /// Records to write into workspaces, taken by the pipeline for the writer.
    pub fn take_threads_to_persist(&mut self) -> Vec<ThreadToPersist> {
        std::mem::take(&mut self.to_persist)
    }

    /// The agent started: a new root message, or, for a fault whose thread exists, the
    /// root edited back to "investigating" and a reply in its thread.
    pub fn incident_started(
        &mut self,
        ctx: &mut StageContext,
        incident_id: &str,
        start: IncidentStart,
    ) {
        let n = &start.notification;
        let key = thread_key(
            &n.cluster,
            &n.fault_type,
            &n.kind,
            n.namespace.as_deref(),
            &n.name,
        );
        let turn = self.next_turn();
        let mut thread = IncidentThread {
            workspace: start.workspace,
            channel: start.channel,
            ts: None,
            thread_key: key.clone(),
            runs: 1,
            queue: VecDeque::new(),
            in_flight: false,
            not_before: None,
            finished: false,
            root_failed: false,
            waiting_since: turn,
        };
        self.awaiting_resolution.remove(&key);
        match self.known.get(&key).cloned() {
            Some(root) => {
                thread.channel = root.channel;
                thread.ts = Some(root.ts);
                thread.runs = root.runs.saturating_add(1);
                if let Some(known) = self.known.get_mut(&key) {
                    known.runs = thread.runs;
                }
                thread.queue.push_back(pending(
                    MessageKind::UpdateRoot,
                    incident_message::investigating(n, thread.runs),
                ));
                thread.queue.push_back(pending(
                    MessageKind::Reply,
                    incident_message::repeat_reply(n, thread.runs),
                ));
                self.to_persist.push(ThreadToPersist {
                    workspace: thread.workspace.clone(),
                    record: record_of(&thread),
                    resolved: None,
                });
            }
            None => thread.queue.push_back(pending(
                MessageKind::Root,
                incident_message::investigating(n, 1),
            )),
        }
        self.threads.insert(incident_id.to_owned(), thread);
        self.rotation.push_back(incident_id.to_owned());
        self.pump(ctx);
    }

    /// A message of its own in `channel` (the system-degraded and recovered alerts).
    pub fn alert(&mut self, ctx: &mut StageContext, channel: &str, text: &str) {
        let mut queue = VecDeque::new();
        queue.push_back(pending(
            MessageKind::Standalone,
            serde_json::json!({ "text": text }),
        ));
        self.open_side_thread("alert", PathBuf::new(), channel.to_owned(), None, "", queue);
        self.pump(ctx);
    }

    /// A reply in the thread of incident `incident_id` while its thread is open (from the
    /// agent's start until its outcome went out): for a cluster that joins the incident, or
    /// a decision taken about it. `text` is mrkdwn, escaped by the caller. Sent at the next
    /// turn of the loop, after the thread's earlier messages. False when the incident has no
    /// open thread.
    pub fn note(&mut self, incident_id: &str, text: &str) -> bool {
        let Some(thread) = self.threads.get_mut(incident_id) else {
            return false;
        };
        if thread.root_failed {
            return false;
        }
        thread.push(
            pending(MessageKind::Reply, incident_message::reply(text)),
            &mut self.turns,
        );
        true
    }

    /// A reply in the thread of a fault's earlier incident (by thread key), when there is
    /// one: a repeat of the fault was silenced, say. Sent at the next turn of the loop.
    pub fn note_on_thread(&mut self, thread_key: &str, text: &str) -> bool {
        let Some(root) = self.known.get(thread_key).cloned() else {
            return false;
        };
        let mut queue = VecDeque::new();
        queue.push_back(pending(MessageKind::Reply, incident_message::reply(text)));
        self.open_side_thread(
            "note",
            PathBuf::new(),
            root.channel,
            Some(root.ts),
            thread_key,
            queue,
        );
        true
    }

    /// Messages that belong to no running incident (an alert, a note or a resolution in an
    /// existing thread at `ts`), queued as a thread of their own that ends once they went:
    /// it takes its turn behind every thread already waiting.
    fn open_side_thread(
        &mut self,
        kind: &str,
        workspace: PathBuf,
        channel: String,
        ts: Option<String>,
        thread_key: &str,
        queue: VecDeque<Pending>,
    ) {
        let waiting_since = self.next_turn();
        let key = format!("{kind}-{}", self.next_id);
        self.next_id += 1;
        let runs = self.known.get(thread_key).map_or(1, |root| root.runs);
        self.threads.insert(
            key.clone(),
            IncidentThread {
                workspace,
                channel,
                ts,
                thread_key: if thread_key.is_empty() {
                    key.clone()
                } else {
                    thread_key.to_owned()
                },
                runs,
                queue,
                in_flight: false,
                not_before: None,
                finished: true,
                root_failed: false,
                waiting_since,
            },
        );
        self.rotation.push_back(key);
    }

    /// The run ended: the root message is edited to the outcome. A later run of the same
    /// fault (run 2 or more of its thread) whose report finds the resource healthy again
    /// resolves the incident: the root says resolved, a reply says which run found it, and
    /// a `resolved` file in the workspace keeps that across a restart.
    pub fn incident_finished(
        &mut self,
        ctx: &mut StageContext,
        incident_id: &str,
        notification: &TriageNotification,
        report_path: Option<&str>,
    ) {
        let Some(thread) = self.threads.get_mut(incident_id) else {
            return;
        };
        thread.finished = true;
        if thread.root_failed {
            self.counters.failed += 1;
            log::error!(
                "slack: the outcome of incident {incident_id} is not sent: its root message \
                 was not posted"
            );
            return self.pump(ctx);
        }
        let healthy_again = thread.runs > 1
            && notification.kind_of == NotificationKind::Investigated
            && notification.summary.resource_status == Some(ResourceStatus::Healthy);
        if !healthy_again {
            self.awaiting_resolution
                .insert(thread.thread_key.clone(), thread.workspace.clone());
            thread.push(
                pending(
                    MessageKind::UpdateRoot,
                    incident_message::outcome(notification, report_path),
                ),
                &mut self.turns,
            );
            return self.pump(ctx);
        }
        log::info!(
            "slack: incident {incident_id} (run {} of its fault) found the resource healthy; \
             the root message says resolved",
            thread.runs
        );
        let how = format!("run {} found the resource healthy", thread.runs);
        thread.push(
            pending(
                MessageKind::UpdateRoot,
                incident_message::resolved(notification, report_path, &how),
            ),
            &mut self.turns,
        );
        thread.push(
            pending(
                MessageKind::Reply,
                incident_message::healthy_reply(notification, thread.runs),
            ),
            &mut self.turns,
        );
        self.awaiting_resolution.remove(&thread.thread_key);
        if thread.ts.is_some() {
            self.to_persist.push(ThreadToPersist {
                workspace: thread.workspace.clone(),
                record: record_of(thread),
                resolved: Some(format!(
                    "resolved: {how} (incident {})\n",
                    notification.incident_id
                )),
            });
        }
        self.pump(ctx);
    }

    pub fn on_tick(&mut self, ctx: &mut StageContext) {
        let expired: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| c.deadline <= ctx.now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let timeout = format!("no answer within {:?}", self.settings.attempt_timeout);
            self.finish(ctx, id, Some(&timeout));
        }
        self.pump(ctx);
    }

    pub fn on_resolved(&mut self, ctx: &mut StageContext, answer: Answer) {
        let token::DnsOwner::Stage(id) = token::dns_owner(answer.key) else {
            return;
        };
        match answer.result {
            Ok(addrs) => match addrs.first() {
                Some(addr) => self.connect(ctx, id, *addr),
                None => self.finish(ctx, id, Some("the Slack API host resolved to no address")),
            },
            Err(e) => self.finish(ctx, id, Some(&format!("resolving the Slack API host: {e}"))),
        }
    }

    pub fn on_ready(&mut self, ctx: &mut StageContext, id: u64) {
        if let Some(tunnel) = self.calls.get_mut(&id).and_then(|c| c.tunnel.as_mut()) {
            match tunnel.on_ready() {
                Ok(TunnelProgress::Pending) => return,
                Ok(TunnelProgress::Established) => self.open_client(ctx, id, None),
                Err(e) => return self.finish(ctx, id, Some(&e)),
            }
        }
        let mut events = Vec::new();
        loop {
            events.clear();
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            let Some(client) = call.client.as_mut() else {
                return;
            };
            let progress = match client.on_ready(ctx.inbound, &mut events) {
                Ok(progress) => progress,
                Err(e) => return self.finish(ctx, id, Some(&e.to_string())),
            };
            let mut ended = false;
            for event in &events {
                match event {
                    ResponseEvent::Head(head) => {
                        call.status = Some(head.status);
                        call.retry_after = head.header("retry-after").map(str::to_owned);
                    }
                    ResponseEvent::Body(range) => {
                        let room = MAX_ANSWER_BYTES.saturating_sub(call.answer.len());
                        let bytes = &ctx.inbound.plaintext[range.clone()];
                        call.answer
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                    ResponseEvent::End { .. } => ended = true,
                }
            }
            if ended {
                return self.finish(ctx, id, None);
            }
            match progress {
                Progress::Open { more: true } => continue,
                Progress::Closed => {
                    return self.finish(ctx, id, Some("connection closed before the answer"))
                }
                _ => return,
            }
        }
    }

    /// Starts every call that may go now, incidents taking turns; sets the next wake-up.
    fn next_turn(&mut self) -> u64 {
        self.turns += 1;
        self.turns
    }

    fn pump(&mut self, ctx: &mut StageContext) {
        let now = ctx.now;
        let mut wake: Option<Instant> = None;
        // The incident waiting longest goes first: round robin across incidents.
        let mut order: Vec<(u64, String)> = std::mem::take(&mut self.rotation)
            .into_iter()
            .filter_map(|key| self.threads.get(&key).map(|t| (t.waiting_since, key)))
            .collect();
        order.sort_by_key(|(since, _)| *since);
        let mut kept = VecDeque::with_capacity(order.len());
        let mut to_start = Vec::new();
        for (_, incident) in order {
            let Some(thread) = self.threads.get_mut(&incident) else {
                continue;
            };
            if thread.finished && thread.queue.is_empty() && !thread.in_flight {
                self.threads.remove(&incident);
                continue;
            }
            kept.push_back(incident.clone());
            if thread.in_flight {
                continue;
            }
            let Some(head) = thread.queue.front() else {
                continue;
            };
            let method = match head.kind {
                MessageKind::Root | MessageKind::Reply | MessageKind::Standalone => {
                    ApiMethod::PostMessage
                }
                MessageKind::UpdateRoot => ApiMethod::Update,
            };
            let Some(mut at) = self.gate.ready_at(method, &thread.channel, now) else {
                continue;
            };
            if let Some(not_before) = thread.not_before {
                at = at.max(not_before);
            }
            if at > now {
                wake = Some(wake.map_or(at, |w| w.min(at)));
                continue;
            }
            let Some(pending) = thread.queue.pop_front() else {
                continue;
            };
            let call = ApiCall {
                method,
                channel: thread.channel.clone(),
                message: pending.message.clone(),
                thread_ts: (pending.kind == MessageKind::Reply)
                    .then(|| thread.ts.clone())
                    .flatten(),
                ts: (pending.kind == MessageKind::UpdateRoot)
                    .then(|| thread.ts.clone())
                    .flatten(),
            };
            thread.in_flight = true;
            thread.not_before = None;
            self.turns += 1;
            thread.waiting_since = self.turns;
            self.gate.record(method, &call.channel, now);
            to_start.push((incident, pending, call));
        }
        self.rotation = kept;
        self.wake_at = wake;
        // Started after the turn order is settled: a call that fails at once pumps again.
        for (incident, pending, call) in to_start {
            self.start_call(ctx, incident, pending, call);
        }
    }

    fn start_call(
        &mut self,
        ctx: &mut StageContext,
        incident: String,
        pending: Pending,
        call: ApiCall,
    ) {
        let id = self.next_id;
        self.next_id += 1;
        self.calls.insert(
            id,
            InFlight {
                incident,
                pending,
                call,
                tunnel: None,
                client: None,
                deadline: ctx.now + self.settings.attempt_timeout,
                status: None,
                retry_after: None,
                answer: Vec::new(),
            },
        );
        let endpoint = &self.settings.api_url;
        let (host, port) = match self.proxy() {
            Some(proxy) => (proxy.host.as_str(), proxy.port),
            None => (endpoint.host.as_str(), endpoint.port),
        };
        if let Some(result) = ctx.resolver.resolve(token::stage_dns_key(id), host, port) {
            self.on_resolved(
                ctx,
                Answer {
                    key: token::stage_dns_key(id),
                    result,
                },
            );
        }
    }

    /// The proxy to use for the Web API host, if any.
    fn proxy(&self) -> Option<&HttpProxy> {
        self.settings
            .proxy
            .as_ref()
            .filter(|p| p.applies_to(&self.settings.api_url.host))
    }

    fn connect(&mut self, ctx: &mut StageContext, id: u64, addr: std::net::SocketAddr) {
        let endpoint = &self.settings.api_url;
        if let Some(proxy) = self.proxy() {
            let request = proxy.connect_request(&endpoint.host, endpoint.port);
            match ProxyTunnel::open(ctx.registry, token::stage(id), addr, request, KEEPALIVE) {
                Ok(tunnel) => match self.calls.get_mut(&id) {
                    Some(call) => call.tunnel = Some(tunnel),
                    None => tunnel.close(ctx.registry),
                },
                Err(e) => self.finish(ctx, id, Some(&format!("proxy: connect: {e}"))),
            }
            return;
        }
        self.open_client(ctx, id, Some(addr));
    }

    /// The HTTP client of call `id`: a fresh connection to `addr`, or the established
    /// proxy tunnel when `addr` is `None`; the request is queued on it.
    fn open_client(&mut self, ctx: &mut StageContext, id: u64, addr: Option<std::net::SocketAddr>) {
        let endpoint = &self.settings.api_url;
        let tls = if endpoint.tls {
            let config = match ctx.tls.get(self.settings.ca_file.as_deref(), false) {
                Ok(config) => config,
                Err(e) => return self.finish(ctx, id, Some(&e.to_string())),
            };
            match tls::server_name(&endpoint.host) {
                Ok(name) => Some(TlsTarget { config, name }),
                Err(e) => return self.finish(ctx, id, Some(&e.to_string())),
            }
        } else {
            None
        };
        let tunnel = self.calls.get_mut(&id).and_then(|c| c.tunnel.take());
        let client = match (addr, tunnel) {
            (Some(addr), _) => HttpClient::open(
                ctx.registry,
                token::stage(id),
                addr,
                tls,
                KEEPALIVE,
                MAX_ANSWER_HEAD,
                Some(MAX_ANSWER_BYTES),
            ),
            (None, Some(tunnel)) => HttpClient::over_established(
                tunnel.into_stream(),
                tls,
                MAX_ANSWER_HEAD,
                Some(MAX_ANSWER_BYTES),
            ),
            (None, None) => return self.finish(ctx, id, Some("proxy: no tunnel")),
        };
        let mut client = match client {
            Ok(client) => client,
            Err(e) => return self.finish(ctx, id, Some(&e.to_string())),
        };
        let Some(call) = self.calls.get_mut(&id) else {
            client.close(ctx.registry);
            return;
        };
        let path = format!(
            "{}/{}",
            endpoint.path.trim_end_matches('/'),
            call.call.method.name()
        );
        let authorization = format!("Bearer {}", self.settings.bot_token.expose());
        let mut request = Vec::new();
        write_request(
            &mut request,
            "POST",
            &path,
            &endpoint.host_header,
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Authorization", &authorization),
                (
                    "User-Agent",
                    concat!("nightcrier/", env!("CARGO_PKG_VERSION")),
                ),
                ("Connection", "close"),
            ],
            Some(&call.call.body()),
        );
        client.queue(&request);
        let flushed = client.flush();
        call.client = Some(client);
        if let Err(e) = flushed {
            self.finish(ctx, id, Some(&e.to_string()));
        }
    }

    /// One call ended, with an answer or a transport error: what Slack said decides what
    /// happens to the message.
    fn finish(&mut self, ctx: &mut StageContext, id: u64, transport_error: Option<&str>) {
        let Some(mut call) = self.calls.remove(&id) else {
            return;
        };
        if let Some(client) = call.client.take() {
            client.close(ctx.registry);
        }
        if let Some(tunnel) = call.tunnel.take() {
            tunnel.close(ctx.registry);
        }
        let status = if transport_error.is_some() {
            None
        } else {
            call.status
        };
        let outcome = slack_api::classify(
            status,
            call.retry_after.as_deref(),
            &call.answer,
            transport_error,
        );
        let method = call.call.method;
        self.gate.answered(&call.call.channel, ctx.now);
        let incident = call.incident.clone();
        let Some(thread) = self.threads.get_mut(&incident) else {
            return;
        };
        thread.in_flight = false;
        let mut pending = call.pending;
        pending.attempt += 1;
        match outcome {
            ApiOutcome::Done { ts, channel } => {
                self.counters.delivered += 1;
                log::info!(
                    "slack: {} for incident {incident} delivered (attempt {})",
                    method.name(),
                    pending.attempt
                );
                if pending.kind == MessageKind::Root {
                    if let Some(channel) = channel {
                        thread.channel = channel;
                    }
                    match ts {
                        Some(ts) => {
                            thread.ts = Some(ts);
                            let record = record_of(thread);
                            self.to_persist.push(ThreadToPersist {
                                workspace: thread.workspace.clone(),
                                record: record.clone(),
                                resolved: None,
                            });
                            self.remember(record);
                        }
                        None => {
                            log::error!(
                                "slack: chat.postMessage for incident {incident} answered \
                                 without a message ts; its later messages are dropped"
                            );
                            self.drop_rest(&incident);
                        }
                    }
                }
            }
            ApiOutcome::RateLimited(delay) => {
                self.counters.retried += 1;
                *self.counters.api_errors.entry("ratelimited").or_default() += 1;
                log::warn!(
                    "slack: {} rate limited (HTTP 429); that method waits {:.1}s",
                    method.name(),
                    delay.as_secs_f64()
                );
                self.gate.pause(method, ctx.now + delay);
                pending.attempt -= 1;
                thread.queue.push_front(pending);
            }
            ApiOutcome::TooLong if !pending.shortened => {
                *self.counters.api_errors.entry("msg_too_long").or_default() += 1;
                log::warn!(
                    "slack: {} for incident {incident}: ok:false msg_too_long; sent again \
                     shortened",
                    method.name()
                );
                let short = call.call.shortened();
                pending.message = short.message;
                pending.shortened = true;
                thread.queue.push_front(pending);
            }
            ApiOutcome::Transient(reason) if pending.attempt < self.settings.retry.max_attempts => {
                self.counters.retried += 1;
                count_error(&mut self.counters.api_errors, &reason);
                let delay = backoff(&self.settings.retry, pending.attempt);
                log::warn!(
                    "slack: {} for incident {incident} attempt {} failed ({reason}); retrying \
                     in {:.1}s",
                    method.name(),
                    pending.attempt,
                    delay.as_secs_f64()
                );
                thread.not_before = Some(ctx.now + delay);
                thread.queue.push_front(pending);
            }
            ApiOutcome::TooLong | ApiOutcome::Transient(_) | ApiOutcome::Refused { .. } => {
                let (error, reason) = match outcome {
                    ApiOutcome::Refused { error, reason } => (error, reason),
                    ApiOutcome::TooLong => ("msg_too_long", "ok:false msg_too_long".into()),
                    ApiOutcome::Transient(reason) => (transient_label(&reason), reason),
                    _ => ("other", String::new()),
                };
                self.counters.failed += 1;
                *self.counters.api_errors.entry(error).or_default() += 1;
                log::error!(
                    "slack: {} for incident {incident} not delivered after {} attempts: \
                     {reason} (error={error})",
                    method.name(),
                    pending.attempt
                );
                if pending.kind == MessageKind::Root {
                    self.drop_rest(&incident);
                }
            }
        }
        self.pump(ctx);
    }

    /// The root message is not there: nothing else of the incident can be sent.
    fn drop_rest(&mut self, incident: &str) {
        if let Some(thread) = self.threads.get_mut(incident) {
            thread.root_failed = true;
            let dropped = thread.queue.len();
            thread.queue.clear();
            if dropped > 0 {
                self.counters.failed += dropped as u64;
                log::error!(
                    "slack: {dropped} later messages of incident {incident} dropped: its root \
                     message was not posted"
                );
            }
        }
    }

    fn remember(&mut self, record: SlackThreadRecord) {
        let key = record.thread_key.clone();
        if self.known.insert(key.clone(), record).is_none() {
            self.known_order.push_back(key);
        }
        while self.known_order.len() > MAX_KNOWN_THREADS {
            if let Some(oldest) = self.known_order.pop_front() {
                self.known.remove(&oldest);
                self.awaiting_resolution.remove(&oldest);
            }
        }
    }
}

fn pending(kind: MessageKind, message: Value) -> Pending {
    Pending {
        kind,
        message,
        attempt: 0,
        shortened: false,
    }
}

fn record_of(thread: &IncidentThread) -> SlackThreadRecord {
    SlackThreadRecord {
        channel: thread.channel.clone(),
        ts: thread.ts.clone().unwrap_or_default(),
        thread_key: thread.thread_key.clone(),
        runs: thread.runs,
    }
}

/// base × 2^(attempt-1), capped at the policy's max.
fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    2u32.checked_pow(attempt.saturating_sub(1))
        .and_then(|f| policy.base.checked_mul(f))
        .map_or(policy.max, |d| d.min(policy.max))
}

fn transient_label(reason: &str) -> &'static str {
    if reason.starts_with("transport error") {
        "transport_error"
    } else if let Some(name) = reason.strip_prefix("ok:false ") {
        slack_api::error_label(name)
    } else if reason.starts_with("HTTP") {
        "http_error"
    } else {
        "invalid_json"
    }
}

fn count_error(errors: &mut BTreeMap<&'static str, u64>, reason: &str) {
    *errors.entry(transient_label(reason)).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::report::InvestigationSummary;
    use crate::notify::slack::NotificationKind;
    use std::sync::Arc;

    struct Loop {
        poll: mio::Poll,
        waker: Arc<mio::Waker>,
        resolver: crate::net::dns::Resolver,
        tls: crate::net::tls::TlsConfigs,
        inbound: crate::net::transport::ReadBuffers,
    }

    impl Loop {
        fn new() -> Loop {
            let poll = mio::Poll::new().unwrap();
            let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(usize::MAX)).unwrap());
            Loop {
                resolver: crate::net::dns::Resolver::start(waker.clone()).unwrap(),
                tls: crate::net::tls::TlsConfigs::new(),
                inbound: crate::net::transport::ReadBuffers::with_capacity(1024),
                waker,
                poll,
            }
        }

        fn ctx(&mut self, now: Instant) -> StageContext<'_> {
            StageContext {
                now,
                registry: self.poll.registry(),
                resolver: &self.resolver,
                tls: &mut self.tls,
                inbound: &mut self.inbound,
                waker: &self.waker,
            }
        }
    }

    fn app(interval: Duration) -> SlackApp {
        SlackApp::new(SlackAppSettings {
            channel: "C1".into(),
            // Nothing listens on port 1: calls stay in flight until the test answers them.
            api_url: Endpoint::parse("http://127.0.0.1:1/api").unwrap(),
            bot_token: Secret::new("xoxb-test"),
            ca_file: None,
            channel_interval: interval,
            attempt_timeout: Duration::from_secs(3600),
            retry: RetryPolicy::default(),
            resolved_check_interval: Duration::from_secs(30),
            proxy: None,
        })
    }

    fn start(name: &str) -> IncidentStart {
        IncidentStart {
            workspace: PathBuf::from(format!("/ws/{name}")),
            channel: "C1".into(),
            notification: TriageNotification {
                cluster: "c".into(),
                environment: None,
                severity: "critical".into(),
                namespace: Some("ns".into()),
                kind: "Pod".into(),
                name: name.into(),
                fault_type: "CrashLoop".into(),
                incident_id: name.into(),
                kind_of: NotificationKind::Investigated,
                duration: Duration::from_secs(1),
                summary: InvestigationSummary::default(),
                labels: Vec::new(),
                also_on: Vec::new(),
            },
        }
    }

    /// The one call in flight: (incident, method).
    fn in_flight(app: &SlackApp) -> Vec<(String, ApiMethod)> {
        app.calls
            .values()
            .map(|c| (c.incident.clone(), c.call.method))
            .collect()
    }

    /// Answers the call in flight as Slack would, `ok` with a new ts.
    fn answer_ok(app: &mut SlackApp, ctx: &mut StageContext, ts: &str) {
        let id = *app.calls.keys().next().unwrap();
        let call = app.calls.get_mut(&id).unwrap();
        call.status = Some(200);
        call.answer = format!(r#"{{"ok":true,"channel":"C1","ts":"{ts}"}}"#).into_bytes();
        app.finish(ctx, id, None);
    }

    #[test]
    fn incidents_take_turns_in_a_channel_one_call_at_a_time() {
        let mut lp = Loop::new();
        let t0 = Instant::now();
        let mut app = app(Duration::from_secs(1));
        let mut ctx = lp.ctx(t0);
        app.incident_started(&mut ctx, "a", start("a"));
        app.incident_started(&mut ctx, "b", start("b"));
        assert_eq!(in_flight(&app), [("a".into(), ApiMethod::PostMessage)]);
        // a's run ends at once: its update waits behind b's root.
        let n = start("a").notification;
        app.incident_finished(&mut ctx, "a", &n, None);
        answer_ok(&mut app, &mut ctx, "1.1");
        assert!(app.calls.is_empty(), "the channel waits its interval");
        assert_eq!(app.next_deadline(), Some(t0 + Duration::from_secs(1)));
        let mut ctx = lp.ctx(t0 + Duration::from_secs(1));
        app.on_tick(&mut ctx);
        assert_eq!(in_flight(&app), [("b".into(), ApiMethod::PostMessage)]);
        answer_ok(&mut app, &mut ctx, "1.2");
        let mut ctx = lp.ctx(t0 + Duration::from_secs(2));
        app.on_tick(&mut ctx);
        assert_eq!(in_flight(&app), [("a".into(), ApiMethod::Update)]);
        let update = &app.calls.values().next().unwrap().call;
        assert_eq!(update.ts.as_deref(), Some("1.1"));
        assert_eq!(
            app.take_threads_to_persist()
                .iter()
                .map(|t| (t.workspace.clone(), t.record.ts.clone()))
                .collect::<Vec<_>>(),
            [
                (PathBuf::from("/ws/a"), "1.1".to_string()),
                (PathBuf::from("/ws/b"), "1.2".to_string())
            ]
        );
    }

    /// New incidents arriving faster than the channel's interval never starve an older
    /// incident's outcome: whoever has waited longest goes next.
    #[test]
    fn a_stream_of_new_incidents_does_not_starve_an_earlier_outcome() {
        let mut lp = Loop::new();
        let t0 = Instant::now();
        let second = Duration::from_secs(1);
        let mut app = app(second);
        let mut ctx = lp.ctx(t0);
        app.incident_started(&mut ctx, "a", start("a"));
        answer_ok(&mut app, &mut ctx, "1.1");
        let n = start("a").notification;
        app.incident_finished(&mut ctx, "a", &n, None);
        app.incident_started(&mut ctx, "b", start("b"));
        let mut sent = Vec::new();
        for tick in 1..=4u32 {
            let mut ctx = lp.ctx(t0 + second * tick);
            // One more incident every interval: more than the channel can take.
            let name = format!("n{tick}");
            app.incident_started(&mut ctx, &name, start(&name));
            app.on_tick(&mut ctx);
            sent.extend(in_flight(&app));
            answer_ok(&mut app, &mut ctx, &format!("2.{tick}"));
        }
        assert_eq!(
            sent,
            [
                ("a".to_string(), ApiMethod::Update),
                ("b".to_string(), ApiMethod::PostMessage),
                ("n1".to_string(), ApiMethod::PostMessage),
                ("n2".to_string(), ApiMethod::PostMessage),
            ]
        );
    }

    #[test]
    fn a_note_waits_for_the_root_and_replies_in_its_thread() {
        let mut lp = Loop::new();
        let t0 = Instant::now();
        let mut app = app(Duration::ZERO);
        let mut ctx = lp.ctx(t0);
        app.incident_started(&mut ctx, "a", start("a"));
        assert!(app.note("a", "cluster c2 joins this incident"));
        assert!(!app.note("unknown", "x"));
        assert_eq!(in_flight(&app), [("a".into(), ApiMethod::PostMessage)]);
        answer_ok(&mut app, &mut ctx, "1.1");
        let reply = &app.calls.values().next().unwrap().call;
        assert_eq!(reply.method, ApiMethod::PostMessage);
        assert_eq!(reply.thread_ts.as_deref(), Some("1.1"));
        assert_eq!(reply.message["text"], "cluster c2 joins this incident");
    }

    #[test]
    fn a_429_pauses_the_method_and_the_message_is_sent_again() {
        let mut lp = Loop::new();
        let t0 = Instant::now();
        let mut app = app(Duration::ZERO);
        let mut ctx = lp.ctx(t0);
        app.incident_started(&mut ctx, "a", start("a"));
        let id = *app.calls.keys().next().unwrap();
        let call = app.calls.get_mut(&id).unwrap();
        call.status = Some(429);
        call.retry_after = Some("3".into());
        app.finish(&mut ctx, id, None);
        assert!(app.calls.is_empty());
        assert_eq!(app.next_deadline(), Some(t0 + Duration::from_secs(3)));
        let mut ctx = lp.ctx(t0 + Duration::from_secs(3));
        app.on_tick(&mut ctx);
        assert_eq!(in_flight(&app), [("a".into(), ApiMethod::PostMessage)]);
        assert_eq!(app.counters().api_errors.get("ratelimited"), Some(&1));
        assert_eq!(app.counters().retried, 1);
    }
}
