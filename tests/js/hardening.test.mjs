// Hardening: answers that must hold under careless operators and hostile clients.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, freshPostgres, freshSqlite, connected, setup, hsToken, until } from "./harness.mjs";

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
