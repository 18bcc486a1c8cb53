//! Minimal HTTP/1.1 for the simulator: read requests with `Content-Length` bodies, write
//! fixed-length, chunked and SSE responses.

use super::transport::Transport;
use std::io;

/// Largest request body accepted; larger ones get 413 like the real server.
pub(crate) const MAX_BODY: usize = 4 * 1024 * 1024;
/// Largest request head (request line plus headers).
pub(crate) const MAX_HEAD: usize = 64 * 1024;
const MAX_HEADERS: usize = 64;
const READ_CHUNK: usize = 4 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    pub method: String,
    /// The request target without its query string.
    pub path: String,
    /// HTTP/1.0 request (no keep-alive unless asked).
    pub http10: bool,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// First value of the header `name` (case-insensitive).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn wants_close(&self) -> bool {
        let conn = self.header("connection").map(|v| v.to_ascii_lowercase());
        match conn.as_deref() {
            Some(v) if v.split(',').any(|t| t.trim() == "close") => true,
            Some(v) if v.split(',').any(|t| t.trim() == "keep-alive") => false,
            _ => self.http10,
        }
    }
}

/// Why no request could be read. `status()` says what to answer before closing.
#[derive(Debug)]
pub(crate) enum WireError {
    Io(io::Error),
    /// The peer closed in the middle of a request.
    Truncated,
    Malformed(&'static str),
    HeadTooLarge,
    BodyTooLarge,
    LengthRequired,
}

impl WireError {
    /// The status to answer with, if the connection can still carry an answer.
    pub(crate) fn status(&self) -> Option<(u16, &'static str)> {
        match self {
            WireError::Io(_) | WireError::Truncated => None,
            WireError::Malformed(why) => Some((400, why)),
            WireError::HeadTooLarge => Some((431, "request head too large")),
            WireError::BodyTooLarge => Some((413, "request body too large")),
            WireError::LengthRequired => Some((411, "chunked request bodies are not supported")),
        }
    }
}

/// Reads consecutive requests from one connection, keeping pipelined leftovers.
#[derive(Default)]
pub(crate) struct RequestReader {
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

#[derive(Debug)]
enum Head {
    Partial,
    Complete {
        len: usize,
        request: Request,
        body_len: usize,
    },
}

impl RequestReader {
    /// The next request, or `None` when the peer closed cleanly between requests.
    pub(crate) fn next_request(&mut self, t: &Transport) -> Result<Option<Request>, WireError> {
        loop {
            match parse_head(&self.buf)? {
                Head::Partial => {
                    if self.buf.len() > MAX_HEAD {
                        return Err(WireError::HeadTooLarge);
                    }
                    if !self.fill(t)? {
                        return if self.buf.is_empty() {
                            Ok(None)
                        } else {
                            Err(WireError::Truncated)
                        };
                    }
                }
                Head::Complete {
                    len,
                    mut request,
                    body_len,
                } => {
                    while self.buf.len() < len + body_len {
                        if !self.fill(t)? {
                            return Err(WireError::Truncated);
                        }
                    }
                    request.body = self.buf[len..len + body_len].to_vec();
                    self.buf.drain(..len + body_len);
                    return Ok(Some(request));
                }
            }
        }
    }

    /// Reads more bytes; false at end of stream.
    fn fill(&mut self, t: &Transport) -> Result<bool, WireError> {
        self.scratch.resize(READ_CHUNK, 0);
        loop {
            match t.read(&mut self.scratch) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(WireError::Io(e)),
            }
        }
    }
}

fn parse_head(buf: &[u8]) -> Result<Head, WireError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Partial) => return Ok(Head::Partial),
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => return Err(WireError::HeadTooLarge),
        Err(_) => return Err(WireError::Malformed("malformed request")),
    };
    if len > MAX_HEAD {
        return Err(WireError::HeadTooLarge);
    }
    let method = req.method.unwrap_or_default().to_string();
    let target = req.path.unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_string();
    let http10 = req.version == Some(0);
    let mut out_headers = Vec::with_capacity(req.headers.len());
    let mut body_len = 0usize;
    let mut seen_length: Option<&[u8]> = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(WireError::LengthRequired);
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            if seen_length.is_some_and(|prev| prev != h.value) {
                return Err(WireError::Malformed("conflicting content-length"));
            }
            seen_length = Some(h.value);
            body_len = parse_length(h.value)?;
        }
        let value = String::from_utf8_lossy(h.value).into_owned();
        out_headers.push((h.name.to_string(), value));
    }
    Ok(Head::Complete {
        len,
        request: Request {
            method,
            path,
            http10,
            headers: out_headers,
            body: Vec::new(),
        },
        body_len,
    })
}

fn parse_length(v: &[u8]) -> Result<usize, WireError> {
    let s = std::str::from_utf8(v)
        .map_err(|_| WireError::Malformed("bad content-length"))?
        .trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(WireError::Malformed("bad content-length"));
    }
    if s.len() > 12 {
        return Err(WireError::BodyTooLarge);
    }
    let n: usize = s
        .parse()
        .map_err(|_| WireError::Malformed("bad content-length"))?;
    if n > MAX_BODY {
        return Err(WireError::BodyTooLarge);
    }
    Ok(n)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        409 => "Conflict",
        411 => "Length Required",
        413 => "Content Too Large",
        431 => "Request Header Fields Too Large",
        _ => "Unknown",
    }
}

/// A complete response head ending in the blank line.
pub(crate) fn head(status: u16, headers: &[(&str, &str)], close: bool) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status)).into_bytes();
    for (n, v) in headers {
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A response with a `Content-Length` body (none at all for 204).
pub(crate) fn fixed(
    status: u16,
    headers: &[(&str, &str)],
    content_type: &str,
    body: &[u8],
    close: bool,
) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if status != 204 {
        if !body.is_empty() {
            all.push(("Content-Type", content_type));
        }
        all.push(("Content-Length", &len));
    }
    let mut out = head(status, &all, close);
    if status != 204 {
        out.extend_from_slice(body);
    }
    out
}

/// A plain-text error reply, the way Go's `http.Error` writes one.
pub(crate) fn text(status: u16, msg: &str, close: bool) -> Vec<u8> {
    let body = format!("{msg}\n");
    fixed(
        status,
        &[("X-Content-Type-Options", "nosniff")],
        "text/plain; charset=utf-8",
        body.as_bytes(),
        close,
    )
}

/// One chunk of a chunked body.
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One SSE event carrying `json` as its data (JSON never contains a raw newline).
pub(crate) fn sse_event(event: Option<&str>, json: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 32);
    if let Some(e) = event {
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(e.as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (usize, Request, usize) {
        match parse_head(buf).unwrap() {
            Head::Complete {
                len,
                request,
                body_len,
            } => (len, request, body_len),
            Head::Partial => panic!("partial"),
        }
    }

    #[test]
    fn head_parses_method_path_and_length() {
        let (len, r, body) =
            complete(b"POST /mcp?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n{}");
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/mcp");
        assert_eq!(body, 12);
        assert_eq!(len, 55);
        assert_eq!(r.header("HOST"), Some("a"));
        assert!(!r.wants_close());
    }

    #[test]
    fn incomplete_head_is_partial() {
        assert!(matches!(
            parse_head(b"GET /mcp HTTP/1.1\r\nHost"),
            Ok(Head::Partial)
        ));
    }

    #[test]
    fn body_over_four_mib_is_refused() {
        let r = parse_head(b"POST /mcp HTTP/1.1\r\nContent-Length: 4194305\r\n\r\n");
        assert!(matches!(r, Err(WireError::BodyTooLarge)));
        let huge =
            parse_head(b"POST /mcp HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n");
        assert!(matches!(huge, Err(WireError::BodyTooLarge)));
    }

    #[test]
    fn chunked_request_bodies_are_refused() {
        let r = parse_head(b"POST /mcp HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert_eq!(r.unwrap_err().status().map(|s| s.0), Some(411));
    }

    #[test]
    fn conflicting_lengths_are_malformed() {
        let r = parse_head(b"POST /mcp HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
        assert_eq!(r.unwrap_err().status().map(|s| s.0), Some(400));
    }

    #[test]
    fn http10_closes_unless_keep_alive() {
        let (_, r, _) = complete(b"GET /mcp HTTP/1.0\r\n\r\n");
        assert!(r.wants_close());
        let (_, r, _) = complete(b"GET /mcp HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        assert!(!r.wants_close());
        let (_, r, _) = complete(b"GET /mcp HTTP/1.1\r\nConnection: Close\r\n\r\n");
        assert!(r.wants_close());
    }

    #[test]
    fn no_content_has_no_length_or_body() {
        let out = fixed(204, &[], "text/plain", b"ignored", false);
        assert_eq!(out, b"HTTP/1.1 204 No Content\r\n\r\n");
    }

    #[test]
    fn chunks_are_hex_sized() {
        assert_eq!(
            chunk(&[b'x'; 26]),
            [b"1a\r\n".as_slice(), &[b'x'; 26], b"\r\n"].concat()
        );
    }

    #[test]
    fn sse_event_ends_with_blank_line() {
        assert_eq!(
            sse_event(Some("message"), "{}"),
            b"event: message\ndata: {}\n\n"
        );
        assert_eq!(sse_event(None, "1"), b"data: 1\n\n");
    }
}
