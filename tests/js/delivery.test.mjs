// SPEC 5 delivery: retries, final failures, isolation of dead endpoints, the event rate limit, metrics.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, startReceiver, connected, next, emitWithAck, metric, until, signedBy, rawClient, startHangingServer } from "./harness.mjs";

/** The failure records of `webhook` once there are `count` of them (they are written once the delivery is over). */
async function failures(env, webhook, count = 1) {
  return until(async () => {
    const list = (await env.bridge.admin("GET", `/admin/deliveries?webhook=${webhook.id}&status=failed`)).body.deliveries;
    return list.length >= count && list;
  }, 20000, `${count} failure(s) recorded`);
}

/**
 * Emits `marker` on `socket` and waits for its delivery: one queue per (socket, webhook) sends in
 * order, one at a time, so once it arrived the socket's earlier deliveries to that webhook are
 * over (no attempt of theirs can follow). The webhook must answer the marker 2xx.
 */
async function settled(env, socket, marker = "marker") {
  socket.emit(marker);
  await env.receiver.waitFor((r) => r.some((d) => d.json?.event === marker), 10000);
}

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
    await settled(env, socket);
    assert.deepEqual(env.receiver.received.map((d) => d.json.event), ["flaky", "flaky", "flaky", "marker"], "no attempt after the 2xx");
    // An attempt is counted once its answer is read, just after the receiver saw it.
    const stats = await until(async () => {
      const res = await env.bridge.admin("GET", "/admin/stats");
      return res.body.webhook_attempts === 4 && res;
    }, 5000, "four attempts counted");
    assert.equal(stats.body.webhooks_sent, 2, "flaky once, and the marker");
    socket.close();
  } finally {
    await env.close();
  }
});

test("a delivery that keeps failing is tried five times, then recorded as failed", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }], handler: (req) => ({ status: req.json?.event === "marker" ? 200 : 503 }) });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("doomed", 1);
    // Backoff 0.25–0.5, 0.5–1, 1–2, 2–4 s between the five attempts.
    const [failed] = await failures(env, env.webhooks[0]);
    assert.equal(failed.attempts, 5);
    assert.equal(failed.last_status, 503);
    assert.equal(env.receiver.received.length, 5);
    assert.equal(new Set(env.receiver.received.map((d) => d.headers["webhook-id"])).size, 1);
    const gaps = env.receiver.received.slice(1).map((d, i) => d.at - env.receiver.received[i].at);
    gaps.forEach((gap, i) => assert.ok(gap >= 250 * 2 ** i - 10, `gap ${i + 1}: ${gap} ms`));
    // Nothing after the last attempt: the socket's next delivery comes right after the fifth.
    await settled(env, socket);
    assert.deepEqual(env.receiver.received.map((d) => d.json.event), [...Array(5).fill("doomed"), "marker"]);
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
  const env = await setup({ hooks: [{ events: ["*"] }], handler: (req) => ({ status: req.json?.event === "marker" ? 200 : 400 }) });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("rejected", { n: 1 });
    await env.receiver.waitFor((r) => r.length === 1);
    await settled(env, socket);
    assert.deepEqual(env.receiver.received.map((d) => d.json.event), ["rejected", "marker"], "no retry");
    const list = await failures(env, env.webhooks[0]);
    assert.equal(list.length, 1);
    const id = list[0].id;
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

test("a dead endpoint and a stalled one block neither a live endpoint nor the socket", async () => {
  // The stalled endpoint holds every request until the test ends.
  const held = [];
  const stalled = await startReceiver(() => new Promise((resolve) => held.push(resolve)));
  const env = await setup({
    hooks: [
      { events: ["*"], url: "http://127.0.0.1:1/dead", timeout_ms: 500 },
      { events: ["*"], url: stalled.url, timeout_ms: 60000 },
      { events: ["*"] },
    ],
  });
  try {
    const socket = await connected("v4", env.url);
    for (let i = 0; i < 20; i++) {
      assert.deepEqual(await emitWithAck(socket, "tick", i), [{ ok: true }], "acks do not wait for webhooks");
    }
    // Bounded wide (a live endpoint behind the stalled one would wait 60 s per event).
    await env.receiver.waitFor((r) => r.length === 20, 20000);
    assert.deepEqual(env.receiver.received.map((d) => d.json.args[0]), [...Array(20).keys()]);
    // The stalled endpoint's first request may still be on its way; it is sent (once: its queue
    // sends one at a time and it is never answered) and held.
    await stalled.waitFor((r) => r.length === 1, 10000);
    await until(() => held.length === 1, 5000, "the stalled endpoint holding its first request");
    assert.equal(stalled.received.length, 1, "the stalled endpoint still holds its first request: the live one did not wait for it");
    socket.close();
  } finally {
    for (const release of held) release({});
    stalled.close();
    await env.close();
  }
});

test("a redirect is final and never followed: one request, recorded failed with its 3xx", async () => {
  const elsewhere = await startReceiver();
  const env = await setup({
    hooks: [{ events: ["*"] }],
    handler: (req) => (req.json?.event === "marker" ? {} : { status: 302, headers: { location: `${elsewhere.url}/moved` } }),
  });
  try {
    const socket = await connected("v4", env.url);
    socket.emit("moving", 1);
    // Recorded once the delivery is over: a followed redirect would have been requested before.
    const [failed] = await failures(env, env.webhooks[0]);
    assert.equal(failed.last_status, 302);
    assert.equal(failed.attempts, 1);
    const record = (await env.bridge.admin("GET", `/admin/deliveries/${failed.id}`)).body;
    assert.deepEqual(record.history.map((h) => [h.status, h.error]), [[302, "HTTP 302"]]);
    await settled(env, socket);
    assert.deepEqual(env.receiver.received.map((d) => d.json.event), ["moving", "marker"], "exactly one request, no retry");
    assert.equal(elsewhere.received.length, 0, "the Location was never requested");
    assert.equal((await env.bridge.admin("GET", "/admin/stats")).body.webhooks_failed, 1);
    socket.close();
  } finally {
    elsewhere.close();
    await env.close();
  }
});

test("BRIDGE_WEBHOOK_CONCURRENCY bounds one webhook's requests in flight; every one is delivered", async () => {
  let open = 0;
  let most = 0;
  // The limited webhook's receiver holds every request until the test lets them go.
  const held = [];
  let holding = true;
  // A second webhook on the same events, answered at once: the marker of what the bridge sent.
  const marks = await startReceiver();
  const env = await setup({
    hooks: [{ events: ["*"] }, { events: ["*"], url: marks.url }],
    env: { BRIDGE_WEBHOOK_CONCURRENCY: "3" },
    handler: async () => {
      open += 1;
      most = Math.max(most, open);
      if (holding) await new Promise((release) => held.push(release));
      open -= 1;
      return {};
    },
  });
  const sockets = [];
  try {
    // One request in flight per (socket, webhook): eight sockets make eight queues.
    for (let i = 0; i < 8; i++) sockets.push(await connected("v4", env.url));
    sockets.forEach((socket, i) => socket.emit("work", i));
    await until(() => held.length >= 3, 10000, "three requests held");
    // Each event was queued for both webhooks at once. The second webhook has all eight, answered
    // and counted as sent: its queues' workers went through a whole request each, while those of
    // the limited one, without the limit, would have sent their requests too.
    await marks.waitFor((r) => r.length === 8, 10000);
    await until(async () => (await env.bridge.admin("GET", "/admin/stats")).body.webhooks_sent === 8, 5000, "the second webhook's eight counted sent");
    assert.equal(env.receiver.received.length, 3, "no fourth request while three are in flight");
    assert.equal(open, 3);
    holding = false;
    for (const release of held) release();
    await env.receiver.waitFor((r) => r.length === 8, 10000);
    assert.deepEqual(env.receiver.received.map((d) => d.json.args[0]).sort(), [...Array(8).keys()]);
    await until(async () => (await env.bridge.admin("GET", "/admin/stats")).body.webhooks_sent === 16, 5000, "all sixteen delivered");
    assert.equal(most, 3, "at most three requests in flight to the webhook at once");
  } finally {
    holding = false;
    for (const release of held) release();
    for (const socket of sockets) socket.close();
    marks.close();
    await env.close();
  }
});

test("the in-memory byte budget of all webhooks together (BRIDGE_QUEUE_TOTAL_BYTES) refuses what each webhook's own would take", async () => {
  const held = [];
  const stalled = await startReceiver(() => new Promise((resolve) => held.push(resolve)));
  const env = await setup({
    hooks: [
      { events: ["a"], url: stalled.url, timeout_ms: 60000 },
      { events: ["b"], url: stalled.url, timeout_ms: 60000 },
    ],
    // Bodies of about 1,250 bytes: two fit in 3,000, a third does not; each webhook's own budget is far away.
    env: { BRIDGE_QUEUE_WEBHOOK_BYTES: "1000000", BRIDGE_QUEUE_TOTAL_BYTES: "3000" },
  });
  try {
    const socket = await connected("v4", env.url);
    const big = "x".repeat(1000);
    assert.deepEqual(await emitWithAck(socket, "a", big), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(socket, "b", big), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(socket, "b", big), [{ ok: false, error: "queue_full" }], "over the total, though webhook b holds one message");
    const size = stalled.received[0]?.raw.length ?? (await stalled.waitFor((r) => r.length >= 1))[0].raw.length;
    assert.ok(size * 2 <= 3000 && size * 3 > 3000, `body of ${size} bytes`);
    const node = (await env.bridge.admin("GET", "/admin/stats")).body.node.id;
    assert.equal(await metric(env.bridge, "bridge_webhook_dropped_total", { reason: "queue_bytes", node }), 1);
    socket.close();
  } finally {
    for (const release of held) release({});
    stalled.close();
    await env.close();
  }
});

test("a socket over the event rate limit gets rate_limited; refused events are neither forwarded, numbered nor counted as received", async () => {
  const env = await setup({
    hooks: [{ events: ["*", "$connect", "$disconnect"] }],
    env: { BRIDGE_EVENT_RATE_LIMIT: "1", BRIDGE_EVENT_RATE_BURST: "5" },
  });
  try {
    let accepted = 0;
    let refused = 0;
    for (const version of ["v4", "v2"]) {
      const socket = await connected(version, env.url);
      const sid = socket.id.split("#").pop();
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
      refused += 8 - oks;
      socket.close();
      // The $disconnect is the socket's last body, behind its events in the same queue.
      await env.receiver.waitFor((r) => r.some((d) => d.json?.type === "disconnect" && d.json.socket.id === sid));
      const mine = env.receiver.received.filter((d) => d.json?.socket?.id === sid);
      assert.deepEqual(mine.map((d) => d.json.type), ["connect", ...Array(oks).fill("event"), "disconnect"], `${version}: only the accepted events`);
      const okIndexes = acks.flatMap((a, i) => (a[0]?.ok === true ? [i] : []));
      assert.deepEqual(mine.filter((d) => d.json.type === "event").map((d) => d.json.args[0]), okIndexes);
      assert.deepEqual(mine.map((d) => d.json.seq), [...Array(oks + 2).keys()], `${version}: refused events take no number, so seq has no gap`);
    }
    const stats = (await env.bridge.admin("GET", "/admin/stats")).body;
    assert.equal(stats.events_in, accepted, "refused events are not counted as received");
    const node = stats.node.id;
    assert.equal(await metric(env.bridge, "bridge_events_received_total", { namespace: "/chat", node }), accepted);
    assert.equal(await metric(env.bridge, "bridge_webhook_dropped_total", { reason: "rate_limited", node }), refused);
  } finally {
    await env.close();
  }
});

test("metrics and stats count connections, events and webhook attempts", async () => {
  // Answered after 50 ms: the attempts' total duration is at least that.
  const env = await setup({ hooks: [{ events: ["*"] }], handler: () => ({ delayMs: 50 }) });
  try {
    const socket = await connected("v4", env.url);
    await emitWithAck(socket, "counted", 1);
    await env.receiver.waitFor((r) => r.length === 1);
    // The attempt is counted once its answer is read, just after the receiver saw it.
    const stats = await until(async () => {
      const body = (await env.bridge.admin("GET", "/admin/stats")).body;
      return body.webhooks_sent >= 1 && body.webhook_attempts >= 1 && body;
    }, 5000, "the attempt counted");
    assert.deepEqual(stats.connections, { "/chat": 1 });
    assert.equal(stats.events_in, 1);
    assert.equal(stats.webhooks_sent, 1);
    assert.equal(stats.webhook_attempts, 1);
    assert.ok(stats.webhook_attempt_ms_total >= 50, `webhook_attempt_ms_total ${stats.webhook_attempt_ms_total}: milliseconds`);
    assert.ok(stats.webhook_attempt_ms_total < 60000, `webhook_attempt_ms_total ${stats.webhook_attempt_ms_total}`);
    const node = stats.node.id;
    assert.equal(await metric(env.bridge, "bridge_connections", { namespace: "/chat", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_events_received_total", { namespace: "/chat", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_attempts_total", { outcome: "success", node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_duration_seconds_count", { node }), 1);
    assert.equal(await metric(env.bridge, "bridge_webhook_duration_seconds_bucket", { le: "+Inf", node }), 1);
    assert.ok((await metric(env.bridge, "bridge_webhook_duration_seconds_sum", { node })) >= 0.05, "seconds, at least the 50 ms");
    socket.close();
    await until(async () => {
      const { connections } = (await env.bridge.admin("GET", "/admin/stats")).body;
      return Object.keys(connections).length === 0;
    }, 5000, "the closed socket uncounted");
  } finally {
    await env.close();
  }
});

test("a payload over BRIDGE_MAX_PAYLOAD, over WebSocket or long-polling (v4 and v2), closes the connection instead of being forwarded", async () => {
  const env = await setup({ hooks: [{ events: ["*", "$disconnect"] }], env: { BRIDGE_MAX_PAYLOAD: "2000" } });
  try {
    for (const [version, transports] of [["v4", ["websocket"]], ["v4", ["polling"]], ["v2", ["polling"]]]) {
      const label = `${version} ${transports[0]}`;
      const socket = await connected(version, env.url, { transports });
      const sid = socket.id.split("#").pop();
      assert.deepEqual(await emitWithAck(socket, "small", "y".repeat(1000)), [{ ok: true }], `${label}: under the limit`);
      const gone = next(socket, "disconnect", 10000);
      socket.emit("big", "x".repeat(5000));
      const [reason] = await gone;
      assert.match(reason, /^transport (close|error)$/, `${label}: ${reason}`);
      // The $disconnect comes behind anything the socket sent, in the same queue.
      await env.receiver.waitFor((r) => r.some((d) => d.json?.type === "disconnect" && d.json.socket.id === sid), 10000);
      const mine = env.receiver.received.filter((d) => d.json?.socket?.id === sid);
      assert.deepEqual(mine.map((d) => d.json.event ?? d.json.type), ["small", "disconnect"], `${label}: the big event was not forwarded`);
      socket.close();
    }
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

    const enabled = await env.bridge.admin("PATCH", `/admin/webhooks/${env.webhooks[1].id}`, { enabled: true });
    assert.equal(enabled.status, 200);
    assert.deepEqual(await emitWithAck(socket, "second", 2), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 3);
    const second = env.receiver.received.slice(1);
    assert.deepEqual(second.map((d) => d.json.event), ["second", "second"]);
    const fromEnabled = second.find((d) => signedBy(env.webhooks[1].secret, d));
    assert.equal(fromEnabled.headers["x-which"], "disabled");
    // One queue per (socket, webhook) sends in order: had "first" gone to the disabled webhook,
    // it would have arrived before its "second".
    const toSecond = () => env.receiver.received.filter((d) => signedBy(env.webhooks[1].secret, d)).map((d) => d.json.event);
    assert.deepEqual(toSecond(), ["second"], "the disabled webhook got nothing");

    const disabled = await env.bridge.admin("PATCH", `/admin/webhooks/${env.webhooks[0].id}`, { enabled: false });
    assert.equal(disabled.status, 200);
    assert.deepEqual(await emitWithAck(socket, "third", 3), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 4);
    assert.ok(signedBy(env.webhooks[1].secret, env.receiver.received[3]), "the enabled webhook got the third");
    // Enabled again, the first webhook's next delivery is "fourth": the third never went to it.
    assert.equal((await env.bridge.admin("PATCH", `/admin/webhooks/${env.webhooks[0].id}`, { enabled: true })).status, 200);
    assert.deepEqual(await emitWithAck(socket, "fourth", 4), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.length === 6);
    const toFirst = env.receiver.received.filter((d) => signedBy(env.webhooks[0].secret, d)).map((d) => d.json.event);
    assert.deepEqual(toFirst, ["first", "second", "fourth"], "nothing while disabled");
    assert.deepEqual(toSecond(), ["second", "third", "fourth"]);
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

for (const batch of [null, { max_wait_ms: 0 }]) {
  test(`a webhook's URL changed by PATCH takes effect with the next delivery${batch ? " (batched)" : ""}`, async () => {
    const env = await setup({ hooks: [{ events: ["*"], batch }] });
    const other = await startReceiver();
    try {
      const [hook] = env.webhooks;
      const socket = await connected("v4", env.url);
      assert.deepEqual(await emitWithAck(socket, "before", 1), [{ ok: true }]);
      await env.receiver.waitFor((r) => r.length === 1);
      const patched = await env.bridge.admin("PATCH", `/admin/webhooks/${hook.id}`, { url: `${other.url}/moved` });
      assert.equal(patched.status, 200);
      assert.deepEqual(await emitWithAck(socket, "after", 2), [{ ok: true }]);
      const [moved] = await other.waitFor((r) => r.length === 1);
      assert.equal(moved.path, "/moved");
      const events = (d) => (d.json.type === "batch" ? d.json.deliveries.map((x) => x.body.event) : [d.json.event]);
      assert.deepEqual(events(moved), ["after"]);
      assert.deepEqual(env.receiver.received.flatMap(events), ["before"], "nothing more at the old URL");
      socket.close();
    } finally {
      other.close();
      await env.close();
    }
  });
}
