//! The shape of every log line:
//!
//! ```text
//! [2026-12-01T05:12:42.279Z INFO  nightcrier::pipeline::intake] cluster=prod-1 fault=… queued
//! ```
//!
//! written straight into the logger's buffer: no styles (the line is the same on a terminal
//! and in a file, and nothing has to strip escape sequences afterwards), and every control
//! character of the message escaped (`\n`, `\r`, `\t`, `\u{1b}`), so one record is always
//! exactly one line whatever text it carries. A fault that arrives costs one such line at
//! `info`, so this is on the per-fault path.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{Level, Record};

/// Writes `record` as one line; the `format` of the daemon's `env_logger`.
pub fn write_record(out: &mut impl Write, record: &Record<'_>) -> io::Result<()> {
    write_line(out, SystemTime::now(), record)
}

fn write_line(out: &mut impl Write, now: SystemTime, record: &Record<'_>) -> io::Result<()> {
    let mut head = [0u8; 32];
    let stamp_len = timestamp(now, &mut head);
    head[stamp_len..stamp_len + 7].copy_from_slice(level_column(record.level()));
    out.write_all(&head[..stamp_len + 7])?;
    out.write_all(record.target().as_bytes())?;
    out.write_all(b"] ")?;
    with_message(record, |text| write_escaped(out, text))?;
    out.write_all(b"\n")
}

/// Calls `write` with the record's message, formatted into a reused buffer unless it is a
/// plain string already.
pub(crate) fn with_message<T>(record: &Record<'_>, write: impl FnOnce(&str) -> T) -> T {
    if let Some(text) = record.args().as_str() {
        return write(text);
    }
    MESSAGE.with(|message| {
        let mut message = message.borrow_mut();
        message.clear();
        // Writing to a String only fails when a Display impl does; keep what was written.
        let _ = write!(message, "{}", record.args());
        let result = write(&message);
        if message.capacity() > MAX_KEPT_MESSAGE {
            *message = String::new();
        }
        result
    })
}

thread_local! {
    /// The formatted message of the current record, reused from record to record.
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// A message buffer grown past this by one long record is given back afterwards.
const MAX_KEPT_MESSAGE: usize = 4096;

/// `" INFO  "`: the level padded to five, between the timestamp and the target.
fn level_column(level: Level) -> &'static [u8; 7] {
    match level {
        Level::Error => b" ERROR ",
        Level::Warn => b" WARN  ",
        Level::Info => b" INFO  ",
        Level::Debug => b" DEBUG ",
        Level::Trace => b" TRACE ",
    }
}

/// Writes `text`, each control character as its Rust escape (`\n`, `\u{1b}`).
fn write_escaped(out: &mut impl Write, text: &str) -> io::Result<()> {
    let bytes = text.as_bytes();
    // C1 controls (U+0080..U+009F) are 0xC2 0x80..0x9F in UTF-8: rare, so escaped char by char.
    if memchr::memchr(0xc2, bytes).is_some() && text.chars().any(|c| c.is_control()) {
        let mut escaped = String::with_capacity(text.len() + 16);
        for c in text.chars() {
            if c.is_control() {
                escaped.extend(c.escape_default());
            } else {
                escaped.push(c);
            }
        }
        return out.write_all(escaped.as_bytes());
    }
    if !has_ascii_control(bytes) {
        return out.write_all(bytes);
    }
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != 0x7f {
            continue;
        }
        out.write_all(&bytes[clean_from..i])?;
        let mut escaped = [0u8; 10];
        let mut len = 0;
        for c in char::from(b).escape_default() {
            escaped[len] = c as u8;
            len += 1;
        }
        out.write_all(&escaped[..len])?;
        clean_from = i + 1;
    }
    out.write_all(&bytes[clean_from..])
}

/// Whether `bytes` holds a byte below 0x20 or 0x7F, eight bytes at a time.
fn has_ascii_control(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        // The classic has-zero-byte test: a byte below 0x20 borrows when 0x20 is taken
        // from it while its own high bit is clear; 0x7F is the zero byte of x ^ 0x7F7F….
        let below_space = x.wrapping_sub(ONES * 0x20) & !x;
        let del = x ^ (ONES * 0x7f);
        let is_del = del.wrapping_sub(ONES) & !del;
        if (below_space | is_del) & HIGH != 0 {
            return true;
        }
    }
    chunks.remainder().iter().any(|&b| b < 0x20 || b == 0x7f)
}

/// Writes `[YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) to the start of `buf`; returns its length.
pub(crate) fn timestamp(now: SystemTime, buf: &mut [u8; 32]) -> usize {
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    // Lines come in bursts within one second: the date and time up to the second are
    // formatted once per second.
    LAST_SECOND.with(|last| {
        let (cached, prefix) = &mut *last.borrow_mut();
        if *cached != Some(secs) {
            format_stamp(secs, prefix);
            *cached = Some(secs);
        }
        buf[..STAMP_LEN].copy_from_slice(&prefix[..STAMP_LEN]);
    });
    let mut millis = millis;
    for i in (STAMP_LEN - 4..STAMP_LEN - 1).rev() {
        buf[i] = b'0' + (millis % 10) as u8;
        millis /= 10;
    }
    STAMP_LEN
}

/// `[YYYY-MM-DDTHH:MM:SS.mmmZ`
const STAMP_LEN: usize = 25;

thread_local! {
    /// The second last formatted, and its line prefix.
    static LAST_SECOND: RefCell<(Option<u64>, [u8; 32])> = const { RefCell::new((None, [0; 32])) };
}

/// Formats second `secs` as `[YYYY-MM-DDTHH:MM:SS.000Z` into `buf`.
fn format_stamp(secs: u64, buf: &mut [u8; 32]) {
    let (year, month, day) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    let fields: [(u64, usize); 7] = [
        (year.clamp(0, 9999) as u64, 4),
        (u64::from(month), 2),
        (u64::from(day), 2),
        (rem / 3600, 2),
        (rem / 60 % 60, 2),
        (rem % 60, 2),
        (0, 3),
    ];
    let separators = [b'-', b'-', b'T', b':', b':', b'.', b'Z'];
    buf[0] = b'[';
    let mut at = 1;
    for ((value, width), separator) in fields.into_iter().zip(separators) {
        let mut value = value;
        for i in (0..width).rev() {
            buf[at + i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
        buf[at + width] = separator;
        at += width + 1;
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn line(now: SystemTime, level: Level, target: &str, args: std::fmt::Arguments<'_>) -> String {
        let record = Record::builder()
            .level(level)
            .target(target)
            .args(args)
            .build();
        let mut out = Vec::new();
        write_line(&mut out, now, &record).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_line_has_the_millisecond_utc_timestamp_the_padded_level_and_the_target() {
        // 2026-12-01T05:12:42.279Z
        let now = UNIX_EPOCH + Duration::from_millis(1_796_101_962_279);
        let name = "prod-1";
        assert_eq!(
            line(
                now,
                Level::Info,
                "nightcrier::pipeline::intake",
                format_args!("cluster={name} queued")
            ),
            "[2026-12-01T05:12:42.279Z INFO  nightcrier::pipeline::intake] cluster=prod-1 queued\n"
        );
        assert_eq!(
            line(UNIX_EPOCH, Level::Error, "x", format_args!("static text")),
            "[1970-01-01T00:00:00.000Z ERROR x] static text\n"
        );
    }

    #[test]
    fn leap_days_and_year_ends_are_dated_right() {
        let day = |days: u64| UNIX_EPOCH + Duration::from_secs(days * 86_400 + 86_399);
        // 2024-02-29 is day 19,782; 2023-12-31 is day 19,722.
        assert!(line(day(19_782), Level::Warn, "t", format_args!("m"))
            .starts_with("[2024-02-29T23:59:59.000Z WARN  t] "));
        assert!(line(day(19_722), Level::Warn, "t", format_args!("m"))
            .starts_with("[2023-12-31T23:59:59.000Z WARN  t] "));
    }

    #[test]
    fn control_characters_in_a_message_cannot_start_a_new_line() {
        let wire = "bad\r\n[2026-12-01T00:00:00.000Z ERROR forged] \u{1b}[31mred\u{7f}\u{85}é\t";
        let text = line(
            UNIX_EPOCH,
            Level::Warn,
            "t",
            format_args!("server said {wire}"),
        );
        assert_eq!(
            text,
            "[1970-01-01T00:00:00.000Z WARN  t] server said bad\\r\\n[2026-12-01T00:00:00.000Z ERROR forged] \\u{1b}[31mred\\u{7f}\\u{85}é\\t\n"
        );
        assert_eq!(text.matches('\n').count(), 1);
    }
}
