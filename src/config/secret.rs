//! Secrets (API keys, webhook URLs): kept out of every log line, summary and `Debug` dump.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Largest secret file read; keys and webhook URLs are far smaller.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// A secret value. `Debug` and `Display` print `<redacted>`; only [`Secret::expose`]
/// gives the value, for the one place that sends it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret itself. Call it only where the value is sent, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Refuses values that cannot travel in an HTTP header: empty ones and ones with
/// control characters (a stray newline would split the header).
pub(crate) fn check_secret_text(value: &str) -> Result<(), &'static str> {
    if value.is_empty() {
        return Err("is empty");
    }
    if value.chars().any(char::is_control) {
        return Err("contains a line break or another control character");
    }
    Ok(())
}

/// Reads a secret file, trimming surrounding whitespace (editors add a final newline).
/// The error names the problem, never the content.
pub(crate) fn read_secret_file(path: &Path) -> Result<String, String> {
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "{} is larger than {} KiB; is it the right file?",
            path.display(),
            MAX_SECRET_FILE_BYTES / 1024
        ));
    }
    let text =
        String::from_utf8(bytes).map_err(|_| format!("{} is not UTF-8 text", path.display()))?;
    let value = text.trim();
    check_secret_text(value).map_err(|problem| format!("{} {problem}", path.display()))?;
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_value() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), "<redacted>");
        assert_eq!(format!("{secret}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(secret.clone())), "Some(<redacted>)");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn secrets_compare_by_value() {
        assert_eq!(Secret::new("a"), Secret::from("a".to_string()));
        assert_ne!(Secret::new("a"), Secret::new("b"));
    }

    #[test]
    fn header_breaking_values_are_refused() {
        assert!(check_secret_text("").is_err());
        assert!(check_secret_text("abc\ndef").is_err());
        assert!(check_secret_text("abc\r").is_err());
        assert!(check_secret_text("abc-def").is_ok());
    }

    #[test]
    fn secret_files_are_trimmed_and_errors_hide_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("key");
        std::fs::write(&good, "tok3n\n").unwrap();
        assert_eq!(read_secret_file(&good).unwrap(), "tok3n");

        let broken = dir.path().join("broken");
        std::fs::write(&broken, "first-half\nsecond-half\n").unwrap();
        let err = read_secret_file(&broken).unwrap_err();
        assert!(!err.contains("first-half"), "{err}");

        let empty = dir.path().join("empty");
        std::fs::write(&empty, "  \n").unwrap();
        assert!(read_secret_file(&empty).unwrap_err().contains("is empty"));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'a'; 70 * 1024]).unwrap();
        assert!(read_secret_file(&big).unwrap_err().contains("larger"));

        assert!(read_secret_file(&dir.path().join("missing"))
            .unwrap_err()
            .contains("cannot read"));
    }
}
