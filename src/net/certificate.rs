//! Just enough of an X.509 certificate to explain a refusal to an operator: the issuer and
//! subject names and the validity period, read from the TBSCertificate. webpki does all the
//! checking it can; this reader covers only what webpki does not expose. The bytes come
//! from the peer: every length is checked, nothing panics, names are escaped and capped.

/// Names longer than this (in characters) are cut and end in `…`.
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateSummary {
    /// The issuer's distinguished name, e.g. `CN=cluster CA, O=example`.
    pub issuer: String,
    pub subject: String,
    /// Issuer and subject are the same name (a self-signed certificate, usually).
    pub self_issued: bool,
    /// Seconds since the Unix epoch; dates before 1970 read as 0.
    pub not_before: u64,
    pub not_after: u64,
}

/// Reads the fields of a DER certificate; `None` if it is not one this reader understands.
pub fn summarize(der: &[u8]) -> Option<CertificateSummary> {
    let (certificate, _) = expect(der, SEQUENCE)?;
    let (mut tbs, _) = expect(certificate, SEQUENCE)?;
    let (mut tag, mut value);
    (tag, value, tbs) = next(tbs)?;
    if tag == VERSION {
        (tag, value, tbs) = next(tbs)?;
    }
    let _serial = (tag == INTEGER).then_some(value)?;
    let (_signature, tbs) = expect(tbs, SEQUENCE)?;
    let (issuer, tbs) = expect(tbs, SEQUENCE)?;
    let (validity, tbs) = expect(tbs, SEQUENCE)?;
    let (subject, _) = expect(tbs, SEQUENCE)?;
    let (before_tag, before, rest) = next(validity)?;
    let (after_tag, after, _) = next(rest)?;
    Some(CertificateSummary {
        issuer: name(issuer),
        subject: name(subject),
        self_issued: issuer == subject,
        not_before: time(before_tag, before)?,
        not_after: time(after_tag, after)?,
    })
}

/// `2025-01-01T00:00:00Z`.
pub fn format_time(secs: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    crate::agent::workspace::rfc3339(t)
}

const INTEGER: u8 = 0x02;
const OID: u8 = 0x06;
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const VERSION: u8 = 0xa0;

/// One DER element: its tag, its contents and what follows it. Single-byte tags only (all
/// the fields read here have one); lengths up to 4 bytes; indefinite length refused.
fn next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let bytes = rest.get(..count)?;
        let len = bytes
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, rest.get(count..)?)
    };
    let contents = rest.get(..len)?;
    Some((tag, contents, rest.get(len..)?))
}

fn expect(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (found, contents, rest) = next(input)?;
    (found == tag).then_some((contents, rest))
}

/// A Name (RDNSequence) as `CN=…, O=…` in certificate order; what cannot be read shows
/// as `?`.
fn name(mut rdns: &[u8]) -> String {
    let mut parts = Vec::new();
    // A Name cannot hold more elements than it has bytes; the count bounds the loop.
    for _ in 0..rdns.len() {
        let Some((SET, mut set, rest)) = next(rdns) else {
            break;
        };
        rdns = rest;
        for _ in 0..set.len() {
            let Some((SEQUENCE, pair, rest)) = next(set) else {
                break;
            };
            set = rest;
            parts.push(attribute(pair).unwrap_or_else(|| "?".into()));
        }
    }
    if parts.is_empty() {
        return "(empty name)".into();
    }
    let joined = parts.join(", ");
    if joined.chars().count() > MAX_NAME_CHARS {
        let mut cut: String = joined.chars().take(MAX_NAME_CHARS).collect();
        cut.push('…');
        return cut;
    }
    joined
}

fn attribute(pair: &[u8]) -> Option<String> {
    let (oid, rest) = expect(pair, OID)?;
    let (tag, value, _) = next(rest)?;
    let key = match oid {
        [0x55, 0x04, 0x03] => "CN".to_string(),
        [0x55, 0x04, 0x06] => "C".into(),
        [0x55, 0x04, 0x07] => "L".into(),
        [0x55, 0x04, 0x08] => "ST".into(),
        [0x55, 0x04, 0x0a] => "O".into(),
        [0x55, 0x04, 0x0b] => "OU".into(),
        _ => dotted(oid)?,
    };
    Some(format!("{key}={}", escape(&string_value(tag, value)?)))
}

/// The directory string types certificates use.
fn string_value(tag: u8, value: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String
        0x0c | 0x13 | 0x16 => Some(String::from_utf8_lossy(value).into_owned()),
        // TeletexString: in practice Latin-1.
        0x14 => Some(value.iter().map(|&b| char::from(b)).collect()),
        // BMPString: UTF-16BE.
        0x1e => {
            let units = value
                .chunks_exact(2)
                .map(|p| u16::from_be_bytes([p[0], p[1]]));
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or('\u{fffd}'))
                    .collect(),
            )
        }
        // UniversalString: UTF-32BE.
        0x1c => Some(
            value
                .chunks_exact(4)
                .map(|q| {
                    char::from_u32(u32::from_be_bytes([q[0], q[1], q[2], q[3]]))
                        .unwrap_or('\u{fffd}')
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Peer text goes into logs: control characters are escaped.
fn escape(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped: Vec<char> = if c.is_control() {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            escaped
        })
        .collect()
}

fn dotted(oid: &[u8]) -> Option<String> {
    let mut arcs = Vec::new();
    let mut value: u64 = 0;
    for &b in oid {
        value = value.checked_mul(128)? | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (value / 40).min(2);
                arcs.push(first);
                arcs.push(value - first * 40);
            } else {
                arcs.push(value);
            }
            value = 0;
        }
    }
    if arcs.is_empty() {
        return None;
    }
    let text: Vec<String> = arcs.iter().map(u64::to_string).collect();
    Some(text.join("."))
}

/// UTCTime `YYMMDDHHMMSSZ` (years 1950–2049) or GeneralizedTime `YYYYMMDDHHMMSSZ`, the
/// forms RFC 5280 allows, as seconds since the epoch.
fn time(tag: u8, value: &[u8]) -> Option<u64> {
    let (year, rest) = match tag {
        UTC_TIME if value.len() == 13 => {
            let yy = digits(value.get(..2)?)?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, value.get(2..)?)
        }
        GENERALIZED_TIME if value.len() == 15 => (digits(value.get(..4)?)?, value.get(4..)?),
        _ => return None,
    };
    if rest.get(10) != Some(&b'Z') {
        return None;
    }
    let month = digits(rest.get(0..2)?)?;
    let day = digits(rest.get(2..4)?)?;
    let hour = digits(rest.get(4..6)?)?;
    let minute = digits(rest.get(6..8)?)?;
    let second = digits(rest.get(8..10)?)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second);
    Some(u64::try_from(secs).unwrap_or(0))
}

fn digits(text: &[u8]) -> Option<u32> {
    text.iter().try_fold(0u32, |n, &b| {
        b.is_ascii_digit().then(|| n * 10 + u32::from(b - b'0'))
    })
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "sample host");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Example\nOrg");
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(2051, 1, 1);
        params.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_names_and_validity_of_a_certificate() {
        let summary = summarize(&sample()).unwrap();
        assert_eq!(summary.subject, "CN=sample host, O=Example\\nOrg");
        assert_eq!(summary.issuer, summary.subject);
        assert!(summary.self_issued);
        assert_eq!(format_time(summary.not_before), "2024-02-29T00:00:00Z");
        // After 2049 the time is a GeneralizedTime.
        assert_eq!(format_time(summary.not_after), "2051-01-01T00:00:00Z");
    }

    #[test]
    fn times_convert_both_encodings_and_refuse_nonsense() {
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(time(UTC_TIME, b"500101000000Z"), Some(0), "1950 reads as 0");
        assert_eq!(
            time(GENERALIZED_TIME, b"20250101000000Z"),
            Some(1_735_689_600)
        );
        assert_eq!(time(GENERALIZED_TIME, b"20250229000000Z"), None);
        assert_eq!(time(GENERALIZED_TIME, b"20251301000000Z"), None);
        assert_eq!(time(GENERALIZED_TIME, b"2025010100000Z0"), None);
        assert_eq!(time(UTC_TIME, b"25010100000+Z"), None);
        assert_eq!(time(UTC_TIME, b"250101000000+0100"), None);
    }

    #[test]
    fn unknown_attributes_show_their_oid() {
        // 1.2.840.113549.1.9.1 (emailAddress) as an IA5String.
        let pair = [
            0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01, 0x16, 0x03, b'a',
            b'@', b'b',
        ];
        assert_eq!(
            attribute(&pair).as_deref(),
            Some("1.2.840.113549.1.9.1=a@b")
        );
    }

    #[test]
    fn long_names_are_cut() {
        let value = vec![b'x'; 300];
        let mut pair = vec![0x06, 0x03, 0x55, 0x04, 0x03, 0x0c, 0x82, 0x01, 0x2c];
        pair.extend_from_slice(&value);
        let mut set = vec![0x30, 0x82, 0x01, 0x35];
        set.extend_from_slice(&pair);
        let mut rdns = vec![0x31, 0x82, 0x01, 0x39];
        rdns.extend_from_slice(&set);
        let text = name(&rdns);
        assert_eq!(text.chars().count(), MAX_NAME_CHARS + 1);
        assert!(text.starts_with("CN=xxx") && text.ends_with('…'), "{text}");
    }

    /// xorshift, so the fuzz inputs are the same on every run.
    fn random_bytes(seed: &mut u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                *seed as u8
            })
            .collect()
    }

    #[test]
    fn any_input_is_read_without_panicking() {
        let der = sample();
        for cut in 0..der.len() {
            assert_eq!(summarize(&der[..cut]), None, "cut at {cut}");
        }
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        for round in 0..20_000 {
            let mut mutated = der.clone();
            for _ in 0..(round % 8 + 1) {
                let at = random_bytes(&mut seed, 2);
                let index = usize::from(u16::from_le_bytes([at[0], at[1]])) % mutated.len();
                mutated[index] = random_bytes(&mut seed, 1)[0];
            }
            let _ = summarize(&mutated);
            let noise = random_bytes(&mut seed, round % 600);
            let _ = summarize(&noise);
        }
    }
}
