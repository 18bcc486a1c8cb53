//! `nightcrier simulate --control`: commands read from stdin, one a line, so a script (the
//! chaos soak) can disturb a running fleet. Every command answers one line on stdout:
//! `ok …` or `error …`. Clusters are named by index (0-based) or by name.
//!
//! ```text
//! kill I          the server dies: listener, sockets and sessions go
//! restart I       a fresh server listens again on the same port
//! cut I           every GET stream of the cluster is cut (sessions stay)
//! stall I         accept and read, never answer (open streams go silent)
//! normal I        back to the faithful behaviour
//! emit I N        N new faults on cluster I; `emit all N` on every cluster
//! stats           one line per cluster: name, faults sent, streams open, sessions, cuts
//! dump PATH       writes `NAME FAULT_ID` for every fault notification written, per cluster
//! ```

use super::{Behaviour, SimCluster};
use std::io::{BufRead, Write};

/// Reads commands until end of input.
pub fn run(clusters: &[SimCluster], input: impl BufRead, out: &mut dyn Write) {
    for line in input.lines() {
        let Ok(line) = line else {
            return;
        };
        let reply = match execute(clusters, line.trim()) {
            Ok(reply) => format!("ok {reply}\n"),
            Err(e) => format!("error {e}\n"),
        };
        if out
            .write_all(reply.as_bytes())
            .and_then(|_| out.flush())
            .is_err()
        {
            return;
        }
    }
}

fn execute(clusters: &[SimCluster], line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    let arg = words.next();
    match command {
        "stats" => Ok(stats(clusters)),
        "dump" => {
            let path = arg.ok_or("dump needs a path")?;
            dump(clusters, path)
        }
        "emit" => {
            let which = arg.ok_or("emit needs a cluster and a count")?;
            let count: u32 = words
                .next()
                .and_then(|n| n.parse().ok())
                .ok_or("emit needs a count")?;
            let targets: Vec<&SimCluster> = if which == "all" {
                clusters.iter().collect()
            } else {
                vec![find(clusters, which)?]
            };
            let mut delivered = 0;
            for cluster in targets {
                for _ in 0..count {
                    delivered += usize::from(cluster.emit_fault("critical", "CrashLoop").is_some());
                }
            }
            Ok(format!("emitted, {delivered} written to a stream"))
        }
        "kill" | "restart" | "cut" | "stall" | "normal" => {
            let cluster = find(clusters, arg.ok_or("which cluster?")?)?;
            match command {
                "kill" => {
                    cluster.stop_listening();
                    Ok(format!("{} killed", cluster.name()))
                }
                "restart" => cluster
                    .restart()
                    .map(|()| format!("{} restarted", cluster.name()))
                    .map_err(|e| e.to_string()),
                "cut" => {
                    let cut = cluster
                        .sessions()
                        .iter()
                        .filter(|s| cluster.cut_stream(s))
                        .count();
                    Ok(format!("{} {cut} streams cut", cluster.name()))
                }
                "stall" => {
                    cluster.set_behaviour(Behaviour::Stall);
                    Ok(format!("{} stalled", cluster.name()))
                }
                _ => {
                    cluster.set_behaviour(Behaviour::Normal);
                    Ok(format!("{} normal", cluster.name()))
                }
            }
        }
        "" => Err("empty command".into()),
        other => Err(format!("unknown command {other:?}")),
    }
}

fn find<'a>(clusters: &'a [SimCluster], which: &str) -> Result<&'a SimCluster, String> {
    if let Ok(index) = which.parse::<usize>() {
        return clusters
            .get(index)
            .ok_or_else(|| format!("no cluster {index} (there are {})", clusters.len()));
    }
    clusters
        .iter()
        .find(|c| c.name() == which)
        .ok_or_else(|| format!("no cluster named {which:?}"))
}

fn stats(clusters: &[SimCluster]) -> String {
    let mut out = format!("{} clusters", clusters.len());
    for c in clusters {
        let s = c.stats();
        out.push_str(&format!(
            "; {} sent={} streams={} sessions={} cut={}",
            c.name(),
            s.faults_sent,
            s.get_streams_open,
            c.sessions().len(),
            s.streams_cut
        ));
    }
    out
}

fn dump(clusters: &[SimCluster], path: &str) -> Result<String, String> {
    let mut text = String::new();
    let mut lines = 0;
    for c in clusters {
        for id in c.stats().fault_ids_sent {
            text.push_str(c.name());
            text.push(' ');
            text.push_str(&id);
            text.push('\n');
            lines += 1;
        }
    }
    // Written whole, then renamed, so a reader polling for the file never sees half.
    let partial = format!("{path}.partial");
    std::fs::write(&partial, text)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|e| format!("dump {path}: {e}"))?;
    Ok(format!("{lines} fault ids written to {path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{SimOptions, Simulator};
    use std::net::TcpStream;

    #[test]
    fn control_commands_kill_restart_and_answer_one_line_each() {
        let sim = Simulator::start(SimOptions {
            clusters: 2,
            rate_per_sec: 0.0,
            ..SimOptions::default()
        })
        .unwrap();
        let port = sim.clusters()[1].port();
        let mut out = Vec::new();
        run(
            sim.clusters(),
            "kill 1\nbogus\nemit all 2\nstats\n".as_bytes(),
            &mut out,
        );
        assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
        run(
            sim.clusters(),
            "restart sim-001\nrestart 7\n".as_bytes(),
            &mut out,
        );
        assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6, "{text}");
        assert_eq!(lines[0], "ok sim-001 killed");
        assert!(lines[1].starts_with("error unknown command"), "{text}");
        // No subscriber: faults start but reach no stream.
        assert_eq!(lines[2], "ok emitted, 0 written to a stream");
        assert!(
            lines[3].starts_with("ok 2 clusters; sim-000 sent=0"),
            "{text}"
        );
        assert_eq!(lines[4], "ok sim-001 restarted");
        assert!(lines[5].starts_with("error no cluster 7"), "{text}");
        sim.stop();
    }
}
