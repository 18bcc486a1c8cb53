//! A local HTTPS stand-in for a Slack incoming webhook: it answers a scripted series of
//! statuses (then "200 ok" forever) and records every request it receives. The server
//! certificate comes from a throw-away CA whose PEM the client under test must trust.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

const WEBHOOK_PATH: &str = "/services/T000/B000/XXXX";
/// Every blocking read and write of a connection gives up after this, so no client can
/// hold a connection thread, or `Drop`, for longer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_HEAD_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub received_at: Instant,
    /// The status the request was answered with.
    pub answered: u16,
}

impl ReceivedRequest {
    /// The first header of that name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    script: VecDeque<(u16, Option<&'static str>)>,
    requests: Vec<ReceivedRequest>,
    connection_errors: Vec<String>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not hide the requests recorded so far.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record_error(&self, error: String) {
        self.lock().connection_errors.push(error);
        self.changed.notify_all();
    }
}

pub struct WebhookReceiver {
    addr: SocketAddr,
    dir: PathBuf,
    ca_pem_path: PathBuf,
    ca_pem: String,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    /// `script`: the responses to give in order, e.g. [(429, Some("1")), (500, None),
    /// (200, None)], the second element being the `Retry-After` value; after the script,
    /// always 200 "ok".
    pub fn start(script: Vec<(u16, Option<&'static str>)>) -> WebhookReceiver {
        let (ca_pem, server_config) = throwaway_tls();
        Self::start_with(script, ca_pem, server_config)
    }

    /// Serves with a given certificate (PEM) and key; `ca_pem_path` then holds the
    /// certificate itself, for pinning.
    pub fn start_with_certificate(
        script: Vec<(u16, Option<&'static str>)>,
        cert_pem: &str,
        key_pem: &str,
    ) -> WebhookReceiver {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .map(Result::unwrap)
            .collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        Self::start_with(script, cert_pem.to_owned(), Arc::new(config))
    }

    fn start_with(
        script: Vec<(u16, Option<&'static str>)>,
        ca_pem: String,
        server_config: Arc<ServerConfig>,
    ) -> WebhookReceiver {
        let dir = unique_temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem_path = dir.join("webhook-ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        shared.lock().script = script.into();
        let stop = Arc::new(AtomicBool::new(false));

        let accept_thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("webhook-accept".to_string())
                .spawn(move || accept_loop(listener, server_config, shared, stop))
                .unwrap()
        };

        WebhookReceiver {
            addr,
            dir,
            ca_pem_path,
            ca_pem,
            shared,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn url(&self) -> String {
        format!("https://{}{}", self.addr, WEBHOOK_PATH)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The CA the client must trust, written into a directory the receiver owns.
    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn requests(&self) -> Vec<ReceivedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Connections that ended without a complete request (TLS failures, bad requests).
    pub fn connection_errors(&self) -> Vec<String> {
        self.shared.lock().connection_errors.clone()
    }

    /// True once at least `n` requests have arrived; false if `timeout` passes first.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.requests.len() < n {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // The accept thread sits in a blocking accept(); one connection wakes it up. If
        // even that fails, the thread is left behind rather than risking a hang.
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.accept_thread.take() {
            if woke {
                let _ = thread.join();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn unique_temp_dir() -> PathBuf {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "nightcrier-webhook-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A CA and a server certificate for 127.0.0.1 and localhost signed by it.
pub fn throwaway_tls() -> (String, Arc<ServerConfig>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "nightcrier webhook test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = rcgen::KeyPair::generate().unwrap();
    let server =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap()
            .signed_by(&server_key, &issuer)
            .unwrap();

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![server.der().clone()], key)
        .unwrap();
    (ca.pem(), Arc::new(config))
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let mut connections: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        connections.retain(|(_, handle)| !handle.is_finished());
        let Ok(control) = stream.try_clone() else {
            continue;
        };
        let config = Arc::clone(&config);
        let shared = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("webhook-conn".to_string())
            .spawn(move || {
                if let Err(error) = serve(stream, config, &shared) {
                    shared.record_error(error);
                }
            });
        if let Ok(handle) = spawned {
            connections.push((control, handle));
        }
    }
    // Shutting the sockets down ends any read a connection thread is blocked in.
    for (control, handle) in connections {
        let _ = control.shutdown(Shutdown::Both);
        let _ = handle.join();
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, shared: &Shared) -> Result<(), String> {
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| format!("socket setup: {e}"))?;
    let connection = ServerConnection::new(config).map_err(|e| format!("tls setup: {e}"))?;
    let mut tls = StreamOwned::new(connection, stream);

    let request = match read_request(&mut tls) {
        Ok(Some(request)) => request,
        // A connection closed before sending anything, such as the one that wakes the
        // accept thread at shutdown.
        Ok(None) => return Ok(()),
        Err(RequestError::Io(e)) => return Err(format!("reading request: {e}")),
        Err(RequestError::Bad(why)) => {
            let _ = respond(&mut tls, 400, None, "bad_request");
            return Err(format!("bad request: {why}"));
        }
    };

    let (status, retry_after) = {
        let mut state = shared.lock();
        let (status, retry_after) = state.script.pop_front().unwrap_or((200, None));
        state.requests.push(ReceivedRequest {
            method: request.method,
            path: request.path,
            headers: request.headers,
            body: String::from_utf8_lossy(&request.body).into_owned(),
            received_at: Instant::now(),
            answered: status,
        });
        (status, retry_after)
    };
    shared.changed.notify_all();

    respond(&mut tls, status, retry_after, body_for(status))
        .map_err(|e| format!("writing response: {e}"))
}

pub enum RequestError {
    Io(io::Error),
    Bad(String),
}

impl From<io::Error> for RequestError {
    fn from(e: io::Error) -> Self {
        RequestError::Io(e)
    }
}

pub fn read_request(stream: &mut impl Read) -> Result<Option<Request>, RequestError> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(pos) = find(&buf, b"\r\n\r\n") {
            break pos;
        }
        if buf.len() > MAX_HEAD_BYTES {
            return Err(RequestError::Bad("header section too large".to_string()));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            if buf.is_empty() {
                return Ok(None);
            }
            return Err(RequestError::Bad(
                "connection closed inside the headers".into(),
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
    };

    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| RequestError::Bad("header section is not UTF-8".to_string()))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RequestError::Bad(format!("request line {request_line:?}")));
    };
    if !version.starts_with("HTTP/1.") || method.is_empty() || !path.starts_with('/') {
        return Err(RequestError::Bad(format!("request line {request_line:?}")));
    }
    let mut headers = Vec::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(RequestError::Bad(format!("header line {line:?}")));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let header = |wanted: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.as_str())
    };
    if header("transfer-encoding").is_some() {
        return Err(RequestError::Bad(
            "Transfer-Encoding bodies are not supported; send Content-Length".to_string(),
        ));
    }
    let length = match header("content-length") {
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| RequestError::Bad(format!("Content-Length {v:?}")))?,
        None => 0,
    };
    if length > MAX_BODY_BYTES {
        return Err(RequestError::Bad(format!("body of {length} bytes")));
    }

    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(RequestError::Bad(format!(
                "connection closed after {} of {length} body bytes",
                body.len()
            )));
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);

    Ok(Some(Request {
        method: method.to_string(),
        path: path.to_string(),
        headers,
        body,
    }))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The bodies Slack itself answers with.
fn body_for(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        429 => "rate_limited",
        500..=599 => "server_error",
        400 => "invalid_payload",
        403 => "invalid_token",
        404 => "no_service",
        410 => "channel_is_archived",
        _ => "error",
    }
}

pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}

fn respond(
    tls: &mut StreamOwned<ServerConnection, TcpStream>,
    status: u16,
    retry_after: Option<&str>,
    body: &str,
) -> io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        body.len()
    );
    if let Some(retry_after) = retry_after {
        response.push_str(&format!("Retry-After: {retry_after}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(body);
    tls.write_all(response.as_bytes())?;
    tls.conn.send_close_notify();
    tls.flush()?;
    let _ = tls.sock.shutdown(Shutdown::Write);
    Ok(())
}
