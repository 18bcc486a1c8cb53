//! Value rules shared by every section: ranges, durations, names from a fixed set,
//! paths, files that must be readable, and secrets from one of three sources.

use std::fmt;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::document::{Context, Origin, Sourced, Table};
use super::duration::{format_duration, parse_duration};
use super::error::quote;
use super::overrides::lookup_env;
use super::secret::{check_secret_text, read_secret_file, Secret};

/// Longest timeout or interval accepted anywhere; longer is surely a typo.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// The three ways to give one secret: inline, from a file, from an environment variable.
#[derive(Clone, Copy)]
pub(crate) struct SecretKeys {
    pub inline: &'static str,
    pub file: &'static str,
    pub env: &'static str,
}

impl SecretKeys {
    pub(crate) fn all(&self) -> [&'static str; 3] {
        [self.inline, self.file, self.env]
    }
}

impl Context<'_> {
    /// A whole number within `range`, else `default`.
    pub(crate) fn count(
        &mut self,
        table: &Table,
        key: &str,
        default: i64,
        range: RangeInclusive<i64>,
    ) -> Sourced<i64> {
        let Some(value) = self.integer(table, key) else {
            return Sourced::default(default);
        };
        if !range.contains(&value.value) {
            let message = format!(
                "must be from {} to {}, got {}",
                range.start(),
                range.end(),
                value.value
            );
            self.error(&table.scope, key, &value.origin, message);
            return Sourced::default(default);
        }
        value
    }

    /// A number within `range`, else `default`.
    pub(crate) fn fraction(
        &mut self,
        table: &Table,
        key: &str,
        default: f64,
        range: RangeInclusive<f64>,
    ) -> f64 {
        let Some(value) = self.float(table, key) else {
            return default;
        };
        if !range.contains(&value.value) {
            let message = format!(
                "must be from {} to {}, got {}",
                range.start(),
                range.end(),
                value.value
            );
            self.error(&table.scope, key, &value.origin, message);
            return default;
        }
        value.value
    }

    /// A duration above zero and at most 24 hours, else `default`.
    pub(crate) fn duration(
        &mut self,
        table: &Table,
        key: &str,
        default: Duration,
    ) -> Sourced<Duration> {
        let Some(text) = self.duration_text(table, key) else {
            return Sourced::default(default);
        };
        let parsed = match parse_duration(&text.value) {
            Ok(d) if d.is_zero() => Err("must be greater than zero".to_string()),
            Ok(d) if d > MAX_DURATION => Err(format!(
                "{} is longer than the 24h limit",
                format_duration(d)
            )),
            Ok(d) => Ok(d),
            Err(e) => Err(e.to_string()),
        };
        match parsed {
            Ok(value) => Sourced {
                value,
                origin: text.origin,
            },
            Err(message) => {
                self.error(&table.scope, key, &text.origin, message);
                Sourced::default(default)
            }
        }
    }

    /// A duration of up to ten years (retention ages), else `default`.
    pub(crate) fn long_duration(
        &mut self,
        table: &Table,
        key: &str,
        default: Duration,
    ) -> Sourced<Duration> {
        const TEN_YEARS: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
        let Some(text) = self.duration_text(table, key) else {
            return Sourced::default(default);
        };
        match parse_duration(&text.value) {
            Ok(d) if !d.is_zero() && d <= TEN_YEARS => Sourced {
                value: d,
                origin: text.origin,
            },
            Ok(_) => {
                let message = "must be greater than zero and at most 3650d";
                self.error(&table.scope, key, &text.origin, message);
                Sourced::default(default)
            }
            Err(e) => {
                self.error(&table.scope, key, &text.origin, e.to_string());
                Sourced::default(default)
            }
        }
    }

    /// A string read through `parse` (a name from a fixed set, an address...), else `default`.
    pub(crate) fn parsed_with<T, E: fmt::Display>(
        &mut self,
        table: &Table,
        key: &str,
        default: T,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Sourced<T> {
        match self.optional_parsed_with(table, key, parse) {
            Some(value) => value,
            None => Sourced::default(default),
        }
    }

    pub(crate) fn parsed<T: FromStr>(&mut self, table: &Table, key: &str, default: T) -> Sourced<T>
    where
        T::Err: fmt::Display,
    {
        self.parsed_with(table, key, default, str::parse::<T>)
    }

    pub(crate) fn optional_parsed_with<T, E: fmt::Display>(
        &mut self,
        table: &Table,
        key: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Sourced<T>> {
        let text = self.string(table, key)?;
        match parse(&text.value) {
            Ok(value) => Some(Sourced {
                value,
                origin: text.origin,
            }),
            Err(e) => {
                self.error(&table.scope, key, &text.origin, e);
                None
            }
        }
    }

    pub(crate) fn optional_parsed<T: FromStr>(
        &mut self,
        table: &Table,
        key: &str,
    ) -> Option<Sourced<T>>
    where
        T::Err: fmt::Display,
    {
        self.optional_parsed_with(table, key, str::parse::<T>)
    }

    pub(crate) fn flag(&mut self, table: &Table, key: &str, default: bool) -> bool {
        self.boolean(table, key).map_or(default, |b| b.value)
    }

    /// A non-empty string without control characters.
    pub(crate) fn text(&mut self, table: &Table, key: &str) -> Option<Sourced<String>> {
        let value = self.string(table, key)?;
        if value.value.trim().is_empty() {
            self.error(&table.scope, key, &value.origin, "must not be empty");
            return None;
        }
        if value.value.chars().any(char::is_control) {
            self.error(
                &table.scope,
                key,
                &value.origin,
                "must not contain control characters",
            );
            return None;
        }
        Some(value)
    }

    pub(crate) fn text_or(&mut self, table: &Table, key: &str, default: &str) -> String {
        self.text(table, key)
            .map_or_else(|| default.to_string(), |t| t.value)
    }

    /// A path; relative paths written in the file are relative to the file.
    pub(crate) fn path(&mut self, table: &Table, key: &str) -> Option<Sourced<PathBuf>> {
        let text = self.text(table, key)?;
        Some(Sourced {
            value: self.resolve_path(&text.value, &text.origin),
            origin: text.origin,
        })
    }

    /// A path to a file that must exist and be readable now.
    pub(crate) fn readable_file(&mut self, table: &Table, key: &str) -> Option<Sourced<PathBuf>> {
        let path = self.path(table, key)?;
        match check_readable_file(&path.value) {
            Ok(()) => Some(path),
            Err(message) => {
                self.error(&table.scope, key, &path.origin, message);
                None
            }
        }
    }

    /// A secret given in exactly one of its three forms, with the key it came from.
    /// An override of the inline form (e.g. NIGHTCRIER_SLACK_WEBHOOK_URL) replaces
    /// whatever the file says.
    pub(crate) fn secret(
        &mut self,
        table: &Table,
        keys: SecretKeys,
    ) -> Option<(&'static str, Sourced<Secret>)> {
        let inline = self.string(table, keys.inline);
        let overridden = inline
            .as_ref()
            .is_some_and(|v| matches!(v.origin, Origin::Override(_)));
        if !overridden {
            let present: Vec<&str> = keys.all().into_iter().filter(|k| table.has(k)).collect();
            if present.len() > 1 {
                let [inline_key, file_key, env_key] = keys.all();
                for key in &present[1..] {
                    let origin = self.origin_of(table, key).unwrap_or(Origin::Default);
                    let message = format!("set only one of {inline_key}, {file_key} and {env_key}");
                    self.error(&table.scope, key, &origin, message);
                }
                return None;
            }
        }
        if let Some(value) = inline {
            return self
                .checked_secret(table, keys.inline, &value.value, &value.origin)
                .map(|secret| (keys.inline, secret));
        }
        if let Some(path) = self.path(table, keys.file) {
            return match read_secret_file(&path.value) {
                Ok(value) => Some((
                    keys.file,
                    Sourced {
                        value: Secret::new(value),
                        origin: path.origin,
                    },
                )),
                Err(message) => {
                    self.error(&table.scope, keys.file, &path.origin, message);
                    None
                }
            };
        }
        let var = self.text(table, keys.env)?;
        let Some(value) = lookup_env(self.env(), &var.value) else {
            let message = format!("environment variable {} is not set", quote(&var.value));
            self.error(&table.scope, keys.env, &var.origin, message);
            return None;
        };
        let described = format!("environment variable {}", quote(&var.value));
        match check_secret_text(value.trim()) {
            Ok(()) => Some((
                keys.env,
                Sourced {
                    value: Secret::new(value.trim()),
                    origin: var.origin,
                },
            )),
            Err(problem) => {
                self.error(
                    &table.scope,
                    keys.env,
                    &var.origin,
                    format!("{described} {problem}"),
                );
                None
            }
        }
    }

    fn checked_secret(
        &mut self,
        table: &Table,
        key: &str,
        value: &str,
        origin: &Origin,
    ) -> Option<Sourced<Secret>> {
        match check_secret_text(value) {
            Ok(()) => Some(Sourced {
                value: Secret::new(value),
                origin: origin.clone(),
            }),
            Err(problem) => {
                self.error(&table.scope, key, origin, format!("value {problem}"));
                None
            }
        }
    }
}

/// Checks that `path` is a regular file this process can open.
pub(crate) fn check_readable_file(path: &Path) -> Result<(), String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if !metadata.is_file() {
        return Err(format!("{} is not a regular file", path.display()));
    }
    std::fs::File::open(path)
        .map(|_| ())
        .map_err(|e| format!("cannot read {}: {e}", path.display()))
}
