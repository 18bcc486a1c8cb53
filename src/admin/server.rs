//! The admin listener: `tiny_http` on its own thread (like the health server), on a
//! loopback address only (the configuration refuses others), never on the health
//! listener. It answers through a [`Router`]; every reply carries a strict
//! Content-Security-Policy (no script, nothing loaded but the listener's own stylesheet)
//! and headers that keep browsers from sniffing, framing or leaking referrers.

use std::io::{self, Read};
use std::net::SocketAddr;

use tiny_http::{Header, Request, Response};

use super::router::{AdminRequest, Reply, Router};
use crate::http_thread::HttpThread;
use crate::silence::api::MAX_BODY_BYTES;

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

fn answer(mut request: Request, router: &Router) {
    let method = request.method().as_str().to_ascii_uppercase();
    let body = match read_body(&mut request) {
        Ok(body) => body,
        Err(reply) => return send(request, reply),
    };
    let authorization = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Authorization"))
        .map(|h| h.value.as_str().to_string());
    let url = request.url().to_string();
    let mut admin_request = AdminRequest::new(&method, &url);
    admin_request.authorization = authorization.as_deref();
    admin_request.body = &body;
    let reply = router.respond(&admin_request);
    send(request, reply);
}

/// The request's body, up to [`MAX_BODY_BYTES`]; a longer one is answered with a 413.
fn read_body(request: &mut Request) -> Result<Vec<u8>, Reply> {
    let too_long = || {
        Reply::new(
            413,
            "text/plain; charset=utf-8",
            format!("request body longer than {MAX_BODY_BYTES} bytes\n"),
        )
    };
    if request.body_length().is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_long());
    }
    let mut body = Vec::new();
    request
        .as_reader()
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| {
            Reply::new(
                400,
                "text/plain; charset=utf-8",
                format!("request body not read: {e}\n"),
            )
        })?;
    if body.len() > MAX_BODY_BYTES {
        return Err(too_long());
    }
    Ok(body)
}

fn send(request: Request, reply: Reply) {
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
