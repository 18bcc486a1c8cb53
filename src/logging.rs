//! Logging through `log` + `env_logger`: `RUST_LOG` wins where it speaks, else the
//! configuration's `log_level`. Lines carry a timestamp, the level and the target;
//! every line about one cluster includes `cluster=NAME`.

use env_logger::{Builder, Target, WriteStyle};
use log::LevelFilter;

/// A logger writing to stderr at `level`, refined or replaced by a `RUST_LOG` spec.
pub fn builder(level: LevelFilter, rust_log: Option<&str>) -> Builder {
    let mut builder = Builder::new();
    builder.filter_level(level);
    if let Some(spec) = rust_log.filter(|s| !s.trim().is_empty()) {
        builder.parse_filters(spec);
    }
    // The line carries no styles and no control characters (log_line.rs): written as is.
    builder
        .target(Target::Stderr)
        .write_style(WriteStyle::Always)
        .format(crate::log_line::write_record);
    builder
}

/// Installs the global logger once; later calls (tests, a reload) leave it in place.
pub fn init(level: LevelFilter, rust_log: Option<&str>) {
    // Only fails when a logger is already installed, which is fine to keep.
    let _ = builder(level, rust_log).try_init();
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
    fn config_level_applies_without_rust_log() {
        let logger = builder(LevelFilter::Warn, None).build();
        assert!(enabled(&logger, Level::Warn, "nightcrier"));
        assert!(!enabled(&logger, Level::Info, "nightcrier"));
    }

    #[test]
    fn rust_log_replaces_the_config_level() {
        let logger = builder(LevelFilter::Info, Some("debug")).build();
        assert!(enabled(&logger, Level::Debug, "nightcrier::mcp"));
        let logger = builder(LevelFilter::Info, Some("error")).build();
        assert!(!enabled(&logger, Level::Warn, "nightcrier"));
    }

    #[test]
    fn rust_log_module_directives_refine_the_config_level() {
        let logger = builder(LevelFilter::Info, Some("nightcrier::mcp=trace")).build();
        assert!(enabled(&logger, Level::Trace, "nightcrier::mcp"));
        assert!(!enabled(&logger, Level::Debug, "nightcrier::queue"));
    }

    #[test]
    fn blank_rust_log_is_ignored() {
        let logger = builder(LevelFilter::Error, Some("  ")).build();
        assert!(!enabled(&logger, Level::Warn, "nightcrier"));
    }
}
