//! A small blocking MCP client for the simulator's own tests: raw HTTP/1.1 bytes over
//! std::net (optionally rustls), replies parsed just enough to check them.

use super::{SimCluster, SimOptions, SimTls, Simulator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// Every test read gives up after this long, so a broken server fails a test instead of
/// hanging it.
pub(crate) const READ_LIMIT: Duration = Duration::from_secs(10);
pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct TestCerts {
    pub ca_pem: String,
    pub tls: SimTls,
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub(crate) fn test_certs() -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    TestCerts {
        ca_pem: ca.pem(),
        tls: SimTls {
            cert_chain_pem: leaf.pem().into_bytes(),
            key_pem: leaf_key.serialize_pem().into_bytes(),
        },
    }
}

pub(crate) fn start(opts: SimOptions) -> Simulator {
    Simulator::start(opts).unwrap()
}

/// One cluster, no rate-driven faults, JSON replies unless told otherwise.
pub(crate) fn quiet(clusters: usize) -> SimOptions {
    SimOptions {
        clusters,
        rate_per_sec: 0.0,
        reply_format: super::ReplyFormat::Json,
        ..SimOptions::default()
    }
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The JSON-RPC message of a JSON or single-event SSE reply.
    pub(crate) fn json(&self) -> Value {
        let text = self.text();
        if self.header("content-type") == Some("text/event-stream") {
            let data = text
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or_else(|| panic!("no data line in {text:?}"));
            serde_json::from_str(data).unwrap()
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"))
        }
    }
}

/// One client connection to a simulated cluster.
pub(crate) struct Client {
    conn: Conn,
    buf: Vec<u8>,
    host: String,
}

impl Client {
    pub(crate) fn connect(cluster: &SimCluster, ca_pem: Option<&str>) -> Client {
        Client::connect_port(cluster.port(), ca_pem)
    }

    pub(crate) fn connect_port(port: u16, ca_pem: Option<&str>) -> Client {
        let sock = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sock.set_read_timeout(Some(READ_LIMIT)).unwrap();
        let conn = match ca_pem {
            None => Conn::Plain(sock),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                    roots.add(cert.unwrap()).unwrap();
                }
                let provider = Arc::new(rustls::crypto::ring::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .unwrap()
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let c = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
                Conn::Tls(Box::new(rustls::StreamOwned::new(c, sock)))
            }
        };
        Client {
            conn,
            buf: Vec::new(),
            host: format!("127.0.0.1:{port}"),
        }
    }

    pub(crate) fn set_read_timeout(&mut self, d: Duration) {
        let sock = match &self.conn {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref(),
        };
        sock.set_read_timeout(Some(d)).unwrap();
    }

    pub(crate) fn send_raw(&mut self, bytes: &[u8]) {
        self.try_send_raw(bytes).unwrap();
    }

    pub(crate) fn try_send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.conn.write_all(bytes)?;
        self.conn.flush()
    }

    pub(crate) fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) {
        let req = self.request_bytes(method, path, headers, body);
        self.send_raw(&req);
    }

    pub(crate) fn request_bytes(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Vec<u8> {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (n, v) in headers {
            req.push_str(&format!("{n}: {v}\r\n"));
        }
        let has_accept = headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("accept"));
        if !has_accept && (method == "POST" || method == "DELETE") {
            req.push_str("Accept: application/json, text/event-stream\r\n");
        }
        if method == "POST" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        req.push_str(body);
        req.into_bytes()
    }

    fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 8192];
        let n = self.conn.read(&mut chunk).unwrap();
        self.buf.extend_from_slice(&chunk[..n]);
        n
    }

    /// Reads until the peer closes (or the socket errors) and returns everything unread.
    pub(crate) fn read_to_close(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = self.conn.read(&mut chunk) {
            if n == 0 {
                break;
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
        std::mem::take(&mut self.buf)
    }

    /// One read of at most one byte, straight from the socket.
    pub(crate) fn read_once(&mut self) -> std::io::Result<usize> {
        let mut b = [0u8; 1];
        self.conn.read(&mut b)
    }

    /// Whether a read now ends in EOF or an error (rather than data).
    pub(crate) fn is_closed(&mut self) -> bool {
        let mut chunk = [0u8; 1];
        !matches!(self.conn.read(&mut chunk), Ok(n) if n > 0)
    }

    fn line(&mut self) -> String {
        loop {
            if let Some(p) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..p]).into_owned();
                self.buf.drain(..p + 2);
                return line;
            }
            assert!(self.fill() > 0, "connection closed mid-line");
        }
    }

    fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.buf.len() < n {
            assert!(self.fill() > 0, "connection closed mid-body");
        }
        self.buf.drain(..n).collect()
    }

    /// Status line and headers.
    pub(crate) fn head(&mut self) -> (u16, Vec<(String, String)>) {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let l = self.line();
            if l.is_empty() {
                return (status, headers);
            }
            let (n, v) = l.split_once(':').unwrap();
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }

    /// The next chunk of a chunked body; `None` at the terminating chunk.
    pub(crate) fn chunk(&mut self) -> Option<Vec<u8>> {
        let size_line = self.line();
        let size = usize::from_str_radix(size_line.trim(), 16).unwrap();
        if size == 0 {
            assert_eq!(self.line(), "");
            return None;
        }
        let data = self.exact(size);
        assert_eq!(self.exact(2), b"\r\n");
        Some(data)
    }

    pub(crate) fn response(&mut self) -> Response {
        let (status, headers) = self.head();
        let find = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        let body = if find("transfer-encoding").as_deref() == Some("chunked") {
            let mut body = Vec::new();
            while let Some(c) = self.chunk() {
                body.extend(c);
            }
            body
        } else if let Some(len) = find("content-length") {
            self.exact(len.parse().unwrap())
        } else {
            Vec::new()
        };
        Response {
            status,
            headers,
            body,
        }
    }
}

/// An MCP session driven step by step in PROTOCOL order.
pub(crate) struct Mcp {
    pub port: u16,
    pub ca: Option<String>,
    pub session: String,
    pub version: String,
    pub api_key: Option<String>,
    post: Client,
    next_id: u64,
}

impl Mcp {
    /// POST initialize; panics unless the server answers with a session.
    pub(crate) fn initialize(cluster: &SimCluster, ca: Option<&str>) -> Mcp {
        Mcp::initialize_with(cluster, ca, None, "2025-11-25")
    }

    pub(crate) fn initialize_with(
        cluster: &SimCluster,
        ca: Option<&str>,
        api_key: Option<&str>,
        version: &str,
    ) -> Mcp {
        let mut post = Client::connect(cluster, ca);
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {},
            "clientInfo": {"name": "nightcrier-test", "version": "0"}}});
        let auth = api_key.map(|k| format!("Bearer {k}"));
        let mut headers = vec![
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
        ];
        if let Some(a) = &auth {
            headers.push(("Authorization", a));
        }
        post.send("POST", "/mcp", &headers, &body.to_string());
        let resp = post.response();
        assert_eq!(resp.status, 200, "{}", resp.text());
        let session = resp
            .header("mcp-session-id")
            .expect("session id")
            .to_string();
        let v = resp.json();
        assert!(v["result"]["capabilities"]["logging"].is_object());
        Mcp {
            port: cluster.port(),
            ca: ca.map(str::to_string),
            session,
            version: v["result"]["protocolVersion"].as_str().unwrap().to_string(),
            api_key: api_key.map(str::to_string),
            post,
            next_id: 2,
        }
    }

    /// A new connection that carries an existing session id (no initialize).
    pub(crate) fn resume(&self, cluster: &SimCluster) -> Mcp {
        Mcp {
            port: cluster.port(),
            ca: self.ca.clone(),
            session: self.session.clone(),
            version: self.version.clone(),
            api_key: self.api_key.clone(),
            post: Client::connect(cluster, self.ca.as_deref()),
            next_id: 100,
        }
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("Content-Type", "application/json".to_string()),
            ("Accept", "application/json, text/event-stream".to_string()),
            ("Mcp-Session-Id", self.session.clone()),
            ("MCP-Protocol-Version", self.version.clone()),
        ];
        if let Some(k) = &self.api_key {
            h.push(("Authorization", format!("Bearer {k}")));
        }
        h
    }

    pub(crate) fn post(&mut self, body: &Value) -> Response {
        let owned = self.headers();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.post.send("POST", "/mcp", &headers, &body.to_string());
        self.post.response()
    }

    /// A request; returns the whole JSON-RPC reply.
    pub(crate) fn rpc(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let resp =
            self.post(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        assert_eq!(resp.status, 200, "{method}: {}", resp.text());
        let v = resp.json();
        assert_eq!(v["id"], id);
        v
    }

    pub(crate) fn notify(&mut self, method: &str) -> Response {
        self.post(&json!({"jsonrpc": "2.0", "method": method}))
    }

    pub(crate) fn subscribe(&mut self, mode: &str) -> Value {
        self.rpc(
            "tools/call",
            json!({"name": "events_subscribe", "arguments": {"mode": mode}}),
        )
    }

    /// Sends GET on a fresh connection; returns the client positioned after the head.
    pub(crate) fn get(&self, extra: &[(&str, &str)]) -> (Client, u16) {
        let mut c = Client::connect_port(self.port, self.ca.as_deref());
        let owned = self.headers();
        let mut headers: Vec<(&str, &str)> = owned
            .iter()
            .filter(|(n, _)| *n != "Content-Type" && *n != "Accept")
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        headers.push(("Accept", "text/event-stream"));
        headers.extend_from_slice(extra);
        c.send("GET", "/mcp", &headers, "");
        let (status, _) = c.head();
        (c, status)
    }

    /// Sends GET and reads a complete (error) response.
    pub(crate) fn get_response(&self, extra: &[(&str, &str)]) -> Response {
        let mut c = Client::connect_port(self.port, self.ca.as_deref());
        let owned = self.headers();
        let mut headers: Vec<(&str, &str)> = owned
            .iter()
            .filter(|(n, _)| *n != "Content-Type" && *n != "Accept")
            .map(|(n, v)| (*n, v.as_str()))
            .collect();
        headers.push(("Accept", "text/event-stream"));
        headers.extend_from_slice(extra);
        c.send("GET", "/mcp", &headers, "");
        c.response()
    }

    /// Opens the GET stream (the fork sends only the head: no priming comment).
    pub(crate) fn open_stream(&self) -> Stream {
        let (c, status) = self.get(&[]);
        assert_eq!(status, 200);
        Stream { client: c }
    }

    /// `tools/call` of `name`; returns the whole JSON-RPC reply.
    pub(crate) fn call(&mut self, name: &str, arguments: Value) -> Value {
        self.rpc("tools/call", json!({"name": name, "arguments": arguments}))
    }

    /// The subscription object of a successful subscribe (taken out of the Markdown).
    pub(crate) fn subscribe_ok(&mut self, mode: &str) -> Value {
        let v = self.subscribe(mode);
        assert!(v["result"].get("isError").is_none(), "{v}");
        markdown_json(&v)
    }

    /// `events_list_subscriptions`, its JSON taken out of the Markdown.
    pub(crate) fn list_subscriptions(&mut self) -> Value {
        markdown_json(&self.call("events_list_subscriptions", json!({})))
    }

    pub(crate) fn delete(&mut self) -> Response {
        let owned = self.headers();
        let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
        self.post.send("DELETE", "/mcp", &headers, "");
        self.post.response()
    }

    /// initialize → initialized → setLevel → GET → subscribe, as PROTOCOL.md orders them.
    pub(crate) fn handshake(cluster: &SimCluster, ca: Option<&str>, mode: &str) -> (Mcp, Stream) {
        let mut m = Mcp::initialize(cluster, ca);
        assert_eq!(m.notify("notifications/initialized").status, 202);
        m.rpc("logging/setLevel", json!({"level": "info"}));
        let stream = m.open_stream();
        m.subscribe_ok(mode);
        (m, stream)
    }
}

/// The text of a tool result.
pub(crate) fn tool_text(reply: &Value) -> String {
    reply["result"]["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content in {reply}"))
        .to_string()
}

/// The JSON object inside a Markdown tool result (first `{` to last `}`).
pub(crate) fn markdown_json(reply: &Value) -> Value {
    let text = tool_text(reply);
    let (a, b) = (text.find('{').unwrap(), text.rfind('}').unwrap());
    serde_json::from_str(&text[a..=b]).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The client end of a GET event stream.
pub(crate) struct Stream {
    pub client: Client,
}

impl Stream {
    /// The next SSE event's data as JSON (events arrive one per chunk).
    pub(crate) fn next_message(&mut self) -> Value {
        let text = self.next_event();
        let data = text
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .unwrap_or_else(|| panic!("no data in {text:?}"));
        serde_json::from_str(data).unwrap_or_else(|e| panic!("{e}: {text:?}"))
    }

    /// The raw text of the next SSE event (one per chunk).
    pub(crate) fn next_event(&mut self) -> String {
        let chunk = self.client.chunk().expect("stream ended");
        String::from_utf8(chunk).unwrap()
    }

    /// The fault object of the next `kubernetes/faults` notification.
    pub(crate) fn next_fault(&mut self) -> Value {
        let m = self.next_message();
        assert_eq!(m["params"]["logger"], "kubernetes/faults", "{m}");
        m["params"]["data"].clone()
    }

    /// Reads to the terminating chunk; true if the body ended properly.
    pub(crate) fn ends(&mut self) -> bool {
        self.client.chunk().is_none()
    }
}
