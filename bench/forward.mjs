// The forward workload alone against the release bridge: N clients emit E events each with an
// ack, every event a signed webhook to a receiver that answers 200 at once, either `loadgen
// receive` (rust) or a Node.js `http` server in this process (node). With a perf output file, the
// bridge is recorded by `perf record -e cpu-clock` for the workload's length (PERF_CG picks the
// call-graph mode, e.g. `dwarf,16384`; default frame pointers). Prints one line: events acked per
// second, server CPU per event, ack p99 (ms); with the rust receiver also events delivered per
// second (from the load generator's start, its connects included, until the receiver had them
// all, waiting at most 120 s).
//
//   cargo build --release -p bridge -p loadgen && (cd tests/js && npm ci)
//   node bench/forward.mjs [rust|node] [clients] [events] [perf.data]
//
// FORWARD_BATCH=1: the webhook batched with the default bounds, or FORWARD_BATCH='{"max_in_flight":4}'
// with those. RECEIVER_DELAY_MS: the rust receiver answers each webhook that much later.
import { spawn } from "node:child_process";
import { once } from "node:events";
import http from "node:http";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
process.env.BRIDGE_BIN ??= join(root, "target", "release", "bridge");
const { startBridge, hsToken } = await import("../tests/js/harness.mjs");
const LOADGEN = join(root, "target", "release", "loadgen");
const [RECV, CLIENTS, EVENTS, PERF] = [process.argv[2] ?? "rust", Number(process.argv[3] ?? 100), Number(process.argv[4] ?? 300), process.argv[5]];
if (!["rust", "node"].includes(RECV)) throw new Error(`receiver must be rust or node, not ${RECV}`);
const token = await hsToken("s", { sub: "bench" });
let receiverUrl, rchild;
if (RECV === "rust") {
  rchild = spawn(LOADGEN, ["receive", "--delay-ms", process.env.RECEIVER_DELAY_MS ?? "0"], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise((res) => { let o = ""; rchild.stdout.on("data", (d) => { o += d; const m = o.match(/port=(\d+)/); if (m) res(m[1]); }); });
  receiverUrl = `http://127.0.0.1:${port}/`;
} else {
  const srv = http.createServer((req, res) => { req.resume(); req.on("end", () => { res.writeHead(200, { "content-type": "application/json" }); res.end("{}"); }); });
  srv.listen(0, "127.0.0.1"); await once(srv, "listening");
  receiverUrl = `http://127.0.0.1:${srv.address().port}/`;
}
const bridge = await startBridge({ RUST_LOG: "warn,bridge::app=info", BRIDGE_EVENT_RATE_LIMIT: "100000", BRIDGE_EVENT_RATE_BURST: "100000", BRIDGE_API_RATE_LIMIT: "100000", BRIDGE_API_RATE_BURST: "100000" });
const ns = await bridge.createNamespace({ name: "/bench", auth: { mode: "jwt", algorithm: "HS256", secret: "s" } });
const batch = process.env.FORWARD_BATCH ? (process.env.FORWARD_BATCH === "1" ? {} : JSON.parse(process.env.FORWARD_BATCH)) : null;
await bridge.createWebhook(ns.id, { url: receiverUrl, events: ["*"], secret: "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMtb2s=", ...(batch ? { batch } : {}) });
const received = async () => (RECV === "rust" ? Number(await (await fetch(receiverUrl)).text()) : 0);
let perf;
if (PERF) perf = spawn("perf", ["record", "-e", "cpu-clock", "-F", "999", ...(process.env.PERF_CG ? ["--call-graph", process.env.PERF_CG] : ["-g"]), "-p", String(bridge.pid), "-o", PERF], { stdio: "inherit" });
const started = Date.now();
const child = spawn(LOADGEN, ["forward", "--url", bridge.url, "--clients", String(CLIENTS), "--token", token, "--pid", String(bridge.pid), "--events", String(EVENTS)], { stdio: ["ignore", "pipe", "inherit"] });
let out = ""; child.stdout.on("data", (d) => (out += d)); await once(child, "exit");
if (perf) { perf.kill("SIGINT"); await once(perf, "exit"); }
const r = JSON.parse(out);
let delivered = "";
if (RECV === "rust") {
  const until = Date.now() + 120_000;
  while ((await received()) < r.acked && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
  const got = await received();
  delivered = `delivered ${((got * 1000) / (Date.now() - started)).toFixed(0)} ev/s (${got} of ${r.acked})`;
}
console.log(RECV, r.acked_per_sec.toFixed(0), "ev/s", r.server_cpu_us_per_event.toFixed(1), "us/ev", "p99", r.ack_latency_ms.p99, delivered);
await bridge.stop(); if (rchild) rchild.kill(); process.exit(0);
