// The deployment as operators run it (deployment.mjs: deploy/nginx.conf in front of two nodes on
// Postgres and Redis, as local processes): a stopping node hands its clients over, and a rolling
// restart under load loses nothing and strands no one. Clients are the official v2 and v4 ones
// with their default reconnection, each from its own loopback address.

import { test } from "node:test";
import assert from "node:assert/strict";
import { until, sleep, setup, connected, signedBy } from "./harness.mjs";
import {
  deployment,
  ready,
  KINDS,
  kindName,
  reconnectingClient,
  emitLoad,
  roomEmits,
  delivered,
  allDelivered,
  bodies,
} from "./deployment.mjs";

const DRAIN_MS = 4000;

/** Webhooks: durable `note`s, lifecycle events, and a `$connect` gate that joins every socket to `lobby`. */
const hooks = (url) => [
  { url, events: ["note"], durable: true },
  { url, events: ["$disconnect", "$leave", "$room_vacated"] },
  { url, events: ["$connect"], reply: true },
];
const handler = (d) => (d.json?.type === "connect" ? { body: { join: ["lobby"] } } : {});

/** Clients of every kind until each node holds at least one of each kind (nginx hashes addresses). */
async function clientsOnBothNodes(d) {
  const clients = [];
  const onNode = (where, node, kind) =>
    clients.some((c) => c.kind === kind && c.socket.connected && where.get(c.id()) === node);
  for (let i = 0; i < 80; i++) {
    const where = await d.where();
    const missing = KINDS.find((k) => !onNode(where, "bridge-1", k) || !onNode(where, "bridge-2", k));
    if (!missing) return clients;
    const client = reconnectingClient(d.nginx.url, missing, clients.length);
    clients.push(client);
    await until(() => client.socket.connected, 5000, `${kindName(missing)} client ${i} connected`);
  }
  throw new Error("80 clients and still a kind missing on a node");
}

/** Waits until every client is connected and listed on a node; returns socket id → node. */
async function allConnected(d, clients, ms) {
  let where = new Map();
  await until(
    async () => {
      if (!clients.every((c) => c.socket.connected)) return false;
      where = await d.where();
      return clients.every((c) => where.has(c.id()));
    },
    ms,
    "every client connected again",
  );
  return where;
}

test("SIGTERM hands every client over: v2 and v4, WebSocket and polling, reconnect to the other node by themselves", async () => {
  const d = await deployment({ env: { BRIDGE_DRAIN: `${DRAIN_MS}ms` }, hooks, handler });
  const clients = [];
  try {
    clients.push(...(await clientsOnBothNodes(d)));
    const before = await allConnected(d, clients, 5000);
    const moving = clients.filter((c) => before.get(c.id()) === "bridge-1");
    const oldIds = new Set(moving.map((c) => c.id()));
    const wsIds = new Set(moving.filter((c) => c.kind.transports?.[0] !== "polling").map((c) => c.id()));
    const node1 = d.node(0);

    const started = Date.now();
    const stopping = node1.stop();
    // At once: not ready, new sessions refused, the emit API still answers for its sockets.
    await until(async () => (await ready(node1)).status === 503, 1000, "readyz 503 at once");
    const readiness = await ready(node1);
    assert.equal(readiness.body.status, "draining", JSON.stringify(readiness.body));
    const handshake = await fetch(`${node1.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(handshake.status, 503, "a new Engine.IO session is refused during the drain");
    const direct = await fetch(`${node1.url}/v1/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${d.key}`, "content-type": "application/json" },
      body: JSON.stringify({ namespace: "/chat", event: "during", data: 1 }),
    });
    assert.equal(direct.status, 200, "the emit API answers during the drain");

    await stopping;
    assert.equal(node1.exitCode(), 0, "a graceful stop exits 0");
    const stopMs = Date.now() - started;
    assert.ok(stopMs < DRAIN_MS + 12000, `the stop took ${stopMs} ms`);
    const after = await allConnected(d, clients, DRAIN_MS + 8000);
    const movedMs = Date.now() - started;
    for (const c of moving) {
      assert.equal(after.get(c.id()), "bridge-2", `${kindName(c.kind)} client now on bridge-2`);
      assert.ok(!oldIds.has(c.id()), "a new session");
      assert.ok(c.connects >= 2, `${kindName(c.kind)} reconnected`);
      assert.ok(
        c.reasons.every((r) => r === "transport close" || r === "transport error"),
        `${kindName(c.kind)} saw ${c.reasons}: never "io server disconnect"`,
      );
      // A polling-only client's next poll is answered with an Engine.IO close packet.
      if (c.kind.transports?.[0] === "polling") assert.deepEqual(c.reasons, ["transport close"], kindName(c.kind));
    }
    // Those of bridge-2 never noticed.
    for (const c of clients.filter((c) => before.get(c.id()) === "bridge-2")) assert.equal(c.connects, 1);

    // A room emit made after the move reaches every client (the `$connect` gate joined them to `lobby`).
    for (const c of clients) c.inbox.splice(0);
    const res = await d.v1("POST", "/v1/emit", { namespace: "/chat", rooms: ["lobby"], event: "after", data: 2 });
    assert.equal(res.status, 200, JSON.stringify(res.body));
    await until(() => clients.every((c) => c.inbox.some(([e]) => e === "after")), 5000, "every client got the emit made after the move");

    // The webhooks were told why: the node stopped.
    await d.receiver.waitFor(() => d.receiver.events("disconnect").filter((b) => oldIds.has(b.json.socket.id)).length === moving.length, 5000);
    const gone = d.receiver.events("disconnect").filter((b) => oldIds.has(b.json.socket.id));
    for (const body of gone) assert.equal(body.json.reason, "server shutting down");
    // WebSockets closed one after another over the window, not all at once: with n of them the
    // last goes (n-1)/n of the window after the first.
    const wsTimes = gone.filter((b) => wsIds.has(b.json.socket.id)).map((b) => b.at);
    const spread = Math.max(...wsTimes) - Math.min(...wsTimes);
    const expected = (DRAIN_MS * (wsTimes.length - 1)) / wsTimes.length;
    assert.ok(wsTimes.length >= 2 && spread >= expected - 500, `${wsTimes.length} WebSockets closed over ${spread} ms`);
    const leaves = d.receiver.events("leave").filter((b) => oldIds.has(b.json.socket.id));
    assert.equal(leaves.length, moving.length, "a $leave of lobby per socket of the stopped node");
    assert.ok(leaves.every((b) => b.json.reason === "server shutting down"));
    const vacated = d.receiver.events("room_vacated").filter((b) => b.json.node === "bridge-1");
    assert.equal(vacated.length, 1);
    assert.equal(vacated[0].json.reason, "server shutting down");
    console.log(
      `handover: ${moving.length} clients of bridge-1 (${[...new Set(moving.map((c) => kindName(c.kind)))].join(", ")}) ` +
        `reconnected to bridge-2 ${movedMs} ms after SIGTERM (drain ${DRAIN_MS} ms); the stop took ${stopMs} ms`,
    );
  } finally {
    for (const c of clients) c.close();
    await d.close();
  }
});

test("a rolling restart through nginx under load: every client ends connected, nothing accepted is lost, no session is split", async () => {
  const d = await deployment({ env: { BRIDGE_DRAIN: `${DRAIN_MS}ms` }, hooks, handler });
  const clients = [];
  try {
    for (let i = 0; i < 30; i++) clients.push(reconnectingClient(d.nginx.url, KINDS[i % KINDS.length], i));
    await allConnected(d, clients, 10000);
    const load = emitLoad(clients, 100);
    const emits = roomEmits(d, 200);
    await sleep(1500);
    const timeline = [];
    for (const i of [0, 1]) {
      const t0 = Date.now();
      await d.node(i).stop();
      assert.equal(d.node(i).exitCode(), 0);
      timeline.push(`${d.slots[i].id} stopped in ${Date.now() - t0} ms`);
      const t1 = Date.now();
      await d.restart(i);
      timeline.push(`${d.slots[i].id} ready again in ${Date.now() - t1} ms`);
      await allConnected(d, clients, 15000);
      await sleep(1000);
    }
    await load.stop();
    await emits.stop();
    assert.deepEqual(load.refused, [], "no durable event was refused");
    await until(() => allDelivered(load, d.receiver), 20000, "every accepted event delivered");
    const where = await allConnected(d, clients, 5000);

    // No client ever saw a session answer from the wrong node: nginx tried the other node instead.
    const engine = d.nginx.requests().filter((r) => r.path?.startsWith("/socket.io/"));
    const unknown = engine.filter((r) => r.path.includes("sid=") && (r.status === 400 || r.status === 404));
    assert.deepEqual(unknown, [], "no session ID unknown answer reached a client");
    const retried = engine.filter((r) => r.upstreamStatus?.includes(","));
    const { ids, duplicates } = delivered(d.receiver);
    const reconnects = clients.reduce((n, c) => n + c.connects - 1, 0);
    const reasons = new Set(clients.flatMap((c) => c.reasons));
    assert.ok(!reasons.has("io server disconnect"), [...reasons].join());
    console.log(
      `rolling restart: ${clients.length} clients (${KINDS.map(kindName).join(", ")}); ${timeline.join("; ")}; ` +
        `${load.sent} durable events sent, ${load.accepted.size} accepted, ${ids.size} delivered, ${duplicates} duplicates; ` +
        `${emits.counts.ok} room emits answered 200, ${emits.counts.failed} not; ${reconnects} reconnects (${[...reasons].join(", ")}); ` +
        `${engine.length} Engine.IO requests through nginx, ${retried.length} retried on the other node; ` +
        `at the end ${[...where.values()].filter((n) => n === "bridge-1").length} on bridge-1, ${[...where.values()].filter((n) => n === "bridge-2").length} on bridge-2`,
    );
  } finally {
    for (const c of clients) c.close();
    await d.close();
  }
});

test("a rolling restart with batched webhooks under load: every accepted event delivered once, in order per socket, every batch signed and within its bounds", async () => {
  // max_bytes binds before max_events (a body is ~350 bytes): both bounds are exercised.
  const batch = { max_events: 50, max_bytes: 8192, max_wait_ms: 50 };
  const batched = (url) => [
    { url, events: ["note"], durable: true, batch },
    // Four lanes: batches of different sockets under way at once, each socket's still in order.
    { url, events: ["chat", "$disconnect"], batch: { ...batch, max_in_flight: 4 } },
  ];
  // The backend takes 100 ms to answer: batches fill up, and a stopping node has some in flight.
  const d = await deployment({ env: { BRIDGE_DRAIN: `${DRAIN_MS}ms` }, hooks: batched, handler: () => ({ delayMs: 100 }) });
  const [durableHook, memoryHook] = d.webhooks;
  const clients = [];
  const sockets = new Set();
  try {
    for (let i = 0; i < 30; i++) {
      const client = reconnectingClient(d.nginx.url, KINDS[i % KINDS.length], i);
      client.socket.on("connect", () => sockets.add(client.id()));
      clients.push(client);
    }
    await allConnected(d, clients, 10000);
    const notes = emitLoad(clients, 50, "note");
    const chats = emitLoad(clients, 50, "chat");
    await sleep(1500);
    for (const i of [0, 1]) {
      await d.node(i).stop();
      assert.equal(d.node(i).exitCode(), 0);
      await d.restart(i);
      await allConnected(d, clients, 15000);
      await sleep(1000);
    }
    await notes.stop();
    await chats.stop();
    assert.deepEqual([...notes.refused, ...chats.refused], [], "no event was refused");
    for (const [load, event] of [[notes, "note"], [chats, "chat"]]) {
      await until(() => allDelivered(load, d.receiver, event), 20000, `every accepted ${event} delivered`);
    }
    // Every socket ever connected ends with its $disconnect, the last of its deliveries. (The
    // agents go a second later: destroyed at once, a polling client's goodbye would not leave,
    // and the node would learn of it only by the heartbeat, 45 s on.)
    for (const c of clients) c.socket.close();
    await sleep(1000);
    for (const c of clients) c.close();
    await until(
      () => {
        const gone = new Set(bodies(d.receiver).filter((b) => b.type === "disconnect").map((b) => b.socket.id));
        return [...sockets].every((id) => gone.has(id));
      },
      15000,
      "a $disconnect for every socket",
    );

    // Every request is one batch of one webhook: signed with its secret, within the bounds,
    // holding only that webhook's events; a webhook-id names one batch (a retry repeats its bytes).
    const byId = new Map();
    for (const r of d.receiver.received) {
      assert.equal(r.json?.type, "batch", r.raw.slice(0, 200));
      assert.ok(r.json.deliveries.length <= batch.max_events && Buffer.byteLength(r.raw) <= batch.max_bytes);
      const hook = signedBy(durableHook.secret, r) ? durableHook : memoryHook;
      assert.ok(signedBy(hook.secret, r), "signed by one of the two webhooks");
      const events = new Set(r.json.deliveries.map((x) => (x.body.type === "event" ? x.body.event : "$disconnect")));
      assert.deepEqual([...events].filter((e) => !hook.events.includes(e)), [], `only ${hook.events} in a batch of that webhook`);
      const id = r.headers["webhook-id"];
      if (byId.has(id)) assert.equal(byId.get(id), r.raw, "a webhook-id reused only by a retry of the same batch");
      byId.set(id, r.raw);
    }
    // The in-memory webhook: each socket's deliveries in seq order across batches and nodes'
    // restarts, none twice, the $disconnect last.
    const memory = d.receiver.received.filter((r) => signedBy(memoryHook.secret, r)).flatMap((r) => r.json.deliveries.map((x) => x.body));
    const perSocket = new Map();
    for (const b of memory) perSocket.set(b.socket.id, [...(perSocket.get(b.socket.id) ?? []), b]);
    for (const [id, list] of perSocket) {
      const seqs = list.map((b) => b.seq);
      assert.ok(seqs.every((seq, i) => i === 0 || seq > seqs[i - 1]), `socket ${id}: seqs ${seqs.join(",")} in order`);
      assert.equal(list.at(-1).type, "disconnect", `socket ${id}: the $disconnect last`);
    }
    const chat = delivered(d.receiver, "chat");
    const note = delivered(d.receiver, "note");
    assert.equal(chat.duplicates, 0, "no chat event delivered twice");
    const sizes = d.receiver.received.map((r) => r.json.deliveries.length);
    const reasons = new Set(clients.flatMap((c) => c.reasons));
    assert.ok(!reasons.has("io server disconnect"), [...reasons].join());
    console.log(
      `batched rolling restart: ${clients.length} clients, ${sockets.size} sockets; ` +
        `${notes.accepted.size} durable and ${chats.accepted.size} in-memory events accepted, ${note.ids.size} and ${chat.ids.size} delivered ` +
        `(${note.duplicates} durable duplicates); ${sizes.length} batches of ${Math.min(...sizes)}–${Math.max(...sizes)} deliveries; ` +
        `reasons ${[...reasons].join(", ")}`,
    );
  } finally {
    for (const c of clients) c.close();
    await d.close();
  }
});

test("a second SIGTERM during the drain stops the node at once (exit 1)", async () => {
  const env = await setup({ env: { BRIDGE_DRAIN: "60s" } });
  const sockets = [];
  try {
    // Two WebSockets: the second is closed only half-way through the 60 s window.
    for (let i = 0; i < 2; i++) sockets.push(await connected("v4", env.url, { transports: ["websocket"] }));
    process.kill(env.bridge.pid, "SIGTERM");
    await until(async () => (await fetch(`${env.bridge.url}/readyz`)).status === 503, 2000, "draining");
    const second = Date.now();
    process.kill(env.bridge.pid, "SIGTERM");
    await until(() => env.bridge.exitCode() !== null, 3000, "exit after the second signal");
    assert.equal(env.bridge.exitCode(), 1);
    assert.ok(Date.now() - second < 3000);
  } finally {
    for (const s of sockets) s.close();
    await env.close();
  }
});
