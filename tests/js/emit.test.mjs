// SPEC 6 emit API with official socket.io-client v4 and v2 receivers.

import { test } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:http";
import { setup, connected, hsToken, onAnyEvent, metric, until, next, parseMetrics } from "./harness.mjs";

const SECRET = "emit-secret";
const auth = { mode: "jwt", algorithm: "HS256", secret: SECRET, timeout_ms: 5000 };

/** A namespace with three authenticated sockets (v4 alice in r1, v2 bob in r1+r2, v4 carol) and one inert socket. */
async function world() {
  const env = await setup({ auth });
  const key = await env.bridge.createKey(["/chat"]);
  const token = (sub, rooms = []) => hsToken(SECRET, { sub, rooms });
  const alice = await connected("v4", env.url, { auth: { token: await token("alice", ["r1"]) } });
  const bob = await connected("v2", env.url, { query: { token: await token("bob", ["r1", "r2"]) } });
  const carol = await connected("v4", env.url, { auth: { token: await token("carol") } });
  const inert = await connected("v4", env.url);
  const sockets = { alice, bob, carol, inert };
  const inbox = Object.fromEntries(Object.keys(sockets).map((k) => [k, []]));
  for (const [name, socket] of Object.entries(sockets)) onAnyEvent(socket, (event, ...args) => inbox[name].push([event, ...args]));
  const sid = (name) => sockets[name].id.split("#").pop();
  const emit = (body) => env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", ...body });
  let markers = 0;
  /**
   * Emits, then broadcasts a marker: a socket's messages arrive in order, so once every
   * authenticated socket has the marker, everything the emit sent has arrived (no sleeping).
   * Returns who got what (markers left out) and clears the inboxes.
   */
  const deliver = async (body) => {
    const res = await emit(body);
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const marker = ++markers;
    assert.equal((await emit({ event: "__marker", data: marker })).status, 200);
    const has = (name) => inbox[name].some(([event, n]) => event === "__marker" && n === marker);
    const listening = ["alice", "bob", "carol"].filter((name) => sockets[name].connected);
    await until(() => listening.every(has), 5000, `marker ${marker}`);
    const got = Object.fromEntries(
      Object.entries(inbox).map(([k, v]) => [k, v.splice(0).filter(([event]) => event !== "__marker")]),
    );
    return got;
  };
  /** Broadcasts a marker and waits until every authenticated socket has it: what was sent to them before has arrived. */
  const settle = async () => {
    const marker = ++markers;
    assert.equal((await emit({ event: "__marker", data: marker })).status, 200);
    const has = (name) => inbox[name].some(([event, n]) => event === "__marker" && n === marker);
    await until(() => ["alice", "bob", "carol"].filter((name) => sockets[name].connected).every(has), 5000, `marker ${marker}`);
    for (const list of Object.values(inbox)) {
      const kept = list.filter(([event]) => event !== "__marker");
      list.splice(0, list.length, ...kept);
    }
  };
  /** The sockets that got something, once per message: a double delivery shows as a name twice. */
  const who = (got) => Object.entries(got).flatMap(([k, v]) => v.map(() => k)).sort();
  return {
    env, key, sockets, inbox, sid, emit, deliver, settle, who,
    async close() {
      for (const s of Object.values(sockets)) s.close();
      await env.close();
    },
  };
}

test("targets: everyone, rooms, except, users, sockets, combinations, and nobody", async () => {
  const w = await world();
  try {
    assert.deepEqual(w.who(await w.deliver({ event: "all", data: 1 })), ["alice", "bob", "carol"], "never the inert socket");
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["r1"] })), ["alice", "bob"]);
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["r1"], except: ["r2"] })), ["alice"]);
    assert.deepEqual(w.who(await w.deliver({ event: "e", except: ["r1"] })), ["carol"]);
    assert.deepEqual(w.who(await w.deliver({ event: "e", users: ["bob", "carol"] })), ["bob", "carol"]);
    assert.deepEqual(w.who(await w.deliver({ event: "e", sockets: [w.sid("alice"), w.sockets.bob.id] })), ["alice", "bob"], "v2 ids with the /chat# prefix work too");
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["r2"], users: ["carol"] })), ["bob", "carol"]);
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["r1"], users: ["alice"], sockets: [w.sid("alice")] })), ["alice", "bob"], "once each, though alice is named three times");
    assert.deepEqual(w.who(await w.deliver({ event: "e", sockets: [w.sid("inert")] })), [], "inert sockets are never reached");
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: [] })), [], "an empty target list reaches nobody");
  } finally {
    await w.close();
  }
});

test("data is one argument, args several; binary goes out as attachments", async () => {
  const w = await world();
  try {
    let got = await w.deliver({ event: "one", data: { a: [1, null] }, users: ["alice", "bob"] });
    assert.deepEqual(got.alice, [["one", { a: [1, null] }]]);
    assert.deepEqual(got.bob, [["one", { a: [1, null] }]]);
    got = await w.deliver({ event: "many", args: ["x", 2, { $binary: "AAEC" }], users: ["alice", "bob"] });
    for (const name of ["alice", "bob"]) {
      const [[event, x, two, bin]] = got[name];
      assert.equal(event, "many");
      assert.equal(x, "x");
      assert.equal(two, 2);
      assert.ok(Buffer.from(bin).equals(Buffer.from([0, 1, 2])), `${name} got binary`);
    }
    got = await w.deliver({ event: "nothing", users: ["carol"] });
    assert.deepEqual(got.carol, [["nothing"]]);
  } finally {
    await w.close();
  }
});

test("a batch is sent in order with one result per message", async () => {
  const w = await world();
  try {
    const res = await w.env.bridge.v1("POST", "/v1/emit/batch", w.key, {
      messages: [
        { namespace: "/chat", event: "n", data: 1, users: ["alice"] },
        { namespace: "/chat", event: "disconnect", users: ["alice"] },
        { namespace: "/chat", event: "n", data: 2, users: ["alice"], ack_timeout_ms: 100 },
        { namespace: "/elsewhere", event: "n", data: 3 },
        { namespace: "/chat", event: 7 },
        { namespace: "/chat", event: "n", data: 4, users: ["alice"] },
      ],
    });
    assert.equal(res.status, 200);
    const codes = res.body.results.map((r) => r.error?.code ?? (r.ok ? "ok" : "?"));
    assert.deepEqual(codes, ["ok", "invalid_field", "ok", "forbidden", "invalid_field", "ok"]);
    assert.match(res.body.results[4].error.message, /^messages\[4\]\.event:/);
    assert.deepEqual(res.body.results[2], { ok: true, acks: [], timed_out: 1 });
    await w.settle();
    assert.deepEqual(w.inbox.alice.map((m) => m[1]), [1, 2, 4]);
    const tooMany = await w.env.bridge.v1("POST", "/v1/emit/batch", w.key, { messages: Array(101).fill({ namespace: "/chat", event: "x" }) });
    assert.equal(tooMany.status, 400);
    assert.equal(tooMany.body.error.code, "invalid_field");
  } finally {
    await w.close();
  }
});

test("acks are collected until the timeout: answers and silences counted", async () => {
  const w = await world();
  try {
    w.sockets.alice.on("q", (n, cb) => cb({ alice: n }, Buffer.from("ok")));
    w.sockets.bob.on("q", (n, cb) => cb("bob", n));
    // carol never answers
    const started = Date.now();
    const res = await w.emit({ event: "q", data: 9, ack_timeout_ms: 400 });
    assert.equal(res.status, 200);
    assert.ok(Date.now() - started >= 350, "waited for the silent socket");
    const bySocket = Object.fromEntries(res.body.acks.map((a) => [a.socket, a.args]));
    assert.deepEqual(bySocket[w.sid("alice")], [{ alice: 9 }, { $binary: "b2s=" }]);
    assert.deepEqual(bySocket[w.sid("bob")], ["bob", 9]);
    assert.equal(res.body.timed_out, 1);
    assert.equal(res.body.ok, true);
    // Sockets reached, counted in buckets of sockets (not seconds): 3 lands in le=5, not le=2.
    const series = parseMetrics(await (await fetch(`${w.env.bridge.adminUrl}/metrics`)).text());
    const buckets = series.filter((m) => m.name === "bridge_emit_sockets_reached_bucket");
    const count = (le) => buckets.find((b) => Number(b.labels.le) === le)?.value;
    assert.deepEqual([count(1), count(2), count(5), count(10)], [0, 0, 1, 1], JSON.stringify(buckets.map((b) => b.labels.le)));
    assert.ok(!buckets.some((b) => b.labels.le === "0.001"), "no seconds-style buckets");
  } finally {
    await w.close();
  }
});

test("acks are collected until every socket answered: the emit returns then, not at ack_timeout_ms", async () => {
  const w = await world();
  try {
    for (const name of ["alice", "bob", "carol"]) w.sockets[name].on("q", (n, cb) => cb(`${name}-${n}`));
    const started = Date.now();
    const res = await w.emit({ event: "q", data: 1, ack_timeout_ms: 20000 });
    const took = Date.now() - started;
    assert.equal(res.status, 200);
    // The point is not the full 20 s: half of it is a margin no loaded machine needs.
    assert.ok(took < 10000, `answered after ${took} ms`);
    assert.equal(res.body.timed_out, 0);
    assert.deepEqual(res.body.acks.map((a) => a.args[0]).sort(), ["alice-1", "bob-1", "carol-1"]);
  } finally {
    await w.close();
  }
});

test("join, leave and disconnect through the API; listings with filters", async () => {
  const w = await world();
  try {
    const v1 = (m, p, b) => w.env.bridge.v1(m, p, w.key, b);
    assert.equal((await v1("POST", "/v1/join", { namespace: "/chat", users: ["carol"], join: ["vip", "r2"] })).status, 200);
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["vip"] })), ["carol"]);
    assert.equal((await v1("POST", "/v1/leave", { namespace: "/chat", rooms: ["r2"], leave: ["r2"] })).status, 200);
    assert.deepEqual(w.who(await w.deliver({ event: "e", rooms: ["r2"] })), []);

    let list = (await v1("GET", "/v1/sockets?namespace=/chat")).body.sockets;
    assert.deepEqual(list.map((s) => s.user_id).sort(), ["alice", "bob", "carol"]);
    const carol = list.find((s) => s.user_id === "carol");
    assert.deepEqual(carol.rooms.sort(), [w.sid("carol"), "user:carol", "vip"].sort());
    list = (await v1("GET", "/v1/sockets?namespace=/chat&room=r1")).body.sockets;
    assert.deepEqual(list.map((s) => s.user_id).sort(), ["alice", "bob"]);
    list = (await v1("GET", "/v1/sockets?namespace=/chat&room=r1&user=bob")).body.sockets;
    assert.deepEqual(list.map((s) => s.user_id), ["bob"]);
    list = (await v1("GET", "/v1/sockets?namespace=/chat&user=nobody")).body.sockets;
    assert.deepEqual(list, []);
    const rooms = (await v1("GET", "/v1/rooms?namespace=/chat")).body.rooms;
    assert.deepEqual(rooms, ["r1", "user:alice", "user:bob", "user:carol", "vip"]);

    // Presence: the distinct users of a room and their sockets in it (inert sockets left out).
    const members = async (room) => (await v1("GET", `/v1/rooms/${encodeURIComponent(room)}/members?namespace=/chat`)).body;
    assert.deepEqual(await members("r1"), { members: [{ user_id: "alice", sockets: 1 }, { user_id: "bob", sockets: 1 }], anonymous_sockets: 0, next_cursor: null });
    const firstPage = (await v1("GET", "/v1/rooms/r1/members?namespace=/chat&limit=1")).body;
    assert.deepEqual(firstPage, { members: [{ user_id: "alice", sockets: 1 }], anonymous_sockets: 0, next_cursor: "alice" });
    const secondPage = (await v1("GET", "/v1/rooms/r1/members?namespace=/chat&limit=1&cursor=alice")).body;
    assert.deepEqual(secondPage, { members: [{ user_id: "bob", sockets: 1 }], anonymous_sockets: 0, next_cursor: null });
    assert.equal((await v1("GET", "/v1/rooms/r1/members?namespace=/chat&limit=1001")).status, 400);
    const alice2 = await connected("v4", w.env.url, { auth: { token: await hsToken(SECRET, { sub: "alice", rooms: ["r1"] }) } });
    assert.deepEqual((await members("r1")).members, [{ user_id: "alice", sockets: 2 }, { user_id: "bob", sockets: 1 }]);
    alice2.close();
    // Gone on the server before the listings below are paged (a closing socket listed by one
    // page and not the next would split them).
    await until(async () => (await members("r1")).members[0]?.sockets === 1, 5000, "alice's second socket gone");
    assert.deepEqual(await members("user:carol"), { members: [{ user_id: "carol", sockets: 1 }], anonymous_sockets: 0, next_cursor: null });
    assert.deepEqual(await members("nobody-here"), { members: [], anonymous_sockets: 0, next_cursor: null });
    assert.equal((await w.env.bridge.v1("GET", "/v1/rooms/r1/members?namespace=/other", w.key)).status, 403);

    // Pages: the same listings, two at a time, followed by their cursors.
    const pages = async (path, field) => {
      const seen = [];
      let cursor = null;
      for (let n = 0; n < 10; n++) {
        const page = (await v1("GET", `${path}&limit=2${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`)).body;
        assert.ok(page[field].length <= 2);
        seen.push(...page[field]);
        cursor = page.next_cursor;
        if (cursor === null) return seen;
      }
      throw new Error("no last page");
    };
    const all = (await v1("GET", "/v1/sockets?namespace=/chat")).body;
    assert.equal(all.next_cursor, null);
    assert.deepEqual((await pages("/v1/sockets?namespace=/chat", "sockets")).map((s) => s.id), all.sockets.map((s) => s.id));
    assert.deepEqual(await pages("/v1/rooms?namespace=/chat", "rooms"), rooms);
    for (const limit of ["0", "1001", "x"]) {
      const bad = await v1("GET", `/v1/sockets?namespace=/chat&limit=${limit}`);
      assert.equal(bad.status, 400, `limit=${limit}`);
    }

    const gone = next(w.sockets.bob, "disconnect", 5000);
    assert.equal((await v1("POST", "/v1/disconnect", { namespace: "/chat", users: ["bob"] })).status, 200);
    await gone;
    // Still there after a round trip, not just at the instant bob went.
    assert.deepEqual(w.who(await w.deliver({ event: "after" })), ["alice", "carol"]);
    assert.ok(w.sockets.alice.connected && w.sockets.carol.connected);
  } finally {
    await w.close();
  }
});

test("bad requests get clear errors; nothing bad is sent", async () => {
  const w = await world();
  const bridge = w.env.bridge;
  try {
    const other = await bridge.createKey(["/other"]);
    const wildcard = await bridge.createKey(["*"]);
    const revoked = await bridge.admin("POST", "/admin/api-keys", { name: "gone", namespaces: ["*"] });
    await bridge.admin("DELETE", `/admin/api-keys/${revoked.body.id}`);
    const ok = { namespace: "/chat", event: "e" };
    const cases = [
      ["POST", "/v1/emit", null, ok, {}, 401, "unauthorized"],
      ["POST", "/v1/emit", "bk_wrong", ok, {}, 401, "unauthorized"],
      ["POST", "/v1/emit", revoked.body.key, ok, {}, 401, "unauthorized"],
      ["POST", "/v1/emit", other, ok, {}, 403, "forbidden"],
      ["POST", "/v1/emit", w.key, { ...ok, namespace: "/nope" }, {}, 403, "forbidden"],
      ["POST", "/v1/emit", wildcard, { ...ok, namespace: "/nope" }, {}, 404, "not_found", "namespace /nope"],
      ["POST", "/v1/emit", w.key, { ...ok, event: "connect" }, {}, 400, "invalid_field", "event:"],
      ["POST", "/v1/emit", w.key, { ...ok, data: 1, args: [1] }, {}, 400, "invalid_field", "data:"],
      ["POST", "/v1/emit", w.key, { ...ok, rooms: "r1" }, {}, 400, "invalid_field", "rooms:"],
      ["POST", "/v1/emit", w.key, { ...ok, ack_timeout_ms: 0 }, {}, 400, "invalid_field", "ack_timeout_ms"],
      ["POST", "/v1/emit", w.key, { ...ok, args: [{ $binary: "!!" }] }, {}, 400, "invalid_field", "args[0]"],
      ["POST", "/v1/emit", w.key, { namespace: "/chat" }, {}, 400, "bad_request", "missing field `event`"],
      ["POST", "/v1/emit", w.key, undefined, { raw: "{oops" }, 400, "bad_request", "malformed JSON"],
      ["POST", "/v1/emit", w.key, undefined, { raw: JSON.stringify({ ...ok, data: "x".repeat(1100000) }) }, 413, "payload_too_large"],
      ["POST", "/v1/emit", w.key, undefined, { raw: "namespace=/chat", contentType: "text/plain" }, 415, "unsupported_media_type"],
      ["POST", "/v1/join", w.key, { namespace: "/chat", users: ["alice"] }, {}, 400, "invalid_field", "join:"],
      ["POST", "/v1/join", w.key, { namespace: "/chat", join: ["$inert"] }, {}, 400, "invalid_field", "join[0]"],
      ["GET", "/v1/sockets", w.key, undefined, {}, 400, "invalid_field", "namespace"],
      ["GET", "/v1/rooms?namespace=/other", other, undefined, {}, 404, "not_found"],
      ["GET", "/v1/nothing-here", w.key, undefined, {}, 404, "not_found"],
    ];
    for (const [method, path, key, body, opts, status, code, message] of cases) {
      const res = await bridge.v1(method, path, key, body, opts);
      const label = `${method} ${path} ${JSON.stringify(body ?? opts.raw ?? "").slice(0, 80)}`;
      assert.equal(res.status, status, `${label}: ${JSON.stringify(res.body)}`);
      assert.equal(res.body?.error?.code, code, label);
      if (message) assert.ok(res.body.error.message.includes(message), `${label}: ${res.body.error.message}`);
    }
    await w.settle();
    assert.deepEqual(w.inbox, { alice: [], bob: [], carol: [], inert: [] }, "no bad request reached a client");
  } finally {
    await w.close();
  }
});

test("a key over its rate limit gets 429 with Retry-After; last_used_at is recorded", async () => {
  const env = await setup({ env: { BRIDGE_API_RATE_LIMIT: "1", BRIDGE_API_RATE_BURST: "3" } });
  try {
    const created = await env.bridge.admin("POST", "/admin/api-keys", { name: "busy", namespaces: ["/chat"] });
    // Five at once; a slow machine may refill a token per second that passes, no more.
    const started = Date.now();
    const answers = await Promise.all(
      [...Array(5).keys()].map(() => env.bridge.v1("POST", "/v1/emit", created.body.key, { namespace: "/chat", event: "e" })),
    );
    const refills = Math.floor((Date.now() - started) / 1000);
    const oks = answers.filter((a) => a.status === 200).length;
    assert.ok(oks >= 3 && oks <= 3 + refills, `${oks} accepted in ${refills} s`);
    const limited = answers.filter((a) => a.status !== 200);
    assert.equal(limited.length, 5 - oks);
    for (const last of limited) {
      assert.equal(last.status, 429);
      assert.equal(last.body.error.code, "rate_limited");
      assert.ok(Number(last.headers.get("retry-after")) >= 1);
    }
    await until(async () => {
      const keys = (await env.bridge.admin("GET", "/admin/api-keys")).body;
      return keys.find((k) => k.id === created.body.id).last_used_at;
    }, 10000, "last_used_at written in the background");
  } finally {
    await env.close();
  }
});

test("emits and sockets are counted; the emit API is in the OpenAPI document", async () => {
  const w = await world();
  try {
    await w.deliver({ event: "counted" });
    assert.equal((await w.env.bridge.admin("GET", "/admin/stats")).body.emits, 2, "the emit and deliver's marker");
    assert.equal(await metric(w.env.bridge, "bridge_emits_total", { outcome: "sent" }), 2);
    const doc = await (await fetch(`${w.env.bridge.adminUrl}/admin/openapi.json`)).json();
    for (const path of ["/v1/emit", "/v1/emit/batch", "/v1/join", "/v1/leave", "/v1/disconnect", "/v1/sockets", "/v1/rooms"]) {
      assert.ok(doc.paths[path], `${path} documented`);
    }
  } finally {
    await w.close();
  }
});

test("SIGTERM: requests in flight get their answers (an emit waiting for acks; a body still arriving gets 503 shutting_down)", async () => {
  const env = await setup();
  try {
    const key = await env.bridge.createKey(["/chat"]);
    const silent = await connected("v4", env.url, { transports: ["websocket"] });
    const got = next(silent, "ask", 5000); // the client never answers the ack
    const waiting = env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "ask", data: 1, ack_timeout_ms: 4000 });
    await got;
    // A second request whose body is still on its way when the stop begins. It asks for a
    // `100 Continue`, which hyper sends once the handler starts reading the body: then the request
    // is parsed and in the handler's hands, and its body is sent only partly.
    const body = JSON.stringify({ namespace: "/chat", event: "late", data: "x".repeat(1000) });
    const slow = request(`${env.bridge.url}/v1/emit`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "content-length": Buffer.byteLength(body),
        expect: "100-continue",
      },
    });
    const slowAnswer = new Promise((resolve, reject) => {
      slow.on("response", async (res) => {
        let text = "";
        for await (const chunk of res) text += chunk;
        resolve({ status: res.statusCode, body: JSON.parse(text) });
      });
      slow.on("error", reject);
      // The stop's own bounds (open requests get 10 s) end well before this.
      setTimeout(() => reject(new Error("the slow request got no answer in 30 s")), 30000).unref();
    });
    const continued = next(slow, "continue", 5000);
    slow.flushHeaders();
    await continued;
    slow.write(body.slice(0, 100));

    const stopping = env.bridge.stop();
    const res = await waiting;
    assert.equal(res.status, 200, JSON.stringify(res.body));
    assert.deepEqual(res.body, { ok: true, acks: [], timed_out: 1 }, "the socket closed by the stop never answered");
    // Once its sockets are gone the node answers new emits 503 shutting_down (or, later, no longer
    // accepts connections): then the slow body arrives.
    await until(async () => {
      try {
        const probe = await env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "probe" });
        return probe.status === 503 && probe.body?.error?.code === "shutting_down";
      } catch (err) {
        // No longer accepting connections (or cutting a kept-alive one) is closed too; anything
        // else is a failure of its own.
        if (["ECONNREFUSED", "ECONNRESET", "UND_ERR_SOCKET"].includes(err.cause?.code ?? err.code)) return true;
        throw err;
      }
    }, 20000, "the emit API closed");
    slow.end(body.slice(100));
    // Answered, not cut off: its sockets are gone, so the node says so and another node can take it.
    const late = await slowAnswer;
    assert.equal(late.status, 503, JSON.stringify(late.body));
    assert.equal(late.body.error.code, "shutting_down");
    await stopping;
  } finally {
    await env.close();
  }
});
