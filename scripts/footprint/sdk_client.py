"""What nightcrier does for N clusters, written with the official MCP Python SDK.

    python sdk_client.py ENDPOINTS_FILE FAULTS_PER_CLUSTER

ENDPOINTS_FILE holds `NAME URL` lines (as `nightcrier simulate` prints them). For every
cluster, concurrently in one process: initialize, logging/setLevel info, the GET stream (the
SDK opens it after initialization; the client waits for it), tools/call events_subscribe
{"mode": "faults"}, then receive `kubernetes/faults` log notifications. Prints `subscribed N`
once every cluster is subscribed and `done N` once FAULTS_PER_CLUSTER faults arrived from
each, then waits to be stopped.
"""

import sys
import warnings

import anyio
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


# nightcrier's servers speak the logging capability; the SDK warns that it is deprecated.
warnings.filterwarnings("ignore", message="The logging capability is deprecated")


async def watch(name, url, per_cluster, state, subscribed_all, done_all):
    received = 0

    async def on_log(params):
        nonlocal received
        if params.logger == "kubernetes/faults" and isinstance(params.data, dict):
            # nightcrier reads the fault id, type and severity of every fault.
            _ = (params.data["faultId"], params.data.get("faultType"), params.data.get("severity"))
            received += 1
            if received == per_cluster:
                state["done"] += 1
                if state["done"] == state["clusters"]:
                    done_all.set()

    # The server drops faults (and cancels the subscription) while no GET stream is
    # attached, so subscribe only once it is open, as nightcrier does.
    stream_open = anyio.Event()

    async def on_response(response):
        if response.request.method == "GET" and response.status_code == 200:
            stream_open.set()

    http = create_mcp_http_client()
    http.event_hooks["response"].append(on_response)
    async with http, streamable_http_client(url, http_client=http) as (read, write):
        async with ClientSession(read, write, logging_callback=on_log) as session:
            await session.initialize()
            await session.set_logging_level("info")
            with anyio.fail_after(120):
                await stream_open.wait()
            result = await session.call_tool("events_subscribe", {"mode": "faults"})
            if result.is_error:
                raise RuntimeError(f"{name}: events_subscribe refused")
            state["subscribed"] += 1
            if state["subscribed"] == state["clusters"]:
                subscribed_all.set()
            await anyio.sleep_forever()


async def main():
    endpoints = [line.split() for line in open(sys.argv[1], encoding="utf-8") if len(line.split()) == 2]
    per_cluster = int(sys.argv[2])
    state = {"clusters": len(endpoints), "subscribed": 0, "done": 0}
    subscribed_all, done_all = anyio.Event(), anyio.Event()
    async with anyio.create_task_group() as tg:
        for name, url in endpoints:
            tg.start_soon(watch, name, url, per_cluster, state, subscribed_all, done_all)
        await subscribed_all.wait()
        print(f"subscribed {len(endpoints)}", flush=True)
        await done_all.wait()
        print(f"done {len(endpoints)}", flush=True)
        await anyio.sleep_forever()


if __name__ == "__main__":
    anyio.run(main)
