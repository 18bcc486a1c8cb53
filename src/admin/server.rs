//! The admin listener: `tiny_http` on its own thread (like the health server), on a
//! loopback address only (the configuration refuses others), never on the health
//! listener. It answers through a [`Router`]; every reply carries a strict
//! Content-Security-Policy (no script, nothing loaded but the listener's own stylesheet)
//! and headers that keep browsers from sniffing, framing or leaking referrers.

use std::io;
use std::net::SocketAddr;

use tiny_http::{Header, Request, Response};

use super::router::{AdminRequest, Router};
use crate::http_thread::HttpThread;

/// No script at all, styles from this listener only, no images, forms, frames or base.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; \
     img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub struct AdminServer {
    thread: HttpThread,
}

impl AdminServer {
    /// Binds `listen` and serves `router` from the thread `nightcrier-admin`.
    pub fn start(listen: SocketAddr, router: Router) -> io::Result<AdminServer> {
        let thread = HttpThread::start("admin server", "nightcrier-admin", listen, move |r| {
            answer(r, &router)
        })?;
        Ok(AdminServer { thread })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.thread.local_addr()
    }
}

fn answer(request: Request, router: &Router) {
    let method = request.method().as_str().to_ascii_uppercase();
    let reply = router.respond(&AdminRequest::new(&method, request.url()));
    let mut response = Response::from_string(reply.body).with_status_code(reply.status);
    let mut headers = vec![
        ("Content-Type", reply.content_type),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("X-Frame-Options", "DENY"),
        ("Referrer-Policy", "no-referrer"),
        ("Cache-Control", "no-store"),
    ];
    if let Some(allow) = reply.allow {
        headers.push(("Allow", allow));
    }
    if let Some(location) = reply.location {
        headers.push(("Location", location));
    }
    for (field, value) in headers {
        if let Ok(header) = Header::from_bytes(field, value) {
            response.add_header(header);
        }
    }
    if let Err(e) = request.respond(response) {
        log::debug!("admin server: response not delivered: {e}");
    }
}
