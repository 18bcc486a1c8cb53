//! A tiny HTTP CONNECT proxy on 127.0.0.1 for tests: it checks `Proxy-Authorization`
//! (407 without the expected one), records each CONNECT target, dials it, answers 200 and
//! then copies bytes both ways until either side closes.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct ConnectProxy {
    addr: SocketAddr,
    /// `host:port` of every CONNECT, with whether it was let through.
    tunnels: Arc<Mutex<Vec<(String, bool)>>>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl ConnectProxy {
    /// `authorization`: the whole expected header value (`Basic ...`), or `None` for none.
    pub fn start(authorization: Option<String>) -> ConnectProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let tunnels = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let tunnels = Arc::clone(&tunnels);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut handles = Vec::new();
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let tunnels = Arc::clone(&tunnels);
                    let expected = authorization.clone();
                    handles.push(std::thread::spawn(move || {
                        let _ = serve(stream, expected.as_deref(), &tunnels);
                    }));
                }
                for handle in handles {
                    let _ = handle.join();
                }
            })
        };
        ConnectProxy {
            addr,
            tunnels,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn tunnels(&self) -> Vec<(String, bool)> {
        self.tunnels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok() {
            if let Some(thread) = self.accept_thread.take() {
                let _ = thread.join();
            }
        }
    }
}

fn serve(
    mut client: TcpStream,
    expected: Option<&str>,
    tunnels: &Mutex<Vec<(String, bool)>>,
) -> io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 16 * 1024 || client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let (Some("CONNECT"), Some(target)) = (parts.next(), parts.next()) else {
        client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")?;
        return Ok(());
    };
    let authorization = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.trim().to_string());
    let allowed = authorization.as_deref() == expected;
    tunnels
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((target.to_string(), allowed));
    if !allowed {
        client.write_all(
            b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\nContent-Length: 0\r\n\r\n",
        )?;
        return Ok(());
    }
    let upstream = TcpStream::connect(target)?;
    client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")?;
    client.set_read_timeout(None)?;
    let (mut client_read, mut upstream_write) = (client.try_clone()?, upstream.try_clone()?);
    let forward = std::thread::spawn(move || {
        let _ = io::copy(&mut client_read, &mut upstream_write);
        let _ = upstream_write.shutdown(Shutdown::Write);
    });
    let (mut upstream_read, mut client_write) = (upstream, client);
    let _ = io::copy(&mut upstream_read, &mut client_write);
    let _ = client_write.shutdown(Shutdown::Write);
    let _ = forward.join();
    Ok(())
}
