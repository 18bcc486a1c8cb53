//! Durations as written in the configuration: `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"30d"`,
//! combinations such as `"1m30s"`, or a bare number of seconds.

use std::fmt;
use std::time::Duration;

/// A duration string that could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurationError {
    Empty,
    MissingNumber(String),
    UnknownUnit(String),
    OutOfRange,
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurationError::Empty => f.write_str("empty duration (write e.g. \"30s\")"),
            DurationError::MissingNumber(s) => write!(
                f,
                "cannot read duration {} (write a number with a unit: ms, s, m, h, d, e.g. \"30s\")",
                super::error::quote(s)
            ),
            DurationError::UnknownUnit(unit) => write!(
                f,
                "unknown duration unit {} (expected ms, s, m, h or d)",
                super::error::quote(unit)
            ),
            DurationError::OutOfRange => f.write_str("duration is too large"),
        }
    }
}

impl std::error::Error for DurationError {}

/// Parses `"500ms"`, `"10s"`, `"5m"`, `"1h"`, `"1m30s"`, `"1.5s"` or `"30"` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    if let Ok(seconds) = parse_number(text) {
        return seconds_to_duration(seconds);
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return Err(DurationError::MissingNumber(text.to_string()));
        }
        let number = parse_number(&rest[..number_len])
            .map_err(|_| DurationError::MissingNumber(text.to_string()))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => return Err(DurationError::MissingNumber(text.to_string())),
            other => return Err(DurationError::UnknownUnit(other.to_string())),
        };
        rest = &rest[unit_len..];
        total += number * scale;
    }
    seconds_to_duration(total)
}

/// Reads a non-negative decimal such as `10` or `1.5`; no signs, exponents or `inf`.
fn parse_number(text: &str) -> Result<f64, ()> {
    let plain = !text.is_empty()
        && text.len() <= 20
        && text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && text.bytes().filter(|&b| b == b'.').count() <= 1
        && text != ".";
    if !plain {
        return Err(());
    }
    text.parse::<f64>().map_err(|_| ())
}

/// Converts seconds to a `Duration`, refusing negatives, NaN and overflow instead of panicking.
pub fn seconds_to_duration(seconds: f64) -> Result<Duration, DurationError> {
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(DurationError::OutOfRange);
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| DurationError::OutOfRange)
}

/// Writes a duration in the largest unit that represents it exactly: `500ms`, `30s`, `5m`, `1h`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if duration.subsec_nanos() % 1_000_000 != 0 {
        return format!("{}us", duration.as_micros());
    }
    if millis % 1000 != 0 {
        return format!("{millis}ms");
    }
    let seconds = duration.as_secs();
    if seconds != 0 && seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds != 0 && seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn bare_numbers_are_seconds() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
    }

    #[test]
    fn combined_and_fractional_durations_add_up() {
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h0m5s"), Ok(Duration::from_secs(3605)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 2s "), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn malformed_durations_are_refused() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10x"),
            Err(DurationError::UnknownUnit(u)) if u == "x"
        ));
        assert!(matches!(
            parse_duration("s"),
            Err(DurationError::MissingNumber(_))
        ));
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration("1e3s").is_err());
        assert!(parse_duration("inf").is_err());
        assert!(parse_duration("NaN").is_err());
        assert!(parse_duration("1..2s").is_err());
        assert!(parse_duration("10 s").is_err());
    }

    #[test]
    fn huge_durations_are_refused_without_panicking() {
        assert_eq!(
            parse_duration("99999999999999999999h"),
            Err(DurationError::OutOfRange)
        );
        assert!(parse_duration(&"9".repeat(400)).is_err());
        assert_eq!(
            seconds_to_duration(f64::MAX),
            Err(DurationError::OutOfRange)
        );
        assert_eq!(seconds_to_duration(-1.0), Err(DurationError::OutOfRange));
    }

    #[test]
    fn durations_format_in_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_duration(Duration::from_secs(30)), "30s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }
}
