//! Slack deliveries through the event loop's own HTTPS client: each message is one POST to
//! the incoming webhook on a fresh connection, retried by `RetryPolicy` (429 `Retry-After`,
//! 5xx and transport errors back off; other 4xx give up). Nothing here blocks the loop, and
//! the webhook URL never reaches a log line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use mio::Token;

use super::slack::{DeliveryDecision, RetryPolicy};
use crate::config::{Endpoint, Secret};
use crate::metrics::counters::SlackCounters;
use crate::net::client::{HttpClient, Progress, TlsTarget};
use crate::net::dns::Answer;
use crate::net::http::{write_request, ResponseEvent};
use crate::net::proxy::{HttpProxy, ProxyTunnel, TunnelProgress};
use crate::net::tls;
use crate::stage::StageContext;
use crate::token;

const MAX_REPLY_HEAD: usize = 16 * 1024;
const MAX_REPLY_BODY: usize = 64 * 1024;
const KEEPALIVE: Duration = Duration::from_secs(60);

enum State {
    Resolving,
    Sending,
    /// Waiting for the retry time.
    Waiting,
}

struct Delivery {
    what: String,
    /// A route's webhook, instead of the default one.
    endpoint: Option<Endpoint>,
    body: Vec<u8>,
    attempt: u32,
    state: State,
    /// The `CONNECT` tunnel while it is set up, when a proxy applies.
    tunnel: Option<ProxyTunnel>,
    client: Option<HttpClient>,
    deadline: Instant,
    status: Option<u16>,
    retry_after: Option<String>,
}

pub struct SlackNotifier {
    endpoint: Endpoint,
    ca_file: Option<PathBuf>,
    policy: RetryPolicy,
    attempt_timeout: Duration,
    deliveries: HashMap<u64, Delivery>,
    next_id: u64,
    counters: SlackCounters,
    proxy: Option<HttpProxy>,
}

impl SlackNotifier {
    pub fn new(
        webhook: &Secret,
        ca_file: Option<PathBuf>,
        policy: RetryPolicy,
        attempt_timeout: Duration,
    ) -> Result<SlackNotifier, String> {
        let endpoint = Endpoint::parse(webhook.expose())
            .map_err(|e| format!("slack webhook URL is invalid: {e}"))?;
        Ok(SlackNotifier {
            endpoint,
            ca_file,
            policy,
            attempt_timeout,
            deliveries: HashMap::new(),
            next_id: 1,
            counters: SlackCounters::default(),
            proxy: None,
        })
    }

    /// Webhooks are reached through `proxy` (with `CONNECT`), except hosts it exempts.
    pub fn with_proxy(mut self, proxy: Option<HttpProxy>) -> SlackNotifier {
        self.proxy = proxy;
        self
    }

    /// The proxy for delivery `id`'s host, if one applies.
    fn proxy_for(&self, id: u64) -> Option<&HttpProxy> {
        let endpoint = self
            .deliveries
            .get(&id)
            .and_then(|d| d.endpoint.as_ref())
            .unwrap_or(&self.endpoint);
        self.proxy.as_ref().filter(|p| p.applies_to(&endpoint.host))
    }

    pub fn counters(&self) -> SlackCounters {
        self.counters.clone()
    }

    pub fn is_idle(&self) -> bool {
        self.deliveries.is_empty()
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.deliveries.values().map(|d| d.deadline).min()
    }

    /// Queues one message; `what` names it in logs (e.g. the incident id).
    pub fn send(&mut self, ctx: &mut StageContext, payload: &serde_json::Value, what: &str) {
        self.send_to(ctx, None, payload, what);
    }

    /// Queues one message to a route's webhook (`None`: the default one).
    pub fn send_to(
        &mut self,
        ctx: &mut StageContext,
        webhook: Option<&Secret>,
        payload: &serde_json::Value,
        what: &str,
    ) {
        // Routes' URLs were checked when the configuration was read.
        let endpoint = webhook.and_then(|url| Endpoint::parse(url.expose()).ok());
        let id = self.next_id;
        self.next_id += 1;
        self.deliveries.insert(
            id,
            Delivery {
                what: what.to_owned(),
                endpoint,
                body: payload.to_string().into_bytes(),
                attempt: 0,
                state: State::Waiting,
                tunnel: None,
                client: None,
                deadline: ctx.now,
                status: None,
                retry_after: None,
            },
        );
        self.start_attempt(ctx, id);
    }

    pub fn on_tick(&mut self, ctx: &mut StageContext) {
        let due: Vec<u64> = self
            .deliveries
            .iter()
            .filter(|(_, d)| d.deadline <= ctx.now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(delivery) = self.deliveries.get(&id) else {
                continue;
            };
            match delivery.state {
                State::Waiting => self.start_attempt(ctx, id),
                State::Resolving | State::Sending => {
                    let timeout = format!("no answer within {:?}", self.attempt_timeout);
                    self.finish(ctx, id, Some(&timeout));
                }
            }
        }
    }

    pub fn on_resolved(&mut self, ctx: &mut StageContext, answer: Answer) {
        let token::DnsOwner::Stage(id) = token::dns_owner(answer.key) else {
            return;
        };
        match answer.result {
            Ok(addrs) => match addrs.first() {
                Some(addr) => self.connect(ctx, id, *addr),
                None => self.finish(ctx, id, Some("webhook host resolved to no address")),
            },
            Err(e) => self.finish(ctx, id, Some(&format!("resolving the webhook host: {e}"))),
        }
    }

    pub fn on_ready(&mut self, ctx: &mut StageContext, token_id: u64) {
        let tunnel = self
            .deliveries
            .get_mut(&token_id)
            .and_then(|d| d.tunnel.as_mut());
        if let Some(tunnel) = tunnel {
            match tunnel.on_ready() {
                Ok(TunnelProgress::Pending) => return,
                Ok(TunnelProgress::Established) => self.open_client(ctx, token_id, None),
                Err(e) => return self.finish(ctx, token_id, Some(&e)),
            }
        }
        let mut events = Vec::new();
        loop {
            events.clear();
            let Some(delivery) = self.deliveries.get_mut(&token_id) else {
                return;
            };
            let Some(client) = delivery.client.as_mut() else {
                return;
            };
            let progress = match client.on_ready(ctx.inbound, &mut events) {
                Ok(progress) => progress,
                Err(e) => return self.finish(ctx, token_id, Some(&e.to_string())),
            };
            let mut ended = false;
            for event in &events {
                match event {
                    ResponseEvent::Head(head) => {
                        delivery.status = Some(head.status);
                        delivery.retry_after = head.header("retry-after").map(str::to_owned);
                    }
                    ResponseEvent::Body(_) => {}
                    ResponseEvent::End { .. } => ended = true,
                }
            }
            if ended {
                return self.finish(ctx, token_id, None);
            }
            match progress {
                Progress::Open { more: true } => continue,
                Progress::Closed => {
                    return self.finish(ctx, token_id, Some("connection closed before the answer"))
                }
                _ => return,
            }
        }
    }

    fn start_attempt(&mut self, ctx: &mut StageContext, id: u64) {
        let Some(delivery) = self.deliveries.get_mut(&id) else {
            return;
        };
        delivery.attempt += 1;
        delivery.state = State::Resolving;
        delivery.status = None;
        delivery.retry_after = None;
        delivery.deadline = ctx.now + self.attempt_timeout;
        let endpoint = delivery.endpoint.as_ref().unwrap_or(&self.endpoint);
        let (host, port) = match self.proxy.as_ref().filter(|p| p.applies_to(&endpoint.host)) {
            Some(proxy) => (proxy.host.clone(), proxy.port),
            None => (endpoint.host.clone(), endpoint.port),
        };
        if let Some(result) = ctx.resolver.resolve(token::stage_dns_key(id), &host, port) {
            self.on_resolved(
                ctx,
                Answer {
                    key: token::stage_dns_key(id),
                    result,
                },
            );
        }
    }

    fn connect(&mut self, ctx: &mut StageContext, id: u64, addr: std::net::SocketAddr) {
        if let Some(proxy) = self.proxy_for(id) {
            let endpoint = self
                .deliveries
                .get(&id)
                .and_then(|d| d.endpoint.as_ref())
                .unwrap_or(&self.endpoint);
            let request = proxy.connect_request(&endpoint.host, endpoint.port);
            match ProxyTunnel::open(ctx.registry, token::stage(id), addr, request, KEEPALIVE) {
                Ok(tunnel) => match self.deliveries.get_mut(&id) {
                    Some(delivery) => {
                        delivery.tunnel = Some(tunnel);
                        delivery.state = State::Sending;
                    }
                    None => tunnel.close(ctx.registry),
                },
                Err(e) => self.finish(ctx, id, Some(&format!("proxy: connect: {e}"))),
            }
            return;
        }
        self.open_client(ctx, id, Some(addr));
    }

    /// Delivery `id`'s HTTP client: a fresh connection to `addr`, or the established proxy
    /// tunnel when `addr` is `None`; the request is queued on it.
    fn open_client(&mut self, ctx: &mut StageContext, id: u64, addr: Option<std::net::SocketAddr>) {
        let endpoint = self
            .deliveries
            .get(&id)
            .and_then(|d| d.endpoint.clone())
            .unwrap_or_else(|| self.endpoint.clone());
        let tls = if endpoint.tls {
            let config = match ctx.tls.get(self.ca_file.as_deref(), false) {
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
        let token: Token = token::stage(id);
        let tunnel = self.deliveries.get_mut(&id).and_then(|d| d.tunnel.take());
        let client = match (addr, tunnel) {
            (Some(addr), _) => HttpClient::open(
                ctx.registry,
                token,
                addr,
                tls,
                KEEPALIVE,
                MAX_REPLY_HEAD,
                Some(MAX_REPLY_BODY),
            ),
            (None, Some(tunnel)) => HttpClient::over_established(
                tunnel.into_stream(),
                tls,
                MAX_REPLY_HEAD,
                Some(MAX_REPLY_BODY),
            ),
            (None, None) => return self.finish(ctx, id, Some("proxy: no tunnel")),
        };
        let mut client = match client {
            Ok(client) => client,
            Err(e) => return self.finish(ctx, id, Some(&e.to_string())),
        };
        let Some(delivery) = self.deliveries.get_mut(&id) else {
            client.close(ctx.registry);
            return;
        };
        let mut request = Vec::new();
        write_request(
            &mut request,
            "POST",
            &endpoint.path,
            &endpoint.host_header,
            &[
                ("Content-Type", "application/json"),
                (
                    "User-Agent",
                    concat!("nightcrier/", env!("CARGO_PKG_VERSION")),
                ),
                ("Connection", "close"),
            ],
            Some(&delivery.body),
        );
        client.queue(&request);
        let flushed = client.flush();
        delivery.client = Some(client);
        delivery.state = State::Sending;
        if let Err(e) = flushed {
            self.finish(ctx, id, Some(&e.to_string()));
        }
    }

    /// One attempt ended: with an HTTP status, or with a transport error.
    fn finish(&mut self, ctx: &mut StageContext, id: u64, transport_error: Option<&str>) {
        let Some(delivery) = self.deliveries.get_mut(&id) else {
            return;
        };
        if let Some(client) = delivery.client.take() {
            client.close(ctx.registry);
        }
        if let Some(tunnel) = delivery.tunnel.take() {
            tunnel.close(ctx.registry);
        }
        let status = if transport_error.is_some() {
            None
        } else {
            delivery.status
        };
        let decision = self.policy.decide(
            delivery.attempt,
            status,
            delivery.retry_after.as_deref(),
            transport_error,
        );
        match decision {
            DeliveryDecision::Delivered => {
                self.counters.delivered += 1;
                log::info!(
                    "slack: delivered {} (attempt {})",
                    delivery.what,
                    delivery.attempt
                );
                self.deliveries.remove(&id);
            }
            DeliveryDecision::RetryAfter(delay) => {
                self.counters.retried += 1;
                log::warn!(
                    "slack: {} attempt {} failed ({}); retrying in {:.1}s",
                    delivery.what,
                    delivery.attempt,
                    status
                        .map(|s| format!("HTTP {s}"))
                        .or(transport_error.map(str::to_owned))
                        .unwrap_or_default(),
                    delay.as_secs_f64()
                );
                delivery.state = State::Waiting;
                delivery.deadline = ctx.now + delay;
            }
            DeliveryDecision::GiveUp(reason) => {
                self.counters.failed += 1;
                log::error!("slack: not delivered {}: {reason}", delivery.what);
                self.deliveries.remove(&id);
            }
        }
    }
}
