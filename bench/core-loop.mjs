// Core-loop benchmark on loopback: client events -> signed webhooks, and emit API -> clients.
//
//   cargo build --release -p bridge
//   (cd tests/js && npm ci)
//   BRIDGE_BIN=target/release/bridge node bench/core-loop.mjs [clients] [events-per-client] [emits]
//
// Every loop is bounded (clients x events, emits) and the run stops by itself.

import { readFileSync } from "node:fs";
import { startBridge, startReceiver, connected, sleep } from "../tests/js/harness.mjs";

const CLIENTS = Number(process.argv[2] ?? 50);
const EVENTS = Number(process.argv[3] ?? 200);
const EMITS = Number(process.argv[4] ?? 500);

const rssMiB = (pid) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const bridge = await startBridge({ RUST_LOG: "warn,bridge::app=info", BRIDGE_EVENT_RATE_LIMIT: "100000", BRIDGE_EVENT_RATE_BURST: "100000" });
const receiver = await startReceiver();
const ns = await bridge.createNamespace({ name: "/bench" });
await bridge.createWebhook(ns.id, { url: receiver.url, events: ["*"] });
const key = await bridge.createKey(["/bench"]);
await sleep(300);
const idleRss = rssMiB(bridge.pid);

const sockets = [];
for (let i = 0; i < CLIENTS; i++) sockets.push(await connected("v4", `${bridge.url}/bench`, { transports: ["websocket"] }));
const connectedRss = rssMiB(bridge.pid);

// 1. Client events to the webhook.
const total = CLIENTS * EVENTS;
let started = Date.now();
for (let n = 0; n < EVENTS; n++) for (const s of sockets) s.emit("tick", n, Date.now());
await receiver.waitFor((r) => r.length >= total, 120000);
const forwardSecs = (Date.now() - started) / 1000;
const sorted = receiver.received.map((d) => d.at - d.json.args[1]).sort((a, b) => a - b);
const forwardRss = rssMiB(bridge.pid);

// 2. Emit API broadcasts to every client.
let received = 0;
for (const s of sockets) s.on("news", () => received++);
started = Date.now();
for (let n = 0; n < EMITS; n++) {
  const res = await bridge.v1("POST", "/v1/emit", key, { namespace: "/bench", event: "news", data: { n } });
  if (res.status !== 200) throw new Error(`emit ${res.status}`);
}
const emitSecs = (Date.now() - started) / 1000;
const deadline = Date.now() + 60000;
while (received < EMITS * CLIENTS && Date.now() < deadline) await sleep(20);
const fanoutSecs = (Date.now() - started) / 1000;

console.log(JSON.stringify({
  clients: CLIENTS,
  events: total,
  forward_events_per_sec: Math.round(total / forwardSecs),
  forward_latency_ms: { p50: pct(sorted, 50), p99: pct(sorted, 99), max: sorted.at(-1) },
  emits: EMITS,
  emit_requests_per_sec_sequential: Math.round(EMITS / emitSecs),
  messages_delivered: received,
  fanout_messages_per_sec: Math.round(received / fanoutSecs),
  rss_mib: { idle: idleRss, connected: connectedRss, after_forwarding: forwardRss, end: rssMiB(bridge.pid) },
}, null, 2));

for (const s of sockets) s.close();
receiver.close();
await bridge.stop();
