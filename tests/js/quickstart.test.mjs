// The README's quick start, run as written: its ```sh quickstart:* blocks are read from README.md
// and each run with bash in a shell of its own, started in a fresh folder that stands for the repo
// root (a copy of examples/). The one substitution: `cargo run [-q] --release -p bridge --` becomes
// the binary under test (a release build takes minutes).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { readFileSync, mkdtempSync, cpSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { BRIDGE_BIN, until } from "./harness.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

/** The README's quick-start blocks by name, the bridge command replaced by the binary under test. */
function quickstartBlocks() {
  const readme = readFileSync(join(root, "README.md"), "utf8");
  const blocks = {};
  for (const [, name, body] of readme.matchAll(/^```sh quickstart:(\S+)\n([\s\S]*?)^```$/gm)) {
    blocks[name] = body.replace(/cargo run (-q )?--release -p bridge --/g, BRIDGE_BIN);
  }
  return blocks;
}

/** A block running in the background (its own process group), its output collected. */
function background(script, cwd) {
  const child = spawn("bash", ["-c", script], { cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const run = { out: "", child };
  child.stdout.on("data", (d) => (run.out += d));
  child.stderr.on("data", (d) => (run.out += d));
  run.stop = () => {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {}
  };
  run.waitFor = (pattern, ms = 20000) => until(() => pattern.test(run.out), ms, `${pattern} in:\n${run.out}`);
  return run;
}

const portTaken = (port) =>
  new Promise((resolve) => {
    const socket = createConnection(port, "127.0.0.1");
    socket.on("connect", () => (socket.destroy(), resolve(true)));
    socket.on("error", () => resolve(false));
  });

test("the README's quick start works as written: every block from the repo root, client events, verified webhooks, acks, a push reaching both clients", async () => {
  for (const port of [3000, 3001, 4000]) assert.equal(await portTaken(port), false, `port ${port} is free for the quick start`);
  const blocks = quickstartBlocks();
  assert.deepEqual(Object.keys(blocks).sort(), ["backend", "bridge", "client", "client-v2", "emit", "env"]);
  // Each block runs in a fresh shell at the root below; none may leave its terminal elsewhere,
  // since the README lets any block run in a terminal an earlier one used.
  for (const [name, body] of Object.entries(blocks)) {
    assert.doesNotMatch(body, /(^|[;&|(]\s*)(cd|pushd)\s/m, `block ${name} changes directory`);
  }
  const dir = mkdtempSync(join(tmpdir(), "bridge-quickstart-"));
  cpSync(join(root, "examples"), join(dir, "examples"), { recursive: true, filter: (src) => !src.includes("node_modules") });
  const running = [];
  try {
    execFileSync("bash", ["-c", blocks.env], { cwd: dir });

    const bridge = background(blocks.bridge, dir);
    running.push(bridge);
    await bridge.waitFor(/listening public=127\.0\.0\.1:3000/);
    assert.match(bridge.out, /bootstrap: namespace \/chat created/);
    assert.match(bridge.out, /bootstrap: api key quickstart-backend created/);
    assert.doesNotMatch(bridge.out, /no namespaces yet/, "the first-run hint is only for a bridge without namespaces");

    const backend = background(blocks.backend, dir);
    running.push(backend);
    await backend.waitFor(/example backend on/);

    const client = background(blocks.client, dir);
    running.push(client);
    await client.waitFor(/connected as/, 60000); // npm ci first
    await client.waitFor(/welcome, ann/);
    await client.waitFor(/ack \{"delivered_to":"lobby","ok":true\}/);
    await client.waitFor(/chat:message \{"from":"ann","text":"hello from a v4 client"\}/);
    assert.match(backend.out, /webhook msg_\S+ verified/);
    assert.match(backend.out, /\/chat: chat:message from ann/);

    // The v2 client uses the packages the v4 block installed.
    const v2 = background(blocks["client-v2"], dir);
    running.push(v2);
    await v2.waitFor(/connected as/);
    await v2.waitFor(/welcome, alice/);
    await v2.waitFor(/ack \{"delivered_to":"lobby","ok":true\}/);
    await v2.waitFor(/chat:message \{"from":"alice","text":"hello from a v2 client"\}/);
    assert.match(backend.out, /\/private: alice connected/);

    // Step 6: one push, printed by both clients (each in its own namespace's lobby).
    const emitted = execFileSync("bash", ["-c", blocks.emit], { cwd: dir, encoding: "utf8" });
    assert.deepEqual(JSON.parse(emitted), { results: [{ ok: true }, { ok: true }] });
    const pushed = /chat:message \{"from":"curl","text":"hello from REST"\}/;
    await client.waitFor(pushed);
    await v2.waitFor(pushed);
    assert.doesNotMatch(backend.out, /bad signature/);
  } finally {
    for (const run of running.reverse()) run.stop();
    await until(() => running.every((r) => r.child.exitCode !== null || r.child.signalCode !== null), 20000, "quick-start processes stopped");
  }
});
