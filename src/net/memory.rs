//! An in-memory, two-ended byte pipe standing in for a socket in unit tests: the client end
//! is a [`Transport`](super::transport::Transport), the server end is driven by the test.
//! Reads on an empty, open pipe answer `WouldBlock`, as a non-blocking socket does.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct Pipe {
    to_client: VecDeque<u8>,
    to_server: Vec<u8>,
    server_closed: bool,
    client_closed: bool,
}

/// The client's end: what the transport reads and writes.
pub struct MemoryStream(Arc<Mutex<Pipe>>);

/// The test's end: the server side of one connection.
#[derive(Clone)]
pub struct ServerEnd(Arc<Mutex<Pipe>>);

fn lock(pipe: &Mutex<Pipe>) -> MutexGuard<'_, Pipe> {
    pipe.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new connected pair.
pub fn pair() -> (MemoryStream, ServerEnd) {
    let pipe = Arc::new(Mutex::new(Pipe::default()));
    (MemoryStream(Arc::clone(&pipe)), ServerEnd(pipe))
}

impl Read for MemoryStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut pipe = lock(&self.0);
        if pipe.to_client.is_empty() {
            return if pipe.server_closed {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(pipe.to_client.len());
        for (slot, byte) in buf.iter_mut().zip(pipe.to_client.drain(..n)) {
            *slot = byte;
        }
        Ok(n)
    }
}

impl Write for MemoryStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut pipe = lock(&self.0);
        if pipe.server_closed {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        pipe.to_server.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for MemoryStream {
    fn drop(&mut self) {
        lock(&self.0).client_closed = true;
    }
}

impl ServerEnd {
    /// Bytes for the client to read.
    pub fn send(&self, bytes: &[u8]) {
        lock(&self.0).to_client.extend(bytes);
    }

    /// Everything the client wrote since the last call.
    pub fn take_written(&self) -> Vec<u8> {
        std::mem::take(&mut lock(&self.0).to_server)
    }

    /// The server's FIN: once the client has read what was sent, it reads end of stream.
    pub fn close(&self) {
        lock(&self.0).server_closed = true;
    }

    /// Whether the client closed (dropped) its end.
    pub fn client_closed(&self) -> bool {
        lock(&self.0).client_closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_open_pipe_would_block_and_closed_pipe_reads_eof_after_data() {
        let (mut client, server) = pair();
        let mut buf = [0u8; 8];
        let e = client.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        server.send(b"abc");
        server.close();
        assert_eq!(client.read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(client.read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn written_bytes_reach_the_server_and_dropping_closes() {
        let (mut client, server) = pair();
        client.write_all(b"GET").unwrap();
        assert_eq!(server.take_written(), b"GET");
        assert!(!server.client_closed());
        drop(client);
        assert!(server.client_closed());
    }
}
