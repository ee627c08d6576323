// Faults while the deployment works (deployment.mjs: deploy/nginx.conf in front of two nodes on
// Postgres and Redis): official v2 and v4 clients keep emitting durable events with
// acknowledgements and a backend keeps emitting to a room, while a schedule of faults runs.
// Nothing acknowledged `{"ok": true}` may be lost; every client must be connected at the end and
// both nodes ready. The figures printed are the ones docs/operations.md quotes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { until, sleep, psql } from "./harness.mjs";
import { deployment, ready, KINDS, reconnectingClient, emitLoad, roomEmits, delivered, allDelivered } from "./deployment.mjs";

test("a schedule of faults under load: nothing acknowledged is lost, every client comes back, both nodes ready", async () => {
  const backend = { down: false };
  const d = await deployment({
    env: {
      BRIDGE_DRAIN: "2s",
      // A killed node's held rows are taken over after 3 s; retries come quickly.
      BRIDGE_OUTBOX_LEASE_MS: "3000",
      BRIDGE_OUTBOX_SCHEDULE: "250ms,500ms,1s,1s,2s,2s,5s,5s,10s",
    },
    hooks: (url) => [
      { url, events: ["note"], durable: true },
      { url, events: ["$connect"], reply: true },
    ],
    handler: (req) => {
      if (req.json?.type === "connect") return { body: { join: ["lobby"] } };
      if (backend.down && req.json?.event === "note") {
        req.refused = true;
        return { status: 503 };
      }
      return {};
    },
  });
  const clients = [];
  try {
    for (let i = 0; i < 20; i++) clients.push(reconnectingClient(d.nginx.url, KINDS[i % KINDS.length], i));
    await until(() => clients.every((c) => c.socket.connected), 10000, "every client connected");
    const load = emitLoad(clients, 100);
    const emits = roomEmits(d, 200);
    await sleep(1000);

    const faults = [
      ["SIGKILL of bridge-1, restarted on the same ports", async () => {
        await d.node(0).kill();
        await d.restart(0);
      }],
      ["the adapter's Redis killed, restarted 1 s later", async () => {
        await d.redis.kill();
        await sleep(1000);
        await d.redis.restart();
      }],
      ["every store connection terminated", async () => {
        psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${d.db.name}' AND pid <> pg_backend_pid()`);
      }],
      ["the backend answering 503 for 3 s", async () => {
        backend.down = true;
        await sleep(3000);
        backend.down = false;
      }],
      ["SIGTERM of bridge-2, started again", async () => {
        await d.node(1).stop();
        assert.equal(d.node(1).exitCode(), 0);
        await d.restart(1);
      }],
    ];
    const figures = [];
    for (const [name, fault] of faults) {
      const connectsBefore = clients.reduce((n, c) => n + c.connects, 0);
      const emitsBefore = emits.counts.ok;
      const started = Date.now();
      await fault();
      // Recovered: every client connected, both nodes ready, and a room emit through nginx answered.
      await until(
        async () =>
          clients.every((c) => c.socket.connected) &&
          (await Promise.all([ready(d.node(0)), ready(d.node(1))])).every((r) => r.status === 200) &&
          emits.counts.ok > emitsBefore,
        30000,
        `recovery from: ${name}`,
      );
      figures.push({
        fault: name,
        recovered_ms: Date.now() - started,
        reconnects: clients.reduce((n, c) => n + c.connects, 0) - connectsBefore,
      });
      await sleep(1500);
    }
    await load.stop();
    await emits.stop();
    await until(() => allDelivered(load, d.receiver), 30000, "every accepted event delivered");
    const { ids, duplicates } = delivered(d.receiver);
    const lost = [...load.accepted].filter((id) => !ids.has(id));
    assert.deepEqual(lost, [], "nothing acknowledged is lost");
    assert.ok(clients.every((c) => c.socket.connected), "every client connected at the end");
    for (const i of [0, 1]) assert.equal((await ready(d.node(i))).status, 200);
    const reasons = new Set(clients.flatMap((c) => c.reasons));
    assert.ok(!reasons.has("io server disconnect"), [...reasons].join());

    console.log(`faults: ${clients.length} clients (v2 and v4, WebSocket and polling) through nginx, two nodes on Postgres and Redis`);
    for (const f of figures) console.log(`  ${f.fault}: recovered in ${f.recovered_ms} ms, ${f.reconnects} reconnects`);
    console.log(
      `  durable events: ${load.sent} sent, ${load.accepted.size} accepted, ${load.refused.length} refused ` +
        `(${[...new Set(load.refused.map((r) => r.error))].join(", ") || "none"}), ${ids.size} delivered, ${duplicates} duplicates, 0 lost; ` +
        `room emits: ${emits.counts.ok} answered 200, ${emits.counts.failed} refused while a node or the adapter was away`,
    );
  } finally {
    for (const c of clients) c.close();
    await d.close();
  }
});
