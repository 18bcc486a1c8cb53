//! Plain TCP or server-side rustls over one accepted socket, usable from two threads at
//! once: a GET stream writes from one thread while another waits to read the peer's EOF.
//!
//! TLS is driven by hand (`read_tls`/`write_tls`) so that no lock is held while a thread
//! blocks on the socket.

use super::SimTls;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::{Arc, Mutex, PoisonError};

/// Builds the shared rustls server configuration from PEM bytes.
pub(crate) fn server_config(tls: &SimTls) -> io::Result<Arc<ServerConfig>> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("simulator tls {what}: {e}"),
        )
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&tls.cert_chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad("certificate chain", &e))?;
    if certs.is_empty() {
        return Err(bad("certificate chain", &"no CERTIFICATE block found"));
    }
    let key = PrivateKeyDer::from_pem_slice(&tls.key_pem).map_err(|e| bad("private key", &e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad("protocol versions", &e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| bad("certificate", &e))?;
    Ok(Arc::new(config))
}

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsTransport>),
}

pub(crate) struct TlsTransport {
    sock: TcpStream,
    conn: Mutex<ServerConnection>,
}

/// Raw bytes read per socket read. Small enough that rustls' received-plaintext limit can
/// never be exceeded, since we only read when no plaintext is pending.
const RAW_READ: usize = 4096;

impl Transport {
    pub(crate) fn new(sock: TcpStream, tls: Option<&Arc<ServerConfig>>) -> io::Result<Transport> {
        match tls {
            None => Ok(Transport::Plain(sock)),
            Some(config) => {
                let conn = ServerConnection::new(Arc::clone(config))
                    .map_err(|e| io::Error::other(format!("tls setup: {e}")))?;
                Ok(Transport::Tls(Box::new(TlsTransport {
                    sock,
                    conn: Mutex::new(conn),
                })))
            }
        }
    }

    pub(crate) fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.sock,
        }
    }

    /// Blocking read of application bytes; `Ok(0)` is the end of the stream.
    pub(crate) fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => (&*s).read(out),
            Transport::Tls(t) => t.read(out),
        }
    }

    pub(crate) fn write_all(&self, data: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(s) => (&*s).write_all(data),
            Transport::Tls(t) => t.write_all(data),
        }
    }

    /// Writes `data` on a socket that has a short write timeout, calling `on_block` after
    /// every timed-out or partial write: it says whether to keep trying. Used for GET
    /// streams, whose client may stop reading.
    pub(crate) fn write_all_patient(
        &self,
        data: &[u8],
        on_block: &mut dyn FnMut() -> bool,
    ) -> io::Result<()> {
        match self {
            Transport::Plain(s) => {
                let mut rest = data;
                while !rest.is_empty() {
                    match (&*s).write(rest) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => {
                            rest = &rest[n..];
                            if !rest.is_empty() && !on_block() {
                                return Err(io::ErrorKind::TimedOut.into());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) if is_timeout(&e) => {
                            if !on_block() {
                                return Err(e);
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
            Transport::Tls(t) => t.write_all_patient(data, on_block),
        }
    }

    /// Writes `data` and the FIN together: the socket is corked, written, shut for
    /// writing, then uncorked, so the FIN rides in the segment carrying the last bytes.
    pub(crate) fn write_and_finish(&self, data: &[u8]) -> io::Result<()> {
        let sock = self.socket();
        set_cork(sock, true);
        let written = match self {
            Transport::Plain(s) => (&*s).write_all(data),
            Transport::Tls(t) => t.write_all(data).and_then(|_| {
                let mut c = t.conn.lock().unwrap_or_else(PoisonError::into_inner);
                c.send_close_notify();
                flush_tls(&mut c, &t.sock).map(|_| ())
            }),
        };
        let _ = sock.shutdown(Shutdown::Write);
        set_cork(sock, false);
        written
    }

    /// Graceful close: TLS close_notify where there is TLS, then shut the socket down.
    pub(crate) fn close(&self) {
        if let Transport::Tls(t) = self {
            let mut c = t.conn.lock().unwrap_or_else(PoisonError::into_inner);
            c.send_close_notify();
            let _ = flush_tls(&mut c, &t.sock);
        }
        let _ = self.socket().shutdown(Shutdown::Both);
    }
}

impl TlsTransport {
    fn read(&self, out: &mut [u8]) -> io::Result<usize> {
        if out.is_empty() {
            return Ok(0);
        }
        loop {
            {
                let mut c = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                match c.reader().read(out) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                    Err(e) => return Err(e),
                }
                flush_tls(&mut c, &self.sock)?;
            }
            let mut raw = [0u8; RAW_READ];
            let n = (&self.sock).read(&mut raw)?;
            if n == 0 {
                return Ok(0);
            }
            let mut c = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
            let mut rest = &raw[..n];
            while !rest.is_empty() {
                if c.read_tls(&mut rest)? == 0 {
                    return Err(io::Error::other("tls: record buffer full"));
                }
                if let Err(e) = c.process_new_packets() {
                    // Let the peer see the alert before we give up.
                    let _ = flush_tls(&mut c, &self.sock);
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("tls: {e}"),
                    ));
                }
            }
            flush_tls(&mut c, &self.sock)?;
        }
    }

    fn write_all(&self, data: &[u8]) -> io::Result<()> {
        let mut c = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rest = data;
        while !rest.is_empty() {
            let n = c.writer().write(rest)?;
            rest = &rest[n..];
            let flushed = flush_tls(&mut c, &self.sock)?;
            if n == 0 && !flushed {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "tls: cannot buffer plaintext",
                ));
            }
        }
        Ok(())
    }
}

impl TlsTransport {
    fn write_all_patient(&self, data: &[u8], on_block: &mut dyn FnMut() -> bool) -> io::Result<()> {
        let mut c = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let mut rest = data;
        let mut w = &self.sock;
        while !rest.is_empty() || c.wants_write() {
            if !rest.is_empty() {
                let n = c.writer().write(rest)?;
                rest = &rest[n..];
                if n == 0 && !c.wants_write() {
                    return Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "tls: cannot buffer plaintext",
                    ));
                }
            }
            if !c.wants_write() {
                continue;
            }
            match c.write_tls(&mut w) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {
                    if c.wants_write() && !on_block() {
                        return Err(io::ErrorKind::TimedOut.into());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_timeout(&e) => {
                    if !on_block() {
                        return Err(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// TCP_CORK on Linux (elsewhere a no-op: the FIN may then leave in its own segment).
#[cfg(target_os = "linux")]
fn set_cork(sock: &TcpStream, on: bool) {
    use std::os::fd::AsRawFd;
    let value: libc::c_int = i32::from(on);
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_CORK,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_cork(_sock: &TcpStream, _on: bool) {}

/// Writes out whatever TLS records are pending; true if anything was written.
fn flush_tls(c: &mut ServerConnection, sock: &TcpStream) -> io::Result<bool> {
    let mut wrote = false;
    let mut w = sock;
    while c.wants_write() {
        if c.write_tls(&mut w)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "tls: socket closed",
            ));
        }
        wrote = true;
    }
    Ok(wrote)
}

#[cfg(test)]
mod tests {
    use crate::sim::testkit::{quiet, start, test_certs, Client, Mcp, WAIT};
    use crate::sim::{SimOptions, SimTls, Simulator};
    use serde_json::json;
    use std::time::{Duration, Instant};

    #[test]
    fn tls_handshake_in_protocol_order_delivers_faults() {
        let certs = test_certs();
        let sim = start(SimOptions {
            tls: Some(certs.tls.clone()),
            rate_per_sec: 100.0,
            faults_per_cluster: Some(2),
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        assert!(c.endpoint().starts_with("https://127.0.0.1:"));
        let (mut m, mut stream) = Mcp::handshake(c, Some(&certs.ca_pem), "faults");
        let a = stream.next_fault();
        let b = stream.next_fault();
        assert_ne!(a["faultId"], b["faultId"]);
        let id = c.emit_fault("critical", "CrashLoop").expect("delivered");
        assert_eq!(stream.next_fault()["faultId"], id.as_str());
        assert!(c.wait_for(|s| s.faults_sent == 3, WAIT));
        assert_eq!(m.delete().status, 204);
        assert!(stream.ends());
        sim.stop();
    }

    #[test]
    fn tls_write_blocked_past_the_timeout_cancels_the_subscription() {
        let certs = test_certs();
        let sim = start(SimOptions {
            tls: Some(certs.tls.clone()),
            write_block_timeout: Some(Duration::from_millis(300)),
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        let (_m, mut stream) = Mcp::handshake(c, Some(&certs.ca_pem), "faults");
        let big = "y".repeat(32 << 20);
        assert_eq!(c.emit_server_error(&big), 1);
        assert_eq!(c.emit_fault("critical", "PodCrash"), None);
        assert!(c.wait_for(|s| s.subscriptions_cancelled_undeliverable == 1, WAIT));
        let m = stream.next_message();
        assert_eq!(m["params"]["data"].as_str().map(str::len), Some(big.len()));
        sim.stop();
    }

    #[test]
    fn tls_reply_formats_both_parse() {
        let certs = test_certs();
        let sim = start(SimOptions {
            tls: Some(certs.tls.clone()),
            reply_format: crate::sim::ReplyFormat::Alternate,
            ..quiet(1)
        });
        let mut m = Mcp::initialize(&sim.clusters()[0], Some(&certs.ca_pem));
        for _ in 0..4 {
            assert_eq!(m.rpc("ping", json!({}))["result"], json!({}));
        }
        sim.stop();
    }

    #[test]
    fn failed_tls_handshake_leaves_the_cluster_serving() {
        let certs = test_certs();
        let other = test_certs();
        let sim = start(SimOptions {
            tls: Some(certs.tls.clone()),
            ..quiet(1)
        });
        let c = &sim.clusters()[0];
        let mut untrusting = Client::connect(c, Some(&other.ca_pem));
        let req = untrusting.request_bytes("POST", "/mcp", &[], "{}");
        let err = untrusting
            .try_send_raw(&req)
            .expect_err("certificate must not verify");
        assert!(err.to_string().contains("certificate"), "{err}");
        let mut ok = Mcp::initialize(c, Some(&certs.ca_pem));
        assert_eq!(ok.rpc("ping", json!({}))["result"], json!({}));
        sim.stop();
    }

    #[test]
    fn tls_stop_is_prompt_with_streams_open() {
        let certs = test_certs();
        let sim = start(SimOptions {
            tls: Some(certs.tls.clone()),
            ..quiet(3)
        });
        let held: Vec<_> = sim
            .clusters()
            .iter()
            .map(|c| Mcp::handshake(c, Some(&certs.ca_pem), "faults"))
            .collect();
        let began = Instant::now();
        sim.stop();
        assert!(began.elapsed() < Duration::from_secs(3));
        drop(held);
    }

    #[test]
    fn bad_pem_is_refused_naming_the_part() {
        let certs = test_certs();
        let err = Simulator::start(SimOptions {
            tls: Some(SimTls {
                cert_chain_pem: b"not pem".to_vec(),
                key_pem: certs.tls.key_pem.clone(),
            }),
            ..quiet(1)
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("certificate chain"), "{err}");
        let err = Simulator::start(SimOptions {
            tls: Some(SimTls {
                cert_chain_pem: certs.tls.cert_chain_pem.clone(),
                key_pem: Vec::new(),
            }),
            ..quiet(1)
        })
        .err()
        .expect("refused");
        assert!(err.to_string().contains("private key"), "{err}");
    }
}
