// Hardening: answers that must hold under careless operators and hostile clients.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { Manager } from "socket.io-client";
import { WebSocket } from "ws";
import { once } from "node:events";
import { readFileSync, existsSync, statSync } from "node:fs";
import { startBridge, freshPostgres, freshSqlite, connected, setup, hsToken, until, sleep, emitWithAck, startReceiver, metric, deadEndpoint, next, onAnyEvent, rawClient, signedBy, startHangingServer } from "./harness.mjs";

// Dead endpoints the tests made, closed once the file is done.
const closeAfter = [];
after(() => closeAfter.forEach((e) => e.close()));

for (const [engine, fresh] of [["Postgres", freshPostgres], ["SQLite", freshSqlite]]) {
  test(`${engine}: the node that took an admin write serves it when it answers`, async () => {
    const bridge = await startBridge({ DATABASE_URL: fresh().url });
    try {
      for (let i = 0; i < 10; i++) {
        const name = `/fresh${i}`;
        await bridge.createNamespace({ name });
        // No wait: the 201 means this node accepts the namespace now.
        (await connected("v4", `${bridge.url}${name}`)).close();
        const key = await bridge.createKey([name]);
        const res = await bridge.v1("POST", "/v1/emit", key, { namespace: name, event: "e" });
        assert.equal(res.status, 200, `key ${i}: ${JSON.stringify(res.body)}`);
      }
    } finally {
      await bridge.stop();
    }
  });
}

test("a JWT namespace's token is redacted from $connect bodies and from stored deliveries", async () => {
  const secret = "redact-secret";
  const env = await setup({
    auth: { mode: "jwt", algorithm: "HS256", secret, timeout_ms: 5000 },
    hooks: [{ events: ["$connect"] }],
    // A 400 is final: the delivery is recorded as failed, with its body.
    handler: () => ({ status: 400 }),
  });
  try {
    const v4Token = await hsToken(secret, { sub: "alice" });
    const v2Token = await hsToken(secret, { sub: "bob" });
    const alice = await connected("v4", env.url, { auth: { token: v4Token, theme: "dark" } });
    const bob = await connected("v2", env.url, { query: { token: v2Token, team: "blue" } });
    await env.receiver.waitFor((r) => r.length >= 2);
    const byUser = Object.fromEntries(env.receiver.received.map((d) => [d.json.socket.user_id, d.json]));
    assert.equal(byUser.alice.handshake.auth.token, "[redacted]");
    assert.equal(byUser.alice.handshake.auth.theme, "dark", "the rest of the auth payload is kept");
    assert.equal(byUser.bob.handshake.query.token, "[redacted]");
    assert.equal(byUser.bob.handshake.query.team, "blue");
    for (const d of env.receiver.received) {
      assert.ok(!d.raw.includes(v4Token) && !d.raw.includes(v2Token), "no token in any body");
    }
    const stored = await until(async () => {
      const list = (await env.bridge.admin("GET", "/admin/deliveries?status=failed")).body.deliveries;
      return list.length >= 2 && list;
    }, 5000, "failed deliveries recorded");
    for (const { id } of stored) {
      const detail = await env.bridge.admin("GET", `/admin/deliveries/${id}`);
      assert.equal(detail.status, 200);
      const text = JSON.stringify(detail.body);
      assert.ok(text.includes("[redacted]") && !text.includes(v4Token) && !text.includes(v2Token), text);
    }
    alice.close();
    bob.close();
  } finally {
    await env.close();
  }
});

test("a failing webhook's credentials and query secrets appear in no log line and no stored attempt", async () => {
  const bridge = await startBridge();
  try {
    const ns = await bridge.createNamespace({ name: "/chat" });
    // An endpoint that cuts every connection: every attempt fails, then the delivery fails for good.
    const endpoint = await deadEndpoint();
    closeAfter.push(endpoint);
    const dead = new URL(endpoint.url).port;
    const url = `http://hookuser:hookpassword@127.0.0.1:${dead}/hook?token=querysecret`;
    const hook = await bridge.createWebhook(ns.id, { url, events: ["*"] });
    const socket = await connected("v4", `${bridge.url}/chat`);
    socket.emit("ping", 1);
    const [failed] = await until(async () => {
      const list = (await bridge.admin("GET", `/admin/deliveries?status=failed&webhook=${hook.id}`)).body.deliveries;
      return list.length > 0 && list;
    }, 20000, "the delivery fails for good");
    const detail = (await bridge.admin("GET", `/admin/deliveries/${failed.id}`)).body;
    assert.ok(detail.history.length >= 1 && detail.history.every((a) => a.error), JSON.stringify(detail.history));
    for (const text of [bridge.log(), JSON.stringify(detail)]) {
      assert.ok(!text.includes("hookpassword") && !text.includes("querysecret"), text.slice(-2000));
    }
    assert.match(bridge.log(), /webhook delivery failed/);
    assert.match(bridge.log(), new RegExp(`url=http://127\\.0\\.0\\.1:${dead}/hook\\?redacted`));
    socket.close();
  } finally {
    await bridge.stop();
  }
});

test("a reply that is not JSON, too large, or never finishes answers the ack with an error and is recorded", async () => {
  const stalled = [];
  const server = createHttpServer((req, res) => {
    let raw = "";
    req.on("data", (c) => (raw += c));
    req.on("end", () => {
      const body = JSON.parse(raw);
      res.writeHead(200, { "content-type": "application/json" });
      if (body.event === "junk") res.end("oops, not json");
      else if (body.event === "huge") res.end(JSON.stringify({ ack: "x".repeat(2 * 1024 * 1024) }));
      else if (body.event === "stall") {
        res.write('{"ack": ');
        stalled.push(res);
      } else if (body.event === "empty") res.end();
      else res.end(JSON.stringify({ ack: "fine" }));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const bridge = await startBridge();
  try {
    const ns = await bridge.createNamespace({ name: "/chat" });
    await bridge.createWebhook(ns.id, { url: `http://127.0.0.1:${server.address().port}/`, events: ["*"], reply: true, timeout_ms: 1000 });
    const socket = await connected("v4", `${bridge.url}/chat`);
    assert.deepEqual(await emitWithAck(socket, "ok"), ["fine"]);
    assert.deepEqual(await emitWithAck(socket, "empty"), [], "an empty 2xx body is an answer without arguments");
    for (const event of ["junk", "huge", "stall"]) {
      const [answer] = await emitWithAck(socket, event);
      assert.equal(answer?.error, "webhook_failed", `${event}: ${JSON.stringify(answer)}`);
    }
    const failed = await until(async () => {
      const list = (await bridge.admin("GET", "/admin/deliveries?status=failed")).body.deliveries;
      return list.length >= 3 && list;
    }, 5000, "three failures recorded");
    const errors = [];
    for (const { id } of failed) errors.push((await bridge.admin("GET", `/admin/deliveries/${id}`)).body.history.at(-1).error);
    assert.ok(errors.some((e) => /not a JSON object/.test(e)), errors.join(" | "));
    assert.ok(errors.some((e) => /larger than/.test(e)), errors.join(" | "));
    assert.ok(errors.some((e) => /reply body: timed out/.test(e)), errors.join(" | "));
    socket.close();
  } finally {
    for (const res of stalled) res.destroy();
    server.closeAllConnections();
    server.close();
    await bridge.stop();
  }
});

test("an event the bridge cannot decode is refused through its ack and never forwarded", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  try {
    const socket = await connected("v4", env.url);
    let deep = 1;
    for (let i = 0; i < 200; i++) deep = [deep];
    const [tooDeep] = await emitWithAck(socket, "deep", deep);
    assert.equal(tooDeep.error, "bad_event", JSON.stringify(tooDeep));
    assert.match(tooDeep.message, /recursion limit/);
    // A placeholder with no attachment behind it (the client sends it as plain JSON).
    const [placeholder] = await emitWithAck(socket, "fake", { _placeholder: true, num: 3 });
    assert.equal(placeholder.error, "bad_event", JSON.stringify(placeholder));
    assert.match(placeholder.message, /placeholder 3/);
    // The socket still works, and nothing unreadable reached the webhook.
    assert.deepEqual(await emitWithAck(socket, "fine", 1), [{ ok: true }]);
    await env.receiver.waitFor((r) => r.some((d) => d.json?.event === "fine"));
    assert.deepEqual(env.receiver.events().map((d) => d.json.event), ["fine"]);
    socket.close();
  } finally {
    await env.close();
  }
});

test("an emit larger than the clients' max payload is a 413, and no client is disconnected for it", async () => {
  const env = await setup({ env: { BRIDGE_MAX_PAYLOAD: "10000" } });
  try {
    const key = await env.bridge.createKey(["/chat"]);
    const v2 = await connected("v2", env.url, { transports: ["websocket"] });
    const v4 = await connected("v4", env.url, { transports: ["websocket"] });
    const got = { v2: [], v4: [] };
    v2.on("big", (d) => got.v2.push(d.length));
    v4.on("big", (d) => got.v4.push(d.length));
    const emit = (data) => env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "big", data });
    const refused = await emit("x".repeat(20000));
    assert.equal(refused.status, 413, JSON.stringify(refused.body));
    assert.equal(refused.body.error.code, "payload_too_large");
    assert.match(refused.body.error.message, /at most 10000/);
    const batch = await env.bridge.v1("POST", "/v1/emit/batch", key, {
      messages: [{ namespace: "/chat", event: "big", data: "y".repeat(20000) }, { namespace: "/chat", event: "big", data: "ok" }],
    });
    assert.equal(batch.body.results[0].error.code, "payload_too_large");
    assert.deepEqual(batch.body.results[1], { ok: true });
    assert.equal((await emit("z".repeat(5000))).status, 200);
    await until(() => got.v2.length === 2 && got.v4.length === 2, 3000, "both clients got the two small emits");
    assert.deepEqual(got.v4, [2, 5000]);
    assert.ok(v2.connected && v4.connected);
    v2.close();
    v4.close();
  } finally {
    await env.close();
  }
});

test("webhook destinations: metadata and unspecified addresses refused; private ones only when denied, at save and at send", async () => {
  const receiver = await startReceiver();
  const port = new URL(receiver.url).port;
  const open = await startBridge();
  const closed = await startBridge({ BRIDGE_WEBHOOK_DENY_PRIVATE: "true" });
  try {
    const nsOpen = await open.createNamespace({ name: "/chat" });
    for (const url of ["http://169.254.169.254/latest/meta-data", "http://[fd00:ec2::254]/", "http://0.0.0.0:1/", "http://[fe80::1]/"]) {
      const res = await open.admin("POST", `/admin/namespaces/${nsOpen.id}/webhooks`, { url, events: ["*"] });
      assert.equal(res.status, 400, url);
      assert.equal(res.body.error.code, "invalid_field");
      assert.match(res.body.error.message, /^url: destination not allowed/);
    }
    // Loopback in numeric form is loopback: allowed by default, and delivered.
    await open.createWebhook(nsOpen.id, { url: `http://2130706433:${port}/numeric`, events: ["*"] });
    const client = await connected("v4", `${open.url}/chat`);
    client.emit("hello", 1);
    await receiver.waitFor((r) => r.some((d) => d.path === "/numeric"));
    client.close();

    const nsClosed = await closed.createNamespace({ name: "/chat" });
    const refused = await closed.admin("POST", `/admin/namespaces/${nsClosed.id}/webhooks`, { url: receiver.url, events: ["*"] });
    assert.equal(refused.status, 400);
    assert.match(refused.body.error.message, /private or loopback/);
    // A host name is checked when it is resolved: saved, then refused at send time, for good.
    const named = await closed.createWebhook(nsClosed.id, { url: `http://localhost:${port}/named`, events: ["*"] });
    const other = await connected("v4", `${closed.url}/chat`);
    other.emit("hello", 2);
    const [failed] = await until(async () => {
      const list = (await closed.admin("GET", `/admin/deliveries?status=failed&webhook=${named.id}`)).body.deliveries;
      return list.length > 0 && list;
    }, 5000, "the delivery is refused");
    const detail = (await closed.admin("GET", `/admin/deliveries/${failed.id}`)).body;
    assert.equal(detail.history.length, 1, "not retried");
    assert.match(detail.history[0].error, /destination not allowed: localhost resolves to .* private or loopback/);
    assert.ok(!receiver.received.some((d) => d.path === "/named"));
    other.close();
  } finally {
    receiver.close();
    await open.stop();
    await closed.stop();
  }
});

/** A raw TCP connection to `url`'s host that sends `text` and reports when the server closes it. */
async function rawConnection(url, text) {
  const { hostname, port } = new URL(url);
  // Read before connecting (on the monotonic clock): the server's timers start after this.
  const opened = performance.now();
  const socket = tcpConnect(Number(port), hostname);
  await once(socket, "connect");
  let closedAt = null;
  let data = "";
  socket.on("data", (c) => (data += c));
  const closed = new Promise((resolve) => socket.once("close", () => resolve((closedAt = performance.now()))));
  socket.on("error", () => {});
  socket.write(text);
  /** How long it stayed open (so far, while open). */
  const lived = () => Math.round((closedAt ?? performance.now()) - opened);
  return { socket, closed, data: () => data, lived };
}

/** `promise`, or a rejection naming `what` after `ms`. */
function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms)));
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

test("slowloris: partial headers and idle keep-alive connections are closed; past the cap new connections are refused, counted and logged", async () => {
  const bridge = await startBridge({ BRIDGE_MAX_CONNECTIONS: "20", BRIDGE_HEADER_TIMEOUT_MS: "1000" });
  try {
    const partial = [];
    for (let i = 0; i < 20; i++) partial.push(await rawConnection(bridge.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    // The cap is taken: a new connection is closed at once, unanswered.
    const refused = await rawConnection(bridge.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await refused.closed;
    assert.equal(refused.data(), "");
    assert.ok((await metric(bridge, "bridge_connections_refused_total", { listener: "public" })) >= 1);
    assert.match(bridge.log(), /connection cap reached/);
    // The trickling clients are cut off after the header timeout (1 s), not before, and the
    // listener serves again. The wait is bounded well above the timeout: without one, they would
    // stay open for good.
    await within(Promise.all(partial.map((c) => c.closed)), 15000, "the partial requests closed by the header timeout");
    for (const c of partial) assert.ok(c.lived() >= 1000, `closed ${c.lived()} ms after it opened, before the header timeout`);
    assert.equal((await fetch(`${bridge.url}/healthz`)).status, 200);

    // An idle keep-alive connection is closed too, after answering its request.
    const idle = await rawConnection(bridge.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await idle.closed;
    assert.match(idle.data(), /^HTTP\/1.1 200/);
    // The admin listener has its own cap and is untouched.
    assert.equal((await fetch(`${bridge.adminUrl}/healthz`)).status, 200);
  } finally {
    await bridge.stop();
  }
});

test("WebSocket clients hold their connection slot until they close", async () => {
  const bridge = await startBridge({ BRIDGE_MAX_CONNECTIONS: "4" });
  try {
    await bridge.createNamespace({ name: "/chat" });
    const clients = [];
    for (let i = 0; i < 4; i++) clients.push(await connected("v4", `${bridge.url}/chat`, { transports: ["websocket"] }));
    assert.equal(await metric(bridge, "bridge_http_connections", { listener: "public" }), 4);
    const refused = await rawConnection(bridge.url, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    await refused.closed;
    assert.equal(refused.data(), "", "the fifth connection is refused while four WebSockets are open");
    clients.pop().close();
    await until(async () => (await metric(bridge, "bridge_http_connections", { listener: "public" })) === 3, 3000, "slot freed");
    const served = await rawConnection(bridge.url, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    await served.closed;
    assert.match(served.data(), /^HTTP\/1.1 200/);
    for (const c of clients) c.close();
  } finally {
    await bridge.stop();
  }
});

/** Resident memory of process `pid`, MiB. */
function rssMiB(pid) {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line.split(/\s+/)[1]) / 1024;
}

test("a hanging webhook holds at most its byte budget in memory; beyond it events are refused with queue_full", async (t) => {
  const hanging = await startHangingServer(); // never answers
  const bridge = await startBridge({ BRIDGE_QUEUE_WEBHOOK_BYTES: String(8 << 20), BRIDGE_QUEUE_TOTAL_BYTES: String(16 << 20) });
  try {
    const ns = await bridge.createNamespace({ name: "/chat" });
    await bridge.createWebhook(ns.id, { url: hanging.url, events: ["*"], timeout_ms: 60000 });
    const socket = await connected("v4", `${bridge.url}/chat`, { transports: ["websocket"] });
    const big = "x".repeat(900_000);
    const answers = [];
    const send = async (n) => {
      for (let i = 0; i < n; i++) answers.push((await emitWithAck(socket, "big", big))[0]);
    };
    // 100 events of 900 KB (90 MB offered), one at a time. The first 20 fill the budget and warm
    // up the buffers a 900 KB event passes through (what the allocator keeps of them is not the
    // queue); the memory is read after them, so the 80 refused ones are measured alone.
    await send(20);
    const warm = rssMiB(bridge.pid);
    await send(80);
    const accepted = answers.filter((a) => a.ok === true).length;
    const refused = answers.filter((a) => a.ok === false && a.error === "queue_full").length;
    assert.equal(accepted + refused, 100, JSON.stringify(answers.slice(-1)));
    assert.ok(accepted >= 8 && accepted <= 10, `accepted ${accepted}: 8 MiB of 900 KB messages (+1 in flight)`);
    assert.ok(answers.slice(20).every((a) => a.error === "queue_full"), "every event after the budget is refused");
    const queued = await metric(bridge, "bridge_webhook_queued_bytes");
    assert.ok(queued <= 8 << 20, `queued ${queued}`);
    assert.ok((await metric(bridge, "bridge_webhook_dropped_total", { reason: "queue_bytes" })) >= 80);
    // Kept, the 80 refused events would be 72 MB more; half of that is a margin no allocator
    // noise reaches.
    const grown = rssMiB(bridge.pid) - warm;
    t.diagnostic(`RSS ${warm.toFixed(1)} MiB after the warm-up, grew ${grown.toFixed(1)} MiB while 72 MB were refused`);
    assert.ok(grown < 36, `RSS grew ${grown.toFixed(1)} MiB while 72 MB were refused`);
    socket.close();
  } finally {
    hanging.close();
    await bridge.stop();
  }
});

for (const version of ["v4", "v2"]) test(`a ${version} WebSocket client that stops reading is disconnected after the write timeout; the others go on`, async () => {
  const env = await setup({ hooks: [{ events: ["$disconnect"] }], env: { BRIDGE_WRITE_TIMEOUT_MS: "2000" } });
  try {
    const key = await env.bridge.createKey(["/chat"]);
    // A v2 client goes through the relay: its stuck writes are the relay's, to the client.
    const stuck = await connected(version, env.url, { transports: ["websocket"] });
    const healthy = await connected(version, env.url, { transports: ["websocket"] });
    const stuckId = stuck.id.split("#").pop();
    let healthyGot = 0;
    healthy.on("flood", () => healthyGot++);
    // The stuck client stops reading its TCP stream: the bridge's writes to it soon wait for room.
    stuck.io.engine.transport.ws._socket.pause();
    const listed = async () => (await env.bridge.v1("GET", "/v1/sockets?namespace=/chat", key)).body.sockets.map((s) => s.id);
    const chunk = "y".repeat(200_000);
    let rounds = 0;
    // Bounded: at most 300 emits of 200 KB (60 MB), or until the stuck socket is gone (the bound
    // in rounds, not time: a loaded machine only makes it slower, a broken timeout still fails).
    while (rounds < 300 && (await listed()).includes(stuckId)) {
      const res = await env.bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "flood", data: chunk });
      assert.equal(res.status, 200);
      rounds++;
      await sleep(20); // pacing between emits, not a check
    }
    assert.ok(!(await listed()).includes(stuckId), `still listed after ${rounds} emits`);
    assert.ok((await metric(env.bridge, "bridge_slow_readers_closed_total", { listener: "public" })) >= 1);
    await env.receiver.waitFor((r) => r.some((d) => d.json?.type === "disconnect" && d.json.socket.id === stuckId), 10000);
    assert.ok(healthy.connected);
    await until(() => healthyGot === rounds, 5000, "the healthy client got every emit");
    healthy.close();
    stuck.close();
  } finally {
    await env.close();
  }
});

test("failures of large events to a dead endpoint are recorded without their bodies: the store stays small", async () => {
  const db = freshSqlite();
  const bridge = await startBridge({ DATABASE_URL: db.url });
  try {
    const ns = await bridge.createNamespace({ name: "/chat" });
    // A reply webhook answers acks: each event is tried once and recorded as failed at once.
    const dead = await deadEndpoint();
    closeAfter.push(dead);
    await bridge.createWebhook(ns.id, { url: dead.url, events: ["*"], reply: true });
    const socket = await connected("v4", `${bridge.url}/chat`, { transports: ["websocket"] });
    const big = "z".repeat(900_000);
    for (let i = 0; i < 60; i++) {
      const [answer] = await emitWithAck(socket, "big", big);
      assert.equal(answer.error, "webhook_failed");
    }
    // 54 MB offered; the failure log keeps at most 64 KiB of body per delivery (these: none).
    const list = await until(async () => {
      const res = await fetch(`${bridge.adminUrl}/admin/deliveries?status=failed&limit=1000`, { headers: { authorization: `Bearer ${bridge.token}` } });
      const text = await res.text();
      return JSON.parse(text).deliveries.length === 60 && text;
    }, 10000, "sixty failures recorded");
    assert.ok(list.length < 100_000, `listing is ${list.length} bytes`);
    const [first] = JSON.parse(list).deliveries;
    assert.ok(first.size > 900_000);
    const detail = (await bridge.admin("GET", `/admin/deliveries/${first.id}`)).body;
    assert.equal(detail.payload, null);
    const retry = await bridge.admin("POST", `/admin/deliveries/${first.id}/retry`);
    assert.equal(retry.status, 409);
    assert.match(retry.body.error.message, /too large to keep/);
    const path = db.url.replace("sqlite://", "");
    const bytes = [path, `${path}-wal`].filter(existsSync).reduce((n, p) => n + statSync(p).size, 0);
    assert.ok(bytes < 10 * 1024 * 1024, `store files hold ${bytes} bytes`);
    socket.close();
  } finally {
    await bridge.stop();
  }
});

test("a socket that never authenticates takes its WebSocket connection with it, unless the connection has other sockets", async () => {
  const env = await setup({ auth: { mode: "jwt", algorithm: "HS256", secret: "timeout-secret", timeout_ms: 500 } });
  try {
    await env.bridge.createNamespace({ name: "/open" });
    // A raw Engine.IO client of /chat alone that answers pings and never closes by itself (a
    // hostile one would not); resolves with its frames once the bridge closes its connection.
    const lone = () => {
      const raw = new WebSocket(`${env.bridge.url.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
      const frames = [];
      raw.on("message", (data) => {
        const text = data.toString();
        frames.push(text);
        if (text === "2") raw.send("3");
        if (text.startsWith("0{")) raw.send("40/chat,");
      });
      // The 500 ms authentication timeout and the 200 ms before the close, bounded with room to spare.
      return within(new Promise((resolve) => raw.once("close", () => resolve(frames))), 5000, "a lone socket's connection closed");
    };
    const frames = await lone();
    assert.ok(frames.some((f) => f.startsWith('42/chat,["authenticate_failed"')), frames.join(" | "));

    // Multiplexed with another namespace: only the timed-out socket goes, the connection stays.
    const manager = new Manager(env.bridge.url, { transports: ["websocket"], reconnection: false });
    const chat = manager.socket("/chat");
    const open = manager.socket("/open");
    await Promise.all([once(chat, "connect"), once(open, "connect")]);
    await next(chat, "authenticate_failed", 5000);
    // A lone socket that times out now has its connection closed (200 ms after its timeout) a
    // good 500 ms after this connection would have been: once it is, this one was kept.
    await lone();
    const key = await env.bridge.createKey(["/open"]);
    const reached = next(open, "still-here", 5000);
    assert.equal((await env.bridge.v1("POST", "/v1/emit", key, { namespace: "/open", event: "still-here" })).status, 200);
    await reached;
    assert.ok(open.connected, "the other namespace's socket stays connected");
    assert.equal(manager.engine.readyState, "open");
    chat.close();
    open.close();
  } finally {
    await env.close();
  }
});

test("a reply's emit larger than the clients' max payload is dropped and counted; the client stays connected", async () => {
  const env = await setup({
    env: { BRIDGE_MAX_PAYLOAD: "10000" },
    hooks: [{ events: ["ask"], reply: true }],
    handler: () => ({ body: { ack: "ok", emit: [{ event: "big", data: "x".repeat(20000) }, { event: "small", data: "fits" }] } }),
  });
  try {
    const v2 = await connected("v2", env.url, { transports: ["websocket"] });
    const got = [];
    onAnyEvent(v2, (event) => got.push(event));
    assert.deepEqual(await emitWithAck(v2, "ask", 1), ["ok"]);
    await until(() => got.includes("small"), 3000, "the small emit arrives");
    assert.deepEqual(got, ["small"]);
    assert.ok(v2.connected);
    assert.equal(await metric(env.bridge, "bridge_emits_total", { outcome: "too_large" }), 1);
    v2.close();
  } finally {
    await env.close();
  }
});

test("a binary packet's attachments are bounded by count, by bytes (the max payload) and by time", async () => {
  const env = await setup({ hooks: [{ events: ["*", "$disconnect"] }], env: { BRIDGE_MAX_PAYLOAD: "100000" } });
  const placeholders = (n) => Array.from({ length: n }, (_, num) => ({ _placeholder: true, num }));
  const packet = (id, event, n) => `45${n}-/chat,${id}${JSON.stringify([event, ...placeholders(n)])}`;
  try {
    // More than 256 attachments announced: closed at once.
    let raw = await rawClient(env.bridge.url, "/chat");
    raw.send(packet(1, "many", 257));
    await raw.waitClosed();

    // Two attachments of 60 KB: each under the max payload, together over it.
    raw = await rawClient(env.bridge.url, "/chat");
    raw.send(packet(2, "heavy", 2));
    raw.send(Buffer.alloc(60000, 1));
    raw.send(Buffer.alloc(60000, 2));
    await raw.waitClosed();

    // The second attachment arrives after the 10 s completion timeout (the stimulus, not a
    // check: the packet must be kept waiting past the bound).
    raw = await rawClient(env.bridge.url, "/chat");
    raw.send(packet(3, "late", 2));
    raw.send(Buffer.alloc(10, 3));
    await sleep(10500);
    raw.send(Buffer.alloc(10, 4));
    await raw.waitClosed();

    // Within every bound: forwarded, with both attachments.
    raw = await rawClient(env.bridge.url, "/chat");
    raw.send(packet(4, "fits", 2));
    raw.send(Buffer.alloc(40000, 5));
    raw.send(Buffer.alloc(40000, 6));
    await raw.waitFor((f) => f.some((x) => x.startsWith("43/chat,4[")));
    // A socket's deliveries go out in order: each refused socket's `$disconnect` comes after
    // anything it forwarded, so once the three are in, a refused packet would have shown up.
    await env.receiver.waitFor((r) => r.filter((d) => d.json?.type === "disconnect").length === 3 && r.some((d) => d.json?.event === "fits"), 10000);
    assert.deepEqual(env.receiver.events().map((d) => d.json.event), ["fits"]);
    const [a, b] = env.receiver.events()[0].json.args;
    assert.equal(Buffer.from(a.$binary, "base64").length, 40000);
    assert.equal(Buffer.from(b.$binary, "base64")[0], 6);
    raw.close();
  } finally {
    await env.close();
  }
});

test("BRIDGE_SECRETS_KEY seals webhook and JWT secrets in the store; without it they cannot be read; rotation reseals", async () => {
  const db = freshSqlite();
  const file = db.url.slice("sqlite://".length);
  const keyA = Buffer.alloc(32, 7).toString("base64");
  const keyB = Buffer.alloc(32, 9).toString("base64");
  const receiver = await startReceiver();
  const onDisk = () => ["", "-wal"].map((s) => (existsSync(file + s) ? readFileSync(file + s).toString("latin1") : "")).join("");
  let bridge = await startBridge({ DATABASE_URL: db.url, BRIDGE_SECRETS_KEY: keyA });
  let hook;
  try {
    const ns = await bridge.createNamespace({ name: "/sealed", auth: { mode: "jwt", algorithm: "HS256", secret: "jwt-shared-secret-123" } });
    hook = await bridge.createWebhook(ns.id, { url: receiver.url, events: ["*"] });
    assert.match(bridge.log(), /secrets in the store are sealed/);
  } finally {
    await bridge.stop();
  }
  assert.ok(!onDisk().includes(hook.secret.slice(6)), "the webhook secret is not on disk");
  assert.ok(!onDisk().includes("jwt-shared-secret-123"), "the JWT secret is not on disk");
  assert.ok(onDisk().includes("sealed:v1:"));

  // Without the key the bridge refuses to start rather than serve without its secrets.
  await assert.rejects(startBridge({ DATABASE_URL: db.url }), /exited with 1:[\s\S]*sealed with key [0-9a-f]{8}, which is not configured/);
  // A malformed key is a configuration error.
  await assert.rejects(startBridge({ DATABASE_URL: db.url, BRIDGE_SECRETS_KEY: "short" }), /exited with 2/);

  // Rotation: B current, A old; everything still works, then B alone suffices.
  bridge = await startBridge({ DATABASE_URL: db.url, BRIDGE_SECRETS_KEY: keyB, BRIDGE_SECRETS_OLD_KEYS: keyA });
  await bridge.stop();
  bridge = await startBridge({ DATABASE_URL: db.url, BRIDGE_SECRETS_KEY: keyB });
  try {
    const token = await hsToken("jwt-shared-secret-123", { sub: "sealed-user" });
    const socket = await connected("v4", `${bridge.url}/sealed`, { auth: { token } });
    assert.deepEqual(await emitWithAck(socket, "hello", 1), [{ ok: true }]);
    const [delivery] = await receiver.waitFor((r) => r.length === 1);
    assert.ok(signedBy(hook.secret, delivery), "signed with the secret given at creation");
    socket.close();
  } finally {
    receiver.close();
    await bridge.stop();
  }
  await assert.rejects(startBridge({ DATABASE_URL: db.url, BRIDGE_SECRETS_KEY: keyA }), /exited with 1/, "resealed: A alone no longer opens them");
});

test("a WebSocket upgrade socketioxide refuses gets its answer, for v4 and (through the v2 relay) v2 clients", async () => {
  const bridge = await startBridge();
  try {
    const { request } = await import("node:http");
    const upgrade = (eio) =>
      new Promise((resolve, reject) => {
        const req = request(`${bridge.url}/socket.io/?EIO=${eio}&transport=carrier-pigeon`, {
          headers: { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
        });
        req.on("upgrade", (res, socket) => (socket.destroy(), resolve({ status: res.statusCode })));
        req.on("response", async (res) => {
          let body = "";
          for await (const chunk of res) body += chunk;
          resolve({ status: res.statusCode, body });
        });
        req.on("error", reject);
        req.end();
      });
    const v4 = await upgrade(4);
    const v2 = await upgrade(3);
    assert.ok(v4.status >= 400 && v4.status < 500, JSON.stringify(v4));
    assert.deepEqual(v2, v4, "the relay passes socketioxide's answer on");
  } finally {
    await bridge.stop();
  }
});

test("room joins are bounded: names of at most 256 bytes, 1,000 rooms per socket; the API answers 400, other joins past a bound are refused and counted", async () => {
  const bridge = await startBridge();
  const sockets = [];
  try {
    const SECRET = "room-bounds-secret";
    await bridge.createNamespace({ name: "/bounded", auth: { mode: "jwt", algorithm: "HS256", secret: SECRET } });
    const key = await bridge.createKey(["/bounded"]);
    const v1 = (method, path, body) => bridge.v1(method, path, key, body && { namespace: "/bounded", ...body });
    const long = "r".repeat(257);
    const roomsOf = async (user) => {
      const listed = await v1("GET", `/v1/sockets?namespace=/bounded&user=${user}`);
      assert.equal(listed.status, 200, JSON.stringify(listed.body));
      return listed.body.sockets[0].rooms;
    };

    // A token's room with a long name is refused; its other room is joined.
    const token = await hsToken(SECRET, { sub: "carol", rooms: ["fits", long] });
    sockets.push(await connected("v4", `${bridge.url}/bounded`, { auth: { token } }));
    const carolRooms = await roomsOf("carol");
    assert.ok(carolRooms.includes("fits"), JSON.stringify(carolRooms));
    assert.ok(!carolRooms.includes(long), "the long room was not joined");
    assert.equal(await metric(bridge, "bridge_room_joins_refused_total", { reason: "name_too_long" }), 1);

    // The API refuses a long name, and more names than a socket may be in, with the field named.
    const longJoin = await v1("POST", "/v1/join", { users: ["carol"], join: ["a", long] });
    assert.equal(longJoin.status, 400);
    assert.equal(longJoin.body.error.code, "invalid_field");
    assert.match(longJoin.body.error.message, /join\[1\].*at most 256 bytes/);
    const names = Array.from({ length: 1000 }, (_, i) => `room-${i}`);
    const tooMany = await v1("POST", "/v1/join", { users: ["dave"], join: [...names, "one-more"] });
    assert.equal(tooMany.status, 400);
    assert.match(tooMany.body.error.message, /at most 1000 rooms/);

    // A socket in 1,000 rooms joins no more (the API cannot tell for sockets of other nodes);
    // leaving one makes room.
    sockets.push(await connected("v4", `${bridge.url}/bounded`, { auth: { token: await hsToken(SECRET, { sub: "dave" }) } }));
    assert.equal((await v1("POST", "/v1/join", { users: ["dave"], join: names })).status, 200);
    assert.equal((await v1("POST", "/v1/join", { users: ["dave"], join: ["extra"] })).status, 200);
    let daveRooms = await roomsOf("dave");
    assert.ok(!daveRooms.includes("extra"), "past the limit");
    assert.equal(daveRooms.filter((r) => r.startsWith("room-")).length, 1000);
    assert.equal(await metric(bridge, "bridge_room_joins_refused_total", { reason: "socket_room_limit" }), 1);
    assert.equal((await v1("POST", "/v1/leave", { users: ["dave"], leave: ["room-0"] })).status, 200);
    assert.equal((await v1("POST", "/v1/join", { users: ["dave"], join: ["extra"] })).status, 200);
    daveRooms = await roomsOf("dave");
    assert.ok(daveRooms.includes("extra") && !daveRooms.includes("room-0"), "room made by leaving");
  } finally {
    for (const s of sockets) s.close();
    await bridge.stop();
  }
});
