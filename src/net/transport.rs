//! One non-blocking client socket, plain or TLS, driven edge-triggered: read and write until
//! `WouldBlock`, connect in mio's documented steps (writable → `take_error` → `peer_addr`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::tls_session::{TlsError, TlsSession};

/// Stop reading one socket after this much so a fire-hose peer cannot starve the others; the
/// caller processes what was read and calls again.
pub const READ_BUDGET: usize = 256 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// Nothing more to read now.
    Drained,
    /// The read budget was used up; call again after processing.
    More,
    /// The peer closed its side.
    Closed,
}

/// The loop's receive buffers, lent to one connection at a time: decrypted bytes for the
/// parsers, and TLS records on their way through rustls. Connections keep no receive buffer
/// of their own.
#[derive(Default)]
pub struct ReadBuffers {
    pub plaintext: Vec<u8>,
    /// Events and data buffers the event streams share.
    pub sse: crate::net::sse::SseScratch,
    /// What one read's HTTP parsing found, emptied after each read and kept for the next.
    pub responses: Vec<crate::net::http::ResponseEvent>,
    ciphertext: Vec<u8>,
    /// What the socket reads into: initialized once and reused, so a read costs a copy of
    /// the bytes that arrived, not a zero-fill of [`READ_CHUNK`] bytes before every call.
    landing: Vec<u8>,
    /// Set by the loop while it serves a readiness event that did not report the peer's
    /// close or an error: a read shorter than [`READ_CHUNK`] then took everything the
    /// socket held (bytes that arrive later raise a new edge-triggered event), so the read
    /// that would only say "would block" is left out: one system call less per message.
    pub short_read_drains: bool,
    /// Set by a read that took a whole [`READ_CHUNK`] or more from its socket: a flow dense
    /// enough that the loop's batch wait halves (see `batch_window`). The loop clears it.
    pub took_full_chunk: bool,
}

impl ReadBuffers {
    pub fn with_capacity(bytes: usize) -> Self {
        ReadBuffers {
            plaintext: Vec::with_capacity(bytes),
            sse: Default::default(),
            responses: Vec::new(),
            ciphertext: Vec::with_capacity(bytes),
            landing: vec![0; READ_CHUNK],
            short_read_drains: false,
            took_full_chunk: false,
        }
    }
}

/// The landing area of `buffers`, zero-filled on first use only.
fn landing(landing: &mut Vec<u8>) -> &mut [u8] {
    if landing.len() < READ_CHUNK {
        landing.resize(READ_CHUNK, 0);
    }
    &mut landing[..READ_CHUNK]
}

/// Bytes asked of the socket per read call.
const READ_CHUNK: usize = 16 * 1024;

pub enum Transport {
    Plain(TcpStream),
    Tls {
        tcp: TcpStream,
        tls: Box<TlsSession>,
    },
    /// An in-memory pipe in place of a socket, for the connection's unit tests.
    #[cfg(test)]
    Memory(super::memory::MemoryStream),
}

#[derive(Debug)]
pub enum ConnectProgress {
    Connected,
    Pending,
}

/// Starts a non-blocking connect and turns on TCP keepalive, so a peer that vanished without
/// a FIN is noticed even on a stream that is silent for hours.
pub fn connect(addr: SocketAddr, keepalive: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr)?;
    stream.set_nodelay(true)?;
    set_keepalive(&stream, keepalive)?;
    Ok(stream)
}

fn set_keepalive(stream: &TcpStream, idle: Duration) -> io::Result<()> {
    let fd = stream.as_raw_fd();
    let idle_secs = idle.as_secs().clamp(1, i32::MAX as u64) as libc::c_int;
    let interval = (idle_secs / 3).max(1);
    let options: [(libc::c_int, libc::c_int, libc::c_int); 4] = [
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1),
        (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, idle_secs),
        (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, interval),
        (libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3),
    ];
    for (level, name, value) in options {
        // SAFETY: fd is a valid open socket owned by `stream`; value points to a c_int that
        // lives for the duration of the call and its size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                level,
                name,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// After a writable event on a connecting socket: has the connect finished, failed, or is the
/// event spurious?
pub fn connect_progress(stream: &TcpStream) -> io::Result<ConnectProgress> {
    if let Some(error) = stream.take_error()? {
        return Err(error);
    }
    match stream.peer_addr() {
        Ok(_) => Ok(ConnectProgress::Connected),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(ConnectProgress::Pending),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(ConnectProgress::Pending),
        Err(e) => Err(e),
    }
}

impl Transport {
    pub fn plain(tcp: TcpStream) -> Transport {
        Transport::Plain(tcp)
    }

    pub fn tls(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Transport, rustls::Error> {
        Ok(Transport::Tls {
            tcp,
            tls: Box::new(TlsSession::new(config, name)?),
        })
    }

    /// The socket to register with the poll; `None` for an in-memory pipe.
    pub fn tcp(&mut self) -> Option<&mut TcpStream> {
        match self {
            Transport::Plain(tcp) | Transport::Tls { tcp, .. } => Some(tcp),
            #[cfg(test)]
            Transport::Memory(_) => None,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls { tls, .. } => tls.is_handshaking(),
            #[cfg(test)]
            Transport::Memory(_) => false,
        }
    }

    /// Appends the plaintext that is available to `buffers.plaintext`.
    pub fn read(&mut self, buffers: &mut ReadBuffers) -> io::Result<ReadOutcome> {
        match self {
            Transport::Plain(tcp) => read_plain(tcp, buffers),
            Transport::Tls { tcp, tls } => read_tls(tcp, tls, buffers),
            #[cfg(test)]
            Transport::Memory(pipe) => read_plain(pipe, buffers),
        }
    }

    /// Whether a [`Transport::write`] of nothing would have nothing to do: no TLS records
    /// owed and no handshake under way.
    pub fn is_idle(&self) -> bool {
        match self {
            Transport::Plain(_) => true,
            Transport::Tls { tls, .. } => !tls.has_outgoing() && !tls.is_handshaking(),
            #[cfg(test)]
            Transport::Memory(_) => true,
        }
    }

    /// Sends as much of `outbound` as the socket takes and removes it from the buffer.
    /// Returns true when nothing is left to send.
    pub fn write(&mut self, outbound: &mut Vec<u8>) -> io::Result<bool> {
        match self {
            Transport::Plain(tcp) => {
                let written = write_some(tcp, outbound)?;
                outbound.drain(..written);
                Ok(outbound.is_empty())
            }
            Transport::Tls { tcp, tls } => {
                // Plaintext waits in `outbound` until the handshake is done.
                tls.send(outbound).map_err(tls_error)?;
                flush_tls(tcp, tls)?;
                Ok(outbound.is_empty() && tls.outgoing().is_empty())
            }
            #[cfg(test)]
            Transport::Memory(pipe) => {
                let written = write_some(pipe, outbound)?;
                outbound.drain(..written);
                Ok(outbound.is_empty())
            }
        }
    }
}

/// Writes from the front of `bytes` until the socket would block; returns how much went.
fn write_some(tcp: &mut impl Write, bytes: &[u8]) -> io::Result<usize> {
    let mut written = 0;
    while written < bytes.len() {
        match tcp.write(&bytes[written..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(written)
}

/// Reads at most [`READ_CHUNK`] bytes in one call into `landing`, then appends them to the
/// end of `into`.
fn read_chunk(
    tcp: &mut impl Read,
    landing: &mut [u8],
    into: &mut Vec<u8>,
) -> io::Result<Option<usize>> {
    loop {
        match tcp.read(landing) {
            Ok(n) => {
                into.extend_from_slice(&landing[..n]);
                return Ok(Some(n));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn read_plain(tcp: &mut impl Read, buffers: &mut ReadBuffers) -> io::Result<ReadOutcome> {
    let short_read_drains = buffers.short_read_drains;
    let inbound = &mut buffers.plaintext;
    let landing = landing(&mut buffers.landing);
    let start = inbound.len();
    let outcome = loop {
        if inbound.len() - start >= READ_BUDGET {
            break ReadOutcome::More;
        }
        match read_chunk(tcp, landing, inbound)? {
            Some(0) => break ReadOutcome::Closed,
            Some(n) if short_read_drains && n < READ_CHUNK => break ReadOutcome::Drained,
            Some(_) => {}
            None => break ReadOutcome::Drained,
        }
    };
    buffers.took_full_chunk |= buffers.plaintext.len() - start >= READ_CHUNK;
    Ok(outcome)
}

fn read_tls(
    tcp: &mut TcpStream,
    tls: &mut TlsSession,
    buffers: &mut ReadBuffers,
) -> io::Result<ReadOutcome> {
    let start = buffers.plaintext.len();
    let outcome = loop {
        if buffers.plaintext.len() - start >= READ_BUDGET {
            break ReadOutcome::More;
        }
        tls.start_receive(&mut buffers.ciphertext);
        let read = read_chunk(tcp, landing(&mut buffers.landing), &mut buffers.ciphertext);
        // Whatever happened, what was read so far (and what was held) goes through rustls,
        // so a record is never lost between calls.
        let processed = tls.receive(&mut buffers.ciphertext, &mut buffers.plaintext);
        buffers.ciphertext.clear();
        processed.map_err(tls_error)?;
        // Handshake messages and alerts may need an answer.
        flush_tls(tcp, tls)?;
        if tls.peer_closed() {
            break ReadOutcome::Closed;
        }
        match read? {
            Some(0) => break ReadOutcome::Closed,
            Some(n) if buffers.short_read_drains && n < READ_CHUNK => break ReadOutcome::Drained,
            Some(_) => {}
            None => break ReadOutcome::Drained,
        }
    };
    if buffers.ciphertext.capacity() > 2 * READ_CHUNK + super::tls_session::MAX_UNPROCESSED {
        buffers.ciphertext = Vec::new();
    }
    buffers.took_full_chunk |= buffers.plaintext.len() - start >= READ_CHUNK;
    Ok(outcome)
}

fn flush_tls(tcp: &mut TcpStream, tls: &mut TlsSession) -> io::Result<()> {
    let outgoing = tls.outgoing();
    if !outgoing.is_empty() {
        let written = write_some(tcp, outgoing)?;
        outgoing.drain(..written);
    }
    tls.release_sent();
    Ok(())
}

/// The `TlsError` rides inside, so the client can tell a refused certificate apart.
fn tls_error(e: TlsError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;
    use std::time::Instant;

    use mio::{Events, Interest, Poll, Token};

    fn body() -> Vec<u8> {
        (0..(1u32 << 20)).map(|i| (i % 241) as u8).collect()
    }

    /// Reads everything one connection sends until it closes, checking each read call
    /// stays within the read budget; the first I/O error ends it. Also says whether some
    /// read took a whole chunk.
    fn read_all(mut transport: Transport) -> io::Result<(Vec<u8>, bool)> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(8);
        poll.registry().register(
            transport.tcp().unwrap(),
            Token(0),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let mut buffers = ReadBuffers::default();
        let mut outbound = Vec::new();
        let mut received = Vec::new();
        let mut full_chunk = false;
        let mut connected = false;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            assert!(Instant::now() < deadline, "got {} bytes", received.len());
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
            // As the loop does: read only on an event, and let a short read drain only when
            // the event did not report the peer's close.
            if events.is_empty() {
                continue;
            }
            buffers.short_read_drains =
                events.iter().all(|e| !(e.is_read_closed() || e.is_error()));
            if !connected {
                match connect_progress(transport.tcp().unwrap())? {
                    ConnectProgress::Connected => connected = true,
                    ConnectProgress::Pending => continue,
                }
            }
            transport.write(&mut outbound)?;
            loop {
                buffers.plaintext.clear();
                buffers.took_full_chunk = false;
                let outcome = transport.read(&mut buffers)?;
                assert!(buffers.plaintext.len() <= READ_BUDGET + READ_CHUNK);
                assert_eq!(
                    buffers.took_full_chunk,
                    buffers.plaintext.len() >= READ_CHUNK
                );
                full_chunk |= buffers.took_full_chunk;
                received.extend_from_slice(&buffers.plaintext);
                match outcome {
                    ReadOutcome::More => {}
                    ReadOutcome::Drained => break,
                    ReadOutcome::Closed => return Ok((received, full_chunk)),
                }
            }
        }
    }

    #[test]
    fn tls_read_delivers_a_large_body_in_budgeted_reads() {
        let (server_config, client_config) = crate::net::tls::test_pair(&[&rustls::version::TLS13]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (socket, _) = listener.accept().unwrap();
            let connection = rustls::ServerConnection::new(server_config).unwrap();
            let mut stream = rustls::StreamOwned::new(connection, socket);
            // Small writes too, so records of many sizes cross the wire.
            let body = body();
            stream.write_all(&body[..3]).unwrap();
            stream.write_all(&body[3..100]).unwrap();
            stream.write_all(&body[100..]).unwrap();
            stream.conn.send_close_notify();
            stream.flush().unwrap();
        });
        let name = ServerName::try_from("localhost").unwrap();
        let tcp = connect(addr, Duration::from_secs(60)).unwrap();
        let transport = Transport::tls(tcp, client_config, name).unwrap();
        let (received, full_chunk) = read_all(transport).unwrap();
        server.join().unwrap();
        assert_eq!(received.len(), body().len());
        assert!(received == body());
        assert!(full_chunk, "a 1 MiB body never filled a read chunk");
    }

    #[test]
    fn plain_read_delivers_a_large_body_in_budgeted_reads() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            socket.write_all(&body()).unwrap();
        });
        let tcp = connect(addr, Duration::from_secs(60)).unwrap();
        let (received, full_chunk) = read_all(Transport::plain(tcp)).unwrap();
        server.join().unwrap();
        assert!(received == body());
        assert!(full_chunk, "a 1 MiB body never filled a read chunk");
    }

    /// Small messages with pauses between them, then the close: each arrives through a
    /// new event after a short read ended the one before, and the close is seen.
    #[test]
    fn short_reads_that_drain_still_see_every_message_and_the_close() {
        for tls in [false, true] {
            let (server_config, client_config) =
                crate::net::tls::test_pair(&[&rustls::version::TLS13]);
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let server = thread::spawn(move || {
                let (socket, _) = listener.accept().unwrap();
                let send = |out: &mut dyn Write| {
                    for i in 0..20u8 {
                        out.write_all(&[i; 100]).unwrap();
                        out.flush().unwrap();
                        thread::sleep(Duration::from_millis(5));
                    }
                    out.write_all(b"last").unwrap();
                    out.flush().unwrap();
                };
                if tls {
                    let connection = rustls::ServerConnection::new(server_config).unwrap();
                    let mut secure = rustls::StreamOwned::new(connection, socket);
                    send(&mut secure);
                    secure.conn.send_close_notify();
                    secure.flush().unwrap();
                } else {
                    let mut plain = socket;
                    send(&mut plain);
                }
            });
            let tcp = connect(addr, Duration::from_secs(60)).unwrap();
            let transport = if tls {
                let name = ServerName::try_from("localhost").unwrap();
                Transport::tls(tcp, client_config, name).unwrap()
            } else {
                Transport::plain(tcp)
            };
            let (received, full_chunk) = read_all(transport).unwrap();
            server.join().unwrap();
            // 2 KiB in all: no read can take a whole chunk.
            assert!(!full_chunk);
            let mut expected: Vec<u8> = (0..20u8).flat_map(|i| [i; 100]).collect();
            expected.extend_from_slice(b"last");
            assert!(received == expected, "tls {tls}: {} bytes", received.len());
        }
    }

    #[test]
    fn tls_handshake_with_a_server_that_is_not_tls_fails_cleanly() {
        let (_, client_config) = crate::net::tls::test_pair(&[&rustls::version::TLS13]);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
            let mut sink = [0u8; 1024];
            let _ = socket.read(&mut sink);
        });
        let name = ServerName::try_from("localhost").unwrap();
        let tcp = connect(addr, Duration::from_secs(60)).unwrap();
        let transport = Transport::tls(tcp, client_config, name).unwrap();
        let error = read_all(transport).expect_err("a non-TLS peer must fail the handshake");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData, "{error}");
        server.join().unwrap();
    }
}
