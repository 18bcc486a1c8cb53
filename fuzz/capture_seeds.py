#!/usr/bin/env python3
"""Seeds the fuzz corpora (fuzz/corpus/<target>/) from real traffic.

Runs nightcrier itself (`nightcrier run`) against real MCP servers through a recording TCP
proxy, then cuts what the servers sent into seeds for each target:

  * the upstream kubernetes-mcp-server binary (Go MCP SDK), plain and over its own TLS;
  * the Python MCP SDK server of tests/peers/fake_k8s_mcp.py (the event-streaming double);
  * `nightcrier simulate`, plain and TLS, with several of its misbehaviours;
  * `openssl s_server` limited to TLS 1.2, whose certificate travels in clear records.

Seeds per target:
  http_response  every connection's bytes from the server, as received
  sse_stream     the decoded bodies of text/event-stream replies
  mcp_session    each cluster's replies, stream events and timer firings, as a script
  fault_event    the `data` of the fault notifications, and the shapes the server of
                 record documents (including `kubernetes/events` data, nested and flat)
  tls_records    every TLS connection's bytes from the server
  config_text    config/nightcrier.example.toml, the configuration `simulate` writes, and
                 the TOML texts of tests/config_*.rs

Needs the peers of scripts/setup.sh (.peers/) and target/release/nightcrier (built when
missing; NIGHTCRIER_BIN names another build). Run from anywhere: `python3 fuzz/capture_seeds.py [--seconds N]`. Seeds are
added next to what the corpora hold; `cargo fuzz cmin` then keeps the useful ones.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"
NIGHTCRIER = Path(os.environ.get("NIGHTCRIER_BIN") or ROOT / "target" / "release" / "nightcrier")
UPSTREAM = (
    ROOT / ".peers" / "npm" / "node_modules" / "kubernetes-mcp-server-linux-amd64" / "bin"
    / "kubernetes-mcp-server-linux-amd64"
)
VENV_PYTHON = ROOT / ".peers" / "venv" / "bin" / "python"
FAKE_SERVER = ROOT / "tests" / "peers" / "fake_k8s_mcp.py"

# Largest seed kept per target (the -max_len scripts/fuzz.sh gives it); longer captures are
# cut. mcp_session scripts are cut at a line end.
MAX_SEED = {"fault_event": 8192}
MAX_SEED_DEFAULT = 4096
MAX_SCRIPT = MAX_SEED_DEFAULT
EVENTS_PER_STREAM = 2
START_WAIT = 20.0


# --- recording proxy ---------------------------------------------------------------------

class Recording:
    """Every chunk through the proxies: (time, backend, connection, direction, bytes)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chunks: list[tuple[float, str, int, str, bytes]] = []
        self.next_conn = 0

    def add(self, backend: str, conn: int, direction: str, data: bytes) -> None:
        with self.lock:
            self.chunks.append((time.monotonic(), backend, conn, direction, data))

    def new_conn(self) -> int:
        with self.lock:
            self.next_conn += 1
            return self.next_conn


class Proxy:
    """Listens on 127.0.0.1, forwards each connection to `target`, records both ways."""

    def __init__(self, name: str, target: tuple[str, int], recording: Recording) -> None:
        self.name = name
        self.target = target
        self.recording = recording
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            self.sockets += [client, server]
            conn = self.recording.new_conn()
            threading.Thread(target=self.pump, args=(client, server, conn, "up"), daemon=True).start()
            threading.Thread(target=self.pump, args=(server, client, conn, "down"), daemon=True).start()

    def pump(self, src: socket.socket, dst: socket.socket, conn: int, direction: str) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.recording.add(self.name, conn, direction + "-eof", b"")
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            self.recording.add(self.name, conn, direction, data)
            try:
                dst.sendall(data)
            except OSError:
                return

    def stop(self) -> None:
        self.stopping = True
        self.listener.close()
        for s in self.sockets:
            try:
                s.close()
            except OSError:
                pass


# --- servers -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int) -> None:
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on port {port} after {START_WAIT} s")


def start(args: list, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [str(a) for a in args], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs
    )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def read_line_with(process: subprocess.Popen, word: str) -> list[str]:
    """Lines of stdout up to and including the first that contains `word`."""
    lines = []
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if word in line:
            return lines
    raise SystemExit(f"no {word!r} from {process.args[0]}: {lines}")


# --- HTTP and SSE, just enough to cut the recordings --------------------------------------

class Response:
    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = headers
        self.body = b""
        self.complete = False

    @property
    def is_sse(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")


class ResponseReader:
    """Incremental HTTP/1.1 response reader: feed bytes, get responses as they form."""

    def __init__(self) -> None:
        self.buf = b""
        self.current: Response | None = None
        self.mode = ""
        self.remaining = 0
        self.broken = False

    def feed(self, data: bytes) -> list[tuple[str, Response]]:
        """Returns ("head", r), ("body", r) and ("end", r) steps."""
        self.buf += data
        steps = []
        while True:
            if self.current is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return steps
                head, self.buf = self.buf[:end].decode("latin-1"), self.buf[end + 4:]
                lines = head.split("\r\n")
                status = int(lines[0].split(" ")[1])
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                self.current = Response(status, headers)
                steps.append(("head", self.current))
                if status in (204, 304) or 100 <= status < 200:
                    self.mode = "none"
                elif "chunked" in headers.get("transfer-encoding", ""):
                    self.mode, self.remaining = "chunk-size", 0
                elif "content-length" in headers:
                    self.mode, self.remaining = "length", int(headers["content-length"])
                else:
                    self.mode = "close"
            r = self.current
            if self.mode == "none" or (self.mode == "length" and self.remaining == 0):
                steps.append(("end", r))
                self.current = None
                continue
            if self.mode == "length":
                take = self.buf[: self.remaining]
                self.buf = self.buf[len(take):]
                self.remaining -= len(take)
                r.body += take
                steps.append(("body", r))
                if self.remaining:
                    return steps
                continue
            if self.mode == "close":
                r.body += self.buf
                self.buf = b""
                steps.append(("body", r))
                return steps
            if self.mode == "chunk-size":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return steps
                size = int(self.buf[:end].split(b";")[0], 16)
                self.buf = self.buf[end + 2:]
                if size == 0:
                    self.mode = "trailers"
                else:
                    self.mode, self.remaining = "chunk", size
                continue
            if self.mode == "chunk":
                take = self.buf[: self.remaining]
                self.buf = self.buf[len(take):]
                self.remaining -= len(take)
                r.body += take
                steps.append(("body", r))
                if self.remaining:
                    return steps
                self.mode = "chunk-end"
                continue
            if self.mode == "chunk-end":
                if len(self.buf) < 2:
                    return steps
                self.buf = self.buf[2:]
                self.mode = "chunk-size"
                continue
            if self.mode == "trailers":
                end = self.buf.find(b"\r\n")
                if end < 0:
                    return steps
                line, self.buf = self.buf[:end], self.buf[end + 2:]
                if not line:
                    steps.append(("end", r))
                    self.current = None
                continue


def sse_events(body: bytes) -> list[tuple[str, str]]:
    """(event type, data) of every complete event in `body`."""
    events = []
    event, data = "", []
    for line in re.split(rb"\r\n|\r|\n", body.decode("utf-8", "replace").encode()):
        text = line.decode()
        if not text:
            if data:
                events.append((event or "message", "\n".join(data)))
            event, data = "", []
        elif text.startswith(":"):
            continue
        else:
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "data":
                data.append(value)
            elif field == "event":
                event = value
    return events


def requests_in(data: bytes) -> list[tuple[str, dict | None]]:
    """(HTTP method, JSON body) of every complete request in `data`."""
    out = []
    while True:
        end = data.find(b"\r\n\r\n")
        if end < 0:
            return out
        head = data[:end].decode("latin-1")
        length = 0
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())
        body = data[end + 4: end + 4 + length]
        if len(body) < length:
            return out
        data = data[end + 4 + length:]
        try:
            message = json.loads(body) if body else None
        except ValueError:
            message = None
        out.append((head.split(" ")[0], message))


# --- cutting the recordings into seeds ----------------------------------------------------

class Seeds:
    def __init__(self) -> None:
        self.by_target: dict[str, dict[str, bytes]] = {}

    def add(self, target: str, name: str, data: bytes) -> None:
        data = data[: MAX_SEED.get(target, MAX_SEED_DEFAULT)]
        digest = hashlib.sha1(data).hexdigest()[:12]
        self.by_target.setdefault(target, {})[f"{name}-{digest}"] = data

    def write(self) -> None:
        for target, seeds in sorted(self.by_target.items()):
            directory = CORPUS / target
            directory.mkdir(parents=True, exist_ok=True)
            for name, data in seeds.items():
                (directory / name).write_bytes(data)
            print(f"{target}: {len(seeds)} seeds")


def one_line(text: str) -> str:
    # Raw line ends in JSON text are whitespace; escaped ones stay escaped.
    return text.replace("\r", " ").replace("\n", " ")


def cut(recording: Recording, tls_backends: set[str], seeds: Seeds) -> None:
    by_backend: dict[str, list] = {}
    for chunk in sorted(recording.chunks, key=lambda c: c[0]):
        by_backend.setdefault(chunk[1], []).append(chunk)
    for backend, chunks in by_backend.items():
        down: dict[int, bytes] = {}
        for _, _, conn, direction, data in chunks:
            if direction == "down":
                down[conn] = down.get(conn, b"") + data
        for i, (conn, data) in enumerate(sorted(down.items())):
            if backend in tls_backends:
                seeds.add("tls_records", f"{backend}-{i}", bytes([i & 1, 0x12]) + data)
            else:
                # Control connections carry bounded replies; the GET stream does not.
                is_stream = b"text/event-stream" in data[:1024] and b"chunked" in data[:1024]
                flags = 0x00 if is_stream else 0x04
                seeds.add("http_response", f"{backend}-{i}", bytes([flags, 0x02 + 4 * i]) + data)
        if backend not in tls_backends:
            script(backend, chunks, seeds)


def script(backend: str, chunks: list, seeds: Seeds) -> None:
    """One cluster's traffic as an mcp_session script, plus SSE and fault seeds."""
    lines: list[str] = []
    readers: dict[int, ResponseReader] = {}
    sent: dict[int, bytes] = {}
    pending: dict[int, list] = {}
    seen_requests: dict[int, int] = {}
    stream_conns: set[int] = set()
    active = False
    for _, _, conn, direction, data in chunks:
        if direction == "up":
            sent[conn] = sent.get(conn, b"") + data
            requests = requests_in(sent[conn])
            for method, message in requests[seen_requests.get(conn, 0):]:
                pending.setdefault(conn, []).append((method, message))
                if method == "GET":
                    stream_conns.add(conn)
                rpc = (message or {}).get("method")
                params = (message or {}).get("params") or {}
                if rpc == "ping":
                    lines.append("ping")
                elif rpc == "tools/call" and params.get("name") == "events_list_subscriptions":
                    lines.append("audit")
                elif rpc == "tools/call" and params.get("name") == "events_subscribe" and active:
                    lines.append("resubscribe")
            seen_requests[conn] = len(requests)
        elif direction == "down":
            reader = readers.setdefault(conn, ResponseReader())
            try:
                steps = [] if reader.broken else reader.feed(data)
            except (ValueError, IndexError):
                # Not HTTP (the simulator's garbage): the raw bytes are a seed already.
                reader.broken, steps = True, []
            for step, response in steps:
                if conn in stream_conns:
                    if step == "head":
                        lines.append(f"stream {response.status}" + (" sse" if response.is_sse else ""))
                        response.events_seen = 0
                        response.events_kept = 0
                    elif response.is_sse:
                        events = sse_events(response.body)
                        for event, text in events[response.events_seen:]:
                            if event == "message":
                                fault_seed(backend, text, seeds)
                                # A few events per stream; the timers and replies
                                # between them matter more to a script.
                                if response.events_kept < EVENTS_PER_STREAM:
                                    lines.append("event " + one_line(text))
                                    response.events_kept += 1
                        response.events_seen = len(events)
                    if step == "end" and response.is_sse:
                        seeds.add("sse_stream", f"{backend}-get", bytes([0x00, 0x05]) + response.body)
                    continue
                if step != "end":
                    continue
                method, message = (pending.get(conn) or [("POST", None)]).pop(0)
                if method != "POST":
                    continue
                session_id = response.headers.get("mcp-session-id")
                if session_id:
                    lines.append(f"sid {session_id}")
                if response.is_sse:
                    seeds.add("sse_stream", f"{backend}-post", bytes([0x00, 0x01]) + response.body)
                    texts = [t for e, t in sse_events(response.body) if e == "message"]
                else:
                    texts = [response.body.decode("utf-8", "replace").strip()]
                texts = [one_line(t) for t in texts if t]
                if any('"subscriptionId"' in t for t in texts):
                    active = True
                lines.append(f"reply {response.status} " + "\x1e".join(texts))
        elif direction == "down-eof" and conn in stream_conns:
            lines.append("close")
    # The handshake and the first events and timers are what a script needs; the fuzzer
    # runs short inputs faster.
    text = "F\n"
    for line in lines:
        if len(text) + len(line) + 1 > MAX_SCRIPT:
            break
        text += line + "\n"
    if lines:
        seeds.add("mcp_session", backend, text.encode())


def fault_seed(backend: str, text: str, seeds: Seeds) -> None:
    try:
        message = json.loads(text)
    except ValueError:
        return
    params = message.get("params") if isinstance(message, dict) else None
    if isinstance(params, dict) and params.get("logger") == "kubernetes/faults":
        data = json.dumps(params.get("data"), separators=(",", ":"))
        kind = str((params.get("data") or {}).get("faultType", ""))
        seeds.add("fault_event", f"{backend}-{kind}", data.encode())


# --- seeds that are not traffic ------------------------------------------------------------

# The shapes the server of record (kubernetes-mcp-server with events) documents.
DOCUMENTED_DATA = [
    {"subscriptionId": "sub-1a2b3c4d", "cluster": "prod-us-east-1", "faultId": "9f2c4e1a7b3d5c60",
     "faultType": "CrashLoop", "severity": "critical",
     "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api-7d9f", "namespace": "shop",
                  "uid": "4f1c2a9e-1111-2222-3333-444455556666"},
     "context": "Container entered CrashLoopBackOff state, restart count: 5, last exit code: 1",
     "timestamp": "2026-11-20T10:00:00Z"},
    {"subscriptionId": "sub-1a2b3c4d", "cluster": "", "faultId": "0a1b2c3d4e5f6071",
     "faultType": "NodeUnhealthy", "severity": "warning",
     "resource": {"apiVersion": "v1", "kind": "Node", "name": "node-3", "uid": "n-3"},
     "context": "Node condition Ready is Unknown", "timestamp": "2026-11-20T10:01:00Z"},
    {"subscriptionId": "sub-1a2b3c4d", "cluster": "prod-us-east-1", "faultId": "1122334455667788",
     "faultType": "CrashLoop", "severity": "critical",
     "resource": {"apiVersion": "v1", "kind": "Pod", "name": "api-7d9f", "namespace": "shop"},
     "context": json.dumps([{"container": "api", "logs": "panic: nil map\n\tmain.go:12\n"}])},
    {"subscriptionId": "sub-9", "cluster": "c", "event": {
        "namespace": "shop", "timestamp": "2026-11-20T10:00:00Z", "type": "Warning",
        "reason": "BackOff", "message": "Back-off restarting failed container",
        "labels": {"app": "api"},
        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": "api-7d9f",
                           "namespace": "shop", "uid": "u-1"},
        "count": 3, "firstTimestamp": "2026-11-20T09:58:00Z",
        "lastTimestamp": "2026-11-20T10:00:00Z"}},
    {"type": "Warning", "reason": "FailedScheduling", "message": "0/3 nodes are available",
     "involvedObject": {"kind": "Pod", "name": "web-1", "namespace": "default"},
     "lastTimestamp": "2026-11-20T10:00:00Z"},
    {"subscriptionId": "sub-9", "cluster": "c",
     "error": "Watch connection failed after maximum retry attempts", "degraded": True},
]


def rust_strings(text: str) -> list[str]:
    """String literals of Rust source that look like TOML, escapes decoded."""
    found = []
    for raw in re.findall(r'r#"(.*?)"#', text, re.S):
        found.append(raw)
    for lit in re.findall(r'"((?:[^"\\]|\\.)*)"', text):
        if "\\n" in lit and "=" in lit:
            found.append(lit.encode().decode("unicode_escape"))
    return [s for s in found if "=" in s and ("[" in s or "\n" in s)]


def static_seeds(seeds: Seeds, simulated_config: str) -> None:
    for i, data in enumerate(DOCUMENTED_DATA):
        seeds.add("fault_event", f"documented-{i}", json.dumps(data).encode())
    seeds.add("config_text", "example", (ROOT / "config" / "nightcrier.example.toml").read_bytes())
    seeds.add("config_text", "simulate-write-config", simulated_config.encode())
    for path in sorted((ROOT / "tests").glob("config_*.rs")):
        for i, text in enumerate(rust_strings(path.read_text())):
            seeds.add("config_text", f"{path.stem}-{i}", text.encode())
    # The framing modes of http_response: SSE bytes as the body of a Content-Length,
    # chunked and close-delimited response.
    body = b'event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{}}\n\n'
    for mode in (1, 2, 3):
        seeds.add("http_response", f"framed-{mode}", bytes([mode, 0x06]) + body)


# --- the run ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0, help="how long nightcrier runs")
    args = parser.parse_args()
    for needed in (UPSTREAM, VENV_PYTHON):
        if not needed.exists():
            raise SystemExit(f"{needed} is missing: run scripts/setup.sh first")
    if not NIGHTCRIER.exists():
        subprocess.run(["cargo", "build", "--release", "--locked"], cwd=ROOT, check=True)

    recording = Recording()
    processes: list[subprocess.Popen] = []
    proxies: list[Proxy] = []
    clusters: list[tuple[str, str, bool]] = []  # name, proxied endpoint, tls
    tls_backends: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="nightcrier-seeds-") as tmp:
        tmp = Path(tmp)
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-keyout", tmp / "key.pem", "-out", tmp / "cert.pem"],
            check=True, capture_output=True)
        cert, key = tmp / "cert.pem", tmp / "key.pem"
        kubeconfig = tmp / "kubeconfig"
        kubeconfig.write_text(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: unreachable\n  cluster:\n"
            "    server: https://127.0.0.1:1\n    insecure-skip-tls-verify: true\ncontexts:\n"
            "- name: unreachable\n  context:\n    cluster: unreachable\n    user: dummy\n"
            "current-context: unreachable\nusers:\n- name: dummy\n  user:\n    token: dummy\n")

        def proxied(name: str, port: int, tls: bool) -> None:
            proxy = Proxy(name, ("127.0.0.1", port), recording)
            proxies.append(proxy)
            host = "localhost" if tls else "127.0.0.1"
            scheme = "https" if tls else "http"
            clusters.append((name, f"{scheme}://{host}:{proxy.port}/mcp", tls))
            if tls:
                tls_backends.add(name)

        try:
            for tls in (False, True):
                port = free_port()
                extra = ["--tls-cert", cert, "--tls-key", key] if tls else []
                processes.append(start(
                    [UPSTREAM, "--port", port, "--bind-address", "127.0.0.1", "--kubeconfig",
                     kubeconfig, "--read-only", "--disable-multi-cluster", "--log-file", "stderr",
                     *extra], stdout=subprocess.DEVNULL))
                wait_for_port(port)
                proxied("upstream-tls" if tls else "upstream", port, tls)

            fake = start([VENV_PYTHON, FAKE_SERVER, "--faults", "6", "--interval", "0.2",
                          "--cluster", "fake"], stdout=subprocess.PIPE, text=True)
            processes.append(fake)
            port = int(read_line_with(fake, "LISTENING")[-1].split()[-1])
            proxied("python-sdk", port, False)

            behaviours = ["normal", "event-ids", "connection-close", "subscription-error",
                          "no-list-tool", "garbage", "refuse-tool", "stateless"]
            misbehave = []
            for i, behaviour in enumerate(behaviours):
                misbehave += ["--misbehave", f"{i}={behaviour}"]
            sim = start([NIGHTCRIER, "simulate", "--clusters", len(behaviours), "--rate", "4",
                         "--faults", "12", "--distinct", "5", *misbehave],
                        stdout=subprocess.PIPE, text=True)
            processes.append(sim)
            for line in read_line_with(sim, "ready")[:-1]:
                name, endpoint = line.split()
                index = int(name.rsplit("-", 1)[1])
                proxied(f"simulate-{behaviours[index]}", int(endpoint.split(":")[2].split("/")[0]), False)
            sim_tls = start([NIGHTCRIER, "simulate", "--clusters", "1", "--rate", "4", "--faults",
                             "4", "--tls-cert", cert, "--tls-key", key, "--name-prefix", "tls",
                             "--write-config", tmp / "simulated.toml"],
                            stdout=subprocess.PIPE, text=True)
            processes.append(sim_tls)
            line = read_line_with(sim_tls, "ready")[0]
            proxied("simulate-tls", int(line.split()[1].split(":")[2].split("/")[0]), True)

            port = free_port()
            processes.append(start(["openssl", "s_server", "-accept", port, "-tls1_2", "-cert",
                                    cert, "-key", key, "-www", "-quiet"],
                                   stdout=subprocess.DEVNULL))
            wait_for_port(port)
            proxied("openssl-tls12", port, True)

            config = tmp / "nightcrier.toml"
            text = (
                'log_level = "warn"\nworkspace_root = "ws"\n'
                '[connection]\nping_interval = "2s"\nsubscription_audit_interval = "3s"\n'
                'control_idle_timeout = "1s"\n'
                '[reconnect]\ninitial = "1s"\nmax = "3s"\n[health]\nlisten = "off"\n'
            )
            for name, endpoint, tls in clusters:
                text += f'\n[[clusters]]\nname = "{name}"\n[clusters.mcp]\nendpoint = "{endpoint}"\n'
                if tls:
                    text += f'ca_file = "{cert}"\n'
            config.write_text(text)
            daemon = start([NIGHTCRIER, "run", "--config", config], cwd=tmp,
                           stdout=subprocess.DEVNULL)
            processes.append(daemon)
            time.sleep(args.seconds)
            stop(daemon)
            if daemon.returncode not in (0, None):
                raise SystemExit(f"nightcrier run exited with {daemon.returncode}")
            time.sleep(0.5)
            simulated_config = (tmp / "simulated.toml").read_text()
        finally:
            for process in reversed(processes):
                stop(process)
            for proxy in proxies:
                proxy.stop()

    seeds = Seeds()
    cut(recording, tls_backends, seeds)
    static_seeds(seeds, simulated_config)
    seeds.write()


if __name__ == "__main__":
    sys.exit(main())
