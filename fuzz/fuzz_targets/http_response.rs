//! The HTTP/1.1 response parser (`net/http.rs`) on what a server might send.
//!
//! Input: a flags byte, a split seed, then the wire. Flags, low two bits, say what the wire
//! is: raw responses as they are, or the body of one response framed here by
//! Content-Length, chunked coding (chunk sizes from the seed) or the connection closing;
//! framed bodies must come out byte for byte. Other bits pick the body limit, the head
//! limit, a HEAD request and whether the connection closes at the end.
//!
//! Checked on every input: body ranges lie inside the slice just fed and never overlap, so
//! the parser never yields more bytes than it was fed; heads, bodies and ends come in order;
//! no response delivers more than the body limit; errors are sticky; and feeding the wire
//! in the seed's pieces gives what feeding it whole gives (a cut can delay an error, never
//! invent one).

#![no_main]

use libfuzzer_sys::fuzz_target;
use nightcrier::net::http::{HttpError, ResponseEvent, ResponseHead, ResponseParser};
use nightcrier_fuzz::{pieces, Framed};

#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Head(ResponseHead),
    /// Consecutive body bytes, joined.
    Body(Vec<u8>),
    End {
        reusable: bool,
    },
}

#[derive(Debug)]
struct Run {
    seen: Vec<Seen>,
    result: Result<(), HttpError>,
}

#[derive(Clone, Copy)]
struct Settings {
    max_head: usize,
    max_body: Option<usize>,
    head_request: bool,
    eof: bool,
}

/// Tracks the order of events and the body bytes of the current response.
struct Order {
    in_response: bool,
    body_bytes: usize,
    max_body: Option<usize>,
}

impl Order {
    fn check(&mut self, event: &ResponseEvent, input_len: usize, last_end: &mut usize) {
        match event {
            ResponseEvent::Head(head) => {
                assert!(!self.in_response, "second head inside one response");
                let interim = (100..200).contains(&head.status);
                assert!(!interim, "interim head {} delivered", head.status);
                self.in_response = true;
                self.body_bytes = 0;
            }
            ResponseEvent::Body(range) => {
                assert!(self.in_response, "body outside a response");
                assert!(!range.is_empty(), "empty body range");
                assert!(
                    range.end <= input_len,
                    "range {range:?} past input {input_len}"
                );
                assert!(range.start >= *last_end, "overlapping body ranges");
                *last_end = range.end;
                self.body_bytes += range.len();
                if let Some(limit) = self.max_body {
                    assert!(
                        self.body_bytes <= limit,
                        "{} body bytes, limit {limit}",
                        self.body_bytes
                    );
                }
            }
            ResponseEvent::End { .. } => {
                assert!(self.in_response, "end outside a response");
                self.in_response = false;
            }
        }
    }
}

fn run(settings: Settings, feeds: &[&[u8]]) -> Run {
    let mut parser = ResponseParser::new(settings.max_head, settings.max_body);
    if settings.head_request {
        parser.expect_no_body();
    }
    let mut order = Order {
        in_response: false,
        body_bytes: 0,
        max_body: settings.max_body,
    };
    let mut seen: Vec<Seen> = Vec::new();
    let mut out = Vec::new();
    let mut result = Ok(());
    let mut fed = 0usize;
    let mut delivered = 0usize;
    for input in feeds {
        out.clear();
        result = parser.feed(input, &mut out);
        fed += input.len();
        let mut last_end = 0;
        for event in out.drain(..) {
            order.check(&event, input.len(), &mut last_end);
            match event {
                ResponseEvent::Head(head) => seen.push(Seen::Head(head)),
                ResponseEvent::Body(range) => {
                    delivered += range.len();
                    if let Some(Seen::Body(bytes)) = seen.last_mut() {
                        bytes.extend_from_slice(&input[range]);
                    } else {
                        seen.push(Seen::Body(input[range].to_vec()));
                    }
                }
                ResponseEvent::End { reusable } => seen.push(Seen::End { reusable }),
            }
        }
        assert!(delivered <= fed, "{delivered} body bytes from {fed} fed");
        if result.is_err() {
            break;
        }
    }
    if result.is_ok() && settings.eof {
        out.clear();
        result = parser.on_eof(&mut out);
        for event in out.drain(..) {
            order.check(&event, 0, &mut 0);
            match event {
                ResponseEvent::End { reusable } => {
                    assert!(!reusable, "a response ended by close is reusable");
                    seen.push(Seen::End { reusable });
                }
                other => panic!("on_eof produced {other:?}"),
            }
        }
    }
    if let Err(error) = &result {
        // Sticky: the same error again, and nothing more.
        out.clear();
        assert_eq!(
            parser.feed(b"HTTP/1.1 200 OK\r\n\r\n", &mut out).as_ref(),
            Err(error)
        );
        assert!(out.is_empty());
        assert_eq!(parser.on_eof(&mut out).as_ref(), Err(error));
        assert!(!error.to_string().is_empty());
    }
    Run { seen, result }
}

/// `a` and `b` agree as far as the shorter goes; the shorter's last body may be a prefix.
fn compatible(a: &[Seen], b: &[Seen]) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    for (i, (x, y)) in short.iter().zip(long).enumerate() {
        if x == y {
            continue;
        }
        let last = i + 1 == short.len();
        match (x, y) {
            (Seen::Body(p), Seen::Body(q)) if last => {
                let (p, q) = if p.len() <= q.len() { (p, q) } else { (q, p) };
                if !q.starts_with(p) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

/// The wire as one response whose body is `body`, framed the way `mode` says.
fn framed(mode: u8, body: &[u8], seed: u8) -> Vec<u8> {
    let mut wire = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n".to_vec();
    match mode {
        1 => {
            wire.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            wire.extend_from_slice(body);
        }
        2 => {
            wire.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            for (i, chunk) in pieces(body, seed.rotate_left(3)).into_iter().enumerate() {
                // Upper and lower case hex, an extension now and then.
                let size = if i % 2 == 0 {
                    format!("{:x}", chunk.len())
                } else {
                    format!("{:X};ext=1", chunk.len())
                };
                wire.extend_from_slice(size.as_bytes());
                wire.extend_from_slice(b"\r\n");
                wire.extend_from_slice(chunk);
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b"0\r\nX-Trailer: t\r\n\r\n");
        }
        _ => {
            wire.extend_from_slice(b"Connection: close\r\n\r\n");
            wire.extend_from_slice(body);
        }
    }
    wire
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = Framed::parse(data) else {
        return;
    };
    let mode = input.flags & 3;
    let settings = Settings {
        max_body: match (input.flags >> 2) & 3 {
            0 => None,
            1 => Some(4 << 20),
            2 => Some(64),
            _ => Some(4096),
        },
        max_head: match (input.flags >> 4) & 3 {
            0 => 16 * 1024,
            1 => 64,
            2 => 512,
            _ => 8192,
        },
        head_request: mode == 0 && input.flags & 0x40 != 0,
        eof: mode == 3 || input.flags & 0x80 != 0,
    };
    let wire = if mode == 0 {
        input.wire.to_vec()
    } else {
        framed(mode, input.wire, input.seed)
    };

    let whole = run(settings, &[&wire]);
    let split = run(settings, &pieces(&wire, input.seed));
    match (&whole.result, &split.result) {
        (Ok(()), Ok(())) => assert_eq!(whole.seen, split.seen, "split changed the outcome"),
        (Ok(()), Err(e)) => panic!("split invented {e:?}; whole gave {:?}", whole.seen),
        // A cut can leave an invalid head unparsed until more of it arrives.
        (Err(_), Ok(())) => assert!(!settings.eof, "error lost by the split: {:?}", whole.result),
        (Err(_), Err(_)) => {}
    }
    assert!(
        compatible(&whole.seen, &split.seen),
        "whole {:?} and split {:?} disagree",
        whole.seen,
        split.seen
    );

    if mode != 0 {
        // A body framed here comes out exactly, unless it exceeds the limit.
        let over = settings
            .max_body
            .is_some_and(|limit| input.wire.len() > limit);
        let head_len = wire
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(0, |p| p + 4);
        let head_too_big = head_len > settings.max_head;
        if !over && !head_too_big {
            assert_eq!(whole.result, Ok(()), "framed body refused");
            let mut expected = vec![];
            let status_ok = matches!(whole.seen.first(), Some(Seen::Head(h)) if h.status == 200);
            assert!(status_ok, "no head: {:?}", whole.seen);
            if !input.wire.is_empty() {
                expected.push(Seen::Body(input.wire.to_vec()));
            }
            expected.push(Seen::End {
                reusable: mode != 3,
            });
            assert_eq!(&whole.seen[1..], &expected[..], "framed body changed");
        } else if over {
            assert!(
                whole.result.is_err() || split.result.is_err(),
                "body over the limit accepted"
            );
        }
    }
});
