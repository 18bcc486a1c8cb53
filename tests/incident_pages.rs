//! The incident pages of the admin listener, driven in headless Chromium against the real
//! daemon: a simulated cluster whose fault types carry script, an agent whose report and
//! failure reason carry script and event handlers, and an older workspace already on disk.
//! The DOM Chromium builds must hold no element the incident data brought in, and must show
//! the incidents, newest first. The daemon runs with JSON logs, every line of which must
//! parse.
//!
//! Chromium is Debian's `chromium` (scripts/setup.sh installs it), or the binary named by
//! `NIGHTCRIER_CHROMIUM`.

mod common;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::exec::{executable, wait_for_exit};
use common::*;

/// Runs `document.body` mutations if script ever executes in the page.
const SCRIPT: &str =
    "<script>document.body.insertAdjacentHTML('beforeend','<p id=pwned-script>')</script>";
const IMG: &str =
    "<img src=x onerror=\"document.body.insertAdjacentHTML('beforeend','<p id=pwned-img>')\">";

const OLD_ID: &str = "20250101T000000Z-edge-1-00abcd";

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET over a real socket: status, head and body (`None` while nothing listens yet).
fn get(port: u16, target: &str) -> Option<(u16, String, String)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, head.to_string(), body.to_string()))
}

/// Polls `target` until `accept` holds on its body; bounded in time.
fn poll(port: u16, target: &str, what: &str, accept: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    let mut last = None;
    while Instant::now() < deadline {
        if let Some((200, _, body)) = get(port, target) {
            if accept(&body) {
                return body;
            }
            last = Some(body);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{target} never showed {what}; last answer: {last:?}");
}

fn chromium_binary() -> String {
    std::env::var("NIGHTCRIER_CHROMIUM").unwrap_or_else(|_| "chromium".to_string())
}

/// Runs headless Chromium with `args` and `url` in its own process group; returns its
/// standard output. Stops the group by its id if it has not ended within the bound.
fn chromium(profile: &Path, args: &[&str], url: &str) -> String {
    let out_path = profile.with_extension("out");
    let err_path = profile.with_extension("err");
    let binary = chromium_binary();
    let mut child: Child = Command::new(&binary)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {binary} (install it with scripts/setup.sh, or set NIGHTCRIER_CHROMIUM): {e}")
        });
    let exited = wait_for_exit(child.id(), Duration::from_secs(60));
    if !exited {
        // SAFETY: kill(2) on the process group this test started, by its id.
        unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    }
    let status = child.wait().unwrap();
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    assert!(exited, "chromium still running after 60 s: {stderr}");
    assert!(status.success(), "chromium {status}: {stderr}");
    stdout
}

/// The DOM Chromium built for `url`, after any script could have run.
fn dom(dir: &Path, name: &str, url: &str) -> String {
    chromium(&dir.join(format!("chromium-{name}")), &["--dump-dom"], url)
}

/// An agent following the contract: for a fault whose type says `Failing` it fails with
/// markup on stderr, otherwise it writes a report full of markup.
fn hostile_agent(dir: &Path) -> PathBuf {
    let report = format!(
        "# Investigation\n\n## Summary\nThe pod crashed. {SCRIPT}\n\n{IMG}\n\n\
         <iframe src=\"http://127.0.0.1:1/\"></iframe>\n\n\
         ## Root Cause\nSee [the runbook](javascript:alert(document.domain)) \
         and [the docs](https://example.com/runbook).\n\n## Confidence\nhigh\n"
    );
    let script = format!(
        "#!/bin/sh\n\
         # the agent contract: --workspace DIR ... PROMPT\n\
         workspace=$2\n\
         case \"$*\" in *Failing*) cat >&2 <<'REASON'\nquota exceeded {IMG}\nREASON\n exit 1 ;; esac\n\
         mkdir -p \"$workspace/output\"\n\
         cat > \"$workspace/output/investigation.md\" <<'REPORT'\n{report}REPORT\n"
    );
    executable(dir, "hostile-agent.sh", &script)
}

/// A workspace already on disk from an earlier run.
fn old_workspace(root: &Path) {
    let dir = root.join(OLD_ID);
    std::fs::create_dir_all(dir.join("output")).unwrap();
    let record = serde_json::json!({
        "incident_id": OLD_ID, "cluster": "edge-1", "environment": null, "labels": {},
        "fault": {"faultId": "f0", "faultType": "NodeNotReady", "severity": "warning",
                  "resource": {"kind": "Node", "name": "n1"}},
        "status": "investigated", "received_at": "2025-01-01T00:00:00Z",
        "started_at": "2025-01-01T00:00:00Z", "finished_at": "2025-01-01T00:00:03Z"
    });
    std::fs::write(dir.join("incident.json"), record.to_string()).unwrap();
    std::fs::write(dir.join("output/investigation.md"), "## Summary\nold\n").unwrap();
}

struct Daemon {
    child: Option<Child>,
    log: PathBuf,
}

impl Daemon {
    fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's PID, not reaped yet.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            if !wait_for_exit(child.id(), WAIT) {
                let _ = child.kill();
            }
            let status = child.wait().unwrap();
            assert!(status.success(), "daemon {status}");
        }
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every element the pages themselves are made of; anything else came from the data.
const PAGE_ELEMENTS: &[&str] = &[
    "!doctype", "html", "head", "meta", "title", "link", "body", "header", "main", "section",
    "article", "h1", "h2", "h3", "p", "a", "em", "strong", "code", "pre", "br", "span", "table",
    "thead", "tbody", "tr", "th", "td", "dl", "dt", "dd", "ol", "ul", "li", "time",
];

/// The start tags of a serialized DOM, as (name, attributes). Text `<` is serialized as
/// `&lt;`, so every `<` followed by a name starts an element.
fn elements(dom: &str) -> Vec<(String, String)> {
    dom.split('<')
        .skip(1)
        .filter(|tag| !tag.starts_with('/'))
        .map(|tag| {
            let inside = tag.split('>').next().unwrap_or("");
            let (name, attributes) = inside
                .split_once(char::is_whitespace)
                .unwrap_or((inside, ""));
            (name.to_ascii_lowercase(), attributes.to_string())
        })
        .collect()
}

/// Ids of incidents in the order the list page links them.
fn linked_ids(page: &str) -> Vec<String> {
    page.split("href=\"/incidents/")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn hostile_incident_data_never_becomes_markup_in_chromium_and_the_pages_show_the_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("incidents");
    old_workspace(&root);
    let sim = quiet_sim(1);
    let cluster = &sim.clusters()[0];
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, "# read-only\n").unwrap();
    let kubectl = executable(
        dir.path(),
        "kubectl",
        "#!/bin/sh\ncase \"$5\" in create|patch|delete) echo no; exit 1 ;; esac\necho yes\n",
    );
    let agent = hostile_agent(dir.path());
    let (health, admin) = (free_port(), free_port());
    let config = dir.path().join("nightcrier.toml");
    std::fs::write(
        &config,
        format!(
            "workspace_root = \"{root}\"\nseverity_threshold = \"info\"\n{FAST_TIMINGS}\n\
             [workspace]\nmax_age = \"3650d\"\n[agent]\nscript = \"{agent}\"\ncli = \"stub\"\nmodel = \"m\"\n\
             confinement = \"none\"\n[breaker]\nfailure_threshold = 10\n[preflight]\nkubectl = \"{kubectl}\"\n\
             [health]\nlisten = \"127.0.0.1:{health}\"\npublish_interval = \"100ms\"\n\
             [[clusters]]\nname = \"{name}\"\nenvironment = \"prod\"\n[clusters.mcp]\nendpoint = \"{endpoint}\"\n\
             [clusters.triage]\nenabled = true\nkubeconfig = \"{kubeconfig}\"\n",
            root = root.display(),
            agent = agent.display(),
            kubectl = kubectl.display(),
            kubeconfig = kubeconfig.display(),
            name = cluster.name(),
            endpoint = cluster.endpoint(),
        ),
    )
    .unwrap();
    let log = dir.path().join("daemon.log");
    let mut daemon = Daemon {
        child: Some(
            Command::new(env!("CARGO_BIN_EXE_nightcrier"))
                .args(["run", "--log-format", "json", "--config"])
                .arg(&config)
                .env("NIGHTCRIER_ADMIN_LISTEN", format!("127.0.0.1:{admin}"))
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .unwrap(),
        ),
        log: log.clone(),
    };
    poll(
        health,
        "/health/clusters",
        "an active cluster with its preflight",
        |body| body.contains("\"status\":\"active\"") && body.contains("\"minimum_met\":true"),
    );

    let hostile_type = format!("Crash{SCRIPT}");
    assert!(cluster.emit_fault("critical", &hostile_type).is_some());
    poll(admin, "/incidents", "the investigated incident", |b| {
        b.contains("status-investigated\">investigated</span></td>") && linked_ids(b).len() == 2
    });
    let failing_type = format!("Failing{IMG}");
    assert!(cluster.emit_fault("critical", &failing_type).is_some());
    let list = poll(admin, "/incidents", "the failed incident", |b| {
        b.contains("agent_failed") && linked_ids(b).len() == 3
    });
    let ids = linked_ids(&list);
    assert_eq!(ids[2], OLD_ID, "the older workspace comes last: {ids:?}");
    let newest = &ids[0];
    let investigated = &ids[1];
    assert!(
        newest >= investigated && investigated.as_str() > OLD_ID,
        "{ids:?}"
    );

    // The headers every page carries, the listener's own paths, and ids that are paths.
    let (status, head, _) = get(admin, &format!("/incidents/{investigated}")).unwrap();
    assert_eq!(status, 200);
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains(
            "content-security-policy: default-src 'none'; style-src 'self'; img-src 'none'"
        ),
        "{head}"
    );
    assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    for target in [
        "/incidents/..",
        "/incidents/../nightcrier.toml",
        "/incidents/..%2f..%2fetc%2fpasswd",
        "/incidents/%2e%2e",
        "/incidents/20250101T000000Z-nope-000000",
    ] {
        assert_eq!(get(admin, target).unwrap().0, 404, "{target}");
    }
    assert_eq!(get(admin, "/assets/admin.css").unwrap().0, 200);
    assert_eq!(
        get(health, "/incidents").unwrap().0,
        404,
        "the health listener never serves the incident pages"
    );

    let url = |path: &str| format!("http://127.0.0.1:{admin}{path}");
    let list_dom = dom(dir.path(), "list", &url("/incidents"));
    let detail_dom = dom(
        dir.path(),
        "detail",
        &url(&format!("/incidents/{investigated}")),
    );
    let failed_dom = dom(dir.path(), "failed", &url(&format!("/incidents/{newest}")));
    for (name, page) in [
        ("list", &list_dom),
        ("detail", &detail_dom),
        ("failed", &failed_dom),
    ] {
        assert!(page.contains("</main>"), "{name}: no page\n{page}");
        // An element the script would have added serializes as `id="pwned-…"`; the
        // escaped text of the data shows `id=pwned-…` without quotes.
        assert!(!page.contains("id=\"pwned"), "{name}: script ran:\n{page}");
        assert!(
            !page.to_ascii_lowercase().contains("href=\"javascript"),
            "{name}: a link kept its target:\n{page}"
        );
        for (tag, attributes) in elements(page) {
            assert!(
                PAGE_ELEMENTS.contains(&tag.as_str()),
                "{name}: an element <{tag}> reached the DOM:\n{page}"
            );
            assert!(
                !attributes
                    .split_whitespace()
                    .any(|a| a.to_ascii_lowercase().starts_with("on")),
                "{name}: an event handler on <{tag} {attributes}>:\n{page}"
            );
        }
    }
    // The list, newest first, with what happened to each.
    let list_ids = linked_ids(&list_dom);
    assert_eq!(list_ids, ids, "{list_dom}");
    assert!(list_dom.contains("Crash&lt;script&gt;"), "{list_dom}");
    assert!(list_dom.contains(cluster.name()));
    // The investigation: the report rendered, its markup shown as text.
    assert!(detail_dom.contains("<h2>Summary</h2>"), "{detail_dom}");
    assert!(detail_dom.contains("The pod crashed."), "{detail_dom}");
    assert!(
        detail_dom.contains("&lt;script&gt;document.body"),
        "{detail_dom}"
    );
    assert!(
        detail_dom.contains("<a href=\"https://example.com/runbook\">the docs</a>"),
        "{detail_dom}"
    );
    assert!(detail_dom.contains("<em>the runbook</em>"), "{detail_dom}");
    for section in ["Investigation", "Result", "Timeline", "Permissions"] {
        assert!(
            detail_dom.contains(&format!("<h2>{section}</h2>")),
            "{section}"
        );
    }
    assert!(
        detail_dom.contains("fault received by nightcrier"),
        "{detail_dom}"
    );
    assert!(detail_dom.contains("<td>pods/log</td>"), "{detail_dom}");
    // The failure: the agent's reason shown as text.
    assert!(
        failed_dom.contains("quota exceeded &lt;img"),
        "{failed_dom}"
    );
    assert!(failed_dom.contains("agent_failed"), "{failed_dom}");

    // A screenshot of the page, as the operations guide shows one.
    let png = dir.path().join("incident.png");
    chromium(
        &dir.path().join("chromium-shot"),
        &[&format!("--screenshot={}", png.display())],
        &url(&format!("/incidents/{investigated}")),
    );
    let image = std::fs::read(&png).unwrap();
    assert!(
        image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() > 10_000,
        "{} bytes",
        image.len()
    );

    // The daemon's JSON log: every line an object, the agent's lines naming the incident.
    let text = daemon.stop();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"))
        })
        .collect();
    assert!(
        lines.iter().any(|l| l["incident"] == investigated.as_str()
            && l["cluster"] == cluster.name()
            && l["target"] == "nightcrier::agent::executor"),
        "no executor line names {investigated}:\n{text}"
    );
    assert!(
        lines.iter().any(|l| l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("incident pages on http://127.0.0.1:"))),
        "{text}"
    );
}
