// Declarative bootstrap: namespaces, webhooks and API keys declared in the TOML config file.

import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { startBridge, startReceiver, freshSqlite, freshPostgres, psql, until, sleep, connected, emitWithAck, hsToken, signedBy, BRIDGE_BIN } from "./harness.mjs";

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
batch = { max_events = 5 }

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
    const generated = before.webhooks.find((w) => w.url.endsWith("/generated"));
    assert.deepEqual(generated.batch, { max_events: 5, max_bytes: 262144, max_wait_ms: 20, max_in_flight: 1 }, "declared batch bounds, the rest defaults");
    assert.equal(before.webhooks.find((w) => w.url.endsWith("/chosen")).batch, null);
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
  // A batched reply webhook is refused as the admin API refuses it.
  writeFileSync(config, file(receiver.url, ["hello"]).replace("batch = {", "reply = true\nbatch = {"));
  await assert.rejects(start(), /exited with 2:[\s\S]*webhook \S+\/generated: [\s\S]*reply webhook cannot be batched/);
}

/** Namespaces, webhooks and keys as the admin API lists them. */
async function listing(bridge) {
  const namespaces = (await bridge.admin("GET", "/admin/namespaces")).body;
  const webhooks = [];
  for (const ns of namespaces) webhooks.push(...(await bridge.admin("GET", `/admin/namespaces/${ns.id}/webhooks`)).body);
  const keys = (await bridge.admin("GET", "/admin/api-keys")).body.map(({ last_used_at, ...rest }) => rest);
  return { namespaces, webhooks, keys };
}

/** The bootstrap's advisory lock key ("bridgebs" in ASCII), as Postgres shows a bigint key in pg_locks. */
const LOCK = { key: "7093848243014296179", classid: 0x62726964, objid: 0x67656273 };

/**
 * Takes the bootstrap's lock on `db` from a psql session of the test's own, so that nodes
 * starting there are seen waiting for it; `waiting()` counts them, `release()` ends the session.
 */
async function holdBootstrapLock(db) {
  // Named after its database, so that only this holder is ever terminated (another test run on
  // the same server holds its own lock in its own database).
  const holderName = `lock-${db.name}`.slice(0, 63);
  const holderUrl = new URL(db.url);
  holderUrl.searchParams.set("application_name", holderName);
  const holder = spawn("psql", [holderUrl.toString(), "-qAtc", `SELECT pg_advisory_lock(${LOCK.key}); SELECT pg_sleep(60)`], { stdio: "ignore" });
  // Advisory locks belong to a database: only those of this test's database are counted.
  const locks = (granted) =>
    Number(
      psql(
        `SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND ${granted ? "" : "NOT"} granted AND classid = ${LOCK.classid} AND objid = ${LOCK.objid} AND objsubid = 1`,
        db.name,
      ),
    );
  const release = async () => {
    if (holder.exitCode === null && holder.signalCode === null) {
      holder.kill("SIGKILL");
      await once(holder, "exit");
    }
    psql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '${holderName}' AND datname = current_database()`, db.name);
  };
  try {
    await until(() => locks(true) === 1, 10000, "the lock held by the test");
  } catch (err) {
    await release();
    throw err;
  }
  return { waiting: () => locks(false), release };
}

test("Postgres: nodes starting together take turns (the advisory lock): each declared object is created once", async () => {
  const receiver = await startReceiver();
  const dir = mkdtempSync(join(tmpdir(), "bridge-boot-"));
  const config = join(dir, "bridge.toml");
  writeFileSync(config, file(receiver.url, ["hello"]));
  const db = freshPostgres();
  const secrets = {
    BOOT_JWT: "jwt-secret-for-boot",
    BOOT_HOOK: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
    BOOT_KEY: "bk_boot_key_number_one_0123456789",
  };
  const env = { DATABASE_URL: db.url, BRIDGE_CONFIG: config, RUST_LOG: "warn,bridge::app=info,bridge::bootstrap=info", ...secrets };
  // A session of our own holds the lock, so that both nodes are seen waiting for it: they then
  // start as close together as two nodes can.
  const lock = await holdBootstrapLock(db);
  let starting = [];
  try {
    starting = [startBridge(env), startBridge(env)];
    await until(() => lock.waiting() === 2, 10000, "both nodes waiting for the bootstrap lock");
    await lock.release();
    const [one, two] = await Promise.all(starting);
    const reports = [one, two].map((b) => b.log().match(/bootstrap applied from the config file (created=\d+ updated=\d+ unchanged=\d+)/)?.[1]).sort();
    assert.deepEqual(reports, ["created=0 updated=0 unchanged=4", "created=4 updated=0 unchanged=0"]);
    const listed = await listing(one);
    assert.deepEqual(listed.namespaces.map((n) => n.name), ["/boot"]);
    assert.deepEqual(listed.webhooks.map((w) => new URL(w.url).pathname).sort(), ["/chosen", "/generated"]);
    assert.deepEqual(listed.keys.map((k) => k.name), ["deploy"]);
    assert.equal((await two.v1("POST", "/v1/emit", secrets.BOOT_KEY, { namespace: "/boot", event: "e" })).status, 200);
  } finally {
    await lock.release();
    for (const started of await Promise.allSettled(starting)) if (started.status === "fulfilled") await started.value.stop();
    receiver.close();
    psql(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
  }
});

test("Postgres: a SIGTERM while the node waits for the bootstrap lock stops it there (exit 0), not by the signal's default", async () => {
  const receiver = await startReceiver();
  const dir = mkdtempSync(join(tmpdir(), "bridge-boot-"));
  const config = join(dir, "bridge.toml");
  writeFileSync(config, file(receiver.url, ["hello"]));
  const db = freshPostgres();
  const lock = await holdBootstrapLock(db);
  let node = null;
  try {
    node = spawn(BRIDGE_BIN, ["serve"], {
      env: {
        PATH: process.env.PATH,
        RUST_LOG: "info",
        DATABASE_URL: db.url,
        BRIDGE_CONFIG: config,
        BRIDGE_LISTEN: "127.0.0.1:0",
        BRIDGE_ADMIN_LISTEN: "127.0.0.1:0",
        BRIDGE_ADMIN_TOKEN: "admin-token-for-the-test",
        BOOT_JWT: "jwt-secret-for-boot",
        BOOT_HOOK: "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3",
        BOOT_KEY: "bk_boot_key_number_one_0123456789",
      },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let log = "";
    node.stderr.on("data", (chunk) => (log += chunk));
    const exited = once(node, "exit");
    await until(() => lock.waiting() === 1, 10000, "the node waiting for the bootstrap lock");
    node.kill("SIGTERM");
    const [code, signal] = await Promise.race([exited, sleep(10000).then(() => ["none within 10 s", null])]);
    assert.equal(signal, null, `killed by ${signal}, not stopped:\n${log}`);
    assert.equal(code, 0, log);
    assert.match(log, /stopped while starting/);
    assert.doesNotMatch(log, /listening public=/);
  } finally {
    if (node && node.exitCode === null && node.signalCode === null) node.kill("SIGKILL");
    await lock.release();
    receiver.close();
    psql(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
  }
});
