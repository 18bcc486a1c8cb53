//! `nightcrier demo`: the whole pipeline on one machine, with nothing to install. It starts
//! the built-in simulator (a few clusters: one without triage, one answering garbage), runs
//! the daemon's loop and pipeline against it with the stub agent and a fake `kubectl`, prints
//! a line per cluster as it goes and a summary at the end, and stops by itself.
//!
//! The simulator behaves like the real events server, which sends a fault to a subscription
//! once (it deduplicates for 15 minutes). Midway, each healthy simulated server drops its
//! subscription silently, as the real server does when a fault finds no event stream;
//! nightcrier notices at its next subscription check, subscribes again, and the repeated
//! fault the new subscription brings is caught by nightcrier's own deduplication. A
//! silence in the demo's file holds for one kind of fault on the second cluster (its
//! faults are recorded, not investigated). Last, the first two clusters report the same
//! crash-looping pod of one Deployment: one incident lists both, and one agent
//! investigates it.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::CommandError;
use crate::config::{self, FlagOverrides};
use crate::daemon::{loop_options, pipeline_for};
use crate::event_loop::{EventLoop, SignalSet};
use crate::health::board::{HealthBoard, Published};
use crate::metrics::counters::ClusterCounters;
use crate::sim::{Behaviour, SimOptions, Simulator};

const STUB_AGENT: &str = include_str!("../scripts/stub-agent.sh");
const FAKE_KUBECTL: &str =
    "#!/bin/sh\n# demo kubectl: every read check is allowed, every write denied\n\
     case \"$5\" in create|patch|delete) echo no; exit 1 ;; esac\necho yes\n";
const FAULTS_PER_CLUSTER: u64 = 3;
/// Faults a cluster receives before its server drops the subscription.
const FAULTS_BEFORE_DROP: u64 = FAULTS_PER_CLUSTER - 1;
/// The demo's silence: `PodCrash` faults of the second cluster, under maintenance.
const SILENCE_NAME: &str = "demo-maintenance";
const SILENCED_FAULT_TYPE: &str = "PodCrash";

const USAGE: &str = "Usage: nightcrier demo [--clusters N] [--duration SECONDS] [--dir DIR]

Runs the daemon against the built-in simulator with the stub agent: N simulated clusters
(at least 3; default 4), one with triage disabled and one answering garbage. Stops by
itself after SECONDS (default 30) or once every fault is handled; Ctrl-C stops it early
(exit status 130). Its files (the configuration and the incident workspaces) are kept in
DIR (default: a new directory under the system temp dir), so the reports can be read
afterwards; the last line says where, and how to remove them.";

struct DemoOptions {
    clusters: usize,
    duration: Duration,
    dir: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Option<DemoOptions>, String> {
    let mut options = DemoOptions {
        clusters: 4,
        duration: Duration::from_secs(30),
        dir: None,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = |flag: &str| {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--clusters" => {
                options.clusters = value("--clusters")?
                    .parse()
                    .ok()
                    .filter(|n| (3..=100).contains(n))
                    .ok_or("--clusters must be a number from 3 to 100")?;
            }
            "--duration" => {
                let seconds: u64 = value("--duration")?
                    .parse()
                    .ok()
                    .filter(|s| (1..=3600).contains(s))
                    .ok_or("--duration must be 1 to 3600 seconds")?;
                options.duration = Duration::from_secs(seconds);
            }
            "--dir" => options.dir = Some(PathBuf::from(value("--dir")?)),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(options))
}

fn write_executable(path: &Path, body: &str) -> Result<(), String> {
    std::fs::write(path, body)
        .and_then(|_| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

pub fn run(args: &[String]) -> Result<(), CommandError> {
    let Some(options) = parse(args).map_err(CommandError::Usage)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let dir = options.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("nightcrier-demo-{}", std::process::id()))
    });
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // The generated configuration names files in DIR, and relative paths in a configuration
    // file are taken from the file's directory: so every path written is absolute.
    let dir = std::path::absolute(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Executables are written before any thread exists, so no fork can hold them open.
    let agent = dir.join("stub-agent.sh");
    let kubectl = dir.join("kubectl");
    write_executable(&agent, STUB_AGENT)?;
    write_executable(&kubectl, FAKE_KUBECTL)?;

    let garbage = options.clusters - 1;
    let sim = Simulator::start(SimOptions {
        clusters: options.clusters,
        name_prefix: "demo".into(),
        rate_per_sec: 1.0,
        faults_per_cluster: Some(FAULTS_PER_CLUSTER),
        distinct_faults: FAULTS_PER_CLUSTER - 1,
        behaviours: vec![(garbage, Behaviour::Garbage)],
        ..SimOptions::default()
    })
    .map_err(|e| format!("simulator: {e}"))?;

    let text = demo_config(&dir, &agent, &kubectl, &sim, garbage)?;
    let config_path = dir.join("nightcrier.toml");
    std::fs::write(&config_path, &text).map_err(|e| format!("{}: {e}", config_path.display()))?;
    let config = config::parse_str(&text, &config_path, &[], &FlagOverrides::default())
        .map_err(|e| format!("demo configuration:\n{e}"))?;
    crate::logging::init(
        log::LevelFilter::Warn,
        config::LogFormat::Text,
        std::env::var("RUST_LOG").ok().as_deref(),
    );

    println!(
        "nightcrier demo: {} simulated clusters, stub agent, workspaces in {}",
        options.clusters,
        dir.display()
    );
    for cluster in &config.clusters {
        println!(
            "  {:<10} {:<28} triage {}",
            cluster.name,
            cluster.mcp.endpoint.url,
            if cluster.triage_ready() { "on" } else { "off" }
        );
    }
    println!(
        "  ({} answers garbage on purpose)\n",
        sim.clusters()[garbage].name()
    );

    let clusters: Vec<_> = config.clusters.iter().cloned().map(Arc::new).collect();
    let pipeline = pipeline_for(&config, &clusters)?;
    // The loop stops on SIGINT and SIGTERM by itself; this records which one came, so the
    // demo can say it was cut short.
    let interrupted = Arc::new(AtomicUsize::new(0));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_usize(signal, Arc::clone(&interrupted), signal as usize)
            .map_err(|e| format!("cannot register signal handlers: {e}"))?;
    }
    let board = HealthBoard::new();
    let mut event_loop = EventLoop::new(
        loop_options(&config, SignalSet::All),
        pipeline,
        board.clone(),
    )
    .map_err(|e| format!("event loop: {e}"))?;
    let handle = event_loop.handle();
    let worker = std::thread::Builder::new()
        .name("nightcrier-loop".into())
        .spawn(move || event_loop.run(&clusters))
        .map_err(|e| format!("event loop thread: {e}"))?;

    let started = Instant::now();
    let mut last_print = Instant::now() - Duration::from_secs(10);
    let mut last = board.latest();
    let mut dropped = vec![false; sim.clusters().len()];
    // Investigations done when the same fault went to two clusters.
    let mut fleet_fault_sent: Option<u64> = None;
    while started.elapsed() < options.duration && !last.stopping {
        let (published, _) =
            board.wait_for(Duration::from_millis(500), |p| p.sequence > last.sequence);
        last = published;
        for (index, cluster) in sim.clusters().iter().enumerate() {
            let received = last
                .clusters
                .iter()
                .find(|c| c.name == cluster.name())
                .map_or(0, |c| c.event_count);
            if index != garbage && !dropped[index] && received >= FAULTS_BEFORE_DROP {
                dropped[index] = cluster.cancel_all_subscriptions() > 0;
                if dropped[index] {
                    println!(
                        "  ({} drops its subscription silently, as the real server does after a stream cut)",
                        cluster.name()
                    );
                }
            }
        }
        if last_print.elapsed() >= Duration::from_secs(2) {
            print!("{}", status_lines(&last, started.elapsed()));
            let _ = std::io::stdout().flush();
            last_print = Instant::now();
        }
        if finished(&last, sim.clusters()[garbage].name()) {
            let investigated: u64 = last
                .pipeline
                .clusters
                .values()
                .map(|c| c.agents_investigated + c.agents_failed + c.agents_timed_out)
                .sum();
            let correlated: u64 = last
                .pipeline
                .clusters
                .values()
                .map(|c| c.faults_correlated)
                .sum();
            if let Some(before) = fleet_fault_sent {
                if correlated > 0 && investigated > before {
                    break;
                }
            } else {
                // Last, the same fault on the first two clusters: one incident, one run.
                let sent = sim.clusters()[..2]
                    .iter()
                    .filter(|c| c.emit_fleet_fault("critical", "CrashLoop").is_some())
                    .count();
                fleet_fault_sent = Some(investigated);
                println!(
                    "  (the same pod of Deployment shop/api crash-loops on {} and {})",
                    sim.clusters()[0].name(),
                    sim.clusters()[1].name()
                );
                if sent < 2 {
                    break;
                }
            }
        }
    }
    handle.shutdown();
    let result = worker
        .join()
        .map_err(|_| "event loop thread panicked".to_string())?;
    result.map_err(|e| format!("event loop: {e}"))?;
    let final_state = board.latest();
    let signal = interrupted.load(Ordering::SeqCst) as i32;
    if signal != 0 {
        let name = if signal == signal_hook::consts::SIGINT {
            "SIGINT"
        } else {
            "SIGTERM"
        };
        print!(
            "\nCut short by {name} after {:.1}s: the summary shows what was done until then.\n",
            started.elapsed().as_secs_f64()
        );
    }
    print!("{}", summary(&final_state, &dir, sim.clusters()[1].name()));
    println!(
        "\nThe demo's files are kept in {} (remove them with: rm -r {})",
        dir.display(),
        shell_word(&dir.display().to_string())
    );
    sim.stop();
    if signal != 0 {
        return Err(CommandError::Interrupted(signal));
    }
    Ok(())
}

/// `text` as one word for a POSIX shell: quoted unless it is plain.
fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@".contains(&b));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn demo_config(
    dir: &Path,
    agent: &Path,
    kubectl: &Path,
    sim: &Simulator,
    garbage: usize,
) -> Result<String, String> {
    let mut text = String::new();
    let quote = |p: &Path| format!("{:?}", p.display().to_string());
    let _ = writeln!(
        text,
        "# written by `nightcrier demo`\nworkspace_root = {}\nseverity_threshold = \"info\"\nshutdown_timeout = \"5s\"\n\n\
         [reconnect]\ninitial = \"500ms\"\nmax = \"5s\"\n\n[connection]\nsubscription_audit_interval = \"2s\"\n\n[dedup]\nwindow = \"300s\"\n\n\
         [agent]\nscript = {}\ncli = \"stub\"\nmodel = \"demo\"\ntimeout = \"30s\"\nmax_concurrent_agents = 2\n\n\
         [preflight]\nkubectl = {}\n\n[health]\nenabled = false\n",
        quote(&dir.join("incidents")),
        quote(agent),
        quote(kubectl),
    );
    for (index, cluster) in sim.clusters().iter().enumerate() {
        let kubeconfig = dir.join(format!("kubeconfig-{}", cluster.name()));
        std::fs::write(
            &kubeconfig,
            format!("# read-only kubeconfig of {}\n", cluster.name()),
        )
        .map_err(|e| format!("{}: {e}", kubeconfig.display()))?;
        let triage = index != 2;
        let environment = if index == 0 { "production" } else { "staging" };
        let _ = writeln!(
            text,
            "[[clusters]]\nname = \"{}\"\nenvironment = \"{environment}\"\npriority = {}\nlabels = {{ region = \"demo-{index}\" }}\n\
             [clusters.mcp]\nendpoint = \"{}\"\n[clusters.triage]\nenabled = {triage}\nkubeconfig = {}\n",
            cluster.name(),
            match index {
                _ if index == garbage => 0,
                0 => 20,
                _ => 10,
            },
            cluster.endpoint(),
            quote(&kubeconfig),
        );
    }
    // Holds from a minute ago for an hour: the whole demo.
    let now = std::time::SystemTime::now();
    let _ = writeln!(
        text,
        "[[silences]]\nname = \"{SILENCE_NAME}\"\ncomment = \"maintenance of {}'s pods\"\n\
         created_by = \"nightcrier demo\"\nstarts_at = \"{}\"\nends_at = \"{}\"\n\
         matchers = {{ cluster = \"{}\", fault_type = \"{SILENCED_FAULT_TYPE}\" }}\n",
        sim.clusters()[1].name(),
        crate::agent::workspace::rfc3339(now - Duration::from_secs(60)),
        crate::agent::workspace::rfc3339(now + Duration::from_secs(3600)),
        sim.clusters()[1].name(),
    );
    Ok(text)
}

/// Every healthy cluster's faults arrived and were handled, and nothing is running.
fn finished(p: &Published, garbage: &str) -> bool {
    let healthy: Vec<_> = p.clusters.iter().filter(|c| c.name != garbage).collect();
    !healthy.is_empty()
        && healthy.iter().all(|c| c.event_count >= FAULTS_PER_CLUSTER)
        && p.pipeline.agents_running == 0
        && p.pipeline.agents_starting == 0
        && p.pipeline.queue_depth == 0
        && p.pipeline.faults_held == 0
}

/// A cluster's pipeline counters; zero before its first fault.
fn counters_of(p: &Published, cluster: &str) -> ClusterCounters {
    p.pipeline
        .clusters
        .get(cluster)
        .cloned()
        .unwrap_or_default()
}

fn status_lines(p: &Published, elapsed: Duration) -> String {
    let mut out = format!("[{:>4.1}s]\n", elapsed.as_secs_f64());
    for cluster in &p.clusters {
        let counters = counters_of(p, &cluster.name);
        let _ = writeln!(
            out,
            "  {:<10} {:<13} faults {:>2}  dedup {:>2}  skipped {:>2}  agents {:>2} running, {:>2} done{}",
            cluster.name,
            cluster.status.as_str(),
            cluster.event_count,
            counters.faults_deduplicated,
            counters.faults_skipped,
            counters.agents_running,
            counters.agents_investigated + counters.agents_failed + counters.agents_timed_out,
            cluster
                .last_error
                .as_deref()
                .map(|e| format!("  last error: {}", truncate(e, 60)))
                .unwrap_or_default()
        );
    }
    out
}

fn summary(p: &Published, dir: &Path, silenced_cluster: &str) -> String {
    let mut out = String::from("\nSummary\n");
    let mut investigated = 0;
    for cluster in &p.clusters {
        let c = counters_of(p, &cluster.name);
        investigated += c.agents_investigated;
        let _ = writeln!(
            out,
            "  {:<10} faults {:>2}  silenced {:>2}  deduplicated {:>2}  correlated {:>2}  triage skipped {:>2}  investigated {:>2}  failed {:>2}  resubscribed {:>2}  reconnects {:>2}",
            cluster.name,
            c.faults_received,
            c.faults_silenced,
            c.faults_deduplicated,
            c.faults_correlated,
            c.faults_skipped,
            c.agents_investigated,
            c.agents_failed + c.agents_timed_out,
            cluster.subscription_renewals,
            cluster.reconnects,
        );
    }
    let incidents = dir.join("incidents");
    let _ = writeln!(
        out,
        "\n{investigated} investigations written under {}",
        incidents.display()
    );
    if let Some(report) = first_report(&incidents) {
        let _ = writeln!(out, "for example: {}", report.display());
    }
    let silenced = counters_of(p, silenced_cluster).faults_silenced;
    if silenced > 0 {
        let _ = writeln!(
            out,
            "{silenced} {SILENCED_FAULT_TYPE} faults of {silenced_cluster} silenced by \"{SILENCE_NAME}\": recorded, not investigated"
        );
    }
    for (incident, clusters) in correlated_incidents(&incidents) {
        let _ = writeln!(
            out,
            "one investigation for the same fault on {}: {}",
            clusters.join(", "),
            incident.display()
        );
    }
    out
}

/// Incidents that list more than one cluster, with the clusters they list.
fn correlated_incidents(incidents: &Path) -> Vec<(PathBuf, Vec<String>)> {
    let Ok(entries) = std::fs::read_dir(incidents) else {
        return Vec::new();
    };
    let mut found: Vec<(PathBuf, Vec<String>)> = entries
        .filter_map(|e| e.ok().map(|e| e.path().join("incident.json")))
        .filter_map(|path| {
            let text = std::fs::read_to_string(&path).ok()?;
            let record: crate::agent::workspace::IncidentRecord =
                serde_json::from_str(&text).ok()?;
            let clusters: Vec<String> = record.correlated.into_iter().map(|m| m.cluster).collect();
            (clusters.len() > 1).then_some((path, clusters))
        })
        .collect();
    found.sort();
    found
}

fn first_report(incidents: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(incidents)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    dirs.sort();
    dirs.into_iter()
        .map(|d| d.join("output").join("investigation.md"))
        .find(|p| p.is_file())
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}
