//! A built-in simulated kubernetes-mcp-server fleet.
//!
//! Each simulated cluster listens on its own loopback port and speaks MCP Streamable HTTP
//! the way the real Go server does (sessions, `: ok`-primed GET streams, 404 for forgotten
//! sessions, 409 for a second stream, 405 when stateless), and emits fault notifications
//! at a configurable rate. Tests, the demo and the load tests drive it through
//! [`SimCluster`] handles: change a cluster's behaviour, drop its connections, expire its
//! sessions, kill and restart it, and wait for its counters to move.
//!
//! The simulator is a plain threaded server (one accept thread per cluster, one thread per
//! connection, small stacks) so that it stays independent of the client's event loop it is
//! meant to test.

mod cli;
mod cluster;
mod faults;
mod mcp;
mod server;
mod session;
mod stream;
mod transport;
mod wire;

#[cfg(test)]
mod testkit;

pub use cli::run_cli;
pub use cluster::SimCluster;

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

/// A simulated cluster's (mis)behaviour; switchable at run time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    Normal,
    /// Accept and read, never answer; open streams go silent. Sockets stay open.
    Stall,
    /// Answer with non-HTTP bytes, broken chunking or non-JSON SSE data, then close.
    Garbage,
    /// `events_subscribe` is refused as an unknown tool (an upstream build without it).
    RefuseTool,
    /// A `--stateless` server: no session ids, GET and DELETE answer 405.
    Stateless,
    /// Every subscribe is followed by one `kubernetes/subscription_error` notification.
    SubscriptionError,
}

impl Behaviour {
    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Normal => "normal",
            Behaviour::Stall => "stall",
            Behaviour::Garbage => "garbage",
            Behaviour::RefuseTool => "refuse-tool",
            Behaviour::Stateless => "stateless",
            Behaviour::SubscriptionError => "subscription-error",
        }
    }
}

impl std::str::FromStr for Behaviour {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            Behaviour::Normal,
            Behaviour::Stall,
            Behaviour::Garbage,
            Behaviour::RefuseTool,
            Behaviour::Stateless,
            Behaviour::SubscriptionError,
        ];
        all.into_iter().find(|b| b.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = all.iter().map(|b| b.as_str()).collect();
            format!(
                "unknown behaviour {s:?} (expected one of {})",
                names.join(", ")
            )
        })
    }
}

impl std::fmt::Display for Behaviour {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub clusters: usize,
    /// Cluster names are `{name_prefix}-000`, `{name_prefix}-001`, …
    pub name_prefix: String,
    /// Cluster `i` listens on `base_port + i`; 0 picks an ephemeral port for each.
    pub base_port: u16,
    /// Faults per second per subscribed session; 0 emits only on demand.
    pub rate_per_sec: f64,
    /// Stop the rate-driven emission after this many faults per cluster.
    pub faults_per_cluster: Option<u64>,
    /// faultIds cycle through this many values per cluster (repeats exercise dedup);
    /// 0 makes every fault distinct.
    pub distinct_faults: u64,
    pub tls: Option<SimTls>,
    /// When set, every request needs `Authorization: Bearer <api_key>`.
    pub api_key: Option<String>,
    pub reply_format: ReplyFormat,
    /// Initial behaviour by cluster index; unlisted clusters start `Normal`.
    pub behaviours: Vec<(usize, Behaviour)>,
}

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
    pub subscribes: u64,
    pub pings: u64,
    pub deletes: u64,
    /// GET streams open right now.
    pub get_streams_open: u64,
    /// GET streams ever opened.
    pub get_streams_opened: u64,
    /// Fault (and, in `events` mode, event) notifications actually written to a stream.
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
        ] {
            let b: Behaviour = name.parse().unwrap();
            assert_eq!(b.as_str(), name);
        }
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
