//! The agent CLIs `scripts/run-agent.sh` knows, the model each gets by default, and which
//! models each one serves, so that changing only `agent.cli` never hands a CLI a model of
//! another vendor.

use super::document::{Context, Table};
use super::error::quote;

/// `agent.cli` values, in the order error messages list them. `stub` is
/// `scripts/stub-agent.sh`, the stand-in the demo and the tests run.
pub const AGENT_CLIS: &[&str] = &["claude", "codex", "gemini", "goose", "stub"];

/// A model name that lets the CLI choose (for goose: `run-agent.sh`, from the provider).
pub const AUTO_MODEL: &str = "auto";

/// The model a CLI gets when neither `agent.model` nor `triage.model` names one.
pub fn default_model(cli: &str) -> &'static str {
    match cli {
        "claude" => "sonnet",
        "codex" => "gpt-6.2-sol",
        "gemini" => "gemini-2.5-pro",
        _ => AUTO_MODEL,
    }
}

/// `agent.cli`: one of [`AGENT_CLIS`].
pub(crate) fn parse_agent_cli(text: &str) -> Result<String, String> {
    let cli = text.trim();
    if AGENT_CLIS.contains(&cli) {
        Ok(cli.to_string())
    } else {
        Err(format!(
            "unknown agent CLI {} (expected claude, codex, gemini, goose or stub)",
            quote(text)
        ))
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Vendor {
    Anthropic,
    Google,
    OpenAi,
}

impl Vendor {
    fn models(self) -> &'static str {
        match self {
            Vendor::Anthropic => "Claude models",
            Vendor::Google => "Gemini models",
            Vendor::OpenAi => "OpenAI GPT models",
        }
    }
}

/// Whose model a name is, when the name says so; `None` for names of no known vendor.
fn vendor_of(model: &str) -> Option<Vendor> {
    let m = model.trim().to_ascii_lowercase();
    let o_series = |prefix: &str| {
        m.strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    };
    if matches!(m.as_str(), "sonnet" | "opus" | "haiku" | "opusplan")
        || m.starts_with("claude-")
        || m.starts_with("anthropic/")
    {
        Some(Vendor::Anthropic)
    } else if m.starts_with("gemini-") || m.starts_with("models/gemini") {
        Some(Vendor::Google)
    } else if m.starts_with("gpt-")
        || m.starts_with("chatgpt-")
        || m.starts_with("codex-")
        || ["o1", "o3", "o4"].into_iter().any(o_series)
    {
        Some(Vendor::OpenAi)
    } else {
        None
    }
}

/// The vendor whose models a CLI serves; `None` for a CLI that serves several (goose).
fn vendor_served(cli: &str) -> Option<Vendor> {
    match cli {
        "claude" => Some(Vendor::Anthropic),
        "codex" => Some(Vendor::OpenAi),
        "gemini" => Some(Vendor::Google),
        _ => None,
    }
}

/// Why `cli` cannot run `model`, if the name shows it belongs to another vendor.
pub(crate) fn model_mismatch(cli: &str, model: &str) -> Option<String> {
    let served = vendor_served(cli)?;
    let vendor = vendor_of(model)?;
    (vendor != served).then(|| {
        format!(
            "{} is one of the {}, which the {cli} CLI does not serve; name one of the {} \
             (default {}) or leave the model unset",
            quote(model),
            vendor.models(),
            served.models(),
            default_model(cli)
        )
    })
}

impl Context<'_> {
    /// A model name for `cli` (`agent.model` or a cluster's `triage.model`), or `None`
    /// when unset or refused.
    pub(crate) fn agent_model(&mut self, table: &Table, key: &str, cli: &str) -> Option<String> {
        let model = self.text(table, key)?;
        if let Some(problem) = model_mismatch(cli, &model.value) {
            self.error(&table.scope, key, &model.origin, problem);
            return None;
        }
        Some(model.value.trim().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cli_defaults_to_a_model_it_serves() {
        for cli in AGENT_CLIS {
            let model = default_model(cli);
            assert_eq!(model_mismatch(cli, model), None, "{cli} {model}");
        }
        assert_eq!(default_model("claude"), "sonnet");
        assert_eq!(default_model("gemini"), "gemini-2.5-pro");
        assert_eq!(default_model("goose"), AUTO_MODEL);
    }

    #[test]
    fn a_model_of_another_vendor_is_refused_with_the_cli_and_its_default() {
        let problem = model_mismatch("gemini", "sonnet").expect("refused");
        assert!(
            problem.contains("\"sonnet\" is one of the Claude models"),
            "{problem}"
        );
        assert!(
            problem.contains("the gemini CLI does not serve"),
            "{problem}"
        );
        assert!(problem.contains("gemini-2.5-pro"), "{problem}");
        assert!(model_mismatch("codex", "claude-opus-4-1").is_some());
        assert!(model_mismatch("codex", "gemini-2.5-flash").is_some());
        assert!(model_mismatch("claude", "gpt-5.5").is_some());
        assert!(model_mismatch("claude", "o3").is_some());
        assert!(model_mismatch("gemini", "o4-mini").is_some());
    }

    #[test]
    fn own_unknown_and_auto_models_pass_and_goose_takes_any() {
        assert_eq!(model_mismatch("claude", "opus"), None);
        assert_eq!(model_mismatch("claude", "claude-sonnet-4-5"), None);
        assert_eq!(model_mismatch("codex", "gpt-5.5"), None);
        assert_eq!(model_mismatch("codex", "o3"), None);
        assert_eq!(model_mismatch("gemini", "gemini-3-pro-preview"), None);
        assert_eq!(model_mismatch("claude", "my-gateway-model"), None);
        assert_eq!(model_mismatch("gemini", AUTO_MODEL), None);
        assert_eq!(model_mismatch("goose", "opus"), None);
        assert_eq!(model_mismatch("goose", "gpt-5.5"), None);
        // A name that only starts like a vendor's is no vendor's.
        assert_eq!(model_mismatch("claude", "o3x"), None);
    }

    #[test]
    fn only_the_four_launcher_clis_are_accepted() {
        for cli in AGENT_CLIS {
            assert_eq!(parse_agent_cli(cli).as_deref(), Ok(*cli));
        }
        assert_eq!(parse_agent_cli(" gemini ").as_deref(), Ok("gemini"));
        let err = parse_agent_cli("claude-code").unwrap_err();
        assert!(err.contains("\"claude-code\""), "{err}");
        assert!(
            err.contains("claude, codex, gemini, goose or stub"),
            "{err}"
        );
    }
}
