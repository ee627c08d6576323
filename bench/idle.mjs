// Many idle clients held for a while: every heartbeat answered, none dropped, RSS per connection.
//
//   cargo build --release -p bridge -p loadgen && (cd tests/js && npm ci)
//   bash -c 'ulimit -n 20000; node bench/idle.mjs [clients] [seconds] [v2] [browser]'
//
// The bridge (JWT namespace) and one load generator process; bounded by the hold time.

import { spawn } from "node:child_process";
import { once } from "node:events";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
// The release build is the one measured (the test harness defaults to the debug build).
process.env.BRIDGE_BIN ??= join(root, "target", "release", "bridge");
const { startBridge, hsToken } = await import("../tests/js/harness.mjs");
const LOADGEN = process.env.LOADGEN_BIN ?? join(root, "target", "release", "loadgen");
const CLIENTS = Number(process.argv[2] ?? 10000);
const SECONDS = Number(process.argv[3] ?? 120);
const OPTIONS = process.argv.slice(4);
const V2 = OPTIONS.includes("v2");
// A desktop browser's handshake headers, a cookie included, instead of the load generator's few.
const BROWSER = OPTIONS.includes("browser");

const bridge = await startBridge({ RUST_LOG: "warn,bridge::app=info", BRIDGE_MAX_CONNECTIONS: "30000" });
try {
  await bridge.createNamespace({ name: "/bench", auth: { mode: "jwt", algorithm: "HS256", secret: "idle-secret" } });
  const token = await hsToken("idle-secret", { sub: "idle" });
  const args = ["idle", "--url", bridge.url, "--namespace", "/bench", "--clients", String(CLIENTS), "--token", token,
    "--pid", String(bridge.pid), "--hold-secs", String(SECONDS), "--timeout-secs", "300", ...(V2 ? ["--v2"] : []), ...(BROWSER ? ["--browser-headers"] : [])];
  const child = spawn(LOADGEN, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  const [code] = await once(child, "exit");
  if (code !== 0) throw new Error(`loadgen exited with ${code}`);
  console.log(JSON.stringify(JSON.parse(out), null, 1));
} finally {
  await bridge.stop();
}
