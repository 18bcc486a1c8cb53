//! Interop with the official MCP Python SDK acting as kubernetes-mcp-server: faults are sent
//! as notifications tied to no request, so they travel on the GET stream. Every fault the
//! peer sent must arrive, over plain HTTP and over TLS with a private CA.

mod common;

use std::collections::BTreeSet;
use std::path::Path;

use common::peers::start_python_fake;
use common::*;
use nightcrier::cluster::status::ConnectionStatus;

const FAULTS: usize = 40;

fn sent_ids(log: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| l.trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

fn run_against_fake(tls: bool) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("sent.log");
    let (material, ca_path) = tls_material(dir.path());
    let faults = FAULTS.to_string();
    let mut args = vec![
        "--faults",
        faults.as_str(),
        "--interval",
        "0.005",
        "--cluster",
        "python-sdk",
    ];
    let log_arg = log.display().to_string();
    args.extend(["--sent-log", log_arg.as_str()]);
    let cert = material.cert_path.display().to_string();
    let key = material.key_path.display().to_string();
    if tls {
        args.extend(["--certfile", cert.as_str(), "--keyfile", key.as_str()]);
    }
    let peer = start_python_fake(&args);
    let scheme = if tls { "https" } else { "http" };
    let ca_line = if tls {
        format!("ca_file = {:?}", ca_path.display().to_string())
    } else {
        String::new()
    };
    let text = format!(
        "{FAST_TIMINGS}\n[[clusters]]\nname = \"python-sdk\"\n[clusters.mcp]\nendpoint = \"{scheme}://127.0.0.1:{}/mcp\"\n{ca_line}\n",
        peer.port
    );
    let running = start_loop(&parse_config(&text, dir.path()));
    let events = running.collect(FAULTS);
    let received: BTreeSet<String> = events.iter().map(|e| e.event.fault_id.clone()).collect();
    assert_eq!(
        events.len(),
        FAULTS,
        "received {} of {FAULTS}",
        events.len()
    );
    assert_eq!(
        received,
        sent_ids(&log),
        "every fault the peer sent arrived, once"
    );
    assert!(events.iter().all(|e| e.cluster_name() == "python-sdk"));
    assert!(events.iter().all(|e| e.event.fault_type.len() > 1));
    let snapshot = running.wait_cluster(
        "python-sdk",
        |c| c.event_count == FAULTS as u64,
        "all faults counted",
    );
    assert_eq!(snapshot.status, ConnectionStatus::Active);
    running.stop().unwrap();
    drop(peer);
}

#[test]
fn python_sdk_faults_all_arrive_over_plain_http() {
    run_against_fake(false);
}

#[test]
fn python_sdk_faults_all_arrive_over_tls_with_private_ca() {
    run_against_fake(true);
}
