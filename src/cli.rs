//! The command line: `nightcrier run | check | simulate | demo | help`, parsed by
//! hand (the grammar is small and fixed).

use std::io::Write;
use std::path::PathBuf;

use crate::config::{self, lookup_env, render_summary, ConfigErrors, FlagOverrides, LoadOptions};

/// Exit status: success.
pub const EXIT_OK: i32 = 0;
/// Exit status: the daemon or a subcommand failed at run time.
pub const EXIT_FAILURE: i32 = 1;
/// Exit status: the configuration is invalid.
pub const EXIT_CONFIG: i32 = 2;
/// Exit status: bad command line (as sysexits' EX_USAGE).
pub const EXIT_USAGE: i32 = 64;

const VERSION: &str = env!("CARGO_PKG_VERSION");

const USAGE: &str = "\
Usage:
  nightcrier run      [OPTIONS]   watch every configured cluster
  nightcrier check    [OPTIONS]   validate the configuration and print a summary
  nightcrier simulate [ARGS...]   run the built-in cluster simulator
  nightcrier demo     [ARGS...]   run a self-contained demonstration
  nightcrier help [COMMAND]       show this help, or a command's
  nightcrier --version            print the version
";

const OPTIONS: &str = "\
Options (run, check):
  --config FILE                  configuration file (else NIGHTCRIER_CONFIG, else
                                 ./nightcrier.toml, ./config/nightcrier.toml,
                                 /etc/nightcrier/nightcrier.toml)
  --log-level LEVEL              off, error, warn, info, debug or trace
  --log-format FORMAT            text or json (one JSON object per line)
  --health-listen ADDR|off       health and metrics address, or off
  --admin-listen ADDR|off        incident pages on a loopback address, or off
  --workspace-root DIR           where incident workspaces are created
  --severity-threshold SEVERITY  debug, info, warning, error or critical
  --subscribe-mode MODE          faults or events
  --shard I/N                    watch only the clusters of shard I of N
  -h, --help                     show this help

Flags beat NIGHTCRIER_* environment variables, which beat the file, which beats
the defaults. RUST_LOG, when set, overrides the log level.
";

const EXIT_CODES: &str = "\
Exit status: 0 success, 1 run-time failure, 2 invalid configuration, 64 bad usage.
";

/// Runs the command line of this process and returns its exit status.
pub fn main() -> i32 {
    let args: Result<Vec<String>, _> = std::env::args_os()
        .skip(1)
        .map(|a| a.into_string())
        .collect();
    // Unlocked handles: the daemon's other threads log to stderr while a command runs.
    let mut stdout = std::io::stdout();
    let mut stderr = std::io::stderr();
    match args {
        Ok(args) => run_with(&args, &process_env(), &mut stdout, &mut stderr),
        Err(_) => {
            let _ = writeln!(stderr, "nightcrier: command-line arguments must be UTF-8");
            EXIT_USAGE
        }
    }
}

/// The process environment; variables that are not UTF-8 are skipped (reading them
/// with `std::env::vars` would panic).
pub fn process_env() -> Vec<(String, String)> {
    std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect()
}

/// Runs `args` (without the program name) against `env`, writing to `out` and `err`.
pub fn run_with(
    args: &[String],
    env: &[(String, String)],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    let Some((command, rest)) = args.split_first() else {
        let _ = write!(err, "nightcrier: missing command\n\n{USAGE}");
        return EXIT_USAGE;
    };
    match command.as_str() {
        "-h" | "--help" | "help" => help(rest.first().map(String::as_str), out, err),
        "-V" | "--version" | "version" => {
            let _ = writeln!(out, "nightcrier {VERSION}");
            EXIT_OK
        }
        "run" => with_options("run", rest, out, err, |options, _, err| {
            run_daemon(options, env, err)
        }),
        "check" => with_options("check", rest, out, err, |options, out, err| {
            check(options, env, out, err)
        }),
        #[cfg(feature = "sim")]
        "simulate" => report(crate::sim::run_cli(rest), "simulate", err),
        #[cfg(feature = "sim")]
        "demo" => report(crate::demo::run(rest), "demo", err),
        #[cfg(not(feature = "sim"))]
        command @ ("simulate" | "demo") => report(
            Err(CommandError::Failed(
                "this build has no simulator or demo (built without the `sim` feature)".into(),
            )),
            command,
            err,
        ),
        other => {
            let _ = write!(err, "nightcrier: unknown command {other:?}\n\n{USAGE}");
            EXIT_USAGE
        }
    }
}

/// Why `simulate` or `demo` did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandError {
    /// A bad command line: exit status 64, with the command's usage.
    Usage(String),
    /// Anything that went wrong while running: exit status 1.
    Failed(String),
    /// Stopped early by this signal, after saying so: exit status 128 + the signal, as a
    /// shell reports a command it interrupted.
    Interrupted(i32),
}

impl From<String> for CommandError {
    fn from(message: String) -> CommandError {
        CommandError::Failed(message)
    }
}

fn report(result: Result<(), CommandError>, command: &str, err: &mut dyn Write) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(CommandError::Usage(message)) => {
            let _ = writeln!(
                err,
                "nightcrier {command}: {message}\nRun `nightcrier {command} --help` for its options."
            );
            EXIT_USAGE
        }
        Err(CommandError::Failed(message)) => {
            let _ = writeln!(err, "nightcrier {command}: {message}");
            EXIT_FAILURE
        }
        Err(CommandError::Interrupted(signal)) => 128 + signal,
    }
}

fn help(topic: Option<&str>, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match topic {
        None => {
            let _ = write!(
                out,
                "nightcrier {VERSION}: watches Kubernetes clusters through their MCP servers \
                 and starts a triage agent for every new fault.\n\n{USAGE}\n{OPTIONS}\n{EXIT_CODES}"
            );
            EXIT_OK
        }
        Some(command @ ("run" | "check")) => {
            let _ = write!(out, "{}\n{OPTIONS}\n{EXIT_CODES}", command_usage(command));
            EXIT_OK
        }
        Some("simulate") => {
            let _ = writeln!(out, "Usage: nightcrier simulate [ARGS...]\nRun `nightcrier simulate --help` for its options.");
            EXIT_OK
        }
        Some("demo") => {
            let _ = writeln!(
                out,
                "Usage: nightcrier demo [ARGS...]\nRuns a self-contained demonstration."
            );
            EXIT_OK
        }
        Some(other) => {
            let _ = write!(
                err,
                "nightcrier: no help for unknown command {other:?}\n\n{USAGE}"
            );
            EXIT_USAGE
        }
    }
}

fn command_usage(command: &str) -> String {
    match command {
        "run" => "Usage: nightcrier run [OPTIONS]\n\nLoads and validates the configuration, then \
                  watches every enabled cluster until SIGTERM or SIGINT.\n"
            .to_string(),
        _ => "Usage: nightcrier check [OPTIONS]\n\nValidates the configuration without connecting \
              anywhere and prints every cluster's effective settings (secrets redacted). Every \
              problem is listed with its file, cluster, field and line:column.\n"
            .to_string(),
    }
}

/// The options of `run` and `check`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CommandOptions {
    pub config_path: Option<PathBuf>,
    pub flags: FlagOverrides,
    pub help: bool,
}

/// Parses `--name VALUE` / `--name=VALUE` options; a repeated option keeps its last value.
pub fn parse_options(args: &[String]) -> Result<CommandOptions, String> {
    let mut options = CommandOptions::default();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        if arg == "-h" || arg == "--help" {
            options.help = true;
            continue;
        }
        let Some(option) = arg.strip_prefix("--") else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        let (name, inline_value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (option, None),
        };
        let known = [
            "config",
            "log-level",
            "log-format",
            "health-listen",
            "admin-listen",
            "workspace-root",
            "severity-threshold",
            "subscribe-mode",
            "shard",
        ];
        if !known.contains(&name) {
            return Err(format!("unknown option --{name}"));
        }
        let value = match inline_value {
            Some(value) => value,
            None => args
                .next()
                .filter(|v| !v.starts_with("--"))
                .cloned()
                .ok_or_else(|| format!("option --{name} needs a value"))?,
        };
        if value.is_empty() {
            return Err(format!("option --{name} needs a value"));
        }
        let flags = &mut options.flags;
        match name {
            "config" => options.config_path = Some(PathBuf::from(value)),
            "log-level" => flags.log_level = Some(value),
            "log-format" => flags.log_format = Some(value),
            "health-listen" => flags.health_listen = Some(value),
            "admin-listen" => flags.admin_listen = Some(value),
            "workspace-root" => flags.workspace_root = Some(PathBuf::from(value)),
            "severity-threshold" => flags.severity_threshold = Some(value),
            "subscribe-mode" => flags.subscribe_mode = Some(value),
            _ => flags.shard = Some(value),
        }
    }
    Ok(options)
}

fn with_options(
    command: &str,
    args: &[String],
    out: &mut dyn Write,
    err: &mut dyn Write,
    action: impl FnOnce(CommandOptions, &mut dyn Write, &mut dyn Write) -> i32,
) -> i32 {
    match parse_options(args) {
        Ok(options) if options.help => help(Some(command), out, err),
        Ok(options) => action(options, out, err),
        Err(message) => {
            let _ = write!(
                err,
                "nightcrier {command}: {message}\n\n{}\n{OPTIONS}",
                command_usage(command)
            );
            EXIT_USAGE
        }
    }
}

fn load(options: CommandOptions, env: &[(String, String)]) -> Result<config::Config, ConfigErrors> {
    config::load(&LoadOptions {
        config_path: options.config_path,
        env: env.to_vec(),
        flags: options.flags,
    })
}

fn print_errors(command: &str, errors: &ConfigErrors, err: &mut dyn Write) {
    for error in errors {
        let _ = writeln!(err, "{error}");
    }
    let count = errors.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let _ = writeln!(
        err,
        "nightcrier {command}: configuration refused ({count} {noun}); nothing was started"
    );
}

fn check(
    options: CommandOptions,
    env: &[(String, String)],
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> i32 {
    match load(options, env) {
        Ok(config) => {
            let _ = write!(out, "{}", render_summary(&config));
            EXIT_OK
        }
        Err(errors) => {
            print_errors("check", &errors, err);
            EXIT_CONFIG
        }
    }
}

fn run_daemon(options: CommandOptions, env: &[(String, String)], err: &mut dyn Write) -> i32 {
    let load_options = LoadOptions {
        config_path: options.config_path.clone(),
        env: env.to_vec(),
        flags: options.flags.clone(),
    };
    let config = match load(options, env) {
        Ok(config) => config,
        Err(errors) => {
            print_errors("run", &errors, err);
            return EXIT_CONFIG;
        }
    };
    crate::logging::init(
        config.log_level,
        config.log_format,
        lookup_env(env, "RUST_LOG"),
    );
    log::info!(
        "nightcrier {VERSION} starting with {} ({} clusters)",
        config.source.display(),
        config.clusters.len()
    );
    for warning in config.warnings() {
        log::warn!("{warning}");
    }
    match crate::daemon::run(config, load_options) {
        Ok(()) => EXIT_OK,
        Err(message) => {
            // Said once: in the log, which goes to stderr, unless the log is off.
            if log::log_enabled!(log::Level::Error) {
                log::error!("{message}");
            } else {
                let _ = writeln!(err, "nightcrier run: {message}");
            }
            EXIT_FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn run(list: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run_with(&args(list), &[], &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn options_take_separate_or_inline_values() {
        let o = parse_options(&args(&[
            "--config",
            "a.toml",
            "--log-level=debug",
            "--log-format",
            "json",
            "--health-listen",
            "off",
            "--admin-listen=127.0.0.1:9090",
            "--workspace-root",
            "/tmp/w",
            "--severity-threshold=critical",
            "--subscribe-mode",
            "events",
            "--shard",
            "1/3",
        ]))
        .unwrap();
        assert_eq!(o.config_path, Some(PathBuf::from("a.toml")));
        assert_eq!(o.flags.log_level.as_deref(), Some("debug"));
        assert_eq!(o.flags.log_format.as_deref(), Some("json"));
        assert_eq!(o.flags.health_listen.as_deref(), Some("off"));
        assert_eq!(o.flags.admin_listen.as_deref(), Some("127.0.0.1:9090"));
        assert_eq!(o.flags.workspace_root, Some(PathBuf::from("/tmp/w")));
        assert_eq!(o.flags.severity_threshold.as_deref(), Some("critical"));
        assert_eq!(o.flags.subscribe_mode.as_deref(), Some("events"));
        assert_eq!(o.flags.shard.as_deref(), Some("1/3"));
        assert!(!o.help);
    }

    #[test]
    fn bad_options_are_usage_errors() {
        assert!(parse_options(&args(&["--bogus", "x"]))
            .unwrap_err()
            .contains("--bogus"));
        assert!(parse_options(&args(&["--config"]))
            .unwrap_err()
            .contains("needs a value"));
        assert!(parse_options(&args(&["--config", "--shard", "1/2"])).is_err());
        assert!(parse_options(&args(&["--config="])).is_err());
        assert!(parse_options(&args(&["stray"]))
            .unwrap_err()
            .contains("stray"));
    }

    #[test]
    fn missing_or_unknown_commands_exit_64() {
        assert_eq!(run(&[]).0, EXIT_USAGE);
        let (code, _, err) = run(&["frobnicate"]);
        assert_eq!(code, EXIT_USAGE);
        assert!(err.contains("unknown command \"frobnicate\""));
        assert_eq!(run(&["check", "--nope"]).0, EXIT_USAGE);
        assert_eq!(run(&["help", "nope"]).0, EXIT_USAGE);
    }

    #[cfg(feature = "sim")]
    #[test]
    fn bad_simulate_and_demo_command_lines_exit_64_with_a_pointer_to_help() {
        for list in [
            &["simulate", "--bogus"][..],
            &["simulate", "--clusters", "many"],
            &["simulate", "--rate"],
            &["demo", "--bogus"],
            &["demo", "--clusters", "1"],
            &["demo", "--duration"],
        ] {
            let (code, out, err) = run(list);
            assert_eq!(code, EXIT_USAGE, "{list:?}: {err}");
            assert!(out.is_empty(), "{list:?}: {out}");
            assert!(
                err.starts_with(&format!("nightcrier {}: ", list[0])),
                "{list:?}: {err}"
            );
            assert!(err.contains("--help"), "{list:?}: {err}");
        }
    }

    #[test]
    fn help_and_version_exit_0_on_stdout() {
        for list in [
            &["--help"][..],
            &["help"],
            &["-h"],
            &["help", "check"],
            &["run", "--help"],
            &["check", "-h"],
        ] {
            let (code, out, err) = run(list);
            assert_eq!(code, EXIT_OK, "{list:?}");
            assert!(out.contains("Usage"), "{list:?}: {out}");
            assert!(err.is_empty());
        }
        let (code, out, _) = run(&["--version"]);
        assert_eq!(code, EXIT_OK);
        assert_eq!(out.trim(), format!("nightcrier {VERSION}"));
    }

    #[test]
    fn check_on_a_missing_file_exits_2_naming_it() {
        let (code, _, err) = run(&["check", "--config", "/nonexistent/nightcrier.toml"]);
        assert_eq!(code, EXIT_CONFIG);
        assert!(err.contains("/nonexistent/nightcrier.toml"), "{err}");
    }
}
