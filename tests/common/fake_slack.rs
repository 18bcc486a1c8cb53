//! A local HTTPS fake of the Slack Web API: `POST /api/chat.postMessage` and
//! `POST /api/chat.update` with Slack's request and answer shapes, a bot token checked like
//! Slack does (`not_authed`, `invalid_auth`), channels that exist or not
//! (`channel_not_found`), messages kept by `ts`, Slack's rate limit of about one message per
//! second per channel answered with 429 and `Retry-After`, and scripted answers for the
//! next calls of a method.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};

use super::webhook::{read_request, reason_phrase, throwaway_tls, unique_temp_dir};

pub const TOKEN: &str = "xoxb-test-0000-secret";
const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A scripted answer: an HTTP status, a `Retry-After`, and a JSON body.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: Value,
}

impl Scripted {
    pub fn error(name: &str) -> Scripted {
        Scripted {
            status: 200,
            retry_after: None,
            body: json!({ "ok": false, "error": name }),
        }
    }

    pub fn rate_limited(seconds: &'static str) -> Scripted {
        Scripted {
            status: 429,
            retry_after: Some(seconds),
            body: json!({ "ok": false, "error": "ratelimited" }),
        }
    }
}

/// One API call as the fake saw it.
#[derive(Debug, Clone)]
pub struct Call {
    /// `chat.postMessage` or `chat.update`.
    pub method: String,
    pub authorization: Option<String>,
    pub content_type: Option<String>,
    pub body: Value,
    pub at: Instant,
    pub status: u16,
    /// `ok` of the answer.
    pub ok: bool,
}

/// A message in a channel, as last posted or updated.
#[derive(Debug, Clone)]
pub struct Message {
    pub channel: String,
    pub ts: String,
    pub thread_ts: Option<String>,
    pub text: String,
    pub blocks: Value,
    pub updates: usize,
}

#[derive(Default)]
struct State {
    channels: Vec<String>,
    script: HashMap<String, VecDeque<Scripted>>,
    calls: Vec<Call>,
    messages: Vec<Message>,
    next_ts: u64,
    channel_interval: Duration,
    last_in_channel: HashMap<String, Instant>,
    /// Calls that came sooner than the channel's interval allows (each answered 429).
    too_soon: usize,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct FakeSlack {
    addr: SocketAddr,
    dir: PathBuf,
    ca_pem_path: PathBuf,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    accept_thread: Option<JoinHandle<()>>,
}

impl FakeSlack {
    /// Serves `channels` (ids like `C0INCIDENTS`); a call closer than `channel_interval`
    /// to the previous one in its channel is answered 429 with `Retry-After: 1`, as Slack
    /// does. Pass half the client's interval to allow for scheduling jitter.
    pub fn start(channels: &[&str], channel_interval: Duration) -> FakeSlack {
        let (ca_pem, config) = throwaway_tls();
        let dir = unique_temp_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let ca_pem_path = dir.join("slack-ca.pem");
        std::fs::write(&ca_pem_path, &ca_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared::default());
        {
            let mut state = shared.lock();
            state.channels = channels.iter().map(|c| c.to_string()).collect();
            state.next_ts = 1;
            state.channel_interval = channel_interval;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let accept_thread = {
            let shared = Arc::clone(&shared);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("fake-slack-accept".into())
                .spawn(move || accept_loop(listener, config, shared, stop))
                .unwrap()
        };
        FakeSlack {
            addr,
            dir,
            ca_pem_path,
            shared,
            stop,
            accept_thread: Some(accept_thread),
        }
    }

    /// The Web API base URL (`slack.api_url`).
    pub fn api_url(&self) -> String {
        format!("https://{}/api", self.addr)
    }

    pub fn ca_pem_path(&self) -> &Path {
        &self.ca_pem_path
    }

    /// The next calls of `method` get these answers, in order.
    pub fn script(&self, method: &str, answers: Vec<Scripted>) {
        self.shared
            .lock()
            .script
            .entry(method.to_string())
            .or_default()
            .extend(answers);
    }

    pub fn calls(&self) -> Vec<Call> {
        self.shared.lock().calls.clone()
    }

    pub fn messages(&self) -> Vec<Message> {
        self.shared.lock().messages.clone()
    }

    pub fn too_soon(&self) -> usize {
        self.shared.lock().too_soon
    }

    /// Waits until `done` holds for the messages, at most `timeout`; the last messages
    /// and whether it held.
    pub fn wait_until(
        &self,
        timeout: Duration,
        done: impl Fn(&[Message], &[Call]) -> bool,
    ) -> (Vec<Message>, bool) {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        loop {
            if done(&state.messages, &state.calls) {
                return (state.messages.clone(), true);
            }
            let now = Instant::now();
            if now >= deadline {
                return (state.messages.clone(), false);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

impl Drop for FakeSlack {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let woke = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1)).is_ok();
        if let Some(thread) = self.accept_thread.take() {
            if woke {
                let _ = thread.join();
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn accept_loop(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
) {
    let mut connections: Vec<(TcpStream, JoinHandle<()>)> = Vec::new();
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(stream) = stream else { continue };
        connections.retain(|(_, handle)| !handle.is_finished());
        let Ok(control) = stream.try_clone() else {
            continue;
        };
        let config = Arc::clone(&config);
        let shared = Arc::clone(&shared);
        if let Ok(handle) = std::thread::Builder::new()
            .name("fake-slack-conn".into())
            .spawn(move || serve(stream, config, &shared))
        {
            connections.push((control, handle));
        }
    }
    for (control, handle) in connections {
        let _ = control.shutdown(Shutdown::Both);
        let _ = handle.join();
    }
}

fn serve(stream: TcpStream, config: Arc<ServerConfig>, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(connection) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(connection, stream);
    let Ok(Some(request)) = read_request(&mut tls) else {
        return;
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let method = request
        .path
        .strip_prefix("/api/")
        .unwrap_or(&request.path)
        .to_string();
    let body: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
    let authorization = header("authorization");
    let (status, retry_after, answer) = {
        let mut state = shared.lock();
        let (status, retry_after, answer) = answer(&mut state, &method, &authorization, &body);
        state.calls.push(Call {
            method,
            authorization,
            content_type: header("content-type"),
            body,
            at: Instant::now(),
            status,
            ok: answer["ok"] == true,
        });
        (status, retry_after, answer)
    };
    shared.changed.notify_all();
    let text = answer.to_string();
    let mut response = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n",
        reason_phrase(status),
        text.len()
    );
    if let Some(retry_after) = retry_after {
        response.push_str(&format!("Retry-After: {retry_after}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&text);
    let _ = tls.write_all(response.as_bytes());
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Write);
}

fn answer(
    state: &mut State,
    method: &str,
    authorization: &Option<String>,
    body: &Value,
) -> (u16, Option<&'static str>, Value) {
    let error = |name: &str| (200, None, json!({ "ok": false, "error": name }));
    if method != "chat.postMessage" && method != "chat.update" {
        return (404, None, json!({ "ok": false, "error": "unknown_method" }));
    }
    match authorization.as_deref() {
        None => return error("not_authed"),
        Some(value) if value != format!("Bearer {TOKEN}") => return error("invalid_auth"),
        Some(_) => {}
    }
    if let Some(scripted) = state.script.get_mut(method).and_then(VecDeque::pop_front) {
        return (scripted.status, scripted.retry_after, scripted.body);
    }
    let Some(channel) = body["channel"].as_str().map(str::to_owned) else {
        return error("channel_not_found");
    };
    if !state.channels.contains(&channel) {
        return error("channel_not_found");
    }
    let now = Instant::now();
    if let Some(last) = state.last_in_channel.get(&channel) {
        if now.duration_since(*last) < state.channel_interval {
            state.too_soon += 1;
            return (
                429,
                Some("1"),
                json!({ "ok": false, "error": "ratelimited" }),
            );
        }
    }
    state.last_in_channel.insert(channel.clone(), now);
    let text = body["text"].as_str().unwrap_or_default().to_string();
    if text.is_empty() && !body["blocks"].is_array() {
        return error("no_text");
    }
    let blocks = body.get("blocks").cloned().unwrap_or(Value::Null);
    if method == "chat.postMessage" {
        let ts = format!("1700000000.{:06}", state.next_ts);
        state.next_ts += 1;
        let thread_ts = body["thread_ts"].as_str().map(str::to_owned);
        if let Some(parent) = &thread_ts {
            if !state.messages.iter().any(|m| &m.ts == parent) {
                return error("thread_not_found");
            }
        }
        state.messages.push(Message {
            channel: channel.clone(),
            ts: ts.clone(),
            thread_ts,
            text: text.clone(),
            blocks,
            updates: 0,
        });
        return (
            200,
            None,
            json!({ "ok": true, "channel": channel, "ts": ts, "message": { "text": text } }),
        );
    }
    let Some(ts) = body["ts"].as_str() else {
        return error("message_not_found");
    };
    let Some(message) = state
        .messages
        .iter_mut()
        .find(|m| m.ts == ts && m.channel == channel)
    else {
        return error("message_not_found");
    };
    message.text = text.clone();
    message.blocks = blocks;
    message.updates += 1;
    (
        200,
        None,
        json!({ "ok": true, "channel": channel, "ts": ts, "text": text }),
    )
}
