// What nightcrier does for N clusters, written with the official MCP TypeScript SDK.
//
//   SDK_DIR=<prefix of `npm install @modelcontextprotocol/sdk`> node sdk_client.mjs ENDPOINTS_FILE FAULTS_PER_CLUSTER
//
// ENDPOINTS_FILE holds `NAME URL` lines (as `nightcrier simulate` prints them). For every
// cluster, concurrently in one process: initialize, logging/setLevel info, the GET stream
// (the SDK opens it after initialization; the client waits for it), tools/call events_subscribe {"mode": "faults"},
// then receive `kubernetes/faults` log notifications. Prints `subscribed N` once every
// cluster is subscribed and `done N` once FAULTS_PER_CLUSTER faults arrived from each, then
// waits to be stopped.
import { readFileSync } from "node:fs";
import { join } from "node:path";

const sdk = join(process.env.SDK_DIR, "node_modules/@modelcontextprotocol/sdk/dist/esm");
const { Client } = await import(join(sdk, "client/index.js"));
const { StreamableHTTPClientTransport } = await import(join(sdk, "client/streamableHttp.js"));
const { LoggingMessageNotificationSchema } = await import(join(sdk, "types.js"));

const endpoints = readFileSync(process.argv[2], "utf8")
  .split("\n")
  .map((line) => line.trim().split(/\s+/))
  .filter((parts) => parts.length === 2);
const perCluster = Number(process.argv[3]);
let subscribed = 0;
let done = 0;

async function watch(name, url) {
  let received = 0;
  const client = new Client({ name: "footprint", version: "1" });
  client.setNotificationHandler(LoggingMessageNotificationSchema, (note) => {
    const { logger, data } = note.params;
    if (logger === "kubernetes/faults" && data && typeof data === "object") {
      // nightcrier reads the fault id, type and severity of every fault.
      void [data.faultId, data.faultType, data.severity];
      received += 1;
      if (received === perCluster && ++done === endpoints.length) {
        console.log(`done ${endpoints.length}`);
      }
    }
  });
  // The server drops faults (and cancels the subscription) while no GET stream is
  // attached, so subscribe only once it is open, as nightcrier does.
  let streamOpened;
  const streamOpen = new Promise((resolve) => (streamOpened = resolve));
  const watchingFetch = async (input, init) => {
    const response = await fetch(input, init);
    if (init?.method === "GET" && response.ok) {
      streamOpened();
    }
    return response;
  };
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { fetch: watchingFetch }));
  await client.setLoggingLevel("info");
  await Promise.race([
    streamOpen,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${name}: no GET stream`)), 120_000).unref()),
  ]);
  const result = await client.callTool({ name: "events_subscribe", arguments: { mode: "faults" } });
  if (result.isError) {
    throw new Error(`${name}: events_subscribe refused`);
  }
  if (++subscribed === endpoints.length) {
    console.log(`subscribed ${endpoints.length}`);
  }
}

await Promise.all(endpoints.map(([name, url]) => watch(name, url)));
// The GET streams keep the process alive until it is stopped.
