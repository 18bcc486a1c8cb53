//! Incremental Server-Sent Events parser (WHATWG EventSource stream rules).
//!
//! Sans-I/O: bytes in, complete events out. Input may be split anywhere, including in
//! the middle of a line, of a CRLF pair, of a UTF-8 character or of the leading BOM.
//! Complete lines are parsed straight from the caller's slice; only an unterminated
//! tail is copied, so a stream costs one small allocation per dispatched event.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field, or `"message"` when the event had none (`"message"` is never a
    /// copy: it is nearly every event).
    pub event: Cow<'static, str>,
    /// The `data:` lines joined with `"\n"`.
    pub data: String,
    /// The last event id in force when this event was dispatched (`None` if none or empty).
    pub id: Option<String>,
}

/// The event list and data buffers every stream of a loop shares, one stream at a time:
/// a fault costs no allocation for its event, and idle streams hold none of it.
#[derive(Debug, Default)]
pub struct SseScratch {
    pub events: Vec<SseEvent>,
    spare: Vec<String>,
}

impl SseScratch {
    /// Spare buffers kept, and the largest kept: a burst of big events is not held on to.
    const SPARE_BUFFERS: usize = 4;
    const MAX_SPARE_BYTES: usize = 16 * 1024;

    /// A spare data buffer, if one is kept.
    pub fn take_spare(&mut self) -> Option<String> {
        self.spare.pop()
    }

    /// Keeps `buffer` for a later event, within the bounds above.
    pub fn give_back(&mut self, buffer: String) {
        if self.spare.len() < Self::SPARE_BUFFERS && buffer.capacity() <= Self::MAX_SPARE_BYTES {
            self.spare.push(buffer);
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SseError {
    /// One pending event grew past the configured bound.
    EventTooLarge { limit: usize },
    /// A field line was not valid UTF-8. Not returned by [`SseParser`], which drops such
    /// an event alone and counts it ([`SseParser::take_discarded`]).
    InvalidUtf8,
}

impl fmt::Display for SseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SseError::EventTooLarge { limit } => write!(f, "SSE event exceeds {limit} bytes"),
            SseError::InvalidUtf8 => write!(f, "SSE stream contains invalid UTF-8"),
        }
    }
}

impl std::error::Error for SseError {}

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// Longest `id:` kept (and so sent back as `Last-Event-ID`).
pub const MAX_ID_BYTES: usize = 256;

/// How much of the optional byte order mark at stream start has been matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BomState {
    Pending(usize),
    Done,
}

/// Incremental SSE parser for one stream at a time.
///
/// Size bound: the bytes of one pending event — every field line since the last blank
/// line, counting each line end as one byte, plus an unterminated partial line — may not
/// exceed `max_event_bytes`. Comment lines (heartbeats) do not count. There is no separate
/// line-length limit.
///
/// Hostile input: an event with a line that is not UTF-8 is dropped alone and counted
/// ([`SseParser::take_discarded`]); an `id:` longer than [`MAX_ID_BYTES`] or holding
/// anything but printable ASCII is ignored, so it never goes back in `Last-Event-ID`.
///
/// An event whose data is empty (no `data:` line, or one empty `data:` line) is not
/// dispatched, though its `id:` still takes effect: MCP servers send such priming events,
/// and no JSON-RPC message is empty. (WHATWG would dispatch the second form.)
///
/// Errors are sticky: after `feed` returns an error, every further `feed` returns the
/// same error until [`SseParser::reset_stream`] is called for a new connection. Events
/// completed before the error in the same call are still pushed to `out`.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Unterminated tail of the current line, carried to the next `feed`.
    line: Vec<u8>,
    /// Bytes of the completed lines of the pending event.
    event_bytes: usize,
    data: String,
    event_type: String,
    /// Id set by the pending event's `id:` field; becomes `last_event_id` at dispatch.
    id_buffer: Option<String>,
    last_event_id: Option<String>,
    retry: Option<Duration>,
    comments_seen: u64,
    /// The pending event had a line that is not UTF-8: it is dropped at its end.
    poisoned: bool,
    /// Events dropped for invalid UTF-8, not yet taken by [`SseParser::take_discarded`].
    discarded: u64,
    /// Events ended (blank lines after an event's first line), dispatched or not.
    ended: u64,
    /// The previous line ended in CR at the end of a feed: an LF that starts the next
    /// feed belongs to that line end.
    skip_lf: bool,
    bom: BomState,
    failed: Option<SseError>,
}

impl SseParser {
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            event_bytes: 0,
            data: String::new(),
            event_type: String::new(),
            id_buffer: None,
            last_event_id: None,
            retry: None,
            comments_seen: 0,
            poisoned: false,
            discarded: 0,
            ended: 0,
            skip_lf: false,
            bom: BomState::Pending(0),
            failed: None,
        }
    }

    /// Feed any slice of the stream. Complete events are pushed to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if let Some(err) = self.failed {
            return Err(err);
        }
        let result = self.feed_lines(input, out);
        if let Err(err) = result {
            self.failed = Some(err);
        }
        result
    }

    /// The id to send as `Last-Event-ID` on reconnect; `None` if the server never sent a
    /// non-empty one (an empty `id:` clears it, as the WHATWG rules say).
    pub fn last_event_id(&self) -> Option<&str> {
        self.last_event_id.as_deref()
    }

    /// The latest valid `retry:` value (ASCII digits that fit in u64 milliseconds).
    pub fn retry(&self) -> Option<Duration> {
        self.retry
    }

    pub fn comments_seen(&self) -> u64 {
        self.comments_seen
    }

    /// Events dropped because a line of theirs was not UTF-8, since the last call. One bad
    /// byte costs one message, never the stream.
    pub fn take_discarded(&mut self) -> u64 {
        std::mem::take(&mut self.discarded)
    }

    /// How many events have ended so far (dispatched, empty or dropped): a caller timing
    /// each event sees a new one begin when this moves.
    pub fn events_ended(&self) -> u64 {
        self.ended
    }

    /// Whether an event has started (some of its bytes arrived) and not ended. Comment lines
    /// between events (`:ka` heartbeats) start none.
    pub fn in_event(&self) -> bool {
        self.event_bytes > 0 || !self.line.is_empty()
    }

    /// Offers `buffer` (emptied) for the data of the next event, when this parser holds
    /// no data buffer of its own: a stream then reuses the loop's buffers instead of
    /// allocating one per event.
    pub fn lend(&mut self, mut buffer: String) -> Option<String> {
        if self.data.capacity() > 0 {
            return Some(buffer);
        }
        buffer.clear();
        self.data = buffer;
        None
    }

    /// The data buffer back, when no event is under way, so an idle stream holds no
    /// event-sized buffer.
    pub fn reclaim(&mut self) -> Option<String> {
        (self.data.is_empty() && self.data.capacity() > 0).then(|| std::mem::take(&mut self.data))
    }

    /// Prepare for a new connection: drops the partial line and pending event, expects a
    /// BOM again and clears a sticky error. Keeps `last_event_id`, `retry` and counters.
    pub fn reset_stream(&mut self) {
        self.line.clear();
        self.event_bytes = 0;
        self.data.clear();
        self.event_type.clear();
        self.poisoned = false;
        self.id_buffer.clone_from(&self.last_event_id);
        self.skip_lf = false;
        self.bom = BomState::Pending(0);
        self.failed = None;
    }

    fn feed_lines(&mut self, input: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        let mut input = self.skip_bom(input);
        if self.skip_lf {
            if let Some((&first, rest)) = input.split_first() {
                self.skip_lf = false;
                if first == b'\n' {
                    input = rest;
                }
            }
        }
        while !input.is_empty() {
            // An event's blank line comes straight after its last line: no search for it.
            let found = match input[0] {
                b'\n' | b'\r' => Some(0),
                _ => memchr::memchr2(b'\n', b'\r', input),
            };
            let Some(end) = found else {
                let pending = self.event_bytes + self.line.len() + input.len();
                if pending > self.max_event_bytes {
                    return Err(SseError::EventTooLarge {
                        limit: self.max_event_bytes,
                    });
                }
                self.line.extend_from_slice(input);
                return Ok(());
            };
            let mut terminator = 1;
            if input[end] == b'\r' {
                match input.get(end + 1) {
                    Some(b'\n') => terminator = 2,
                    Some(_) => {}
                    None => self.skip_lf = true,
                }
            }
            if self.line.is_empty() {
                self.process_line(&input[..end], out)?;
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..end]);
                let result = self.process_line(&line, out);
                line.clear();
                self.line = line;
                result?;
            }
            input = &input[end + terminator..];
        }
        Ok(())
    }

    /// Skips the optional UTF-8 BOM at stream start, even when split across feeds.
    fn skip_bom<'a>(&mut self, mut input: &'a [u8]) -> &'a [u8] {
        while let BomState::Pending(matched) = self.bom {
            let Some((&byte, rest)) = input.split_first() else {
                break;
            };
            if byte == BOM[matched] {
                input = rest;
                self.bom = if matched + 1 == BOM.len() {
                    BomState::Done
                } else {
                    BomState::Pending(matched + 1)
                };
            } else {
                // Not a BOM after all: the held bytes are ordinary stream content.
                self.line.extend_from_slice(&BOM[..matched]);
                self.bom = BomState::Done;
            }
        }
        input
    }

    fn process_line(&mut self, line: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line[0] == b':' {
            // Comments (heartbeats) carry nothing: they never count towards the event size.
            self.comments_seen += 1;
            return Ok(());
        }
        self.event_bytes += line.len() + 1;
        if self.event_bytes > self.max_event_bytes {
            return Err(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            });
        }
        if line == b"event: message" {
            // What MCP servers name every event.
            self.event_type.clear();
            self.event_type.push_str("message");
            return Ok(());
        }
        if let Some(value) = line.strip_prefix(b"data:") {
            // Nearly every line: the message itself.
            let value = value.strip_prefix(b" ").unwrap_or(value);
            let Ok(value) = simdutf8::basic::from_utf8(value) else {
                self.poisoned = true;
                return Ok(());
            };
            // Events take the buffer, so a new event starts empty: size it once.
            self.data.reserve(value.len() + 1);
            self.data.push_str(value);
            self.data.push('\n');
            return Ok(());
        }
        let Ok(line) = simdutf8::basic::from_utf8(line) else {
            self.poisoned = true;
            return Ok(());
        };
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "event" => {
                self.event_type.clear();
                self.event_type.push_str(value);
            }
            // An id goes back to the server in `Last-Event-ID`: one that is long or holds
            // anything but printable ASCII is ignored, never echoed.
            "id" if value.len() <= MAX_ID_BYTES
                && value.bytes().all(|b| (0x20..0x7f).contains(&b)) =>
            {
                self.id_buffer = Some(value.to_owned())
            }
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                // Values beyond u64 milliseconds are ignored rather than saturated.
                if let Ok(ms) = value.parse::<u64>() {
                    self.retry = Some(Duration::from_millis(ms));
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.event_bytes > 0 {
            self.ended += 1;
        }
        self.event_bytes = 0;
        if std::mem::take(&mut self.poisoned) {
            self.discarded += 1;
            self.data.clear();
            self.event_type.clear();
            self.id_buffer.clone_from(&self.last_event_id);
            return;
        }
        // The id takes effect even for an event without data (a priming event).
        if self.last_event_id != self.id_buffer {
            self.last_event_id = match &self.id_buffer {
                Some(id) if !id.is_empty() => Some(id.clone()),
                _ => None,
            };
            self.id_buffer.clone_from(&self.last_event_id);
        }
        // Every data line ends in LF, so this is the joined data without the last LF.
        if self.data.len() <= 1 {
            // No data, or one empty data line: an MCP priming event, not a message.
            self.data.clear();
            self.event_type.clear();
            return;
        }
        let event = if self.event_type.is_empty() || self.event_type == "message" {
            Cow::Borrowed("message")
        } else {
            Cow::Owned(self.event_type.clone())
        };
        // The event takes the buffer: no copy, and an idle stream holds no event-sized buffer.
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        out.push(SseEvent {
            event,
            data,
            id: self.last_event_id.clone(),
        });
        self.event_type.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: usize = 1 << 20;

    #[test]
    fn a_lent_buffer_carries_the_next_event_and_an_idle_parser_gives_it_back() {
        let mut parser = SseParser::new(LIMIT);
        let buffer = String::with_capacity(256);
        let lent_at = buffer.as_ptr();
        assert!(parser.lend(buffer).is_none());
        let mut out = Vec::new();
        parser.feed(b"data: one\n\n", &mut out).unwrap();
        assert_eq!(out[0].data, "one");
        assert_eq!(
            out[0].data.as_ptr(),
            lent_at,
            "the event took the lent buffer"
        );
        // Nothing under way: nothing to give back, and nothing held.
        assert!(parser.reclaim().is_none());
        // Lent and not used (no event arrived): given back whole.
        assert!(parser.lend(String::with_capacity(64)).is_none());
        parser.feed(b": ka\n", &mut out).unwrap();
        assert!(parser.reclaim().is_some_and(|b| b.capacity() >= 64));
        // Mid-event the buffer stays with the parser.
        assert!(parser.lend(String::with_capacity(64)).is_none());
        parser.feed(b"data: par", &mut out).unwrap();
        parser.feed(b"tial\n", &mut out).unwrap();
        assert!(parser.reclaim().is_none());
        assert!(
            parser.lend(String::new()).is_some(),
            "a parser with a buffer lends none"
        );
        parser.feed(b"\n", &mut out).unwrap();
        assert_eq!(out[1].data, "partial");
    }

    #[test]
    fn the_scratch_keeps_a_few_small_buffers() {
        let mut scratch = SseScratch::default();
        for _ in 0..10 {
            scratch.give_back(String::with_capacity(100));
        }
        scratch.give_back(String::with_capacity(1 << 20));
        let mut kept = 0;
        while let Some(buffer) = scratch.take_spare() {
            assert!(buffer.capacity() < 1 << 20);
            kept += 1;
        }
        assert_eq!(kept, SseScratch::SPARE_BUFFERS);
    }

    /// A `tools/call` reply as kubernetes-mcp-server streams it on a POST.
    const POST_REPLY: &[u8] = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"subscriptionId\\\":\\\"sub-1\\\",\\\"cluster\\\":\\\"prod-us-east-1\\\",\\\"mode\\\":\\\"faults\\\",\\\"status\\\":\\\"active\\\"}\"}]}}\n\n";

    const FAULT: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"warning","logger":"kubernetes/faults","data":{"subscriptionId":"sub-1","cluster":"prod-us-east-1","faultId":"9f2c4e1a7b3d5c60","faultType":"CrashLoop","severity":"critical","resource":{"apiVersion":"v1","kind":"Pod","name":"api-7d9f","namespace":"shop","uid":"4f1c2a9e-1111-2222-3333-444455556666"},"context":"Back-off restarting failed container api in pod api-7d9f","timestamp":"2026-11-20T10:00:00Z"}}}"#;

    /// The GET stream: the `: ok` comment, then fault notifications.
    fn get_stream() -> Vec<u8> {
        let mut s = b": ok\n\n".to_vec();
        for i in 0..3 {
            if i == 1 {
                s.extend_from_slice(b"event: message\n");
            }
            s.extend_from_slice(b"data: ");
            s.extend_from_slice(FAULT.replace("9f2c", &format!("000{i}")).as_bytes());
            s.extend_from_slice(b"\n\n");
        }
        s
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        events: Vec<SseEvent>,
        result: Result<(), SseError>,
        comments: u64,
        last_id: Option<String>,
        retry: Option<Duration>,
    }

    fn run(limit: usize, pieces: &[&[u8]]) -> Outcome {
        let mut parser = SseParser::new(limit);
        let mut events = Vec::new();
        let mut result = Ok(());
        for piece in pieces {
            result = parser.feed(piece, &mut events);
            if result.is_err() {
                break;
            }
        }
        Outcome {
            events,
            result,
            comments: parser.comments_seen(),
            last_id: parser.last_event_id().map(str::to_owned),
            retry: parser.retry(),
        }
    }

    fn parse(input: &[u8]) -> Outcome {
        run(LIMIT, &[input])
    }

    fn message(data: &str) -> SseEvent {
        SseEvent {
            event: "message".into(),
            data: data.to_owned(),
            id: None,
        }
    }

    /// Feeding at every two-piece split and one byte at a time gives the whole-feed result.
    fn assert_split_invariant(limit: usize, input: &[u8]) -> Outcome {
        let whole = run(limit, &[input]);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(run(limit, &[a, b]), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run(limit, &bytes), whole, "one byte at a time");
        whole
    }

    #[test]
    fn post_reply_capture_yields_one_message_event() {
        let out = parse(POST_REPLY);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].event, "message");
        assert!(out.events[0]
            .data
            .starts_with("{\"jsonrpc\":\"2.0\",\"id\":5"));
        assert!(out.events[0].data.ends_with("}}"));
        assert_eq!(out.events[0].id, None);
        assert_eq!(out.last_id, None);
    }

    #[test]
    fn get_stream_capture_counts_ok_comment_and_yields_faults() {
        let out = parse(&get_stream());
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.comments, 1);
        assert_eq!(out.events.len(), 3);
        assert!(out.events.iter().all(|e| e.event == "message"));
        assert!(out.events[2]
            .data
            .contains("\"faultId\":\"00024e1a7b3d5c60\""));
        assert_eq!(out.events[0].data.len(), FAULT.len());
    }

    #[test]
    fn post_reply_survives_every_split_point() {
        assert_eq!(assert_split_invariant(LIMIT, POST_REPLY).events.len(), 1);
    }

    #[test]
    fn get_stream_survives_every_split_point() {
        assert_eq!(assert_split_invariant(LIMIT, &get_stream()).events.len(), 3);
    }

    #[test]
    fn crlf_and_cr_line_ends_survive_every_split_point() {
        let crlf = get_stream()
            .iter()
            .flat_map(|&b| {
                if b == b'\n' {
                    vec![b'\r', b'\n']
                } else {
                    vec![b]
                }
            })
            .collect::<Vec<u8>>();
        let cr: Vec<u8> = get_stream()
            .iter()
            .map(|&b| if b == b'\n' { b'\r' } else { b })
            .collect();
        let lf = parse(&get_stream());
        assert_eq!(assert_split_invariant(LIMIT, &crlf), lf);
        assert_eq!(assert_split_invariant(LIMIT, &cr), lf);
    }

    #[test]
    fn every_field_kind_survives_every_split_point_with_each_line_end() {
        let lf = b"\xEF\xBB\xBF: hi\nretry: 1500\nid: 1\n\nevent: a\ndata: x\ndata:\ndata:  y\n\nid: 2\ndata: z\nfoo\n\n";
        let expected = parse(lf);
        assert_eq!(expected.events.len(), 2);
        assert_eq!(expected.events[0].data, "x\n\n y");
        for ending in [&b"\r\n"[..], b"\r"] {
            let input: Vec<u8> = lf
                .iter()
                .flat_map(|&b| if b == b'\n' { ending.to_vec() } else { vec![b] })
                .collect();
            assert_eq!(assert_split_invariant(LIMIT, &input), expected);
        }
    }

    #[test]
    fn crlf_split_across_feeds_is_one_line_end() {
        let out = run(LIMIT, &[b"data: a\r", b"\ndata: b\r\n\r\n"]);
        assert_eq!(out.events, vec![message("a\nb")]);
    }

    #[test]
    fn cr_at_end_of_feed_followed_by_other_byte_is_a_line_end() {
        let out = run(LIMIT, &[b"data: a\r", b"data: b\r", b"\r"]);
        assert_eq!(out.events, vec![message("a\nb")]);
    }

    #[test]
    fn cr_lf_and_crlf_line_ends_mix_in_one_stream() {
        let out = parse(b"data: a\rdata: b\ndata: c\r\n\r\rdata: d\n\r\n");
        assert_eq!(out.events, vec![message("a\nb\nc"), message("d")]);
    }

    #[test]
    fn bom_at_stream_start_is_skipped() {
        let out = parse(b"\xEF\xBB\xBFdata: x\n\n");
        assert_eq!(out.events, vec![message("x")]);
    }

    #[test]
    fn bom_split_across_feeds_is_skipped() {
        let out = run(LIMIT, &[b"\xEF", b"\xBB", b"\xBF", b"data: x\n\n"]);
        assert_eq!(out.events, vec![message("x")]);
        let out = run(LIMIT, &[b"\xEF\xBB", b"\xBFdata: x\n\n"]);
        assert_eq!(out.events, vec![message("x")]);
    }

    #[test]
    fn bom_after_stream_start_is_content() {
        let out = parse("data: a\n\n\u{FEFF}data: b\n\n".as_bytes());
        // The second line's field name is "\u{FEFF}data", an unknown field.
        assert_eq!(out.events, vec![message("a")]);
        let out = parse("data: \u{FEFF}b\n\n".as_bytes());
        assert_eq!(out.events, vec![message("\u{FEFF}b")]);
    }

    #[test]
    fn partial_bom_followed_by_other_bytes_is_content() {
        // "\xEF\xBBdata" is no UTF-8 field name: that event is dropped, the stream goes on.
        let out = run(LIMIT, &[b"\xEF\xBB", b"data: x\n\ndata: y\n\n"]);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.events, vec![message("y")]);
    }

    #[test]
    fn reset_stream_expects_bom_again() {
        let mut parser = SseParser::new(LIMIT);
        let mut events = Vec::new();
        parser
            .feed(b"\xEF\xBB\xBFdata: a\n\n", &mut events)
            .unwrap();
        parser.reset_stream();
        parser
            .feed(b"\xEF\xBB\xBFdata: b\n\n", &mut events)
            .unwrap();
        assert_eq!(events, vec![message("a"), message("b")]);
    }

    #[test]
    fn field_value_strips_exactly_one_leading_space() {
        let out = parse(b"data:  two\n\ndata:none\n\ndata: \n\n");
        assert_eq!(out.events, vec![message(" two"), message("none")]);
    }

    #[test]
    fn line_without_colon_is_field_with_empty_value() {
        let out = parse(b"data\ndata\n\nevent\ndata: x\n\n");
        assert_eq!(out.events, vec![message("\n"), message("x")]);
    }

    #[test]
    fn comments_are_counted_and_ignored() {
        let out = parse(b": ok\n\n:\n: keepalive\ndata: x\n:tail\n\n");
        assert_eq!(out.comments, 4);
        assert_eq!(out.events, vec![message("x")]);
    }

    #[test]
    fn data_lines_join_with_newline() {
        let out = parse(b"data: a\ndata:\ndata: c\n\n");
        assert_eq!(out.events, vec![message("a\n\nc")]);
    }

    #[test]
    fn event_field_sets_type_for_one_event_only() {
        let out = parse(b"event: ping\ndata: 1\n\ndata: 2\n\nevent: dropped\n\ndata: 3\n\n");
        assert_eq!(out.events[0].event, "ping");
        assert_eq!(out.events[1], message("2"));
        assert_eq!(out.events[2], message("3"));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let out = parse(b"foo: bar\nDATA: no\ndata : no\ndata: yes\n\n");
        assert_eq!(out.events, vec![message("yes")]);
    }

    #[test]
    fn id_stays_in_force_for_later_events() {
        let out = parse(b"id: 7\ndata: a\n\ndata: b\n\n");
        assert_eq!(out.events[0].id.as_deref(), Some("7"));
        assert_eq!(out.events[1].id.as_deref(), Some("7"));
        assert_eq!(out.last_id.as_deref(), Some("7"));
    }

    #[test]
    fn id_containing_nul_is_ignored() {
        let out = parse(b"id: 1\n\nid: 2\0x\ndata: a\n\n");
        assert_eq!(out.events[0].id.as_deref(), Some("1"));
        assert_eq!(out.last_id.as_deref(), Some("1"));
    }

    #[test]
    fn empty_id_clears_last_event_id() {
        let out = parse(b"id: 1\ndata: a\n\nid\ndata: b\n\n");
        assert_eq!(out.events[1].id, None);
        assert_eq!(out.last_id, None);
    }

    #[test]
    fn id_takes_effect_only_when_the_event_is_dispatched() {
        let out = parse(b"id: 1\n\nid: 2\ndata: unfinished");
        assert_eq!(out.last_id.as_deref(), Some("1"));
    }

    #[test]
    fn priming_event_updates_last_event_id_without_dispatch() {
        let out = parse(b"id: prime-1\n\n");
        assert!(out.events.is_empty());
        assert_eq!(out.last_id.as_deref(), Some("prime-1"));
    }

    #[test]
    fn priming_event_with_empty_data_line_is_not_dispatched() {
        let out = parse(b"id: prime-2\ndata: \n\ndata: x\n\n");
        assert_eq!(out.events.len(), 1);
        assert_eq!(out.events[0].id.as_deref(), Some("prime-2"));
        assert_eq!(out.last_id.as_deref(), Some("prime-2"));
    }

    #[test]
    fn retry_accepts_only_ascii_digits() {
        assert_eq!(parse(b"retry: 3000\n").retry, Some(Duration::from_secs(3)));
        for bad in [
            &b"retry: 3s\n"[..],
            b"retry: -1\n",
            b"retry:\n",
            b"retry: 1 000\n",
            b"retry: 99999999999999999999999\n",
        ] {
            assert_eq!(parse(bad).retry, None, "{:?}", String::from_utf8_lossy(bad));
        }
        let out = parse(b"retry: 500\n\nretry: x\n\nretry: 0700\n\n");
        assert_eq!(out.retry, Some(Duration::from_millis(700)));
    }

    #[test]
    fn event_without_terminating_blank_line_is_not_dispatched() {
        assert!(parse(b"data: a\n").events.is_empty());
        assert!(parse(b"data: a").events.is_empty());
    }

    #[test]
    fn utf8_character_split_across_feeds_is_reassembled() {
        let text = "data: caf\u{e9} \u{1F525}\n\n".as_bytes();
        let out = assert_split_invariant(LIMIT, text);
        assert_eq!(out.events, vec![message("caf\u{e9} \u{1F525}")]);
    }

    #[test]
    fn invalid_utf8_in_a_field_drops_only_that_event() {
        let input = b"data: a\n\ndata: \xFF\xFE\ndata: more\n\n\xC3data: x\n\ndata: b\n\n";
        let out = assert_split_invariant(LIMIT, input);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.events, vec![message("a"), message("b")]);
        let mut parser = SseParser::new(LIMIT);
        parser.feed(input, &mut Vec::new()).unwrap();
        assert_eq!(parser.take_discarded(), 2);
        assert_eq!(parser.take_discarded(), 0);
    }

    #[test]
    fn ids_with_control_bytes_or_over_256_bytes_are_ignored() {
        let long = format!("id: {}\ndata: x\n\n", "a".repeat(MAX_ID_BYTES + 1));
        for hostile in [
            &b"id: a\x01b\ndata: x\n\n"[..],
            b"id: a\x1b[31m\ndata: x\n\n",
            long.as_bytes(),
        ] {
            let mut input = b"id: 7\ndata: first\n\n".to_vec();
            input.extend_from_slice(hostile);
            let out = parse(&input);
            assert_eq!(
                out.last_id.as_deref(),
                Some("7"),
                "{:?}",
                String::from_utf8_lossy(hostile)
            );
            assert_eq!(out.events.len(), 2);
        }
        let at_limit = format!("id: {}\ndata: x\n\n", "a".repeat(MAX_ID_BYTES));
        assert_eq!(
            parse(at_limit.as_bytes()).last_id.map(|id| id.len()),
            Some(MAX_ID_BYTES)
        );
    }

    #[test]
    fn an_event_is_in_progress_from_its_first_byte_to_its_end_and_heartbeats_start_none() {
        let mut parser = SseParser::new(LIMIT);
        let mut events = Vec::new();
        parser.feed(b":ka\n:ka\n", &mut events).unwrap();
        assert!(!parser.in_event());
        parser.feed(b"da", &mut events).unwrap();
        assert!(parser.in_event());
        parser.feed(b"ta: x\n:ka\n", &mut events).unwrap();
        assert!(parser.in_event());
        parser.feed(b"\n", &mut events).unwrap();
        assert!(!parser.in_event());
        assert_eq!(events, vec![message("x")]);
    }

    #[test]
    fn invalid_utf8_in_comment_is_ignored() {
        let out = parse(b": \xFF\ndata: x\n\n");
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.events, vec![message("x")]);
    }

    #[test]
    fn data_line_of_200_kib_is_accepted_under_1_mib_limit() {
        let mut input = b"data: ".to_vec();
        input.resize(input.len() + 200 * 1024, b'x');
        input.extend_from_slice(b"\n\n");
        let whole = parse(&input);
        assert_eq!(whole.result, Ok(()));
        assert_eq!(whole.events[0].data.len(), 200 * 1024);
        let pieces: Vec<&[u8]> = input.chunks(4096).collect();
        assert_eq!(run(LIMIT, &pieces), whole);
    }

    #[test]
    fn event_at_limit_is_accepted_and_one_byte_more_is_rejected() {
        // Each line counts its bytes plus one for its line end: "data: x\n" is 8.
        let input = b"data: x\ndata: y\n\n";
        assert_eq!(assert_split_invariant(16, input).events.len(), 1);
        let over = assert_split_invariant(15, input);
        assert_eq!(over.result, Err(SseError::EventTooLarge { limit: 15 }));
        assert!(over.events.is_empty());
    }

    #[test]
    fn limit_applies_per_event_not_per_stream() {
        let out = parse(b"data: 123456\n\n".repeat(100).as_slice());
        assert_eq!(out.events.len(), 100);
        assert_eq!(
            run(14, &[&b"data: 123456\n\n".repeat(100)]).events.len(),
            100
        );
    }

    #[test]
    fn unterminated_line_over_limit_is_rejected_before_it_ends() {
        let mut parser = SseParser::new(100);
        let mut events = Vec::new();
        parser.feed(b"data: ", &mut events).unwrap();
        let err = parser.feed(&[b'x'; 95], &mut events).unwrap_err();
        assert_eq!(err, SseError::EventTooLarge { limit: 100 });
        assert_eq!(err.to_string(), "SSE event exceeds 100 bytes");
        assert!(parser.line.len() <= 100);
    }

    #[test]
    fn comments_never_count_toward_the_event_limit() {
        let mut input = b"data: x\n".to_vec();
        input.extend_from_slice(&b":ka\n".repeat(1000));
        input.extend_from_slice(b"data: y\n\n");
        let out = assert_split_invariant(20, &input);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.events, vec![message("x\ny")]);
    }

    #[test]
    fn error_is_sticky_until_reset_stream() {
        let mut parser = SseParser::new(LIMIT);
        let mut events = Vec::new();
        parser.feed(b"data: a\n\nid: 9\n\n", &mut events).unwrap();
        parser.feed(b"retry: 250\n\n", &mut events).unwrap();
        let too_large = Err(SseError::EventTooLarge { limit: LIMIT });
        let mut big = b"data: ".to_vec();
        big.resize(LIMIT + 1, b'x');
        assert_eq!(parser.feed(&big, &mut events), too_large);
        assert_eq!(parser.feed(b"data: b\n\n", &mut events), too_large);
        parser.reset_stream();
        parser.feed(b"data: c\n\n", &mut events).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].data, "c");
        assert_eq!(events[1].id.as_deref(), Some("9"));
        assert_eq!(parser.retry(), Some(Duration::from_millis(250)));
    }

    #[test]
    fn reset_stream_drops_partial_event_and_keeps_last_event_id() {
        let mut parser = SseParser::new(LIMIT);
        let mut events = Vec::new();
        parser
            .feed(b"id: 1\n\nid: 2\nevent: x\ndata: half\r", &mut events)
            .unwrap();
        parser.reset_stream();
        assert_eq!(parser.last_event_id(), Some("1"));
        parser.feed(b"\ndata: fresh\n\n", &mut events).unwrap();
        assert_eq!(
            events,
            vec![SseEvent {
                event: "message".into(),
                data: "fresh".to_owned(),
                id: Some("1".to_owned()),
            }]
        );
    }

    /// Deterministic xorshift64 generator for the robustness tests.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Feeds `input` in random pieces; only checks that the parser returns.
    fn feed_randomly(rng: &mut XorShift, input: &[u8]) {
        let mut parser = SseParser::new(64 + rng.below(512));
        let mut events = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(1 + rng.below(rest.len()));
            let _ = parser.feed(piece, &mut events);
            rest = tail;
        }
        if rng.below(4) == 0 {
            parser.reset_stream();
            let _ = parser.feed(input, &mut events);
        }
        for event in &events {
            assert!(event.data.len() <= input.len());
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alphabet = b"data:event:id:retry: \r\n\n:0123\xEF\xBB\xBF\xFF\0";
        for _ in 0..10_000 {
            let len = rng.below(200);
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.below(2) == 0 {
                        alphabet[rng.below(alphabet.len())]
                    } else {
                        rng.next() as u8
                    }
                })
                .collect();
            feed_randomly(&mut rng, &input);
        }
    }

    #[test]
    fn mutated_captures_never_panic() {
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        let captures = [POST_REPLY.to_vec(), get_stream()];
        for case in 0..10_000 {
            let mut input = captures[case % 2].clone();
            for _ in 0..1 + rng.below(8) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len());
                match rng.below(4) {
                    0 => input[at] = rng.next() as u8,
                    1 => input.insert(at, b"\r\n:"[rng.below(3)]),
                    2 => {
                        input.remove(at);
                    }
                    _ => input.truncate(at + 1),
                }
            }
            feed_randomly(&mut rng, &input);
        }
    }
}
