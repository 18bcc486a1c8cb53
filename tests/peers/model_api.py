#!/usr/bin/env python3
"""A scripted local stand-in for one model API, for driving a real agent CLI offline.

    model_api.py --api anthropic|gemini|openai --log FILE [--fail STATUS] [--bodies FILE]

Binds 127.0.0.1 on an ephemeral port and prints `port N` on stdout once it listens.

A conversation has two turns. While no tool result has come back, a request that offers
the CLI's shell tool is answered with a call to it: a command that writes
`output/investigation.md` in the agent's working directory (the workspace): claude's
`Bash`, gemini's `run_shell_command`, codex's `exec_command` (or, for models codex drives in
"code mode", its JavaScript `exec` tool calling `tools.exec_command`). Once a tool
result is in the request, the answer is a final text. Requests without tools (titles,
quota probes, summaries) get a short text; token counts, model lists and the like get a
small valid answer.

With `--fail STATUS`, every model request is refused with that status and an error body in
the API's own format whose message contains FAIL_MARKER, so a test can find the CLI's own
error. (claude retries a 401 with backoff for minutes; a 400 it reports at once.)

Every request is appended to FILE as one JSON line: method, path, the model it asked for,
whether it offered the shell tool, whether it carried a tool result, and what was answered.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

FAIL_MARKER = "stand-in refused the request"
FINAL_TEXT = "The investigation is written to output/investigation.md."
MAX_BODY = 16 * 1024 * 1024

# The shell command the model asks for: a harmless command whose output goes into the report,
# and the report itself, with the cluster name the agent was given.
SHELL_COMMAND = (
    "mkdir -p output && { "
    "printf '## Summary\\nstand-in investigation of cluster %s\\n\\n' \"$CLUSTER_NAME\"; "
    "printf '## Root Cause\\nscripted by the model stand-in\\n\\n## Confidence\\nlow\\n\\n'; "
    "printf '## Evidence\\n'; "
    "if test -f incident.json; then echo 'incident.json present in the workspace'; fi; "
    "printf '\\n## Recommended Actions\\nnone\\n'; "
    "} > output/investigation.md && echo report-written"
)

SHELL_TOOLS = {
    "anthropic": {"Bash"},
    "gemini": {"run_shell_command"},
    "openai": {"shell", "shell_command", "exec_command", "exec", "local_shell"},
}


class Log:
    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, sort_keys=True)
        with self.lock, open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


# --- request inspection --------------------------------------------------------------


def anthropic_tools(body: dict[str, Any]) -> set[str]:
    return {t.get("name", "") for t in body.get("tools") or [] if isinstance(t, dict)}


def anthropic_has_tool_result(body: dict[str, Any]) -> bool:
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for block in content:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    return True
    return False


def gemini_tools(body: dict[str, Any]) -> set[str]:
    names = set()
    for tool in body.get("tools") or []:
        for decl in (tool or {}).get("functionDeclarations") or []:
            names.add(decl.get("name", ""))
    return names


def gemini_has_tool_result(body: dict[str, Any]) -> bool:
    for content in body.get("contents") or []:
        for part in (content or {}).get("parts") or []:
            if isinstance(part, dict) and "functionResponse" in part:
                return True
    return False


def openai_tools(body: dict[str, Any]) -> set[str]:
    """Tool names offered at the top level, and (code mode) inside developer input items."""

    def names(tools: Any) -> set[str]:
        found = set()
        for tool in tools if isinstance(tools, list) else []:
            if not isinstance(tool, dict):
                continue
            if tool.get("type") == "namespace":
                found |= names(tool.get("tools"))
            else:
                found.add(tool.get("name") or tool.get("type") or "")
        return found

    offered = names(body.get("tools"))
    for item in body.get("input") or []:
        if isinstance(item, dict):
            offered |= names(item.get("tools"))
    return offered


def openai_has_tool_result(body: dict[str, Any]) -> bool:
    items = body.get("input")
    if not isinstance(items, list):
        return False
    return any(
        isinstance(item, dict) and str(item.get("type", "")).endswith("_output") for item in items
    )


# --- responses -----------------------------------------------------------------------


def sse(events: list[tuple[str | None, dict[str, Any]]]) -> bytes:
    out = []
    for name, data in events:
        if name:
            out.append(f"event: {name}\n")
        out.append(f"data: {json.dumps(data)}\n\n")
    return "".join(out).encode()


def anthropic_stream(model: str, block: dict[str, Any], stop_reason: str) -> bytes:
    start = dict(block)
    events: list[tuple[str | None, dict[str, Any]]] = [
        (
            "message_start",
            {
                "type": "message_start",
                "message": {
                    "id": "msg_standin",
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {"input_tokens": 10, "output_tokens": 1},
                },
            },
        )
    ]
    if block["type"] == "text":
        start["text"] = ""
        delta = {"type": "text_delta", "text": block["text"]}
    else:
        start["input"] = {}
        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
    events += [
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": 20},
            },
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return sse(events)


def anthropic_message(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "msg_standin",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 10, "output_tokens": 5},
    }


def gemini_chunks(parts: list[dict[str, Any]], model: str) -> bytes:
    chunk = {
        "candidates": [
            {"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}
        ],
        "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15},
        "modelVersion": model,
    }
    return sse([(None, chunk)])


def openai_stream(model: str, item: dict[str, Any]) -> bytes:
    response = {
        "id": "resp_standin",
        "object": "response",
        "created_at": 0,
        "status": "in_progress",
        "model": model,
        "output": [],
    }
    done_response = dict(response, status="completed", output=[item])
    done_response["usage"] = {
        "input_tokens": 10,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 15,
    }
    added = dict(item)
    if item["type"] == "message":
        added["content"] = []
    events: list[tuple[str | None, dict[str, Any]]] = [
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": response}),
        (
            "response.output_item.added",
            {"type": "response.output_item.added", "sequence_number": 1, "output_index": 0, "item": added},
        ),
    ]
    if item["type"] == "message":
        text = item["content"][0]["text"]
        events.append(
            (
                "response.output_text.delta",
                {
                    "type": "response.output_text.delta",
                    "sequence_number": 2,
                    "item_id": item["id"],
                    "output_index": 0,
                    "content_index": 0,
                    "delta": text,
                },
            )
        )
    events += [
        (
            "response.output_item.done",
            {"type": "response.output_item.done", "sequence_number": 3, "output_index": 0, "item": item},
        ),
        ("response.completed", {"type": "response.completed", "sequence_number": 4, "response": done_response}),
    ]
    return sse(events)


def openai_shell_call(tools: set[str]) -> dict[str, Any]:
    """A call to whichever shell tool the request offered."""
    if "exec" in tools and "exec_command" not in tools:
        # Code mode: one JavaScript tool through which the model calls the others.
        source = (
            f"const result = await tools.exec_command({{cmd: {json.dumps(SHELL_COMMAND)}}});\n"
            "text(result.output);\n"
        )
        return {
            "type": "custom_tool_call",
            "id": "ctc_standin",
            "call_id": "call_standin",
            "name": "exec",
            "input": source,
            "status": "completed",
        }
    if "shell" in tools or "shell_command" in tools or "exec_command" in tools:
        name = "shell_command" if "shell_command" in tools else "exec_command" if "exec_command" in tools else "shell"
        if name == "shell":
            arguments = {"command": ["bash", "-lc", SHELL_COMMAND]}
        elif name == "exec_command":
            arguments = {"cmd": SHELL_COMMAND}
        else:
            arguments = {"command": SHELL_COMMAND}
        return {
            "type": "function_call",
            "id": "fc_standin",
            "call_id": "call_standin",
            "name": name,
            "arguments": json.dumps(arguments),
            "status": "completed",
        }
    return {
        "type": "local_shell_call",
        "id": "lsh_standin",
        "call_id": "call_standin",
        "status": "completed",
        "action": {"type": "exec", "command": ["bash", "-lc", SHELL_COMMAND], "env": {}},
    }


def openai_text(text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": "msg_standin",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }


# --- the server ----------------------------------------------------------------------


class Handler(BaseHTTPRequestHandler):
    server_version = "model-api-standin/1"
    protocol_version = "HTTP/1.1"

    api: str
    fail: int
    log: Log
    bodies: Log | None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def send_body(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        self.close_connection = True

    def send_json(self, status: int, value: Any) -> None:
        self.send_body(status, json.dumps(value).encode(), "application/json")

    def send_sse(self, body: bytes) -> None:
        self.send_body(200, body, "text/event-stream")

    def read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        if length <= 0 or length > MAX_BODY:
            return {}
        raw = self.rfile.read(length)
        try:
            value = json.loads(raw)
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    def record(self, **fields: Any) -> None:
        self.log.write({"method": self.command, "path": self.path, **fields})

    def do_GET(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        if self.headers.get("Upgrade", "").lower() == "websocket":
            # No WebSocket here: the CLI is expected to fall back to plain HTTP.
            self.record(answer="no websocket")
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        if path.endswith("/models"):
            self.record(answer="model list")
            self.send_json(200, {"object": "list", "data": [], "models": []})
            return
        self.record(answer="not found")
        self.send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:  # noqa: N802
        body = self.read_json()
        if self.bodies:
            self.bodies.write({"path": self.path, "body": body})
        getattr(self, f"post_{self.api}")(urlsplit(self.path).path, body)

    def refuse(self, model: str, shell: bool, result: bool) -> None:
        self.record(model=model, shell_tool=shell, tool_result=result, answer="refused")
        if self.api == "anthropic":
            kind = "authentication_error" if self.fail == 401 else "invalid_request_error"
            error = {"type": "error", "error": {"type": kind, "message": FAIL_MARKER}}
        elif self.api == "gemini":
            status = "UNAUTHENTICATED" if self.fail == 401 else "INVALID_ARGUMENT"
            error = {"error": {"code": self.fail, "message": FAIL_MARKER, "status": status}}
        else:
            error = {"error": {"message": FAIL_MARKER, "type": "invalid_request_error", "code": "invalid_api_key"}}
        self.send_json(self.fail, error)

    def post_anthropic(self, path: str, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if path.endswith("/count_tokens"):
            self.record(model=model, answer="token count")
            self.send_json(200, {"input_tokens": 100})
            return
        if not path.endswith("/messages"):
            self.record(model=model, answer="not found")
            self.send_json(404, {"type": "error", "error": {"type": "not_found_error", "message": "not found"}})
            return
        shell = "Bash" in anthropic_tools(body)
        result = anthropic_has_tool_result(body)
        if self.fail:
            self.refuse(model, shell, result)
            return
        if shell and not result:
            answer = "shell call"
            block = {"type": "tool_use", "id": "toolu_standin", "name": "Bash",
                     "input": {"command": SHELL_COMMAND, "description": "Write the report"}}
            stop = "tool_use"
        else:
            answer = "final text" if result else "side text"
            block = {"type": "text", "text": FINAL_TEXT if result else "Cluster investigation"}
            stop = "end_turn"
        self.record(model=model, shell_tool=shell, tool_result=result, answer=answer)
        if body.get("stream"):
            self.send_sse(anthropic_stream(model, block, stop))
        elif block["type"] == "text":
            self.send_json(200, anthropic_message(model, block["text"]))
        else:
            message = anthropic_message(model, "")
            message["content"] = [block]
            message["stop_reason"] = stop
            self.send_json(200, message)

    def post_gemini(self, path: str, body: dict[str, Any]) -> None:
        # /v1beta/models/<model>:<method>
        tail = unquote(path.rsplit("/models/", 1)[-1])
        model, _, method = tail.partition(":")
        if method == "countTokens":
            self.record(model=model, answer="token count")
            self.send_json(200, {"totalTokens": 100})
            return
        if method not in ("streamGenerateContent", "generateContent"):
            self.record(model=model, answer="not found")
            self.send_json(404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}})
            return
        shell = "run_shell_command" in gemini_tools(body)
        result = gemini_has_tool_result(body)
        if self.fail:
            self.refuse(model, shell, result)
            return
        if shell and not result:
            answer = "shell call"
            parts = [{"functionCall": {"name": "run_shell_command",
                                       "args": {"command": SHELL_COMMAND, "description": "Write the report"}}}]
        else:
            answer = "final text" if result else "side text"
            parts = [{"text": FINAL_TEXT if result else '{"reasoning": "done", "next_speaker": "user"}'}]
        self.record(model=model, shell_tool=shell, tool_result=result, answer=answer)
        if method == "streamGenerateContent":
            self.send_sse(gemini_chunks(parts, model))
        else:
            self.send_json(200, json.loads(gemini_chunks(parts, model).decode()[len("data: "):]))

    def post_openai(self, path: str, body: dict[str, Any]) -> None:
        model = str(body.get("model", ""))
        if not path.endswith("/responses"):
            self.record(model=model, answer="not found")
            self.send_json(404, {"error": {"message": "not found", "type": "not_found"}})
            return
        tools = openai_tools(body)
        shell = bool(tools & SHELL_TOOLS["openai"])
        result = openai_has_tool_result(body)
        if self.fail:
            self.refuse(model, shell, result)
            return
        if shell and not result:
            answer = "shell call"
            item = openai_shell_call(tools)
        else:
            answer = "final text" if result else "side text"
            item = openai_text(FINAL_TEXT if result else "Cluster investigation")
        self.record(model=model, shell_tool=shell, tool_result=result, answer=answer, tools=sorted(tools))
        self.send_sse(openai_stream(model, item))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", choices=["anthropic", "gemini", "openai"], required=True)
    parser.add_argument("--log", required=True, help="file to append one JSON line per request to")
    parser.add_argument("--bodies", help="file to append every request body to (for debugging)")
    parser.add_argument("--fail", type=int, metavar="STATUS", default=0,
                        help="refuse every model request with this HTTP status (e.g. 401)")
    args = parser.parse_args()

    handler = type("StandIn", (Handler,), {"api": args.api, "fail": args.fail, "log": Log(args.log),
                                        "bodies": Log(args.bodies) if args.bodies else None})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
