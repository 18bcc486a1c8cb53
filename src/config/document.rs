//! Reading the parsed TOML document: typed values with their positions, overrides
//! applied at the leaves, unknown keys reported, and every error collected rather
//! than stopping at the first.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{line_col, one_line, ConfigError, ConfigErrors};
use super::overrides::{OverrideSource, Overrides};
use super::suggest::did_you_mean;

/// Errors kept in full; past this a file is more wrong than a reader can use.
pub(crate) const MAX_ERRORS: usize = 100;

/// Where a value came from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Origin {
    Default,
    /// The byte range of the value in the file.
    File(Range<usize>),
    Override(OverrideSource),
}

impl Origin {
    /// Relative paths in the file are relative to the file; defaults and overrides
    /// are relative to the working directory.
    pub(crate) fn is_file(&self) -> bool {
        matches!(self, Origin::File(_))
    }

    pub(crate) fn is_default(&self) -> bool {
        matches!(self, Origin::Default)
    }
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub(crate) struct Sourced<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Sourced<T> {
    pub(crate) fn default(value: T) -> Sourced<T> {
        Sourced {
            value,
            origin: Origin::Default,
        }
    }
}

/// The dotted path of a table and the cluster it belongs to, for error messages.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    pub path: String,
    pub cluster: Option<String>,
}

impl Scope {
    /// The dotted path of `key` in this table; an empty key names the table itself.
    pub(crate) fn field(&self, key: &str) -> String {
        if key.is_empty() {
            self.path.clone()
        } else if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }
}

/// A table of the document (possibly absent: then every key reads as missing).
#[derive(Clone)]
pub(crate) struct Table<'t, 'i> {
    entries: Option<&'t DeTable<'i>>,
    /// Where the table starts, to point at when a required key is missing.
    pub span: Option<Range<usize>>,
    pub scope: Scope,
}

impl<'t, 'i> Table<'t, 'i> {
    pub(crate) fn root(entries: &'t DeTable<'i>) -> Table<'t, 'i> {
        Table {
            entries: Some(entries),
            span: None,
            scope: Scope::default(),
        }
    }

    pub(crate) fn has(&self, key: &str) -> bool {
        self.entries.is_some_and(|t| t.contains_key(key))
    }

    fn get(&self, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
        self.entries.and_then(|t| t.get(key))
    }

    /// Its keys, in file order.
    pub(crate) fn keys(&self) -> Vec<String> {
        let Some(entries) = self.entries else {
            return Vec::new();
        };
        let mut keys: Vec<_> = entries.keys().collect();
        keys.sort_by_key(|key| key.span().start);
        keys.iter().map(|key| key.get_ref().to_string()).collect()
    }

    /// Whether `key` holds a table.
    pub(crate) fn is_table(&self, key: &str) -> bool {
        self.get(key)
            .is_some_and(|value| matches!(value.get_ref(), DeValue::Table(_)))
    }

    /// The same table seen as belonging to `cluster`.
    pub(crate) fn in_cluster(mut self, cluster: String) -> Table<'t, 'i> {
        self.scope.cluster = Some(cluster);
        self
    }
}

/// Everything needed while reading one document, and the errors found so far.
pub(crate) struct Context<'a> {
    file: &'a Path,
    text: &'a str,
    base_dir: PathBuf,
    env: &'a [(String, String)],
    overrides: &'a Overrides,
    errors: Vec<ConfigError>,
    dropped: usize,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        file: &'a Path,
        text: &'a str,
        env: &'a [(String, String)],
        overrides: &'a Overrides,
    ) -> Context<'a> {
        let base_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        Context {
            file,
            text,
            base_dir,
            env,
            overrides,
            errors: Vec::new(),
            dropped: 0,
        }
    }

    pub(crate) fn file(&self) -> &Path {
        self.file
    }

    pub(crate) fn env(&self) -> &'a [(String, String)] {
        self.env
    }

    /// Resolves a path read from `origin`: file values against the file's directory.
    pub(crate) fn resolve_path(&self, path: &str, origin: &Origin) -> PathBuf {
        let path = PathBuf::from(path);
        if origin.is_file() && path.is_relative() {
            self.base_dir.join(path)
        } else {
            path
        }
    }

    /// Records an error about `scope.key`, placed at the value's origin.
    pub(crate) fn error(
        &mut self,
        scope: &Scope,
        key: &str,
        origin: &Origin,
        message: impl fmt::Display,
    ) {
        let span = match origin {
            Origin::File(span) => Some(span.clone()),
            Origin::Default | Origin::Override(_) => None,
        };
        let message = match origin {
            Origin::Override(OverrideSource::Env(var)) => {
                format!("from environment variable {var}: {message}")
            }
            Origin::Override(OverrideSource::Flag(flag)) => format!("from flag {flag}: {message}"),
            Origin::Default | Origin::File(_) => message.to_string(),
        };
        self.push(scope, &scope.field(key), span, message);
    }

    /// Records an error about a missing key, placed at its table.
    pub(crate) fn missing(&mut self, table: &Table, key: &str, message: impl fmt::Display) {
        let span = table.span.clone();
        self.push(
            &table.scope,
            &table.scope.field(key),
            span,
            message.to_string(),
        );
    }

    /// Records an error that belongs to the whole document.
    pub(crate) fn document_error(&mut self, field: &str, message: impl fmt::Display) {
        self.push(&Scope::default(), field, None, message.to_string());
    }

    fn push(&mut self, scope: &Scope, field: &str, span: Option<Range<usize>>, message: String) {
        if self.errors.len() >= MAX_ERRORS {
            self.dropped += 1;
            return;
        }
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            cluster: scope.cluster.clone(),
            field: field.to_string(),
            line_col: span.map(|s| line_col(self.text, s.start)),
            message: one_line(&message),
        });
    }

    /// Hands back `value` if nothing was wrong, else every error in file order.
    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(value);
        }
        let mut errors = self.errors;
        // Positioned errors in file order; the others (environment, whole-document) after.
        errors.sort_by_key(|e| e.line_col.unwrap_or((usize::MAX, usize::MAX)));
        if self.dropped > 0 {
            errors.push(ConfigError::file_level(
                self.file,
                format!("{} more errors not shown", self.dropped),
            ));
        }
        Err(ConfigErrors(errors))
    }

    /// Reports every key of `table` outside `allowed`, suggesting the closest allowed
    /// key, or the section a key belongs to when it sits in the wrong table.
    pub(crate) fn allow_keys(
        &mut self,
        table: &Table,
        allowed: &[&str],
        elsewhere: &[(&str, &[&str])],
    ) {
        let Some(entries) = table.entries else { return };
        let mut unknown: Vec<&Spanned<_>> = entries
            .keys()
            .filter(|key| !allowed.contains(&key.get_ref().as_ref()))
            .collect();
        unknown.sort_by_key(|key| key.span().start);
        for key in unknown {
            let name: &str = key.get_ref();
            let hint = if let Some(close) = did_you_mean(name, allowed) {
                format!(" (did you mean `{close}`?)")
            } else if let Some((section, _)) =
                elsewhere.iter().find(|(_, keys)| keys.contains(&name))
            {
                format!(" (`{name}` belongs in {section})")
            } else {
                String::new()
            };
            let shown = display_key(name);
            let origin = Origin::File(key.span());
            self.error(&table.scope, &shown, &origin, format!("unknown key{hint}"));
        }
    }

    fn type_error(&mut self, table: &Table, key: &str, value: &Spanned<DeValue>, expected: &str) {
        let found = value.get_ref().type_str();
        let origin = Origin::File(value.span());
        self.error(
            &table.scope,
            key,
            &origin,
            format!("expected {expected}, found {found}"),
        );
    }

    /// Overrides name top-level dotted fields only, so a cluster's keys never match.
    fn override_for(&self, table: &Table, key: &str) -> Option<(String, Origin)> {
        self.overrides
            .get(&table.scope.field(key))
            .map(|(value, source)| (value.to_string(), Origin::Override(source)))
    }

    /// Where `key`'s value came from, whatever its type.
    pub(crate) fn origin_of(&self, table: &Table, key: &str) -> Option<Origin> {
        if let Some((_, origin)) = self.override_for(table, key) {
            return Some(origin);
        }
        table.get(key).map(|value| Origin::File(value.span()))
    }

    /// A string, from a flag, the environment or the file.
    pub(crate) fn string(&mut self, table: &Table, key: &str) -> Option<Sourced<String>> {
        if let Some((value, origin)) = self.override_for(table, key) {
            return Some(Sourced { value, origin });
        }
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::String(s) => Some(Sourced {
                value: s.to_string(),
                origin: Origin::File(value.span()),
            }),
            _ => {
                self.type_error(table, key, value, "a string");
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, table: &Table, key: &str) -> Option<Sourced<bool>> {
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Boolean(b) => Some(Sourced {
                value: *b,
                origin: Origin::File(value.span()),
            }),
            _ => {
                self.type_error(table, key, value, "true or false");
                None
            }
        }
    }

    /// A whole number; overrides are parsed from their text.
    pub(crate) fn integer(&mut self, table: &Table, key: &str) -> Option<Sourced<i64>> {
        if let Some((text, origin)) = self.override_for(table, key) {
            return match text.trim().parse::<i64>() {
                Ok(value) => Some(Sourced { value, origin }),
                Err(_) => {
                    let shown = super::error::quote(&text);
                    self.error(
                        &table.scope,
                        key,
                        &origin,
                        format!("expected a whole number, got {shown}"),
                    );
                    None
                }
            };
        }
        let value = table.get(key)?;
        match value.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(Sourced {
                    value: n,
                    origin: Origin::File(value.span()),
                }),
                Err(_) => {
                    let origin = Origin::File(value.span());
                    self.error(&table.scope, key, &origin, "number is too large");
                    None
                }
            },
            _ => {
                self.type_error(table, key, value, "a whole number");
                None
            }
        }
    }

    /// A number; whole numbers are accepted where a fraction is allowed.
    pub(crate) fn float(&mut self, table: &Table, key: &str) -> Option<Sourced<f64>> {
        let value = table.get(key)?;
        let origin = Origin::File(value.span());
        let number = match value.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => {
                self.type_error(table, key, value, "a number");
                return None;
            }
        };
        match number.filter(|n| n.is_finite()) {
            Some(value) => Some(Sourced { value, origin }),
            None => {
                self.error(&table.scope, key, &origin, "expected a finite number");
                None
            }
        }
    }

    /// A duration: a string with a unit, or a number of seconds.
    pub(crate) fn duration_text(&mut self, table: &Table, key: &str) -> Option<Sourced<String>> {
        if let Some((value, origin)) = self.override_for(table, key) {
            return Some(Sourced { value, origin });
        }
        let value = table.get(key)?;
        let origin = Origin::File(value.span());
        match value.get_ref() {
            DeValue::String(s) => Some(Sourced {
                value: s.to_string(),
                origin,
            }),
            DeValue::Integer(i) if i.radix() == 10 => Some(Sourced {
                value: i.as_str().to_string(),
                origin,
            }),
            DeValue::Float(f) => Some(Sourced {
                value: f.as_str().to_string(),
                origin,
            }),
            _ => {
                self.type_error(table, key, value, "a duration such as \"30s\"");
                None
            }
        }
    }

    /// A sub-table; absent when missing or of the wrong type (the latter reported).
    pub(crate) fn table<'t, 'i>(&mut self, parent: &Table<'t, 'i>, key: &str) -> Table<'t, 'i> {
        let scope = Scope {
            path: parent.scope.field(key),
            cluster: parent.scope.cluster.clone(),
        };
        match parent.get(key) {
            Some(value) => match value.get_ref() {
                DeValue::Table(entries) => Table {
                    entries: Some(entries),
                    span: Some(value.span()),
                    scope,
                },
                _ => {
                    self.type_error(parent, key, value, "a table");
                    Table {
                        entries: None,
                        span: Some(value.span()),
                        scope,
                    }
                }
            },
            None => Table {
                entries: None,
                span: parent.span.clone(),
                scope,
            },
        }
    }

    /// An array of tables such as `[[clusters]]`, each scoped as `key[i]`.
    pub(crate) fn tables<'t, 'i>(
        &mut self,
        parent: &Table<'t, 'i>,
        key: &str,
    ) -> Option<Vec<Table<'t, 'i>>> {
        let value = parent.get(key)?;
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(parent, key, value, "an array of tables ([[clusters]])");
            return Some(Vec::new());
        };
        let mut tables = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let scope = Scope {
                path: format!("{}[{i}]", parent.scope.field(key)),
                cluster: Some(format!("{key}[{i}]")),
            };
            match item.get_ref() {
                DeValue::Table(entries) => tables.push(Table {
                    entries: Some(entries),
                    span: Some(item.span()),
                    scope,
                }),
                other => {
                    let origin = Origin::File(item.span());
                    let found = other.type_str();
                    self.error(
                        &scope,
                        "",
                        &origin,
                        format!("expected a table, found {found}"),
                    );
                }
            }
        }
        Some(tables)
    }

    /// An array of strings, such as `agent.env_allow`; absent is empty.
    pub(crate) fn string_list(&mut self, table: &Table, key: &str) -> Vec<Sourced<String>> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.type_error(table, key, value, "an array of strings");
            return Vec::new();
        };
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) if !s.trim().is_empty() && !s.chars().any(char::is_control) => {
                    out.push(Sourced {
                        value: s.to_string(),
                        origin: Origin::File(item.span()),
                    })
                }
                _ => self.type_error(table, key, item, "a non-empty string"),
            }
        }
        out
    }

    /// A table of string values, such as `labels`.
    pub(crate) fn string_map(&mut self, parent: &Table, key: &str) -> BTreeMap<String, String> {
        let table = self.table(parent, key);
        let mut map = BTreeMap::new();
        let Some(entries) = table.entries else {
            return map;
        };
        for (name, value) in entries.iter() {
            let name: &str = name.get_ref();
            match value.get_ref() {
                DeValue::String(s) => {
                    map.insert(name.to_string(), s.to_string());
                }
                _ => self.type_error(&table, &display_key(name), value, "a string"),
            }
        }
        map
    }
}

/// A key as shown in a field path: bare keys as they are, others quoted, so a key
/// holding a newline or a megabyte of text cannot break a one-line message.
fn display_key(name: &str) -> String {
    let bare = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        name.to_string()
    } else {
        super::error::quote(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::overrides::FlagOverrides;

    fn with_document(text: &str, check: impl FnOnce(&mut Context, &Table)) -> Vec<ConfigError> {
        let document = DeTable::parse(text).unwrap();
        let overrides = Overrides::new(&[], &FlagOverrides::default());
        let mut ctx = Context::new(Path::new("dir/test.toml"), text, &[], &overrides);
        let root = Table::root(document.get_ref());
        check(&mut ctx, &root);
        match ctx.finish(()) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.0,
        }
    }

    #[test]
    fn type_errors_name_field_and_position() {
        let errors = with_document("[queue]\ncluster_queue_size = \"big\"\n", |ctx, root| {
            let queue = ctx.table(root, "queue");
            assert!(ctx.integer(&queue, "cluster_queue_size").is_none());
        });
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].field, "queue.cluster_queue_size");
        assert_eq!(errors[0].line_col, Some((2, 22)));
        assert!(errors[0]
            .message
            .contains("expected a whole number, found string"));
    }

    #[test]
    fn unknown_keys_are_reported_in_file_order_with_suggestions() {
        let errors = with_document("zeta = 1\nlog_levl = 2\n", |ctx, root| {
            ctx.allow_keys(root, &["log_level"], &[]);
        });
        assert_eq!(errors.len(), 2);
        assert_eq!(errors[0].field, "zeta");
        assert_eq!(errors[0].message, "unknown key");
        assert!(errors[1].message.contains("did you mean `log_level`?"));
        assert_eq!(errors[1].line_col, Some((2, 1)));
    }

    #[test]
    fn keys_in_the_wrong_table_point_to_their_section() {
        let errors = with_document("max_concurrent_agents = 4\n", |ctx, root| {
            ctx.allow_keys(
                root,
                &["log_level"],
                &[("[agent]", &["max_concurrent_agents"])],
            );
        });
        assert!(
            errors[0].message.contains("belongs in [agent]"),
            "{errors:?}"
        );
    }

    #[test]
    fn relative_paths_from_the_file_resolve_against_its_directory() {
        with_document("", |ctx, _| {
            let from_file = ctx.resolve_path("keys/a", &Origin::File(0..1));
            assert_eq!(from_file, Path::new("dir/keys/a"));
            assert_eq!(
                ctx.resolve_path("/abs", &Origin::File(0..1)),
                Path::new("/abs")
            );
            assert_eq!(
                ctx.resolve_path("keys/a", &Origin::Default),
                Path::new("keys/a")
            );
        });
    }

    #[test]
    fn error_count_is_capped_with_a_final_summary() {
        let text: String = (0..150).map(|i| format!("k{i} = 1\n")).collect();
        let errors = with_document(&text, |ctx, root| ctx.allow_keys(root, &[], &[]));
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert!(errors[MAX_ERRORS].message.contains("50 more errors"));
    }
}
