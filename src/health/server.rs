//! The health and metrics HTTP server: `tiny_http` on its own thread. It only reads the
//! snapshot the loop last published, so a slow or hostile client can never wake, block or
//! slow the loop; a stuck loop shows up here as a stale snapshot.
//!
//! Endpoints (GET only; other methods get 405, unknown paths 404):
//! - `/healthz` — liveness: `ok` while the loop keeps publishing; 503 once the latest
//!   snapshot is older than `stale_after`.
//! - `/readyz` — readiness, see [`readiness`].
//! - `/health/clusters`, `/health/clusters/<name>` — JSON, see [`crate::health::render`].
//! - `/metrics` — Prometheus text, see [`crate::metrics::render`].

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde::Serialize;
use tiny_http::{Header, Method, Request, Response};

use crate::cluster::status::ConnectionStatus;
use crate::health::board::{HealthBoard, Published};
use crate::health::render::{clusters_document, find_cluster};
use crate::http_thread::HttpThread;
use crate::metrics::render as metrics;

const JSON: &str = "application/json";
const TEXT: &str = "text/plain; charset=utf-8";

pub struct HealthServer {
    thread: HttpThread,
}

impl HealthServer {
    /// Binds `listen` and serves from the thread `nightcrier-health`. `stale_after` is how
    /// old the latest snapshot may be before `/healthz` fails (3 × the publish interval).
    pub fn start(
        listen: SocketAddr,
        board: HealthBoard,
        stale_after: Duration,
    ) -> io::Result<HealthServer> {
        let thread = HttpThread::start("health server", "nightcrier-health", listen, move |r| {
            answer(r, &board, stale_after)
        })?;
        log::info!("health server listening on {}", thread.local_addr());
        Ok(HealthServer { thread })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.thread.local_addr()
    }
}

fn answer(request: Request, board: &HealthBoard, stale_after: Duration) {
    let published = board.latest();
    let is_get = *request.method() == Method::Get;
    let reply = respond(
        is_get,
        request.url(),
        &published,
        Instant::now(),
        stale_after,
    );
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Cache-Control", "no-store"),
    ];
    if reply.status == 405 {
        headers.push(("Allow", "GET"));
    }
    for (field, value) in headers {
        if let Ok(header) = Header::from_bytes(field, value) {
            response.add_header(header);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("health server: response not delivered: {e}");
    }
}

/// A response, decided without I/O.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    fn new(status: u16, content_type: &'static str, body: String) -> Reply {
        Reply {
            status,
            content_type,
            body,
        }
    }

    fn json(status: u16, value: &impl Serialize) -> Reply {
        match serde_json::to_string(value) {
            Ok(mut body) => {
                body.push('\n');
                Reply::new(status, JSON, body)
            }
            Err(e) => Reply::new(500, JSON, error_body(&format!("cannot render: {e}"))),
        }
    }

    fn error(status: u16, message: &str) -> Reply {
        Reply::new(status, JSON, error_body(message))
    }
}

fn error_body(message: &str) -> String {
    format!("{}\n", serde_json::json!({ "error": message }))
}

/// Routes one request against a snapshot. `now` is the reader's clock, for staleness.
pub fn respond(
    is_get: bool,
    url: &str,
    published: &Published,
    now: Instant,
    stale_after: Duration,
) -> Reply {
    let path = url.split(['?', '#']).next().unwrap_or("");
    let route = match path {
        "/healthz" => Route::Liveness,
        "/readyz" => Route::Readiness,
        "/metrics" => Route::Metrics,
        "/health/clusters" | "/health/clusters/" => Route::Clusters,
        _ => match path.strip_prefix("/health/clusters/") {
            Some(name) if !name.is_empty() && !name.contains('/') => Route::Cluster(name),
            _ => return Reply::error(404, "not found"),
        },
    };
    if !is_get {
        return Reply::error(405, "method not allowed");
    }
    match route {
        Route::Liveness => match liveness(published, now, stale_after) {
            Ok(()) => Reply::new(200, TEXT, "ok\n".to_string()),
            Err(reason) => Reply::new(503, TEXT, format!("{reason}\n")),
        },
        Route::Readiness => {
            let readiness = readiness(published, now, stale_after);
            let status = if readiness.ready { 200 } else { 503 };
            Reply::json(status, &readiness)
        }
        Route::Clusters => Reply::json(200, &clusters_document(published)),
        Route::Cluster(name) => match find_cluster(published, name) {
            Some(view) => Reply::json(200, &view),
            None => Reply::error(404, "unknown cluster"),
        },
        Route::Metrics => Reply::new(200, metrics::CONTENT_TYPE, metrics::render(published)),
    }
}

enum Route<'a> {
    Liveness,
    Readiness,
    Clusters,
    Cluster(&'a str),
    Metrics,
}

/// Alive while the loop keeps publishing: the snapshot is at most `stale_after` old.
pub fn liveness(published: &Published, now: Instant, stale_after: Duration) -> Result<(), String> {
    let age = now.saturating_duration_since(published.at);
    if age > stale_after {
        return Err(format!(
            "stale: the event loop last published {:.1}s ago (limit {:.1}s)",
            age.as_secs_f64(),
            stale_after.as_secs_f64()
        ));
    }
    Ok(())
}

/// The `/readyz` answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub tried: usize,
    pub total: usize,
    pub active: usize,
}

/// Ready when, in the latest snapshot:
/// - the daemon is not stopping, and the snapshot is fresh (see [`liveness`]);
/// - there is at least one cluster;
/// - every cluster has been tried: its first connection attempt has ended, as `active` or
///   as `failed` (so one unreachable cluster cannot hold the daemon unready forever);
/// - at least one cluster is `active`.
///
/// The rule is evaluated on every request: a daemon whose clusters all fail later becomes
/// unready again.
pub fn readiness(published: &Published, now: Instant, stale_after: Duration) -> Readiness {
    let total = published.clusters.len();
    let tried = published.clusters.iter().filter(|c| c.tried).count();
    let active = published
        .clusters
        .iter()
        .filter(|c| c.status == ConnectionStatus::Active)
        .count();
    let reason = if published.stopping {
        Some("stopping".to_string())
    } else if let Err(stale) = liveness(published, now, stale_after) {
        Some(stale)
    } else if total == 0 {
        Some("no clusters".to_string())
    } else if tried < total {
        Some(format!(
            "{} of {total} clusters not yet tried",
            total - tried
        ))
    } else if active == 0 {
        Some("no cluster active".to_string())
    } else {
        None
    };
    Readiness {
        ready: reason.is_none(),
        reason,
        tried,
        total,
        active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> Published {
        crate::health::board::HealthBoard::new()
            .latest()
            .as_ref()
            .clone()
    }

    const STALE: Duration = Duration::from_secs(3);

    #[test]
    fn query_string_does_not_change_the_route() {
        let p = published();
        let reply = respond(true, "/healthz?verbose=1", &p, p.at, STALE);
        assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));
    }

    #[test]
    fn cluster_list_accepts_a_trailing_slash_and_nested_paths_are_unknown() {
        let p = published();
        assert_eq!(
            respond(true, "/health/clusters/", &p, p.at, STALE).status,
            200
        );
        assert_eq!(
            respond(true, "/health/clusters/a/b", &p, p.at, STALE).status,
            404
        );
        assert_eq!(respond(true, "/", &p, p.at, STALE).status, 404);
    }

    #[test]
    fn other_methods_are_not_allowed_on_known_paths() {
        let p = published();
        let reply = respond(false, "/metrics", &p, p.at, STALE);
        assert_eq!(reply.status, 405);
        assert_eq!(reply.content_type, JSON);
    }

    #[test]
    fn snapshot_older_than_the_limit_is_stale() {
        let p = published();
        assert!(
            liveness(&p, p.at + STALE, STALE).is_ok(),
            "exactly at the limit"
        );
        let reason = liveness(&p, p.at + STALE + Duration::from_millis(100), STALE).unwrap_err();
        assert!(reason.starts_with("stale:"), "{reason}");
    }

    #[test]
    fn empty_snapshot_is_not_ready() {
        let p = published();
        let readiness = readiness(&p, p.at, STALE);
        assert!(!readiness.ready);
        assert_eq!(readiness.reason.as_deref(), Some("no clusters"));
    }
}
