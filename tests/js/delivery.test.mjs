// SPEC 5 delivery: retries, final failures, isolation of dead endpoints, the event rate limit, metrics.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, startReceiver, connected, next, emitWithAck, sleep, metric, until, signedBy, rawClient, startHangingServer } from "./harness.mjs";

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
    let accepted = 0;
    for (const version of ["v4", "v2"]) {
      const socket = await connected(version, env.url);
      const warned = next(socket, "rate_limited");
      // All eight at once; a slow machine may refill a token per second that passes, no more.
      const started = Date.now();
      const acks = await Promise.all([...Array(8).keys()].map((i) => emitWithAck(socket, "spam", i)));
      const refills = Math.floor((Date.now() - started) / 1000);
      const oks = acks.filter((a) => a[0]?.ok === true).length;
      assert.ok(oks >= 5 && oks <= 5 + refills, `${version}: ${oks} accepted in ${refills} s: ${JSON.stringify(acks)}`);
      assert.deepEqual(acks.slice(0, 5), Array(5).fill([{ ok: true }]), "the burst is accepted");
      for (const ack of acks.filter((a) => a[0]?.ok !== true)) assert.deepEqual(ack, [{ error: "rate_limited" }]);
      const [warning] = await warned;
      assert.equal(warning.event, "spam");
      accepted += oks;
      socket.close();
    }
    await env.receiver.waitFor((r) => r.length === accepted);
    await sleep(300); // long enough for a refused event to show up if it were forwarded
    assert.equal(env.receiver.received.length, accepted);
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
    // The attempt is counted once its answer is read, just after the receiver saw it.
    const stats = await until(async () => {
      const body = (await env.bridge.admin("GET", "/admin/stats")).body;
      return body.webhooks_sent >= 1 && body;
    }, 5000, "the attempt counted");
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
    await until(async () => {
      const { connections } = (await env.bridge.admin("GET", "/admin/stats")).body;
      return Object.keys(connections).length === 0;
    }, 5000, "the closed socket uncounted");
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
    assert.equal(gone[0].json.reason, "server shutting down", "the node's stop closed it");
  } finally {
    await env.close();
  }
});

test("a webhook's static headers are sent with every attempt; a disabled webhook gets nothing until enabled", async () => {
  const env = await setup({
    hooks: [
      { events: ["*"], headers: { authorization: "Bearer backend-token", "x-tenant": "acme" } },
      { events: ["*"], enabled: false, headers: { "x-which": "disabled" } },
    ],
  });
  try {
    const socket = await connected("v4", env.url);
    assert.deepEqual(await emitWithAck(socket, "first", 1), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 1);
    const [delivery] = env.receiver.received;
    assert.equal(delivery.headers.authorization, "Bearer backend-token");
    assert.equal(delivery.headers["x-tenant"], "acme");
    assert.ok(signedBy(env.webhooks[0].secret, delivery));
    await sleep(300); // long enough for the disabled webhook's delivery to show up if it were sent
    assert.equal(env.receiver.received.length, 1, "the disabled webhook got nothing");

    const enabled = await env.bridge.admin("PATCH", `/admin/webhooks/${env.webhooks[1].id}`, { enabled: true });
    assert.equal(enabled.status, 200);
    assert.deepEqual(await emitWithAck(socket, "second", 2), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 3);
    const second = env.receiver.received.slice(1);
    assert.deepEqual(second.map((d) => d.json.event), ["second", "second"]);
    const fromEnabled = second.find((d) => signedBy(env.webhooks[1].secret, d));
    assert.equal(fromEnabled.headers["x-which"], "disabled");

    const disabled = await env.bridge.admin("PATCH", `/admin/webhooks/${env.webhooks[0].id}`, { enabled: false });
    assert.equal(disabled.status, 200);
    assert.deepEqual(await emitWithAck(socket, "third", 3), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 4);
    await sleep(300);
    assert.equal(env.receiver.received.length, 4);
    assert.ok(signedBy(env.webhooks[1].secret, env.receiver.received[3]), "only the enabled webhook got the third");
    socket.close();
  } finally {
    await env.close();
  }
});

test("a full queue (1,024 messages behind a hanging endpoint) refuses the next events with queue_full, counted", async () => {
  const hanging = await startHangingServer(); // never answers
  const env = await setup({
    hooks: [{ events: ["*"], url: hanging.url, timeout_ms: 60000 }],
    env: { BRIDGE_EVENT_RATE_LIMIT: "100000", BRIDGE_EVENT_RATE_BURST: "100000" },
  });
  try {
    const raw = await rawClient(env.bridge.url, "/chat");
    // One in flight and 1,024 queued; the 75 after that are refused.
    const total = 1100;
    for (let i = 1; i <= total; i++) raw.send(`42/chat,${i}["small",${i}]`);
    const acks = await raw.waitFor((f) => f.filter((x) => x.startsWith("43/chat,")).length === total, 30000);
    const answer = (id) => JSON.parse(acks.find((x) => x.startsWith(`43/chat,${id}[`)).slice(`43/chat,${id}`.length))[0];
    const refused = [];
    for (let i = 1; i <= total; i++) if (answer(i).ok !== true) refused.push(i);
    assert.equal(refused.length, total - 1025, `refused ${refused.length}`);
    assert.equal(refused[0], 1026, "the first 1,025 were accepted in order");
    for (const id of refused) assert.deepEqual(answer(id), { ok: false, error: "queue_full" });
    const node = (await env.bridge.admin("GET", "/admin/stats")).body.node.id;
    assert.equal(await metric(env.bridge, "bridge_webhook_dropped_total", { reason: "queue_full", node }), total - 1025);
    raw.close();
  } finally {
    hanging.close();
    await env.close();
  }
});
