//! A built-in simulated kubernetes-mcp-server fleet.
//!
//! Each simulated cluster listens on its own loopback port and behaves, by default, like
//! kubernetes-mcp-server *with events* (the fork on go-sdk v1.2.0) as `PROTOCOL.md`
//! describes it:
//!
//! - MCP Streamable HTTP with sessions that never expire by time; `DELETE` answers 204 and
//!   ends the session's GET stream; a restart forgets every session (404) and subscription.
//! - The GET stream sends nothing until there is something to say: no `: ok` priming
//!   comment, no `id:` or `retry:` lines, no keep-alives. Events are `event: message` +
//!   one `data:` line. A GET without a session is 405, with `Last-Event-ID` 400, a second
//!   GET on one session 409, an unknown session 404.
//! - The event tools answer in the fork's Markdown (`# Event Subscription Created` + JSON
//!   indented by two spaces + the closing sentence, `# Subscription Cancelled`,
//!   `# Active Subscriptions`); errors are `isError` results with the fork's texts.
//!   `mode` defaults to `events`, whose payload nests the Kubernetes Event under `event`;
//!   every third fault of a cluster's sequence (sequence numbers 2, 5, 8, …) shows up there
//!   as a `Normal` event, the others as `Warning` events.
//! - Subscriptions live in a per-server table (at most 10 per session, 100 per server) and
//!   each gets every fault that starts while it exists (the fork runs one watcher per
//!   subscription), deduplicated per subscription for [`SimOptions::fault_dedup_window`].
//! - A notification that finds no GET stream attached to its session, or whose write stays
//!   blocked for [`SimOptions::write_block_timeout`], cancels its subscription silently.
//!   Every [`SimOptions::session_monitor_interval`] subscriptions of sessions the server
//!   no longer has are removed.
//!
//! Faults are emitted at a configurable rate. Tests, the demo and the load tests drive the
//! fleet through [`SimCluster`] handles: change a cluster's behaviour (including the
//! adversarial ones of [`Behaviour`]), list, cancel or degrade subscriptions, cut a
//! session's GET stream, drop connections, expire sessions, kill and restart the server,
//! and wait for its counters to move.
//!
//! The simulator is a plain threaded server (one accept thread and one timer thread per
//! cluster, one thread per connection, small stacks) so that it stays independent of the
//! client's event loop it is meant to test.

mod cli;
mod cluster;
mod control;
mod faults;
mod mcp;
mod notify;
mod server;
mod session;
mod stream;
mod subs;
mod transport;
mod wire;

#[cfg(test)]
mod conformance;
#[cfg(test)]
mod testkit;

pub use cli::run_cli;
pub use cluster::{SimCluster, SimSubscription};

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a simulated cluster shapes its answers to POSTed requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyFormat {
    /// `application/json` with `Content-Length`.
    Json,
    /// `text/event-stream`, chunked, one `event: message` per reply.
    Sse,
    /// Switch between the two on every reply, so clients exercise both.
    Alternate,
}

/// PEM-encoded certificate chain and private key for the simulator's TLS listeners.
#[derive(Clone, Debug)]
pub struct SimTls {
    pub cert_chain_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

/// A simulated cluster's (mis)behaviour; switchable at run time. `Normal` is the faithful
/// fork; every other variant is a deliberate deviation to test clients against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// Accept and read, never answer; open streams go silent. Sockets stay open.
    Stall,
    /// Answer with non-HTTP bytes, broken chunking or non-JSON SSE data, then close.
    Garbage,
    /// The event tools are refused as unknown tools (an upstream build without them).
    RefuseTool,
    /// A `--stateless` server: no session ids, GET and DELETE answer 405.
    Stateless,
    /// Every subscribe is followed by one `kubernetes/subscription_error` notification and
    /// the subscription is marked degraded (the fork does this in events mode only, after
    /// its watch gave up; here it happens in either mode, at once).
    SubscriptionError,
    /// Every reply carries `Connection: close`, and the FIN leaves in the same TCP segment
    /// as the reply's last bytes.
    ConnectionClose,
    /// GET events carry SSE `id:` lines (`_0`, `_1`, … as go-sdk numbers them with an event
    /// store), yet a `Last-Event-ID` replay is still refused with 400.
    EventIds,
    /// The GET stream is cut (the socket shut, no terminating chunk) after it has carried
    /// this many fault or event notifications; the session is kept.
    CutAfter(u32),
    /// `events_subscribe` creates the subscription, then the connection is closed instead
    /// of answering.
    SubscribeReplyLost,
    /// A server without `events_list_subscriptions` (unknown tool, -32602).
    NoListTool,
}

impl Behaviour {
    /// The fixed part of the behaviour's name (`cut-after` for `cut-after-N`).
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Normal => "normal",
            Behaviour::Stall => "stall",
            Behaviour::Garbage => "garbage",
            Behaviour::RefuseTool => "refuse-tool",
            Behaviour::Stateless => "stateless",
            Behaviour::SubscriptionError => "subscription-error",
            Behaviour::ConnectionClose => "connection-close",
            Behaviour::EventIds => "event-ids",
            Behaviour::CutAfter(_) => "cut-after",
            Behaviour::SubscribeReplyLost => "subscribe-reply-lost",
            Behaviour::NoListTool => "no-list-tool",
        }
    }

    const FIXED: [Behaviour; 10] = [
        Behaviour::Normal,
        Behaviour::Stall,
        Behaviour::Garbage,
        Behaviour::RefuseTool,
        Behaviour::Stateless,
        Behaviour::SubscriptionError,
        Behaviour::ConnectionClose,
        Behaviour::EventIds,
        Behaviour::SubscribeReplyLost,
        Behaviour::NoListTool,
    ];
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(n) = s.strip_prefix("cut-after-") {
            return match n.parse::<u32>() {
                Ok(n) if n > 0 => Ok(Behaviour::CutAfter(n)),
                _ => Err(format!(
                    "behaviour {s:?}: cut-after-N needs a whole number N >= 1"
                )),
            };
        }
        Behaviour::FIXED
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Behaviour::FIXED.iter().map(|b| b.as_str()).collect();
                format!(
                    "unknown behaviour {s:?} (expected one of {}, cut-after-N)",
                    names.join(", ")
                )
            })
    }
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Behaviour::CutAfter(n) => write!(f, "cut-after-{n}"),
            b => f.write_str(b.as_str()),
        }
    }
}

/// What the `cluster` field of subscriptions and notifications says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterField {
    /// The simulated cluster's name, as the fork sends its kubeconfig context name.
    Name,
    /// `""`, as the fork sends on a single-cluster or in-cluster server.
    Empty,
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub clusters: usize,
    /// Cluster names are `{name_prefix}-000`, `{name_prefix}-001`, …
    pub name_prefix: String,
    /// Cluster `i` listens on `base_port + i`; 0 picks an ephemeral port for each.
    pub base_port: u16,
    /// Faults per second per cluster, emitted while some subscription's session listens
    /// at the subscription's level (every live subscription gets each fault); 0 emits only
    /// on demand ([`SimCluster::emit_fault`]).
    pub rate_per_sec: f64,
    /// Stop the rate-driven emission after this many faults per cluster (a fault that no
    /// stream wrote does not count).
    pub faults_per_cluster: Option<u64>,
    /// faultIds cycle through this many values per cluster; 0 makes every fault distinct.
    /// A subscription is sent a repeated faultId only once per
    /// [`SimOptions::fault_dedup_window`], so with the fork's 15 minutes a repeat reaches
    /// a client only through a subscription created after the first occurrence.
    pub distinct_faults: u64,
    pub tls: Option<SimTls>,
    /// When set, every request needs `Authorization: Bearer <api_key>`.
    pub api_key: Option<String>,
    pub reply_format: ReplyFormat,
    /// Initial behaviour by cluster index; unlisted clusters start `Normal`.
    pub behaviours: Vec<(usize, Behaviour)>,
    /// A notification whose write stays blocked (the client does not read its GET stream)
    /// this long cancels its subscription; `None` lets the write block until the
    /// connection fails (then the subscription is cancelled). Default 2 s.
    pub write_block_timeout: Option<Duration>,
    /// How often subscriptions of sessions the server no longer has are removed (the
    /// fork's session monitor). Default 30 s.
    pub session_monitor_interval: Duration,
    /// A faults-mode subscription is sent a given faultId at most once in this window (the
    /// fork's per-watcher `FaultDeduplicator`, keyed by fault type, resource uid and
    /// container, i.e. by faultId). Default 15 min; zero sends every repeat.
    pub fault_dedup_window: Duration,
    /// What the `cluster` field says. Default [`ClusterField::Name`].
    pub cluster_field: ClusterField,
    /// Subscriptions allowed per session (the fork: 10).
    pub max_subscriptions_per_session: usize,
    /// Subscriptions allowed per server (the fork: 100).
    pub max_subscriptions: usize,
}

/// The fork's limits and timings.
pub const FORK_WRITE_BLOCK_TIMEOUT: Duration = Duration::from_secs(2);
pub const FORK_SESSION_MONITOR_INTERVAL: Duration = Duration::from_secs(30);
pub const FORK_FAULT_DEDUP_WINDOW: Duration = Duration::from_secs(15 * 60);
pub const FORK_MAX_SUBSCRIPTIONS_PER_SESSION: usize = 10;
pub const FORK_MAX_SUBSCRIPTIONS: usize = 100;

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            clusters: 3,
            name_prefix: "sim".to_string(),
            base_port: 0,
            rate_per_sec: 1.0,
            faults_per_cluster: None,
            distinct_faults: 0,
            tls: None,
            api_key: None,
            reply_format: ReplyFormat::Alternate,
            behaviours: Vec::new(),
            write_block_timeout: Some(FORK_WRITE_BLOCK_TIMEOUT),
            session_monitor_interval: FORK_SESSION_MONITOR_INTERVAL,
            fault_dedup_window: FORK_FAULT_DEDUP_WINDOW,
            cluster_field: ClusterField::Name,
            max_subscriptions_per_session: FORK_MAX_SUBSCRIPTIONS_PER_SESSION,
            max_subscriptions: FORK_MAX_SUBSCRIPTIONS,
        }
    }
}

/// Counters of one simulated cluster, as seen from the server side.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SimStats {
    pub connections_accepted: u64,
    pub sessions_created: u64,
    /// `notifications/initialized` received.
    pub initialized: u64,
    pub set_level_calls: u64,
    /// Subscriptions created.
    pub subscribes: u64,
    /// `events_subscribe` calls answered with an error (limits, bad filters).
    pub subscribes_refused: u64,
    /// Subscriptions cancelled with `events_unsubscribe`.
    pub unsubscribes: u64,
    pub list_subscriptions_calls: u64,
    /// Subscriptions alive right now.
    pub subscriptions_active: u64,
    /// Subscriptions cancelled because a notification found no GET stream attached, its
    /// session gone, or its write blocked too long.
    pub subscriptions_cancelled_undeliverable: u64,
    /// Subscriptions removed by the session monitor (their session was gone).
    pub subscriptions_cancelled_by_monitor: u64,
    /// Subscriptions cancelled through [`SimCluster::cancel_subscription`] and friends.
    pub subscriptions_cancelled_by_control: u64,
    /// Fault conditions that started (rate-driven or [`SimCluster::emit_fault`]).
    pub faults_emitted: u64,
    /// Fault notifications withheld from a subscription that already had that faultId
    /// within the dedup window.
    pub faults_deduplicated: u64,
    /// Server errors (`kubernetes-mcp-server` logger) written to a stream.
    pub server_errors_sent: u64,
    /// GET streams cut by `cut-after-N` or [`SimCluster::cut_stream`].
    pub streams_cut: u64,
    /// Replies withheld by `subscribe-reply-lost`.
    pub replies_dropped: u64,
    pub pings: u64,
    pub deletes: u64,
    /// GET streams open right now.
    pub get_streams_open: u64,
    /// GET streams ever opened.
    pub get_streams_opened: u64,
    /// Fault (and, in `events` mode, event) notifications actually written to a stream,
    /// one per subscription that received it.
    pub faults_sent: u64,
    /// faultIds of the faults-mode notifications written, oldest first; holds at least the
    /// most recent [`FAULT_IDS_KEPT`] entries.
    pub fault_ids_sent: Vec<String>,
    pub subscription_errors_sent: u64,
    pub requests_401: u64,
    pub requests_404: u64,
    pub requests_409: u64,
}

/// How many recent faultIds [`SimStats::fault_ids_sent`] keeps at least.
pub const FAULT_IDS_KEPT: usize = 100_000;

/// A running fleet of simulated clusters. Dropping it stops it, like [`Simulator::stop`].
pub struct Simulator {
    clusters: Vec<SimCluster>,
}

/// How long stopping waits for the simulator's threads before leaving stragglers behind.
const STOP_DEADLINE: Duration = Duration::from_secs(5);

impl Simulator {
    /// Binds every cluster's listener on 127.0.0.1 and starts serving.
    pub fn start(opts: SimOptions) -> std::io::Result<Simulator> {
        validate_prefix(&opts.name_prefix)?;
        if opts.session_monitor_interval.is_zero() {
            return Err(invalid_input(
                "session_monitor_interval must be longer than zero".to_string(),
            ));
        }
        if !(opts.rate_per_sec.is_finite() && opts.rate_per_sec >= 0.0) {
            return Err(invalid_input(format!(
                "rate_per_sec must be a finite number >= 0, got {}",
                opts.rate_per_sec
            )));
        }
        let tls = match &opts.tls {
            Some(t) => Some(transport::server_config(t)?),
            None => None,
        };
        let settings = Arc::new(cluster::Settings {
            tls,
            api_key: opts.api_key.clone(),
            reply_format: opts.reply_format,
            rate_per_sec: opts.rate_per_sec,
            faults_per_cluster: opts.faults_per_cluster,
            distinct_faults: opts.distinct_faults,
            write_block_timeout: opts.write_block_timeout,
            session_monitor_interval: opts.session_monitor_interval,
            fault_dedup_window: opts.fault_dedup_window,
            cluster_field: opts.cluster_field,
            max_subscriptions_per_session: opts.max_subscriptions_per_session,
            max_subscriptions: opts.max_subscriptions,
        });
        let mut sim = Simulator {
            clusters: Vec::with_capacity(opts.clusters),
        };
        for index in 0..opts.clusters {
            let port = if opts.base_port == 0 {
                0
            } else {
                u16::try_from(usize::from(opts.base_port) + index).map_err(|_| {
                    invalid_input(format!(
                        "base_port {} + {index} exceeds 65535",
                        opts.base_port
                    ))
                })?
            };
            let behaviour = opts
                .behaviours
                .iter()
                .rev()
                .find(|(i, _)| *i == index)
                .map(|(_, b)| *b)
                .unwrap_or(Behaviour::Normal);
            let name = format!("{}-{index:03}", opts.name_prefix);
            // On error `sim` is dropped, which stops the clusters already started.
            let c = SimCluster::start(name, port, behaviour, Arc::clone(&settings))?;
            sim.clusters.push(c);
        }
        Ok(sim)
    }

    pub fn clusters(&self) -> &[SimCluster] {
        &self.clusters
    }

    /// Closes every listener and socket and joins every thread, within a bounded time.
    pub fn stop(self) {
        drop(self)
    }

    fn shutdown(&mut self) {
        for c in &self.clusters {
            c.begin_shutdown(true);
        }
        let deadline = Instant::now() + STOP_DEADLINE;
        for c in &self.clusters {
            c.finish_shutdown(deadline);
        }
        self.clusters.clear();
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn validate_prefix(prefix: &str) -> std::io::Result<()> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 64
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if ok {
        Ok(())
    } else {
        Err(invalid_input(format!(
            "name prefix {prefix:?} must be 1-64 characters of A-Z a-z 0-9 . _ -"
        )))
    }
}

fn invalid_input(msg: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_names_round_trip() {
        for name in [
            "normal",
            "stall",
            "garbage",
            "refuse-tool",
            "stateless",
            "subscription-error",
            "connection-close",
            "event-ids",
            "cut-after-3",
            "subscribe-reply-lost",
            "no-list-tool",
        ] {
            let b: Behaviour = name.parse().unwrap();
            assert_eq!(b.to_string(), name);
        }
        assert_eq!("cut-after-7".parse(), Ok(Behaviour::CutAfter(7)));
        assert!("cut-after-0".parse::<Behaviour>().is_err());
        assert!("cut-after".parse::<Behaviour>().is_err());
    }

    #[test]
    fn defaults_are_the_forks_settings() {
        let o = SimOptions::default();
        assert_eq!(o.write_block_timeout, Some(Duration::from_secs(2)));
        assert_eq!(o.session_monitor_interval, Duration::from_secs(30));
        assert_eq!(o.fault_dedup_window, Duration::from_secs(900));
        assert_eq!(o.cluster_field, ClusterField::Name);
        assert_eq!(
            (o.max_subscriptions_per_session, o.max_subscriptions),
            (10, 100)
        );
    }

    #[test]
    fn unknown_behaviour_lists_the_valid_names() {
        let err = "flaky".parse::<Behaviour>().unwrap_err();
        assert!(
            err.contains("flaky") && err.contains("refuse-tool"),
            "{err}"
        );
    }

    #[test]
    fn bad_name_prefix_is_refused() {
        let opts = SimOptions {
            name_prefix: "../x".into(),
            ..SimOptions::default()
        };
        assert!(Simulator::start(opts).is_err());
    }

    #[test]
    fn base_port_overflow_is_refused() {
        let opts = SimOptions {
            clusters: 2,
            base_port: 65535,
            ..SimOptions::default()
        };
        // Cluster 0 may or may not bind 65535; cluster 1 can never exist.
        assert!(Simulator::start(opts).is_err());
    }
}
