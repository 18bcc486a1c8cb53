//! The environment an agent starts with: an explicit allowlist of the daemon's variables
//! (model API keys and endpoints, proxy settings, locale, the `run-agent.sh` settings), never
//! the daemon's whole environment. The incident variables (`INCIDENT_ID`, `CLUSTER_NAME`,
//! `KUBECONFIG`, `HOME`) are set by the executor, not taken from the daemon.
//!
//! An agent runs a model with a shell tool on text from the cluster; whatever it can read,
//! a prompt injection can make it post. So nothing passes by default, and names that hold
//! nightcrier's own secrets are refused even when allowed.

use std::ffi::{OsStr, OsString};

/// Passed when set in the daemon's environment. A trailing `*` matches a prefix.
pub const BUILTIN_ALLOW: &[&str] = &[
    // Search path and locale: tools need them, they hold no secret.
    "PATH",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    // Proxies, in both spellings.
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    // Model APIs: keys, endpoints and provider choices of the supported CLIs.
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_MODEL",
    "CLAUDE_CODE_USE_BEDROCK",
    "CLAUDE_CODE_USE_VERTEX",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "CODEX_API_KEY",
    "CODEX_HOME",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_CLOUD_PROJECT",
    "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_GENAI_USE_VERTEXAI",
    "OPENROUTER_API_KEY",
    "GOOSE_*",
    // scripts/run-agent.sh settings.
    "AGENT_RUNTIME",
    "AGENT_IMAGE",
    "AGENT_NETWORK",
    "AGENT_EXTRA_ENV",
    "CODEX_SANDBOX",
];

/// Variables only a container runtime client needs (docker, podman). Passed only when the
/// agent runs in a container; an agent on the host has no use for them.
pub const CONTAINER_CLIENT_ALLOW: &[&str] = &[
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "XDG_RUNTIME_DIR",
];

/// The variable `run-agent.sh` reads to choose where the CLI runs; `none` is this host.
pub const RUNTIME_VARIABLE: &str = "AGENT_RUNTIME";

fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The daemon's variables an agent may see: those matching `BUILTIN_ALLOW`, `extra` (the
/// operator's `agent.env_allow`) or, for a container agent, `CONTAINER_CLIENT_ALLOW`; minus
/// `hidden` (names holding nightcrier's own secrets), which wins over every allowlist.
pub fn allowed_env(
    daemon: impl IntoIterator<Item = (OsString, OsString)>,
    extra: &[String],
    container: bool,
    hidden: &[String],
) -> Vec<(OsString, OsString)> {
    let mut out: Vec<(OsString, OsString)> = daemon
        .into_iter()
        .filter(|(name, _)| {
            let Some(name) = name.to_str() else {
                return false;
            };
            let allowed = BUILTIN_ALLOW.iter().any(|p| matches(p, name))
                || extra.iter().any(|p| matches(p, name))
                || (container && CONTAINER_CLIENT_ALLOW.contains(&name));
            allowed && !hidden.iter().any(|h| h == name)
        })
        .collect();
    out.sort();
    out
}

/// Whether the agent runs on this host (`AGENT_RUNTIME=none` in its environment) rather
/// than in a container.
pub fn runs_on_host(env: &[(OsString, OsString)]) -> bool {
    env.iter()
        .any(|(name, value)| name == RUNTIME_VARIABLE && value.as_os_str() == OsStr::new("none"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect()
    }

    fn names(env: &[(OsString, OsString)]) -> Vec<&str> {
        env.iter().map(|(k, _)| k.to_str().unwrap()).collect()
    }

    #[test]
    fn only_allowlisted_names_pass() {
        let daemon = vars(&[
            ("PATH", "/usr/bin"),
            ("ANTHROPIC_API_KEY", "sk"),
            ("AWS_SECRET_ACCESS_KEY", "x"),
            ("KUBECONFIG", "/root/.kube/config"),
            ("HOME", "/root"),
            ("GOOSE_PROVIDER", "openai"),
            ("https_proxy", "http://proxy:3128"),
        ]);
        let env = allowed_env(daemon, &[], false, &[]);
        assert_eq!(
            names(&env),
            ["ANTHROPIC_API_KEY", "GOOSE_PROVIDER", "PATH", "https_proxy"]
        );
    }

    #[test]
    fn operator_names_and_prefixes_extend_the_list() {
        let daemon = vars(&[("MY_TOKEN", "t"), ("CORP_A", "a"), ("CORPX", "b")]);
        let extra = vec!["MY_TOKEN".to_string(), "CORP_*".to_string()];
        assert_eq!(
            names(&allowed_env(daemon, &extra, false, &[])),
            ["CORP_A", "MY_TOKEN"]
        );
    }

    #[test]
    fn hidden_names_win_over_every_allowlist() {
        let daemon = vars(&[("OPENAI_API_KEY", "same-as-mcp-key"), ("MY_TOKEN", "t")]);
        let extra = vec!["MY_TOKEN".to_string()];
        let hidden = vec!["OPENAI_API_KEY".to_string(), "MY_TOKEN".to_string()];
        assert!(allowed_env(daemon, &extra, false, &hidden).is_empty());
    }

    #[test]
    fn container_client_variables_pass_only_for_container_agents() {
        let daemon = vars(&[("HOME", "/root"), ("DOCKER_HOST", "unix:///x")]);
        assert!(allowed_env(daemon.clone(), &[], false, &[]).is_empty());
        assert_eq!(
            names(&allowed_env(daemon, &[], true, &[])),
            ["DOCKER_HOST", "HOME"]
        );
    }

    #[test]
    fn host_mode_is_agent_runtime_none() {
        assert!(runs_on_host(&vars(&[("AGENT_RUNTIME", "none")])));
        assert!(!runs_on_host(&vars(&[("AGENT_RUNTIME", "docker")])));
        assert!(!runs_on_host(&[]));
    }
}
