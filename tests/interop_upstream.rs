//! Interop with the upstream kubernetes-mcp-server binary (npm package
//! `kubernetes-mcp-server-linux-amd64`). Upstream builds have no `events_subscribe` tool:
//! the handshake and ping must succeed, and the missing tool must show as a named error in
//! the cluster's status — over plain HTTP and over its own TLS.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::openssl::self_signed;
use common::peers::{dummy_kubeconfig, start_upstream};
use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::config::SubscribeMode;
use nightcrier::mcp::jsonrpc::{self, Message};
use nightcrier::mcp::session::{McpSession, Output, PostKind, PostRequest, SessionError};
use nightcrier::net::http::{write_request, ResponseEvent, ResponseParser};
use nightcrier::net::sse::SseParser;
use nightcrier::net::tls::{server_name, TlsConfigs};

trait Wire: Read + Write {}
impl<T: Read + Write> Wire for T {}

/// Our own protocol code (session, HTTP writer and parser, SSE parser) driven over blocking
/// sockets, one request at a time.
struct BlockingClient {
    port: u16,
    tls: Option<Arc<rustls::ClientConfig>>,
    session: McpSession,
}

struct Reply {
    status: u16,
    messages: Vec<String>,
    outputs: Vec<Output>,
}

impl BlockingClient {
    fn connect(&self) -> Box<dyn Wire> {
        let tcp = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        match &self.tls {
            None => Box::new(tcp),
            Some(config) => {
                let conn = rustls::ClientConnection::new(
                    config.clone(),
                    server_name("127.0.0.1").unwrap(),
                )
                .unwrap();
                Box::new(rustls::StreamOwned::new(conn, tcp))
            }
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(id) = self.session.session_id() {
            headers.push(("Mcp-Session-Id", id.to_owned()));
        }
        if let Some(v) = self.session.protocol_version() {
            headers.push(("MCP-Protocol-Version", v.to_owned()));
        }
        headers
    }

    fn send(
        &mut self,
        wire: &mut dyn Wire,
        method: &str,
        headers: &[(&'static str, String)],
        body: Option<&[u8]>,
    ) {
        let host = format!("127.0.0.1:{}", self.port);
        let borrowed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut bytes = Vec::new();
        write_request(&mut bytes, method, "/mcp", &host, &borrowed, body);
        wire.write_all(&bytes).unwrap();
        wire.flush().unwrap();
    }

    fn post(&mut self, request: &PostRequest) -> Reply {
        let mut wire = self.connect();
        let mut headers = self.headers();
        headers.push(("Content-Type", "application/json".into()));
        headers.push(("Accept", "application/json, text/event-stream".into()));
        self.send(&mut *wire, "POST", &headers, Some(&request.body));
        let mut parser = ResponseParser::new(16 * 1024, Some(1 << 20));
        let mut sse = SseParser::new(1 << 20);
        let mut reply = Reply {
            status: 0,
            messages: Vec::new(),
            outputs: Vec::new(),
        };
        let mut json = Vec::new();
        let mut is_sse = false;
        let mut buf = vec![0u8; 16 * 1024];
        for _ in 0..10_000 {
            let n = wire.read(&mut buf).unwrap();
            let mut events = Vec::new();
            if n == 0 {
                parser.on_eof(&mut events).unwrap();
            } else {
                parser.feed(&buf[..n], &mut events).unwrap();
            }
            for event in events {
                match event {
                    ResponseEvent::Head(head) => {
                        reply.status = head.status;
                        is_sse = head.content_type_is("text/event-stream");
                        self.session.on_post_head(
                            request.kind,
                            head.status,
                            head.header("mcp-session-id"),
                        );
                    }
                    ResponseEvent::Body(range) => {
                        if is_sse {
                            let mut sse_events = Vec::new();
                            sse.feed(&buf[range], &mut sse_events).unwrap();
                            for e in sse_events {
                                self.session.on_message(&e.data, &mut reply.outputs);
                                reply.messages.push(e.data);
                            }
                        } else {
                            json.extend_from_slice(&buf[range]);
                        }
                    }
                    ResponseEvent::End { .. } => {
                        let text = String::from_utf8_lossy(&json).into_owned();
                        if reply.status < 300 && !text.is_empty() {
                            self.session.on_message(&text, &mut reply.outputs);
                            reply.messages.push(text.clone());
                        }
                        self.session.on_post_end(
                            request.kind,
                            reply.status,
                            &text,
                            &mut reply.outputs,
                        );
                        return reply;
                    }
                }
            }
            assert!(n > 0, "connection closed before the reply ended");
        }
        panic!("reply never ended");
    }

    /// Opens the GET stream and hands its status to the session; the stream stays open.
    fn open_stream(&mut self) -> (Box<dyn Wire>, Vec<Output>) {
        let mut wire = self.connect();
        let mut headers = self.headers();
        headers.push(("Accept", "text/event-stream".into()));
        self.send(&mut *wire, "GET", &headers, None);
        let mut parser = ResponseParser::new(16 * 1024, None);
        let mut buf = vec![0u8; 16 * 1024];
        let mut outputs = Vec::new();
        for _ in 0..10_000 {
            let n = wire.read(&mut buf).unwrap();
            assert!(n > 0, "stream closed before its head");
            let mut events = Vec::new();
            parser.feed(&buf[..n], &mut events).unwrap();
            if let Some(head) = events.iter().find_map(|e| match e {
                ResponseEvent::Head(h) => Some(h.clone()),
                _ => None,
            }) {
                self.session.on_stream_head(
                    head.status,
                    head.content_type_is("text/event-stream"),
                    &mut outputs,
                );
                return (wire, outputs);
            }
        }
        panic!("stream head never arrived");
    }
}

fn next_post(outputs: &[Output]) -> PostRequest {
    match outputs.iter().find_map(|o| match o {
        Output::Post(p) => Some(p.clone()),
        _ => None,
    }) {
        Some(post) => post,
        None => panic!("expected a request to send, got {outputs:?}"),
    }
}

fn handshake_and_ping(port: u16, tls: Option<Arc<rustls::ClientConfig>>) {
    let mut client = BlockingClient {
        port,
        tls,
        session: McpSession::new(SubscribeMode::Faults, "test"),
    };
    let initialize = client.session.start();
    let reply = client.post(&initialize);
    assert_eq!(reply.status, 200, "{:?}", reply.messages);
    assert_eq!(client.session.protocol_version(), Some("2025-11-25"));
    assert!(client.session.session_id().is_some());
    let initialized = next_post(&reply.outputs);
    assert_eq!(initialized.kind, PostKind::Initialized);
    let reply = client.post(&initialized);
    assert_eq!(reply.status, 202);
    let set_level = next_post(&reply.outputs);
    let reply = client.post(&set_level);
    assert_eq!(reply.status, 200);
    assert_eq!(reply.outputs, vec![Output::OpenStream]);

    // Ping on the live session: upstream answers with an empty result for our id.
    let ping = PostRequest {
        kind: PostKind::Answer,
        body: jsonrpc::request(900, "ping", &serde_json::json!({})),
    };
    let reply = client.post(&ping);
    assert_eq!(reply.status, 200);
    let answered = reply.messages.iter().any(|m| {
        matches!(Message::parse(m), Ok(Message::Response { id: Some(900), result }) if result.get() == "{}")
    });
    assert!(answered, "ping answer: {:?}", reply.messages);

    let (_stream, outputs) = client.open_stream();
    let subscribe = next_post(&outputs);
    assert_eq!(subscribe.kind, PostKind::Subscribe);
    let reply = client.post(&subscribe);
    match &reply.outputs[..] {
        [Output::Failed(SessionError::ToolMissing { .. }), ..] => {}
        other => panic!(
            "expected the missing-tool error, got {other:?} / {:?}",
            reply.messages
        ),
    }
}

fn daemon_names_the_missing_tool(port: u16, scheme: &str, mcp_extra: &str, dir: &Path) {
    let text = format!(
        "{FAST_TIMINGS}\n[[clusters]]\nname = \"upstream\"\n[clusters.mcp]\nendpoint = \"{scheme}://127.0.0.1:{port}/mcp\"\n{mcp_extra}\n"
    );
    let running = start_loop(&parse_config(&text, dir));
    let snapshot = running.wait_cluster(
        "upstream",
        |c| c.status == ConnectionStatus::Failed && c.errors.subscribe >= 1,
        "subscribe failure",
    );
    let error = snapshot.last_error.unwrap();
    assert!(error.contains("events_subscribe"), "{error}");
    assert_eq!(snapshot.errors.initialize, 0, "handshake itself succeeded");
    assert_eq!(snapshot.errors.tls, 0);
    running.stop().unwrap();
}

#[test]
fn upstream_plain_handshake_ping_and_named_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dummy_kubeconfig(dir.path());
    let peer = start_upstream(&kubeconfig, None);
    handshake_and_ping(peer.port, None);
    daemon_names_the_missing_tool(peer.port, "http", "", dir.path());
}

#[test]
fn upstream_tls_handshake_ping_and_named_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dummy_kubeconfig(dir.path());
    let (material, ca_path) = tls_material(dir.path());
    let peer = start_upstream(&kubeconfig, Some((&material.cert_path, &material.key_path)));
    let config = TlsConfigs::new().get(Some(&ca_path), false).unwrap();
    handshake_and_ping(peer.port, Some(config));
    let ca_line = format!("ca_file = {:?}", ca_path.display().to_string());
    daemon_names_the_missing_tool(peer.port, "https", &ca_line, dir.path());
}

/// The certificate operators make for `--tls-cert` (`openssl req -x509 …`, CA:TRUE), pinned
/// as the cluster's `ca_file`: the handshake succeeds and the missing tool is what shows.
#[test]
fn upstream_tls_with_a_pinned_openssl_self_signed_certificate_names_the_missing_tool() {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dummy_kubeconfig(dir.path());
    let cert = self_signed(dir.path(), "server", "127.0.0.1", "IP:127.0.0.1", &[]);
    let peer = start_upstream(&kubeconfig, Some((&cert.cert_path, &cert.key_path)));
    let config = TlsConfigs::new().get(Some(&cert.cert_path), false).unwrap();
    handshake_and_ping(peer.port, Some(config));
    let ca_line = format!("ca_file = {:?}", cert.cert_path.display().to_string());
    daemon_names_the_missing_tool(peer.port, "https", &ca_line, dir.path());
}
