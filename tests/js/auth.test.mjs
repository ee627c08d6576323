// SPEC 4 authentication with the official clients: token sources, refusals, the authenticate flow.

import { test } from "node:test";
import assert from "node:assert/strict";
import { generateKeyPairSync } from "node:crypto";
import { SignJWT, importPKCS8 } from "jose";
import { setup, connected, connect, next, hsToken, emitWithAck, until, metric } from "./harness.mjs";

const SECRET = "test-secret";
const jwt = { mode: "jwt", algorithm: "HS256", secret: SECRET, issuer: "tests", audience: "bridge", timeout_ms: 800 };
const claims = (sub, extra = {}) => ({ sub, iss: "tests", aud: "bridge", ...extra });

test("a token is read from the auth payload, the query and the Authorization header", async () => {
  const env = await setup({ auth: jwt, hooks: [{ events: ["*"] }] });
  try {
    const token = await hsToken(SECRET, claims("u1", { rooms: ["vip"] }));
    const cases = [
      ["v4", { auth: { token } }],
      ["v4", { query: { token } }],
      ["v4", { extraHeaders: { authorization: `Bearer ${token}` } }],
      ["v2", { query: { token } }],
      ["v2", { extraHeaders: { authorization: `Bearer ${token}` } }],
    ];
    for (const [i, [version, opts]] of cases.entries()) {
      const socket = await connected(version, env.url, opts);
      socket.emit("hello", version);
      await env.receiver.waitFor(() => env.receiver.events().length === i + 1);
      socket.close();
    }
    const bodies = env.receiver.events();
    assert.equal(bodies.length, cases.length);
    for (const body of bodies) {
      assert.equal(body.json.socket.user_id, "u1");
      assert.ok(body.json.socket.rooms.includes("user:u1"), JSON.stringify(body.json.socket));
      assert.ok(body.json.socket.rooms.includes("vip"), "rooms claim joined");
      assert.ok(body.json.socket.rooms.includes(body.json.socket.id), "own id room");
    }
  } finally {
    await env.close();
  }
});

test("bad, expired, wrong-issuer and wrong-algorithm tokens are refused with unauthorized", async () => {
  const env = await setup({ auth: jwt });
  try {
    const bad = [
      await hsToken("wrong-secret", claims("u1")),
      await hsToken(SECRET, claims("u1", { exp: Math.floor(Date.now() / 1000) - 120 }), { expiresIn: null }),
      await hsToken(SECRET, { ...claims("u1"), iss: "someone-else" }),
      await hsToken(SECRET, { iss: "tests", aud: "bridge" }),
      await new SignJWT(claims("u1")).setProtectedHeader({ alg: "HS384" }).sign(new TextEncoder().encode(SECRET)),
      "not-a-jwt",
    ];
    for (const token of bad) {
      const err = await connected("v4", env.url, { auth: { token } }).then(
        () => null,
        (e) => e,
      );
      assert.ok(err, "refused");
      assert.equal(err.message, "unauthorized");
    }
    // v2: the error packet carries the message.
    const err = await connected("v2", env.url, { query: { token: bad[0] } }).then(
      () => null,
      (e) => e,
    );
    assert.deepEqual(err, { message: "unauthorized" });
  } finally {
    await env.close();
  }
});

test("RS256, ES256 and EdDSA namespaces verify with their public keys", async () => {
  const algs = [
    ["RS256", generateKeyPairSync("rsa", { modulusLength: 2048 })],
    ["ES256", generateKeyPairSync("ec", { namedCurve: "P-256" })],
    ["EdDSA", generateKeyPairSync("ed25519")],
  ];
  for (const [alg, { publicKey, privateKey }] of algs) {
    const env = await setup({
      auth: { mode: "jwt", algorithm: alg, public_key: publicKey.export({ type: "spki", format: "pem" }) },
    });
    try {
      const key = await importPKCS8(privateKey.export({ type: "pkcs8", format: "pem" }), alg);
      const token = await new SignJWT({ sub: `user-${alg}` }).setProtectedHeader({ alg }).setExpirationTime("1h").sign(key);
      const socket = await connected("v4", env.url, { auth: { token } });
      socket.close();
      const forged = await hsToken("x", { sub: "u" });
      await assert.rejects(connected("v4", env.url, { auth: { token: forged } }), { message: "unauthorized" });
    } finally {
      await env.close();
    }
  }
});

test("without a handshake token a socket is inert until authenticate succeeds; authenticate and its token are never forwarded", async () => {
  const env = await setup({ auth: jwt, hooks: [{ events: ["*", "$connect", "$disconnect"] }] });
  try {
    const tokens = [];
    for (const version of ["v4", "v2"]) {
      const socket = await connected(version, env.url);
      const sid = socket.id.split("#").pop();
      const ack = await emitWithAck(socket, "early", 1);
      assert.deepEqual(ack, [{ error: "unauthenticated" }]);
      const authed = next(socket, "authenticated");
      const token = await hsToken(SECRET, claims(`late-${version}`));
      tokens.push(token);
      socket.emit("authenticate", { token });
      assert.deepEqual(await authed, [{ user_id: `late-${version}` }]);
      socket.emit("after", version);
      // A second authenticate, with another user's token, once authenticated: ignored, not forwarded.
      const other = await hsToken(SECRET, claims(`other-${version}`));
      tokens.push(other);
      socket.emit("authenticate", { token: other });
      socket.emit("after2", version);
      socket.close();
      // The $disconnect is the socket's last body, behind everything it sent.
      await env.receiver.waitFor((r) => r.some((d) => d.json?.type === "disconnect" && d.json.socket.id === sid));
      const mine = env.receiver.received.filter((d) => d.json?.socket?.id === sid).map((d) => [d.json.event ?? d.json.type, d.json.socket.user_id, d.json.seq]);
      assert.deepEqual(
        mine,
        [["connect", `late-${version}`, 0], ["after", `late-${version}`, 1], ["after2", `late-${version}`, 2], ["disconnect", `late-${version}`, 3]],
        `${version}: exactly these bodies, $connect once authenticated, the user unchanged`,
      );
    }
    for (const delivery of env.receiver.received) {
      for (const token of tokens) assert.ok(!delivery.raw.includes(token), `no body carries a token: ${delivery.raw}`);
    }
  } finally {
    await env.close();
  }
});

test("authenticate with a bad token gets authenticate_failed then a disconnect; silence times out", async () => {
  const env = await setup({ auth: jwt });
  try {
    const socket = await connected("v4", env.url);
    const failed = next(socket, "authenticate_failed");
    const gone = next(socket, "disconnect");
    socket.emit("authenticate", { token: "garbage" });
    assert.deepEqual(await failed, [{ message: "unauthorized" }]);
    await gone;

    const silent = await connected("v2", env.url);
    const started = Date.now();
    await next(silent, "disconnect", 3000);
    assert.ok(Date.now() - started >= 500, "disconnected after timeout_ms");
  } finally {
    await env.close();
  }
});

test("an unknown namespace answers Invalid namespace; one created later connects", async () => {
  const env = await setup();
  try {
    await assert.rejects(connected("v4", `${env.bridge.url}/nope`), { message: "Invalid namespace" });
    const err = await connected("v2", `${env.bridge.url}/nope`).then(() => null, (e) => e);
    assert.deepEqual(err, { message: "Invalid namespace" });
    await env.bridge.createNamespace({ name: "/later" });
    const socket = await connected("v4", `${env.bridge.url}/later`);
    socket.close();
  } finally {
    await env.close();
  }
});

test("deleting a namespace disconnects its sockets", async () => {
  const env = await setup();
  try {
    const a = await connected("v4", env.url);
    const b = await connected("v2", env.url);
    const gone = Promise.all([next(a, "disconnect"), next(b, "disconnect")]);
    const res = await env.bridge.admin("DELETE", `/admin/namespaces/${env.ns.id}`);
    assert.equal(res.status, 204);
    await gone;
  } finally {
    await env.close();
  }
});

test("a v2 client with a query on a custom namespace connects (the CONNECT query fix)", async () => {
  const env = await setup({ hooks: [{ events: ["*", "$connect"] }] });
  try {
    const socket = await connected("v2", env.url, { query: { team: "blue" } });
    socket.emit("ping-me", 1);
    await env.receiver.waitFor((r) => r.some((d) => d.json?.event === "ping-me"));
    const hello = env.receiver.events("connect")[0].json;
    assert.equal(hello.namespace, "/chat");
    assert.equal(hello.handshake.query.team, "blue");
    socket.close();
  } finally {
    await env.close();
  }
});

test("v2 clients on a / the store lacks are admitted but inert; v4 clients are refused", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  try {
    const root = await connected("v2", env.bridge.url);
    // The ack is sent after the decision not to forward: nothing was queued for any webhook.
    assert.deepEqual(await emitWithAck(root, "lost", 1), [{ error: "unauthenticated" }], "inert, and told so");
    await assert.rejects(connected("v4", env.bridge.url), { message: "Invalid namespace" });
    // Not counted as received when refused (the counter is bumped at the decision to forward).
    const node = (await env.bridge.admin("GET", "/admin/stats")).body;
    assert.equal(node.events_in, 0, "the inert socket's event was not taken in");
    assert.equal(await metric(env.bridge, "bridge_events_received_total", { namespace: "/" }), undefined);
    // Nothing queued either: a marker forwarded afterwards arrives, and once no byte is left queued
    // for any webhook (every delivery ended, so it reached the receiver), only the marker came.
    const chat = await connected("v2", env.url);
    chat.emit("marker", 2);
    await env.receiver.waitFor((r) => r.some((d) => d.json?.event === "marker"));
    await until(async () => (await metric(env.bridge, "bridge_webhook_queued_bytes")) === 0, 5000, "no delivery queued");
    assert.deepEqual(env.receiver.received.map((d) => d.json?.event), ["marker"], "the inert socket's event never arrived");
    chat.close();
    root.close();
  } finally {
    await env.close();
  }
});

test("a v4 client that never sends CONNECT is closed after the connect timeout", async () => {
  const env = await setup({ env: { BRIDGE_CONNECT_TIMEOUT_MS: "300", BRIDGE_PING_INTERVAL_MS: "400" } });
  try {
    const socket = connect("v4", env.url, { autoConnect: false });
    socket.io.open();
    const [handshake] = await next(socket.io.engine, "handshake");
    assert.equal(handshake.pingInterval, 400, "ping interval comes from the config");
    await next(socket.io.engine, "close", 3000);
  } finally {
    await env.close();
  }
});

test("a v2 client forced to WebSocket works through the relay: query, acks, binary, emits, pings", async () => {
  const env = await setup({
    hooks: [{ events: ["*", "$connect"], reply: true }],
    handler: (req) => (req.json.type === "event" ? { body: { ack_args: req.json.args } } : {}),
    env: { BRIDGE_PING_INTERVAL_MS: "200", BRIDGE_PING_TIMEOUT_MS: "300" },
  });
  try {
    const key = await env.bridge.createKey(["/chat"]);
    const socket = await connected("v2", env.url, { query: { team: "red" }, transports: ["websocket"] });
    assert.equal(socket.io.engine.transport.name, "websocket");
    const ack = await emitWithAck(socket, "up", "a", Buffer.from([9, 8]));
    assert.equal(ack[0], "a");
    assert.ok(Buffer.from(ack[1]).equals(Buffer.from([9, 8])));
    assert.equal(env.receiver.events("connect")[0].json.handshake.query.team, "red");
    // Several ping round trips (a v2 client pings every 200 ms and gives up after 300 ms without
    // a pong): the relay keeps the connection alive.
    let pongs = 0;
    socket.io.engine.on("pong", () => (pongs += 1));
    await until(() => pongs >= 5, 10000, "five pongs");
    assert.ok(socket.connected);
    const news = next(socket, "news");
    const res = await env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "news", data: "fresh" });
    assert.equal(res.status, 200);
    assert.deepEqual(await news, ["fresh"]);
    socket.close();
  } finally {
    await env.close();
  }
});

test("a default v2 client keeps working after its upgrade from polling to WebSocket", async () => {
  const env = await setup({ hooks: [{ events: ["*"], reply: true }], handler: () => ({ body: { ack: "ok" } }) });
  try {
    const socket = await connected("v2", env.url, { query: { q: "1" } });
    await new Promise((resolve) => (socket.io.engine.transport.name === "websocket" ? resolve() : socket.io.engine.once("upgrade", resolve)));
    assert.deepEqual(await emitWithAck(socket, "after-upgrade"), ["ok"]);
    socket.close();
  } finally {
    await env.close();
  }
});

test("a PATCH of a namespace's auth applies to connections and authenticate events after its answer; sockets already connected keep their identity", async () => {
  const env = await setup({ auth: { ...jwt, timeout_ms: 20000 }, hooks: [{ events: ["*", "$connect"] }] });
  try {
    const before = await connected("v4", env.url, { auth: { token: await hsToken(SECRET, claims("before")) } });
    const waiting = await connected("v2", env.url); // no token: inert until it authenticates
    const patched = await env.bridge.admin("PATCH", `/admin/namespaces/${env.ns.id}`, { auth: { ...jwt, secret: "rotated-secret", timeout_ms: 20000 } });
    assert.equal(patched.status, 200, JSON.stringify(patched.body));

    // Right after the answer: the old secret is refused, the new one accepted.
    const refused = await connected("v4", env.url, { auth: { token: await hsToken(SECRET, claims("old")) } }).then(() => null, (e) => e.message);
    assert.equal(refused, "unauthorized", "a token of the old secret");
    const after = await connected("v4", env.url, { auth: { token: await hsToken("rotated-secret", claims("after")) } });
    // The socket that was waiting authenticates against the namespace as it is now.
    const authed = next(waiting, "authenticated");
    waiting.emit("authenticate", { token: await hsToken("rotated-secret", claims("waiting")) });
    assert.deepEqual(await authed, [{ user_id: "waiting" }]);

    // The socket connected before the change stays connected, with the identity it had.
    assert.deepEqual(await emitWithAck(before, "still-here", 1), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(after, "new-here", 2), [{ ok: true }]);
    assert.deepEqual(await emitWithAck(waiting, "late-here", 3), [{ ok: true }]);
    const users = Object.fromEntries(
      (await env.receiver.waitFor((r) => r.filter((d) => d.json?.type === "event").length === 3)).filter((d) => d.json?.type === "event").map((d) => [d.json.event, d.json.socket.user_id]),
    );
    assert.deepEqual(users, { "still-here": "before", "new-here": "after", "late-here": "waiting" });
    assert.ok(before.connected);

    // Auth removed: a socket without a token is active at once.
    const opened = await env.bridge.admin("PATCH", `/admin/namespaces/${env.ns.id}`, { auth: { mode: "none" } });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    const anonymous = await connected("v4", env.url);
    assert.deepEqual(await emitWithAck(anonymous, "anonymous", 4), [{ ok: true }], "not inert: the namespace has no auth now");
    for (const s of [before, waiting, after, anonymous]) s.close();
  } finally {
    await env.close();
  }
});
