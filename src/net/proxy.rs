//! HTTPS through an HTTP proxy: which proxy applies to a host (`slack.proxy`, else
//! `HTTPS_PROXY`/`https_proxy`, minus `NO_PROXY`/`no_proxy`), and the `CONNECT` tunnel on
//! the loop's socket before TLS starts. The proxy URL's user and password become a
//! `Proxy-Authorization: Basic` header and never appear in a log line or an error.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::transport::{self, ConnectProgress};
use crate::config::Secret;

/// Largest answer head a proxy may send to `CONNECT`.
const MAX_CONNECT_ANSWER: usize = 8 * 1024;

/// A proxy to reach HTTPS hosts through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpProxy {
    pub host: String,
    pub port: u16,
    /// `Basic <base64(user:password)>`, when the URL has a user.
    authorization: Option<Secret>,
    /// Hosts reached directly (`NO_PROXY`).
    no_proxy: Vec<String>,
}

impl HttpProxy {
    /// `http://[user:password@]host[:port][/]`; the text of an error never holds the URL.
    pub fn parse(url: &str, no_proxy: &str) -> Result<HttpProxy, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or("the proxy URL must start with http:// (the tunnel itself is not TLS)")?;
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('?') || rest.contains('#') {
            return Err("the proxy URL must not have a path".to_string());
        }
        let (user_info, host_port) = match rest.rsplit_once('@') {
            Some((user_info, host_port)) => (Some(user_info), host_port),
            None => (None, rest),
        };
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => (
                host,
                port.parse::<u16>()
                    .map_err(|_| "the proxy URL's port is not a number".to_string())?,
            ),
            _ => (host_port, 80),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || host.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err("the proxy URL has no usable host".to_string());
        }
        let authorization = user_info.map(|info| {
            let decoded = percent_decode(info);
            Secret::new(format!("Basic {}", base64(decoded.as_bytes())))
        });
        Ok(HttpProxy {
            host: host.to_string(),
            port,
            authorization,
            no_proxy: no_proxy
                .split(',')
                .map(|entry| entry.trim().to_ascii_lowercase())
                .filter(|entry| !entry.is_empty())
                .collect(),
        })
    }

    /// The proxy the process environment names for HTTPS, unless `setting` (`slack.proxy`)
    /// names one; `None` when neither does.
    pub fn from_setting_or_env(setting: Option<&Secret>) -> Result<Option<HttpProxy>, String> {
        let env = |names: [&str; 2]| {
            names
                .iter()
                .find_map(|name| std::env::var(name).ok().filter(|v| !v.trim().is_empty()))
        };
        let no_proxy = env(["NO_PROXY", "no_proxy"]).unwrap_or_default();
        let url = match setting {
            Some(url) => url.expose().to_string(),
            None => match env(["HTTPS_PROXY", "https_proxy"]) {
                Some(url) => url,
                None => return Ok(None),
            },
        };
        HttpProxy::parse(url.trim(), &no_proxy).map(Some)
    }

    /// False when `NO_PROXY` says to reach `host` directly: `*`, the host itself, or a
    /// domain it is in (`example.com` and `.example.com` both cover `api.example.com`).
    pub fn applies_to(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        !self.no_proxy.iter().any(|entry| {
            let domain = entry.trim_start_matches("*.").trim_start_matches('.');
            entry == "*"
                || host == domain
                || host
                    .strip_suffix(domain)
                    .is_some_and(|head| head.ends_with('.'))
        })
    }

    /// The `CONNECT` request for `host:port`.
    pub fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(authorization.expose());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        request.into_bytes()
    }
}

/// Where a tunnel is.
#[derive(Debug, PartialEq, Eq)]
pub enum TunnelProgress {
    Pending,
    /// The proxy answered 2xx: the socket now reaches the target.
    Established,
}

/// A `CONNECT` tunnel being set up on a registered socket.
pub struct ProxyTunnel {
    tcp: TcpStream,
    connecting: bool,
    request: Vec<u8>,
    answer: Vec<u8>,
}

impl ProxyTunnel {
    /// Connects to the proxy at `proxy` and registers the socket with `token` (once: the
    /// HTTP client that takes the socket over keeps the registration).
    pub fn open(
        registry: &Registry,
        token: Token,
        proxy: SocketAddr,
        request: Vec<u8>,
        keepalive: Duration,
    ) -> io::Result<ProxyTunnel> {
        let mut tcp = transport::connect(proxy, keepalive)?;
        registry.register(&mut tcp, token, Interest::READABLE | Interest::WRITABLE)?;
        Ok(ProxyTunnel {
            tcp,
            connecting: true,
            request,
            answer: Vec::new(),
        })
    }

    /// Handles a readiness event: finishes the connect, sends the request, reads the answer.
    pub fn on_ready(&mut self) -> Result<TunnelProgress, String> {
        if self.connecting {
            match transport::connect_progress(&self.tcp) {
                Ok(ConnectProgress::Pending) => return Ok(TunnelProgress::Pending),
                Ok(ConnectProgress::Connected) => self.connecting = false,
                Err(e) => return Err(format!("proxy: connect: {e}")),
            }
        }
        while !self.request.is_empty() {
            match self.tcp.write(&self.request) {
                Ok(0) => return Err("proxy: closed while the CONNECT request was sent".into()),
                Ok(n) => {
                    self.request.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(TunnelProgress::Pending)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("proxy: sending CONNECT: {e}")),
            }
        }
        // One byte at a time would be slow; the head is small, and reading past it is
        // refused below (a proxy speaks only after the client during TLS).
        let mut chunk = [0u8; 1024];
        loop {
            match self.tcp.read(&mut chunk) {
                Ok(0) => return Err("proxy: closed before answering CONNECT".into()),
                Ok(n) => {
                    self.answer.extend_from_slice(&chunk[..n]);
                    if self.answer.len() > MAX_CONNECT_ANSWER {
                        return Err("proxy: the answer to CONNECT is too large".into());
                    }
                    if let Some(progress) = read_connect_answer(&self.answer)? {
                        return Ok(progress);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(TunnelProgress::Pending)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("proxy: reading the CONNECT answer: {e}")),
            }
        }
    }

    /// The socket, once established.
    pub fn into_stream(self) -> TcpStream {
        self.tcp
    }

    pub fn close(mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.tcp);
    }
}

/// `None` while the head is incomplete.
fn read_connect_answer(answer: &[u8]) -> Result<Option<TunnelProgress>, String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let end = match response.parse(answer) {
        Ok(httparse::Status::Partial) => return Ok(None),
        Ok(httparse::Status::Complete(end)) => end,
        Err(e) => return Err(format!("proxy: the answer to CONNECT is not HTTP: {e}")),
    };
    match response.code {
        Some(200..=299) if end == answer.len() => Ok(Some(TunnelProgress::Established)),
        Some(200..=299) => Err("proxy: sent data before the tunnel was used".into()),
        Some(407) => Err("proxy: authentication required or refused (HTTP 407)".into()),
        Some(code) => Err(format!("proxy: CONNECT refused (HTTP {code})")),
        None => Err("proxy: the answer to CONNECT has no status".into()),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(h), Some(l)) if hex(*h).is_some() && hex(*l).is_some() => {
                let value = hex(*h).unwrap_or(0) * 16 + hex(*l).unwrap_or(0);
                out.push(value as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_rfc_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn proxy_url_with_credentials_gives_basic_authorization() {
        let proxy = HttpProxy::parse("http://ops:p%40ss@proxy.internal:3128/", "").unwrap();
        assert_eq!((proxy.host.as_str(), proxy.port), ("proxy.internal", 3128));
        let request = String::from_utf8(proxy.connect_request("slack.com", 443)).unwrap();
        assert_eq!(
            request,
            "CONNECT slack.com:443 HTTP/1.1\r\nHost: slack.com:443\r\n\
             Proxy-Authorization: Basic b3BzOnBAc3M=\r\n\r\n"
        );
        // Debug output of the proxy never shows the credentials.
        assert!(!format!("{proxy:?}").contains("b3BzOnBAc3M"));
    }

    #[test]
    fn bad_proxy_urls_are_refused_without_echoing_them() {
        for url in [
            "https://secret:pw@proxy:3128",
            "http://secret:pw@proxy:port",
            "http://proxy:3128/path",
            "http://",
        ] {
            let error = HttpProxy::parse(url, "").unwrap_err();
            assert!(
                !error.contains("secret") && !error.contains("pw"),
                "{error}"
            );
        }
        let plain = HttpProxy::parse("http://proxy", "").unwrap();
        assert_eq!(plain.port, 80);
    }

    #[test]
    fn no_proxy_covers_hosts_domains_and_everything() {
        let proxy = HttpProxy::parse("http://p:3128", "localhost, .internal,example.com").unwrap();
        assert!(!proxy.applies_to("localhost"));
        assert!(!proxy.applies_to("api.internal"));
        assert!(!proxy.applies_to("example.com"));
        assert!(!proxy.applies_to("hooks.example.com"));
        assert!(proxy.applies_to("notexample.com"));
        assert!(proxy.applies_to("slack.com"));
        let none = HttpProxy::parse("http://p:3128", "*").unwrap();
        assert!(!none.applies_to("slack.com"));
    }

    #[test]
    fn connect_answers_are_read_whole_and_refusals_named() {
        assert_eq!(read_connect_answer(b"HTTP/1.1 200 Conn"), Ok(None));
        assert_eq!(
            read_connect_answer(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Ok(Some(TunnelProgress::Established))
        );
        assert!(read_connect_answer(b"HTTP/1.1 407 Proxy Auth\r\n\r\n")
            .unwrap_err()
            .contains("407"));
        assert!(read_connect_answer(b"HTTP/1.1 403 Forbidden\r\n\r\n")
            .unwrap_err()
            .contains("403"));
        assert!(read_connect_answer(b"HTTP/1.1 200 OK\r\n\r\nextra").is_err());
        assert!(read_connect_answer(b"garbage\r\n\r\n").is_err());
    }
}
