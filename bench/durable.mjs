// Durable webhooks benchmark on loopback: events written to the outbox before they are acked,
// then delivered; on a fresh Postgres database (or SQLite with --sqlite).
//
//   cargo build --release -p bridge
//   (cd tests/js && npm ci)
//   BRIDGE_BIN=target/release/bridge node bench/durable.mjs [clients] [events-per-client] [paced-rate] [paced-seconds] [--sqlite] [--batch]
//
// 1. Burst: every client emits its events at once, each with an acknowledgement; "accepted" is
//    when the last ack ({"ok": true}, sent once the row is committed) came back, "delivered" when
//    the receiver had every event.
// 2. Paced: `paced-rate` events per second for `paced-seconds`, spread over the clients; the
//    latency is from the client's emit to the webhook's arrival at the receiver.
// Every loop is bounded and the run stops by itself.

import { readFileSync } from "node:fs";
import { startBridge, startReceiver, connected, sleep, freshPostgres, freshSqlite } from "../tests/js/harness.mjs";

const args = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const CLIENTS = Number(args[0] ?? 50);
const EVENTS = Number(args[1] ?? 400);
const RATE = Number(args[2] ?? 2000);
const SECONDS = Number(args[3] ?? 10);
const db = process.argv.includes("--sqlite") ? freshSqlite() : freshPostgres();

// CPU seconds (user + system) a process has used, from /proc.
const cpuSecs = (pid) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

const bridge = await startBridge({
  DATABASE_URL: db.url,
  RUST_LOG: "warn,bridge::app=info",
  BRIDGE_EVENT_RATE_LIMIT: "100000",
  BRIDGE_EVENT_RATE_BURST: "100000",
});
// A run that fails part-way must not leave the bridge running.
process.on("exit", () => {
  try {
    process.kill(bridge.pid, "SIGKILL");
  } catch {}
});
const receiver = await startReceiver();
/** What the receiver got, one entry per event (a batch's deliveries spread out). */
const bodies = (received) =>
  received.flatMap((d) => (d.json?.type === "batch" ? d.json.deliveries.map((x) => ({ at: d.at, json: x.body })) : [d]));
/** Events received so far, counted incrementally: the receiver checks this on every request. */
let [counted, countedUpTo] = [0, 0];
const events = (received) => {
  for (; countedUpTo < received.length; countedUpTo++) {
    const d = received[countedUpTo];
    counted += d.json?.type === "batch" ? d.json.deliveries.length : 1;
  }
  return counted;
};
const ns = await bridge.createNamespace({ name: "/bench" });
// --batch: the durable webhook is also batched (default bounds).
await bridge.createWebhook(ns.id, { url: receiver.url, events: ["*"], durable: true, ...(process.argv.includes("--batch") ? { batch: {} } : {}) });
await sleep(300);
const sockets = [];
for (let i = 0; i < CLIENTS; i++) sockets.push(await connected("v4", `${bridge.url}/bench`, { transports: ["websocket"] }));

// 1. Burst.
const total = CLIENTS * EVENTS;
let acked = 0;
let refused = 0;
let started = Date.now();
const allAcked = new Promise((resolve) => {
  for (let n = 0; n < EVENTS; n++) {
    for (const s of sockets) {
      s.emit("burst", n, Date.now(), (answer) => {
        if (!answer?.ok) refused++;
        if (++acked === total) resolve();
      });
    }
  }
});
await Promise.race([allAcked, sleep(120000)]);
const acceptSecs = (Date.now() - started) / 1000;
await receiver.waitFor((r) => events(r) >= total, 120000);
const deliverSecs = (Date.now() - started) / 1000;
const burstLatency = bodies(receiver.received).map((d) => d.at - d.json.args[1]).sort((a, b) => a - b);

// 2. Paced.
receiver.received.length = 0;
[counted, countedUpTo] = [0, 0];
const cpuBefore = { bridge: cpuSecs(bridge.pid), node: cpuSecs(process.pid) };
const perTick = Math.max(1, Math.round(RATE / 100));
const ticks = SECONDS * 100;
started = Date.now();
for (let t = 0; t < ticks; t++) {
  for (let k = 0; k < perTick; k++) sockets[(t * perTick + k) % CLIENTS].emit("paced", t, Date.now());
  const due = started + (t + 1) * 10;
  if (due > Date.now()) await sleep(due - Date.now());
}
const sent = ticks * perTick;
const pacedSecs = (Date.now() - started) / 1000;
await receiver.waitFor((r) => events(r) >= sent, 60000);
const cpu = {
  bridge: cpuSecs(bridge.pid) - cpuBefore.bridge,
  generator_and_receiver: cpuSecs(process.pid) - cpuBefore.node,
};
const paced = bodies(receiver.received).map((d) => d.at - d.json.args[1]).sort((a, b) => a - b);
const stats = await bridge.admin("GET", "/admin/stats");

console.log(JSON.stringify({
  store: db.url.split(":")[0],
  clients: CLIENTS,
  burst: {
    events: total,
    refused,
    accepted_per_sec: Math.round(total / acceptSecs),
    delivered_per_sec: Math.round(total / deliverSecs),
    latency_ms: { p50: pct(burstLatency, 50), p99: pct(burstLatency, 99) },
  },
  paced: {
    target_per_sec: RATE,
    sent_per_sec: Math.round(sent / pacedSecs),
    latency_ms: { p50: pct(paced, 50), p99: pct(paced, 99), max: paced.at(-1) },
    // Share of one core over the paced phase.
    cpu_cores: {
      bridge: +(cpu.bridge / pacedSecs).toFixed(2),
      generator_and_receiver: +(cpu.generator_and_receiver / pacedSecs).toFixed(2),
    },
  },
  outbox_after: stats.body.outbox,
}, null, 1));
for (const s of sockets) s.close();
receiver.close();
await bridge.stop();
// DURABLE_LOG=1: the bridge's log (warnings) on stderr.
if (process.env.DURABLE_LOG) console.error(bridge.log());
