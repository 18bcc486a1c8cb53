//! Logging through `log` + `env_logger`: `RUST_LOG` wins where it speaks, else the
//! configuration's `log_level`. Lines carry a timestamp, the level and the target;
//! every line about one cluster includes `cluster=NAME`. `log_format` picks the line's
//! shape: text ([`crate::log_line`]) or one JSON object ([`crate::log_json`]).

use std::time::{Duration, Instant};

use env_logger::{Builder, Target, WriteStyle};
use log::LevelFilter;

use crate::config::LogFormat;

/// A logger writing to stderr at `level`, refined or replaced by a `RUST_LOG` spec.
pub fn builder(level: LevelFilter, format: LogFormat, rust_log: Option<&str>) -> Builder {
    let mut builder = Builder::new();
    builder.filter_level(level);
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        builder.parse_filters(spec);
    }
    // The line carries no styles and no control characters (log_line.rs, log_json.rs):
    // written as is.
    builder
        .target(Target::Stderr)
        .write_style(WriteStyle::Always);
    match format {
        LogFormat::Text => builder.format(crate::log_line::write_record),
        LogFormat::Json => builder.format(crate::log_json::write_record),
    };
    builder
}

/// Installs the global logger once; later calls (tests, a reload) leave it in place.
pub fn init(level: LevelFilter, format: LogFormat, rust_log: Option<&str>) {
    // Only fails when a logger is already installed, which is fine to keep.
    let _ = builder(level, format, rust_log).try_init();
}

/// Wire text fit for one log line: control characters escaped (no forged lines), cut to
/// `max_chars` characters with an ellipsis.
pub fn excerpt(text: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max_chars + 8));
    for (count, c) in text.chars().enumerate() {
        if count == max_chars {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Lines one cluster may write at once before its budget runs dry (see [`LogBudget`]).
pub const LOG_BURST: u32 = 20;
/// After a burst, one more line per this interval.
pub const LOG_REFILL: Duration = Duration::from_secs(6);

/// What [`LogBudget::admit`] allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Write the line; `suppressed` similar lines were left out since the last one written.
    Write { suppressed: u64 },
    /// Leave the line out; it is the first one left out, so say that lines are being
    /// suppressed.
    StartSuppressing,
    /// Leave the line out.
    Suppress,
}

/// A token bucket over the log lines of one source (a cluster's connection, a cluster's
/// faults in the pipeline): [`LOG_BURST`] lines at once, then one per [`LOG_REFILL`]. A
/// server sending junk or unique faults at any rate costs a few hundred bytes of log a
/// minute, and the lines left out are counted in the next one written.
#[derive(Debug, Clone, Default)]
pub struct LogBudget {
    spent: f64,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogBudget {
    pub fn admit(&mut self, now: Instant) -> Admit {
        if let Some(last) = self.last {
            let refill =
                now.saturating_duration_since(last).as_secs_f64() / LOG_REFILL.as_secs_f64();
            self.spent = (self.spent - refill).max(0.0);
        }
        self.last = Some(now);
        if self.spent + 1.0 <= f64::from(LOG_BURST) {
            self.spent += 1.0;
            return Admit::Write {
                suppressed: std::mem::take(&mut self.suppressed),
            };
        }
        self.suppressed += 1;
        if self.suppressed == 1 {
            Admit::StartSuppressing
        } else {
            Admit::Suppress
        }
    }
}

/// `log::log!` through a [`LogBudget`]: `limited!(budget, now, Level::Warn, cluster, "…", args)`.
/// Lines of a disabled level spend nothing.
#[macro_export]
macro_rules! limited {
    ($budget:expr, $now:expr, $level:expr, $cluster:expr, $($arg:tt)+) => {
        if log::log_enabled!($level) {
            match $budget.admit($now) {
                $crate::logging::Admit::Write { suppressed } => {
                    if suppressed > 0 {
                        log::log!($level, "cluster={} suppressed {} similar lines", $cluster, suppressed);
                    }
                    log::log!($level, $($arg)+);
                }
                $crate::logging::Admit::StartSuppressing => log::log!(
                    $level,
                    "cluster={} logs too fast: similar lines suppressed (at most {} at once, then one every {:?})",
                    $cluster,
                    $crate::logging::LOG_BURST,
                    $crate::logging::LOG_REFILL
                ),
                $crate::logging::Admit::Suppress => {}
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::{Level, Log, Metadata};

    fn enabled(logger: &env_logger::Logger, level: Level, target: &str) -> bool {
        logger.enabled(&Metadata::builder().level(level).target(target).build())
    }

    #[test]
    fn excerpt_escapes_line_breaks_and_cuts_long_text() {
        assert_eq!(excerpt("a\nb\r\x1b", 10), "a\\nb\\r\\u{1b}");
        assert_eq!(excerpt("abcdef", 3), "abc…");
        assert_eq!(excerpt("ééé", 2), "éé…");
    }

    #[test]
    fn log_budget_allows_a_burst_then_one_line_per_refill_and_counts_the_rest() {
        let mut budget = LogBudget::default();
        let start = Instant::now();
        for _ in 0..LOG_BURST {
            assert_eq!(budget.admit(start), Admit::Write { suppressed: 0 });
        }
        assert_eq!(budget.admit(start), Admit::StartSuppressing);
        for _ in 0..1000 {
            assert_eq!(budget.admit(start), Admit::Suppress);
        }
        assert_eq!(
            budget.admit(start + LOG_REFILL),
            Admit::Write { suppressed: 1001 }
        );
        assert_eq!(budget.admit(start + LOG_REFILL), Admit::StartSuppressing);
    }

    #[test]
    fn config_level_applies_without_rust_log() {
        let logger = builder(LevelFilter::Warn, LogFormat::Text, None).build();
        assert!(enabled(&logger, Level::Warn, "nightcrier"));
        assert!(!enabled(&logger, Level::Info, "nightcrier"));
    }

    #[test]
    fn rust_log_replaces_the_config_level() {
        let logger = builder(LevelFilter::Info, LogFormat::Text, Some("debug")).build();
        assert!(enabled(&logger, Level::Debug, "nightcrier::mcp"));
        let logger = builder(LevelFilter::Info, LogFormat::Text, Some("error")).build();
        assert!(!enabled(&logger, Level::Warn, "nightcrier"));
    }

    #[test]
    fn rust_log_module_directives_refine_the_config_level() {
        let logger = builder(
            LevelFilter::Info,
            LogFormat::Text,
            Some("nightcrier::mcp=trace"),
        )
        .build();
        assert!(enabled(&logger, Level::Trace, "nightcrier::mcp"));
        assert!(!enabled(&logger, Level::Debug, "nightcrier::queue"));
    }

    #[test]
    fn blank_rust_log_is_ignored() {
        let logger = builder(LevelFilter::Error, LogFormat::Json, Some("  ")).build();
        assert!(!enabled(&logger, Level::Warn, "nightcrier"));
    }
}
