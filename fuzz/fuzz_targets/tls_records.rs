//! The TLS adapter (`net/tls_session.rs` over rustls' unbuffered API, with nightcrier's
//! certificate verifier) fed records as if from a server, after its ClientHello.
//!
//! Input: a flags byte, a split seed, then what the server sends. Flags: bit 0 picks the
//! verifier (webpki roots with nightcrier's refusal explanations, or
//! `insecure_skip_tls_verify`); bit 1 has the loop try to send a request between reads,
//! as it does while a request waits for the handshake.
//!
//! Nothing the input holds can finish a handshake (that takes the server's key), so checked
//! on every input: no plaintext ever comes out, the session stays handshaking, a request
//! waiting to go out stays unsent, what it queues for the socket stays small, and every
//! error reads as text.

#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use nightcrier::net::tls::{server_name, TlsConfigs};
use nightcrier::net::tls_session::TlsSession;
use nightcrier_fuzz::{pieces, Framed};
use rustls::ClientConfig;

/// Records rustls may queue in answer to garbage: alerts, at most a ClientHello again.
const MAX_OUTGOING: usize = 16 * 1024;

fn configs() -> &'static [Arc<ClientConfig>; 2] {
    static CONFIGS: OnceLock<[Arc<ClientConfig>; 2]> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let mut configs = TlsConfigs::new();
        let verified = configs.get(None, false).expect("webpki configuration");
        let insecure = configs.get(None, true).expect("insecure configuration");
        [verified, insecure]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Framed::parse(data) else {
        return;
    };
    let config = configs()[usize::from(input.flags & 1)].clone();
    let name = server_name("mcp.example.com").expect("a valid server name");
    let mut session = TlsSession::new(config, name).expect("a client session");

    let request = b"POST /mcp HTTP/1.1\r\nHost: mcp.example.com\r\n\r\n";
    let mut app = Vec::new();
    session.send(&mut app).expect("the ClientHello");
    assert!(!session.outgoing().is_empty(), "no ClientHello");
    session.outgoing().clear();
    session.release_sent();

    let mut received = Vec::new();
    let mut plaintext = Vec::new();
    for piece in pieces(input.wire, input.seed) {
        session.start_receive(&mut received);
        received.extend_from_slice(piece);
        let result = session.receive(&mut received, &mut plaintext);
        assert!(
            plaintext.is_empty(),
            "plaintext from a server without a key"
        );
        assert!(session.is_handshaking(), "handshake finished on garbage");
        assert!(
            session.outgoing().len() <= MAX_OUTGOING,
            "{} bytes queued",
            session.outgoing().len()
        );
        if let Err(error) = result {
            assert!(!error.to_string().is_empty());
            break;
        }
        session.outgoing().clear();
        session.release_sent();
        if input.flags & 2 != 0 {
            app.clear();
            app.extend_from_slice(request);
            match session.send(&mut app) {
                Ok(()) => assert_eq!(app, request, "request sent before the handshake"),
                Err(error) => {
                    assert!(!error.to_string().is_empty());
                    break;
                }
            }
        }
    }
});
