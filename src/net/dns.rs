//! Name resolution off the loop: `getaddrinfo` blocks, so a small pool of threads does it
//! and hands the answers back through a channel and the loop's waker. It keeps `/etc/hosts`
//! and the resolver's search domains working, which a hand-written DNS client would not.
//!
//! [`RESOLVER_THREADS`] lookups run at once (the threads start with the first names to look
//! up), so one slow or black-holed name does not hold up the others; the connection's `connect_timeout` is armed when its lookup is asked
//! for, so a lookup that never answers fails that connect on time. Dropping the resolver
//! does not wait for a lookup in progress.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};

use crate::worker_pool::WorkerPool;

/// Lookups in progress at once at most.
pub const RESOLVER_THREADS: usize = 4;

pub struct Query {
    pub key: u64,
    pub host: String,
    pub port: u16,
}

pub struct Answer {
    pub key: u64,
    pub result: io::Result<Vec<SocketAddr>>,
}

/// What answers a query: `getaddrinfo` in the daemon.
pub type Lookup = fn(&str, u16) -> io::Result<Vec<SocketAddr>>;

fn getaddrinfo(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    (host, port)
        .to_socket_addrs()
        .map(|addrs| addrs.collect::<Vec<_>>())
}

pub struct Resolver {
    pool: WorkerPool<Query>,
    answers: Receiver<Answer>,
}

impl Resolver {
    pub fn start(waker: Arc<mio::Waker>) -> io::Result<Resolver> {
        Resolver::with_lookup(waker, RESOLVER_THREADS, getaddrinfo)
    }

    /// A resolver of at most `threads` threads answering with `lookup`; they start with
    /// the first names to look up (literal addresses need none).
    pub fn with_lookup(
        waker: Arc<mio::Waker>,
        threads: usize,
        lookup: Lookup,
    ) -> io::Result<Resolver> {
        let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
        let pool = WorkerPool::new(
            "nightcrier-dns",
            threads,
            Some(256 * 1024),
            Arc::new(move |queries: &Mutex<Receiver<Query>>| {
                serve(queries, &answer_tx, &waker, lookup)
            }),
        );
        Ok(Resolver {
            pool,
            answers: answer_rx,
        })
    }

    /// Literal addresses never leave the loop; names go to the resolver threads.
    pub fn resolve(&self, key: u64, host: &str, port: u16) -> Option<io::Result<Vec<SocketAddr>>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Ok(vec![SocketAddr::new(ip, port)]));
        }
        let query = Query {
            key,
            host: host.to_owned(),
            port,
        };
        match self.pool.submit(query) {
            Ok(()) => None,
            Err(e) => Some(Err(io::Error::other(format!("resolver: {e}")))),
        }
    }

    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }

    /// Resolver threads started so far.
    pub fn threads(&self) -> usize {
        self.pool.threads()
    }
}

/// One resolver thread: the next query, its lookup, the answer, a wake-up.
fn serve(
    queries: &Mutex<Receiver<Query>>,
    answers: &Sender<Answer>,
    waker: &mio::Waker,
    lookup: Lookup,
) {
    loop {
        // The lock is held only while waiting for the next query, not during the lookup.
        let query = match queries.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(query) = query else {
            return;
        };
        let result = lookup(&query.host, query.port);
        if answers
            .send(Answer {
                key: query.key,
                result,
            })
            .is_err()
        {
            return;
        }
        // A failed wake means the loop is gone; the thread ends with the channel.
        let _ = waker.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;
    use std::time::Duration;

    #[test]
    fn literal_addresses_resolve_without_the_thread() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let resolver = Resolver::start(waker).unwrap();
        let answer = resolver.resolve(1, "127.0.0.1", 80).unwrap().unwrap();
        assert_eq!(answer, vec!["127.0.0.1:80".parse().unwrap()]);
        assert_eq!(
            resolver.threads(),
            0,
            "no name looked up, no thread started"
        );
        let v6 = resolver.resolve(2, "::1", 443).unwrap().unwrap();
        assert_eq!(v6, vec!["[::1]:443".parse().unwrap()]);
    }

    static RELEASE_SLOW: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

    /// `slow` hangs until released (at most 10 s); every other name is 127.0.0.1.
    fn hanging_lookup(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while host == "slow"
            && !RELEASE_SLOW.load(std::sync::atomic::Ordering::SeqCst)
            && std::time::Instant::now() < deadline
        {
            thread::sleep(Duration::from_millis(5));
        }
        Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
    }

    #[test]
    fn a_hanging_lookup_does_not_hold_up_the_others() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
        let resolver = Resolver::with_lookup(waker, RESOLVER_THREADS, hanging_lookup).unwrap();
        assert!(resolver.resolve(1, "slow", 80).is_none());
        assert!(resolver.resolve(2, "fast", 80).is_none());
        let mut events = mio::Events::with_capacity(4);
        let mut answered = Vec::new();
        for _ in 0..50 {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            answered.extend(resolver.answers().map(|a| a.key));
            if !answered.is_empty() {
                break;
            }
        }
        assert_eq!(answered, [2], "the second name waited for the first");
        RELEASE_SLOW.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    #[test]
    fn names_are_answered_through_the_waker() {
        let mut poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(7)).unwrap());
        let resolver = Resolver::start(waker).unwrap();
        assert!(resolver.resolve(9, "localhost", 8080).is_none());
        let mut events = mio::Events::with_capacity(4);
        let mut answers = Vec::new();
        for _ in 0..50 {
            poll.poll(&mut events, Some(Duration::from_millis(100)))
                .unwrap();
            answers.extend(resolver.answers());
            if !answers.is_empty() {
                break;
            }
        }
        assert_eq!(answers.len(), 1);
        assert_eq!(answers[0].key, 9);
        let addrs = answers[0].result.as_ref().unwrap();
        assert!(addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 8080));
    }
}
