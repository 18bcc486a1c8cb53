//! Name resolution off the loop: `getaddrinfo` blocks, so one thread does it and hands the
//! answers back through a channel and the loop's waker. It keeps `/etc/hosts` and the
//! resolver's search domains working, which a hand-written DNS client would not.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread;

pub struct Query {
    pub key: u64,
    pub host: String,
    pub port: u16,
}

pub struct Answer {
    pub key: u64,
    pub result: io::Result<Vec<SocketAddr>>,
}

pub struct Resolver {
    queries: Option<Sender<Query>>,
    answers: Receiver<Answer>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Resolver {
    pub fn start(waker: Arc<mio::Waker>) -> io::Result<Resolver> {
        let (query_tx, query_rx) = mpsc::channel::<Query>();
        let (answer_tx, answer_rx) = mpsc::channel::<Answer>();
        let thread = thread::Builder::new()
            .name("nightcrier-dns".into())
            .stack_size(256 * 1024)
            .spawn(move || {
                for query in query_rx {
                    let result = (query.host.as_str(), query.port)
                        .to_socket_addrs()
                        .map(|addrs| addrs.collect::<Vec<_>>());
                    if answer_tx
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
            })?;
        Ok(Resolver {
            queries: Some(query_tx),
            answers: answer_rx,
            thread: Some(thread),
        })
    }

    /// Literal addresses never leave the loop; names go to the resolver thread.
    pub fn resolve(&self, key: u64, host: &str, port: u16) -> Option<io::Result<Vec<SocketAddr>>> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Some(Ok(vec![SocketAddr::new(ip, port)]));
        }
        let query = Query {
            key,
            host: host.to_owned(),
            port,
        };
        match self.queries.as_ref().map(|q| q.send(query)) {
            Some(Ok(())) => None,
            _ => Some(Err(io::Error::other("resolver thread has stopped"))),
        }
    }

    pub fn answers(&self) -> impl Iterator<Item = Answer> + '_ {
        self.answers.try_iter()
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        // Closing the query channel ends the thread after its current lookup.
        self.queries.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn literal_addresses_resolve_without_the_thread() {
        let poll = mio::Poll::new().unwrap();
        let waker = Arc::new(mio::Waker::new(poll.registry(), mio::Token(0)).unwrap());
        let resolver = Resolver::start(waker).unwrap();
        let answer = resolver.resolve(1, "127.0.0.1", 80).unwrap().unwrap();
        assert_eq!(answer, vec!["127.0.0.1:80".parse().unwrap()]);
        let v6 = resolver.resolve(2, "::1", 443).unwrap().unwrap();
        assert_eq!(v6, vec!["[::1]:443".parse().unwrap()]);
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
