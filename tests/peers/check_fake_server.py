#!/usr/bin/env python3
"""Self-check of the fake kubernetes-mcp-server, using the MCP SDK's own client.

Connects with the SDK's Streamable HTTP client, initializes, sets the log level, calls
`events_subscribe` and requires every one of `--faults` faults to arrive as a
`notifications/message` (logger `kubernetes/faults`, distinct 16-hex faultIds).
Exits 0 when all arrived, 1 otherwise.

Two ways to run it:
  check_fake_server.py --url http://127.0.0.1:PORT/mcp --faults N [--cafile CA.pem] [--api-key K]
      checks a server that is already running (started with the same --faults);
  check_fake_server.py [--tls] [--api-key K] [--faults N]
      starts fake_k8s_mcp.py beside this file on a free loopback port (with --tls, behind a
      certificate from a throwaway CA made with openssl), checks it, also compares what the
      server says it sent (--sent-log) with what arrived, and stops it by its PID.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import signal
import ssl
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import anyio
import httpx2
import mcp_types as types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

HERE = Path(__file__).resolve().parent
FAULT_ID = re.compile(r"^[0-9a-f]{16}$")
STARTUP_TIMEOUT_SECONDS = 20.0
STOP_TIMEOUT_SECONDS = 10.0


class CheckFailed(Exception):
    pass


async def check(url: str, faults: int, timeout: float, verify: ssl.SSLContext | bool, api_key: str | None) -> list[str]:
    """Runs one session against `url`; returns the faultIds received, in order."""
    received: list[str] = []
    other_loggers: list[str] = []
    all_arrived = anyio.Event()

    problems: list[str] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        # Problems are collected rather than raised: the SDK runs this callback in its
        # own task, where an exception would not reach the check.
        if params.logger != "kubernetes/faults":
            other_loggers.append(str(params.logger))
            return
        data: Any = params.data
        if params.level != "warning" or not isinstance(data, dict):
            problems.append(f"malformed fault notification: {params!r}")
        else:
            fid = data.get("faultId")
            missing = [
                k
                for k in ("subscriptionId", "cluster", "faultType", "severity", "resource", "timestamp")
                if k not in data
            ]
            if not isinstance(fid, str) or not FAULT_ID.match(fid):
                problems.append(f"faultId is not 16 hex digits: {fid!r}")
            elif missing:
                problems.append(f"fault {fid} lacks {missing}")
            else:
                received.append(fid)
        if problems or len(received) >= faults:
            all_arrived.set()

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
    timeouts = httpx2.Timeout(10.0, read=max(timeout, 10.0))
    async with (
        httpx2.AsyncClient(verify=verify, headers=headers, timeout=timeouts) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write, logging_callback=on_log) as session,
    ):
        with anyio.fail_after(timeout):
            init = await session.initialize()
            if init.capabilities.logging is None:
                raise CheckFailed("server does not advertise the logging capability")
            await session.set_logging_level("info")
            result = await session.call_tool("events_subscribe", {"mode": "faults"})
            if result.is_error:
                raise CheckFailed(f"events_subscribe failed: {result.content!r}")
            text = result.content[0]
            if not isinstance(text, types.TextContent):
                raise CheckFailed(f"events_subscribe result is not text: {text!r}")
            reply = json.loads(text.text)
            for key in ("subscriptionId", "cluster", "mode", "filters", "createdAt"):
                if key not in reply:
                    raise CheckFailed(f"subscription reply lacks {key}: {reply!r}")
            if reply.get("status") != "active":
                raise CheckFailed(f"subscription not active: {reply!r}")
            if faults > 0:
                await all_arrived.wait()
    if problems:
        raise CheckFailed("; ".join(problems))
    if len(set(received)) != len(received):
        raise CheckFailed(f"duplicate faultIds among {len(received)} received")
    if len(received) != faults:
        raise CheckFailed(f"received {len(received)} faults, expected {faults}")
    print(
        f"check: {faults} faults received from {reply['cluster']} via {init.protocol_version}"
        f" (other loggers: {len(other_loggers)})",
        file=sys.stderr,
    )
    return received


def make_tls(dir_: Path) -> tuple[Path, Path, Path]:
    """Makes a throwaway CA and a server certificate for 127.0.0.1; returns (ca, cert, key)."""
    ca_key, ca = dir_ / "ca.key", dir_ / "ca.pem"
    key, csr, cert = dir_ / "server.key", dir_ / "server.csr", dir_ / "server.pem"
    ext = dir_ / "server.ext"
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*a: str) -> None:
        subprocess.run(["openssl", *a], check=True, capture_output=True)

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        str(ca_key),
        "-out",
        str(ca),
        "-days",
        "2",
        "-subj",
        "/CN=fake-k8s-mcp test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    run("req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run(
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-out",
        str(cert),
        "-days",
        "2",
        "-extfile",
        str(ext),
    )
    return ca, cert, key


def start_fake(args: list[str]) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "fake_k8s_mcp.py"), "--port", "0", *args],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = ""
    ready, _, _ = select.select([proc.stdout], [], [], STARTUP_TIMEOUT_SECONDS)
    if ready:
        line = proc.stdout.readline()
    if not line.startswith("LISTENING "):
        stop(proc)
        raise CheckFailed(f"fake server did not announce its port (got {line!r})")
    return proc, int(line.split()[1])


def stop(proc: subprocess.Popen[str]) -> int:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        return proc.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        raise CheckFailed("fake server ignored SIGTERM") from None


def run_self_contained(opts: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fake-k8s-check-") as tmp:
        tmpdir = Path(tmp)
        sent_log = tmpdir / "sent.log"
        fake_args = [
            "--faults",
            str(opts.faults),
            "--interval",
            str(opts.interval),
            "--cluster",
            opts.cluster,
            "--sent-log",
            str(sent_log),
        ]
        verify: ssl.SSLContext | bool = True
        scheme = "http"
        if opts.tls:
            ca, cert, key = make_tls(tmpdir)
            fake_args += ["--certfile", str(cert), "--keyfile", str(key)]
            verify = ssl.create_default_context(cafile=str(ca))
            scheme = "https"
        if opts.api_key:
            fake_args += ["--api-key", opts.api_key]
        proc, port = start_fake(fake_args)
        try:
            url = f"{scheme}://127.0.0.1:{port}/mcp"
            if opts.api_key:
                expect_unauthorized(url, verify)
            received = anyio.run(check, url, opts.faults, opts.timeout, verify, opts.api_key)
        finally:
            code = stop(proc)
        if code != 0:
            raise CheckFailed(f"fake server exited with {code} on SIGTERM")
        sent = sent_log.read_text().split() if sent_log.exists() else []
        if sorted(sent) != sorted(received):
            raise CheckFailed(f"sent-log has {len(sent)} faultIds, {len(received)} received; they differ")


def expect_unauthorized(url: str, verify: ssl.SSLContext | bool) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx2.Client(verify=verify, timeout=10.0) as http:
        status = http.post(url, json=body, headers={"Accept": "application/json, text/event-stream"}).status_code
    if status != 401:
        raise CheckFailed(f"request without the API key got {status}, expected 401")


def describe_leaves(eg: BaseExceptionGroup) -> list[str]:
    out: list[str] = []
    for e in eg.exceptions:
        if isinstance(e, BaseExceptionGroup):
            out += describe_leaves(e)
        else:
            out.append(f"{type(e).__name__}: {e}")
    return out


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="check this running server instead of starting one")
    p.add_argument("--cafile", help="CA bundle to trust for an https --url")
    p.add_argument("--tls", action="store_true", help="serve the started fake over TLS")
    p.add_argument("--api-key", help="bearer key (also started with it, and 401 without it checked)")
    p.add_argument("--faults", type=int, default=20)
    p.add_argument("--interval", type=float, default=0.01)
    p.add_argument("--cluster", default="check-cluster")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds for the whole session")
    opts = p.parse_args(argv)
    try:
        if opts.url:
            verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=opts.cafile) if opts.cafile else True
            anyio.run(check, opts.url, opts.faults, opts.timeout, verify, opts.api_key)
        else:
            run_self_contained(opts)
    except (CheckFailed, TimeoutError, OSError, subprocess.CalledProcessError) as e:
        print(f"check FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    except BaseExceptionGroup as eg:  # errors raised inside the SDK's task groups
        print(f"check FAILED: {'; '.join(describe_leaves(eg))}", file=sys.stderr)
        return 1
    print("check passed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
