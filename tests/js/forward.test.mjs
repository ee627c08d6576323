// SPEC 5 forwarding with the official clients: bodies, signatures, acks, replies, order, lifecycle.

import { test } from "node:test";
import assert from "node:assert/strict";
import { setup, connect, connected, next, emitWithAck, verifySignature, signedBy, hsToken, sleep, rawClient, until, freePort, startHangingServer } from "./harness.mjs";

const BOTH = ["v4", "v2"];

test("$-names and Socket.IO's reserved names are never forwarded, even to a * webhook; their acks say reserved_event", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  try {
    // The official clients refuse to emit reserved names, so a raw client sends them.
    const raw = await rawClient(env.bridge.url, "/chat");
    raw.send('42/chat,1["$internal",1]');
    raw.send('42/chat,2["disconnecting",1]');
    raw.send('42/chat,3["newListener",1]');
    raw.send('42/chat,4["allowed",1]');
    await raw.waitFor((f) => ["1", "2", "3", "4"].every((id) => f.some((x) => x.startsWith(`43/chat,${id}[`))));
    const ack = (id) => JSON.parse(raw.frames.find((x) => x.startsWith(`43/chat,${id}[`)).slice(`43/chat,${id}`.length));
    for (const id of ["1", "2", "3"]) assert.deepEqual(ack(id), [{ error: "reserved_event" }], `ack ${id}`);
    assert.deepEqual(ack("4"), [{ ok: true }]);
    // "allowed" was sent last, on the same socket: one queue per (socket, webhook) delivers in
    // order, so a reserved name forwarded before it would have arrived first.
    await env.receiver.waitFor((r) => r.some((d) => d.json?.event === "allowed"));
    assert.deepEqual(env.receiver.events().map((d) => d.json.event), ["allowed"]);
    raw.close();
  } finally {
    await env.close();
  }
});

test("every event goes out signed (standardwebhooks verifies it) with the SPEC 5 body", async () => {
  const env = await setup({ hooks: [{ events: ["chat:*"] }, { events: ["other"] }] });
  try {
    const socket = await connected("v4", env.url, { auth: { app: "web" } });
    socket.emit("chat:message", "hello", { x: 1 }, [1, 2]);
    socket.emit("ignored", 1);
    socket.emit("$internal", 1);
    // Markers sent last, one per webhook: each (socket, webhook) queue delivers in order, so
    // whatever went to a webhook before its marker has arrived by then.
    socket.emit("chat:end");
    socket.emit("other");
    await env.receiver.waitFor((r) => r.length >= 3);
    const to = (hook) => env.receiver.received.filter((d) => signedBy(hook.secret, d)).map((d) => d.json.event);
    assert.deepEqual(to(env.webhooks[0]), ["chat:message", "chat:end"], "only the matching events, never $-names");
    assert.deepEqual(to(env.webhooks[1]), ["other"]);
    assert.equal(env.receiver.received.length, 3);
    const delivery = env.receiver.received.find((d) => d.json.event === "chat:message");
    assert.deepEqual(verifySignature(env.webhooks[0].secret, delivery), delivery.json);
    assert.match(delivery.headers["webhook-id"], /^msg_/);
    assert.match(delivery.headers["user-agent"], /^bridge\//);
    assert.equal(delivery.headers["content-type"], "application/json");
    const body = delivery.json;
    assert.equal(body.type, "event");
    assert.equal(body.namespace, "/chat");
    assert.equal(body.event, "chat:message");
    assert.deepEqual(body.args, ["hello", { x: 1 }, [1, 2]]);
    assert.equal(body.ack, false);
    assert.equal(body.socket.id, socket.id);
    assert.equal(body.socket.user_id, null);
    assert.deepEqual(body.socket.rooms, [socket.id]);
    assert.match(body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    socket.close();
  } finally {
    await env.close();
  }
});

test("after a secret rotation each delivery carries two signatures, each verifiable", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  try {
    const old = env.webhooks[0].secret;
    const rotated = await env.bridge.admin("POST", `/admin/webhooks/${env.webhooks[0].id}/rotate-secret`);
    assert.equal(rotated.status, 200);
    const socket = await connected("v4", env.url);
    socket.emit("x", 1);
    const [delivery] = await env.receiver.waitFor((r) => r.length === 1);
    assert.equal(delivery.headers["webhook-signature"].split(" ").length, 2);
    assert.ok(verifySignature(old, delivery), "the old secret still verifies");
    assert.ok(verifySignature(rotated.body.secret, delivery), "the new secret verifies");
    socket.close();
  } finally {
    await env.close();
  }
});

test("binary arguments arrive as {$binary: base64} and round-trip through a reply", async () => {
  const env = await setup({
    hooks: [{ events: ["*"], reply: true }],
    handler: (req) => ({ body: { ack_args: req.json.args, emit: [{ event: "echo", args: req.json.args }] } }),
  });
  try {
    for (const version of BOTH) {
      const socket = await connected(version, env.url);
      const echoed = next(socket, "echo");
      const bytes = Buffer.from([0, 1, 2, 250, 255]);
      const ack = await emitWithAck(socket, "upload", "name.bin", bytes, { nested: Buffer.from("hi") });
      const body = env.receiver.events().at(-1).json;
      assert.deepEqual(body.args, ["name.bin", { $binary: bytes.toString("base64") }, { nested: { $binary: "aGk=" } }]);
      assert.equal(body.ack, true);
      for (const args of [ack, await echoed]) {
        assert.equal(args[0], "name.bin");
        assert.ok(Buffer.from(args[1]).equals(bytes), `${version}: binary comes back as binary`);
        assert.equal(Buffer.from(args[2].nested).toString(), "hi");
      }
      socket.close();
    }
  } finally {
    await env.close();
  }
});

test("acks: a reply's ack or ack_args, {ok: true} without a reply webhook, webhook_failed on errors", async () => {
  const env = await setup({
    hooks: [
      { events: ["plain"] },
      { events: ["one", "many", "none", "fails", "slow"], reply: true, timeout_ms: 300 },
    ],
    handler: (req) => {
      switch (req.json?.event) {
        case "one":
          return { body: { ack: { got: req.json.args[0] } } };
        case "many":
          return { body: { ack_args: [1, "two", null] } };
        case "fails":
          return { status: 500, body: { oops: true } };
        case "slow":
          return { delayMs: 1000 };
        default:
          return { body: {} };
      }
    },
  });
  try {
    for (const version of BOTH) {
      const socket = await connected(version, env.url);
      assert.deepEqual(await emitWithAck(socket, "one", 7), [{ got: 7 }]);
      assert.deepEqual(await emitWithAck(socket, "many"), [1, "two", null]);
      assert.deepEqual(await emitWithAck(socket, "plain", 1), [{ ok: true }]);
      assert.deepEqual(await emitWithAck(socket, "unmatched"), [{ ok: true }]);
      assert.deepEqual(await emitWithAck(socket, "fails"), [{ error: "webhook_failed", status: 500 }]);
      assert.deepEqual(await emitWithAck(socket, "slow"), [{ error: "webhook_failed", status: null }]);
      socket.close();
    }
    const fails = env.receiver.events().filter((d) => d.json.event === "fails");
    assert.equal(fails.length, 2, "a reply delivery is tried once: the client is waiting");
  } finally {
    await env.close();
  }
});

test("replies join and leave rooms and emit back, in order, after the ack", async () => {
  const env = await setup({
    hooks: [{ events: ["*"], reply: true }],
    handler: (req) =>
      req.json.event === "enter"
        ? { body: { ack: "joined", join: ["lobby", "team"], emit: [{ event: "m", data: 1 }, { event: "m", data: 2 }, { event: "m", args: [3, 4] }] } }
        : req.json.event === "exit"
          ? { body: { leave: ["team"] } }
          : { body: {} },
  });
  try {
    for (const version of BOTH) {
      const socket = await connected(version, env.url);
      // One log for the ack and the emits, written by the client's own callbacks: the order of
      // arrival, not of promise resolution.
      const log = [];
      socket.on("m", (...args) => log.push(["m", ...args]));
      socket.emit("enter", (...args) => log.push(["ack", ...args]));
      await until(() => log.length >= 4, 5000, "the ack and three emits");
      assert.deepEqual(log, [["ack", "joined"], ["m", 1], ["m", 2], ["m", 3, 4]]);
      await emitWithAck(socket, "look");
      let rooms = env.receiver.events().at(-1).json.socket.rooms;
      assert.ok(rooms.includes("lobby") && rooms.includes("team"), JSON.stringify(rooms));
      await emitWithAck(socket, "exit");
      await emitWithAck(socket, "look");
      rooms = env.receiver.events().at(-1).json.socket.rooms;
      assert.ok(rooms.includes("lobby") && !rooms.includes("team"), JSON.stringify(rooms));
      socket.close();
    }
  } finally {
    await env.close();
  }
});

test("100 fire-and-forget events reach each webhook in the order sent", async () => {
  let n = 0;
  // Requests open at once per (socket, webhook): the bridge must wait for an answer before it
  // sends the socket's next event to the same webhook.
  const open = new Map();
  let mostOpen = 0;
  const env = await setup({
    hooks: [{ events: ["*"] }, { events: ["seq"], reply: true }],
    handler: async (req) => {
      // Set once setup returns, before the first event is sent.
      const key = `${req.json.socket.id} ${env.webhooks.findIndex((h) => signedBy(h.secret, req))}`;
      open.set(key, (open.get(key) ?? 0) + 1);
      mostOpen = Math.max(mostOpen, open.get(key));
      // Uneven answer times: a concurrent dispatcher would reorder them and overlap requests.
      if (n++ % 7 === 0) await sleep(15);
      open.set(key, open.get(key) - 1);
      return {};
    },
  });
  try {
    for (const version of BOTH) {
      const socket = await connected(version, env.url);
      for (let i = 0; i < 100; i++) socket.emit("seq", i);
      await env.receiver.waitFor((r) => r.filter((d) => d.json?.socket?.id === (socket.id.split("#").pop())).length === 200, 15000);
      const mine = env.receiver.events().filter((d) => d.json.socket.id === socket.id.split("#").pop());
      for (const hook of env.webhooks) {
        const order = mine.filter((d) => signedBy(hook.secret, d)).map((d) => d.json.args[0]);
        assert.deepEqual(order, [...Array(100).keys()], `${version}: order to webhook ${hook.id}`);
      }
      assert.equal(mostOpen, 1, `${version}: at most one request in flight per (socket, webhook)`);
      socket.close();
    }
  } finally {
    await env.close();
  }
});

test("$connect carries the handshake; a reply may name the user, join rooms and emit", async () => {
  const env = await setup({
    hooks: [{ events: ["$connect"], reply: true }, { events: ["*", "$connect", "$disconnect"] }],
    handler: (req) =>
      req.json.type === "connect" && req.json.handshake.auth?.name
        ? { body: { user_id: `named-${req.json.handshake.auth.name}`, join: ["welcome"], emit: [{ event: "hi", data: "there" }] } }
        : {},
  });
  try {
    const s = connect("v4", `${env.url}?tenant=acme`, { auth: { name: "ann" }, extraHeaders: { origin: "http://app.test" } });
    // Listening before the connection completes: the reply's emit comes right after CONNECT.
    const hi = next(s, "hi", 5000);
    await next(s, "connect", 5000);
    assert.deepEqual(await hi, ["there"], "the $connect reply's emit reached the client");
    const id = s.id;
    s.emit("said", 1);
    await env.receiver.waitFor((r) => r.some((d) => d.json?.event === "said"));
    const connects = env.receiver.events("connect");
    assert.equal(connects.length, 2, "the gate and the plain subscriber");
    const hs = connects[0].json.handshake;
    assert.deepEqual(hs.auth, { name: "ann" });
    assert.equal(hs.query.tenant, "acme");
    assert.equal(hs.headers.origin, "http://app.test");
    assert.match(hs.address, /^127\.0\.0\.1:\d+$/);
    const said = env.receiver.events().find((d) => d.json.event === "said").json;
    assert.equal(said.socket.user_id, "named-ann");
    assert.ok(said.socket.rooms.includes("welcome") && said.socket.rooms.includes("user:named-ann"));

    s.close();
    const [gone] = (await env.receiver.waitFor((r) => r.some((d) => d.json?.type === "disconnect"))).filter((d) => d.json?.type === "disconnect");
    assert.equal(gone.json.socket.id, id);
    assert.equal(said.socket.id, id);
    assert.equal(typeof gone.json.reason, "string");
    assert.ok(gone.json.reason.length > 0);
  } finally {
    await env.close();
  }
});

test("$connect bodies show only the origin and user-agent of the handshake headers: never cookies or credentials", async () => {
  const env = await setup({ hooks: [{ events: ["$connect"] }] });
  try {
    const extraHeaders = {
      origin: "http://app.test",
      "user-agent": "tests/1.0",
      cookie: "session=s3cr3t-cookie",
      authorization: "Bearer s3cr3t-header-token",
      "accept-language": "fr",
      "x-forwarded-for": "203.0.113.9",
      "x-custom": "custom-value",
    };
    for (const [version, transports] of [["v4", ["polling"]], ["v4", ["websocket"]], ["v2", ["polling"]]]) {
      const socket = await connected(version, env.url, { extraHeaders, transports });
      const sid = socket.id.split("#").pop();
      const [hello] = (await env.receiver.waitFor((r) => r.some((d) => d.json?.socket?.id === sid))).filter((d) => d.json?.socket?.id === sid);
      const label = `${version} ${transports[0]}`;
      assert.deepEqual(hello.json.handshake.headers, { origin: "http://app.test", "user-agent": "tests/1.0" }, `${label}: exactly these headers`);
      for (const secret of ["s3cr3t-cookie", "s3cr3t-header-token", "custom-value", "203.0.113.9"]) {
        assert.ok(!hello.raw.includes(secret), `${label}: ${secret} is not in the body`);
      }
      socket.close();
    }
  } finally {
    await env.close();
  }
});

test("a $connect reply webhook refuses with forbidden on a non-2xx answer", async () => {
  const env = await setup({
    hooks: [{ events: ["$connect"], reply: true }],
    handler: (req) => (req.json.handshake.auth?.pass === "ok" ? {} : { status: 403 }),
  });
  try {
    await assert.rejects(connected("v4", env.url, { auth: { pass: "no" } }), { message: "forbidden" });
    const err = await connected("v2", env.url).then(() => null, (e) => e);
    assert.deepEqual(err, { message: "forbidden" });
    const ok = await connected("v4", env.url, { auth: { pass: "ok" } });
    ok.close();
  } finally {
    await env.close();
  }
});

test("an echo backend made of replies alone acts as a Socket.IO server", async () => {
  const env = await setup({
    auth: { mode: "jwt", algorithm: "HS256", secret: "s" },
    hooks: [{ events: ["*"], reply: true }],
    handler: (req) => ({ body: { ack_args: req.json.args, emit: [{ event: `${req.json.event}:echo`, args: req.json.args }] } }),
  });
  try {
    const token = await hsToken("s", { sub: "echo-user" });
    for (const version of BOTH) {
      const socket = await connected(version, env.url, version === "v4" ? { auth: { token } } : { query: { token } });
      const echo = next(socket, "ask:echo");
      assert.deepEqual(await emitWithAck(socket, "ask", "q", 1, { deep: [true] }), ["q", 1, { deep: [true] }]);
      assert.deepEqual(await echo, ["q", 1, { deep: [true] }]);
      socket.close();
    }
  } finally {
    await env.close();
  }
});

test("events sent the instant a socket connects are all forwarded", async () => {
  const env = await setup({ hooks: [{ events: ["*"] }] });
  const sockets = [];
  try {
    for (const version of BOTH) {
      for (let i = 0; i < 40; i++) {
        const socket = connect(version, env.url);
        // Emitted from inside the `connect` callback: the earliest moment a client can.
        socket.on("connect", () => socket.emit("first", `${version}-${i}`));
        sockets.push(socket);
      }
    }
    await env.receiver.waitFor((r) => r.length === sockets.length, 8000);
    const got = new Set(env.receiver.events().map((d) => d.json.args[0]));
    assert.equal(got.size, sockets.length);
  } finally {
    for (const socket of sockets) socket.close();
    await env.close();
  }
});

test("a $connect gate that times out or cannot be reached refuses with forbidden", async () => {
  const hanging = await startHangingServer(); // never answers
  const env = await setup({
    hooks: [{ events: ["$connect"], reply: true, url: hanging.url, timeout_ms: 300 }],
  });
  try {
    const dead = await env.bridge.createNamespace({ name: "/dead" });
    await env.bridge.createWebhook(dead.id, { url: `http://127.0.0.1:${await freePort()}/`, events: ["$connect"], reply: true });
    for (const version of BOTH) {
      // The 300 ms timeout answers well before the client's own 5 s connect wait.
      assert.deepEqual(await connected(version, env.url).then(() => null, (e) => e.message ?? e), "forbidden", `${version}: timeout`);
      const refused = await connected(version, `${env.bridge.url}/dead`).then(() => null, (e) => e.message ?? e);
      assert.equal(refused, "forbidden", `${version}: connection refused`);
    }
  } finally {
    hanging.close();
    await env.close();
  }
});

test("a $connect reply may leave rooms the token gave", async () => {
  const env = await setup({
    auth: { mode: "jwt", algorithm: "HS256", secret: "s" },
    hooks: [{ events: ["$connect"], reply: true }, { events: ["look"] }],
    handler: (req) => (req.json.type === "connect" ? { body: { leave: ["banned"], join: ["extra"] } } : {}),
  });
  try {
    const token = await hsToken("s", { sub: "u1", rooms: ["kept", "banned"] });
    for (const version of BOTH) {
      const socket = await connected(version, env.url, version === "v4" ? { auth: { token } } : { query: { token } });
      assert.deepEqual(await emitWithAck(socket, "look"), [{ ok: true }]);
      const [look] = (await env.receiver.waitFor((r) => r.filter((d) => d.json?.event === "look").length === 1)).filter((d) => d.json?.event === "look");
      const rooms = look.json.socket.rooms;
      assert.ok(rooms.includes("kept") && rooms.includes("extra") && rooms.includes("user:u1"), `${version}: ${JSON.stringify(rooms)}`);
      assert.ok(!rooms.includes("banned"), `${version}: left banned: ${JSON.stringify(rooms)}`);
      env.receiver.received.length = 0;
      socket.close();
    }
  } finally {
    await env.close();
  }
});
