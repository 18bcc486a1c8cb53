//! The local HTTPS webhook receiver, driven by a plain blocking rustls client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::webhook::WebhookReceiver;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

const WAIT: Duration = Duration::from_secs(10);

struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

fn client_config(roots: RootCertStore) -> Arc<ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn trusting(receiver: &WebhookReceiver) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(receiver.ca_pem_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    client_config(roots)
}

fn send(
    receiver: &WebhookReceiver,
    config: Arc<ClientConfig>,
    extra_headers: &str,
    body: &str,
) -> std::io::Result<Response> {
    let url = receiver.url();
    let path = &url[url.find("/services/").unwrap()..];
    let tcp = TcpStream::connect(receiver.addr())?;
    tcp.set_read_timeout(Some(WAIT))?;
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let conn = ClientConnection::new(config, server_name).unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}\r\n{body}",
        receiver.addr(),
        body.len()
    );
    tls.write_all(request.as_bytes())?;
    tls.flush()?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw)?;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Ok(Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

fn post(receiver: &WebhookReceiver, body: &str) -> Response {
    send(receiver, trusting(receiver), "", body).unwrap()
}

#[test]
fn scripted_statuses_come_in_order_then_ok_forever() {
    let receiver = WebhookReceiver::start(vec![(429, Some("1")), (500, None), (200, None)]);

    let first = post(&receiver, r#"{"text":"one"}"#);
    assert_eq!(first.status, 429);
    assert_eq!(first.header("Retry-After").as_deref(), Some("1"));
    assert_eq!(first.body, "rate_limited");

    let second = post(&receiver, r#"{"text":"two"}"#);
    assert_eq!(second.status, 500);
    assert_eq!(second.header("Retry-After"), None);
    assert_eq!(second.body, "server_error");

    for _ in 0..2 {
        let ok = post(&receiver, r#"{"text":"more"}"#);
        assert_eq!(ok.status, 200);
        assert_eq!(ok.body, "ok");
    }

    let requests = receiver.requests();
    assert_eq!(requests.len(), 4);
    assert_eq!(
        requests.iter().map(|r| r.answered).collect::<Vec<_>>(),
        vec![429, 500, 200, 200]
    );
    assert_eq!(requests[0].body, r#"{"text":"one"}"#);
    assert_eq!(requests[1].body, r#"{"text":"two"}"#);
    assert!(requests
        .windows(2)
        .all(|w| w[0].received_at <= w[1].received_at));
}

#[test]
fn request_line_headers_and_body_are_recorded() {
    let receiver = WebhookReceiver::start(Vec::new());
    let body = r#"{"text":"fault","blocks":[]}"#;
    post(&receiver, body);
    let request = &receiver.requests()[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/services/T000/B000/XXXX");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("Content-Length"), Some("28"));
    assert_eq!(request.body, body);
}

#[test]
fn every_response_closes_the_connection_even_when_keep_alive_is_asked() {
    let receiver = WebhookReceiver::start(vec![(503, None)]);
    let config = trusting(&receiver);
    let response = send(&receiver, config, "Connection: keep-alive\r\n", "{}").unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(response.header("Connection").as_deref(), Some("close"));
    assert_eq!(response.header("Content-Length").as_deref(), Some("12"));
}

#[test]
fn slack_error_bodies_match_their_status() {
    let receiver = WebhookReceiver::start(vec![(400, None), (404, None), (410, None)]);
    let bodies: Vec<_> = (0..3).map(|_| post(&receiver, "{}").body).collect();
    assert_eq!(
        bodies,
        vec!["invalid_payload", "no_service", "channel_is_archived"]
    );
}

#[test]
fn url_points_at_loopback_and_ca_file_exists_until_drop() {
    let receiver = WebhookReceiver::start(Vec::new());
    let url = receiver.url();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    assert!(url.ends_with("/services/T000/B000/XXXX"), "{url}");
    let ca_path = receiver.ca_pem_path().to_path_buf();
    let pem = std::fs::read_to_string(&ca_path).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    drop(receiver);
    assert!(!ca_path.exists());
}

#[test]
fn wait_for_requests_wakes_on_arrival_and_times_out_otherwise() {
    let receiver = Arc::new(WebhookReceiver::start(Vec::new()));
    assert!(!receiver.wait_for_requests(1, Duration::from_millis(50)));

    let sender = {
        let receiver = Arc::clone(&receiver);
        std::thread::spawn(move || post(&receiver, "{}").status)
    };
    assert!(receiver.wait_for_requests(1, WAIT));
    assert_eq!(sender.join().unwrap(), 200);

    let started = Instant::now();
    assert!(!receiver.wait_for_requests(2, Duration::from_millis(200)));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(200) && waited < WAIT,
        "{waited:?}"
    );
}

#[test]
fn client_not_trusting_the_ca_gets_no_service() {
    let receiver = WebhookReceiver::start(Vec::new());
    let mut roots = RootCertStore::empty();
    // A CA of its own, not the receiver's.
    let other = WebhookReceiver::start(Vec::new());
    for cert in CertificateDer::pem_file_iter(other.ca_pem_path()).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let result = send(&receiver, client_config(roots), "", "{}");
    assert!(result.is_err());
    assert!(receiver.requests().is_empty());
}

#[test]
fn malformed_request_gets_400_and_is_not_recorded() {
    let receiver = WebhookReceiver::start(vec![(500, None)]);
    let tcp = TcpStream::connect(receiver.addr()).unwrap();
    tcp.set_read_timeout(Some(WAIT)).unwrap();
    let conn = ClientConnection::new(
        trusting(&receiver),
        ServerName::try_from("localhost").unwrap(),
    )
    .unwrap();
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(b"NOT-HTTP\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).unwrap();
    assert!(String::from_utf8(raw).unwrap().starts_with("HTTP/1.1 400 "));
    assert!(receiver.requests().is_empty());
    // The script was not consumed by the bad request.
    assert_eq!(post(&receiver, "{}").status, 500);
}

#[test]
fn drop_is_prompt_even_with_an_idle_connection_open() {
    let receiver = WebhookReceiver::start(Vec::new());
    let addr = receiver.addr();
    let idle = TcpStream::connect(addr).unwrap();
    // A completed request proves the accept thread has taken the idle connection too.
    post(&receiver, "{}");
    let started = Instant::now();
    drop(receiver);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    drop(idle);
    assert!(TcpStream::connect(addr).is_err());
}
