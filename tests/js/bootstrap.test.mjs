// Declarative bootstrap: namespaces, webhooks and API keys declared in the TOML config file.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startBridge, startReceiver, freshSqlite, connected, emitWithAck, hsToken, signedBy } from "./harness.mjs";

const file = (receiverUrl, events) => `
[[namespaces]]
name = "/boot"
auth = { mode = "jwt", algorithm = "HS256", secret_env = "BOOT_JWT" }

[[namespaces.webhooks]]
url = "${receiverUrl}/chosen"
events = ${JSON.stringify(events)}
secret_env = "BOOT_HOOK"

[[namespaces.webhooks]]
url = "${receiverUrl}/generated"
events = ["never"]

[[api_keys]]
name = "deploy"
namespaces = ["/boot"]
key_env = "BOOT_KEY"
`;

test("declared objects exist after start; the same file again changes nothing; a changed file updates them", async () => {
  const receiver = await startReceiver();
  const dir = mkdtempSync(join(tmpdir(), "bridge-boot-"));
  const config = join(dir, "bridge.toml");
  const db = freshSqlite();
  const secrets = {
    BOOT_JWT: "jwt-secret-for-boot",
    BOOT_HOOK: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
    BOOT_KEY: "bk_boot_key_number_one_0123456789",
  };
  const start = (extra = {}) =>
    startBridge({ DATABASE_URL: db.url, BRIDGE_CONFIG: config, RUST_LOG: "warn,bridge::app=info,bridge::bootstrap=info", ...secrets, ...extra });
  writeFileSync(config, file(receiver.url, ["hello"]));
  try {
    await declareThrice(receiver, config, start, secrets);
  } finally {
    receiver.close();
  }
});

async function declareThrice(receiver, config, start, secrets) {
  let bridge = await start();
  let before;
  try {
    assert.match(bridge.log(), /bootstrap applied from the config file created=4 updated=0 unchanged=0/);
    assert.match(bridge.log(), /generated webhook secret whsec_\S+ \(shown once/);
    // An object made over the admin API beside the file.
    await bridge.createNamespace({ name: "/manual" });
    const token = await hsToken(secrets.BOOT_JWT, { sub: "u" });
    const socket = await connected("v4", `${bridge.url}/boot`, { auth: { token } });
    assert.deepEqual(await emitWithAck(socket, "hello", 1), [{ ok: true }]);
    const [delivery] = await receiver.waitFor((r) => r.length === 1);
    assert.equal(delivery.path, "/chosen");
    assert.ok(signedBy(secrets.BOOT_HOOK, delivery), "signed with the secret from the environment");
    socket.close();
    const emit = await bridge.v1("POST", "/v1/emit", secrets.BOOT_KEY, { namespace: "/boot", event: "e" });
    assert.equal(emit.status, 200);
    before = await listing(bridge);
  } finally {
    await bridge.stop();
  }

  bridge = await start();
  try {
    assert.match(bridge.log(), /created=0 updated=0 unchanged=4/);
    assert.deepEqual(await listing(bridge), before, "nothing rewritten");
  } finally {
    await bridge.stop();
  }

  writeFileSync(config, file(receiver.url, ["hello", "bye"]));
  const newKey = "bk_boot_key_number_two_0123456789";
  bridge = await start({ BOOT_KEY: newKey });
  try {
    assert.match(bridge.log(), /created=0 updated=2 unchanged=2/);
    const after = await listing(bridge);
    const chosen = after.webhooks.find((w) => w.url.endsWith("/chosen"));
    assert.deepEqual(chosen.events, ["hello", "bye"]);
    assert.ok(after.namespaces.some((n) => n.name === "/manual"), "objects the file does not declare are left alone");
    assert.equal((await bridge.v1("POST", "/v1/emit", secrets.BOOT_KEY, { namespace: "/boot", event: "e" })).status, 401);
    assert.equal((await bridge.v1("POST", "/v1/emit", newKey, { namespace: "/boot", event: "e" })).status, 200);
    assert.equal(after.keys.length, 1, "the key was updated, not duplicated");
  } finally {
    await bridge.stop();
  }

  // A variable the file names but the environment lacks is a configuration error.
  await assert.rejects(start({ BOOT_KEY: "" }), /exited with 2:[\s\S]*api key deploy: environment variable BOOT_KEY is not set/);
}

/** Namespaces, webhooks and keys as the admin API lists them. */
async function listing(bridge) {
  const namespaces = (await bridge.admin("GET", "/admin/namespaces")).body;
  const webhooks = [];
  for (const ns of namespaces) webhooks.push(...(await bridge.admin("GET", `/admin/namespaces/${ns.id}/webhooks`)).body);
  const keys = (await bridge.admin("GET", "/admin/api-keys")).body.map(({ last_used_at, ...rest }) => rest);
  return { namespaces, webhooks, keys };
}
