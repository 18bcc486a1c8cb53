//! One HTTP/1.1 client connection on the loop: a transport, a response parser and the bytes
//! waiting to be sent. The socket is registered once for read and write readiness
//! (edge-triggered) and never re-registered; the connection tracks its own progress.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mio::{Interest, Registry, Token};
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::http::{HttpError, ResponseEvent, ResponseParser};
use super::tls_session::TlsError;
use super::transport::{self, ConnectProgress, ReadBuffers, ReadOutcome, Transport};

/// How far a readiness event moved the connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// Still connecting (TCP or TLS handshake).
    Connecting,
    /// Open; any response events were appended. `more`: the read budget ran out before the
    /// socket was drained, so call again once the events are handled (edge-triggered: no
    /// new event will come for bytes already waiting).
    Open { more: bool },
    /// The peer closed; `on_eof` events were appended.
    Closed,
}

#[derive(Debug)]
pub enum ClientError {
    Connect(io::Error),
    Tls(String),
    /// The server's certificate was refused; the text names the server and says why.
    Certificate(String),
    Io(io::Error),
    Http(HttpError),
}

impl ClientError {
    pub fn phase(&self) -> &'static str {
        match self {
            ClientError::Connect(_) => "connecting",
            ClientError::Tls(_) | ClientError::Certificate(_) => "tls",
            ClientError::Io(_) | ClientError::Http(_) => "stream",
        }
    }
}

impl std::fmt::Display for ClientError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientError::Connect(e) => write!(f, "connect: {e}"),
            ClientError::Tls(e) => write!(f, "TLS: {e}"),
            ClientError::Certificate(e) => f.write_str(e),
            ClientError::Io(e) => write!(f, "I/O: {e}"),
            ClientError::Http(e) => write!(f, "HTTP: {e}"),
        }
    }
}

pub struct TlsTarget {
    pub config: Arc<ClientConfig>,
    pub name: ServerName<'static>,
}

pub struct HttpClient {
    transport: Transport,
    connecting: bool,
    parser: ResponseParser,
    outbound: Vec<u8>,
}

impl HttpClient {
    #[allow(clippy::too_many_arguments)]
    pub fn open(
        registry: &Registry,
        token: Token,
        addr: SocketAddr,
        tls: Option<TlsTarget>,
        keepalive: Duration,
        max_head_bytes: usize,
        max_body_bytes: Option<usize>,
    ) -> Result<HttpClient, ClientError> {
        let tcp = transport::connect(addr, keepalive).map_err(ClientError::Connect)?;
        let mut transport = match tls {
            None => Transport::plain(tcp),
            Some(target) => Transport::tls(tcp, target.config, target.name)
                .map_err(|e| ClientError::Tls(e.to_string()))?,
        };
        if let Some(tcp) = transport.tcp() {
            registry
                .register(tcp, token, Interest::READABLE | Interest::WRITABLE)
                .map_err(ClientError::Connect)?;
        }
        Ok(HttpClient {
            transport,
            connecting: true,
            parser: ResponseParser::new(max_head_bytes, max_body_bytes),
            outbound: Vec::new(),
        })
    }

    /// A client on a socket that is connected and registered already (a proxy tunnel):
    /// TLS, when asked for, starts with the first flush.
    pub fn over_established(
        tcp: mio::net::TcpStream,
        tls: Option<TlsTarget>,
        max_head_bytes: usize,
        max_body_bytes: Option<usize>,
    ) -> Result<HttpClient, ClientError> {
        let transport = match tls {
            None => Transport::plain(tcp),
            Some(target) => Transport::tls(tcp, target.config, target.name)
                .map_err(|e| ClientError::Tls(e.to_string()))?,
        };
        Ok(HttpClient {
            transport,
            connecting: false,
            parser: ResponseParser::new(max_head_bytes, max_body_bytes),
            outbound: Vec::new(),
        })
    }

    pub fn close(mut self, registry: &Registry) {
        // Deregistering a socket that is about to close can only fail if it was never
        // registered; nothing to do about it either way.
        if let Some(tcp) = self.transport.tcp() {
            let _ = registry.deregister(tcp);
        }
    }

    /// A client on an in-memory pipe, for the connection's unit tests. Like a socket, it
    /// reports itself connected at its first readiness event.
    #[cfg(test)]
    pub fn in_memory(
        stream: super::memory::MemoryStream,
        max_head_bytes: usize,
        max_body_bytes: Option<usize>,
    ) -> HttpClient {
        HttpClient {
            transport: Transport::Memory(stream),
            connecting: true,
            parser: ResponseParser::new(max_head_bytes, max_body_bytes),
            outbound: Vec::new(),
        }
    }

    /// True once TCP (and TLS, when used) are established.
    pub fn is_open(&self) -> bool {
        !self.connecting && !self.transport.is_handshaking()
    }

    /// True when no response is in progress (a request may be sent).
    pub fn is_idle(&self) -> bool {
        self.parser.is_idle()
    }

    pub fn queue(&mut self, bytes: &[u8]) {
        self.outbound.extend_from_slice(bytes);
    }

    /// Sends what is queued, as far as the socket takes it.
    pub fn flush(&mut self) -> Result<(), ClientError> {
        // Nothing to send is the common case: every readiness event flushes first.
        if self.connecting || (self.outbound.capacity() == 0 && self.transport.is_idle()) {
            return Ok(());
        }
        let was_handshaking = self.transport.is_handshaking();
        let result = self.transport.write(&mut self.outbound);
        if self.outbound.is_empty() && self.outbound.capacity() > 0 {
            // Requests are rare (a ping every half minute): an idle connection keeps no
            // send buffer.
            self.outbound = Vec::new();
        }
        result
            .map(|_| ())
            .map_err(|e| self.io_error(e, was_handshaking))
    }

    /// Handles a readiness event: finishes the connect, sends, then reads what is available
    /// (up to the read budget) into `inbound.plaintext` and parses it. Response events refer
    /// to `inbound.plaintext`, so they must be handled before the next call.
    pub fn on_ready(
        &mut self,
        inbound: &mut ReadBuffers,
        events: &mut Vec<ResponseEvent>,
    ) -> Result<Progress, ClientError> {
        if self.connecting {
            let progress = match self.transport.tcp() {
                Some(tcp) => transport::connect_progress(tcp),
                None => Ok(ConnectProgress::Connected),
            };
            match progress {
                Ok(ConnectProgress::Pending) => return Ok(Progress::Connecting),
                Ok(ConnectProgress::Connected) => self.connecting = false,
                Err(e) => return Err(ClientError::Connect(e)),
            }
        }
        self.flush()?;
        inbound.plaintext.clear();
        let was_handshaking = self.transport.is_handshaking();
        let outcome = self
            .transport
            .read(inbound)
            .map_err(|e| self.io_error(e, was_handshaking))?;
        self.parser
            .feed(&inbound.plaintext, events)
            .map_err(ClientError::Http)?;
        match outcome {
            ReadOutcome::More => Ok(Progress::Open { more: true }),
            ReadOutcome::Closed => {
                if self.transport.is_handshaking() {
                    return Err(ClientError::Tls("peer closed during handshake".into()));
                }
                self.parser.on_eof(events).map_err(ClientError::Http)?;
                Ok(Progress::Closed)
            }
            ReadOutcome::Drained => {
                // A finished handshake may have released plaintext queued during it.
                self.flush()?;
                if self.transport.is_handshaking() {
                    Ok(Progress::Connecting)
                } else {
                    Ok(Progress::Open { more: false })
                }
            }
        }
    }

    fn io_error(&self, e: io::Error, during_handshake: bool) -> ClientError {
        if let Some(TlsError::Certificate(text)) = e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<TlsError>())
        {
            return ClientError::Certificate(text.clone());
        }
        if during_handshake || e.kind() == io::ErrorKind::InvalidData {
            ClientError::Tls(e.to_string())
        } else {
            ClientError::Io(e)
        }
    }
}
