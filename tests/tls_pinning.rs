//! Server certificates made with the openssl command line, against real rustls servers on
//! 127.0.0.1 and through the daemon: a certificate in `ca_file` is pinned (accepted with
//! its name and validity still checked), CA-signed certificates still verify, and every
//! refusal says what is wrong in operator words.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::openssl::{ca, leaf_signed_by, self_signed, self_signed_between, OpensslCert};
use common::*;
use nightcrier::cluster::status::ConnectionStatus;
use nightcrier::net::tls::{server_name, TlsConfigs};
use nightcrier::net::tls_session::TlsError;
use nightcrier::sim::{SimOptions, Simulator};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

const GREETING: &[u8] = b"hello over tls";
const IO_WAIT: Duration = Duration::from_secs(10);

/// A rustls server that serves one connection with `cert`, sends a greeting and closes.
struct OneConnectionServer {
    port: u16,
    thread: JoinHandle<()>,
}

fn serve_once(cert: &OpensslCert) -> OneConnectionServer {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert.cert_path)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(&cert.key_path).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let thread = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(IO_WAIT)).unwrap();
        tcp.set_write_timeout(Some(IO_WAIT)).unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(config)).unwrap();
        let mut stream = rustls::StreamOwned::new(conn, tcp);
        // A client that refuses the certificate ends the handshake: an error here is
        // expected then, and the client side reports what matters.
        if stream
            .write_all(GREETING)
            .and_then(|_| stream.flush())
            .is_ok()
        {
            stream.conn.send_close_notify();
            let _ = stream.flush();
        }
    });
    OneConnectionServer { port, thread }
}

/// A TLS handshake with nightcrier's client configuration for `ca_file`, to the server on
/// 127.0.0.1 under the name `host`. Err: the text an operator would read.
fn connect(server: OneConnectionServer, ca_file: Option<&Path>, host: &str) -> Result<(), String> {
    let config = TlsConfigs::new().get(ca_file, false).unwrap();
    let conn = rustls::ClientConnection::new(config, server_name(host).unwrap()).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    tcp.set_read_timeout(Some(IO_WAIT)).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut received = vec![0u8; GREETING.len()];
    let result = stream.read_exact(&mut received);
    drop(stream);
    server.thread.join().unwrap();
    match result {
        Ok(()) => {
            assert_eq!(received, GREETING);
            Ok(())
        }
        Err(e) => match e
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            Some(tls) => Err(TlsError::from(tls.clone()).to_string()),
            None => panic!("not a TLS error: {e}"),
        },
    }
}

fn refusal(result: Result<(), String>) -> String {
    match result {
        Ok(()) => panic!("the certificate was accepted"),
        Err(message) => message,
    }
}

#[test]
fn pinned_self_signed_certificate_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "server", "127.0.0.1", "IP:127.0.0.1", &[]);
    let ca_file = dir.path().join("ca.pem");
    // Pinned among other certificates of the ca_file.
    let other = ca(dir.path(), "other", "/CN=Other CA");
    std::fs::write(&ca_file, format!("{}{}", other.cert_pem, cert.cert_pem)).unwrap();
    connect(serve_once(&cert), Some(&ca_file), "127.0.0.1").unwrap();
}

#[test]
fn pinned_self_signed_certificate_for_a_dns_name_is_accepted_under_that_name() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "server", "localhost", "DNS:localhost", &[]);
    connect(serve_once(&cert), Some(&cert.cert_path), "localhost").unwrap();
}

#[test]
fn pinned_certificate_for_other_names_is_refused_with_the_names_it_has() {
    let dir = tempfile::tempdir().unwrap();
    let san = "DNS:mcp.example.internal,IP:10.1.2.3";
    let cert = self_signed(dir.path(), "server", "mcp", san, &[]);
    let message = refusal(connect(
        serve_once(&cert),
        Some(&cert.cert_path),
        "127.0.0.1",
    ));
    assert_eq!(
        message,
        "server certificate for 127.0.0.1 does not name 127.0.0.1; its names are \
         mcp.example.internal, 10.1.2.3; use one of them in the endpoint, or reissue the \
         certificate"
    );
}

#[test]
fn pinned_expired_certificate_is_refused_with_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed_between(
        dir.path(),
        "server",
        "127.0.0.1",
        "IP:127.0.0.1",
        "20240101000000Z",
        "20250101000000Z",
    );
    let message = refusal(connect(
        serve_once(&cert),
        Some(&cert.cert_path),
        "127.0.0.1",
    ));
    assert_eq!(
        message,
        "server certificate for 127.0.0.1 expired on 2025-01-01T00:00:00Z (notAfter)"
    );
}

#[test]
fn pinned_certificate_not_yet_valid_is_refused_with_its_date() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed_between(
        dir.path(),
        "server",
        "127.0.0.1",
        "IP:127.0.0.1",
        "20990101000000Z",
        "21000101000000Z",
    );
    let message = refusal(connect(
        serve_once(&cert),
        Some(&cert.cert_path),
        "127.0.0.1",
    ));
    assert_eq!(
        message,
        "server certificate for 127.0.0.1 is not valid before 2099-01-01T00:00:00Z \
         (notBefore); check this host's clock"
    );
}

#[test]
fn ca_certificate_as_server_certificate_not_in_ca_file_is_refused_with_the_remedy() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "server", "127.0.0.1", "IP:127.0.0.1", &[]);
    let other = ca(dir.path(), "other", "/CN=Other CA");
    let expected = "the server's certificate for 127.0.0.1 (CN=127.0.0.1) is a CA certificate \
                    (self-signed?); add it to ca_file to pin it, or give the server a \
                    certificate signed by a CA";
    let with_other_ca = refusal(connect(
        serve_once(&cert),
        Some(&other.cert_path),
        "127.0.0.1",
    ));
    assert_eq!(with_other_ca, expected);
    let without_ca_file = refusal(connect(serve_once(&cert), None, "127.0.0.1"));
    assert_eq!(without_ca_file, expected);
}

#[test]
fn self_signed_end_entity_certificate_not_in_ca_file_is_refused_as_self_signed() {
    let dir = tempfile::tempdir().unwrap();
    let extra = ["-addext", "basicConstraints=critical,CA:FALSE"];
    let cert = self_signed(dir.path(), "server", "mcp-server", "IP:127.0.0.1", &extra);
    let message = refusal(connect(serve_once(&cert), None, "127.0.0.1"));
    assert_eq!(
        message,
        "server certificate for 127.0.0.1 is self-signed (CN=mcp-server) and not in ca_file; \
         add it to ca_file to pin it"
    );
    // Pinned, the same certificate is accepted.
    connect(serve_once(&cert), Some(&cert.cert_path), "127.0.0.1").unwrap();
}

#[test]
fn certificate_from_an_unknown_ca_is_refused_naming_the_issuer() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = ca(dir.path(), "ops-ca", "/O=Example Ops/CN=Ops Root CA");
    let leaf = leaf_signed_by(dir.path(), "server", &issuer, "mcp", "IP:127.0.0.1");
    let other = ca(dir.path(), "other", "/CN=Other CA");
    let message = refusal(connect(
        serve_once(&leaf),
        Some(&other.cert_path),
        "127.0.0.1",
    ));
    assert_eq!(
        message,
        "server certificate for 127.0.0.1 is issued by \"O=Example Ops, CN=Ops Root CA\", \
         which is not a trusted CA (neither in ca_file nor among the built-in webpki roots); \
         add that CA's certificate to ca_file"
    );
    let message = refusal(connect(serve_once(&leaf), None, "127.0.0.1"));
    assert!(message.contains("no ca_file is set"), "{message}");
}

#[test]
fn certificate_signed_by_the_ca_in_ca_file_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = ca(dir.path(), "ops-ca", "/O=Example Ops/CN=Ops Root CA");
    let leaf = leaf_signed_by(dir.path(), "server", &issuer, "mcp", "IP:127.0.0.1");
    connect(serve_once(&leaf), Some(&issuer.cert_path), "127.0.0.1").unwrap();
    // Its name is still checked, and the refusal lists the names it has.
    let message = refusal(connect(
        serve_once(&leaf),
        Some(&issuer.cert_path),
        "localhost",
    ));
    assert!(message.contains("its names are 127.0.0.1;"), "{message}");
}

#[test]
fn daemon_reaches_a_tls_cluster_whose_self_signed_certificate_is_pinned() {
    let dir = tempfile::tempdir().unwrap();
    let cert = self_signed(dir.path(), "server", "127.0.0.1", "IP:127.0.0.1", &[]);
    let sim = Simulator::start(SimOptions {
        clusters: 2,
        rate_per_sec: 50.0,
        faults_per_cluster: Some(3),
        tls: Some(cert.sim()),
        ..SimOptions::default()
    })
    .expect("simulator starts");
    let clusters = sim.clusters();
    let ca_line = format!("ca_file = {:?}", cert.cert_path.display().to_string());
    let mut text = String::from(FAST_TIMINGS);
    text.push_str(&cluster_toml(&clusters[0], &ca_line));
    text.push_str(&cluster_toml(&clusters[1], ""));
    let running = start_loop(&parse_config(&text, dir.path()));
    let pinned = running.wait_status(clusters[0].name(), ConnectionStatus::Active);
    assert_eq!(pinned.errors.tls, 0, "{pinned:#?}");
    let events = running.collect(3);
    assert!(
        events
            .iter()
            .all(|e| e.cluster_name() == clusters[0].name()),
        "{events:?}"
    );
    assert_eq!(events.len(), 3, "{events:?}");
    let refused = running.wait_cluster(clusters[1].name(), |c| c.errors.tls >= 1, "tls error");
    let error = refused.last_error.unwrap_or_default();
    assert!(error.starts_with("tls: "), "{error}");
    assert!(
        error.ends_with(
            "the server's certificate for 127.0.0.1 (CN=127.0.0.1) is a CA certificate \
             (self-signed?); add it to ca_file to pin it, or give the server a certificate \
             signed by a CA"
        ),
        "{error}"
    );
    running.stop().unwrap();
    sim.stop();
}
