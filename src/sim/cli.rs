//! `nightcrier simulate`: run a simulated fleet until SIGINT/SIGTERM.

use super::{Behaviour, ClusterField, SimOptions, SimTls, Simulator};
use crate::cli::CommandError;
use signal_hook::consts::{SIGINT, SIGTERM};
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

const USAGE: &str = "\
Usage: nightcrier simulate [options]

Runs simulated kubernetes-mcp-server instances on 127.0.0.1, one port per cluster.
Prints `NAME ENDPOINT` per cluster, then `ready`; stops on SIGINT or SIGTERM.

  --clusters N              number of clusters (default 3)
  --rate R                  faults per second per cluster while subscribed (default 1; 0 = none)
  --base-port P             cluster i listens on P+i (default 0: ephemeral ports)
  --name-prefix S           cluster names are S-000, S-001, ... (default sim)
  --faults N                stop each cluster's faults after N
  --distinct N              faultIds repeat every N faults per cluster (default 0: never)
  --tls-cert FILE           serve HTTPS with this PEM certificate chain ...
  --tls-key FILE            ... and this PEM private key
  --api-key K               require Authorization: Bearer K
  --misbehave I=BEHAVIOUR   start cluster I as normal, stall, garbage, refuse-tool,
                            stateless, subscription-error, connection-close,
                            event-ids, cut-after-N, subscribe-reply-lost or
                            no-list-tool (repeatable)
  --write-block-timeout D   a notification write blocked this long cancels its
                            subscription; none: block until the connection fails
                            (default 2s)
  --session-monitor-interval D
                            how often subscriptions of vanished sessions are
                            removed (default 30s)
  --fault-dedup-window D    a subscription gets a faultId at most once per window
                            (default 15m; 0 sends every repeat)
  --cluster-field F         the payloads' cluster field: name (default) or empty
  --max-subscriptions-per-session N   (default 10)
  --max-subscriptions N     per server (default 100)
  --write-config PATH       write a nightcrier configuration for these clusters
  --ca-file F               ca_file to put into the written configuration
  --control                 read commands from stdin (kill I, restart I, cut I,
                            stall I, normal I, emit I|all N, stats, dump PATH),
                            one answer line each on stdout
  --help                    show this help
";

/// What the command line asked for.
#[derive(Debug)]
struct Invocation {
    opts: SimOptions,
    tls_files: Option<(String, String)>,
    write_config: Option<PathBuf>,
    ca_file: Option<String>,
    help: bool,
    control: bool,
}

/// Runs `nightcrier simulate` with the arguments that follow the subcommand.
pub fn run_cli(args: &[String]) -> Result<(), CommandError> {
    let inv = parse_args(args).map_err(CommandError::Usage)?;
    if inv.help {
        print!("{USAGE}");
        return Ok(());
    }
    // Registered before `ready` is printed, so a supervisor may signal us right after it.
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    let armed = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // A second signal ends the process at once if stopping ever hangs.
        signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&armed))
            .and_then(|_| signal_hook::flag::register(sig, Arc::clone(&armed)))
            .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    }
    let control = inv.control;
    serve(inv, &mut std::io::stdout(), |sim| {
        if control {
            let clusters = sim.clusters().to_vec();
            // Detached: it blocks on stdin, and ends with the process.
            let _ = std::thread::Builder::new()
                .name("sim-control".into())
                .spawn(move || {
                    super::control::run(&clusters, std::io::stdin().lock(), &mut std::io::stdout())
                });
        }
        let _ = signals.forever().next();
    })
    .map_err(CommandError::Failed)
}

/// Starts the fleet, announces it on `out`, waits for `wait` to return, stops.
fn serve(
    inv: Invocation,
    out: &mut dyn Write,
    wait: impl FnOnce(&Simulator),
) -> Result<(), String> {
    let mut opts = inv.opts;
    if let Some((cert, key)) = &inv.tls_files {
        opts.tls = Some(SimTls {
            cert_chain_pem: std::fs::read(cert).map_err(|e| format!("--tls-cert {cert}: {e}"))?,
            key_pem: std::fs::read(key).map_err(|e| format!("--tls-key {key}: {e}"))?,
        });
    }
    let api_key = opts.api_key.clone();
    let sim = Simulator::start(opts).map_err(|e| format!("cannot start the simulator: {e}"))?;
    let clusters: Vec<(String, String)> = sim
        .clusters()
        .iter()
        .map(|c| (c.name().to_string(), c.endpoint()))
        .collect();
    if let Some(path) = &inv.write_config {
        let text = render_config(&clusters, api_key.as_deref(), inv.ca_file.as_deref());
        std::fs::write(path, text)
            .map_err(|e| format!("--write-config {}: {e}", path.display()))?;
    }
    let mut announce = String::new();
    for (name, endpoint) in &clusters {
        announce.push_str(&format!("{name} {endpoint}\n"));
    }
    announce.push_str("ready\n");
    out.write_all(announce.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| format!("cannot write to stdout: {e}"))?;
    wait(&sim);
    sim.stop();
    Ok(())
}

fn parse_args(args: &[String]) -> Result<Invocation, String> {
    let mut inv = Invocation {
        opts: SimOptions::default(),
        tls_files: None,
        write_config: None,
        ca_file: None,
        help: false,
        control: false,
    };
    let (mut cert, mut key) = (None, None);
    let mut misbehave: Vec<(usize, Behaviour, String)> = Vec::new();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        if flag == "--help" || flag == "-h" {
            inv.help = true;
            continue;
        }
        if flag == "--control" {
            inv.control = true;
            continue;
        }
        let known = [
            "--clusters",
            "--rate",
            "--base-port",
            "--name-prefix",
            "--faults",
            "--distinct",
            "--tls-cert",
            "--tls-key",
            "--api-key",
            "--misbehave",
            "--write-config",
            "--ca-file",
            "--write-block-timeout",
            "--session-monitor-interval",
            "--fault-dedup-window",
            "--cluster-field",
            "--max-subscriptions-per-session",
            "--max-subscriptions",
        ];
        if !known.contains(&flag) {
            return Err(format!("unknown argument {arg:?} (see --help)"));
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))?,
        };
        let o = &mut inv.opts;
        match flag {
            "--clusters" => o.clusters = number(flag, &value)?,
            "--rate" => {
                o.rate_per_sec = value
                    .parse::<f64>()
                    .ok()
                    .filter(|r| r.is_finite() && *r >= 0.0)
                    .ok_or_else(|| format!("--rate: expected a number >= 0, got {value:?}"))?
            }
            "--base-port" => o.base_port = number(flag, &value)?,
            "--name-prefix" => o.name_prefix = value,
            "--faults" => o.faults_per_cluster = Some(number(flag, &value)?),
            "--distinct" => o.distinct_faults = number(flag, &value)?,
            "--tls-cert" => cert = Some(value),
            "--tls-key" => key = Some(value),
            "--api-key" => o.api_key = Some(value),
            "--misbehave" => {
                let (index, behaviour) = value.split_once('=').ok_or_else(|| {
                    format!("--misbehave: expected INDEX=BEHAVIOUR, got {value:?}")
                })?;
                let index: usize = number(flag, index)?;
                let behaviour: Behaviour =
                    behaviour.parse().map_err(|e| format!("--misbehave: {e}"))?;
                misbehave.push((index, behaviour, value.clone()));
            }
            "--write-config" => inv.write_config = Some(PathBuf::from(value)),
            "--write-block-timeout" => {
                o.write_block_timeout = if value == "none" {
                    None
                } else {
                    Some(duration(flag, &value)?)
                }
            }
            "--session-monitor-interval" => {
                o.session_monitor_interval = duration(flag, &value)?;
                if o.session_monitor_interval.is_zero() {
                    return Err(format!("{flag}: must be longer than zero"));
                }
            }
            "--fault-dedup-window" => o.fault_dedup_window = duration(flag, &value)?,
            "--cluster-field" => {
                o.cluster_field = match value.as_str() {
                    "name" => ClusterField::Name,
                    "empty" => ClusterField::Empty,
                    _ => return Err(format!("{flag}: expected name or empty, got {value:?}")),
                }
            }
            "--max-subscriptions-per-session" => {
                o.max_subscriptions_per_session = number(flag, &value)?
            }
            "--max-subscriptions" => o.max_subscriptions = number(flag, &value)?,
            _ => inv.ca_file = Some(value),
        }
    }
    if inv.opts.clusters == 0 || inv.opts.clusters > 10_000 {
        return Err(format!(
            "--clusters: expected 1 to 10000, got {}",
            inv.opts.clusters
        ));
    }
    let p = &inv.opts.name_prefix;
    if p.is_empty()
        || !p
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    {
        return Err(format!(
            "--name-prefix: {p:?} must be letters, digits, '.', '_' or '-'"
        ));
    }
    if inv.opts.base_port != 0 && usize::from(inv.opts.base_port) + inv.opts.clusters - 1 > 65_535 {
        return Err(format!(
            "--base-port: {} + {} clusters runs past port 65535",
            inv.opts.base_port, inv.opts.clusters
        ));
    }
    for (index, behaviour, given) in misbehave {
        if index >= inv.opts.clusters {
            return Err(format!(
                "--misbehave {given}: no cluster {index} (--clusters is {})",
                inv.opts.clusters
            ));
        }
        inv.opts.behaviours.push((index, behaviour));
    }
    inv.tls_files = match (cert, key) {
        (Some(c), Some(k)) => Some((c, k)),
        (None, None) => None,
        (Some(_), None) => return Err("--tls-cert needs --tls-key as well".to_string()),
        (None, Some(_)) => return Err("--tls-key needs --tls-cert as well".to_string()),
    };
    Ok(inv)
}

fn number<T: std::str::FromStr>(flag: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: expected a whole number in range, got {value:?}"))
}

/// A duration as `250ms`, `2s`, `15m` or `1h` (a bare number is seconds).
fn duration(flag: &str, value: &str) -> Result<Duration, String> {
    let bad = || format!("{flag}: expected a duration like 250ms, 2s, 15m or 1h, got {value:?}");
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (digits, unit) = value.split_at(split);
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    };
    ms.map(Duration::from_millis).ok_or_else(bad)
}

/// A nightcrier configuration with one `[[clusters]]` entry per simulated cluster.
fn render_config(
    clusters: &[(String, String)],
    api_key: Option<&str>,
    ca_file: Option<&str>,
) -> String {
    let mut out = String::from("# generated by nightcrier simulate\n");
    for (name, endpoint) in clusters {
        out.push_str("\n[[clusters]]\n");
        out.push_str(&format!("name = {}\n", toml_string(name)));
        out.push_str("environment = \"simulated\"\n");
        out.push_str("[clusters.mcp]\n");
        out.push_str(&format!("endpoint = {}\n", toml_string(endpoint)));
        if let Some(k) = api_key {
            out.push_str(&format!("api_key = {}\n", toml_string(k)));
        }
        if let Some(f) = ca_file {
            out.push_str(&format!("ca_file = {}\n", toml_string(f)));
        }
    }
    out
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpStream;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn defaults_are_three_clusters_at_one_fault_per_second() {
        let inv = parse_args(&[]).unwrap();
        assert_eq!(inv.opts.clusters, 3);
        assert_eq!(inv.opts.rate_per_sec, 1.0);
        assert_eq!(inv.opts.base_port, 0);
        assert_eq!(inv.opts.name_prefix, "sim");
        assert!(!inv.help);
    }

    #[test]
    fn every_flag_is_read() {
        let inv = parse_args(&args(
            "--clusters 5 --rate=2.5 --base-port 20000 --name-prefix edge --faults 7 --distinct 3 \
             --tls-cert c.pem --tls-key k.pem --api-key sekrit --misbehave 1=stall --misbehave 4=garbage \
             --misbehave 2=cut-after-3 --write-config out.toml --ca-file ca.pem --write-block-timeout 250ms \
             --session-monitor-interval 1s --fault-dedup-window 0 --cluster-field empty \
             --max-subscriptions-per-session 2 --max-subscriptions 5",
        ))
        .unwrap();
        let o = &inv.opts;
        assert_eq!((o.clusters, o.rate_per_sec, o.base_port), (5, 2.5, 20000));
        assert_eq!(
            (
                o.name_prefix.as_str(),
                o.faults_per_cluster,
                o.distinct_faults
            ),
            ("edge", Some(7), 3)
        );
        assert_eq!(o.api_key.as_deref(), Some("sekrit"));
        assert_eq!(
            o.behaviours,
            vec![
                (1, Behaviour::Stall),
                (4, Behaviour::Garbage),
                (2, Behaviour::CutAfter(3))
            ]
        );
        assert_eq!(o.write_block_timeout, Some(Duration::from_millis(250)));
        assert_eq!(o.session_monitor_interval, Duration::from_secs(1));
        assert_eq!(o.fault_dedup_window, Duration::ZERO);
        assert_eq!(o.cluster_field, ClusterField::Empty);
        assert_eq!(
            (o.max_subscriptions_per_session, o.max_subscriptions),
            (2, 5)
        );
        let never =
            parse_args(&args("--write-block-timeout none --fault-dedup-window 15m")).unwrap();
        assert_eq!(never.opts.write_block_timeout, None);
        assert_eq!(never.opts.fault_dedup_window, Duration::from_secs(900));
        assert_eq!(inv.tls_files, Some(("c.pem".into(), "k.pem".into())));
        assert_eq!(inv.write_config, Some(PathBuf::from("out.toml")));
        assert_eq!(inv.ca_file.as_deref(), Some("ca.pem"));
    }

    #[test]
    fn errors_name_the_flag() {
        for (line, flag) in [
            ("--clusters many", "--clusters"),
            ("--clusters 0", "--clusters"),
            ("--rate -1", "--rate"),
            ("--rate", "--rate"),
            ("--base-port 70000", "--base-port"),
            ("--base-port 65535 --clusters 2", "--base-port"),
            ("--misbehave 1", "--misbehave"),
            ("--misbehave 1=sulk", "--misbehave"),
            ("--misbehave 3=stall", "--misbehave"),
            ("--tls-cert c.pem", "--tls-cert"),
            ("--name-prefix ../x", "--name-prefix"),
            ("--frobnicate 1", "--frobnicate"),
            ("--write-block-timeout 2x", "--write-block-timeout"),
            ("--session-monitor-interval 0", "--session-monitor-interval"),
            ("--fault-dedup-window -1", "--fault-dedup-window"),
            ("--cluster-field context", "--cluster-field"),
            ("--max-subscriptions lots", "--max-subscriptions"),
            ("--misbehave 1=cut-after-0", "--misbehave"),
        ] {
            let err = parse_args(&args(line)).unwrap_err();
            assert!(err.contains(flag), "{line}: {err}");
        }
    }

    #[test]
    fn help_is_not_an_error() {
        assert!(parse_args(&args("--help")).unwrap().help);
        assert!(run_cli(&args("--help")).is_ok());
    }

    #[test]
    fn unreadable_tls_file_is_named() {
        let inv = parse_args(&args(
            "--tls-cert /nonexistent/c.pem --tls-key /nonexistent/k.pem",
        ))
        .unwrap();
        let err = serve(inv, &mut Vec::new(), |_| {}).unwrap_err();
        assert!(err.contains("--tls-cert /nonexistent/c.pem"), "{err}");
    }

    #[test]
    fn config_lists_every_cluster_with_optional_key_and_ca() {
        let clusters = vec![
            ("sim-000".to_string(), "http://127.0.0.1:1/mcp".to_string()),
            ("sim-001".to_string(), "http://127.0.0.1:2/mcp".to_string()),
        ];
        let plain = render_config(&clusters, None, None);
        assert_eq!(
            plain,
            "# generated by nightcrier simulate\n\n[[clusters]]\nname = \"sim-000\"\nenvironment = \"simulated\"\n\
             [clusters.mcp]\nendpoint = \"http://127.0.0.1:1/mcp\"\n\n[[clusters]]\nname = \"sim-001\"\n\
             environment = \"simulated\"\n[clusters.mcp]\nendpoint = \"http://127.0.0.1:2/mcp\"\n"
        );
        let full = render_config(&clusters[..1], Some("k\"ey"), Some("C:\\ca.pem"));
        assert!(full.contains("api_key = \"k\\\"ey\"\n"));
        assert!(full.contains("ca_file = \"C:\\\\ca.pem\"\n"));
    }

    #[test]
    fn serve_announces_clusters_writes_config_and_stops() {
        let path = std::env::temp_dir().join(format!("sim-cli-{}.toml", std::process::id()));
        let mut a = args("--clusters 2 --rate 0 --api-key k1 --ca-file ca.pem");
        a.push("--write-config".into());
        a.push(path.display().to_string());
        let inv = parse_args(&a).unwrap();
        let mut out = Vec::new();
        let mut seen = Vec::new();
        serve(inv, &mut out, |_| {
            let text = std::fs::read_to_string(&path).unwrap();
            seen.push(text);
        })
        .unwrap();
        let _ = std::fs::remove_file(&path);
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[2], "ready");
        let (name, endpoint) = lines[0].split_once(' ').unwrap();
        assert_eq!(name, "sim-000");
        let port: u16 = endpoint
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/mcp")
            .parse()
            .unwrap();
        assert!(
            TcpStream::connect(("127.0.0.1", port)).is_err(),
            "stopped after wait"
        );
        let config = &seen[0];
        assert!(config.contains(&format!("endpoint = \"{endpoint}\"")));
        assert!(config.contains("api_key = \"k1\"") && config.contains("ca_file = \"ca.pem\""));
        assert_eq!(config.matches("[[clusters]]").count(), 2);
    }
}
