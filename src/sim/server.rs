//! Per-cluster listener and connection threads: accept, read requests, route them.

use super::cluster::Shared;
use super::stream::{self, OpenStream};
use super::transport::Transport;
use super::wire::{self, Request, RequestReader, WireError};
use super::{mcp, Behaviour};
use std::io;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(crate) const ACCEPT_STACK: usize = 64 * 1024;
/// Connection threads parse JSON and run TLS handshakes; stacks are only reserved, so
/// this costs memory only as far as it is used.
pub(crate) const CONN_STACK: usize = 128 * 1024;
/// Pause after a failing `accept` (e.g. out of descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts until `closed` is set; the closer connects once to wake us.
pub(crate) fn accept_loop(shared: Arc<Shared>, listener: TcpListener, closed: Arc<AtomicBool>) {
    loop {
        let accepted = listener.accept();
        if closed.load(Ordering::SeqCst) {
            return;
        }
        match accepted {
            Ok((sock, _)) => admit(&shared, sock, &closed),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) => {}
            Err(e) => {
                log::warn!("simulated cluster {}: accept failed: {e}", shared.name);
                shared.wait_until(Instant::now() + ACCEPT_BACKOFF, |_| {
                    closed.load(Ordering::SeqCst)
                });
            }
        }
    }
}

fn admit(shared: &Arc<Shared>, sock: TcpStream, closed: &AtomicBool) {
    let _ = sock.set_nodelay(true);
    let Ok(entry) = sock.try_clone() else {
        return;
    };
    let conn_id = shared.next_conn_id();
    // Registered under the lock that shutdown holds while it sets `closed`, so no socket
    // escapes a shutdown.
    let registered = shared.update(|st| {
        if closed.load(Ordering::SeqCst) {
            return false;
        }
        st.conns.insert(conn_id, entry);
        st.stats.connections_accepted += 1;
        true
    });
    if !registered {
        return;
    }
    let sh = Arc::clone(shared);
    let spawned = shared.spawn("conn", CONN_STACK, Some(conn_id), move || {
        serve_connection(&sh, sock, conn_id)
    });
    if let Err(e) = spawned {
        log::warn!(
            "simulated cluster {}: cannot start connection thread: {e}",
            shared.name
        );
    }
}

enum Routed {
    Reply {
        bytes: Vec<u8>,
        close: bool,
    },
    Stream {
        open: OpenStream,
        close: bool,
    },
    /// Close the connection without answering.
    Drop,
}

fn serve_connection(shared: &Arc<Shared>, sock: TcpStream, conn_id: u64) {
    let t = match Transport::new(sock, shared.settings.tls.as_ref()) {
        Ok(t) => Arc::new(t),
        Err(e) => {
            log::warn!("simulated cluster {}: {e}", shared.name);
            return;
        }
    };
    let mut reader = RequestReader::default();
    loop {
        let req = match reader.next_request(&t) {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(WireError::Io(e)) => {
                log::debug!("simulated cluster {}: read failed: {e}", shared.name);
                break;
            }
            Err(e) => {
                if let Some((status, why)) = e.status() {
                    let _ = t.write_all(&wire::text(status, why, true));
                }
                break;
            }
        };
        match shared.behaviour() {
            Behaviour::Stall => {
                drain(&t);
                break;
            }
            Behaviour::Garbage => {
                let seq = shared.update(|st| {
                    st.garbage_seq += 1;
                    st.garbage_seq - 1
                });
                let _ = t.write_all(&garbage(seq));
                break;
            }
            _ => {}
        }
        match route(shared, &req, conn_id) {
            Routed::Reply { bytes, close: true } => {
                // Reply and FIN leave together, as a server closing after a reply may.
                let _ = t.write_and_finish(&bytes);
                break;
            }
            Routed::Reply {
                bytes,
                close: false,
            } => {
                if t.write_all(&bytes).is_err() {
                    break;
                }
            }
            Routed::Stream { open, close } => {
                // A stream lives for hours; give its read buffers back first.
                drop(std::mem::take(&mut reader));
                stream::serve(shared, &t, conn_id, open, close);
                break;
            }
            Routed::Drop => break,
        }
    }
    t.close();
}

fn route(shared: &Shared, req: &Request, conn_id: u64) -> Routed {
    let close = req.wants_close() || shared.behaviour() == Behaviour::ConnectionClose;
    let reply = |bytes: Vec<u8>| Routed::Reply { bytes, close };
    if let Err((status, why)) = check_host(req) {
        return Routed::Reply {
            bytes: wire::text(status, why, true),
            close: true,
        };
    }
    if req.path != "/mcp" {
        shared.update(|st| st.stats.requests_404 += 1);
        return reply(wire::text(404, "404 page not found", close));
    }
    if !authorized(shared, req) {
        shared.update(|st| st.stats.requests_401 += 1);
        let bytes = wire::fixed(
            401,
            &[("WWW-Authenticate", "Bearer")],
            "text/plain; charset=utf-8",
            b"Unauthorized\n",
            close,
        );
        return reply(bytes);
    }
    let behaviour = shared.behaviour();
    let stateless = behaviour == Behaviour::Stateless;
    let method = req.method.as_str();
    if !(stateless && matches!(method, "GET" | "DELETE")) {
        if let Err(why) = check_accept(req) {
            return reply(wire::text(400, why, close));
        }
    }
    match method {
        "POST" => match mcp::handle_post(shared, req, behaviour, close) {
            Some(bytes) => reply(bytes),
            None => Routed::Drop,
        },
        "GET" | "DELETE" if stateless => reply(method_not_allowed("POST", close)),
        "GET" => match stream::open(shared, req, conn_id, close) {
            Ok(open) => Routed::Stream { open, close },
            Err(bytes) => reply(bytes),
        },
        "DELETE" => reply(delete(shared, req, close)),
        _ => reply(method_not_allowed("GET, POST, DELETE", close)),
    }
}

fn delete(shared: &Shared, req: &Request, close: bool) -> Vec<u8> {
    let Some(sid) = req.header("mcp-session-id") else {
        return wire::text(
            400,
            "Bad Request: DELETE requires an Mcp-Session-Id header",
            close,
        );
    };
    let forgotten = shared.update(|st| {
        let found = st.forget_session(sid).is_some();
        if found {
            st.stats.deletes += 1;
        } else {
            st.stats.requests_404 += 1;
        }
        found
    });
    if forgotten {
        wire::fixed(204, &[], "", b"", close)
    } else {
        wire::text(404, "session not found", close)
    }
}

fn method_not_allowed(allow: &str, close: bool) -> Vec<u8> {
    wire::fixed(
        405,
        &[("Allow", allow)],
        "text/plain; charset=utf-8",
        b"Method Not Allowed\n",
        close,
    )
}

/// The Go server insists on the Accept header the transport specification requires.
fn check_accept(req: &Request) -> Result<(), &'static str> {
    let (mut json, mut sse) = (false, false);
    for h in req
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
    {
        for media in h.1.split(',') {
            let media = media.split(';').next().unwrap_or_default().trim();
            json |= media.eq_ignore_ascii_case("application/json");
            sse |= media.eq_ignore_ascii_case("text/event-stream");
        }
    }
    match req.method.as_str() {
        "GET" if !sse => Err("Accept must contain 'text/event-stream' for GET requests"),
        "GET" => Ok(()),
        _ if !(json && sse) => {
            Err("Accept must contain both 'application/json' and 'text/event-stream'")
        }
        _ => Ok(()),
    }
}

/// A loopback-bound Go server refuses foreign Host headers (DNS rebinding protection).
fn check_host(req: &Request) -> Result<(), (u16, &'static str)> {
    let Some(host) = req.header("host") else {
        return if req.http10 {
            Ok(())
        } else {
            Err((400, "Bad Request: missing required Host header"))
        };
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or_default()
    } else {
        host.split(':').next().unwrap_or_default()
    };
    if ["127.0.0.1", "localhost", "::1"].contains(&name.to_ascii_lowercase().as_str()) {
        Ok(())
    } else {
        Err((403, "Forbidden: invalid Host header"))
    }
}

fn authorized(shared: &Shared, req: &Request) -> bool {
    let Some(key) = &shared.settings.api_key else {
        return true;
    };
    let Some(value) = req.header("authorization") else {
        return false;
    };
    match value.split_once(' ') {
        Some((scheme, token)) => scheme.eq_ignore_ascii_case("bearer") && token.trim() == key,
        None => false,
    }
}

/// Reads and discards until the peer or a shutdown closes the socket: a hung server.
fn drain(t: &Transport) {
    let mut buf = [0u8; 4096];
    loop {
        match t.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The `seq`-th garbage answer: non-HTTP bytes, then broken chunking, then non-JSON SSE.
pub(crate) fn garbage(seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    match seq % 3 {
        0 => {}
        1 => out.extend_from_slice(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz;not-hex\r\n",
        ),
        _ => {
            out.extend_from_slice(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            out.extend(wire::chunk(b"event: message\ndata: {not json\n\n"));
            out.extend_from_slice(wire::LAST_CHUNK);
        }
    }
    // Deterministic junk (a linear congruential sequence) to make up a few hundred bytes.
    let mut x: u32 = 0x2545_f491 ^ seq as u32;
    let junk_len = 300usize.saturating_sub(out.len()).max(64);
    out.extend((0..junk_len).map(|_| {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        (x >> 24) as u8
    }));
    if seq % 3 == 0 && out.starts_with(b"H") {
        out[0] = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with_host(host: Option<&str>) -> Request {
        Request {
            method: "POST".into(),
            path: "/mcp".into(),
            http10: false,
            headers: host
                .map(|h| ("Host".to_string(), h.to_string()))
                .into_iter()
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn loopback_hosts_are_accepted() {
        for h in ["127.0.0.1:8080", "localhost", "LOCALHOST:1", "[::1]:9"] {
            assert!(check_host(&request_with_host(Some(h))).is_ok(), "{h}");
        }
    }

    #[test]
    fn foreign_host_is_forbidden_and_missing_host_is_bad() {
        assert_eq!(
            check_host(&request_with_host(Some("evil.example:80")))
                .unwrap_err()
                .0,
            403
        );
        assert_eq!(check_host(&request_with_host(None)).unwrap_err().0, 400);
    }

    #[test]
    fn garbage_is_deterministic_and_a_few_hundred_bytes() {
        for seq in 0..6 {
            let g = garbage(seq);
            assert_eq!(g, garbage(seq));
            assert!((250..=600).contains(&g.len()), "{}", g.len());
        }
        assert!(!garbage(0).starts_with(b"HTTP/"));
        assert!(garbage(1).starts_with(b"HTTP/1.1 200"));
    }
}

#[cfg(test)]
mod wire_tests {
    use crate::sim::testkit::{quiet, start, Client, Mcp, WAIT};
    use crate::sim::{Behaviour, SimOptions};
    use serde_json::json;
    use std::time::Duration;

    const PING: &str = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;

    #[test]
    fn only_the_mcp_path_exists() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send("POST", "/other", &[], PING);
        assert_eq!(c.response().status, 404);
        sim.stop();
    }

    #[test]
    fn api_key_is_required_as_a_bearer_token() {
        let sim = start(SimOptions {
            api_key: Some("s3cret".into()),
            ..quiet(1)
        });
        let cl = &sim.clusters()[0];
        let mut c = Client::connect(cl, None);
        c.send("POST", "/mcp", &[], PING);
        let r = c.response();
        assert_eq!(r.status, 401);
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        c.send("POST", "/mcp", &[("Authorization", "Bearer wrong")], PING);
        assert_eq!(c.response().status, 401);
        let mut m = Mcp::initialize_with(cl, None, Some("s3cret"), "2025-11-25");
        assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
        assert_eq!(cl.stats().requests_401, 2);
        sim.stop();
    }

    #[test]
    fn post_needs_both_accept_types_and_get_needs_sse() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send("POST", "/mcp", &[("Accept", "application/json")], PING);
        assert_eq!(c.response().status, 400);
        c.send(
            "POST",
            "/mcp",
            &[
                ("Accept", "text/event-stream"),
                ("Accept", "application/json;q=0.9"),
            ],
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#,
        );
        assert_eq!(c.response().status, 200);
        c.send(
            "GET",
            "/mcp",
            &[("Accept", "*/*"), ("Mcp-Session-Id", "x")],
            "",
        );
        let r = c.response();
        assert_eq!(r.status, 400);
        assert!(r.text().contains("text/event-stream"));
        sim.stop();
    }

    #[test]
    fn foreign_host_header_is_forbidden() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send_raw(b"POST /mcp HTTP/1.1\r\nHost: attacker.example\r\nAccept: application/json, text/event-stream\r\nContent-Length: 2\r\n\r\n{}");
        assert_eq!(c.response().status, 403);
        sim.stop();
    }

    #[test]
    fn stateless_server_has_no_sessions_and_405s_streams() {
        let sim = start(SimOptions {
            behaviours: vec![(0, Behaviour::Stateless)],
            ..quiet(1)
        });
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send(
            "POST",
            "/mcp",
            &[],
            r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}}"#,
        );
        let r = c.response();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("mcp-session-id"), None);
        c.send("POST", "/mcp", &[], PING);
        assert_eq!(c.response().status, 200);
        c.send(
            "GET",
            "/mcp",
            &[("Accept", "text/event-stream"), ("Mcp-Session-Id", "x")],
            "",
        );
        assert_eq!(c.response().status, 405);
        c.send("DELETE", "/mcp", &[("Mcp-Session-Id", "x")], "");
        assert_eq!(c.response().status, 405);
        sim.stop();
    }

    #[test]
    fn body_over_4_mib_is_413() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send_raw(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5000000\r\n\r\n");
        assert_eq!(c.response().status, 413);
        sim.stop();
    }

    #[test]
    fn pipelined_requests_are_answered_in_order() {
        let sim = start(quiet(1));
        let mut m = Mcp::initialize(&sim.clusters()[0], None);
        let mut c = Client::connect(&sim.clusters()[0], None);
        let one = |id: u32| {
            let body = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
            format!(
                "POST /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: application/json, text/event-stream\r\n\
                 Mcp-Session-Id: {}\r\nContent-Length: {}\r\n\r\n{body}",
                m.session,
                body.len()
            )
        };
        c.send_raw(format!("{}{}", one(7), one(8)).as_bytes());
        assert_eq!(c.response().json()["id"], 7);
        assert_eq!(c.response().json()["id"], 8);
        assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
        sim.stop();
    }

    #[test]
    fn connection_close_is_honoured() {
        let sim = start(quiet(1));
        let mut c = Client::connect(&sim.clusters()[0], None);
        c.send("POST", "/mcp", &[("Connection", "close")], PING);
        let r = c.response();
        assert_eq!(r.header("connection"), Some("close"));
        assert!(c.is_closed());
        sim.stop();
    }

    #[test]
    fn garbage_answers_junk_then_broken_chunking_then_bad_sse() {
        let sim = start(SimOptions {
            behaviours: vec![(0, Behaviour::Garbage)],
            ..quiet(1)
        });
        let cl = &sim.clusters()[0];
        let mut answers = Vec::new();
        for _ in 0..3 {
            let mut c = Client::connect(cl, None);
            c.send("POST", "/mcp", &[], PING);
            answers.push(c.read_to_close());
        }
        assert!(!answers[0].starts_with(b"HTTP/"));
        assert!(answers[0].len() >= 200);
        let text = String::from_utf8_lossy(&answers[1]);
        assert!(
            text.contains("Transfer-Encoding: chunked\r\n\r\nzz;"),
            "{text}"
        );
        let text = String::from_utf8_lossy(&answers[2]);
        assert!(text.contains("data: {not json\n\n"), "{text}");
        sim.stop();
    }

    #[test]
    fn stall_reads_but_never_answers_until_restored() {
        let sim = start(SimOptions {
            behaviours: vec![(0, Behaviour::Stall)],
            ..quiet(1)
        });
        let cl = &sim.clusters()[0];
        let mut stalled = Client::connect(cl, None);
        stalled.send("POST", "/mcp", &[], PING);
        assert!(cl.wait_for(|s| s.connections_accepted == 1, WAIT));
        // Silence is the behaviour under test, so a short read timeout is the check.
        stalled.set_read_timeout(Duration::from_millis(300));
        assert!(stalled.read_once().is_err());
        cl.set_behaviour(Behaviour::Normal);
        let mut m = Mcp::initialize(cl, None);
        assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
        sim.stop();
    }
}
