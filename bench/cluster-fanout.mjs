// Fan-out through the cluster adapters on loopback: emits made through node A's API reach
// WebSocket clients spread evenly over nodes A and B (or, for `memory`, all on one node).
//
//   cargo build --release -p bridge
//   (cd tests/js && npm ci)
//   BRIDGE_BIN=target/release/bridge node bench/cluster-fanout.mjs <memory|redis|postgres> [clients] [emits] [rate]
//
// Needs Postgres on 127.0.0.1:5432 (a fresh database per run) and, for `redis`, redis-server on
// PATH (the run starts its own on a free port). Every loop is bounded (emits at `rate` per second)
// and the run stops by itself.

import { readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { startBridge, freshPostgres, connected, until, sleep, freePort } from "../tests/js/harness.mjs";

const ADAPTER = process.argv[2] ?? "redis";
const CLIENTS = Number(process.argv[3] ?? 1000);
const EMITS = Number(process.argv[4] ?? 1000);
const RATE = Number(process.argv[5] ?? 200);

/** CPU seconds (user + system) the process has used. */
const cpuSecs = (pid) => {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const rssMiB = (pid) => {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Math.round(Number(line.split(/\s+/)[1]) / 1024);
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const accepts = (port) =>
  new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });

let redis = null;
const env = {
  DATABASE_URL: freshPostgres().url,
  BRIDGE_ADAPTER: ADAPTER,
  BRIDGE_ADMIN_TOKEN: "bench-admin",
  RUST_LOG: "warn,bridge::app=info",
  BRIDGE_API_RATE_LIMIT: "100000",
  BRIDGE_API_RATE_BURST: "100000",
};
if (ADAPTER === "redis") {
  const port = await freePort();
  redis = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
  await until(() => accepts(port), 5000, "redis-server");
  env.REDIS_URL = `redis://127.0.0.1:${port}`;
}

const nodes = [await startBridge({ ...env, BRIDGE_NODE_ID: "a" })];
if (ADAPTER !== "memory") nodes.push(await startBridge({ ...env, BRIDGE_NODE_ID: "b" }));
const [a] = nodes;
const sockets = [];
try {
  await a.createNamespace({ name: "/bench" });
  const key = await a.createKey(["/bench"]);
  await sleep(1000);

  // Clients alternate between the nodes; each records when each emit arrived.
  const latencies = [];
  const perNode = nodes.map(() => 0);
  for (let i = 0; i < CLIENTS; i++) {
    const n = i % nodes.length;
    const socket = await connected("v4", `${nodes[n].url}/bench`, { transports: ["websocket"] });
    socket.on("news", (m) => {
      latencies.push(Date.now() - m.t);
      perNode[n]++;
    });
    sockets.push(socket);
  }
  await sleep(500);

  const cpuBefore = nodes.map((node) => cpuSecs(node.pid));
  const started = Date.now();
  let failed = 0;
  const inFlight = [];
  for (let i = 0; i < EMITS; i++) {
    // Paced: emit i goes out at started + i/RATE seconds.
    const wait = started + (i * 1000) / RATE - Date.now();
    if (wait > 0) await sleep(wait);
    inFlight.push(
      a.v1("POST", "/v1/emit", key, { namespace: "/bench", event: "news", data: { i, t: Date.now() } }).then((res) => {
        if (res.status !== 200) failed++;
      }),
    );
  }
  await Promise.all(inFlight);
  const expected = EMITS * CLIENTS;
  const deadline = Date.now() + 30000;
  while (latencies.length < expected && Date.now() < deadline) await sleep(20);
  await sleep(200);
  const cpu = nodes.map((node, n) => cpuSecs(node.pid) - cpuBefore[n]);
  const secs = (Date.now() - started) / 1000;
  latencies.sort((x, y) => x - y);

  console.log(
    JSON.stringify({
      adapter: ADAPTER,
      nodes: nodes.length,
      clients: CLIENTS,
      emits: EMITS,
      rate_per_sec: RATE,
      failed_emits: failed,
      delivered: latencies.length,
      delivery_ratio: +(latencies.length / expected).toFixed(4),
      latency_ms: { p50: pct(latencies, 50), p99: pct(latencies, 99), max: latencies.at(-1) },
      cpu_us_per_delivered: nodes.map((_, n) => ({
        node: n === 0 ? "a (API)" : "b",
        delivered: perNode[n],
        cpu_s: +cpu[n].toFixed(2),
        us: Math.round((cpu[n] * 1e6) / Math.max(1, perNode[n])),
      })),
      cpu_us_per_delivered_total: Math.round((cpu.reduce((x, y) => x + y, 0) * 1e6) / Math.max(1, latencies.length)),
      rss_mib: nodes.map((node) => rssMiB(node.pid)),
      secs: +secs.toFixed(1),
    }),
  );
} finally {
  for (const s of sockets) s.close();
  for (const node of nodes) await node.kill();
  redis?.kill("SIGKILL");
}
