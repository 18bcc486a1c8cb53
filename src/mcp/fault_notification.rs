//! The one message a live stream carries over and over, a `kubernetes/faults` log
//! notification, read in one pass into a [`FaultView`] whose strings are slices of the
//! message text: nothing is copied unless the JSON escaped it, and string ends are found
//! sixteen bytes at a time.
//!
//! The reader is strict JSON (RFC 8259) and knows only this one shape. Whatever it does not
//! fully understand gives `None`: another method or logger, an `id`, a field given twice, a
//! `null` where the general decoder wants a string, a surrogate escape, a member name with
//! an escape, nesting deeper than [`MAX_DEPTH`], bytes after the message. The session's general path, serde_json, then
//! judges the message, so a view is only ever what that path would have decoded.

use std::borrow::Cow;

use crate::events::{FaultView, ResourceView};

/// Nesting the reader follows inside fields it skips; deeper messages go the general way.
const MAX_DEPTH: usize = 64;

/// The fault of a `notifications/message` notification from the `kubernetes/faults`
/// logger; `None` for any other message and for one the general path must judge.
pub fn read(text: &str) -> Option<FaultView<'_>> {
    let mut fault = FaultView::default();
    read_into(text, &mut fault).then_some(fault)
}

/// [`read`] into `fault` (a fresh [`FaultView::default`]), which is then not moved: true when
/// `text` is such a notification. After false, `fault` holds nothing of meaning.
pub fn read_into<'t>(text: &'t str, fault: &mut FaultView<'t>) -> bool {
    let mut reader = Reader {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let Some(envelope) = reader.message(fault) else {
        return false;
    };
    reader.skip_whitespace();
    reader.pos == reader.bytes.len()
        && envelope.data
        && envelope.method.as_deref() == Some("notifications/message")
        && envelope.logger.as_deref() == Some("kubernetes/faults")
}

/// What the envelope holds of interest; the fault itself is read into place.
#[derive(Default)]
struct Envelope<'a> {
    method: Option<Cow<'a, str>>,
    logger: Option<Cow<'a, str>>,
    data: bool,
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Marks a field as seen; `None` when it was seen before (serde refuses duplicate fields).
fn first_time(seen: &mut u16, bit: u16) -> Option<()> {
    let first = *seen & bit == 0;
    *seen |= bit;
    first.then_some(())
}

impl<'a> Reader<'a> {
    /// `{"jsonrpc":…, "method":…, "params":{…}}` with an absent or null `id`; the `data`
    /// of `params` is read into `fault`.
    fn message(&mut self, fault: &mut FaultView<'a>) -> Option<Envelope<'a>> {
        let mut envelope = Envelope::default();
        let mut seen = 0u16;
        self.object(|r, key| match key {
            b"id" => {
                first_time(&mut seen, 1)?;
                // A request named like a notification is answered, not taken as a fault.
                r.literal(b"null")
            }
            b"method" => {
                first_time(&mut seen, 2)?;
                envelope.method = Some(r.string()?);
                Some(())
            }
            b"params" => {
                first_time(&mut seen, 4)?;
                r.object(|r, key| match key {
                    b"logger" => {
                        first_time(&mut seen, 8)?;
                        envelope.logger = r.optional_string()?;
                        Some(())
                    }
                    b"data" => {
                        first_time(&mut seen, 16)?;
                        envelope.data = true;
                        r.fault(fault)
                    }
                    _ => r.skip_member(1),
                })
            }
            _ => r.skip_member(0),
        })?;
        Some(envelope)
    }

    /// The `data` object: the fork's `ResourceFaultNotification`.
    fn fault(&mut self, fault: &mut FaultView<'a>) -> Option<()> {
        let mut seen = 0u16;
        self.object(|r, key| {
            match key {
                b"subscriptionId" => {
                    first_time(&mut seen, 1)?;
                    fault.subscription_id = r.optional_string()?;
                }
                b"cluster" => {
                    first_time(&mut seen, 2)?;
                    fault.cluster = r.optional_string()?;
                }
                b"faultId" => {
                    first_time(&mut seen, 4)?;
                    fault.fault_id = r.string()?;
                }
                b"faultType" => {
                    first_time(&mut seen, 8)?;
                    fault.fault_type = r.string()?;
                }
                b"severity" => {
                    first_time(&mut seen, 16)?;
                    fault.severity = r.string()?;
                }
                b"resource" => {
                    first_time(&mut seen, 32)?;
                    r.resource(&mut fault.resource)?;
                }
                b"context" => {
                    first_time(&mut seen, 64)?;
                    fault.context = r.optional_string()?;
                }
                b"timestamp" => {
                    first_time(&mut seen, 128)?;
                    fault.timestamp = r.optional_string()?;
                }
                b"faultIdDerived" => {
                    first_time(&mut seen, 256)?;
                    fault.fault_id_derived = r.boolean()?;
                }
                _ => r.skip_member(2)?,
            }
            Some(())
        })
    }

    fn resource(&mut self, resource: &mut ResourceView<'a>) -> Option<()> {
        let mut seen = 0u16;
        self.object(|r, key| {
            match key {
                b"apiVersion" => {
                    first_time(&mut seen, 1)?;
                    resource.api_version = r.optional_string()?;
                }
                b"kind" => {
                    first_time(&mut seen, 2)?;
                    resource.kind = r.string()?;
                }
                b"name" => {
                    first_time(&mut seen, 4)?;
                    resource.name = r.string()?;
                }
                b"namespace" => {
                    first_time(&mut seen, 8)?;
                    resource.namespace = r.optional_string()?;
                }
                b"uid" => {
                    first_time(&mut seen, 16)?;
                    resource.uid = r.optional_string()?;
                }
                _ => r.skip_member(3)?,
            }
            Some(())
        })
    }

    /// An object, each member's value read by `member` (called with the reader just after
    /// the member's `:`).
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.pos += 1;
            return Some(());
        }
        loop {
            let key = self.key()?;
            self.expect(b':')?;
            member(self, key)?;
            match self.peek()? {
                b',' => self.pos += 1,
                b'}' => {
                    self.pos += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// The value of a member not looked for: mostly a string (`jsonrpc`, `level`), passed
    /// over here without the call into the general [`Reader::skip_value`].
    #[inline(always)]
    fn skip_member(&mut self, depth: usize) -> Option<()> {
        if self.bytes.get(self.pos) == Some(&b'"') {
            return self.skip_string();
        }
        self.skip_value(depth)
    }

    /// Any value, checked and passed over; `depth` is the nesting of its container.
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.skip_string(),
            b'{' if depth < MAX_DEPTH => self.object(|r, _| r.skip_value(depth + 1)),
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                if self.peek()? == b']' {
                    self.pos += 1;
                    return Some(());
                }
                loop {
                    self.skip_value(depth + 1)?;
                    match self.peek()? {
                        b',' => self.pos += 1,
                        b']' => {
                            self.pos += 1;
                            return Some(());
                        }
                        _ => return None,
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn boolean(&mut self) -> Option<bool> {
        match self.peek()? {
            b't' => self.literal(b"true").map(|()| true),
            b'f' => self.literal(b"false").map(|()| false),
            _ => None,
        }
    }

    /// A string or `null` (serde's `Option<String>`).
    #[inline(always)]
    fn optional_string(&mut self) -> Option<Option<Cow<'a, str>>> {
        if self.peek()? == b'n' {
            self.literal(b"null")?;
            return Some(None);
        }
        self.string().map(Some)
    }

    /// A member name, as the bytes between its quotes. The names this reader looks for
    /// are plain ASCII; a name with an escape is left to the general decoder.
    #[inline(always)]
    fn key(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.plain_run()?;
        (self.bytes[end] == b'"').then_some(())?;
        self.pos = end + 1;
        Some(&self.bytes[start..end])
    }

    /// A string value that is not kept: checked, not copied.
    fn skip_string(&mut self) -> Option<()> {
        self.expect(b'"')?;
        let end = self.plain_run()?;
        if self.bytes[end] == b'"' {
            self.pos = end + 1;
            return Some(());
        }
        let start = self.pos;
        self.escaped(start, end).map(drop)
    }

    /// A string: a slice of the text when it has no escapes, else decoded.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        self.expect(b'"')?;
        let start = self.pos;
        let end = self.plain_run()?;
        if self.bytes[end] == b'"' {
            self.pos = end + 1;
            debug_assert!(self.text.is_char_boundary(start) && self.text.is_char_boundary(end));
            // SAFETY: `start` is just after the opening '"' and `end` is at the closing one,
            // with start <= end < len. '"' is ASCII, so in UTF-8 text both are character
            // boundaries. (The checked slice is a call per string, a sixth of its cost.)
            let plain = unsafe { self.text.get_unchecked(start..end) };
            return Some(Cow::Borrowed(plain));
        }
        self.escaped(start, end)
    }

    /// The rest of a string whose first escape is at `end`, decoded.
    #[cold]
    #[inline(never)]
    fn escaped(&mut self, start: usize, end: usize) -> Option<Cow<'a, str>> {
        let mut decoded = String::with_capacity(end - start + 16);
        decoded.push_str(&self.text[start..end]);
        self.pos = end;
        loop {
            // At a backslash.
            let escape = *self.bytes.get(self.pos + 1)?;
            self.pos += 2;
            decoded.push(match escape {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\u{8}',
                b'f' => '\u{c}',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => self.unicode_escape()?,
                _ => return None,
            });
            let run = self.pos;
            let end = self.plain_run()?;
            decoded.push_str(&self.text[run..end]);
            self.pos = end;
            if self.bytes[end] == b'"' {
                self.pos += 1;
                return Some(Cow::Owned(decoded));
            }
        }
    }

    /// From `pos`, the offset of the next `"` or `\`; `None` when the text ends first or a
    /// control character (not allowed raw in a JSON string) comes before it.
    #[inline(always)]
    fn plain_run(&self) -> Option<usize> {
        let end = self.pos + special_byte(&self.bytes[self.pos..])?;
        (self.bytes[end] >= 0x20).then_some(end)
    }

    /// The four hex digits after `\u`: a character outside the surrogate range (a surrogate
    /// pair is left to the general decoder).
    fn unicode_escape(&mut self) -> Option<char> {
        let digits = self.bytes.get(self.pos..self.pos + 4)?;
        let mut code = 0u32;
        for &d in digits {
            code = code * 16 + char::from(d).to_digit(16)?;
        }
        self.pos += 4;
        char::from_u32(code)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    fn number(&mut self) -> Option<()> {
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        match self.bytes.get(self.pos)? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            self.some_digits()?;
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn some_digits(&mut self) -> Option<()> {
        let start = self.pos;
        self.digits();
        (self.pos > start).then_some(())
    }

    fn digits(&mut self) {
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            self.pos += 1;
        }
    }

    #[inline(always)]
    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.skip_whitespace();
        let found = self.bytes.get(self.pos..self.pos + word.len())? == word;
        self.pos += word.len();
        found.then_some(())
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Option<()> {
        (self.peek()? == byte).then(|| self.pos += 1)
    }

    /// The next byte after whitespace, not consumed.
    #[inline(always)]
    fn peek(&mut self) -> Option<u8> {
        match self.bytes.get(self.pos) {
            // Servers write compact JSON: no whitespace to skip is the common case.
            Some(&b) if b > b' ' => Some(b),
            _ => {
                self.skip_whitespace();
                self.bytes.get(self.pos).copied()
            }
        }
    }

    #[inline(always)]
    fn skip_whitespace(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }
}

/// The offset of the first byte that ends a plain run of string text: `"`, `\\` or a
/// control character. Sixteen bytes at a time with SSE2 (part of every x86-64 CPU; the
/// strings of a fault are mostly short, where a longer vector costs more to set up than it
/// saves), the tail byte by byte.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn special_byte(bytes: &[u8]) -> Option<usize> {
    let mut offset = 0;
    while let Some(chunk) = bytes.get(offset..offset + 16) {
        let mut lanes = [0u8; 16];
        lanes.copy_from_slice(chunk);
        // SAFETY: SSE2 is part of every x86-64 target, so the CPU has it.
        let found = unsafe { special_lanes(lanes) };
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize);
        }
        offset += 16;
    }
    bytes[offset..]
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| offset + at)
}

/// One bit per lane of `lanes` that holds `"`, `\\` or a control character.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
fn special_lanes(lanes: [u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8, _mm_set_epi64x,
        _mm_setzero_si128, _mm_subs_epu8,
    };
    let (low, high) = lanes.split_at(8);
    let word = |half: &[u8]| {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(half);
        i64::from_le_bytes(bytes)
    };
    let v = _mm_set_epi64x(word(high), word(low));
    let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
    let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
    // Saturating `byte - 0x1f` is zero exactly for the bytes below 0x20.
    let control = _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x1f)), _mm_setzero_si128());
    _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control)) as u32
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn special_byte(bytes: &[u8]) -> Option<usize> {
    special_byte_by_words(bytes)
}

/// [`special_byte`] on any CPU: eight bytes at a time in a `u64`.
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
#[inline(always)]
fn special_byte_by_words(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    /// High bit set in each byte lane below `n` (n ≤ 128); the lowest flagged lane is exact.
    #[inline(always)]
    fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * u64::from(n)) & !word & HIGH
    }
    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in chunks.by_ref() {
        let mut lanes = [0u8; 8];
        lanes.copy_from_slice(chunk);
        let word = u64::from_le_bytes(lanes);
        let found = below(word, 0x20)
            | below(word ^ (ONES * u64::from(b'"')), 1)
            | below(word ^ (ONES * u64::from(b'\\')), 1);
        if found != 0 {
            return Some(offset + found.trailing_zeros() as usize / 8);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| offset + at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::FaultEvent;
    use serde::Deserialize;
    use serde_json::value::RawValue;

    /// The reference: serde_json decoding the same shape (what the one-pass path was before
    /// this reader, itself tested equal to the session's general path).
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow, default)]
        id: Option<&'a RawValue>,
        #[serde(borrow)]
        method: Cow<'a, str>,
        #[serde(borrow)]
        params: Params<'a>,
    }

    #[derive(Deserialize)]
    struct Params<'a> {
        #[serde(borrow, default)]
        logger: Option<Cow<'a, str>>,
        data: FaultEvent,
    }

    fn reference(text: &str) -> Option<FaultEvent> {
        let message: Envelope = serde_json::from_str(text).ok()?;
        (message.id.is_none_or(|id| id.get() == "null")
            && message.method == "notifications/message"
            && message.params.logger.as_deref() == Some("kubernetes/faults"))
        .then(|| FaultEvent::from_deserialized(message.params.data))
    }

    /// Whenever the reader gives a fault, the reference gives the same one.
    fn agrees(text: &str) -> bool {
        match read(text) {
            Some(view) => reference(text) == Some(view.to_event()),
            None => true,
        }
    }

    fn notification(data: &str) -> String {
        format!(
            r#"{{"jsonrpc":"2.0","method":"notifications/message","params":{{"data":{data},"level":"warning","logger":"kubernetes/faults"}}}}"#
        )
    }

    const DATA: &str = r#"{"subscriptionId":"sub-1","cluster":"c","faultId":"00000000000000aa","faultType":"CrashLoop","severity":"critical","resource":{"apiVersion":"v1","kind":"Pod","name":"p","namespace":"shop","uid":"u"},"context":"Back-off restarting failed container","timestamp":"2026-11-20T10:00:00Z"}"#;

    #[test]
    fn the_end_of_a_plain_run_is_found_in_every_lane() {
        for len in 0..40 {
            for at in 0..len {
                for special in [b'"', b'\\', 0x00, 0x1f] {
                    let mut bytes = vec![b'a'; len];
                    // Bytes just around the special ones must not be taken for them.
                    for (i, b) in bytes.iter_mut().enumerate() {
                        *b = [b'a', 0x20, 0x21, 0x5b, 0x5d, 0x7f, 0x80, 0xff][i % 8];
                    }
                    bytes[at] = special;
                    assert_eq!(special_byte(&bytes), Some(at), "{len} {at} {special}");
                    assert_eq!(special_byte_by_words(&bytes), Some(at), "{len} {at}");
                }
            }
            assert_eq!(special_byte(&vec![0x20; len]), None);
            assert_eq!(special_byte_by_words(&vec![0x20; len]), None);
        }
    }

    #[test]
    fn reads_the_fault_with_its_strings_borrowed_from_the_text() {
        let text = notification(DATA);
        let view = read(&text).expect("a fault");
        assert!(matches!(view.fault_id, Cow::Borrowed("00000000000000aa")));
        assert!(matches!(view.context, Some(Cow::Borrowed(_))));
        assert_eq!(view.resource.namespace.as_deref(), Some("shop"));
        assert_eq!(view.key(), Some("00000000000000aa"));
        assert_eq!(Some(view.to_event()), reference(&text));
    }

    #[test]
    fn shapes_the_general_decoder_accepts_read_the_same() {
        let texts = [
            notification(DATA),
            // Escapes of every kind, a BMP character, extra fields of every JSON type.
            notification(
                r#"{"faultId":"id-1","faultType":"Crash\"Loop\\","severity":"warning","context":"a\nb\tc\/d\b\f\r \u00e9\u20ac \u0041","resource":{"kind":"Pod","name":"p\u0000q","extra":[1,-2.5e+3,0.1E-2,true,false,null,{"a":[[]]},""]},"extra":{"nested":{"x":-0}}}"#,
            ),
            // Optional fields null, the fork's own marker, whitespace everywhere.
            " { \"params\" :\r\n{ \"logger\" : \"kubernetes/faults\" , \"data\" : { \"faultId\" : \"x\" , \"cluster\" : null , \"context\" : null , \"faultIdDerived\" : true , \"resource\" : { } } } , \"method\" : \"notifications/message\" , \"id\" : null }\t\n"
                .to_string(),
            // No faultId: the key is derived when the view is made owned.
            notification(r#"{"faultType":"OOM","resource":{"kind":"Pod","name":"p"}}"#),
            // A cluster named "" is no name; long fields are cut.
            notification(&format!(
                r#"{{"faultId":"k","cluster":"","faultType":"{}","context":"{}"}}"#,
                "t".repeat(600),
                "c".repeat(70_000)
            )),
        ];
        for text in &texts {
            let view = read(text).unwrap_or_else(|| panic!("no view of {text}"));
            assert_eq!(Some(view.to_event()), reference(text), "{text}");
        }
        let derived = read(&texts[3]).expect("view");
        assert_eq!(derived.key(), None);
        assert!(derived.to_event().fault_id_derived);
    }

    #[test]
    fn whatever_it_does_not_fully_understand_goes_the_general_way() {
        let cases = [
            // Not a fault notification.
            r#"{"jsonrpc":"2.0","id":4,"method":"notifications/message","params":{"logger":"kubernetes/faults","data":{}}}"#.to_string(),
            r#"{"method":"notifications/other","params":{"logger":"kubernetes/faults","data":{}}}"#.to_string(),
            r#"{"method":"notifications/message","params":{"logger":"kubernetes/events","data":{}}}"#.to_string(),
            r#"{"method":"notifications/message","params":{"data":{}}}"#.to_string(),
            r#"{"method":"notifications/message","params":{"logger":"kubernetes/faults"}}"#.to_string(),
            // Fields given twice, at every level.
            r#"{"method":"notifications/message","method":"notifications/message","params":{"logger":"kubernetes/faults","data":{}}}"#.to_string(),
            notification(r#"{"faultId":"a","faultId":"b"}"#),
            notification(r#"{"resource":{"kind":"Pod","kind":"Node"}}"#),
            // Types the general decoder refuses or reads otherwise.
            notification(r#"{"faultId":null}"#),
            notification(r#"{"faultId":7}"#),
            notification(r#"{"resource":null}"#),
            notification(r#"{"faultIdDerived":null}"#),
            notification(r#"["sub","c","id"]"#),
            notification("null"),
            // Not JSON, or JSON this reader leaves to serde_json.
            notification(r#"{"context":"a\ud83d\ude00b"}"#),
            notification(r#"{"context":"a\qb"}"#),
            notification("{\"context\":\"a\u{1}b\"}"),
            notification(r#"{"x":01}"#),
            notification(r#"{"x":1.}"#),
            notification(r#"{"x":-}"#),
            notification(r#"{"x":1e}"#),
            notification(r#"{"x":tru}"#),
            notification(r#"{"x":[1,]}"#),
            notification(r#"{"x":{"a":1,}}"#),
            notification(r#"{"x":"unterminated}"#),
            notification(&format!(r#"{{"x":{}{}}}"#, "[".repeat(70), "]".repeat(70))),
            format!("{} trailing", notification(DATA)),
            format!("{}}}", notification(DATA)),
            String::new(),
        ];
        for text in &cases {
            assert!(read(text).is_none(), "read {text}");
        }
    }

    /// Random edits of real messages: the reader may decline any of them, but a fault it
    /// gives is always the one serde_json gives.
    #[test]
    fn random_edits_never_give_a_fault_the_reference_does_not() {
        let seeds = [
            notification(DATA),
            notification(
                r#"{"faultId":"id-1","faultType":"Crash\"Loop","severity":"warning","context":"a\nb \u00e9","resource":{"kind":"Pod","name":"p","x":[1,-2.5e+3,true,null,{}]}}"#,
            ),
        ];
        let alphabet = b"{}[]\",:\\/ \t\n0123456789-+.eEtrufalsn\x01\xc3\xa9xu";
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut read_some = 0;
        for round in 0..20_000 {
            let mut bytes = seeds[round % seeds.len()].clone().into_bytes();
            for _ in 0..1 + next() % 3 {
                let at = (next() as usize) % bytes.len();
                match next() % 3 {
                    0 => bytes[at] = alphabet[(next() as usize) % alphabet.len()],
                    1 => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                }
            }
            let Ok(text) = String::from_utf8(bytes) else {
                continue;
            };
            assert!(agrees(&text), "disagree on {text}");
            read_some += usize::from(read(&text).is_some());
        }
        // Most single edits land in a string and keep the message a fault.
        assert!(read_some > 2_000, "only {read_some} edits read");
    }
}
