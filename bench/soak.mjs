// Soak: the bridge under steady churn for a given time, sampled every 10 s, to show that nothing
// grows (memory, descriptors, threads, the outbox, the in-memory queues).
//
//   cargo build --release -p bridge
//   (cd tests/js && npm ci)
//   node bench/soak.mjs [minutes=30] [concurrent-clients=100] [--postgres]
//
// BRIDGE_BIN picks another binary (default target/release/bridge); other BRIDGE_* and MALLOC_*
// variables of this process reach the bridge. The store is a fresh SQLite file (or a fresh
// Postgres database with --postgres).
//
// Load, for all but the last minute: `concurrent-clients` client lives at once, each a new
// connection (v2 and v4 alternately, WebSocket or polling-first) that asks a reply webhook to
// join it to one of 20 rooms, sends 5 durable events and 5 non-durable ones (all acknowledged),
// and disconnects; the backend emits to a random room every 100 ms and is slow (300 ms per
// answer) for 5 s of every 30. The last minute has no load: descriptors and threads must come
// back to what they were before the load. Every loop is bounded and the run stops by itself.

import { readFileSync, readdirSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { startBridge, startReceiver, freshPostgres, freshSqlite, BRIDGE_BIN, parseMetrics, connect } from "../tests/js/harness.mjs";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const MINUTES = Number(args[0] ?? 30);
const CONCURRENT = Number(args[1] ?? 100);
const ROOMS = 20;
const SAMPLE_MS = 10_000;
const db = process.argv.includes("--postgres") ? freshPostgres() : freshSqlite();
const bin = process.env.BRIDGE_BIN ?? BRIDGE_BIN.replace(/debug\/bridge$/, "release/bridge");
process.env.BRIDGE_BIN = bin;

const passed = Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(BRIDGE_|MALLOC_)/.test(k) && k !== "BRIDGE_BIN"));
const bridge = await startBridge({
  DATABASE_URL: db.url,
  RUST_LOG: "warn,bridge::app=info",
  BRIDGE_EVENT_RATE_LIMIT: "100000",
  BRIDGE_EVENT_RATE_BURST: "100000",
  BRIDGE_API_RATE_LIMIT: "100000",
  BRIDGE_API_RATE_BURST: "100000",
  ...passed,
});
process.on("exit", () => {
  try {
    process.kill(bridge.pid, "SIGKILL");
  } catch {}
});

let slow = false;
const receiver = await startReceiver((d) => {
  const answer = slow ? { delayMs: 300 } : {};
  if (d.json?.event === "joinme") return { ...answer, body: { ack: "joined", join: [`room-${d.json.args[0]}`] } };
  return answer;
});
// The receiver keeps nothing: only counts.
const counts = { durable: 0, plain: 0 };
receiver.received.push = (entry) => {
  if (entry.json?.event === "note") counts.durable++;
  if (entry.json?.event === "chat") counts.plain++;
  return 0;
};
const ns = await bridge.createNamespace({ name: "/soak" });
await bridge.createWebhook(ns.id, { url: receiver.url, events: ["note"], durable: true });
await bridge.createWebhook(ns.id, { url: receiver.url, events: ["chat"] });
await bridge.createWebhook(ns.id, { url: receiver.url, events: ["joinme"], reply: true });
const key = await bridge.createKey(["/soak"]);

/** Emits with an acknowledgement; null after 10 s. */
const ask = (socket, event, data) =>
  new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), 10_000);
    socket.emit(event, data, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });

const totals = { lives: 0, failed: 0, acked: 0 };
/** One client's life: connect, join a room, 5 durable and 5 plain events, leave. */
async function life(n) {
  const v2 = n % 2 === 1;
  const opts = { timeout: 10_000, ...(n % 4 < 2 ? { transports: ["websocket"] } : {}) };
  const socket = connect(v2 ? "v2" : "v4", `${bridge.url}/soak`, opts);
  try {
    await new Promise((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("connect_error", reject);
      setTimeout(() => reject(new Error("connect timeout")), 10_000);
    });
    if (await ask(socket, "joinme", n % ROOMS)) totals.acked++;
    for (let i = 0; i < 5; i++) {
      if ((await ask(socket, "note", { n, i }))?.ok) totals.acked++;
      if ((await ask(socket, "chat", { n, i }))?.ok) totals.acked++;
    }
    totals.lives++;
  } catch {
    totals.failed++;
  } finally {
    socket.close();
  }
}

function procStats(pid) {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))[1]);
  return { rssMiB: field("VmRSS") / 1024, threads: field("Threads"), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function metrics() {
  const all = parseMetrics(await (await fetch(`${bridge.adminUrl}/metrics`)).text());
  const value = (name) => all.filter((s) => s.name === name).reduce((sum, s) => sum + s.value, 0);
  return {
    connections: value("bridge_connections"),
    outbox: value("bridge_outbox_pending"),
    queuedKiB: value("bridge_webhook_queued_bytes") / 1024,
  };
}

const start = Date.now();
const loadEnds = start + Math.max(0, MINUTES - 1) * 60_000;
const ends = start + MINUTES * 60_000;
const samples = [];
const baseline = procStats(bridge.pid);
console.log(`soak: ${bin}, ${MINUTES} min, ${CONCURRENT} concurrent client lives, ${db.url.split(":")[0]} store`);
console.log(`baseline before load: RSS ${baseline.rssMiB.toFixed(1)} MiB, ${baseline.fds} fds, ${baseline.threads} threads`);
console.log("min    RSS MiB  fds  threads  sockets  outbox  queued KiB  lives     acked      webhooks");

const sampler = (async () => {
  while (Date.now() < ends) {
    await sleep(SAMPLE_MS);
    const s = { t: (Date.now() - start) / 60_000, ...procStats(bridge.pid), ...(await metrics()), ...totals, webhooks: counts.durable + counts.plain };
    samples.push(s);
    console.log(
      `${s.t.toFixed(1).padStart(5)}  ${s.rssMiB.toFixed(1).padStart(7)}  ${String(s.fds).padStart(4)}  ${String(s.threads).padStart(7)}  ` +
        `${String(s.connections).padStart(7)}  ${String(s.outbox).padStart(6)}  ${s.queuedKiB.toFixed(1).padStart(10)}  ` +
        `${String(s.lives).padStart(6)}  ${String(s.acked).padStart(8)}  ${String(s.webhooks).padStart(12)}`,
    );
  }
})();

const backend = (async () => {
  let tick = 0;
  while (Date.now() < loadEnds) {
    slow = tick % 300 < 50; // 5 s of every 30
    tick++;
    await fetch(`${bridge.url}/v1/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ namespace: "/soak", rooms: [`room-${tick % ROOMS}`], event: "news", data: tick }),
    }).then((r) => r.arrayBuffer(), () => {});
    await sleep(100);
  }
  slow = false;
})();

let n = 0;
const workers = Array.from({ length: CONCURRENT }, async () => {
  while (Date.now() < loadEnds) await life(n++);
});
await Promise.all([...workers, backend]);
await sampler;

const warm = samples.find((s) => s.t >= 2) ?? samples[0];
const lastLoaded = samples.filter((s) => s.t <= MINUTES - 1).at(-1) ?? samples.at(-1);
const end = samples.at(-1);
const growth = ((lastLoaded.rssMiB - warm.rssMiB) / warm.rssMiB) * 100;
console.log(
  `summary: ${totals.lives} client lives (${totals.failed} failed), ${totals.acked} acknowledgements, ${counts.durable} durable and ${counts.plain} plain webhooks received; ` +
    `RSS ${warm.rssMiB.toFixed(1)} MiB at ${warm.t.toFixed(1)} min, ${lastLoaded.rssMiB.toFixed(1)} MiB when the load stopped (${growth >= 0 ? "+" : ""}${growth.toFixed(1)} %), ${end.rssMiB.toFixed(1)} MiB at the end; ` +
    `fds ${baseline.fds} before the load, ${end.fds} after it; threads ${baseline.threads} before, ${end.threads} after; outbox ${end.outbox} rows, ${end.queuedKiB.toFixed(1)} KiB queued at the end`,
);
await bridge.stop();
receiver.close();
process.exit(0);
