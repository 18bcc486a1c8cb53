//! Finding and reading the configuration file, refusing anything that is not a
//! reasonably sized UTF-8 text file before parsing it.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::error::{line_col, ConfigError};

/// Largest configuration file read: 1,000 clusters take well under 1 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 * 1024 * 1024;

/// Where the file is looked for when neither `--config` nor NIGHTCRIER_CONFIG names one.
pub const SEARCH_PATHS: [&str; 3] = [
    "./nightcrier.toml",
    "./config/nightcrier.toml",
    "/etc/nightcrier/nightcrier.toml",
];

/// The first of [`SEARCH_PATHS`] that exists.
pub(crate) fn find_config_file() -> Result<PathBuf, ConfigError> {
    SEARCH_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| {
            ConfigError::file_level(
                PathBuf::new(),
                format!(
                    "no configuration file found (looked for {}); pass --config PATH or set \
                     NIGHTCRIER_CONFIG",
                    SEARCH_PATHS.join(", ")
                ),
            )
        })
}

/// Reads the whole file as UTF-8, refusing directories, files over
/// [`MAX_CONFIG_BYTES`] (checked before reading, and again while reading, for files
/// that grow or lie about their size) and invalid UTF-8.
pub(crate) fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let fail = |message: String| ConfigError::file_level(path, message);
    let file = std::fs::File::open(path).map_err(|e| fail(format!("cannot read file: {e}")))?;
    let metadata = file
        .metadata()
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    if metadata.is_dir() {
        return Err(fail("is a directory, not a configuration file".to_string()));
    }
    let too_big = || {
        fail(format!(
            "file is larger than the {} MiB limit for a configuration file",
            MAX_CONFIG_BYTES / (1024 * 1024)
        ))
    };
    if metadata.len() > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read file: {e}")))?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(too_big());
    }
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let prefix = String::from_utf8_lossy(&e.as_bytes()[..valid]);
        let mut error = fail(format!(
            "file is not UTF-8 text (invalid byte at offset {valid}); is it a binary file?"
        ));
        error.line_col = Some(line_col(&prefix, prefix.len()));
        error
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_is_refused_with_its_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bin.toml");
        std::fs::write(&path, b"a = 1\nb = \"\xff\xfe\"\n").unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert!(err.message.contains("not UTF-8"), "{err}");
        assert_eq!(err.line_col, Some((2, 6)));
        assert_eq!(err.file, path);
    }

    #[test]
    fn oversized_files_are_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.toml");
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_CONFIG_BYTES + 1).unwrap();
        let err = read_config_file(&path).unwrap_err();
        assert!(err.message.contains("16 MiB"), "{err}");
    }

    #[test]
    fn directories_and_missing_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_config_file(dir.path())
            .unwrap_err()
            .message
            .contains("directory"));
        assert!(read_config_file(&dir.path().join("nope.toml"))
            .unwrap_err()
            .message
            .contains("cannot read"));
    }

    #[test]
    fn endless_special_files_stop_at_the_limit() {
        // /dev/zero reports length 0 but never ends.
        let err = read_config_file(Path::new("/dev/zero")).unwrap_err();
        assert!(err.message.contains("limit"), "{err}");
    }
}
