// A node whose Redis answers slowly: an admin write that creates a namespace answers only once the
// namespace is served on this node, its adapter subscribed included (docs/admin-api.md), so a
// backend may emit to it at once. The Redis is real (one of the test's own); a TCP relay in front
// of it holds every answer back for a while, as a distant or loaded Redis would.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer, connect as tcpConnect } from "node:net";
import { once } from "node:events";
import { startBridge, connected, next } from "./harness.mjs";
import { ownRedis } from "./deployment.mjs";

/** A relay to `port` that delays everything the server sends by `delayMs`, keeping its order. */
async function slowRelay(port, delayMs) {
  const sockets = new Set();
  const server = createServer((client) => {
    const upstream = tcpConnect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    upstream.on("data", (chunk) => setTimeout(() => client.writable && client.write(chunk), delayMs));
    const end = () => (client.destroy(), upstream.destroy());
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `redis://127.0.0.1:${server.address().port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

test("redis answering 300 ms late: a namespace takes emits and clients as soon as its creation answers", async () => {
  const redis = await ownRedis();
  const relay = await slowRelay(redis.port, 300);
  const bridge = await startBridge({ BRIDGE_ADAPTER: "redis", REDIS_URL: relay.url });
  try {
    const key = await bridge.createKey(["*"]);
    for (const name of ["/n1", "/n2", "/n3"]) {
      await bridge.createNamespace({ name });
      const res = await bridge.v1("POST", "/v1/emit", key, { namespace: name, event: "hello", data: [name] });
      assert.equal(res.status, 200, `emit to ${name} right after its creation: ${JSON.stringify(res.body)}`);
    }
    const client = await connected("v4", `${bridge.url}/n3`);
    const got = next(client, "hello", 10000);
    const res = await bridge.v1("POST", "/v1/emit", key, { namespace: "/n3", event: "hello", data: "after" });
    assert.equal(res.status, 200);
    assert.deepEqual(await got, ["after"]);
    client.close();
  } finally {
    await bridge.stop();
    relay.close();
    await redis.kill();
  }
});
