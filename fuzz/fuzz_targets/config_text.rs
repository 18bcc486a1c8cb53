//! Configuration loading (`config/`): TOML text to a validated configuration, as
//! `nightcrier check`, start and SIGHUP read it.
//!
//! The file is named in a directory that does not exist, so the relative paths it names
//! (kubeconfigs, CA files, key files) resolve to nothing.
//!
//! Checked on every input: a valid configuration has unique, well-formed cluster names and
//! renders its summary; a refused one lists at most the documented number of problems,
//! each naming the file and each on one line without control characters.

#![no_main]

use std::fmt::Write;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use nightcrier::config::{is_valid_cluster_name, parse_str, render_summary, FlagOverrides};

/// `document::MAX_ERRORS` problems, then one line saying how many more there were.
const MAX_LISTED: usize = 101;

const SOURCE: &str = "/nonexistent/nightcrier-fuzz/nightcrier.toml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let source = Path::new(SOURCE);
    match &parse_str(text, source, &[], &FlagOverrides::default()) {
        Ok(config) => {
            assert_eq!(config.source, source);
            let mut names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
            for name in &names {
                assert!(
                    is_valid_cluster_name(name),
                    "cluster name {name:?} accepted"
                );
            }
            names.sort_unstable();
            names.dedup();
            assert_eq!(
                names.len(),
                config.clusters.len(),
                "duplicate cluster names accepted"
            );
            let summary = render_summary(config);
            assert!(!summary.is_empty());
            let _ = config.warnings();
        }
        Err(errors) => {
            assert!(!errors.is_empty(), "refused without a reason");
            assert!(
                errors.len() <= MAX_LISTED,
                "{} problems listed",
                errors.len()
            );
            // One buffer for every line: the allocator is what a run spends most on.
            let mut line = String::new();
            for error in errors.iter() {
                assert_eq!(error.file, source, "error names another file");
                line.clear();
                write!(line, "{error}").expect("writing to a String");
                assert!(line.starts_with(SOURCE), "{line}");
                assert!(
                    !line.chars().any(char::is_control),
                    "control character in {line:?}"
                );
            }
        }
    }
});
