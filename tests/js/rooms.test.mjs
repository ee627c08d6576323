// Room lifecycle webhooks: `$room_occupied`, `$room_vacated`, `$join` and `$leave`, whatever
// makes the change (token rooms, a webhook reply, the emit API, a disconnect), for v4 and v2 clients.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, startReceiver, connected, emitWithAck, hsToken, until, signedBy } from "./harness.mjs";

const SECRET = "rooms-secret";
const auth = { mode: "jwt", algorithm: "HS256", secret: SECRET, timeout_ms: 5000 };
const LIFECYCLE = ["$room_occupied", "$room_vacated", "$join", "$leave"];

/** The room deliveries about `room`, in arrival order, as `type` or `type:user`. */
function story(receiver, room) {
  return receiver.received
    .filter((d) => d.json?.room === room)
    .map((d) => (d.json.socket ? `${d.json.type}:${d.json.socket.user_id}` : d.json.type));
}

/** Waits until `room`'s story is exactly `expected` (a longer one fails at once). */
async function expectStory(receiver, room, expected) {
  await until(() => {
    const got = story(receiver, room);
    assert.deepEqual(got.slice(0, expected.length), expected.slice(0, got.length), `${room}: ${JSON.stringify(got)}`);
    return got.length >= expected.length;
  }, 5000, `${room}: ${expected.join(", ")}`);
  assert.deepEqual(story(receiver, room), expected, room);
}

for (const version of ["v4", "v2"]) {
  test(`${version}: rooms report occupancy and presence, whatever moves the sockets; the bridge's own rooms never do`, async () => {
    const bridge = await startBridge();
    const rooms = await startReceiver();
    const replies = await startReceiver((d) =>
      d.json?.event === "move" ? { body: { ack: "moved", join: ["vip"], leave: ["lobby"] } } : {},
    );
    const clients = [];
    try {
      const ns = await bridge.createNamespace({ name: "/chat", auth });
      const hook = await bridge.createWebhook(ns.id, { url: rooms.url, events: LIFECYCLE });
      await bridge.createWebhook(ns.id, { url: replies.url, events: ["*", "$connect"], reply: true });
      const key = await bridge.createKey(["/chat"]);
      const v1 = (path, body) => bridge.v1("POST", path, key, { namespace: "/chat", ...body });
      const client = async (sub, tokenRooms) => {
        const token = await hsToken(SECRET, { sub, rooms: tokenRooms });
        const socket = await connected(version, `${bridge.url}/chat`, version === "v2" ? { query: { token } } : { auth: { token } });
        clients.push(socket);
        return socket;
      };

      // The token's rooms: the first socket occupies the lobby, the second only joins it.
      const alice = await client("alice", ["lobby"]);
      const aliceId = alice.id.split("#").pop();
      await expectStory(rooms, "lobby", ["room_occupied", "join:alice"]);
      const bob = await client("bob", ["lobby"]);
      await expectStory(rooms, "lobby", ["room_occupied", "join:alice", "join:bob"]);

      // The emit API moves bob into vip; a reply moves alice from the lobby to vip.
      assert.equal((await v1("/v1/join", { users: ["bob"], join: ["vip"] })).status, 200);
      await expectStory(rooms, "vip", ["room_occupied", "join:bob"]);
      assert.deepEqual(await emitWithAck(alice, "move", 1), ["moved"]);
      await expectStory(rooms, "vip", ["room_occupied", "join:bob", "join:alice"]);
      await expectStory(rooms, "lobby", ["room_occupied", "join:alice", "join:bob", "leave:alice"]);

      // Joining a room a socket is in, or leaving one it is not in, says nothing.
      assert.equal((await v1("/v1/join", { users: ["alice"], join: ["vip"] })).status, 200);
      assert.equal((await v1("/v1/leave", { users: ["alice"], leave: ["lobby"] })).status, 200);
      const bobId = bob.id.split("#").pop();
      // Rooms named like the bridge's own (a socket's id, `user:…`) are not reported either.
      assert.equal((await v1("/v1/join", { users: ["bob"], join: [bobId, "user:carol"] })).status, 200);
      assert.equal((await v1("/v1/leave", { users: ["bob"], leave: ["user:carol"] })).status, 200);
      assert.equal((await v1("/v1/leave", { sockets: [bobId], leave: ["vip"] })).status, 200);
      await expectStory(rooms, "vip", ["room_occupied", "join:bob", "join:alice", "leave:bob"]);

      // Disconnects leave every room; the last socket out vacates it.
      bob.close();
      await expectStory(rooms, "lobby", ["room_occupied", "join:alice", "join:bob", "leave:alice", "leave:bob", "room_vacated"]);
      alice.close();
      await expectStory(rooms, "vip", ["room_occupied", "join:bob", "join:alice", "leave:bob", "leave:alice", "room_vacated"]);

      // No delivery about the sockets' own id, user or node rooms. A stray one would have been
      // queued when its change was made, seconds before a last socket that joins `zzz` now (its
      // own id, user and node rooms are joined as it connects, before its token's rooms).
      const zed = await client("zed", ["zzz"]);
      await expectStory(rooms, "zzz", ["room_occupied", "join:zed"]);
      zed.close();
      await expectStory(rooms, "zzz", ["room_occupied", "join:zed", "leave:zed", "room_vacated"]);
      assert.deepEqual([...new Set(rooms.received.map((d) => d.json.room))].sort(), ["lobby", "vip", "zzz"]);
      assert.equal(rooms.received.length, 16);
      // The other webhook (`*`, `$connect`) got its client events and connects, no room changes.
      assert.deepEqual([...new Set(replies.received.map((d) => d.json.type))].sort(), ["connect", "event"]);

      // The bodies: signed like every delivery, the node's socket count after the change, the
      // socket (with its user id) on joins and leaves only.
      const node = (await bridge.admin("GET", "/admin/stats")).body.node.id;
      for (const d of rooms.received) {
        assert.ok(signedBy(hook.secret, d), "signed");
        assert.equal(d.json.namespace, "/chat");
        assert.equal(d.json.node, node);
        assert.match(d.json.timestamp, /^\d{4}-\d\d-\d\dT/);
      }
      const lobby = rooms.received.filter((d) => d.json.room === "lobby").map((d) => d.json);
      assert.deepEqual(lobby.map((b) => b.node_sockets), [1, 1, 2, 1, 0, 0]);
      assert.equal(lobby[0].socket, undefined);
      assert.equal(lobby[1].socket.id, aliceId);
      assert.equal(lobby[2].socket.id, bobId);
      assert.ok(lobby[2].socket.rooms.includes("lobby") && lobby[2].socket.rooms.includes("user:bob"), JSON.stringify(lobby[2].socket));
      const deliveryIds = new Set(rooms.received.map((d) => d.headers["webhook-id"]));
      assert.equal(deliveryIds.size, rooms.received.length, "one message id per delivery");
    } finally {
      for (const s of clients) s.close();
      rooms.close();
      replies.close();
      await bridge.stop();
    }
  });
}

test("room lifecycle patterns are validated like the others", async () => {
  const bridge = await startBridge();
  try {
    const ns = await bridge.createNamespace({ name: "/v" });
    for (const events of [["$join"], ["$leave", "$room_occupied", "$room_vacated"]]) {
      const res = await bridge.admin("POST", `/admin/namespaces/${ns.id}/webhooks`, { url: "http://127.0.0.1:9/x", events });
      assert.equal(res.status, 201, JSON.stringify(res.body));
    }
    const bad = await bridge.admin("POST", `/admin/namespaces/${ns.id}/webhooks`, { url: "http://127.0.0.1:9/x", events: ["$joined"] });
    assert.equal(bad.status, 400, JSON.stringify(bad.body));
    assert.equal(bad.body.error.code, "invalid_field");
    assert.match(bad.body.error.message, /events\[0\].*\$room_occupied/);
  } finally {
    await bridge.stop();
  }
});
