//! A `tiny_http` server on its own thread: the health and metrics listener and the admin
//! listener are each one of these. The thread answers requests with a handler that reads
//! only what the loop publishes (or files), so a slow or hostile client can never block
//! the loop. Dropping it stops the thread.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tiny_http::{Request, Server};

/// How long dropping the server waits for its thread (a response to a client that does not
/// read can hold it); past that the thread is left to end on its own.
const STOP_WAIT: Duration = Duration::from_secs(2);

pub struct HttpThread {
    /// What the server is, for messages: `health server`, `admin server`.
    name: &'static str,
    server: Arc<Server>,
    local_addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Disconnected when the thread has ended.
    ended: Receiver<()>,
}

impl HttpThread {
    /// Binds `listen` and answers every request with `handle` on the thread `thread_name`.
    /// Errors read `NAME: cannot listen on ADDR: REASON`.
    pub fn start(
        name: &'static str,
        thread_name: &str,
        listen: SocketAddr,
        handle: impl Fn(Request) + Send + 'static,
    ) -> io::Result<HttpThread> {
        let named = |e: io::Error, what: &str| {
            io::Error::new(e.kind(), format!("{name}: {what} {listen}: {e}"))
        };
        let listener = TcpListener::bind(listen).map_err(|e| named(e, "cannot listen on"))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| named(e, "no local address for"))?;
        let server = Server::from_listener(listener, None)
            .map_err(|e| io::Error::other(format!("{name}: cannot serve on {listen}: {e}")))?;
        let server = Arc::new(server);
        let stopping = Arc::new(AtomicBool::new(false));
        let (ended_tx, ended) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(thread_name.to_string())
            .spawn({
                let server = Arc::clone(&server);
                let stopping = Arc::clone(&stopping);
                move || {
                    let _ended = ended_tx;
                    loop {
                        match server.recv() {
                            Ok(request) => handle(request),
                            Err(_) if stopping.load(Ordering::SeqCst) => return,
                            Err(e) => log::debug!("{name}: {e}"),
                        }
                    }
                }
            })
            .map_err(|e| named(e, "cannot start the thread for"))?;
        Ok(HttpThread {
            name,
            server,
            local_addr,
            stopping,
            thread: Some(thread),
            ended,
        })
    }

    /// The bound address (the real port when started on port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for HttpThread {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.server.unblock();
        match self.ended.recv_timeout(STOP_WAIT) {
            Err(RecvTimeoutError::Timeout) => {
                log::warn!(
                    "{} thread still busy after {STOP_WAIT:?}; leaving it",
                    self.name
                );
            }
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(thread) = self.thread.take() {
                    let _ = thread.join();
                }
            }
        }
    }
}
