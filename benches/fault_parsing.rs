//! Throughput of the receive path for fault notifications: chunked HTTP body → SSE events →
//! JSON-RPC → `FaultEvent`, exactly as a cluster's GET stream is processed, on one core.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use nightcrier::config::SubscribeMode;
use nightcrier::mcp::session::{McpSession, Output};
use nightcrier::net::http::{ResponseEvent, ResponseParser};
use nightcrier::net::sse::SseParser;

const BATCH: usize = 1_000;

fn notification(n: usize) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"level":"warning","logger":"kubernetes/faults","data":{{"subscriptionId":"sub-7f3a","cluster":"prod-us-east-1","faultId":"{n:016x}","faultType":"CrashLoop","severity":"critical","resource":{{"apiVersion":"v1","kind":"Pod","name":"api-7d9f8c6b5-x2k4p","namespace":"shop","uid":"3f1c2a9e-8d7b-4c6a-9e5f-1a2b3c4d5e6f"}},"context":"Back-off restarting failed container api in pod shop/api-7d9f8c6b5-x2k4p","timestamp":"2026-11-20T10:00:00Z"}}}}}}"#
    )
}

/// The GET stream as the server writes it: a head, then one chunk per SSE event.
fn stream_bytes(count: usize) -> (Vec<u8>, Vec<u8>) {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n7\r\n: ok\n\n\r\n".to_vec();
    let mut body = Vec::new();
    for n in 0..count {
        let event = format!("event: message\ndata: {}\n\n", notification(n));
        body.extend_from_slice(format!("{:x}\r\n", event.len()).as_bytes());
        body.extend_from_slice(event.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    (head, body)
}

fn active_session() -> McpSession {
    // A session only decodes faults it would accept on a live stream; its phase does not
    // matter for notifications, so a fresh one measures the same path.
    McpSession::new(SubscribeMode::Faults, "bench")
}

fn receive(c: &mut Criterion) {
    let (head, body) = stream_bytes(BATCH);
    let mut group = c.benchmark_group("fault_receive");
    group.throughput(Throughput::Elements(BATCH as u64));
    for read_size in [1_460usize, 16 * 1024] {
        group.bench_with_input(
            BenchmarkId::new("http_sse_json", read_size),
            &read_size,
            |b, &read_size| {
                b.iter(|| {
                    let mut http = ResponseParser::new(16 * 1024, None);
                    let mut sse = SseParser::new(1 << 20);
                    let mut session = active_session();
                    let mut http_events = Vec::new();
                    let mut sse_events = Vec::new();
                    let mut outputs = Vec::new();
                    let mut faults = 0usize;
                    http.feed(&head, &mut http_events).unwrap();
                    for read in body.chunks(read_size) {
                        http_events.clear();
                        http.feed(read, &mut http_events).unwrap();
                        for event in &http_events {
                            if let ResponseEvent::Body(range) = event {
                                sse.feed(&read[range.clone()], &mut sse_events).unwrap();
                            }
                        }
                        for event in sse_events.drain(..) {
                            session.on_message(&event.data, &mut outputs);
                        }
                        for output in outputs.drain(..) {
                            if let Output::Fault(fault) = output {
                                black_box(&fault);
                                faults += 1;
                            }
                        }
                    }
                    assert_eq!(faults, BATCH);
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, receive);
criterion_main!(benches);
