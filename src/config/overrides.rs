//! Settings given on the command line or in `NIGHTCRIER_*` environment variables.
//! Precedence: flags > environment > file > defaults.

use std::collections::HashMap;
use std::path::PathBuf;

/// The environment variable naming the configuration file.
pub const CONFIG_ENV: &str = "NIGHTCRIER_CONFIG";

/// Values from `nightcrier run` / `nightcrier check` flags; `None` leaves the setting alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FlagOverrides {
    pub log_level: Option<String>,
    pub log_format: Option<String>,
    /// An address, or `"off"` to disable the health server.
    pub health_listen: Option<String>,
    /// A loopback address, or `"off"`.
    pub admin_listen: Option<String>,
    pub workspace_root: Option<PathBuf>,
    pub severity_threshold: Option<String>,
    pub shard: Option<String>,
    pub subscribe_mode: Option<String>,
}

/// A setting that can come from outside the file: its dotted field, its variable and its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OverridableSetting {
    pub field: &'static str,
    pub env: &'static str,
    pub flag: Option<&'static str>,
}

const fn setting(
    field: &'static str,
    env: &'static str,
    flag: Option<&'static str>,
) -> OverridableSetting {
    OverridableSetting { field, env, flag }
}

/// Every setting the environment or a flag can set.
pub const OVERRIDABLE: &[OverridableSetting] = &[
    setting("log_level", "NIGHTCRIER_LOG_LEVEL", Some("--log-level")),
    setting("log_format", "NIGHTCRIER_LOG_FORMAT", Some("--log-format")),
    setting(
        "severity_threshold",
        "NIGHTCRIER_SEVERITY_THRESHOLD",
        Some("--severity-threshold"),
    ),
    setting(
        "subscribe_mode",
        "NIGHTCRIER_SUBSCRIBE_MODE",
        Some("--subscribe-mode"),
    ),
    setting(
        "workspace_root",
        "NIGHTCRIER_WORKSPACE_ROOT",
        Some("--workspace-root"),
    ),
    setting(
        "health.listen",
        "NIGHTCRIER_HEALTH_LISTEN",
        Some("--health-listen"),
    ),
    setting(
        "admin.listen",
        "NIGHTCRIER_ADMIN_LISTEN",
        Some("--admin-listen"),
    ),
    setting("shard", "NIGHTCRIER_SHARD", Some("--shard")),
    setting(
        "agent.max_concurrent_agents",
        "NIGHTCRIER_MAX_CONCURRENT_AGENTS",
        None,
    ),
    setting("agent.model", "NIGHTCRIER_AGENT_MODEL", None),
    setting("slack.webhook_url", "NIGHTCRIER_SLACK_WEBHOOK_URL", None),
    setting("mcp_endpoint", "NIGHTCRIER_MCP_ENDPOINT", None),
    setting("kubeconfig", "NIGHTCRIER_KUBECONFIG", None),
];

/// Where an overriding value came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverrideSource {
    Env(&'static str),
    Flag(&'static str),
}

/// The overriding values, looked up by dotted field.
#[derive(Debug, Default)]
pub(crate) struct Overrides {
    by_field: HashMap<&'static str, (String, OverrideSource)>,
}

impl Overrides {
    /// Environment first, then flags on top. Empty variables count as unset, as
    /// container runtimes often pass them empty.
    pub(crate) fn new(env: &[(String, String)], flags: &FlagOverrides) -> Overrides {
        let mut by_field = HashMap::new();
        for setting in OVERRIDABLE {
            if let Some(value) = lookup_env(env, setting.env).filter(|v| !v.is_empty()) {
                by_field.insert(
                    setting.field,
                    (value.to_string(), OverrideSource::Env(setting.env)),
                );
            }
        }
        let workspace_root = flags
            .workspace_root
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let flag_values = [
            ("log_level", &flags.log_level),
            ("log_format", &flags.log_format),
            ("health.listen", &flags.health_listen),
            ("admin.listen", &flags.admin_listen),
            ("workspace_root", &workspace_root),
            ("severity_threshold", &flags.severity_threshold),
            ("shard", &flags.shard),
            ("subscribe_mode", &flags.subscribe_mode),
        ];
        for (field, value) in flag_values {
            let Some(value) = value else { continue };
            let flag = OVERRIDABLE
                .iter()
                .find(|s| s.field == field)
                .and_then(|s| s.flag)
                .unwrap_or("--?");
            by_field.insert(field, (value.clone(), OverrideSource::Flag(flag)));
        }
        Overrides { by_field }
    }

    pub(crate) fn get(&self, field: &str) -> Option<(&str, OverrideSource)> {
        self.by_field
            .get(field)
            .map(|(value, source)| (value.as_str(), *source))
    }
}

/// The last value of `name` in `env` (later entries win, as in a shell).
pub fn lookup_env<'a>(env: &'a [(String, String)], name: &str) -> Option<&'a str> {
    env.iter()
        .rev()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn flags_beat_environment() {
        let flags = FlagOverrides {
            log_level: Some("debug".into()),
            ..FlagOverrides::default()
        };
        let o = Overrides::new(&env(&[("NIGHTCRIER_LOG_LEVEL", "warn")]), &flags);
        assert_eq!(
            o.get("log_level"),
            Some(("debug", OverrideSource::Flag("--log-level")))
        );
    }

    #[test]
    fn environment_fills_fields_without_flags() {
        let o = Overrides::new(
            &env(&[("NIGHTCRIER_AGENT_MODEL", "opus")]),
            &FlagOverrides::default(),
        );
        assert_eq!(
            o.get("agent.model"),
            Some(("opus", OverrideSource::Env("NIGHTCRIER_AGENT_MODEL")))
        );
        assert_eq!(o.get("log_level"), None);
    }

    #[test]
    fn empty_environment_values_count_as_unset() {
        let o = Overrides::new(&env(&[("NIGHTCRIER_SHARD", "")]), &FlagOverrides::default());
        assert_eq!(o.get("shard"), None);
    }

    #[test]
    fn every_overridable_setting_has_a_distinct_variable() {
        let mut names: Vec<_> = OVERRIDABLE.iter().map(|s| s.env).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), OVERRIDABLE.len());
        assert!(names.iter().all(|n| n.starts_with("NIGHTCRIER_")));
    }
}
