//! One non-blocking client socket, plain or TLS, driven edge-triggered: read and write until
//! `WouldBlock`, connect in mio's documented steps (writable → `take_error` → `peer_addr`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

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

pub enum Transport {
    Plain(TcpStream),
    Tls {
        tcp: TcpStream,
        tls: Box<ClientConnection>,
    },
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
        let tls = ClientConnection::new(config, name)?;
        Ok(Transport::Tls {
            tcp,
            tls: Box::new(tls),
        })
    }

    pub fn tcp(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(tcp) | Transport::Tls { tcp, .. } => tcp,
        }
    }

    pub fn is_handshaking(&self) -> bool {
        match self {
            Transport::Plain(_) => false,
            Transport::Tls { tls, .. } => tls.is_handshaking(),
        }
    }

    /// Appends the plaintext that is available to `inbound`.
    pub fn read(&mut self, inbound: &mut Vec<u8>) -> io::Result<ReadOutcome> {
        let start = inbound.len();
        match self {
            Transport::Plain(tcp) => read_plain(tcp, inbound, start),
            Transport::Tls { tcp, tls } => {
                let outcome = read_tls(tcp, tls, inbound, start)?;
                // Handshake messages and alerts may need an answer.
                flush_tls(tcp, tls)?;
                Ok(outcome)
            }
        }
    }

    /// Sends as much of `outbound` as the socket takes and removes it from the buffer.
    /// Returns true when nothing is left to send.
    pub fn write(&mut self, outbound: &mut Vec<u8>) -> io::Result<bool> {
        match self {
            Transport::Plain(tcp) => {
                let mut written = 0;
                while written < outbound.len() {
                    match tcp.write(&outbound[written..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => written += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                outbound.drain(..written);
                Ok(outbound.is_empty())
            }
            Transport::Tls { tcp, tls } => {
                // rustls holds plaintext written during the handshake until it completes.
                if !outbound.is_empty() {
                    let taken = tls.writer().write(outbound)?;
                    outbound.drain(..taken);
                }
                flush_tls(tcp, tls)?;
                Ok(outbound.is_empty() && !tls.wants_write())
            }
        }
    }
}

fn read_plain(tcp: &mut TcpStream, inbound: &mut Vec<u8>, start: usize) -> io::Result<ReadOutcome> {
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if inbound.len() - start >= READ_BUDGET {
            return Ok(ReadOutcome::More);
        }
        match tcp.read(&mut chunk) {
            Ok(0) => return Ok(ReadOutcome::Closed),
            Ok(n) => inbound.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn read_tls(
    tcp: &mut TcpStream,
    tls: &mut ClientConnection,
    inbound: &mut Vec<u8>,
    start: usize,
) -> io::Result<ReadOutcome> {
    loop {
        if inbound.len() - start >= READ_BUDGET {
            return Ok(ReadOutcome::More);
        }
        let eof = match tls.read_tls(tcp) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(ReadOutcome::Drained),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let state = tls
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let available = state.plaintext_bytes_to_read();
        if available > 0 {
            let old = inbound.len();
            inbound.resize(old + available, 0);
            tls.reader().read_exact(&mut inbound[old..])?;
        }
        if eof || state.peer_has_closed() {
            return Ok(ReadOutcome::Closed);
        }
    }
}

fn flush_tls(tcp: &mut TcpStream, tls: &mut ClientConnection) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
