#!/usr/bin/env python3
"""A stand-in for kubernetes-mcp-server with the `events_subscribe` tool.

Built on the official MCP Python SDK's Streamable HTTP server (stateful sessions with
`Mcp-Session-Id`, one standalone GET stream per session), so nightcrier's client is
exercised against an independent implementation of the transport.

Behaviour, modelled on the Go server:
  * `initialize` advertises the `logging` capability; `logging/setLevel` is accepted.
    Log messages of a session are dropped until its level is set, and those below the
    level are dropped too.
  * `tools/call events_subscribe` answers with the subscription JSON as text content and
    then starts a background task that sends `--faults` fault notifications
    (`notifications/message`, level `warning`, logger `kubernetes/faults`), one every
    `--interval` seconds. They are sent as messages not related to any request, so the
    SDK routes them onto the session's standalone GET stream; a message sent while no GET
    stream is attached is dropped, as the Go server drops it.
  * Before the first fault the task waits up to `--await-stream` seconds for the GET
    stream to be attached (0 sends straight away, which is the Go server's behaviour).
  * Every fault that was handed to an attached GET stream is appended to `--sent-log`
    (one faultId per line), so a test can compare what was sent with what arrived.
  * faultIds are 16 hex digits, a hash of cluster, fault type, resource uid and
    container: the same cluster and index give the same faultId on every subscription,
    in every process, as one fault condition does on the real server.

When ready it prints `LISTENING <port>` on stdout. SIGTERM and SIGINT stop it with exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import signal
import socket
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import anyio
import mcp_types as types
import uvicorn
from mcp.server.lowlevel.server import Server
from mcp.server.streamable_http import GET_STREAM_KEY
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from starlette.applications import Starlette

# The logging capability is what kubernetes-mcp-server uses to deliver faults; the SDK
# marks it deprecated for the 2026 protocol era only.
warnings.filterwarnings("ignore", category=MCPDeprecationWarning)

log = logging.getLogger("fake_k8s_mcp")

TOOL_NAME = "events_subscribe"
FAULT_LOGGER = "kubernetes/faults"
FAULT_LEVEL = "warning"
LEVELS = ("debug", "info", "notice", "warning", "error", "critical", "alert", "emergency")
FAULT_TYPES = (
    ("CrashLoop", "critical", "Back-off restarting failed container {c} in pod {n}"),
    ("PodCrash", "warning", "Container {c} in pod {n} exited with code 137 (OOMKilled)"),
    ("JobFailure", "warning", "Job {n} has reached the specified backoff limit"),
    ("DeploymentFailure", "critical", "Deployment {n} exceeded its progress deadline"),
    ("NodeUnhealthy", "critical", "Node {n} condition Ready is Unknown"),
)
STREAM_POLL_SECONDS = 0.005


@dataclass
class Options:
    faults: int
    interval: float
    cluster: str
    first_fault: int
    await_stream: float
    sent_log: str | None


@dataclass
class SessionState:
    level: str | None = None


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fault_id(cluster: str, fault_type: str, uid: str, container: str) -> str:
    digest = hashlib.sha256(f"{cluster}\x00{fault_type}\x00{uid}\x00{container}".encode())
    return digest.hexdigest()[:16]


def make_fault(cluster: str, subscription_id: str, index: int) -> dict[str, Any]:
    fault_type, severity, context = FAULT_TYPES[index % len(FAULT_TYPES)]
    namespace = f"ns-{index % 7}"
    container = "app"
    uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fake-k8s/{cluster}/{index}"))
    if fault_type == "NodeUnhealthy":
        name = f"node-{index:04d}"
        resource: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "name": name, "uid": uid}
    elif fault_type == "JobFailure":
        name = f"job-{index:04d}"
        resource = {"apiVersion": "batch/v1", "kind": "Job", "name": name, "namespace": namespace, "uid": uid}
    elif fault_type == "DeploymentFailure":
        name = f"deploy-{index:04d}"
        resource = {"apiVersion": "apps/v1", "kind": "Deployment", "name": name, "namespace": namespace, "uid": uid}
    else:
        name = f"pod-{index:04d}"
        resource = {"apiVersion": "v1", "kind": "Pod", "name": name, "namespace": namespace, "uid": uid}
    return {
        "subscriptionId": subscription_id,
        "cluster": cluster,
        "faultId": fault_id(cluster, fault_type, uid, container),
        "faultType": fault_type,
        "severity": severity,
        "resource": resource,
        "context": context.format(c=container, n=name),
        "timestamp": utc_now(),
    }


def tool_definition() -> types.Tool:
    string = {"type": "string"}
    return types.Tool(
        name=TOOL_NAME,
        description="Subscribe to Kubernetes events or detected faults of this cluster.",
        input_schema={
            "type": "object",
            "properties": {
                "mode": {"type": "string", "enum": ["events", "faults"]},
                "namespaces": {"type": "array", "items": string},
                "labelSelector": string,
                "involvedKind": string,
                "involvedName": string,
                "involvedNamespace": string,
                "type": string,
                "reason": string,
            },
        },
    )


class FakeK8sMcp:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.sessions: dict[str, SessionState] = {}
        self.task_group: anyio.abc.TaskGroup | None = None
        self.server: Server[dict[str, Any]] = Server(
            "kubernetes-mcp-server",
            version="0.0.0-fake",
            lifespan=self._lifespan,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_set_logging_level=self._set_level,
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _server: Server[Any]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as tg:
            self.task_group = tg
            try:
                yield {}
            finally:
                tg.cancel_scope.cancel()
                self.task_group = None

    @staticmethod
    def _session_id(ctx: Any) -> str:
        request = ctx.request
        sid = request.headers.get("mcp-session-id") if request is not None else None
        if not sid:
            raise MCPError(types.INVALID_REQUEST, "no session")
        return sid

    def _state(self, sid: str) -> SessionState:
        return self.sessions.setdefault(sid, SessionState())

    def _transport(self, sid: str) -> Any:
        # The SDK offers no public way to ask whether a session's GET stream is attached;
        # this reads the session manager's table of transports (SDK version is pinned).
        return self.server.session_manager._server_instances.get(sid)

    def _session_alive(self, sid: str) -> bool:
        transport = self._transport(sid)
        return transport is not None and not transport.is_terminated

    def _stream_attached(self, sid: str) -> bool:
        transport = self._transport(sid)
        return transport is not None and GET_STREAM_KEY in transport._request_streams

    async def terminate_sessions(self) -> None:
        for transport in list(self.server.session_manager._server_instances.values()):
            await transport.terminate()

    async def _list_tools(self, _ctx: Any, _params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[tool_definition()])

    async def _set_level(self, ctx: Any, params: types.SetLevelRequestParams) -> types.EmptyResult:
        self._state(self._session_id(ctx)).level = params.level
        return types.EmptyResult()

    async def _call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        if params.name != TOOL_NAME:
            raise MCPError(types.INVALID_PARAMS, f'unknown tool "{params.name}"')
        args = dict(params.arguments or {})
        mode = args.pop("mode", "faults")
        if mode not in ("events", "faults"):
            return types.CallToolResult(
                content=[types.TextContent(type="text", text=f"invalid mode {mode!r}: want events or faults")],
                is_error=True,
            )
        sid = self._session_id(ctx)
        subscription_id = f"sub-{uuid.uuid4().hex[:12]}"
        reply = {
            "subscriptionId": subscription_id,
            "cluster": self.opts.cluster,
            "mode": mode,
            "filters": args,
            "createdAt": utc_now(),
            "status": "active",
        }
        if mode == "faults" and self.task_group is not None:
            self.task_group.start_soon(self._send_faults, ctx.session, sid, subscription_id)
        return types.CallToolResult(content=[types.TextContent(type="text", text=json.dumps(reply))])

    async def _wait_for_stream(self, sid: str) -> None:
        with anyio.move_on_after(self.opts.await_stream):
            while self._session_alive(sid) and not self._stream_attached(sid):
                await anyio.sleep(STREAM_POLL_SECONDS)

    def _level_allows(self, sid: str) -> bool:
        level = self._state(sid).level
        return level is not None and LEVELS.index(FAULT_LEVEL) >= LEVELS.index(level)

    async def _send_faults(self, session: Any, sid: str, subscription_id: str) -> None:
        await self._wait_for_stream(sid)
        sent = dropped = 0
        for i in range(self.opts.first_fault, self.opts.first_fault + self.opts.faults):
            if not self._session_alive(sid):
                log.info("session %s ended; stopping faults", sid)
                break
            fault = make_fault(self.opts.cluster, subscription_id, i)
            if self._stream_attached(sid) and self._level_allows(sid):
                # No related_request_id: the SDK routes the message to the GET stream.
                await session.send_log_message(FAULT_LEVEL, fault, logger=FAULT_LOGGER)
                self._record_sent(fault["faultId"])
                sent += 1
            else:
                dropped += 1
            await anyio.sleep(self.opts.interval)
        log.info("session %s: %d faults sent, %d dropped", sid, sent, dropped)

    def _record_sent(self, fid: str) -> None:
        if self.opts.sent_log is None:
            return
        with open(self.opts.sent_log, "a", encoding="ascii") as f:
            f.write(fid + "\n")


class BearerAuth:
    """ASGI wrapper answering 401 unless `Authorization: Bearer <key>` is present."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != self.expected:
            body = b'{"error":"unauthorized"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 401,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"www-authenticate", b'Bearer realm="kubernetes-mcp-server"'),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)


class ReadyApp:
    """Prints `LISTENING <port>` once the app's lifespan has started (socket already bound)."""

    def __init__(self, app: Starlette, port: int) -> None:
        self.app = app
        self.port = port

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def announce(message: Any) -> None:
            await send(message)
            if message["type"] == "lifespan.startup.complete":
                sys.stdout.write(f"LISTENING {self.port}\n")
                sys.stdout.flush()

        await self.app(scope, receive, announce)


class QuietExitServer(uvicorn.Server):
    """Stops on SIGTERM/SIGINT with exit 0 instead of re-raising the signal, ending open
    GET streams first so shutdown does not wait for them to time out."""

    def __init__(self, config: uvicorn.Config, fake: FakeK8sMcp) -> None:
        super().__init__(config)
        self.fake = fake

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        await self.fake.terminate_sessions()
        await super().shutdown(sockets=sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        def stop(_sig: int, _frame: Any) -> None:
            self.should_exit = True

        previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--certfile", help="PEM certificate chain; with --keyfile serves HTTPS")
    p.add_argument("--keyfile", help="PEM private key")
    p.add_argument("--faults", type=int, default=20, help="faults sent per subscription")
    p.add_argument("--first-fault", type=int, default=0, help="index of the first fault (changes faultIds)")
    p.add_argument("--interval", type=float, default=0.01, help="seconds between faults")
    p.add_argument("--await-stream", type=float, default=5.0, help="seconds to wait for the GET stream")
    p.add_argument("--cluster", default="fake-cluster")
    p.add_argument("--api-key", help="require Authorization: Bearer <key>, else 401")
    p.add_argument("--sent-log", help="append the faultId of every fault sent, one per line")
    p.add_argument("--log-level", default="warning", help="stderr log level")
    args = p.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        p.error("--certfile and --keyfile go together")
    if args.faults < 0 or args.interval < 0 or args.await_stream < 0:
        p.error("--faults, --interval and --await-stream must not be negative")
    return args


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    opts = Options(
        faults=args.faults,
        interval=args.interval,
        cluster=args.cluster,
        first_fault=args.first_fault,
        await_stream=args.await_stream,
        sent_log=args.sent_log,
    )
    fake = FakeK8sMcp(opts)
    starlette_app = fake.server.streamable_http_app(host=args.host, session_idle_timeout=None)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    sock.listen(128)
    port = sock.getsockname()[1]

    app: Any = starlette_app
    if args.api_key:
        app = BearerAuth(app, args.api_key)
    app = ReadyApp(app, port)

    config = uvicorn.Config(
        app,
        log_config=None,
        log_level=args.log_level.lower(),
        access_log=False,
        lifespan="on",
        ssl_certfile=args.certfile,
        ssl_keyfile=args.keyfile,
        timeout_graceful_shutdown=1,
    )
    server = QuietExitServer(config, fake)
    asyncio.run(server.serve(sockets=[sock]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
