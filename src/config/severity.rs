//! Fault severities, in one defined order.
//!
//! kubernetes-mcp-server reports `info`, `warning` and `critical`; older servers and
//! earlier configurations also use `debug` and `error`. All five share one scale so a
//! threshold means the same thing whichever server a cluster runs.

use std::fmt;
use std::str::FromStr;

/// How serious a fault is; the derived order is the severity order (`Debug` lowest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 5] = [
        Severity::Debug,
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// The lower-case name used in configuration files and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Debug => "debug",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The severity `name` names, as [`FromStr`] reads it, without allocating: every fault
    /// names one. The exact lowercase name servers send is tried first.
    pub fn named(name: &str) -> Option<Severity> {
        let exact = Severity::ALL
            .into_iter()
            .find(|level| level.as_str() == name);
        exact.or_else(|| {
            Severity::ALL
                .into_iter()
                .find(|level| level.as_str().eq_ignore_ascii_case(name.trim()))
        })
    }

    /// True when a fault of this severity passes a filter set at `threshold`.
    pub fn meets(self, threshold: Severity) -> bool {
        self >= threshold
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A severity name that is not one of the five known ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSeverity(pub String);

impl fmt::Display for UnknownSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown severity {} (expected one of debug, info, warning, error, critical)",
            super::error::quote(&self.0)
        )
    }
}

impl std::error::Error for UnknownSeverity {}

impl FromStr for Severity {
    type Err = UnknownSeverity;

    /// Case-insensitive: `WARNING`, `Warning` and `warning` are the same severity.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::named(s).ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_are_ordered_debug_to_critical() {
        let mut shuffled = vec![
            Severity::Critical,
            Severity::Debug,
            Severity::Error,
            Severity::Info,
            Severity::Warning,
        ];
        shuffled.sort();
        assert_eq!(shuffled, Severity::ALL.to_vec());
    }

    #[test]
    fn every_severity_is_named_by_its_own_name() {
        for level in Severity::ALL {
            assert_eq!(Severity::named(level.as_str()), Some(level));
            assert_eq!(
                Severity::named(&format!(" {} ", level.as_str())),
                Some(level)
            );
        }
        assert_eq!(Severity::named("warn"), None);
    }

    #[test]
    fn severity_names_parse_case_insensitively() {
        assert_eq!("WARNING".parse::<Severity>(), Ok(Severity::Warning));
        assert_eq!("Critical".parse::<Severity>(), Ok(Severity::Critical));
        assert_eq!("info".parse::<Severity>(), Ok(Severity::Info));
        assert_eq!("dEbUg".parse::<Severity>(), Ok(Severity::Debug));
        assert_eq!("error".parse::<Severity>(), Ok(Severity::Error));
    }

    #[test]
    fn kubernetes_mcp_server_severities_are_accepted() {
        for name in ["info", "warning", "critical"] {
            assert!(name.parse::<Severity>().is_ok(), "{name}");
        }
    }

    #[test]
    fn unknown_severity_is_refused_with_the_accepted_names() {
        let err = "warn".parse::<Severity>().unwrap_err();
        let text = err.to_string();
        assert!(text.contains("\"warn\""), "{text}");
        assert!(
            text.contains("debug, info, warning, error, critical"),
            "{text}"
        );
        assert!("".parse::<Severity>().is_err());
    }

    #[test]
    fn as_str_round_trips() {
        for level in Severity::ALL {
            assert_eq!(level.as_str().parse::<Severity>(), Ok(level));
            assert_eq!(level.to_string(), level.as_str());
        }
    }

    #[test]
    fn threshold_passes_equal_and_higher_severities() {
        assert!(Severity::Warning.meets(Severity::Warning));
        assert!(Severity::Critical.meets(Severity::Warning));
        assert!(!Severity::Info.meets(Severity::Warning));
    }
}
