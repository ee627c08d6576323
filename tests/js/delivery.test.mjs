// SPEC 5 delivery: retries, final failures, isolation of dead endpoints, the event rate limit, metrics.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, startReceiver, connected, next, emitWithAck, sleep, metric, until } from "./harness.mjs";

test("retryable failures are retried with the same webhook-id until a 2xx", async () => {
  const answers = [500, 503, 200];
  const env = await setup({ hooks: [{ events: ["*"] }], handler: () => ({ status: answers.shift() ?? 200 }) });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("flaky", 1);
    const got = await env.receiver.waitFor((r) => r.length === 3, 10000);
    const ids = new Set(got.map((d) => d.headers["webhook-id"]));
    assert.equal(ids.size, 1, "one id on every attempt");
    // 0.5 s doubling, times 50–100 %: the first gap is at least 250 ms, the second 500 ms.
    assert.ok(got[1].at - got[0].at >= 240, `first backoff ${got[1].at - got[0].at} ms`);
    assert.ok(got[2].at - got[1].at >= 490, `second backoff ${got[2].at - got[1].at} ms`);
    await sleep(1500);
    assert.equal(env.receiver.received.length, 3, "no attempt after the 2xx");
    const stats = await env.bridge.admin("GET", "/admin/stats");
    assert.equal(stats.body.webhooks_sent, 1);
    socket.close();
  } finally {
    await env.close();
  }
});

test("a delivery that keeps failing is tried five times, then recorded as failed", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }], handler: () => ({ status: 503 }) });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("doomed", 1);
    // Backoff 0.25–0.5, 0.5–1, 1–2, 2–4 s between the five attempts.
    const [failed] = await until(async () => {
      const list = (await env.bridge.admin("GET", `/admin/deliveries?webhook=${env.webhooks[0].id}&status=failed`)).body.deliveries;
      return list.length > 0 && list;
    }, 20000, "recorded as failed");
    assert.equal(failed.attempts, 5);
    assert.equal(failed.last_status, 503);
    assert.equal(env.receiver.received.length, 5);
    assert.equal(new Set(env.receiver.received.map((d) => d.headers["webhook-id"])).size, 1);
    const gaps = env.receiver.received.slice(1).map((d, i) => d.at - env.receiver.received[i].at);
    gaps.forEach((gap, i) => assert.ok(gap >= 250 * 2 ** i - 10, `gap ${i + 1}: ${gap} ms`));
    // Nothing after the last attempt.
    await sleep(1000);
    assert.equal(env.receiver.received.length, 5);
    assert.equal((await env.bridge.admin("GET", "/admin/stats")).body.webhooks_failed, 1);
    socket.close();
  } finally {
    await env.close();
  }
});

test("429 honours Retry-After", async () => {
  const answers = [{ status: 429, headers: { "retry-after": "1" } }, { status: 200 }];
  const env = await setup({ hooks: [{ events: ["*"] }], handler: () => answers.shift() ?? {} });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("busy", 1);
    const got = await env.receiver.waitFor((r) => r.length === 2, 10000);
    assert.ok(got[1].at - got[0].at >= 950, `waited ${got[1].at - got[0].at} ms`);
    socket.close();
  } finally {
    await env.close();
  }
});

test("a 400 is final: no retry, and the failure is recorded in deliveries", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }], handler: () => ({ status: 400 }) });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("rejected", { n: 1 });
    await env.receiver.waitFor((r) => r.length === 1);
    await sleep(1500);
    assert.equal(env.receiver.received.length, 1);
    const list = await env.bridge.admin("GET", `/admin/deliveries?webhook=${env.webhooks[0].id}&status=failed`);
    assert.equal(list.status, 200);
    assert.equal(list.body.deliveries.length, 1);
    const id = list.body.deliveries[0].id;
    assert.equal(id, env.receiver.received[0].headers["webhook-id"]);
    const record = (await env.bridge.admin("GET", `/admin/deliveries/${id}`)).body;
    assert.equal(record.event, "rejected");
    assert.equal(record.last_status, 400);
    assert.equal(record.attempts, 1);
    assert.equal(record.history.length, 1);
    assert.equal(record.history[0].status, 400);
    assert.deepEqual(record.payload.args, [{ n: 1 }]);
    const stats = await env.bridge.admin("GET", "/admin/stats");
    assert.equal(stats.body.webhooks_failed, 1);
    socket.close();
  } finally {
    await env.close();
  }
});

test("a dead endpoint and a slow one block neither a live endpoint nor the socket", async () => {
  const slow = await startReceiver(() => ({ delayMs: 4000 }));
  const env = await setup({
    hooks: [
      { events: ["*"], url: "http://127.0.0.1:1/dead", timeout_ms: 500 },
      { events: ["*"], url: slow.url, timeout_ms: 5000 },
      { events: ["*"] },
    ],
  });
  try {
    const socket = await connected("v4", env.url);
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await emitWithAck(socket, "tick", i), [{ ok: true }], "acks do not wait for webhooks");
    }
    await env.receiver.waitFor((r) => r.length === 20, 3000);
    assert.ok(Date.now() - started < 3000, "the live endpoint got everything promptly");
    assert.deepEqual(env.receiver.received.map((d) => d.json.args[0]), [...Array(20).keys()]);
    socket.close();
  } finally {
    slow.close();
    await env.close();
  }
});

test("a socket over the event rate limit gets rate_limited and nothing more is forwarded", async () => {
  const env = await setup({
    hooks: [{ events: ["*"] }],
    env: { BRIDGE_EVENT_RATE_LIMIT: "1", BRIDGE_EVENT_RATE_BURST: "5" },
  });
  try {
    for (const version of ["v4", "v2"]) {
      const socket = await connected(version, env.url);
      const warned = next(socket, "rate_limited");
      const acks = [];
      for (let i = 0; i < 8; i++) acks.push(await emitWithAck(socket, "spam", i));
      assert.deepEqual(acks.slice(0, 5), Array(5).fill([{ ok: true }]));
      assert.deepEqual(acks.slice(5), Array(3).fill([{ error: "rate_limited" }]));
      const [warning] = await warned;
      assert.equal(warning.event, "spam");
      socket.close();
    }
    await sleep(300);
    assert.equal(env.receiver.received.length, 10);
  } finally {
    await env.close();
  }
});

test("metrics and stats count connections, events and webhook attempts", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  try {
    const socket = await connected("v4", env.url);
    await emitWithAck(socket, "counted", 1);
    await env.receiver.waitFor((r) => r.length === 1);
    await sleep(100);
    const stats = (await env.bridge.admin("GET", "/admin/stats")).body;
    assert.deepEqual(stats.connections, { "/chat": 1 });
    assert.equal(stats.events_in, 1);
    assert.equal(stats.webhooks_sent, 1);
    const node = stats.node.id;
    assert.equal(await metric(env.bridge, "bridge_connections", { namespace: "/chat", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_events_received_total", { namespace: "/chat", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_attempts_total", { outcome: "success", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_duration_seconds_count", { node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_duration_seconds_bucket", { le: "+Inf", node }), 1);
    socket.close();
    await sleep(200);
    assert.deepEqual((await env.bridge.admin("GET", "/admin/stats")).body.connections, {});
  } finally {
    await env.close();
  }
});

test("a payload over BRIDGE_MAX_PAYLOAD closes the connection instead of being forwarded", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }], env: { BRIDGE_MAX_PAYLOAD: "2000" } });
  try {
    const socket = await connected("v4", env.url, { transports: ["websocket"] });
    const gone = next(socket, "disconnect");
    socket.emit("big", "x".repeat(5000));
    await gone;
    await sleep(200);
    assert.equal(env.receiver.received.length, 0);
  } finally {
    await env.close();
  }
});

test("on SIGTERM, queued deliveries and the closed sockets' $disconnect go out before exit", async () => {
  const env = await setup({ hooks: [{ events: ["*", "$disconnect"] }], handler: () => ({ delayMs: 300 }) });
  try {
    const socket = await connected("v4", env.url);
    for (let i = 0; i < 4; i++) await emitWithAck(socket, "late", i);
    await env.bridge.stop();
    const events = env.receiver.events().map((d) => d.json.args[0]);
    assert.deepEqual(events, [0, 1, 2, 3], "every accepted event was delivered");
    const gone = env.receiver.events("disconnect");
    assert.equal(gone.length, 1);
    assert.match(gone[0].json.reason, /disconnect/);
  } finally {
    await env.close();
  }
});
