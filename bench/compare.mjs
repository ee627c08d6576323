// The bridge, bare socketioxide (bench/bare) and the Node.js socket.io reference (bench/node-ref)
// under the same load, from one invocation, with the Rust load generator (bench/loadgen) and its
// Rust webhook receiver. Prints a Markdown table with ratios.
//
//   cargo build --release -p bridge -p loadgen -p bare
//   (cd tests/js && npm ci) && (cd bench/node-ref && npm ci)
//   bash -c 'ulimit -n 20000; node bench/compare.mjs [idle-clients] [fanout-clients] [broadcasts] [forward-clients] [events]'
//
// Workloads (each bounded; the run stops by itself): `idle` holds N clients (v4, then v2, each on a fresh
// server process) for 20 s answering heartbeats (RSS per connection); `fanout` (v4, then v2) sends broadcasts at 20 per second through the REST
// emit endpoint to N clients (delivery, latency, server CPU per delivered message); `forward` has
// N clients emit E events each with an ack, every event forwarded as a signed webhook (acked
// events per second, ack latency, server CPU per event). Every server checks a JWT at the
// handshake. Bare socketioxide has no Engine.IO 3 clients: its v2 rows are empty.
// The bridge runs `forward` a second time with its webhook batched (`batch: {}`: 100 events,
// 256 KiB, 20 ms); Node's and bare's references send one request per event, as an app would
// without extra code, so their batched rows repeat their one forward run. The receiver reports the
// latency from each event's emit (a wall-clock `t` in its argument) to its receipt.
// `COMPARE_ONLY=forward` runs the forward workloads alone (no idle or fan-out); `COMPARE_SERVERS`
// picks the servers (default `bridge,bare,node`); `COMPARE_BATCH` the bridge's batch settings
// (JSON, default `{}`); `RECEIVER_DELAY_MS` has the receiver answer each
// webhook that much later.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { once } from "node:events";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// The release build is the one measured (the test harness defaults to the debug build).
process.env.BRIDGE_BIN ??= join(root, "target", "release", "bridge");
const { startBridge, hsToken } = await import("../tests/js/harness.mjs");
const LOADGEN = process.env.LOADGEN_BIN ?? join(root, "target", "release", "loadgen");
const BARE = process.env.BARE_BIN ?? join(root, "target", "release", "bare");
const [IDLE, FANOUT, BROADCASTS, FORWARD, EVENTS] = [2000, 1000, 100, 100, 100].map((d, i) => Number(process.argv[2 + i] ?? d));
const JWT_SECRET = "bench-jwt-secret";
const WEBHOOK_SECRET = "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMtb2s=";
const token = await hsToken(JWT_SECRET, { sub: "bench" });

/** Spawns a server that prints `listening port=N`; resolves with the child and its port. */
async function spawnServer(command, args, env) {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${command} did not start`)), 10000);
    child.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening port=(\d+)/);
      if (m) (clearTimeout(timer), resolve(m[1]));
    });
  });
  return { child, port };
}

/** Stops a spawned server. */
async function stop(child) {
  child.kill("SIGTERM");
  await once(child, "exit");
}

// The webhook receiver every server forwards to (`loadgen receive`): answers 200 at once, or
// after `RECEIVER_DELAY_MS` (a backend's own time, or one further away).
const RECEIVER_DELAY_MS = Number(process.env.RECEIVER_DELAY_MS ?? 0);
const receiver = await spawnServer(LOADGEN, ["receive", "--delay-ms", String(RECEIVER_DELAY_MS)], {});
const receiverUrl = `http://127.0.0.1:${receiver.port}/`;

/** How many webhooks the receiver has counted. */
async function webhookCount() {
  return Number(await receiverGet("/"));
}

/** Runs the load generator; resolves with its JSON report. */
async function loadgen(args) {
  const child = spawn(LOADGEN, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`loadgen ${args[0]} exited with ${code}`);
  return JSON.parse(out);
}

/**
 * The workloads against a server at `url` (process `pid`). `only` picks one: `idle`, `idle_v2` (each
 * measured on a fresh process, since memory freed by an earlier workload would hide new
 * connections' cost) or `traffic` (fan-out to v4 and v2 clients, then forwarding).
 */
async function workloads(only, url, pid, emitUrl, emitKey, v2 = true, batch = null) {
  const common = (clients) => ["--url", url, "--namespace", "/bench", "--clients", String(clients), "--token", token, "--pid", String(pid)];
  if (only === "idle") return { idle: await loadgen(["idle", ...common(IDLE), "--hold-secs", "20"]) };
  if (only === "idle_v2" && !v2) return {};
  if (only === "idle_v2") return { idle_v2: await loadgen(["idle", ...common(IDLE), "--v2", "--hold-secs", "20"]) };
  const fanout = (v2) => ["fanout", ...common(FANOUT), ...v2, "--emit-url", emitUrl, "--emit-key", emitKey, "--messages", String(BROADCASTS), "--rate", "20"];
  const forward = async () => {
    await receiverGet("/latency");
    const [events, requests] = [await webhookCount(), Number(await receiverGet("/requests"))];
    const [cpuBefore, receiverBefore] = [cpuSecs(pid), cpuSecs(receiver.child.pid)];
    const report = await loadgen(["forward", ...common(FORWARD), "--events", String(EVENTS)]);
    // Every acked event must reach the receiver: wait (bounded) before going on.
    report.webhooks_delivered = (await delivered(events + report.acked)) - events;
    // The server's CPU until the last webhook arrived: a server that acks faster than it sends
    // spends the rest after the emits (the load generator's own figure stops with them).
    report.server_cpu_us_per_delivered_event = ((cpuSecs(pid) - cpuBefore) * 1e6) / Math.max(1, report.webhooks_delivered);
    report.receiver_cpu_us_per_event = ((cpuSecs(receiver.child.pid) - receiverBefore) * 1e6) / Math.max(1, report.webhooks_delivered);
    report.requests = Number(await receiverGet("/requests")) - requests;
    report.receipt_latency_ms = JSON.parse(await receiverGet("/latency"));
    return report;
  };
  const figures = {};
  if (process.env.COMPARE_ONLY !== "forward") {
    figures.fanout = await loadgen(fanout([]));
    if (v2) figures.fanout_v2 = await loadgen(fanout(["--v2"]));
  }
  figures.forward = await forward();
  figures.webhooks_delivered = figures.forward.webhooks_delivered;
  if (batch) {
    await batch(true);
    figures.forward_batched = await forward();
    await batch(false);
  } else {
    figures.forward_batched = figures.forward;
  }
  return figures;
}

/** User plus system CPU seconds of process `pid` so far (`/proc/<pid>/stat`, 100 ticks a second). */
function cpuSecs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A GET to the receiver (`/` events, `/requests`, `/latency` since the last call). */
async function receiverGet(path) {
  return (await fetch(`${receiverUrl.replace(/\/$/, "")}${path}`)).text();
}

/** Each workload on a fresh process of `server`, merged. */
async function allWorkloads(server) {
  if (process.env.COMPARE_ONLY === "forward") return server("traffic");
  return { ...(await server("idle")), ...(await server("idle_v2")), ...(await server("traffic")) };
}

/** Waits up to 30 s for the receiver to count `total` webhooks; returns its count. */
async function delivered(total) {
  let count = await webhookCount();
  for (let waited = 0; count < total && waited < 30000; waited += 100) {
    await new Promise((r) => setTimeout(r, 100));
    count = await webhookCount();
  }
  return count;
}

async function bridgeRun(only) {
  const bridge = await startBridge({
    RUST_LOG: "warn,bridge::app=info",
    BRIDGE_EVENT_RATE_LIMIT: "100000",
    BRIDGE_EVENT_RATE_BURST: "100000",
    BRIDGE_API_RATE_LIMIT: "100000",
    BRIDGE_API_RATE_BURST: "100000",
    // Other settings to try (BRIDGE_WEBHOOK_CONCURRENCY=…), passed through from this process.
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => (k.startsWith("BRIDGE_") && k !== "BRIDGE_BIN") || k.startsWith("MIMALLOC_"))),
  });
  try {
    const ns = await bridge.createNamespace({ name: "/bench", auth: { mode: "jwt", algorithm: "HS256", secret: JWT_SECRET } });
    const hook = await bridge.createWebhook(ns.id, { url: receiverUrl, events: ["*"], secret: WEBHOOK_SECRET });
    const key = await bridge.createKey(["/bench"]);
    const batch = async (on) => {
      const res = await bridge.admin("PATCH", `/admin/webhooks/${hook.id}`, { batch: on ? JSON.parse(process.env.COMPARE_BATCH ?? "{}") : null });
      if (res.status !== 200) throw new Error(`batch: ${res.status}`);
    };
    return await workloads(only, bridge.url, bridge.pid, `${bridge.url}/v1/emit`, key, true, batch);
  } finally {
    await bridge.stop();
  }
}

async function nodeRun(only) {
  const env = { PORT: "0", JWT_SECRET, WEBHOOK_URL: receiverUrl, WEBHOOK_SECRET, EMIT_KEY: "node-key" };
  const { child, port } = await spawnServer("node", [join(root, "bench", "node-ref", "server.mjs")], env);
  try {
    const url = `http://127.0.0.1:${port}`;
    return await workloads(only, url, child.pid, `${url}/v1/emit`, "node-key");
  } finally {
    await stop(child);
  }
}

async function bareRun(only) {
  const env = { PORT: "0", JWT_SECRET, WEBHOOK_URL: receiverUrl, WEBHOOK_SECRET, EMIT_KEY: "bare-key" };
  const { child, port } = await spawnServer(BARE, [], env);
  try {
    const url = `http://127.0.0.1:${port}`;
    return await workloads(only, url, child.pid, `${url}/v1/emit`, "bare-key", false);
  } finally {
    await stop(child);
  }
}

// `COMPARE_SERVERS=bridge` measures the bridge alone (e.g. two builds of it, BRIDGE_BIN=…).
const servers = (process.env.COMPARE_SERVERS ?? "bridge,bare,node").split(",");
const bridge = servers.includes("bridge") ? await allWorkloads(bridgeRun) : {};
const bare = servers.includes("bare") ? await allWorkloads(bareRun) : {};
const node = servers.includes("node") ? await allWorkloads(nodeRun) : {};
await stop(receiver.child);

const rows = [
  ["idle: RSS per connection (KiB)", (r) => r.idle.kib_per_connection, "lower"],
  ["idle: clients dropped while held", (r) => r.idle.dropped, "lower"],
  ["idle v2 clients: RSS per connection (KiB)", (r) => r.idle_v2.kib_per_connection, "lower"],
  ["idle v2 clients: dropped while held", (r) => r.idle_v2.dropped, "lower"],
  ["fan-out: delivery ratio", (r) => r.fanout.delivery_ratio, "higher"],
  ["fan-out: latency p50 (ms)", (r) => r.fanout.latency_ms.p50, "lower"],
  ["fan-out: latency p99 (ms)", (r) => r.fanout.latency_ms.p99, "lower"],
  ["fan-out: latency max (ms)", (r) => r.fanout.latency_ms.max, "lower"],
  ["fan-out: server CPU per delivered message (µs)", (r) => r.fanout.server_cpu_us_per_delivered, "lower"],
  ["fan-out to v2 clients: delivery ratio", (r) => r.fanout_v2.delivery_ratio, "higher"],
  ["fan-out to v2 clients: latency p99 (ms)", (r) => r.fanout_v2.latency_ms.p99, "lower"],
  ["fan-out to v2 clients: server CPU per delivered message (µs)", (r) => r.fanout_v2.server_cpu_us_per_delivered, "lower"],
  ["forward: acked events per second", (r) => r.forward.acked_per_sec, "higher"],
  ["forward: ack latency p99 (ms)", (r) => r.forward.ack_latency_ms.p99, "lower"],
  ["forward: server CPU per event, while emitting (µs)", (r) => r.forward.server_cpu_us_per_event, "lower"],
  ["forward: server CPU per event, until its webhook arrived (µs)", (r) => r.forward.server_cpu_us_per_delivered_event, "lower"],
  ["forward: webhooks delivered of the acked events", (r) => r.webhooks_delivered / r.forward.acked, "higher"],
  ["forward: emit to webhook receipt p99 (ms)", (r) => r.forward.receipt_latency_ms.p99, "lower"],
  ["batched forward (Node, bare: one request per event): acked events per second", (r) => r.forward_batched.acked_per_sec, "higher"],
  ["batched forward: server CPU per event, until its webhook arrived (µs)", (r) => r.forward_batched.server_cpu_us_per_delivered_event, "lower"],
  ["batched forward: emit to webhook receipt p50 (ms)", (r) => r.forward_batched.receipt_latency_ms.p50, "lower"],
  ["batched forward: emit to webhook receipt p99 (ms)", (r) => r.forward_batched.receipt_latency_ms.p99, "lower"],
  ["batched forward: ack latency p99 (ms)", (r) => r.forward_batched.ack_latency_ms.p99, "lower"],
  ["batched forward: load generator's CPU per event (µs)", (r) => r.forward_batched.client_cpu_us_per_event, "lower"],
  ["batched forward: receiver's CPU per event (µs)", (r) => r.forward_batched.receiver_cpu_us_per_event, "lower"],
  ["batched forward: events per request", (r) => r.forward_batched.webhooks_delivered / r.forward_batched.requests, "higher"],
  ["batched forward: webhooks delivered of the acked events", (r) => r.forward_batched.webhooks_delivered / r.forward_batched.acked, "higher"],
];
const fmt = (v) => (v === undefined || Number.isNaN(v) ? "-" : Number.isInteger(v) ? String(v) : v.toFixed(v < 10 ? 2 : 1));
const ratio = (a, b) => (a === undefined || b === undefined || !b ? "-" : (a / b).toFixed(2));
/** A row's figure, or undefined where the server did not run the workload. */
const figure = (get, r) => {
  try {
    return get(r);
  } catch {
    return undefined;
  }
};
console.log(`idle ${IDLE} clients (20 s), fan-out ${FANOUT} clients × ${BROADCASTS} broadcasts, forward ${FORWARD} clients × ${EVENTS} events\n`);
console.log("| metric | bridge | bare socketioxide | Node socket.io 4.8 | bridge / bare | bridge / Node |");
console.log("|---|---|---|---|---|---|");
for (const [label, get] of rows) {
  const [b, s, n] = [bridge, bare, node].map((r) => figure(get, r));
  console.log(`| ${label} | ${fmt(b)} | ${fmt(s)} | ${fmt(n)} | ${ratio(b, s)} | ${ratio(b, n)} |`);
}
console.log(`\n<details><summary>raw</summary>\n\n\`\`\`json\n${JSON.stringify({ bridge, bare, node }, null, 1)}\n\`\`\`\n</details>`);
