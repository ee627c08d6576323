// Durable webhooks (SPEC 5 `durable`): the outbox in the store, crash safety, leases across
// processes, the retry schedule and dead letters, manual redelivery, retention, the byte budget,
// and refusal while the store is down. Runs on SQLite and on a fresh Postgres database.

import { test } from "node:test";
import assert from "node:assert/strict";
import {
  startBridge,
  startReceiver,
  connected,
  emitWithAck,
  freshPostgres,
  freshSqlite,
  psql,
  sleep,
  until,
  metric,
} from "./harness.mjs";

const TOKEN = "durable-tests-admin-token";

/** A receiver whose answer is set by `state.mode`: "down" (503), "hang" (never answers in time) or "up". */
async function switchableReceiver(state, { delayMs = 0 } = {}) {
  const inFlight = new Map();
  const receiver = await startReceiver(async (req) => {
    const id = req.headers["webhook-id"];
    const now = (inFlight.get(id) ?? 0) + 1;
    inFlight.set(id, now);
    receiver.maxConcurrentPerId = Math.max(receiver.maxConcurrentPerId, now);
    // The answer is decided on arrival, so that `mode` says what this request was answered.
    const mode = state.mode;
    req.mode = mode;
    try {
      if (mode === "hang") await sleep(60000);
      if (delayMs) await sleep(delayMs);
      if (mode === "down") return { status: 503 };
      return { status: 200, body: state.reply ?? {} };
    } finally {
      inFlight.set(id, inFlight.get(id) - 1);
    }
  });
  receiver.maxConcurrentPerId = 0;
  /** Webhook ids answered 2xx (counted per id). */
  receiver.deliveredIds = () => {
    const counts = new Map();
    for (const r of receiver.received.filter((r) => r.mode === "up")) {
      const id = r.headers["webhook-id"];
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  };
  return receiver;
}

/** A bridge on `db` with one namespace and one durable webhook to `receiver`. */
async function durableBridge(db, receiver, env = {}, hook = {}) {
  const bridge = await startBridge({ DATABASE_URL: db.url, BRIDGE_ADMIN_TOKEN: TOKEN, ...env });
  const ns = await bridge.createNamespace({ name: "/jobs" });
  const webhook = await bridge.createWebhook(ns.id, { url: receiver.url, events: ["*"], durable: true, ...hook });
  return { bridge, ns, webhook };
}

/** Another process on the same database (the namespace and webhook are already stored). */
const sameDatabase = (db, env = {}) => startBridge({ DATABASE_URL: db.url, BRIDGE_ADMIN_TOKEN: TOKEN, ...env });

const engines = [
  ["SQLite", freshSqlite],
  ["Postgres", freshPostgres],
];

for (const [engine, fresh] of engines) {
  test(`${engine}: events accepted while the backend is down survive a SIGKILL and arrive with their original ids`, async () => {
    const state = { mode: "down" };
    const receiver = await switchableReceiver(state);
    const db = fresh();
    // A short lease: the killed process may hold the last row it was attempting.
    const env = { BRIDGE_OUTBOX_SCHEDULE: "300ms,1s,1s,1s,1s,1s,1s,1s,1s,1s", BRIDGE_OUTBOX_LEASE_MS: "2000" };
    const { bridge } = await durableBridge(db, receiver, env);
    let second;
    try {
      const socket = await connected("v4", `${bridge.url}/jobs`);
      for (let i = 1; i <= 5; i++) {
        assert.deepEqual(await emitWithAck(socket, "job", { i }), [{ ok: true }], "accepted once written");
      }
      await receiver.waitFor((r) => new Set(r.map((d) => d.headers["webhook-id"])).size === 5);
      const original = new Set(receiver.received.map((d) => d.headers["webhook-id"]));
      socket.close();
      await bridge.kill();

      state.mode = "up";
      second = await sameDatabase(db, env);
      await until(() => receiver.deliveredIds().size === 5, 15000, "five deliveries after the restart");
      assert.deepEqual(new Set(receiver.deliveredIds().keys()), original, "the same webhook-ids");
      const bodies = receiver.received.filter((r) => r.mode === "up").map((r) => r.json);
      assert.deepEqual(bodies.map((b) => b.seq).sort(), [1, 2, 3, 4, 5], "per-socket sequence numbers");
      assert.deepEqual(bodies.map((b) => b.args[0].i).sort(), [1, 2, 3, 4, 5]);
      const list = await until(async () => {
        const res = await second.admin("GET", "/admin/deliveries?status=delivered&namespace=/jobs");
        return res.body.deliveries.length === 5 && res;
      }, 5000, "five delivered rows");
      // At least the successful attempt is recorded; a failed one whose outcome the kill cut off is not.
      assert.ok(list.body.deliveries.every((d) => d.attempts >= 1 && d.status === "delivered" && d.seq >= 1));
    } finally {
      receiver.close();
      await bridge.kill();
      await second?.stop();
    }
  });
}

test("Postgres: a lease held by a killed process is taken over by another process", async () => {
  const state = { mode: "hang" };
  const receiver = await switchableReceiver(state);
  const probes = await startReceiver(() => ({ status: 503 }));
  const db = freshPostgres();
  const env = { BRIDGE_OUTBOX_LEASE_MS: "1500", BRIDGE_OUTBOX_SCHEDULE: Array(40).fill("200ms").join(",") };
  const { bridge: a, ns } = await durableBridge(db, receiver, env, { timeout_ms: 60000, events: ["job"] });
  await a.createWebhook(ns.id, { url: probes.url, events: ["probe"], durable: true });
  const b = await sameDatabase(db, env);
  try {
    const socket = await connected("v4", `${a.url}/jobs`);
    for (let i = 1; i <= 3; i++) assert.deepEqual(await emitWithAck(socket, "job", { i }), [{ ok: true }]);
    // A holds the first in flight (the backend hangs) and the others queued behind it; the leases
    // it took when they were written end 1.5 s from now at the latest.
    await receiver.waitFor((r) => r.length === 1);
    const leasesTakenBy = Date.now() + 1500;
    // A probe failing every time is retried every ~200 ms by whichever process claims it. Claims
    // take the earliest due rows first and A's rows are due since they were written: a claim
    // made after their first leases ended would have taken them, had A not renewed the leases.
    assert.deepEqual(await emitWithAck(socket, "probe", 0), [{ ok: true }]);
    await probes.waitFor((r) => r.some((d) => d.at > leasesTakenBy + 500), 15000);
    assert.equal(receiver.received.length, 1, "B leaves A's leased rows alone while A renews them");
    state.mode = "up";
    await a.kill();
    await until(() => receiver.deliveredIds().size === 3, 10000, "B delivers all three");
    for (const count of receiver.deliveredIds().values()) assert.equal(count, 1);
  } finally {
    receiver.close();
    probes.close();
    await a.kill();
    await b.stop();
  }
});

test("Postgres: two processes on one database never send the same delivery at the same time", async () => {
  const state = { mode: "down" };
  const receiver = await switchableReceiver(state, { delayMs: 30 });
  const db = freshPostgres();
  const env = { BRIDGE_OUTBOX_SCHEDULE: "100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms,100ms" };
  const { bridge: a } = await durableBridge(db, receiver, env);
  const b = await sameDatabase(db, env);
  try {
    const socketA = await connected("v4", `${a.url}/jobs`);
    const socketB = await connected("v4", `${b.url}/jobs`);
    const acks = [];
    for (let i = 0; i < 30; i++) {
      acks.push(emitWithAck(socketA, "job", { i }), emitWithAck(socketB, "job", { i }));
    }
    for (const ack of await Promise.all(acks)) assert.deepEqual(ack, [{ ok: true }]);
    // The workers claim the retries while the backend keeps failing (about two attempts each,
    // well within the 20 retries of the schedule).
    await until(() => receiver.received.length >= 120, 15000, "retries under way");
    state.mode = "up";
    await until(() => receiver.deliveredIds().size === 60, 15000, "sixty deliveries");
    // Once a row is recorded delivered no process claims it again: then nothing more can come.
    await until(async () => (await a.admin("GET", "/admin/deliveries?status=delivered&limit=1000")).body.deliveries.length === 60, 10000, "sixty rows delivered");
    assert.equal(receiver.maxConcurrentPerId, 1, "never two attempts of one delivery at once");
    for (const [id, count] of receiver.deliveredIds()) assert.equal(count, 1, `${id} answered 2xx once`);
    const perId = new Map();
    for (const r of receiver.received) {
      const id = r.headers["webhook-id"];
      perId.set(id, [...(perId.get(id) ?? []), r.mode]);
    }
    for (const [id, modes] of perId) assert.equal(modes.at(-1), "up", `${id}: nothing after its 2xx`);
    socketA.close();
    socketB.close();
  } finally {
    receiver.close();
    await a.stop();
    await b.stop();
  }
});

test("the schedule ends in dead; single and bulk manual retries resend with the same webhook-id", async () => {
  const state = { mode: "down" };
  const receiver = await switchableReceiver(state);
  const db = freshSqlite();
  const { bridge, webhook } = await durableBridge(db, receiver, { BRIDGE_OUTBOX_SCHEDULE: "150ms,300ms" });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "job", "first"), [{ ok: true }]);
    await receiver.waitFor((r) => r.length === 3, 5000);
    const [t1, t2, t3] = receiver.received.map((r) => r.at);
    assert.ok(t2 - t1 >= 110, `first retry after ~150 ms, got ${t2 - t1}`);
    assert.ok(t3 - t2 >= 230, `second retry after ~300 ms, got ${t3 - t2}`);
    const id = receiver.received[0].headers["webhook-id"];
    assert.ok(receiver.received.every((r) => r.headers["webhook-id"] === id));
    const dead = await until(async () => {
      const res = await bridge.admin("GET", `/admin/deliveries/${id}`);
      return res.body.status === "dead" && res.body;
    }, 5000, "dead");
    assert.equal(dead.attempts, 3);
    assert.deepEqual(dead.history.map((h) => h.status), [503, 503, 503]);
    assert.ok(dead.history.every((h) => h.error === "HTTP 503" && h.duration_ms >= 0));
    // A dead row is never claimed again. A probe on the same webhook, answered 503 too, goes
    // through the same schedule after it: once the probe is dead (three attempts, 450 ms at least
    // after it was written), a retry of the dead row would have been made (claims take the
    // earliest due rows first). The receiver saw the job's three attempts, then the probe's.
    assert.deepEqual(await emitWithAck(socket, "probe", 1), [{ ok: true }]);
    const probeId = (await receiver.waitFor((r) => r.some((d) => d.json.event === "probe"))).find((d) => d.json.event === "probe").headers["webhook-id"];
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${probeId}`)).body.status === "dead", 10000, "the probe dead");
    assert.deepEqual(
      receiver.received.map((d) => [d.json.event, d.headers["webhook-id"]]),
      [...Array(3).fill(["job", id]), ...Array(3).fill(["probe", probeId])],
      "nothing of the job after it was dead",
    );

    state.mode = "up";
    const retried = await bridge.admin("POST", `/admin/deliveries/${id}/retry`);
    assert.equal(retried.status, 200);
    await until(() => receiver.deliveredIds().get(id) === 1, 5000, "the manual retry");
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${id}`)).body.status === "delivered", 5000, "delivered");

    state.mode = "down";
    for (const n of ["a", "b"]) assert.deepEqual(await emitWithAck(socket, "job", n), [{ ok: true }]);
    const deadList = await until(async () => {
      const res = await bridge.admin("GET", `/admin/deliveries?webhook=${webhook.id}&status=dead`);
      return res.body.deliveries.length === 3 && res.body.deliveries;
    }, 5000, "three dead (the probe, a and b)");
    // "a" and "b" went through the whole schedule after the manual retry was delivered: a second
    // send of the delivered row would have come meanwhile. It was sent once more, and answered 2xx.
    assert.deepEqual(
      receiver.received.filter((d) => d.headers["webhook-id"] === id).map((d) => d.mode),
      ["down", "down", "down", "up"],
      "the manual retry sent the job once",
    );
    state.mode = "up";
    const bulk = await bridge.admin("POST", `/admin/webhooks/${webhook.id}/retry-dead`);
    assert.deepEqual(bulk, { status: 200, body: { retried: 3 } });
    await until(() => deadList.every((d) => receiver.deliveredIds().get(d.id) === 1), 5000, "all three resent");
    const stats = await bridge.admin("GET", "/admin/stats");
    await until(async () => (await bridge.admin("GET", "/admin/stats")).body.outbox.dead === 0, 3000, "no dead left");
    assert.equal(typeof stats.body.outbox.pending, "number");
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("a durable webhook answering 4xx: final at once, recorded failed after one attempt, never retried", async () => {
  const receiver = await startReceiver((req) => ({ status: req.json?.event === "bad" ? 422 : 503 }));
  const db = freshSqlite();
  const { bridge, webhook } = await durableBridge(db, receiver, { BRIDGE_OUTBOX_SCHEDULE: "200ms,200ms,200ms" });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "bad", 1), [{ ok: true }], "accepted once written");
    await receiver.waitFor((r) => r.length === 1);
    const id = receiver.received[0].headers["webhook-id"];
    const failed = await until(async () => {
      const res = await bridge.admin("GET", `/admin/deliveries/${id}`);
      return res.body.status !== "pending" && res.body;
    }, 5000, "an outcome recorded");
    assert.equal(failed.status, "failed", "a 4xx is failed, not dead");
    assert.equal(failed.attempts, 1);
    assert.deepEqual(failed.history.map((h) => [h.status, h.error]), [[422, "HTTP 422"]]);
    // A probe answered 503 goes through the same schedule after it: once it is dead (four
    // attempts, 480 ms at least after the 4xx), any retry of the 4xx would have been made.
    assert.deepEqual(await emitWithAck(socket, "probe", 2), [{ ok: true }]);
    const probeId = (await receiver.waitFor((r) => r.some((d) => d.json.event === "probe"))).find((d) => d.json.event === "probe").headers["webhook-id"];
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${probeId}`)).body.status === "dead", 10000, "the probe dead");
    assert.deepEqual(receiver.received.map((d) => d.json.event), ["bad", "probe", "probe", "probe", "probe"], "one attempt of the 4xx, nothing after");
    assert.equal((await bridge.admin("GET", `/admin/deliveries/${id}`)).body.status, "failed");
    const list = (await bridge.admin("GET", `/admin/deliveries?webhook=${webhook.id}&status=failed`)).body.deliveries;
    assert.deepEqual(list.map((d) => d.id), [id]);
    assert.equal((await bridge.admin("GET", "/admin/stats")).body.webhooks_failed, 2, "the 4xx and the dead probe");
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("a durable delivery answered 503 with Retry-After waits at least that long for its next attempt", async () => {
  let answered = 0;
  const receiver = await startReceiver(() => (answered++ === 0 ? { status: 503, headers: { "retry-after": "2" } } : {}));
  const db = freshSqlite();
  // The schedule alone would retry after about 100 ms.
  const { bridge } = await durableBridge(db, receiver, { BRIDGE_OUTBOX_SCHEDULE: "100ms,100ms" });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "job", 1), [{ ok: true }]);
    const [first, second] = await receiver.waitFor((r) => r.length === 2, 10000);
    assert.equal(first.headers["webhook-id"], second.headers["webhook-id"]);
    // Due 2 s after the first attempt began (it reached the receiver a little after it began; the
    // margin allows for that on a loaded machine, and the schedule alone would take ~100 ms).
    assert.ok(second.at - first.at >= 1500, `retried after ${second.at - first.at} ms`);
    const record = await until(async () => {
      const res = await bridge.admin("GET", `/admin/deliveries/${first.headers["webhook-id"]}`);
      return res.body.status === "delivered" && res.body;
    }, 5000, "delivered");
    assert.deepEqual(record.history.map((h) => h.status), [503, 200]);
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("a reply webhook that is durable answers the ack from its first attempt and retries durably", async () => {
  const state = { mode: "down", reply: { ack: "late" } };
  const receiver = await switchableReceiver(state);
  const db = freshSqlite();
  const { bridge } = await durableBridge(db, receiver, { BRIDGE_OUTBOX_SCHEDULE: "500ms" }, { reply: true });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "ask", 1), [{ error: "webhook_failed", status: 503 }]);
    state.mode = "up";
    await until(() => receiver.deliveredIds().size === 1, 5000, "the retry");
    const ids = new Set(receiver.received.map((r) => r.headers["webhook-id"]));
    assert.equal(ids.size, 1, "the retry is the same delivery");
    // A healthy first attempt answers with the reply.
    assert.deepEqual(await emitWithAck(socket, "ask", 2), ["late"]);
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("durable events of one socket arrive in order, one at a time, numbered", async () => {
  const state = { mode: "up" };
  const receiver = await switchableReceiver(state, { delayMs: 5 });
  const db = freshSqlite();
  const { bridge } = await durableBridge(db, receiver, {}, { events: ["*", "$connect", "$disconnect"] });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    for (let i = 1; i <= 20; i++) socket.emit("step", i);
    await receiver.waitFor((r) => r.filter((d) => d.json.type === "event").length === 20, 10000);
    const events = receiver.received.filter((d) => d.json.type === "event");
    assert.deepEqual(events.map((d) => d.json.args[0]), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(events.map((d) => d.json.seq), Array.from({ length: 20 }, (_, i) => i + 1));
    assert.equal(receiver.received.find((d) => d.json.type === "connect").json.seq, 0);
    assert.equal(receiver.maxConcurrentPerId, 1);
    socket.close();
    const bye = await receiver.waitFor((r) => r.some((d) => d.json.type === "disconnect"));
    assert.equal(bye.find((d) => d.json.type === "disconnect").json.seq, 21);
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("the byte budget refuses new durable events with outbox_full, counted in stats and metrics", async () => {
  const state = { mode: "down" };
  const receiver = await switchableReceiver(state);
  const db = freshSqlite();
  const env = { BRIDGE_OUTBOX_WEBHOOK_BYTES: "4000", BRIDGE_OUTBOX_SCHEDULE: "1h" };
  const { bridge } = await durableBridge(db, receiver, env);
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    const big = "x".repeat(1000);
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push((await emitWithAck(socket, "big", big))[0]);
    assert.deepEqual(answers.slice(0, 3), [{ ok: true }, { ok: true }, { ok: true }]);
    assert.deepEqual(answers.at(-1), { ok: false, error: "outbox_full" });
    const stats = await until(async () => {
      const res = await bridge.admin("GET", "/admin/stats");
      return res.body.outbox.pending === 3 && res.body;
    }, 5000, "three pending");
    assert.ok(stats.outbox.refused_full >= 3);
    assert.ok(stats.outbox.pending_bytes > 3000);
    assert.ok((await metric(bridge, "bridge_outbox_refused_total", { reason: "outbox_full" })) >= 3);
    assert.equal(await metric(bridge, "bridge_outbox_pending"), 3);
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("the byte budget of all durable webhooks together (BRIDGE_OUTBOX_TOTAL_BYTES) refuses what each webhook's own would take", async () => {
  const receiver = await startReceiver(() => ({ status: 503 }));
  const db = freshSqlite();
  // Bodies of about 1,250 bytes: two fit in 3,000 in all, a third does not; each webhook's own budget is far away.
  const env = { BRIDGE_OUTBOX_WEBHOOK_BYTES: "1000000", BRIDGE_OUTBOX_TOTAL_BYTES: "3000", BRIDGE_OUTBOX_SCHEDULE: "1h" };
  const { bridge, ns } = await durableBridge(db, receiver, env, { events: ["a"] });
  await bridge.createWebhook(ns.id, { url: receiver.url, events: ["b"], durable: true });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    const big = "x".repeat(1000);
    assert.deepEqual(await emitWithAck(socket, "a", big), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(socket, "b", big), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(socket, "b", big), [{ ok: false, error: "outbox_full" }], "over the total, though webhook b holds one row");
    const size = (await receiver.waitFor((r) => r.length >= 1))[0].raw.length;
    assert.ok(size * 2 <= 3000 && size * 3 > 3000, `body of ${size} bytes`);
    const stats = await until(async () => {
      const res = await bridge.admin("GET", "/admin/stats");
      return res.body.outbox.pending === 2 && res.body;
    }, 5000, "two pending");
    assert.equal(stats.outbox.refused_full, 1);
    assert.equal(await metric(bridge, "bridge_outbox_refused_total", { reason: "outbox_full", node: stats.node.id }), 1);
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("delivered rows are pruned after their retention", async () => {
  const receiver = await switchableReceiver({ mode: "up" });
  const db = freshSqlite();
  const { bridge } = await durableBridge(db, receiver, { BRIDGE_DELIVERED_RETENTION: "1s" });
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "job", 1), [{ ok: true }]);
    await receiver.waitFor((r) => r.length === 1);
    const id = receiver.received[0].headers["webhook-id"];
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${id}`)).body.status === "delivered", 3000, "delivered");
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${id}`)).status === 404, 6000, "pruned");
    // Counted by rows, per status (the pruner runs every second, deleting nothing most times).
    const node = (await bridge.admin("GET", "/admin/stats")).body.node.id;
    // (Counted just after the delete that made the row a 404.)
    await until(async () => (await metric(bridge, "bridge_deliveries_pruned_total", { status: "delivered", node })) === 1, 5000, "one delivered row counted as pruned");
    assert.equal(await metric(bridge, "bridge_deliveries_pruned_total", { status: "dead", node }), 0);
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
});

test("Postgres down: durable events are refused with store_unavailable, /readyz says so, and it recovers", async () => {
  const receiver = await switchableReceiver({ mode: "up" });
  const db = freshPostgres();
  const { bridge } = await durableBridge(db, receiver);
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    assert.deepEqual(await emitWithAck(socket, "job", "before"), [{ ok: true }]);
    psql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS false`);
    psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '${db.name}'`);
    assert.deepEqual(await emitWithAck(socket, "job", "during"), [{ ok: false, error: "store_unavailable" }]);
    const ready = await fetch(`${bridge.url}/readyz`);
    assert.equal(ready.status, 503);
    psql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    await until(async () => (await fetch(`${bridge.url}/readyz`)).status === 200, 10000, "ready again");
    assert.deepEqual(await emitWithAck(socket, "job", "after"), [{ ok: true }]);
    await until(() => receiver.received.some((r) => r.json.args[0] === "after"), 5000, "delivered after");
    assert.deepEqual(receiver.received.map((r) => r.json.args[0]), ["before", "after"], "the refused one was never sent");
    const stats = await bridge.admin("GET", "/admin/stats");
    assert.ok(stats.body.outbox.refused_unavailable >= 1);
    socket.close();
  } finally {
    psql(`ALTER DATABASE ${db.name} ALLOW_CONNECTIONS true`);
    receiver.close();
    await bridge.stop();
  }
});

test("SIGTERM releases the rows it holds: the next start sends them without waiting for a lease", async () => {
  const state = { mode: "hang" };
  const receiver = await switchableReceiver(state);
  const db = freshSqlite();
  const log = { RUST_LOG: "warn,bridge::app=info,bridge::webhook::outbox=info" };
  const { bridge } = await durableBridge(db, receiver, log, { timeout_ms: 60000 });
  let second;
  try {
    const socket = await connected("v4", `${bridge.url}/jobs`);
    for (let i = 1; i <= 3; i++) assert.deepEqual(await emitWithAck(socket, "job", i), [{ ok: true }]);
    await receiver.waitFor((r) => r.length === 1);
    socket.close();
    const started = Date.now();
    await bridge.stop();
    assert.ok(Date.now() - started < 30000, "shutdown is bounded");
    assert.match(bridge.log(), /released durable deliveries/);
    state.mode = "up";
    const restarted = Date.now();
    second = await sameDatabase(db);
    // The default lease is 30 s: arriving well before that shows the rows were released.
    await until(() => receiver.deliveredIds().size === 3, 8000, "all three after the restart");
    assert.ok(Date.now() - restarted < 10000);
  } finally {
    receiver.close();
    await bridge.kill();
    await second?.stop();
  }
});
