// Batched webhooks (`batch` on a webhook): many sockets' deliveries in one signed POST within the
// bounds, per-socket order within and across batches, one webhook-id per batch kept on retries,
// acks of batched events, the reply conflict and the bounds' validation, and durable batches
// recording each row's outcome (SQLite and Postgres).

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  setup,
  startBridge,
  startReceiver,
  connected,
  emitWithAck,
  freshPostgres,
  freshSqlite,
  verifySignature,
  until,
  sleep,
  metric,
  startHangingServer,
  hsToken,
} from "./harness.mjs";

/** The deliveries of every batch `receiver` got, in the order they arrived: [{id, body, batchId}]. */
function deliveries(receiver) {
  const out = [];
  for (const request of receiver.received) {
    assert.equal(request.json?.type, "batch", `a batch body, got ${request.raw.slice(0, 200)}`);
    for (const d of request.json.deliveries) out.push({ ...d, batchId: request.headers["webhook-id"] });
  }
  return out;
}

/** Whether the bodies of `socketId` in `list` have seq 0, 1, 2, … in arrival order. */
function inOrder(list, socketId) {
  const seqs = list.filter((d) => d.body.socket.id === socketId).map((d) => d.body.seq);
  return seqs.every((seq, i) => seq === i) ? seqs.length : -1;
}

for (const version of ["v4", "v2"]) {
  test(`${version}: the events of several sockets arrive batched, signed, in order per socket, within the bounds`, async () => {
    const batch = { max_events: 10, max_bytes: 4096, max_wait_ms: 50 };
    const ctx = await setup({ hooks: [{ events: ["*", "$connect", "$disconnect"], batch }] });
    const [hook] = ctx.webhooks;
    assert.deepEqual(hook.batch, { ...batch, max_in_flight: 1 });
    try {
      const sockets = [];
      for (let i = 0; i < 3; i++) sockets.push(await connected(version, ctx.url));
      // Every socket emits 40 events at once; each ack answers once its event is queued.
      const acks = await Promise.all(
        sockets.flatMap((socket, s) =>
          Array.from({ length: 40 }, (_, n) => emitWithAck(socket, "move", { s, n, pad: "x".repeat(n * 3) })),
        ),
      );
      for (const ack of acks) assert.deepEqual(ack, [{ ok: true }]);
      for (const socket of sockets) socket.close();
      // 3 x (connect + 40 events + disconnect)
      await ctx.receiver.waitFor(() => deliveries(ctx.receiver).length === 126, 15000);

      const all = deliveries(ctx.receiver);
      for (const request of ctx.receiver.received) {
        verifySignature(hook.secret, request);
        assert.match(request.headers["webhook-id"], /^msg_[0-9a-f]{32}$/);
        assert.ok(request.json.deliveries.length <= 10, `${request.json.deliveries.length} deliveries in one batch`);
        assert.ok(Buffer.byteLength(request.raw) <= 4096, `${Buffer.byteLength(request.raw)} bytes in one batch`);
      }
      const batchIds = ctx.receiver.received.map((r) => r.headers["webhook-id"]);
      assert.equal(new Set(batchIds).size, batchIds.length, "one id per batch");
      assert.ok(ctx.receiver.received.length < 126 / 2, `${ctx.receiver.received.length} requests for 126 deliveries`);
      assert.ok(
        ctx.receiver.received.some((r) => new Set(r.json.deliveries.map((d) => d.body.socket.id)).size > 1),
        "a batch holds several sockets' deliveries",
      );
      assert.equal(new Set(all.map((d) => d.id)).size, 126, "every delivery has its own id");
      for (const d of all) assert.match(d.id, /^msg_[0-9a-f]{32}$/);
      const moves = all.filter((d) => d.body.type === "event");
      assert.equal(moves.length, 120);
      // The bridge's socket ids (a v2 client's own id is namespace#engine id).
      const ids = [0, 1, 2].map((s) => moves.find((d) => d.body.args[0].s === s).body.socket.id);
      assert.equal(new Set(ids).size, 3);
      for (const id of ids) assert.equal(inOrder(all, id), 42, `socket ${id} in order`);
      for (const d of moves) {
        assert.equal(d.body.event, "move");
        assert.equal(d.body.namespace, "/chat");
        assert.equal(d.body.ack, true);
        const [arg] = d.body.args;
        assert.equal(d.body.socket.id, ids[arg.s]);
        assert.equal(arg.pad.length, arg.n * 3);
      }
      assert.equal(all.filter((d) => d.body.type === "connect").length, 3);
      assert.equal(all.filter((d) => d.body.type === "disconnect").length, 3);
      // The histogram of deliveries per POST counts every batch and every delivery in them.
      await until(async () => (await metric(ctx.bridge, "bridge_webhook_batch_deliveries_count")) === ctx.receiver.received.length, 5000, "every batch counted");
      assert.equal(await metric(ctx.bridge, "bridge_webhook_batch_deliveries_sum"), 126);
    } finally {
      await ctx.close();
    }
  });
}

test("a failed batch is retried whole under the same id; later events follow it in the next batch", async () => {
  let answered = 0;
  const ctx = await setup({
    hooks: [{ events: ["*"], batch: { max_events: 100, max_wait_ms: 100 } }],
    handler: () => (++answered === 1 ? { status: 503 } : {}),
  });
  try {
    const socket = await connected("v4", ctx.url);
    for (let n = 0; n < 5; n++) socket.emit("tick", n);
    await ctx.receiver.waitFor((r) => r.length >= 1, 5000);
    for (let n = 5; n < 10; n++) socket.emit("tick", n);
    await ctx.receiver.waitFor((r) => r.length >= 3, 10000);
    const [failed, retry, later] = ctx.receiver.received;
    assert.equal(retry.headers["webhook-id"], failed.headers["webhook-id"], "a retry keeps the batch's id");
    assert.equal(retry.raw, failed.raw, "a retry carries the same deliveries");
    assert.notEqual(later.headers["webhook-id"], failed.headers["webhook-id"]);
    const seqs = (request) => request.json.deliveries.map((d) => d.body.seq);
    assert.deepEqual(seqs(failed), [1, 2, 3, 4, 5]);
    assert.deepEqual(seqs(later), [6, 7, 8, 9, 10], "the next batch waited for the retried one");
    socket.close();
  } finally {
    await ctx.close();
  }
});

test("max_in_flight 4: several batches under way at once, never two holding one socket, each socket in order", async () => {
  // The backend takes 200 ms per request and records which sockets each request under way holds.
  let underWay = 0;
  let most = 0;
  const holding = new Map();
  const overlaps = [];
  const ctx = await setup({
    hooks: [{ events: ["*", "$connect"], batch: { max_events: 5, max_wait_ms: 20, max_in_flight: 4 } }],
    handler: async (entry) => {
      const ids = [...new Set(entry.json.deliveries.map((d) => d.body.socket.id))];
      for (const id of ids) {
        if (holding.get(id)) overlaps.push(id);
        holding.set(id, (holding.get(id) ?? 0) + 1);
      }
      most = Math.max(most, ++underWay);
      await sleep(200);
      underWay--;
      for (const id of ids) holding.set(id, holding.get(id) - 1);
      return {};
    },
  });
  try {
    const sockets = [];
    for (let i = 0; i < 12; i++) sockets.push(await connected("v4", ctx.url));
    const acks = await Promise.all(sockets.flatMap((socket, s) => Array.from({ length: 10 }, (_, n) => emitWithAck(socket, "move", { s, n }))));
    for (const ack of acks) assert.deepEqual(ack, [{ ok: true }]);
    // 12 x ($connect + 10 events)
    await ctx.receiver.waitFor(() => deliveries(ctx.receiver).length === 132, 30000);
    assert.ok(most >= 2 && most <= 4, `${most} batches under way at once at most (lanes: 4)`);
    assert.deepEqual(overlaps, [], "a socket's next batch waits for its last");
    const all = deliveries(ctx.receiver);
    for (const socket of sockets) assert.equal(inOrder(all, socket.id), 11, `socket ${socket.id} in order`);
    for (const socket of sockets) socket.close();
  } finally {
    await ctx.close();
  }
});

test("max_in_flight 4: each room's deliveries keep their order (room_occupied first, room_vacated last) across lanes", async () => {
  const bridge = await startBridge();
  // The backend takes 100 ms per request, so batches of several lanes are under way together.
  const receiver = await startReceiver(async () => {
    await sleep(100);
    return {};
  });
  const sockets = [];
  try {
    const secret = "batch-rooms-secret";
    const ns = await bridge.createNamespace({ name: "/rooms", auth: { mode: "jwt", algorithm: "HS256", secret } });
    await bridge.createWebhook(ns.id, {
      url: receiver.url,
      events: ["$room_occupied", "$room_vacated", "$join", "$leave"],
      batch: { max_events: 3, max_wait_ms: 10, max_in_flight: 4 },
    });
    // Eight sockets, each in two of four rooms (from its token), connected then gone.
    const rooms = ["r0", "r1", "r2", "r3"];
    for (let i = 0; i < 8; i++) {
      const token = await hsToken(secret, { sub: `u${i}`, rooms: [rooms[i % 4], rooms[(i + 1) % 4]] });
      sockets.push(await connected("v4", `${bridge.url}/rooms`, { auth: { token } }));
    }
    for (const socket of sockets) socket.close();
    // Per room: occupied, 4 joins, 4 leaves, vacated.
    await receiver.waitFor(() => deliveries(receiver).length === 40, 15000);
    for (const room of rooms) {
      const story = deliveries(receiver).map((d) => d.body).filter((b) => b.room === room);
      const types = story.map((b) => b.type);
      assert.deepEqual(types, ["room_occupied", "join", "join", "join", "join", "leave", "leave", "leave", "leave", "room_vacated"], `${room}: ${types}`);
      assert.deepEqual(story.map((b) => b.node_sockets), [1, 1, 2, 3, 4, 3, 2, 1, 0, 0], `${room}: node_sockets in order`);
    }
  } finally {
    for (const socket of sockets) socket.close();
    receiver.close();
    await bridge.stop();
  }
});

test("a batch waits up to max_wait_ms for more deliveries, and a lone one still goes", async () => {
  const ctx = await setup({ hooks: [{ events: ["*"], batch: { max_events: 10, max_wait_ms: 3000 } }] });
  try {
    const socket = await connected("v4", ctx.url);
    socket.emit("first", 1);
    // Well inside the wait: the second joins the first's batch.
    await sleep(300);
    socket.emit("second", 2);
    await ctx.receiver.waitFor((r) => r.length >= 1, 10000);
    assert.deepEqual(ctx.receiver.received[0].json.deliveries.map((d) => d.body.event), ["first", "second"]);
    socket.emit("alone", 3);
    await ctx.receiver.waitFor((r) => r.length >= 2, 10000);
    assert.deepEqual(ctx.receiver.received[1].json.deliveries.map((d) => d.body.event), ["alone"]);
    socket.close();
  } finally {
    await ctx.close();
  }
});

test("a body larger than max_bytes goes alone; the bounds hold around it", async () => {
  const ctx = await setup({ hooks: [{ events: ["*"], batch: { max_events: 50, max_bytes: 1024, max_wait_ms: 200 } }] });
  try {
    const socket = await connected("v4", ctx.url);
    socket.emit("small", 1);
    socket.emit("big", "y".repeat(3000));
    socket.emit("small", 2);
    await ctx.receiver.waitFor(() => deliveries(ctx.receiver).length === 3, 5000);
    const sizes = ctx.receiver.received.map((r) => r.json.deliveries.map((d) => d.body.event));
    assert.deepEqual(sizes, [["small"], ["big"], ["small"]]);
    assert.ok(Buffer.byteLength(ctx.receiver.received[1].raw) > 3000);
    socket.close();
  } finally {
    await ctx.close();
  }
});

test("a batched webhook's queue is bounded in bytes: past BRIDGE_QUEUE_WEBHOOK_BYTES events are refused with queue_full, counted", async () => {
  const hanging = await startHangingServer(); // never answers: the first batch stays in flight
  const ctx = await setup({
    hooks: [{ events: ["*"], url: hanging.url, timeout_ms: 60000, batch: { max_events: 1, max_wait_ms: 0 } }],
    // Bodies of about 1,300 bytes: three fit in 4,000, a fourth does not.
    env: { BRIDGE_QUEUE_WEBHOOK_BYTES: "4000" },
  });
  try {
    const socket = await connected("v4", ctx.url);
    const big = "x".repeat(1000);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push((await emitWithAck(socket, "big", big))[0]);
    assert.deepEqual(answers.slice(0, 3), [{ ok: true }, { ok: true }, { ok: true }]);
    assert.deepEqual(answers.slice(3), Array(3).fill({ ok: false, error: "queue_full" }), JSON.stringify(answers));
    const node = (await ctx.bridge.admin("GET", "/admin/stats")).body.node.id;
    assert.equal(await metric(ctx.bridge, "bridge_webhook_dropped_total", { reason: "queue_bytes", node }), 3);
    socket.close();
  } finally {
    hanging.close();
    await ctx.close();
  }
});

test("on SIGTERM, a batched webhook's queued and waiting deliveries and the $disconnect go out before exit, each answered", async () => {
  // The backend takes 1 s to answer each request and a batch waits up to 2 s for more: at the
  // stop one batch is in flight and the next is still gathering.
  const ctx = await setup({
    hooks: [{ events: ["*", "$disconnect"], batch: { max_events: 2, max_wait_ms: 2000 } }],
    handler: () => ({ delayMs: 1000 }),
  });
  try {
    const socket = await connected("v4", ctx.url);
    for (let i = 0; i < 5; i++) assert.deepEqual(await emitWithAck(socket, "late", i), [{ ok: true }]);
    await ctx.bridge.stop();
    const exited = Date.now();
    // The node waited for the last batch's answer, not only until it was sent.
    const last = ctx.receiver.received.at(-1);
    assert.ok(exited >= last.at + 1000, `exited ${exited - last.at} ms after the last batch arrived`);
    const all = deliveries(ctx.receiver);
    assert.deepEqual(all.filter((d) => d.body.type === "event").map((d) => d.body.args[0]), [0, 1, 2, 3, 4], "every accepted event was delivered");
    const gone = all.filter((d) => d.body.type === "disconnect");
    assert.equal(gone.length, 1);
    assert.equal(gone[0].body.reason, "server shutting down");
    // No $connect subscription: seq 1–5 for the events, 6 for the disconnect.
    assert.deepEqual(all.map((d) => d.body.seq), [1, 2, 3, 4, 5, 6], "in order, the disconnect last");
  } finally {
    await ctx.close();
  }
});

test("batch settings: defaults, bounds named in the error, and no batched reply webhook", async () => {
  const bridge = await startBridge();
  const receiver = await startReceiver();
  try {
    const ns = await bridge.createNamespace({ name: "/b" });
    const create = (body) => bridge.admin("POST", `/admin/namespaces/${ns.id}/webhooks`, { url: receiver.url, events: ["*"], ...body });
    const defaults = await create({ batch: {} });
    assert.equal(defaults.status, 201);
    assert.deepEqual(defaults.body.batch, { max_events: 100, max_bytes: 262144, max_wait_ms: 20, max_in_flight: 1 });
    const plain = await create({});
    assert.equal(plain.body.batch, null);

    for (const [batch, field] of [
      [{ max_events: 0 }, "batch.max_events"],
      [{ max_events: 1001 }, "batch.max_events"],
      [{ max_bytes: 100 }, "batch.max_bytes"],
      [{ max_bytes: 5000000 }, "batch.max_bytes"],
      [{ max_wait_ms: 10001 }, "batch.max_wait_ms"],
      [{ max_in_flight: 0 }, "batch.max_in_flight"],
      [{ max_in_flight: 17 }, "batch.max_in_flight"],
    ]) {
      const res = await create({ batch });
      assert.equal(res.status, 400, JSON.stringify(batch));
      assert.equal(res.body.error.code, "invalid_field");
      assert.match(JSON.stringify(res.body.error), new RegExp(field.replace(".", "\\.")), JSON.stringify(res.body));
    }
    for (const batch of [{ max_events: "ten" }, { every: 5 }, 7]) {
      assert.equal((await create({ batch })).status, 400, JSON.stringify(batch));
    }

    const conflict = await create({ reply: true, batch: {} });
    assert.equal(conflict.status, 400);
    assert.match(JSON.stringify(conflict.body), /reply webhook cannot be batched/);
    const patchReply = await bridge.admin("PATCH", `/admin/webhooks/${defaults.body.id}`, { reply: true });
    assert.equal(patchReply.status, 400);
    assert.match(JSON.stringify(patchReply.body), /reply webhook cannot be batched/);
    const patched = await bridge.admin("PATCH", `/admin/webhooks/${defaults.body.id}`, { reply: true, batch: null });
    assert.equal(patched.status, 200);
    assert.equal(patched.body.batch, null);
    assert.equal(patched.body.reply, true);
    const batchOnReply = await bridge.admin("PATCH", `/admin/webhooks/${defaults.body.id}`, { batch: { max_events: 5 } });
    assert.equal(batchOnReply.status, 400);
    const changed = await bridge.admin("PATCH", `/admin/webhooks/${plain.body.id}`, { batch: { max_events: 5 } });
    assert.deepEqual(changed.body.batch, { max_events: 5, max_bytes: 262144, max_wait_ms: 20, max_in_flight: 1 });
    const listed = await bridge.admin("GET", `/admin/webhooks/${plain.body.id}`);
    assert.deepEqual(listed.body.batch, changed.body.batch);
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

for (const [engine, fresh] of [
  ["SQLite", freshSqlite],
  ["Postgres", freshPostgres],
]) {
  test(`${engine}: a durable batch records each row's outcome and is retried as one batch`, async () => {
    const state = { up: false };
    const receiver = await startReceiver(() => (state.up ? {} : { status: 503 }));
    const db = fresh();
    const bridge = await startBridge({
      DATABASE_URL: db.url,
      BRIDGE_OUTBOX_SCHEDULE: "1s,1s,1s,1s,1s,1s,1s,1s,1s",
    });
    try {
      const ns = await bridge.createNamespace({ name: "/jobs" });
      const hook = await bridge.createWebhook(ns.id, {
        url: receiver.url,
        events: ["*"],
        durable: true,
        batch: { max_events: 50, max_wait_ms: 200 },
      });
      const socket = await connected("v4", `${bridge.url}/jobs`);
      const acks = await Promise.all(Array.from({ length: 6 }, (_, n) => emitWithAck(socket, "job", n)));
      for (const ack of acks) assert.deepEqual(ack, [{ ok: true }], "acked once stored");
      await receiver.waitFor((r) => r.length >= 1, 5000);
      const [first] = receiver.received;
      assert.equal(first.json.deliveries.length, 6, "the six rows in one batch");
      const rowIds = first.json.deliveries.map((d) => d.id);
      const rows = async () => Promise.all(rowIds.map(async (id) => (await bridge.admin("GET", `/admin/deliveries/${id}`)).body));
      await until(async () => (await rows()).every((row) => row.status === "pending" && row.attempts === 1), 5000, "each row pending after one attempt");
      for (const row of await rows()) {
        assert.equal(row.history.length, 1);
        assert.equal(row.history[0].status, 503);
        assert.equal(row.webhook_id, hook.id);
      }
      state.up = true;
      await until(async () => (await rows()).every((row) => row.status === "delivered"), 10000, "each row delivered");
      const answered = receiver.received.filter((r) => r !== first);
      const delivered = answered.at(-1);
      assert.equal(delivered.headers["webhook-id"], first.headers["webhook-id"], "the retry keeps the batch's id");
      assert.deepEqual(delivered.json.deliveries.map((d) => d.id), rowIds, "retried as one batch, in order");
      verifySignature(hook.secret, delivered);
      for (const row of await rows()) {
        assert.equal(row.attempts, answered.length + 1);
        assert.deepEqual(row.history.map((h) => h.status), [...Array(answered.length).fill(503), 200]);
      }
      socket.close();
    } finally {
      receiver.close();
      await bridge.stop();
    }
  });
}
