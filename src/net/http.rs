//! HTTP/1.1 client side: a request writer and an incremental response parser.
//!
//! Sans-I/O: the caller writes request bytes to its socket and feeds received bytes to
//! [`ResponseParser::feed`]. Heads are parsed with `httparse`; bodies are framed by
//! `Content-Length`, chunked transfer coding, or the connection closing. Body bytes are
//! never buffered: they are reported as ranges into the slice just fed, so an endless
//! SSE stream costs no copies here.

use std::fmt;
use std::ops::Range;

/// Writes one request. `Content-Length` is added when `body` is `Some`, also for an empty
/// body. CR and LF bytes in the method, target, host or header fields are dropped so a
/// value taken from elsewhere (a session id, a configured key) cannot inject headers.
pub fn write_request(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) {
    put_field(out, method);
    out.push(b' ');
    put_field(out, target);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    put_field(out, host);
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        put_field(out, name);
        out.extend_from_slice(b": ");
        put_field(out, value);
        out.extend_from_slice(b"\r\n");
    }
    if let Some(body) = body {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if let Some(body) = body {
        out.extend_from_slice(body);
    }
}

fn put_field(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    if !bytes.iter().any(|&b| b == b'\r' || b == b'\n') {
        out.extend_from_slice(bytes);
    } else {
        out.extend(bytes.iter().filter(|&&b| b != b'\r' && b != b'\n'));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    /// Names as received; values decoded lossily (obs-text becomes U+FFFD).
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// The first header with this name, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether the media type of `Content-Type` is `mime`, ignoring parameters and case.
    pub fn content_type_is(&self, mime: &str) -> bool {
        self.header("content-type").is_some_and(|value| {
            let media_type = value.split(';').next().unwrap_or("");
            media_type.trim_matches(is_ows).eq_ignore_ascii_case(mime)
        })
    }

    /// HTTP/1.1 persistence: false when any `Connection` header lists `close`.
    pub fn keep_alive(&self) -> bool {
        !self.has_token("connection", "close")
    }

    fn has_token(&self, header: &str, token: &str) -> bool {
        self.tokens(header).any(|t| t.eq_ignore_ascii_case(token))
    }

    /// The comma-separated tokens of every header with this name, in order.
    fn tokens<'a>(&'a self, header: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(header))
            .flat_map(|(_, v)| v.split(','))
            .map(|t| t.trim_matches(is_ows))
            .filter(|t| !t.is_empty())
    }
}

fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    HeadTooLarge {
        limit: usize,
    },
    Malformed(String),
    BadChunk(String),
    BodyTooLarge {
        limit: usize,
    },
    UnexpectedEof,
    /// A transfer coding other than `chunked` (gzip, deflate…): nightcrier decodes none.
    UnsupportedTransferCoding(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLarge { limit } => {
                write!(f, "HTTP response head exceeds {limit} bytes")
            }
            HttpError::Malformed(why) => write!(f, "malformed HTTP response: {why}"),
            HttpError::BadChunk(why) => write!(f, "bad chunked encoding in HTTP response: {why}"),
            HttpError::BodyTooLarge { limit } => {
                write!(f, "HTTP response body exceeds {limit} bytes")
            }
            HttpError::UnexpectedEof => {
                write!(f, "connection closed in the middle of an HTTP response")
            }
            HttpError::UnsupportedTransferCoding(coding) => write!(
                f,
                "HTTP response uses Transfer-Encoding {}, which nightcrier does not decode (only chunked)",
                crate::logging::excerpt(coding, 64)
            ),
        }
    }
}

impl std::error::Error for HttpError {}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseEvent {
    /// The final (non-1xx) head of a response; emitted once per response.
    Head(ResponseHead),
    /// Decoded body bytes: a range into the `input` of the `feed` call that produced it.
    /// Never empty. Read it before feeding the next slice.
    Body(Range<usize>),
    /// The response is complete. `reusable`: the connection may carry another request.
    End { reusable: bool },
}

/// Headers per response that httparse parses; more is `Malformed`.
const MAX_HEADERS: usize = 64;
/// Bound on one chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkLine {
    Digits,
    /// Whitespace after the size; only more whitespace, `;` or the line end may follow.
    AfterDigits,
    /// Inside chunk extensions, which are ignored.
    Extension,
    /// A CR was seen; LF must follow.
    Cr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for or reading a response head (bytes in `head_buf`).
    Head,
    FixedBody {
        remaining: u64,
    },
    ChunkSize(ChunkSizeLine),
    ChunkData {
        remaining: u64,
    },
    /// CRLF (or a lone LF) that must follow chunk data; `saw_cr` after its CR.
    ChunkDataEnd {
        saw_cr: bool,
    },
    Trailers(TrailerProgress),
    CloseDelimited,
    /// The connection will not carry another response; further input is ignored.
    Closed,
}

/// Progress through one chunk-size line, kept across feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChunkSizeLine {
    size: u64,
    digits: usize,
    line_len: usize,
    phase: ChunkLine,
}

/// Progress through the trailer section, kept across feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TrailerProgress {
    line_len: usize,
    total: usize,
}

/// How the body of the current response is framed.
enum Framing {
    None,
    Length(u64),
    Chunked,
    UntilClose,
}

/// Incremental parser for the responses on one connection.
///
/// Errors are sticky: after an error the connection must be closed, and every further
/// call returns the same error. Events produced before the error in the same call stay
/// in `out`. After `End { reusable: false }` further input is ignored.
#[derive(Debug)]
pub struct ResponseParser {
    max_head_bytes: usize,
    max_body_bytes: Option<usize>,
    state: State,
    head_buf: Vec<u8>,
    /// A 1xx interim head was consumed: a response is in progress though no head is buffered.
    interim_seen: bool,
    /// The next response answers a HEAD request and has no body.
    no_body_next: bool,
    /// The current response may be followed by another on this connection.
    reusable: bool,
    body_seen: u64,
    failed: Option<HttpError>,
}

impl ResponseParser {
    /// `max_body_bytes: None` streams an unbounded body (the SSE GET).
    pub fn new(max_head_bytes: usize, max_body_bytes: Option<usize>) -> Self {
        ResponseParser {
            max_head_bytes,
            max_body_bytes,
            state: State::Head,
            head_buf: Vec::new(),
            interim_seen: false,
            no_body_next: false,
            reusable: false,
            body_seen: 0,
            failed: None,
        }
    }

    /// The next response answers a HEAD request: it has no body whatever its headers say.
    pub fn expect_no_body(&mut self) {
        self.no_body_next = true;
    }

    /// Waiting for the first byte of the next response on a reusable connection.
    pub fn is_idle(&self) -> bool {
        self.failed.is_none()
            && self.state == State::Head
            && self.head_buf.is_empty()
            && !self.interim_seen
    }

    /// Feed bytes as they arrive. Emits `Head` once per response, `Body` ranges into
    /// `input` as they arrive (chunk framing removed), and `End` when it is complete.
    /// Bytes after an `End` in the same input are parsed as the next response.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<ResponseEvent>) -> Result<(), HttpError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = self.feed_states(input, out);
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    /// The peer closed the connection. Completes a close-delimited body; a response cut
    /// short is `UnexpectedEof`; an idle connection yields nothing.
    pub fn on_eof(&mut self, out: &mut Vec<ResponseEvent>) -> Result<(), HttpError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let result = match self.state {
            State::Closed => Ok(()),
            State::Head if self.head_buf.is_empty() && !self.interim_seen => Ok(()),
            State::CloseDelimited => {
                out.push(ResponseEvent::End { reusable: false });
                Ok(())
            }
            _ => Err(HttpError::UnexpectedEof),
        };
        self.state = State::Closed;
        if let Err(err) = &result {
            self.failed = Some(err.clone());
        }
        result
    }

    fn feed_states(&mut self, input: &[u8], out: &mut Vec<ResponseEvent>) -> Result<(), HttpError> {
        let mut pos = 0;
        while pos < input.len() {
            let rest = &input[pos..];
            pos += match self.state {
                State::Head => self.read_head(rest, out)?,
                State::FixedBody { remaining } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    out.push(ResponseEvent::Body(pos..pos + take));
                    let remaining = remaining - take as u64;
                    self.state = State::FixedBody { remaining };
                    if remaining == 0 {
                        self.finish(out);
                    }
                    take
                }
                State::ChunkSize(line) => self.read_chunk_size(rest, line)?,
                State::ChunkData { remaining } => {
                    let take = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
                    out.push(ResponseEvent::Body(pos..pos + take));
                    let remaining = remaining - take as u64;
                    self.state = if remaining == 0 {
                        State::ChunkDataEnd { saw_cr: false }
                    } else {
                        State::ChunkData { remaining }
                    };
                    take
                }
                // The whole CRLF at once, as it nearly always comes.
                State::ChunkDataEnd { saw_cr: false } if rest.starts_with(b"\r\n") => {
                    self.state = chunk_size_start();
                    2
                }
                State::ChunkDataEnd { saw_cr } => {
                    match (saw_cr, rest[0]) {
                        (false, b'\r') => self.state = State::ChunkDataEnd { saw_cr: true },
                        (_, b'\n') => self.state = chunk_size_start(),
                        (_, byte) => {
                            return Err(HttpError::BadChunk(format!(
                                "expected CRLF after chunk data, found byte 0x{byte:02x}"
                            )))
                        }
                    }
                    1
                }
                State::Trailers(progress) => self.read_trailers(rest, progress, out)?,
                State::CloseDelimited => {
                    self.count_body(rest.len() as u64)?;
                    out.push(ResponseEvent::Body(pos..input.len()));
                    rest.len()
                }
                State::Closed => rest.len(),
            };
        }
        Ok(())
    }

    /// Reads head bytes; returns how many of `input` it consumed.
    fn read_head(
        &mut self,
        input: &[u8],
        out: &mut Vec<ResponseEvent>,
    ) -> Result<usize, HttpError> {
        let limit = self.max_head_bytes;
        let (parsed, consumed) = if self.head_buf.is_empty() {
            // Fast path: the whole head usually arrives in one read and is parsed in place.
            let window = &input[..input.len().min(limit)];
            match parse_head(window)? {
                Some(parsed) => {
                    let len = parsed.len;
                    (parsed, len)
                }
                None if window.len() >= limit => return Err(HttpError::HeadTooLarge { limit }),
                None => {
                    self.head_buf.extend_from_slice(input);
                    return Ok(input.len());
                }
            }
        } else {
            let old_len = self.head_buf.len();
            let added = &input[..input.len().min(limit.saturating_sub(old_len))];
            self.head_buf.extend_from_slice(added);
            // A head can only end at an LF, so reparse only when one arrived.
            let parsed = if memchr::memchr(b'\n', added).is_some() {
                parse_head(&self.head_buf)?
            } else {
                None
            };
            match parsed {
                Some(parsed) => {
                    // Earlier parses were partial, so the head ends inside `added`.
                    let consumed = parsed.len.saturating_sub(old_len);
                    self.head_buf.clear();
                    (parsed, consumed)
                }
                None if self.head_buf.len() >= limit => {
                    return Err(HttpError::HeadTooLarge { limit })
                }
                None => return Ok(added.len()),
            }
        };
        self.start_message(parsed, out)?;
        Ok(consumed)
    }

    fn start_message(
        &mut self,
        parsed: ParsedHead,
        out: &mut Vec<ResponseEvent>,
    ) -> Result<(), HttpError> {
        let status = parsed.head.status;
        if status == 101 {
            return Err(HttpError::Malformed(
                "unexpected 101 Switching Protocols".to_owned(),
            ));
        }
        if (100..200).contains(&status) {
            // Interim responses (100 Continue, 103 Early Hints) precede the real one.
            self.interim_seen = true;
            return Ok(());
        }
        self.interim_seen = false;
        let head = parsed.head;
        let persistent = if parsed.http11 {
            head.keep_alive()
        } else {
            head.has_token("connection", "keep-alive") && !head.has_token("connection", "close")
        };
        let no_body = std::mem::take(&mut self.no_body_next) || status == 204 || status == 304;
        let framing = if no_body {
            Framing::None
        } else {
            framing_of(&head)?
        };
        self.reusable = persistent && !matches!(framing, Framing::UntilClose);
        self.body_seen = 0;
        out.push(ResponseEvent::Head(head));
        match framing {
            Framing::None | Framing::Length(0) => self.finish(out),
            Framing::Length(length) => {
                self.count_body(length)?;
                self.state = State::FixedBody { remaining: length };
            }
            Framing::Chunked => self.state = chunk_size_start(),
            Framing::UntilClose => self.state = State::CloseDelimited,
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<ResponseEvent>) {
        out.push(ResponseEvent::End {
            reusable: self.reusable,
        });
        self.state = if self.reusable {
            State::Head
        } else {
            State::Closed
        };
    }

    /// Counts decoded body bytes against `max_body_bytes` before they are delivered.
    fn count_body(&mut self, len: u64) -> Result<(), HttpError> {
        self.body_seen = self.body_seen.saturating_add(len);
        match self.max_body_bytes {
            Some(limit) if self.body_seen > limit as u64 => Err(HttpError::BodyTooLarge { limit }),
            _ => Ok(()),
        }
    }

    fn read_chunk_size(
        &mut self,
        input: &[u8],
        mut line: ChunkSizeLine,
    ) -> Result<usize, HttpError> {
        if line.line_len == 0 {
            // A whole `HEX\r\n` line in this read, as servers write it: no state per byte.
            // Sixteen digits at most, so the size cannot overflow.
            let digits = input
                .iter()
                .take(16)
                .take_while(|b| b.is_ascii_hexdigit())
                .count();
            if digits > 0 && input.get(digits..digits + 2) == Some(b"\r\n") {
                let size = input[..digits]
                    .iter()
                    .fold(0u64, |size, &b| size * 16 + u64::from(hex_value(b)));
                self.chunk_size_read(size)?;
                return Ok(digits + 2);
            }
        }
        for (i, &byte) in input.iter().enumerate() {
            line.line_len += 1;
            if line.line_len > MAX_CHUNK_LINE {
                return Err(HttpError::BadChunk(format!(
                    "chunk size line exceeds {MAX_CHUNK_LINE} bytes"
                )));
            }
            let line_done = match (line.phase, byte) {
                (ChunkLine::Cr, b'\n') => true,
                (ChunkLine::Cr, _) => {
                    return Err(HttpError::BadChunk(
                        "expected LF after CR in chunk size line".to_owned(),
                    ))
                }
                (ChunkLine::Digits, _) if byte.is_ascii_hexdigit() => {
                    let value = u64::from(hex_value(byte));
                    line.size = line
                        .size
                        .checked_mul(16)
                        .and_then(|s| s.checked_add(value))
                        .ok_or_else(|| HttpError::BadChunk("chunk size overflows".to_owned()))?;
                    line.digits += 1;
                    false
                }
                (_, b'\r' | b'\n' | b';' | b' ' | b'\t') if line.digits == 0 => {
                    return Err(HttpError::BadChunk("chunk size has no digits".to_owned()))
                }
                (_, b'\r') => {
                    line.phase = ChunkLine::Cr;
                    false
                }
                (_, b'\n') => true,
                (ChunkLine::Extension, _) => false,
                (_, b';') => {
                    line.phase = ChunkLine::Extension;
                    false
                }
                (_, b' ' | b'\t') => {
                    line.phase = ChunkLine::AfterDigits;
                    false
                }
                (_, byte) => {
                    return Err(HttpError::BadChunk(format!(
                        "invalid byte 0x{byte:02x} in chunk size"
                    )))
                }
            };
            if line_done {
                self.chunk_size_read(line.size)?;
                return Ok(i + 1);
            }
        }
        self.state = State::ChunkSize(line);
        Ok(input.len())
    }

    /// A chunk size line has ended: the chunk's data follows, or the trailers after the
    /// last chunk.
    fn chunk_size_read(&mut self, size: u64) -> Result<(), HttpError> {
        if size == 0 {
            self.state = State::Trailers(TrailerProgress {
                line_len: 0,
                total: 0,
            });
        } else {
            self.count_body(size)?;
            self.state = State::ChunkData { remaining: size };
        }
        Ok(())
    }

    /// Skips the trailer section after the last chunk; an empty line ends the message.
    fn read_trailers(
        &mut self,
        input: &[u8],
        progress: TrailerProgress,
        out: &mut Vec<ResponseEvent>,
    ) -> Result<usize, HttpError> {
        let TrailerProgress {
            mut line_len,
            mut total,
        } = progress;
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            let (line, ends) = match memchr::memchr(b'\n', rest) {
                Some(lf) => (&rest[..lf], true),
                None => (rest, false),
            };
            total += line.len() + usize::from(ends);
            if total > self.max_head_bytes {
                return Err(HttpError::BadChunk(format!(
                    "trailer section exceeds {} bytes",
                    self.max_head_bytes
                )));
            }
            // CR bytes do not count: "\r\n" alone is the empty line that ends the section.
            line_len += line.iter().filter(|&&b| b != b'\r').count();
            if !ends {
                break;
            }
            pos += line.len() + 1;
            if line_len == 0 {
                self.finish(out);
                return Ok(pos);
            }
            line_len = 0;
        }
        self.state = State::Trailers(TrailerProgress { line_len, total });
        Ok(input.len())
    }
}

fn chunk_size_start() -> State {
    State::ChunkSize(ChunkSizeLine {
        size: 0,
        digits: 0,
        line_len: 0,
        phase: ChunkLine::Digits,
    })
}

fn hex_value(byte: u8) -> u8 {
    match byte {
        b'0'..=b'9' => byte - b'0',
        b'a'..=b'f' => byte - b'a' + 10,
        _ => byte - b'A' + 10,
    }
}

struct ParsedHead {
    head: ResponseHead,
    http11: bool,
    len: usize,
}

/// Parses a complete head from the start of `buf`; `None` while it is incomplete.
fn parse_head(buf: &[u8]) -> Result<Option<ParsedHead>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::Malformed(format!(
                "more than {MAX_HEADERS} headers"
            )))
        }
        Err(err) => return Err(HttpError::Malformed(format!("invalid head: {err}"))),
    };
    let head = ResponseHead {
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_owned(),
        headers: response
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).into_owned(),
                )
            })
            .collect(),
    };
    Ok(Some(ParsedHead {
        head,
        http11: response.version == Some(1),
        len,
    }))
}

/// Body framing by RFC 9112 section 6.3: chunked wins over Content-Length; no length at
/// all means the body ends when the connection closes. Any other transfer coding (`gzip,
/// chunked`) is refused: its body would reach the parsers still encoded.
fn framing_of(head: &ResponseHead) -> Result<Framing, HttpError> {
    let mut chunked = false;
    for coding in head
        .tokens("transfer-encoding")
        .filter(|t| !t.eq_ignore_ascii_case("identity"))
    {
        if !coding.eq_ignore_ascii_case("chunked") || chunked {
            return Err(HttpError::UnsupportedTransferCoding(coding.to_owned()));
        }
        chunked = true;
    }
    if chunked {
        return Ok(Framing::Chunked);
    }
    let mut length: Option<u64> = None;
    for (name, value) in &head.headers {
        if !name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        // "5, 5" is allowed: a list of identical values is one length.
        for item in value.split(',').map(|t| t.trim_matches(is_ows)) {
            if item.is_empty() || !item.bytes().all(|b| b.is_ascii_digit()) {
                return Err(HttpError::Malformed(format!(
                    "invalid Content-Length {value:?}"
                )));
            }
            let parsed: u64 = item
                .parse()
                .map_err(|_| HttpError::Malformed(format!("Content-Length {item} is too large")))?;
            if length.is_some_and(|l| l != parsed) {
                return Err(HttpError::Malformed(
                    "conflicting Content-Length values".to_owned(),
                ));
            }
            length = Some(parsed);
        }
    }
    Ok(match length {
        Some(length) => Framing::Length(length),
        None => Framing::UntilClose,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD_LIMIT: usize = 16 * 1024;
    const BODY_LIMIT: Option<usize> = Some(4 << 20);

    const SSE_DATA: &str = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"protocolVersion\":\"2025-06-18\",\"capabilities\":{\"logging\":{},\"tools\":{\"listChanged\":true}},\"serverInfo\":{\"name\":\"kubernetes-mcp-server\",\"version\":\"v0.0.67\"}}}\n\n";

    const FAULT: &str = r#"{"jsonrpc":"2.0","method":"notifications/message","params":{"level":"warning","logger":"kubernetes/faults","data":{"subscriptionId":"sub-1","cluster":"prod-us-east-1","faultId":"9f2c4e1a7b3d5c60","faultType":"CrashLoop","severity":"critical","resource":{"apiVersion":"v1","kind":"Pod","name":"api-7d9f","namespace":"shop","uid":"4f1c2a9e-1111-2222-3333-444455556666"},"context":"Back-off restarting failed container api","timestamp":"2026-11-20T10:00:00Z"}}}"#;

    const JSON_BODY: &str = r#"{"jsonrpc":"2.0","id":3,"result":{}}"#;

    fn chunked(chunks: &[&[u8]], last: bool) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
            out.extend_from_slice(chunk);
            out.extend_from_slice(b"\r\n");
        }
        if last {
            out.extend_from_slice(b"0\r\n\r\n");
        }
        out
    }

    /// The POST reply streamed as text/event-stream.
    fn sse_post_reply() -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream\r\nMcp-Session-Id: 3PDHZNCOF6MYSB6LM6SDGEKKTV\r\nDate: Fri, 20 Nov 2026 10:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        out.extend(chunked(&[SSE_DATA.as_bytes()], true));
        out
    }

    /// The GET stream: `: ok`, then faults, one chunk per flush. `last` ends it (DELETE).
    fn get_stream(last: bool) -> Vec<u8> {
        let mut out = b"HTTP/1.1 200 OK\r\nCache-Control: no-cache\r\nContent-Type: text/event-stream\r\nDate: Fri, 20 Nov 2026 10:00:00 GMT\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        let event = format!("data: {FAULT}\n\n");
        out.extend(chunked(
            &[b": ok\n\n", event.as_bytes(), event.as_bytes()],
            last,
        ));
        out
    }

    const ACCEPTED: &[u8] =
        b"HTTP/1.1 202 Accepted\r\nDate: Fri, 20 Nov 2026 10:00:00 GMT\r\nContent-Length: 0\r\n\r\n";

    const NOT_FOUND: &[u8] = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nDate: Fri, 20 Nov 2026 10:00:00 GMT\r\nContent-Length: 18\r\n\r\nsession not found\n";

    fn json_reply() -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nMcp-Session-Id: 3PDHZNCOF6MYSB6LM6SDGEKKTV\r\nDate: Fri, 20 Nov 2026 10:00:00 GMT\r\nContent-Length: {}\r\n\r\n{JSON_BODY}",
            JSON_BODY.len()
        )
        .into_bytes()
    }

    /// Parser output with body ranges resolved and adjacent body pieces joined.
    #[derive(Debug, Clone, PartialEq)]
    enum Seen {
        Head(ResponseHead),
        Body(Vec<u8>),
        End(bool),
    }

    #[derive(Debug, PartialEq)]
    struct Outcome {
        seen: Vec<Seen>,
        result: Result<(), HttpError>,
        idle: bool,
    }

    fn collect(seen: &mut Vec<Seen>, input: &[u8], events: Vec<ResponseEvent>) {
        for event in events {
            match event {
                ResponseEvent::Head(head) => seen.push(Seen::Head(head)),
                ResponseEvent::Body(range) => {
                    assert!(!range.is_empty(), "empty body range");
                    if let Some(Seen::Body(body)) = seen.last_mut() {
                        body.extend_from_slice(&input[range]);
                    } else {
                        seen.push(Seen::Body(input[range].to_vec()));
                    }
                }
                ResponseEvent::End { reusable } => seen.push(Seen::End(reusable)),
            }
        }
    }

    fn run_with(mut parser: ResponseParser, pieces: &[&[u8]], eof: bool) -> Outcome {
        let mut seen = Vec::new();
        let mut result = Ok(());
        for piece in pieces {
            let mut events = Vec::new();
            result = parser.feed(piece, &mut events);
            collect(&mut seen, piece, events);
            if result.is_err() {
                break;
            }
        }
        if eof && result.is_ok() {
            let mut events = Vec::new();
            result = parser.on_eof(&mut events);
            collect(&mut seen, &[], events);
        }
        Outcome {
            seen,
            result,
            idle: parser.is_idle(),
        }
    }

    fn run(pieces: &[&[u8]]) -> Outcome {
        run_with(ResponseParser::new(HEAD_LIMIT, BODY_LIMIT), pieces, false)
    }

    fn parse(input: &[u8]) -> Outcome {
        run(&[input])
    }

    fn assert_split_invariant(
        head_limit: usize,
        body_limit: Option<usize>,
        input: &[u8],
    ) -> Outcome {
        let make = || ResponseParser::new(head_limit, body_limit);
        let whole = run_with(make(), &[input], false);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(run_with(make(), &[a, b], false), whole, "split at {split}");
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(run_with(make(), &bytes, false), whole, "one byte at a time");
        whole
    }

    fn head_of(outcome: &Outcome) -> &ResponseHead {
        match &outcome.seen[0] {
            Seen::Head(head) => head,
            other => panic!("expected a head, got {other:?}"),
        }
    }

    #[test]
    fn sse_post_reply_capture_is_decoded() {
        let out = parse(&sse_post_reply());
        assert_eq!(out.result, Ok(()));
        let head = head_of(&out);
        assert_eq!(head.status, 200);
        assert_eq!(head.reason, "OK");
        assert!(head.content_type_is("text/event-stream"));
        assert_eq!(
            head.header("mcp-session-id"),
            Some("3PDHZNCOF6MYSB6LM6SDGEKKTV")
        );
        assert_eq!(out.seen[1], Seen::Body(SSE_DATA.as_bytes().to_vec()));
        assert_eq!(out.seen[2], Seen::End(true));
        assert_eq!(out.seen.len(), 3);
        assert!(out.idle);
    }

    #[test]
    fn get_stream_capture_is_decoded_and_ends_at_last_chunk() {
        let out = parse(&get_stream(true));
        let event = format!("data: {FAULT}\n\n");
        let expected = format!(": ok\n\n{event}{event}");
        assert_eq!(out.seen[1], Seen::Body(expected.into_bytes()));
        assert_eq!(out.seen[2], Seen::End(true));
    }

    #[test]
    fn accepted_202_with_empty_body_ends_at_once() {
        let out = parse(ACCEPTED);
        assert_eq!(head_of(&out).status, 202);
        assert_eq!(out.seen[1], Seen::End(true));
        assert_eq!(out.seen.len(), 2);
        assert!(out.idle);
    }

    #[test]
    fn not_found_404_body_is_read_by_content_length() {
        let out = parse(NOT_FOUND);
        assert_eq!(head_of(&out).status, 404);
        assert!(head_of(&out).content_type_is("text/plain"));
        assert_eq!(out.seen[1], Seen::Body(b"session not found\n".to_vec()));
        assert_eq!(out.seen[2], Seen::End(true));
    }

    #[test]
    fn json_reply_body_is_read_by_content_length() {
        let out = parse(&json_reply());
        assert!(head_of(&out).content_type_is("application/json"));
        assert_eq!(out.seen[1], Seen::Body(JSON_BODY.as_bytes().to_vec()));
        assert_eq!(out.seen[2], Seen::End(true));
    }

    #[test]
    fn chunked_body_survives_every_split_point() {
        assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, &sse_post_reply());
        assert_split_invariant(HEAD_LIMIT, None, &get_stream(true));
    }

    #[test]
    fn endless_stream_survives_every_split_point() {
        let out = assert_split_invariant(HEAD_LIMIT, None, &get_stream(false));
        assert_eq!(out.seen.len(), 2);
        assert!(!out.idle);
    }

    #[test]
    fn content_length_bodies_survive_every_split_point() {
        assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, ACCEPTED);
        assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, NOT_FOUND);
        assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, &json_reply());
    }

    #[test]
    fn keep_alive_responses_back_to_back_survive_every_split_point() {
        let mut all = Vec::new();
        all.extend_from_slice(ACCEPTED);
        all.extend(sse_post_reply());
        all.extend_from_slice(NOT_FOUND);
        all.extend(json_reply());
        let out = assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, &all);
        let ends = out
            .seen
            .iter()
            .filter(|s| matches!(s, Seen::End(true)))
            .count();
        assert_eq!(ends, 4);
        assert!(out.idle);
    }

    #[test]
    fn two_responses_back_to_back_in_one_feed_are_both_parsed() {
        let mut both = NOT_FOUND.to_vec();
        both.extend(json_reply());
        let out = parse(&both);
        assert_eq!(out.seen.len(), 6);
        assert_eq!(
            out.seen[3],
            Seen::Head(head_of(&parse(&json_reply())).clone())
        );
        assert_eq!(out.seen[4], Seen::Body(JSON_BODY.as_bytes().to_vec()));
    }

    #[test]
    fn stream_body_is_delivered_before_its_chunk_completes() {
        let stream = get_stream(false);
        let head_end = stream.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        // Head, the ": ok" chunk, then the next chunk's size line and 10 data bytes.
        let ok_chunk = b"6\r\n: ok\n\n\r\n".len();
        let size_line = stream[head_end + ok_chunk..]
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap()
            + 2;
        let cut = head_end + ok_chunk + size_line + 10;
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, None),
            &[&stream[..cut]],
            false,
        );
        assert_eq!(out.seen.len(), 2);
        assert_eq!(out.seen[1], Seen::Body(b": ok\n\ndata: {\"js".to_vec()));
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let mut input =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n".to_vec();
        input.extend_from_slice(NOT_FOUND);
        let out = assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, &input);
        assert_eq!(out.seen.len(), 3);
        assert_eq!(head_of(&out).status, 404);
    }

    #[test]
    fn switching_protocols_is_malformed() {
        let out = parse(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n");
        assert!(matches!(out.result, Err(HttpError::Malformed(_))));
    }

    #[test]
    fn status_204_and_304_have_no_body_whatever_their_headers_say() {
        let mut input = b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".to_vec();
        input.extend_from_slice(b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n");
        input.extend_from_slice(ACCEPTED);
        let out = parse(&input);
        let statuses: Vec<u16> = out
            .seen
            .iter()
            .filter_map(|s| match s {
                Seen::Head(h) => Some(h.status),
                _ => None,
            })
            .collect();
        assert_eq!(statuses, vec![204, 304, 202]);
        assert_eq!(out.seen.len(), 6);
    }

    #[test]
    fn expect_no_body_applies_to_the_next_response_only() {
        let mut parser = ResponseParser::new(HEAD_LIMIT, BODY_LIMIT);
        parser.expect_no_body();
        let mut input = b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n".to_vec();
        input.extend_from_slice(NOT_FOUND);
        let out = run_with(parser, &[&input], false);
        assert_eq!(out.seen.len(), 5);
        assert_eq!(out.seen[1], Seen::End(true));
        assert_eq!(out.seen[3], Seen::Body(b"session not found\n".to_vec()));
    }

    #[test]
    fn close_delimited_body_ends_at_eof_and_is_not_reusable() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
        let out = run_with(ResponseParser::new(HEAD_LIMIT, BODY_LIMIT), &[input], true);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.seen[1], Seen::Body(b"until the end".to_vec()));
        assert_eq!(out.seen[2], Seen::End(false));
        assert!(!out.idle);
    }

    #[test]
    fn connection_close_makes_the_response_not_reusable() {
        let mut input =
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive, Close\r\nContent-Length: 2\r\n\r\nok"
                .to_vec();
        input.extend_from_slice(b"garbage that is no response");
        let out = parse(&input);
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.seen.last(), Some(&Seen::End(false)));
        assert_eq!(out.seen.len(), 3);
        assert!(!out.idle);
    }

    #[test]
    fn http10_response_is_reusable_only_with_keep_alive() {
        let plain = parse(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(plain.seen[1], Seen::End(false));
        let kept = parse(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(kept.seen[1], Seen::End(true));
    }

    #[test]
    fn chunk_extensions_and_trailers_are_skipped() {
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;name=\"v;x\"\r\nabc\r\n2 ; a=b\r\nde\r\nA\r\n0123456789\r\n0;end\r\nX-Trailer: 1\r\nY: 2\r\n\r\n";
        let out = assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, input);
        assert_eq!(out.seen[1], Seen::Body(b"abcde0123456789".to_vec()));
        assert_eq!(out.seen[2], Seen::End(true));
    }

    #[test]
    fn chunk_sizes_read_the_same_whole_or_split() {
        // A whole size line in one read takes a shorter way than one split across reads:
        // hex of either case, leading zeros up to the sixteen digits it takes and beyond.
        let input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0000000000000003\r\nabc\r\n00000000000000000002\r\nde\r\nb\r\nfghijklmnop\r\n0\r\n\r\n";
        let out = assert_split_invariant(HEAD_LIMIT, BODY_LIMIT, input);
        assert_eq!(
            out.seen[1],
            Seen::Body(b"0123456789abcdefghijklmnop".to_vec())
        );
        assert_eq!(out.seen[2], Seen::End(true));
        // The largest size sixteen digits hold is read, then refused by the body bound.
        let max = run_with(
            ResponseParser::new(HEAD_LIMIT, Some(1024)),
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nFFFFFFFFFFFFFFFF\r\n"],
            false,
        );
        assert_eq!(max.result, Err(HttpError::BodyTooLarge { limit: 1024 }));
    }

    #[test]
    fn chunked_wins_over_content_length() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        let out = parse(input);
        assert_eq!(out.seen[1], Seen::Body(b"hi".to_vec()));
        assert_eq!(out.seen[2], Seen::End(true));
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_refused_by_name() {
        for coding in [
            "gzip, chunked",
            "chunked, gzip",
            "deflate",
            "chunked, chunked",
        ] {
            let input = format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: {coding}\r\n\r\nraw");
            let out = run_with(
                ResponseParser::new(HEAD_LIMIT, BODY_LIMIT),
                &[input.as_bytes()],
                true,
            );
            let error = out.result.expect_err(coding);
            assert!(
                matches!(error, HttpError::UnsupportedTransferCoding(_)),
                "{coding}: {error}"
            );
            assert!(error.to_string().contains("Transfer-Encoding"), "{error}");
        }
    }

    #[test]
    fn identical_duplicate_content_lengths_are_one_length() {
        let input = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2, 2\r\n\r\nok";
        assert_eq!(parse(input).seen[2], Seen::End(true));
    }

    #[test]
    fn conflicting_content_lengths_are_malformed() {
        let out = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok");
        assert_eq!(
            out.result,
            Err(HttpError::Malformed(
                "conflicting Content-Length values".to_owned()
            ))
        );
        assert!(out.seen.is_empty());
    }

    #[test]
    fn content_length_must_be_digits() {
        for value in [
            "12abc",
            "-1",
            "+5",
            "",
            "0x10",
            "1 2",
            "99999999999999999999999",
        ] {
            let input = format!("HTTP/1.1 200 OK\r\nContent-Length: {value}\r\n\r\n");
            let out = parse(input.as_bytes());
            assert!(
                matches!(out.result, Err(HttpError::Malformed(_))),
                "{value:?} gave {:?}",
                out.result
            );
        }
    }

    #[test]
    fn content_length_with_trailing_garbage_then_next_response_is_rejected() {
        // The 2-byte body is followed by bytes that are not a status line.
        let out = parse(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE\r\n\r\n");
        assert_eq!(out.seen.len(), 3);
        assert!(matches!(out.result, Err(HttpError::Malformed(_))));
    }

    #[test]
    fn chunk_size_that_is_not_hex_is_a_bad_chunk() {
        let out = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n");
        assert_eq!(
            out.result,
            Err(HttpError::BadChunk(
                "invalid byte 0x7a in chunk size".to_owned()
            ))
        );
        let out = parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\r\n");
        assert_eq!(
            out.result,
            Err(HttpError::BadChunk("chunk size has no digits".to_owned()))
        );
    }

    #[test]
    fn huge_chunk_size_is_a_bad_chunk() {
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, None),
            &[b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"],
            false,
        );
        assert_eq!(
            out.result,
            Err(HttpError::BadChunk("chunk size overflows".to_owned()))
        );
    }

    #[test]
    fn chunk_data_must_be_followed_by_crlf() {
        let out =
            parse(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n0\r\n\r\n");
        assert_eq!(
            out.result,
            Err(HttpError::BadChunk(
                "expected CRLF after chunk data, found byte 0x58".to_owned()
            ))
        );
    }

    #[test]
    fn overlong_chunk_size_line_is_a_bad_chunk() {
        let mut input = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;".to_vec();
        input.resize(input.len() + MAX_CHUNK_LINE, b'x');
        let out = parse(&input);
        assert!(matches!(out.result, Err(HttpError::BadChunk(_))));
    }

    #[test]
    fn head_at_limit_is_accepted_and_one_byte_over_is_rejected() {
        let input = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n";
        let fits = assert_split_invariant(input.len(), BODY_LIMIT, input);
        assert_eq!(fits.seen.len(), 2);
        let over = assert_split_invariant(input.len() - 1, BODY_LIMIT, input);
        assert_eq!(
            over.result,
            Err(HttpError::HeadTooLarge {
                limit: input.len() - 1
            })
        );
    }

    #[test]
    fn endless_head_is_rejected_at_the_limit() {
        let mut parser = ResponseParser::new(1024, BODY_LIMIT);
        let mut events = Vec::new();
        parser.feed(b"HTTP/1.1 200 OK\r\n", &mut events).unwrap();
        let mut result = Ok(());
        for _ in 0..200 {
            result = parser.feed(b"X-Filler: 0123456789\r\n", &mut events);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(HttpError::HeadTooLarge { limit: 1024 }));
        assert!(parser.head_buf.len() <= 1024);
    }

    #[test]
    fn more_than_64_headers_is_malformed() {
        let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..65 {
            input.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        input.extend_from_slice(b"Content-Length: 0\r\n\r\n");
        assert_eq!(
            parse(&input).result,
            Err(HttpError::Malformed("more than 64 headers".to_owned()))
        );
    }

    #[test]
    fn content_length_over_body_limit_is_rejected_before_the_body() {
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, Some(17)),
            &[NOT_FOUND],
            false,
        );
        assert_eq!(out.result, Err(HttpError::BodyTooLarge { limit: 17 }));
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, Some(18)),
            &[NOT_FOUND],
            false,
        );
        assert_eq!(out.result, Ok(()));
    }

    #[test]
    fn chunked_body_over_limit_is_rejected() {
        let limit = Some(SSE_DATA.len() - 1);
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, limit),
            &[&sse_post_reply()],
            false,
        );
        assert_eq!(
            out.result,
            Err(HttpError::BodyTooLarge {
                limit: SSE_DATA.len() - 1
            })
        );
        let input = get_stream(true);
        let out = run_with(ResponseParser::new(HEAD_LIMIT, Some(100)), &[&input], false);
        assert_eq!(out.result, Err(HttpError::BodyTooLarge { limit: 100 }));
    }

    #[test]
    fn close_delimited_body_over_limit_is_rejected() {
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, Some(4)),
            &[b"HTTP/1.1 200 OK\r\n\r\nabc", b"de"],
            true,
        );
        assert_eq!(out.result, Err(HttpError::BodyTooLarge { limit: 4 }));
    }

    #[test]
    fn eof_mid_chunk_is_unexpected() {
        let stream = get_stream(false);
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, None),
            &[&stream[..stream.len() - 5]],
            true,
        );
        assert_eq!(out.result, Err(HttpError::UnexpectedEof));
    }

    #[test]
    fn eof_mid_head_or_mid_content_length_body_is_unexpected() {
        let make = || ResponseParser::new(HEAD_LIMIT, BODY_LIMIT);
        let out = run_with(make(), &[&NOT_FOUND[..20]], true);
        assert_eq!(out.result, Err(HttpError::UnexpectedEof));
        let out = run_with(make(), &[&NOT_FOUND[..NOT_FOUND.len() - 1]], true);
        assert_eq!(out.result, Err(HttpError::UnexpectedEof));
        let out = run_with(make(), &[b"HTTP/1.1 100 Continue\r\n\r\n"], true);
        assert_eq!(out.result, Err(HttpError::UnexpectedEof));
    }

    #[test]
    fn eof_between_responses_is_clean() {
        let out = run_with(
            ResponseParser::new(HEAD_LIMIT, BODY_LIMIT),
            &[NOT_FOUND],
            true,
        );
        assert_eq!(out.result, Ok(()));
        assert_eq!(out.seen.len(), 3);
        let out = run_with(ResponseParser::new(HEAD_LIMIT, BODY_LIMIT), &[], true);
        assert_eq!(out.result, Ok(()));
        assert!(out.seen.is_empty());
    }

    #[test]
    fn errors_are_sticky() {
        let mut parser = ResponseParser::new(HEAD_LIMIT, BODY_LIMIT);
        let mut events = Vec::new();
        let err = parser.feed(b"NOT HTTP\r\n\r\n", &mut events).unwrap_err();
        assert!(matches!(err, HttpError::Malformed(_)));
        assert_eq!(parser.feed(ACCEPTED, &mut events), Err(err.clone()));
        assert_eq!(parser.on_eof(&mut events), Err(err));
        assert!(events.is_empty());
        assert!(!parser.is_idle());
    }

    #[test]
    fn is_idle_only_between_messages() {
        let mut parser = ResponseParser::new(HEAD_LIMIT, BODY_LIMIT);
        let mut events = Vec::new();
        assert!(parser.is_idle());
        parser.feed(&NOT_FOUND[..5], &mut events).unwrap();
        assert!(!parser.is_idle());
        parser
            .feed(&NOT_FOUND[5..NOT_FOUND.len() - 1], &mut events)
            .unwrap();
        assert!(!parser.is_idle());
        parser
            .feed(&NOT_FOUND[NOT_FOUND.len() - 1..], &mut events)
            .unwrap();
        assert!(parser.is_idle());
    }

    #[test]
    fn header_lookup_is_case_insensitive_first_match() {
        let head = head_of(&parse(
            b"HTTP/1.1 200 OK\r\nX-A: 1\r\nx-a: 2\r\nContent-Length: 0\r\n\r\n",
        ))
        .clone();
        assert_eq!(head.header("X-A"), Some("1"));
        assert_eq!(head.header("content-LENGTH"), Some("0"));
        assert_eq!(head.header("missing"), None);
    }

    #[test]
    fn content_type_comparison_ignores_parameters_and_case() {
        let head = |ct: &str| ResponseHead {
            status: 200,
            reason: String::new(),
            headers: vec![("Content-Type".to_owned(), ct.to_owned())],
        };
        assert!(head("text/event-stream; charset=utf-8").content_type_is("text/event-stream"));
        assert!(head("Text/Event-Stream").content_type_is("text/event-stream"));
        assert!(head(" application/json ;charset=utf-8").content_type_is("application/json"));
        assert!(!head("application/json-seq").content_type_is("application/json"));
        assert!(!head("text/plain").content_type_is("text/event-stream"));
    }

    #[test]
    fn keep_alive_reads_connection_token_list() {
        let head = |value: &str| ResponseHead {
            status: 200,
            reason: String::new(),
            headers: vec![("connection".to_owned(), value.to_owned())],
        };
        assert!(head("keep-alive").keep_alive());
        assert!(!head("close").keep_alive());
        assert!(!head("Upgrade, CLOSE").keep_alive());
        assert!(head("closed").keep_alive());
    }

    #[test]
    fn request_with_body_carries_content_length() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "POST",
            "/mcp",
            "127.0.0.1:8080",
            &[
                ("Content-Type", "application/json"),
                ("Mcp-Session-Id", "abc"),
            ],
            Some(b"{}"),
        );
        assert_eq!(
            out,
            b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\nMcp-Session-Id: abc\r\nContent-Length: 2\r\n\r\n{}"
        );
    }

    #[test]
    fn request_without_body_has_no_content_length_and_empty_body_has_zero() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "GET",
            "/mcp",
            "k8s.example",
            &[("Accept", "text/event-stream")],
            None,
        );
        assert_eq!(
            out,
            b"GET /mcp HTTP/1.1\r\nHost: k8s.example\r\nAccept: text/event-stream\r\n\r\n"
        );
        let mut out = Vec::new();
        write_request(&mut out, "DELETE", "/mcp", "h", &[], Some(b""));
        assert_eq!(
            out,
            b"DELETE /mcp HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
        );
    }

    #[test]
    fn request_fields_cannot_inject_headers() {
        let mut out = Vec::new();
        write_request(
            &mut out,
            "GET",
            "/mcp\r\nX: y",
            "h",
            &[("Mcp-Session-Id", "a\r\nEvil: 1")],
            None,
        );
        assert_eq!(
            out,
            b"GET /mcpX: y HTTP/1.1\r\nHost: h\r\nMcp-Session-Id: aEvil: 1\r\n\r\n"
        );
    }

    #[test]
    fn errors_read_well_for_operators() {
        assert_eq!(
            HttpError::HeadTooLarge { limit: 8192 }.to_string(),
            "HTTP response head exceeds 8192 bytes"
        );
        assert_eq!(
            HttpError::UnexpectedEof.to_string(),
            "connection closed in the middle of an HTTP response"
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

    /// Feeds `input` in random pieces, then EOF; checks only that ranges stay in bounds.
    fn feed_randomly(rng: &mut XorShift, input: &[u8]) {
        let body_limit = if rng.below(2) == 0 {
            None
        } else {
            Some(rng.below(2048))
        };
        let mut parser = ResponseParser::new(64 + rng.below(1024), body_limit);
        if rng.below(8) == 0 {
            parser.expect_no_body();
        }
        let mut rest = input;
        while !rest.is_empty() {
            let (piece, tail) = rest.split_at(1 + rng.below(rest.len()));
            let mut events = Vec::new();
            let _ = parser.feed(piece, &mut events);
            for event in events {
                if let ResponseEvent::Body(range) = event {
                    assert!(!range.is_empty() && range.end <= piece.len());
                }
            }
            rest = tail;
        }
        let _ = parser.on_eof(&mut Vec::new());
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        let alphabet =
            b"HTTP/1.1 200 \r\n:Content-Length;Transfer-Encoding chunked0123456789abcdefF";
        for _ in 0..10_000 {
            let mut input = b"HTTP/1.1 200 OK\r\n".to_vec();
            if rng.below(4) == 0 {
                input.clear();
            }
            for _ in 0..rng.below(200) {
                let byte = if rng.below(3) == 0 {
                    rng.next() as u8
                } else {
                    alphabet[rng.below(alphabet.len())]
                };
                input.push(byte);
            }
            feed_randomly(&mut rng, &input);
        }
    }

    #[test]
    fn mutated_captures_never_panic() {
        let mut rng = XorShift(0x0123_4567_89AB_CDEF);
        let captures = [
            sse_post_reply(),
            get_stream(true),
            ACCEPTED.to_vec(),
            NOT_FOUND.to_vec(),
            json_reply(),
        ];
        for case in 0..10_000 {
            let mut input = captures[case % captures.len()].clone();
            for _ in 0..1 + rng.below(6) {
                if input.is_empty() {
                    break;
                }
                let at = rng.below(input.len());
                match rng.below(5) {
                    0 => input[at] = rng.next() as u8,
                    1 => input.insert(at, b"\r\n0f;:"[rng.below(6)]),
                    2 => {
                        input.remove(at);
                    }
                    3 => input.truncate(at + 1),
                    _ => {
                        let copy = input.clone();
                        input.extend_from_slice(&copy);
                    }
                }
            }
            feed_randomly(&mut rng, &input);
        }
    }
}
