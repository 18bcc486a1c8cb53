//! Configuration errors: each names the file, the cluster, the field and, where the
//! parser knows it, the line and column.

use std::fmt;
use std::path::PathBuf;

/// One problem in a configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    /// The cluster's name, or `clusters[3]` when it has no usable name.
    pub cluster: Option<String>,
    /// Dotted path of the field, e.g. `clusters[3].mcp.endpoint`; empty for file-level errors.
    pub field: String,
    /// 1-based line and column in the file.
    pub line_col: Option<(usize, usize)>,
    pub message: String,
}

impl ConfigError {
    /// An error about the file as a whole (unreadable, not TOML, too big).
    pub fn file_level(file: impl Into<PathBuf>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: file.into(),
            cluster: None,
            field: String::new(),
            line_col: None,
            message: one_line(&message.into()),
        }
    }

    /// The field relative to its cluster (`mcp.endpoint`), or the full path outside one.
    pub fn field_in_cluster(&self) -> &str {
        if self.cluster.is_some() {
            if let Some(rest) = self.field.strip_prefix("clusters[") {
                if let Some((_, inner)) = rest.split_once("].") {
                    return inner;
                }
            }
        }
        &self.field
    }
}

impl fmt::Display for ConfigError {
    /// `config/prod.toml:14:1: cluster "eu-1": field mcp.endpoint: scheme "ftp" is not http or https`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.file.as_os_str().is_empty() {
            write!(f, "{}", self.file.display())?;
            if let Some((line, column)) = self.line_col {
                write!(f, ":{line}:{column}")?;
            }
            f.write_str(": ")?;
        }
        if let Some(cluster) = &self.cluster {
            if cluster.starts_with("clusters[") {
                write!(f, "cluster {cluster}: ")?;
            } else {
                write!(f, "cluster {}: ", quote(cluster))?;
            }
        }
        let field = self.field_in_cluster();
        if !field.is_empty() {
            write!(f, "field {field}: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Every problem found in one configuration; never empty when returned as an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn single(error: ConfigError) -> ConfigErrors {
        ConfigErrors(vec![error])
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}
impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// Longest piece of user input repeated in a message.
const MAX_QUOTED_CHARS: usize = 64;

/// Quotes user input for a message: escaped, and cut short so a huge value cannot
/// flood the terminal.
pub(crate) fn quote(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX_QUOTED_CHARS).collect();
    if chars.next().is_some() {
        format!("{:?}…", head)
    } else {
        format!("{head:?}")
    }
}

/// Keeps a message on one line (the TOML parser's messages can span several).
pub(crate) fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(cluster: Option<&str>, field: &str, line_col: Option<(usize, usize)>) -> ConfigError {
        ConfigError {
            file: PathBuf::from("config/prod.toml"),
            cluster: cluster.map(str::to_string),
            field: field.to_string(),
            line_col,
            message: "scheme \"ftp\" is not http or https".to_string(),
        }
    }

    #[test]
    fn display_names_file_position_cluster_and_field() {
        let e = error(Some("eu-1"), "clusters[3].mcp.endpoint", Some((14, 1)));
        assert_eq!(
            e.to_string(),
            "config/prod.toml:14:1: cluster \"eu-1\": field mcp.endpoint: scheme \"ftp\" is not http or https"
        );
    }

    #[test]
    fn nameless_cluster_is_shown_by_index() {
        let e = error(Some("clusters[3]"), "clusters[3].mcp.endpoint", None);
        assert_eq!(
            e.to_string(),
            "config/prod.toml: cluster clusters[3]: field mcp.endpoint: scheme \"ftp\" is not http or https"
        );
    }

    #[test]
    fn global_fields_keep_their_full_path() {
        let e = error(None, "queue.cluster_queue_size", Some((3, 22)));
        assert!(e
            .to_string()
            .starts_with("config/prod.toml:3:22: field queue.cluster_queue_size: "));
    }

    #[test]
    fn errors_display_one_per_line() {
        let all = ConfigErrors(vec![
            error(None, "a", None),
            ConfigError::file_level("x.toml", "first\nsecond"),
        ]);
        let text = all.to_string();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with("x.toml: first; second"), "{text}");
    }

    #[test]
    fn line_col_counts_characters_from_one() {
        let text = "a = 1\nbé = \"x\"\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        let offset = text.find('=').map(|_| text.rfind('=').unwrap()).unwrap();
        assert_eq!(line_col(text, offset), (2, 4));
        assert_eq!(line_col(text, 10_000), (3, 1));
    }

    #[test]
    fn quote_escapes_and_shortens() {
        assert_eq!(quote("a\"b"), "\"a\\\"b\"");
        let long = "x".repeat(500);
        assert!(quote(&long).chars().count() < 80);
    }
}
