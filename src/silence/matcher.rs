//! One condition of a silence on one label of a fault: equal or not, to a text, a glob or a
//! regular expression. Regular expressions are anchored at both ends, as Alertmanager's
//! are; a glob (`*` any run of characters, `?` one character) is translated into one.

use std::fmt;

use regex::Regex;

/// The label names a matcher may test besides the cluster's own labels.
pub const FAULT_LABELS: &[&str] = &[
    "cluster",
    "environment",
    "namespace",
    "fault_type",
    "resource_kind",
    "resource_name",
];

/// Longest pattern accepted (file or API).
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Compiled size bound of one regular expression.
const MAX_REGEX_BYTES: usize = 256 * 1024;

/// What a matcher tests a label's value against.
#[derive(Clone, Debug)]
pub enum Pattern {
    Exact(String),
    /// A regular expression, compiled; `source` is what was written.
    Regex {
        source: String,
        compiled: Regex,
    },
    /// A glob, compiled into a regular expression; `source` is the glob as written.
    Glob {
        source: String,
        compiled: Regex,
    },
}

/// The four operators of Alertmanager's matchers: `=`, `!=`, `=~`, `!~` (a glob is written
/// with `=` or `!=` in the file).
#[derive(Clone, Debug)]
pub struct Matcher {
    pub name: String,
    pub pattern: Pattern,
    /// `false` for `!=` and `!~`.
    pub equal: bool,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Matcher) -> bool {
        self.name == other.name
            && self.equal == other.equal
            && std::mem::discriminant(&self.pattern) == std::mem::discriminant(&other.pattern)
            && self.source() == other.source()
    }
}

impl Matcher {
    /// `name` equal (or not) to `value` exactly.
    pub fn exact(name: &str, value: &str, equal: bool) -> Result<Matcher, String> {
        check_name(name)?;
        check_length(value)?;
        Ok(Matcher {
            name: name.to_string(),
            pattern: Pattern::Exact(value.to_string()),
            equal,
        })
    }

    /// `name` matching (or not) the regular expression `source`, anchored at both ends.
    pub fn regex(name: &str, source: &str, equal: bool) -> Result<Matcher, String> {
        check_name(name)?;
        check_length(source)?;
        let compiled = regex::RegexBuilder::new(&format!("^(?:{source})$"))
            .size_limit(MAX_REGEX_BYTES)
            .build()
            .map_err(|e| {
                let first = e.to_string();
                let last = first.lines().last().unwrap_or("invalid").trim();
                let reason = last.strip_prefix("error: ").unwrap_or(last).to_string();
                format!(
                    "{} is not a valid regular expression: {reason}",
                    quote(source)
                )
            })?;
        Ok(Matcher {
            name: name.to_string(),
            pattern: Pattern::Regex {
                source: source.to_string(),
                compiled,
            },
            equal,
        })
    }

    /// `name` matching (or not) the glob `glob`; a glob without `*` or `?` is exact.
    pub fn glob(name: &str, glob: &str, equal: bool) -> Result<Matcher, String> {
        if !glob.contains(['*', '?']) {
            return Matcher::exact(name, glob, equal);
        }
        check_length(glob)?;
        let mut source = String::with_capacity(glob.len() + 8);
        for c in glob.chars() {
            match c {
                '*' => source.push_str(".*"),
                '?' => source.push('.'),
                c => source.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
            }
        }
        let mut matcher = Matcher::regex(name, &source, equal)?;
        if let Pattern::Regex { compiled, .. } = matcher.pattern {
            matcher.pattern = Pattern::Glob {
                source: glob.to_string(),
                compiled,
            };
        }
        Ok(matcher)
    }

    pub fn is_regex(&self) -> bool {
        matches!(self.pattern, Pattern::Regex { .. })
    }

    /// The value or expression as written.
    pub fn source(&self) -> &str {
        match &self.pattern {
            Pattern::Exact(value) => value,
            Pattern::Regex { source, .. } | Pattern::Glob { source, .. } => source,
        }
    }

    /// Whether `value` (empty when the fault has no such label, as in Alertmanager) passes.
    pub fn matches(&self, value: Option<&str>) -> bool {
        let value = value.unwrap_or("");
        let hit = match &self.pattern {
            Pattern::Exact(expected) => expected == value,
            Pattern::Regex { compiled, .. } | Pattern::Glob { compiled, .. } => {
                compiled.is_match(value)
            }
        };
        hit == self.equal
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match (self.equal, self.is_regex()) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        };
        write!(f, "{}{op}{}", self.name, quote(self.source()))
    }
}

/// A label name: one of [`FAULT_LABELS`] or a cluster label's name (letters, digits, `_`,
/// `-`, `.`, `/`).
fn check_name(name: &str) -> Result<(), String> {
    let usable = !name.is_empty()
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'));
    if usable {
        Ok(())
    } else {
        Err(format!(
            "{} is not a label name (one of {} or a cluster label)",
            quote(name),
            FAULT_LABELS.join(", ")
        ))
    }
}

fn check_length(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_PATTERN_CHARS {
        return Err(format!("longer than {MAX_PATTERN_CHARS} characters"));
    }
    Ok(())
}

/// `text` in double quotes, cut and escaped for one log line or message.
pub(crate) fn quote(text: &str) -> String {
    let cut: String = text.chars().take(80).collect();
    let mut out = format!("{cut:?}");
    if cut.len() < text.len() {
        out.insert(out.len() - 1, '…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_matches_the_whole_value_and_not_equal_inverts() {
        let m = Matcher::exact("namespace", "payments", true).unwrap();
        assert!(m.matches(Some("payments")));
        assert!(!m.matches(Some("payments-v2")));
        assert!(!m.matches(None));
        let not = Matcher::exact("namespace", "kube-system", false).unwrap();
        assert!(not.matches(Some("payments")));
        assert!(!not.matches(Some("kube-system")));
        assert!(not.matches(None), "a missing label is empty, which differs");
    }

    #[test]
    fn globs_match_whole_values_with_star_and_question_mark_only() {
        let m = Matcher::glob("cluster", "prod-eu-*", true).unwrap();
        assert!(m.matches(Some("prod-eu-1")));
        assert!(m.matches(Some("prod-eu-")));
        assert!(!m.matches(Some("xprod-eu-1")));
        let q = Matcher::glob("resource_name", "api-?.x", true).unwrap();
        assert!(q.matches(Some("api-7.x")));
        assert!(!q.matches(Some("api-7yx")), "a dot in a glob is a dot");
        assert!(!q.matches(Some("api-77.x")));
        assert_eq!(q.source(), "api-?.x");
        assert!(matches!(
            Matcher::glob("cluster", "plain", true).unwrap().pattern,
            Pattern::Exact(_)
        ));
        assert_eq!(m.to_string(), "cluster=\"prod-eu-*\"");
    }

    #[test]
    fn regexes_are_anchored_and_not_regex_inverts() {
        let m = Matcher::regex("fault_type", "OOM.*|CrashLoop", true).unwrap();
        assert!(m.matches(Some("OOMKilled")));
        assert!(m.matches(Some("CrashLoop")));
        assert!(!m.matches(Some("PodCrashLoop")), "anchored at the start");
        assert!(!m.matches(Some("CrashLoopBackOff")), "anchored at the end");
        let not = Matcher::regex("namespace", "kube-.*", false).unwrap();
        assert!(not.matches(Some("default")));
        assert!(!not.matches(Some("kube-system")));
        assert_eq!(not.to_string(), "namespace!~\"kube-.*\"");
    }

    #[test]
    fn bad_regexes_and_names_are_refused_with_the_reason() {
        let e = Matcher::regex("namespace", "kube-(", true).unwrap_err();
        assert!(
            e.contains("\"kube-(\" is not a valid regular expression"),
            "{e}"
        );
        let e = Matcher::exact("name space", "x", true).unwrap_err();
        assert!(e.contains("is not a label name"), "{e}");
        assert!(Matcher::exact("team", &"x".repeat(2000), true).is_err());
    }
}
