//! Where a connection's sockets come from: TCP (plain or TLS) in the daemon; in-memory pipes
//! in the connection's unit tests.

use std::net::SocketAddr;

use mio::{Registry, Token};

use crate::net::client::{ClientError, HttpClient, TlsTarget};

/// What a new HTTP client needs besides its address.
pub struct DialRequest {
    pub token: Token,
    pub addr: SocketAddr,
    pub tls: Option<TlsTarget>,
    pub keepalive: std::time::Duration,
    pub max_head_bytes: usize,
    pub max_body_bytes: Option<usize>,
}

pub trait Dialer {
    fn dial(&self, registry: &Registry, request: DialRequest) -> Result<HttpClient, ClientError>;
}

/// Real sockets, registered with the loop's poll.
pub struct TcpDialer;

impl Dialer for TcpDialer {
    fn dial(&self, registry: &Registry, request: DialRequest) -> Result<HttpClient, ClientError> {
        HttpClient::open(
            registry,
            request.token,
            request.addr,
            request.tls,
            request.keepalive,
            request.max_head_bytes,
            request.max_body_bytes,
        )
    }
}
