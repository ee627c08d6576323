// Hardening: answers that must hold under careless operators and hostile clients.

import { test } from "node:test";
import assert from "node:assert/strict";
import { startBridge, freshPostgres, freshSqlite, connected } from "./harness.mjs";

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
