// SPEC 8: two bridge processes sharing one Postgres store, linked by the Redis adapter (on a
// redis-server this file runs itself, so the machine's shared Redis is never touched) or by the
// Postgres adapter (on the store's own database).

import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import {
  startBridge,
  startReceiver,
  freshPostgres,
  psql,
  connected,
  hsToken,
  onAnyEvent,
  until,
  metric,
} from "./harness.mjs";
import { ownRedis, ready } from "./deployment.mjs";

const SECRET = "cluster-secret";
const auth = { mode: "jwt", algorithm: "HS256", secret: SECRET, timeout_ms: 5000 };

/** Two nodes on one store; `/chat` (JWT) created on A, an API key, and a webhook receiver. */
async function twoNodes(adapter) {
  const db = freshPostgres();
  const redis = adapter === "redis" ? await ownRedis() : null;
  const env = {
    DATABASE_URL: db.url,
    BRIDGE_ADAPTER: adapter,
    BRIDGE_ADMIN_TOKEN: `admin-${Math.random().toString(36).slice(2)}`,
    ...(redis ? { REDIS_URL: redis.url } : {}),
  };
  const a = await startBridge({ ...env, BRIDGE_NODE_ID: "node-a" });
  const b = await startBridge({ ...env, BRIDGE_NODE_ID: "node-b" });
  // A reply webhook's answer joins the socket to a room and emits to it, wherever it lives.
  const receiver = await startReceiver((d) =>
    d.json?.event === "joinme" ? { body: { ack: "joined", join: ["replied"], emit: [{ event: "welcome", data: d.json.socket.node }] } } : {},
  );
  const clients = [];
  return {
    db,
    redis,
    a,
    b,
    receiver,
    /** A connected client of `node`; `sub` and `rooms` go into its token (none: no token). */
    async client(node, version, sub, rooms = []) {
      const token = sub ? await hsToken(SECRET, { sub, rooms }) : null;
      const opts = !token ? {} : version === "v2" ? { query: { token } } : { auth: { token } };
      const socket = await connected(version, `${node.url}/chat`, opts);
      const inbox = [];
      onAnyEvent(socket, (event, ...args) => inbox.push([event, ...args]));
      clients.push(socket);
      return { socket, inbox, id: socket.id.split("#").pop() };
    },
    async close() {
      for (const s of clients) s.close();
      receiver.close();
      await a.stop();
      await b.stop();
      await redis?.kill();
    },
  };
}

/** `/chat` created through A, connectable on B within a second; returns an API key made on A. */
async function chatOnA(c) {
  const ns = await c.a.createNamespace({ name: "/chat", auth });
  await c.a.createWebhook(ns.id, { url: c.receiver.url, events: ["hello", "$connect"] });
  await c.a.createWebhook(ns.id, { url: c.receiver.url, events: ["joinme"], reply: true });
  // B learns of it by its catalog poll (every 250 ms; the docs say to allow 1 s). The wait is
  // bounded far above that, so a loaded machine does not fail it; a node that never reloads does.
  const token = await hsToken(SECRET, { sub: "probe" });
  await until(
    async () => {
      try {
        (await connected("v4", `${c.b.url}/chat`, { auth: { token } })).close();
        return true;
      } catch {
        return false;
      }
    },
    5000,
    "namespace created on A connectable on B",
  );
  const key = await c.a.createKey(["/chat"]);
  // An API key made on A works on A at once (read-your-writes), on B after its catalog poll.
  const works = async (node) => (await node.v1("GET", "/v1/rooms?namespace=/chat", key)).status === 200;
  assert.ok(await works(c.a), "the key works at once on the node that made it");
  await until(() => works(c.b), 5000, "API key known to B");
  return key;
}

let markers = 0;

/**
 * Proves a quiet period without sleeping: an emit to every socket of `/chat` through `node`,
 * awaited by every client of `clients` still connected. Each node's emits reach a client in the
 * order they were made (one adapter channel, handled in order), so once this one is in, any
 * earlier emit through `node` that was going to reach a client has reached it.
 */
async function marker(node, key, clients) {
  const event = `marker-${++markers}`;
  const live = Object.keys(clients).filter((name) => clients[name].socket.connected);
  const res = await node.v1("POST", "/v1/emit", key, { namespace: "/chat", event });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await until(() => live.every((name) => clients[name].inbox.some(([e]) => e === event)), 5000, `${event} reaches ${live}`);
}

/** Emits through `node` and waits until every client in `expected` got `event`; then checks no one else did. */
async function deliver(node, key, clients, expected, body) {
  for (const c of Object.values(clients)) c.inbox.splice(0);
  const res = await node.v1("POST", "/v1/emit", key, { namespace: "/chat", ...body });
  assert.equal(res.status, 200, JSON.stringify(res.body));
  await until(() => expected.every((name) => clients[name].inbox.some(([e]) => e === body.event)), 5000, `${body.event} reaches ${expected}`);
  // A wrong delivery over the adapter would have arrived before the marker.
  await marker(node, key, clients);
  const got = Object.keys(clients).filter((name) => clients[name].inbox.some(([e]) => e === body.event));
  assert.deepEqual(got.sort(), [...expected].sort(), JSON.stringify(body));
  for (const name of expected) {
    assert.equal(clients[name].inbox.filter(([e]) => e === body.event).length, 1, `${name} got ${body.event} once`);
  }
}

for (const adapter of ["redis", "postgres"]) {
  test(`${adapter}: the emit API of node A reaches, lists, moves and disconnects the sockets of node B`, async () => {
    const c = await twoNodes(adapter);
    try {
      const key = await chatOnA(c);
      const clients = {
        alice: await c.client(c.a, "v4", "alice", ["r1"]),
        bob: await c.client(c.b, "v2", "bob", ["r1", "r2"]),
        carol: await c.client(c.b, "v4", "carol"),
      };
      await deliver(c.a, key, clients, ["alice", "bob", "carol"], { event: "all", data: 1 });
      await deliver(c.a, key, clients, ["bob"], { event: "room", rooms: ["r2"] });
      await deliver(c.a, key, clients, ["carol"], { event: "user", users: ["carol"] });
      await deliver(c.a, key, clients, ["bob"], { event: "socket", sockets: [clients.bob.socket.id] });
      await deliver(c.a, key, clients, ["carol"], { event: "except", except: ["r1"] });
      await deliver(c.b, key, clients, ["alice"], { event: "from-b", users: ["alice"] });
      // Each node's sockets are in the room `node:<id>`: an emit to it reaches that node's only.
      await deliver(c.a, key, clients, ["bob", "carol"], { event: "to-node-b", rooms: ["node:node-b"] });
      await deliver(c.b, key, clients, ["alice"], { event: "to-node-a", rooms: ["node:node-a"] });
      await deliver(c.a, key, clients, ["alice"], { event: "to-node-a-from-a", rooms: ["node:node-a"] });

      // Presence across the cluster, asked from either node: alice (A) and bob (B) in r1.
      for (const node of [c.a, c.b]) {
        const members = await node.v1("GET", "/v1/rooms/r1/members?namespace=/chat", key);
        assert.equal(members.status, 200, JSON.stringify(members.body));
        assert.deepEqual(members.body, {
          members: [{ user_id: "alice", sockets: 1 }, { user_id: "bob", sockets: 1 }],
          anonymous_sockets: 0,
          next_cursor: null,
        });
        const page = await node.v1("GET", "/v1/rooms/r1/members?namespace=/chat&limit=1&cursor=alice", key);
        assert.deepEqual(page.body, { members: [{ user_id: "bob", sockets: 1 }], anonymous_sockets: 0, next_cursor: null });
      }

      // Acknowledgements from clients of both nodes, collected by A.
      for (const [name, { socket }] of Object.entries(clients)) socket.on("ask", (q, ack) => ack(`${name}:${q}`));
      const asked = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "ask", data: "q", ack_timeout_ms: 2000 });
      assert.equal(asked.status, 200, JSON.stringify(asked.body));
      assert.deepEqual(asked.body.acks.map((a) => a.args[0]).sort(), ["alice:q", "bob:q", "carol:q"]);
      assert.equal(asked.body.timed_out, 0);

      // Listings through A show the whole cluster and say where each socket lives.
      const listed = await c.a.v1("GET", "/v1/sockets?namespace=/chat", key);
      assert.equal(listed.status, 200);
      const byUser = Object.fromEntries(listed.body.sockets.map((s) => [s.user_id, s]));
      assert.deepEqual(Object.keys(byUser).sort(), ["alice", "bob", "carol"]);
      assert.equal(byUser.alice.node, "node-a");
      assert.equal(byUser.bob.node, "node-b");
      assert.equal(byUser.carol.node, "node-b");
      assert.equal(byUser.bob.id, clients.bob.id);
      assert.ok(byUser.bob.rooms.includes("r2") && !byUser.bob.rooms.some((r) => r.startsWith("node:")), JSON.stringify(byUser.bob));
      const rooms = await c.a.v1("GET", "/v1/rooms?namespace=/chat", key);
      assert.deepEqual(rooms.body.rooms, ["r1", "r2", "user:alice", "user:bob", "user:carol"]);

      // Join and leave through A act on B's socket.
      const joined = await c.a.v1("POST", "/v1/join", key, { namespace: "/chat", users: ["carol"], join: ["vip"] });
      assert.equal(joined.status, 200, JSON.stringify(joined.body));
      await deliver(c.a, key, clients, ["carol"], { event: "vip", rooms: ["vip"] });
      const left = await c.a.v1("POST", "/v1/leave", key, { namespace: "/chat", sockets: [clients.carol.id], leave: ["vip"] });
      assert.equal(left.status, 200);
      await until(async () => !(await c.a.v1("GET", "/v1/rooms?namespace=/chat", key)).body.rooms.includes("vip"), 3000, "vip left");

      // Events of B's client reach the webhook saying node-b.
      clients.carol.socket.emit("hello", "from carol");
      const [hello] = await c.receiver.waitFor((r) => r.some((d) => d.json?.event === "hello"));
      const body = c.receiver.received.find((d) => d.json?.event === "hello").json;
      assert.equal(body.socket.node, "node-b", JSON.stringify(body.socket));
      assert.ok(hello);

      // A reply to B's client joins it to a room that A's emit API then reaches, and emits to it.
      const [ack] = await new Promise((resolve) => clients.carol.socket.emit("joinme", 1, (...args) => resolve(args)));
      assert.equal(ack, "joined");
      await until(() => clients.carol.inbox.some(([e, node]) => e === "welcome" && node === "node-b"), 3000, "reply emit");
      await deliver(c.a, key, clients, ["carol"], { event: "to-replied", rooms: ["replied"] });

      // Disconnect through A: bob (on B) goes, the others stay.
      const gone = new Promise((resolve) => clients.bob.socket.once("disconnect", resolve));
      const dis = await c.a.v1("POST", "/v1/disconnect", key, { namespace: "/chat", users: ["bob"] });
      assert.equal(dis.status, 200);
      await gone;
      // Still connected after the disconnect was carried out: an emit made after it reaches them.
      await marker(c.a, key, { alice: clients.alice, carol: clients.carol });
      assert.ok(clients.alice.socket.connected && clients.carol.socket.connected);
      await until(async () => (await c.a.v1("GET", "/v1/sockets?namespace=/chat", key)).body.sockets.length === 2, 3000, "bob gone from the listing");

      // Sockets without a user (a namespace without auth) count as anonymous, on both nodes.
      await c.a.createNamespace({ name: "/open" });
      const openKey = await c.a.createKey(["/open"]);
      await until(async () => (await c.b.v1("GET", "/v1/rooms?namespace=/open", openKey)).status === 200, 5000, "/open known to B");
      const anonymous = [
        await connected("v4", `${c.a.url}/open`),
        await connected("v4", `${c.b.url}/open`),
        await connected("v2", `${c.b.url}/open`),
      ];
      try {
        assert.equal((await c.a.v1("POST", "/v1/join", openKey, { namespace: "/open", join: ["lobby"] })).status, 200);
        for (const node of [c.a, c.b]) {
          const members = await node.v1("GET", "/v1/rooms/lobby/members?namespace=/open", openKey);
          assert.deepEqual(members.body, { members: [], anonymous_sockets: 3, next_cursor: null }, JSON.stringify(members.body));
        }
      } finally {
        for (const s of anonymous) s.close();
      }

      // Each node says who it is.
      const stats = await c.b.admin("GET", "/admin/stats");
      assert.equal(stats.body.node.id, "node-b");
      assert.equal(stats.body.node.adapter, adapter);
      assert.equal(stats.body.node.adapter_connected, true);
      assert.equal(await metric(c.b, "bridge_connections", { namespace: "/chat", node: "node-b" }), 1, "carol (bob left)");
      const ready = await (await fetch(`${c.b.url}/readyz`)).json();
      assert.deepEqual(ready, { status: "ready", node: "node-b" });
    } finally {
      await c.close();
    }
  });
}

test("redis: a node survives a Redis outage, says so on /readyz, refuses cluster emits, and rejoins", async () => {
  const c = await twoNodes("redis");
  try {
    const key = await chatOnA(c);
    const clients = {
      alice: await c.client(c.a, "v4", "alice"),
      bob: await c.client(c.b, "v4", "bob"),
    };
    await deliver(c.a, key, clients, ["bob"], { event: "before", users: ["bob"] });

    await c.redis.kill();
    const down = await until(async () => {
      const r = await ready(c.a);
      return r.status === 503 && r;
    }, 5000, "A reports the outage");
    assert.equal(down.body.error.code, "adapter_unavailable");
    assert.match(down.body.error.message, /redis/);
    const refused = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "during", users: ["bob"] });
    assert.equal(refused.status, 503, "no silent partial success");
    assert.equal(refused.body.error.code, "adapter_unavailable");
    const listing = await c.a.v1("GET", "/v1/sockets?namespace=/chat", key);
    assert.equal(listing.status, 503);

    // A keeps serving its own sockets: events still go to the webhook.
    assert.ok(clients.alice.socket.connected);
    clients.alice.socket.emit("hello", "during the outage");
    await c.receiver.waitFor((r) => r.some((d) => d.json?.event === "hello" && d.json.socket.node === "node-a"));

    await c.redis.restart();
    await until(async () => (await ready(c.a)).status === 200 && (await ready(c.b)).status === 200, 10000, "both nodes ready again");
    await deliver(c.a, key, clients, ["bob"], { event: "after", users: ["bob"] });
    await deliver(c.b, key, clients, ["alice"], { event: "after-b", users: ["alice"] });
    const stats = await c.a.admin("GET", "/admin/stats");
    assert.equal(stats.body.node.adapter_connected, true);
    assert.ok(stats.body.node.adapter_lost >= 1);
  } finally {
    await c.close();
  }
});

test("postgres: eight namespaces all cross nodes over one listening connection per node", async () => {
  const c = await twoNodes("postgres");
  try {
    const names = Array.from({ length: 8 }, (_, i) => `/n${i + 1}`);
    const key = await c.a.createKey(names);
    for (const name of names) {
      await c.a.createNamespace({ name, auth });
      // The 201 means node A serves it, its adapter subscribed: an emit at once is no 404.
      const res = await c.a.v1("POST", "/v1/emit", key, { namespace: name, event: "first", data: 1 });
      assert.equal(res.status, 200, `${name} right after its creation: ${JSON.stringify(res.body)}`);
    }
    // A reaches it at once (read-your-writes, adapter included); B by its catalog poll (allow 1 s,
    // the docs say; bounded well above that so that a loaded machine does not fail it).
    await until(async () => (await c.b.v1("GET", `/v1/rooms?namespace=${names[7]}`, key)).status === 200, 5000, "the key and namespaces known to B");
    const token = await hsToken(SECRET, { sub: "many" });
    const connectedTo = async (node, name) => {
      let socket = null;
      await until(async () => {
        try {
          socket = await connected("v4", `${node.url}${name}`, { auth: { token } });
          return true;
        } catch {
          return false;
        }
      }, 5000, `${name} connectable`);
      return socket;
    };
    for (const [from, to] of [[c.a, c.b], [c.b, c.a]]) {
      for (const name of [names[0], names[7]]) {
        const socket = await connectedTo(to, name);
        const got = [];
        socket.on("ping-all", (d) => got.push(d));
        const res = await from.v1("POST", "/v1/emit", key, { namespace: name, event: "ping-all", data: name });
        assert.equal(res.status, 200, JSON.stringify(res.body));
        await until(() => got.length === 1, 5000, `emit to ${name} crosses nodes`);
        assert.deepEqual(got, [name]);
        socket.close();
      }
    }
    assert.equal((await ready(c.b)).status, 200);
    // One LISTEN connection for every namespace and the room notices, at most four for NOTIFY:
    // a connection per namespace would be nine listeners or more.
    const adapterConnections = Number(
      psql(`SELECT count(*) FROM pg_stat_activity WHERE datname = '${c.db.name}' AND application_name = 'bridge adapter node-b'`),
    );
    assert.ok(adapterConnections >= 1 && adapterConnections <= 5, `node B holds ${adapterConnections} adapter connections`);
  } finally {
    await c.close();
  }
});

test("postgres: the adapter's connections killed with pg_terminate_backend come back; /readyz tells the truth meanwhile", async () => {
  const c = await twoNodes("postgres");
  try {
    const key = await chatOnA(c);
    const clients = {
      alice: await c.client(c.a, "v4", "alice"),
      bob: await c.client(c.b, "v4", "bob"),
    };
    await deliver(c.a, key, clients, ["bob"], { event: "before", users: ["bob"] });

    // New connections refused while B's adapter connections are killed: B cannot listen again.
    psql(`ALTER DATABASE ${c.db.name} ALLOW_CONNECTIONS false`);
    const killed = psql(
      `SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '${c.db.name}' AND application_name = 'bridge adapter node-b'`,
    );
    assert.ok(Number(killed) >= 1, `killed ${killed}`);
    const down = await until(async () => {
      const r = await ready(c.b);
      return r.status === 503 && r;
    }, 5000, "B reports the lost adapter connection");
    assert.equal(down.body.error.code, "adapter_unavailable");
    assert.match(down.body.error.message, /postgres adapter/);
    assert.ok(clients.bob.socket.connected, "B keeps its sockets");

    psql(`ALTER DATABASE ${c.db.name} ALLOW_CONNECTIONS true`);
    await until(async () => (await ready(c.b)).status === 200, 10000, "B ready again");
    await deliver(c.a, key, clients, ["bob"], { event: "after", users: ["bob"] });
    await deliver(c.b, key, clients, ["alice"], { event: "after-b", users: ["alice"] });
    const stats = await c.b.admin("GET", "/admin/stats");
    assert.ok(stats.body.node.adapter_lost >= 1);
  } finally {
    psql(`ALTER DATABASE ${c.db.name} ALLOW_CONNECTIONS true`);
    await c.close();
  }
});

for (const adapter of ["redis", "postgres"]) {
  test(`${adapter}: room lifecycle deliveries describe each node's sockets, also when another node's emit API moves them`, async () => {
    const c = await twoNodes(adapter);
    const rooms = await startReceiver();
    try {
      const key = await chatOnA(c);
      const ns = (await c.a.admin("GET", "/admin/namespaces")).body.find((n) => n.name === "/chat");
      await c.a.createWebhook(ns.id, { url: rooms.url, events: ["$room_occupied", "$room_vacated", "$join", "$leave"] });
      // A serves the webhook once it answers (read-your-writes); B once a probe's room is told.
      await until(async () => {
        (await c.client(c.b, "v4", "probe", ["probe"])).socket.close();
        return rooms.received.some((d) => d.json.room === "probe" && d.json.node === "node-b");
      }, 3000, "the webhook served by B");
      const story = (room, node) =>
        rooms.received
          .filter((d) => d.json.room === room && d.json.node === node)
          .map((d) => (d.json.socket ? `${d.json.type}:${d.json.socket.user_id}` : d.json.type));
      const expectStory = (room, node, expected) =>
        until(() => JSON.stringify(story(room, node)) === JSON.stringify(expected), 5000, `${room}@${node}: ${expected} (got ${story(room, node)})`);

      // One socket per node in r1: each node reports the room occupied by its own socket.
      await c.client(c.a, "v4", "alice", ["r1"]);
      const bob = await c.client(c.b, "v2", "bob", ["r1"]);
      await expectStory("r1", "node-a", ["room_occupied", "join:alice"]);
      await expectStory("r1", "node-b", ["room_occupied", "join:bob"]);

      // A's emit API moves B's socket: B tells, in order.
      assert.equal((await c.a.v1("POST", "/v1/join", key, { namespace: "/chat", users: ["bob"], join: ["vip"] })).status, 200);
      await expectStory("vip", "node-b", ["room_occupied", "join:bob"]);
      assert.equal((await c.a.v1("POST", "/v1/leave", key, { namespace: "/chat", sockets: [bob.id], leave: ["vip"] })).status, 200);
      await expectStory("vip", "node-b", ["room_occupied", "join:bob", "leave:bob", "room_vacated"]);

      // B's socket goes: r1 is vacated on B, still occupied on A.
      bob.socket.close();
      await expectStory("r1", "node-b", ["room_occupied", "join:bob", "leave:bob", "room_vacated"]);
      // A reported nothing of B's sockets: A's next deliveries about vip and r1 (one room's
      // deliveries are sent in order) are the first and the next of its stories. The changes are
      // made through B, after everything above.
      assert.equal((await c.b.v1("POST", "/v1/join", key, { namespace: "/chat", users: ["alice"], join: ["vip"] })).status, 200);
      await expectStory("vip", "node-a", ["room_occupied", "join:alice"]);
      assert.equal((await c.b.v1("POST", "/v1/leave", key, { namespace: "/chat", users: ["alice"], leave: ["r1"] })).status, 200);
      await expectStory("r1", "node-a", ["room_occupied", "join:alice", "leave:alice", "room_vacated"]);
      assert.deepEqual(story("vip", "node-b"), ["room_occupied", "join:bob", "leave:bob", "room_vacated"], "B reported nothing of A's socket");
    } finally {
      // The receiver last: the nodes' stops report their sockets leaving, and a closed receiver
      // would hold each stop for its 10 s of delivery retries.
      await c.close();
      rooms.close();
    }
  });
}

test("redis: a join made on another node stops at the socket's room limit there too", async () => {
  const c = await twoNodes("redis");
  try {
    const key = await chatOnA(c);
    const dave = await c.client(c.b, "v4", "dave");
    const names = Array.from({ length: 1000 }, (_, i) => `room-${i}`);
    const join = (rooms) => c.a.v1("POST", "/v1/join", key, { namespace: "/chat", users: ["dave"], join: rooms });
    const roomsOfDave = async () => (await c.a.v1("GET", "/v1/sockets?namespace=/chat&user=dave", key)).body.sockets[0].rooms;
    assert.equal((await join(names)).status, 200);
    assert.equal((await join(["extra"])).status, 200);
    // B's tracker refuses the join; B's adapter may join the socket after that (the join and its
    // notice travel on different channels): B takes it out again within a few seconds.
    await until(async () => (await metric(c.b, "bridge_room_joins_refused_total", { reason: "socket_room_limit" })) === 1, 5000, "B refuses the join");
    await until(async () => !(await roomsOfDave()).includes("extra"), 5000, "dave out of the room past his limit");
    assert.equal((await roomsOfDave()).filter((r) => r.startsWith("room-")).length, 1000);
    const res = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "to-extra", rooms: ["extra"] });
    assert.equal(res.status, 200);
    // Emits from A reach B in order: once the next one is here, the room's would have been too.
    await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "marker", users: ["dave"] });
    await until(() => dave.inbox.some(([event]) => event === "marker"), 5000, "the marker reaches dave");
    assert.ok(!dave.inbox.some(([event]) => event === "to-extra"), "an emit to the room does not reach him");
  } finally {
    await c.close();
  }
});

test("postgres: messages over 8 KB (the attachment table) cross nodes intact both ways, up to the payload limit", async () => {
  const c = await twoNodes("postgres");
  try {
    const key = await chatOnA(c);
    const clients = {
      alice: await c.client(c.a, "v4", "alice"),
      bob: await c.client(c.b, "v4", "bob"),
      carol: await c.client(c.b, "v2", "carol"),
    };
    // 12,000 bytes of multi-byte UTF-8 (a NOTIFY takes under 8,000), 900,000 bytes (the payload
    // limit is 1,000,000), and 20,000 random bytes as a binary attachment.
    const medium = { text: "é€😀 ".repeat(1200) };
    const huge = randomBytes(450_000).toString("hex");
    const bytes = randomBytes(20_000);
    const sent = [
      ["medium", { data: medium }],
      ["huge", { data: huge }],
      ["bin", { args: ["file.bin", { $binary: bytes.toString("base64") }] }],
    ];
    for (const [event, body] of sent) {
      for (const c2 of Object.values(clients)) c2.inbox.splice(0);
      const res = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event, users: ["bob", "carol"], ...body });
      assert.equal(res.status, 200, `${event}: ${JSON.stringify(res.body)}`);
      await until(() => ["bob", "carol"].every((n) => clients[n].inbox.some(([e]) => e === event)), 15000, `${event} reaches B's clients`);
      for (const name of ["bob", "carol"]) {
        const [, ...args] = clients[name].inbox.find(([e]) => e === event);
        if (event === "medium") assert.deepEqual(args, [medium], `${name}: ${event} intact`);
        if (event === "huge") assert.ok(args.length === 1 && args[0] === huge, `${name}: ${event} intact (${String(args[0]).length} characters)`);
        if (event === "bin") {
          assert.equal(args[0], "file.bin");
          assert.ok(Buffer.from(args[1]).equals(bytes), `${name}: the attachment intact`);
        }
      }
    }
    // The other way: B's emit API to A's client.
    const res = await c.b.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "huge-to-a", users: ["alice"], data: huge });
    assert.equal(res.status, 200);
    await until(() => clients.alice.inbox.some(([e]) => e === "huge-to-a"), 15000, "huge-to-a reaches alice");
    assert.ok(clients.alice.inbox.find(([e]) => e === "huge-to-a")[1] === huge, "intact on A");

    // Answers over 8 KB: B's clients' acknowledgements, collected by A.
    const answer = "ä".repeat(6000);
    for (const name of ["bob", "carol"]) clients[name].socket.on("ask-big", (q, ack) => ack(`${name}:${answer}`));
    const asked = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "ask-big", users: ["bob", "carol"], data: 1, ack_timeout_ms: 5000 });
    assert.equal(asked.status, 200, JSON.stringify(asked.body));
    assert.deepEqual(asked.body.acks.map((a) => a.args[0]).sort(), [`bob:${answer}`, `carol:${answer}`]);
    assert.equal(asked.body.timed_out, 0);

    // A join of 1,000 rooms through A (a request over 8 KB to B), then B's answer to a listing
    // through A (over 8 KB too): every room is there.
    const names = Array.from({ length: 1000 }, (_, i) => `room-${String(i).padStart(4, "0")}`);
    assert.equal((await c.a.v1("POST", "/v1/join", key, { namespace: "/chat", users: ["bob"], join: names })).status, 200);
    const listed = await c.a.v1("GET", "/v1/sockets?namespace=/chat&user=bob", key);
    assert.equal(listed.status, 200, JSON.stringify(listed.body));
    assert.deepEqual(listed.body.sockets[0].rooms.filter((r) => r.startsWith("room-")).sort(), names);
    assert.equal(listed.body.sockets[0].node, "node-b");
    await deliver(c.a, key, clients, ["bob"], { event: "to-the-last-room", rooms: ["room-0999"] });
  } finally {
    await c.close();
  }
});

for (const adapter of ["redis", "postgres"]) {
  test(`${adapter}: a stopped node is forgotten: listings and acknowledgements through the other node stop waiting for it`, async () => {
    const c = await twoNodes(adapter);
    try {
      const key = await chatOnA(c);
      const alice = await c.client(c.a, "v4", "alice");
      alice.socket.on("ask", (q, ack) => ack(`alice:${q}`));
      await c.client(c.b, "v4", "bob");
      const list = async () => {
        const started = Date.now();
        const res = await c.a.v1("GET", "/v1/sockets?namespace=/chat", key);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        return { users: res.body.sockets.map((s) => s.user_id).sort(), ms: Date.now() - started };
      };
      assert.deepEqual((await list()).users, ["alice", "bob"]);

      await c.b.stop();
      // While A still counts B, a listing waits 3 s for B's answer (and leaves B's sockets out).
      // Redis drops B's subscriptions once it sees B's connection closed, so A soon stops counting
      // it; Postgres forgets it once its heartbeats (every 2 s) have been missing for 6 s. Either
      // way a listing through A stops waiting within the bound below. The 1.5 s limit is the point
      // (half the 3 s wait), far above a listing's usual few milliseconds.
      const first = await list();
      assert.deepEqual(first.users, ["alice"]);
      await until(async () => (await list()).ms < 1500, 20000, "a listing through A that no longer waits for B");

      // Acknowledgements: A's client answers at once, and nothing waits for B's (a node still
      // counted would hold the answer for the whole 10 s timeout).
      const started = Date.now();
      const asked = await c.a.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "ask", data: "q", ack_timeout_ms: 10000 });
      const took = Date.now() - started;
      assert.equal(asked.status, 200, JSON.stringify(asked.body));
      assert.deepEqual(asked.body.acks.map((a) => a.args[0]), ["alice:q"]);
      assert.equal(asked.body.timed_out, 0);
      assert.ok(took < 5000, `the acknowledgement took ${took} ms: it waited for the stopped node`);
    } finally {
      await c.close();
    }
  });
}
