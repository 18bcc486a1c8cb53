//! One TLS client session on rustls' unbuffered API, without a socket: records in, plaintext
//! out; plaintext in, records out. rustls' buffered connection keeps a 4 KiB receive buffer
//! per connection for its whole life; here the loop lends one receive buffer to every
//! connection in turn, and a session keeps only the bytes of a record that is still
//! arriving (usually none) and the records the socket has not taken yet (usually none).

use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::pki_types::ServerName;
use rustls::unbuffered::{ConnectionState, EncodeError, EncryptError, UnbufferedStatus};
use rustls::{CertificateError, ClientConfig, Error};

use super::tls::CertificateProblem;

/// The most received bytes a session holds while a record (or a handshake message spread
/// over several records) is incomplete. rustls joins handshake messages of up to 64 KiB; a
/// peer that sends more without completing one is broken or hostile.
pub const MAX_UNPROCESSED: usize = 96 * 1024;

pub struct TlsSession {
    conn: UnbufferedClientConnection,
    /// Received bytes rustls has not consumed: the start of a record whose rest is still on
    /// the wire. Released when empty, so an idle session holds no receive buffer.
    unprocessed: Vec<u8>,
    /// Records waiting for the socket. Released when sent.
    outgoing: Vec<u8>,
    peer_closed: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum TlsError {
    /// rustls refused the peer's data or the handshake failed.
    Protocol(String),
    /// The server's certificate was refused; the text says why, for the operator.
    Certificate(String),
    /// The peer sent more than [`MAX_UNPROCESSED`] bytes without completing a record.
    Oversized(usize),
    /// Application data arrived where none can: while sending with nothing received.
    UnexpectedData,
}

impl std::fmt::Display for TlsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsError::Protocol(detail) | TlsError::Certificate(detail) => f.write_str(detail),
            TlsError::Oversized(held) => write!(
                f,
                "peer sent {held} bytes without completing a TLS record (limit {MAX_UNPROCESSED})"
            ),
            TlsError::UnexpectedData => f.write_str("TLS application data arrived out of turn"),
        }
    }
}

impl std::error::Error for TlsError {}

impl From<Error> for TlsError {
    fn from(e: Error) -> Self {
        if let Error::InvalidCertificate(CertificateError::Other(other)) = &e {
            if let Some(problem) = other.0.downcast_ref::<CertificateProblem>() {
                return TlsError::Certificate(problem.to_string());
            }
        }
        TlsError::Protocol(e.to_string())
    }
}

impl TlsSession {
    pub fn new(config: Arc<ClientConfig>, name: ServerName<'static>) -> Result<Self, Error> {
        Ok(TlsSession {
            conn: UnbufferedClientConnection::new(config, name)?,
            unprocessed: Vec::new(),
            outgoing: Vec::new(),
            peer_closed: false,
        })
    }

    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// True once the peer sent close_notify: no more plaintext will come.
    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }

    /// Records to write to the socket; the caller removes what it wrote.
    pub fn outgoing(&mut self) -> &mut Vec<u8> {
        &mut self.outgoing
    }

    /// Whether records wait to be written.
    pub fn has_outgoing(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Call after writing from [`Self::outgoing`]: an emptied buffer gives its memory back.
    pub fn release_sent(&mut self) {
        if self.outgoing.is_empty() && self.outgoing.capacity() > 0 {
            self.outgoing = Vec::new();
        }
    }

    /// Moves the bytes held from the last call to the front of the shared receive buffer;
    /// the caller then appends what the socket has and calls [`Self::receive`].
    pub fn start_receive(&mut self, received: &mut Vec<u8>) {
        received.clear();
        received.extend_from_slice(&self.unprocessed);
        self.unprocessed = Vec::new();
    }

    /// Processes `received` (held bytes plus new ones from the socket): decrypted
    /// application data is appended to `plaintext`, handshake answers to the outgoing
    /// records. What rustls cannot consume yet is kept for the next call.
    pub fn receive(
        &mut self,
        received: &mut [u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<(), TlsError> {
        let consumed = self.run(received, plaintext, &mut Vec::new())?;
        let rest = &received[consumed..];
        if rest.len() > MAX_UNPROCESSED {
            return Err(TlsError::Oversized(rest.len()));
        }
        self.unprocessed.extend_from_slice(rest);
        Ok(())
    }

    /// Encrypts `app` into the outgoing records once the handshake allows it (and clears it);
    /// before that `app` is left as it is. Also produces any handshake record that is due,
    /// such as the ClientHello on the first call.
    pub fn send(&mut self, app: &mut Vec<u8>) -> Result<(), TlsError> {
        if app.is_empty() && !self.conn.is_handshaking() {
            // Records rustls owes the peer after the handshake (alerts, key updates) come
            // out while receiving; with nothing to encrypt there is nothing to do.
            return Ok(());
        }
        let mut held = std::mem::take(&mut self.unprocessed);
        let mut plaintext = Vec::new();
        let result = self.run(&mut held, &mut plaintext, app);
        // Held bytes are by construction an incomplete record, so nothing can be consumed
        // or decrypted from them here; keep whatever is left either way.
        let consumed = *result.as_ref().unwrap_or(&0);
        held.drain(..consumed.min(held.len()));
        self.unprocessed = held;
        result?;
        if plaintext.is_empty() {
            Ok(())
        } else {
            Err(TlsError::UnexpectedData)
        }
    }

    /// Drives rustls over `incoming` until it needs more bytes from the peer. Returns how
    /// many bytes of `incoming` were consumed.
    fn run(
        &mut self,
        incoming: &mut [u8],
        plaintext: &mut Vec<u8>,
        app: &mut Vec<u8>,
    ) -> Result<usize, TlsError> {
        let mut consumed = 0;
        loop {
            let UnbufferedStatus { discard, state } =
                self.conn.process_tls_records(&mut incoming[consumed..]);
            let mut extra_discard = 0;
            let waiting = match state? {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while let Some(record) = traffic.next_record() {
                        let record = record?;
                        extra_discard += record.discard;
                        plaintext.extend_from_slice(record.payload);
                    }
                    false
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append_with(&mut self.outgoing, |out| match encode.encode(out) {
                        Ok(n) => Ok(Ok(n)),
                        Err(EncodeError::InsufficientSize(e)) => Ok(Err(e.required_size)),
                        Err(e) => Err(TlsError::Protocol(e.to_string())),
                    })?;
                    false
                }
                // The records are in `outgoing`, which the caller writes in order.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    false
                }
                ConnectionState::WriteTraffic(mut write) => {
                    if !app.is_empty() {
                        append_with(&mut self.outgoing, |out| match write.encrypt(app, out) {
                            Ok(n) => Ok(Ok(n)),
                            Err(EncryptError::InsufficientSize(e)) => Ok(Err(e.required_size)),
                            Err(e) => Err(TlsError::Protocol(e.to_string())),
                        })?;
                        app.clear();
                    }
                    true
                }
                ConnectionState::BlockedHandshake => true,
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.peer_closed = true;
                    true
                }
                other => {
                    return Err(TlsError::Protocol(format!(
                        "unexpected TLS state {other:?}"
                    )))
                }
            };
            consumed += discard + extra_discard;
            if waiting {
                return Ok(consumed.min(incoming.len()));
            }
        }
    }
}

/// Appends to `out` through `write`, which fills a slice and returns how much it wrote, or
/// the size it needs when the slice is too small (it is then called once more).
fn append_with(
    out: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> Result<Result<usize, usize>, TlsError>,
) -> Result<(), TlsError> {
    let start = out.len();
    let mut room = 0;
    for _ in 0..2 {
        out.resize(start + room, 0);
        match write(&mut out[start..]) {
            Ok(Ok(written)) => {
                out.truncate(start + written);
                return Ok(());
            }
            Ok(Err(required)) => room = required,
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    out.truncate(start);
    Err(TlsError::Protocol(
        "rustls asked for more room twice for one record".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::ServerConnection;
    use std::io::{Read, Write};

    struct Peer {
        server: ServerConnection,
        client: TlsSession,
        received: Vec<u8>,
        plaintext: Vec<u8>,
    }

    fn peer() -> Peer {
        peer_with(&[&rustls::version::TLS13, &rustls::version::TLS12])
    }

    /// A server offering only `versions`; the client offers the safe defaults.
    fn peer_with(versions: &[&'static rustls::SupportedProtocolVersion]) -> Peer {
        let (server_config, client_config) = crate::net::tls::test_pair(versions);
        let name = ServerName::try_from("localhost").unwrap();
        Peer {
            server: ServerConnection::new(server_config).unwrap(),
            client: TlsSession::new(client_config, name).unwrap(),
            received: Vec::new(),
            plaintext: Vec::new(),
        }
    }

    impl Peer {
        /// Client records to the server, in one piece.
        fn client_to_server(&mut self) {
            let mut nothing = Vec::new();
            self.client.send(&mut nothing).unwrap();
            let records = std::mem::take(self.client.outgoing());
            self.client.release_sent();
            let mut reader = &records[..];
            while !reader.is_empty() {
                self.server.read_tls(&mut reader).unwrap();
            }
            self.server.process_new_packets().unwrap();
        }

        /// Server records to the client, `step` bytes at a time.
        fn server_to_client(&mut self, step: usize) -> Result<(), TlsError> {
            let mut wire = Vec::new();
            while self.server.wants_write() {
                self.server.write_tls(&mut wire).unwrap();
            }
            for piece in wire.chunks(step.max(1)) {
                self.client.start_receive(&mut self.received);
                self.received.extend_from_slice(piece);
                let mut received = std::mem::take(&mut self.received);
                let result = self.client.receive(&mut received, &mut self.plaintext);
                self.received = received;
                result?;
            }
            Ok(())
        }

        fn handshake(&mut self, step: usize) {
            for _ in 0..4 {
                if !self.client.is_handshaking() && !self.server.is_handshaking() {
                    return;
                }
                self.client_to_server();
                self.server_to_client(step).unwrap();
            }
            panic!("handshake did not finish in 4 round trips");
        }
    }

    #[test]
    fn handshake_completes_with_records_split_at_every_size() {
        for step in [1, 2, 5, 64, 1000, 1 << 20] {
            let mut peer = peer();
            peer.handshake(step);
            assert!(!peer.client.is_handshaking(), "step {step}");
        }
    }

    #[test]
    fn application_data_arrives_whole_whatever_the_split() {
        let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        for step in [1, 7, 4096, 16_389, 1 << 20] {
            let mut peer = peer();
            peer.handshake(1000);
            peer.plaintext.clear();
            // Several records of different sizes, including a full 16 KiB one.
            peer.server.writer().write_all(&body[..10]).unwrap();
            peer.server.writer().write_all(&body[10..]).unwrap();
            peer.server_to_client(step).unwrap();
            assert_eq!(peer.plaintext, body, "step {step}");
        }
    }

    #[test]
    fn tls12_servers_work_too() {
        let body: Vec<u8> = (0..20_000u32).map(|i| (i % 13) as u8).collect();
        for step in [1, 300, 1 << 20] {
            let mut peer = peer_with(&[&rustls::version::TLS12]);
            peer.handshake(step);
            assert_eq!(
                peer.client.conn.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_2)
            );
            peer.server.writer().write_all(&body).unwrap();
            peer.server_to_client(step).unwrap();
            assert_eq!(peer.plaintext, body, "step {step}");
        }
    }

    #[test]
    fn an_idle_session_holds_no_buffers() {
        let mut peer = peer();
        peer.handshake(1 << 20);
        peer.server.writer().write_all(b"hello").unwrap();
        peer.server_to_client(1 << 20).unwrap();
        assert_eq!(peer.plaintext, b"hello");
        assert_eq!(peer.client.unprocessed.capacity(), 0);
        assert_eq!(peer.client.outgoing.capacity(), 0);
    }

    #[test]
    fn a_partial_record_is_held_until_its_rest_arrives() {
        let mut peer = peer();
        peer.handshake(1 << 20);
        peer.plaintext.clear();
        peer.server.writer().write_all(b"split record").unwrap();
        let mut wire = Vec::new();
        peer.server.write_tls(&mut wire).unwrap();
        peer.client.start_receive(&mut peer.received);
        peer.received.extend_from_slice(&wire[..9]);
        let mut received = std::mem::take(&mut peer.received);
        peer.client
            .receive(&mut received, &mut peer.plaintext)
            .unwrap();
        assert!(peer.plaintext.is_empty());
        assert_eq!(peer.client.unprocessed, wire[..9]);
        peer.client.start_receive(&mut received);
        received.extend_from_slice(&wire[9..]);
        peer.client
            .receive(&mut received, &mut peer.plaintext)
            .unwrap();
        assert_eq!(peer.plaintext, b"split record");
        assert!(peer.client.unprocessed.is_empty());
    }

    #[test]
    fn application_data_waits_for_the_handshake_then_goes_out() {
        let mut peer = peer();
        let mut app = b"GET / HTTP/1.1\r\n\r\n".to_vec();
        peer.client.send(&mut app).unwrap();
        assert_eq!(app, b"GET / HTTP/1.1\r\n\r\n", "kept while handshaking");
        peer.handshake(1 << 20);
        peer.client.send(&mut app).unwrap();
        assert!(app.is_empty());
        let records = std::mem::take(peer.client.outgoing());
        let mut reader = &records[..];
        while !reader.is_empty() {
            peer.server.read_tls(&mut reader).unwrap();
        }
        peer.server.process_new_packets().unwrap();
        let mut got = Vec::new();
        let _ = peer.server.reader().read_to_end(&mut got);
        assert_eq!(got, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[test]
    fn close_notify_marks_the_peer_closed() {
        let mut peer = peer();
        peer.handshake(1 << 20);
        peer.server.writer().write_all(b"last").unwrap();
        peer.server.send_close_notify();
        peer.server_to_client(3).unwrap();
        assert_eq!(peer.plaintext, b"last");
        assert!(peer.client.peer_closed());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..200 {
            let mut peer = peer();
            let mut nothing = Vec::new();
            peer.client.send(&mut nothing).unwrap();
            let mut garbage = Vec::new();
            for _ in 0..(round % 50 + 1) {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                garbage.extend_from_slice(&seed.to_le_bytes());
            }
            if round % 2 == 0 {
                // A plausible record header in front, so the body gets parsed too.
                garbage.splice(0..0, [22u8, 3, 3, 0, 40]);
            }
            peer.client.start_receive(&mut peer.received);
            peer.received.extend_from_slice(&garbage);
            let mut received = std::mem::take(&mut peer.received);
            // Either an error, or bytes held waiting for the rest of a record.
            let _ = peer.client.receive(&mut received, &mut peer.plaintext);
            assert!(peer.plaintext.is_empty());
        }
    }

    #[test]
    fn a_tampered_record_is_an_error_and_yields_nothing() {
        for position in [5, 6, 20] {
            let mut peer = peer();
            peer.handshake(1 << 20);
            peer.plaintext.clear();
            peer.server
                .writer()
                .write_all(b"integrity matters")
                .unwrap();
            let mut wire = Vec::new();
            peer.server.write_tls(&mut wire).unwrap();
            wire[position] ^= 0x40;
            peer.client.start_receive(&mut peer.received);
            peer.received.extend_from_slice(&wire);
            let mut received = std::mem::take(&mut peer.received);
            let result = peer.client.receive(&mut received, &mut peer.plaintext);
            assert!(
                matches!(result, Err(TlsError::Protocol(_))),
                "byte {position}: {result:?}"
            );
            assert!(peer.plaintext.is_empty());
        }
    }

    #[test]
    fn an_oversized_record_is_an_error() {
        let mut peer = peer();
        peer.handshake(1 << 20);
        // A full-size record of zeros, then more than the limit of nonsense.
        let mut held = vec![22u8, 3, 3, 0x40, 0x00];
        held.resize(MAX_UNPROCESSED + 10, 0);
        peer.client.start_receive(&mut peer.received);
        peer.received.extend_from_slice(&held);
        let mut received = std::mem::take(&mut peer.received);
        let result = peer.client.receive(&mut received, &mut peer.plaintext);
        assert!(result.is_err(), "{result:?}");
    }
}
