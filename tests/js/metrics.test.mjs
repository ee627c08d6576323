// The documented metrics and stats (docs/operations.md) read back: the durable outbox's outcome
// counters and gauges, the adapter's state in /admin/stats, and the `node` label on every series.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, startReceiver, connected, emitWithAck, freshSqlite, until, metric, parseMetrics } from "./harness.mjs";
import { ownRedis } from "./deployment.mjs";

/** Every series of `bridge`'s /metrics. */
async function allSeries(bridge) {
  return parseMetrics(await (await fetch(`${bridge.adminUrl}/metrics`)).text());
}

test("durable outcomes are counted by outcome; pending, dead and the oldest due are gauged and in stats; every series names its node", async () => {
  // Answered by event: ok 200, bad 400 (failed), gone 503 (retried, then dead), hold never.
  const held = [];
  const receiver = await startReceiver((req) => {
    switch (req.json?.event) {
      case "bad":
        return { status: 400 };
      case "gone":
        return { status: 503 };
      case "hold":
        return new Promise((resolve) => held.push(resolve));
      default:
        return {};
    }
  });
  const bridge = await startBridge({ DATABASE_URL: freshSqlite().url, BRIDGE_NODE_ID: "metrics-node", BRIDGE_OUTBOX_SCHEDULE: "150ms" });
  try {
    const ns = await bridge.createNamespace({ name: "/jobs" });
    await bridge.createWebhook(ns.id, { url: receiver.url, events: ["*"], durable: true, timeout_ms: 60000 });
    const socket = await connected("v4", `${bridge.url}/jobs`);
    for (const event of ["ok", "bad", "gone", "hold"]) assert.deepEqual(await emitWithAck(socket, event, 1), [{ ok: true }]);
    const bodies = await receiver.waitFor((r) => r.filter((d) => d.json.event === "gone").length === 2 && r.some((d) => d.json.event === "hold"), 10000);
    const size = (event) => Buffer.byteLength(bodies.find((d) => d.json.event === event).raw);
    const status = async (event) => (await bridge.admin("GET", `/admin/deliveries/${bodies.find((d) => d.json.event === event).headers["webhook-id"]}`)).body.status;
    await until(async () => (await status("gone")) === "dead", 5000, "gone dead");
    assert.equal(await status("ok"), "delivered");
    assert.equal(await status("bad"), "failed");
    assert.equal(await status("hold"), "pending");

    const node = "metrics-node";
    const outcomes = async () => {
      const counts = {};
      for (const outcome of ["delivered", "retry", "dead", "failed"]) counts[outcome] = await metric(bridge, "bridge_outbox_deliveries_total", { outcome, node });
      return counts;
    };
    assert.deepEqual(await outcomes(), { delivered: 1, retry: 1, dead: 1, failed: 1 });

    // The gauges are read from the store every second; the held row has been due since it was written.
    const stats = await until(async () => {
      const body = (await bridge.admin("GET", "/admin/stats")).body;
      return body.outbox.oldest_due_seconds >= 1 && body;
    }, 10000, "the held row due for a second");
    assert.equal(stats.node.id, node);
    assert.equal(stats.outbox.pending, 1);
    assert.equal(stats.outbox.pending_bytes, size("hold"));
    assert.equal(stats.outbox.dead, 1);
    assert.equal(stats.outbox.dead_bytes, size("gone"));
    assert.ok(stats.outbox.oldest_due_seconds < 120, `oldest_due_seconds ${stats.outbox.oldest_due_seconds}: seconds`);
    assert.equal(stats.webhooks_failed, 2, "the failed and the dead one");
    assert.equal(stats.webhook_attempts, 4, "ok, bad, gone twice (hold's is still under way)");
    await until(async () => (await metric(bridge, "bridge_outbox_oldest_due_seconds", { node })) >= 1, 10000, "the gauge of the oldest due");
    assert.equal(await metric(bridge, "bridge_outbox_pending", { node }), 1);
    assert.equal(await metric(bridge, "bridge_outbox_pending_bytes", { node }), size("hold"));
    assert.equal(await metric(bridge, "bridge_outbox_dead", { node }), 1);
    assert.ok((await metric(bridge, "bridge_outbox_oldest_due_seconds", { node })) < 120);

    const series = await allSeries(bridge);
    const unlabelled = series.filter((s) => s.labels.node !== node).map((s) => s.name);
    assert.deepEqual(unlabelled, [], "every series carries node");
    for (const name of ["bridge_outbox_deliveries_total", "bridge_outbox_pending", "bridge_outbox_pending_bytes", "bridge_outbox_dead", "bridge_outbox_oldest_due_seconds"]) {
      assert.ok(series.some((s) => s.name === name), `${name} is served`);
    }
    socket.close();
  } finally {
    receiver.close();
    for (const release of held) release({});
    await bridge.stop();
  }
});

test("stats name the adapter's error while its connection is down, and count the loss", async () => {
  const redis = await ownRedis();
  const bridge = await startBridge({ BRIDGE_ADAPTER: "redis", REDIS_URL: redis.url });
  try {
    const node = async () => (await bridge.admin("GET", "/admin/stats")).body.node;
    const up = await node();
    assert.equal(up.adapter, "redis");
    assert.equal(up.adapter_connected, true);
    assert.equal(up.adapter_lost, 0);
    assert.ok(!("adapter_error" in up), JSON.stringify(up));

    await redis.kill();
    // Pinged every second.
    const down = await until(async () => {
      const n = await node();
      return n.adapter_connected === false && n;
    }, 10000, "the adapter seen down");
    assert.equal(typeof down.adapter_error, "string");
    assert.ok(down.adapter_error.length > 0, "says why");
    assert.equal(down.adapter_lost, 1);
    const ready = await fetch(`${bridge.url}/readyz`);
    assert.equal(ready.status, 503);
    assert.equal((await ready.json()).error.code, "adapter_unavailable");

    await redis.restart();
    const back = await until(async () => {
      const n = await node();
      return n.adapter_connected === true && n;
    }, 15000, "the adapter back");
    assert.ok(!("adapter_error" in back), JSON.stringify(back));
    assert.equal(back.adapter_lost, 1);
  } finally {
    await bridge.stop();
    await redis.kill();
  }
});
