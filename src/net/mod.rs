//! Network plumbing for the loop: name resolution, TCP/TLS transports, the HTTP/1.1 client
//! and the SSE parser. Protocol parsers here are sans-I/O: bytes in, events out.

pub mod certificate;
pub mod client;
pub mod dns;
pub mod http;
#[cfg(test)]
pub mod memory;
pub mod proxy;
pub mod sse;
pub mod tls;
pub mod tls_session;
pub mod transport;
