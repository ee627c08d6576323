// Test harness: the real `bridge` binary on port 0, a webhook receiver on loopback, admin helpers,
// and the official socket.io-client v4 and v2.

import { spawn, execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { createServer as createNetServer } from "node:net";
import { mkdtempSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { Webhook } from "standardwebhooks";
import { SignJWT } from "jose";
import { WebSocket } from "ws";

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, "..", "..");
const targetDir = process.env.CARGO_TARGET_DIR ?? join(root, "target");
export const BRIDGE_BIN = process.env.BRIDGE_BIN ?? join(targetDir, "debug", "bridge");

/** Starts the bridge on a fresh SQLite file; resolves once it logged its addresses. */
export async function startBridge(env = {}) {
  if (!existsSync(BRIDGE_BIN)) throw new Error(`${BRIDGE_BIN} is missing: run cargo build first`);
  const dir = mkdtempSync(join(tmpdir(), "bridge-js-"));
  const token = env.BRIDGE_ADMIN_TOKEN ?? `admin-${Math.random().toString(36).slice(2)}`;
  const child = spawn(BRIDGE_BIN, ["serve"], {
    env: {
      PATH: process.env.PATH,
      RUST_LOG: process.env.BRIDGE_TEST_LOG ?? "warn,bridge::app=info",
      BRIDGE_LISTEN: "127.0.0.1:0",
      BRIDGE_ADMIN_LISTEN: "127.0.0.1:0",
      DATABASE_URL: `sqlite://${join(dir, "bridge.db")}`,
      BRIDGE_ADMIN_TOKEN: token,
      // A stop hands the sockets over within 1 s (10 s by default), to keep the suite short.
      BRIDGE_DRAIN: "1s",
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let log = "";
  const addresses = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`bridge did not start:\n${log}`)), 15000);
    child.stderr.on("data", (chunk) => {
      log += chunk;
      const m = log.match(/listening public=(\S+) admin=(\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve({ public: m[1], admin: m[2] });
      }
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited with ${code}:\n${log}`));
    });
  });
  const bridge = {
    databaseUrl: env.DATABASE_URL ?? `sqlite://${join(dir, "bridge.db")}`,
    url: `http://${addresses.public}`,
    adminUrl: `http://${addresses.admin}`,
    token,
    log: () => log,
    pid: child.pid,
    /** The exit code once exited (null before, or when killed by a signal). */
    exitCode: () => child.exitCode,
    /** SIGTERM, then SIGKILL and an error if it has not exited within 25 s (its drains take 10 s each at most). */
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = once(child, "exit");
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 25000);
      await exited;
      clearTimeout(timer);
      if (child.signalCode === "SIGKILL") throw new Error(`bridge did not stop within 25 s of SIGTERM:\n${log.slice(-2000)}`);
    },
    /** SIGKILL: no shutdown, nothing flushed or released. */
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
    async admin(method, path, body) {
      const res = await fetch(`${bridge.adminUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, body: text ? JSON.parse(text) : null };
    },
    async createNamespace(body) {
      const res = await bridge.admin("POST", "/admin/namespaces", body);
      if (res.status !== 201) throw new Error(`namespace: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
    async createKey(namespaces = ["*"], name = "tests") {
      const res = await bridge.admin("POST", "/admin/api-keys", { name, namespaces });
      if (res.status !== 201) throw new Error(`api key: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body.key;
    },
    /** Calls the emit API; `body` is JSON unless `raw` gives a string and content type. */
    v1: (method, path, key, body, opts) => callApi(bridge.url, method, path, key, body, opts),
    async createWebhook(namespaceId, body) {
      const res = await bridge.admin("POST", `/admin/namespaces/${namespaceId}/webhooks`, body);
      if (res.status !== 201) throw new Error(`webhook: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    },
  };
  return bridge;
}

/**
 * Calls the emit API at `baseUrl` (a bridge, or a load balancer in front of several); `body` is
 * JSON unless `raw` gives a string and content type. Resolves with `{status, body, headers}`.
 */
export async function callApi(baseUrl, method, path, key, body, { raw, contentType = "application/json" } = {}) {
  const headers = { "content-type": contentType };
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    body: raw ?? (body === undefined ? undefined : JSON.stringify(body)),
  });
  const text = await res.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, body: json, headers: res.headers };
}

/**
 * A webhook receiver on 127.0.0.1:0. `handler(req)` (req = {headers, raw, json, path}) may return
 * {status, body, headers, delayMs}; default is 200 with an empty JSON object.
 */
export async function startReceiver(handler = () => ({})) {
  const received = [];
  const waiters = new Set();
  const server = createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const raw = Buffer.concat(chunks).toString("utf8");
    let json = null;
    try {
      json = JSON.parse(raw);
    } catch {}
    const entry = { headers: req.headers, raw, json, path: req.url, at: Date.now() };
    received.push(entry);
    for (const w of waiters) w();
    const answer = (await handler(entry)) ?? {};
    if (answer.delayMs) await new Promise((r) => setTimeout(r, answer.delayMs));
    const body = answer.body === undefined ? {} : answer.body;
    res.writeHead(answer.status ?? 200, { "content-type": "application/json", ...(answer.headers ?? {}) });
    res.end(typeof body === "string" ? body : JSON.stringify(body));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    /** Resolves when `predicate(received)` holds (checked on each delivery), or rejects after `ms`. */
    async waitFor(predicate, ms = 5000) {
      if (predicate(received)) return received;
      return new Promise((resolve, reject) => {
        const check = () => {
          if (predicate(received)) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(received);
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`receiver: condition not met in ${ms} ms; got ${received.length} deliveries`));
        }, ms);
        waiters.add(check);
      });
    },
    events(type = "event") {
      return received.filter((r) => r.json?.type === type);
    },
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** The Postgres server the tests create their databases on (scripts/test sets it when it starts its own). */
export const POSTGRES_URL = process.env.TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

/** `POSTGRES_URL` with another database. */
function postgresUrl(database) {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

/** An HTTP server that accepts requests and never answers them: a hanging webhook endpoint. */
export async function startHangingServer() {
  const server = createServer(() => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** Runs SQL on the tests' Postgres server (as the tests' superuser). */
export function psql(sql, database = "postgres") {
  return execFileSync("psql", [postgresUrl(database), "-qAtc", sql], { encoding: "utf8" });
}

/** The run's tag in database names: `BRIDGE_TEST_RUN` (scripts/test sets `<epoch>_<pid>`), else this process's own. */
const RUN_TAG = process.env.BRIDGE_TEST_RUN ?? `${Math.floor(Date.now() / 1000)}_${process.pid}`;

/** A new, empty Postgres database (scripts/test drops its run's databases when it ends); its name and URL. */
export function freshPostgres() {
  const name = `bridge_test_${RUN_TAG}_${Math.random().toString(36).slice(2, 12)}`;
  psql(`CREATE DATABASE ${name}`);
  return { name, url: postgresUrl(name) };
}

/** A new SQLite file's URL, in a fresh temporary folder. */
export function freshSqlite() {
  return { url: `sqlite://${join(mkdtempSync(join(tmpdir(), "bridge-js-")), "bridge.db")}` };
}

/** Polls `check` (sync or async) every 50 ms until it returns a truthy value, or rejects after `ms`. */
export async function until(check, ms = 10000, what = "condition") {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`${what} not met in ${ms} ms`);
    await sleep(50);
  }
}

/** Verifies a delivery with the `standardwebhooks` package (an independent implementation). */
export function verifySignature(secret, delivery) {
  return new Webhook(secret).verify(delivery.raw, {
    "webhook-id": delivery.headers["webhook-id"],
    "webhook-timestamp": delivery.headers["webhook-timestamp"],
    "webhook-signature": delivery.headers["webhook-signature"],
  });
}

/** Whether `delivery` carries a valid signature of `secret`. */
export function signedBy(secret, delivery) {
  try {
    verifySignature(secret, delivery);
    return true;
  } catch {
    return false;
  }
}

/** A client of the given generation ("v4" or "v2") on `url` (base + namespace). */
export function connect(version, url, opts = {}) {
  const base = { forceNew: true, reconnection: false, timeout: 5000, ...opts };
  return version === "v2" ? ioV2(url, base) : ioV4(url, base);
}

/** Calls `fn(event, ...args)` for every event `socket` receives (v4 `onAny`; v2 has none, so its `onevent` is wrapped). */
export function onAnyEvent(socket, fn) {
  if (typeof socket.onAny === "function") {
    socket.onAny(fn);
    return;
  }
  const original = socket.onevent;
  socket.onevent = function (packet) {
    fn(...(packet.data ?? []));
    return original.call(this, packet);
  };
}

/** Resolves with the first `event` of `socket` (its arguments as an array), or rejects after `ms`. */
export function next(socket, event, ms = 5000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} in ${ms} ms`)), ms);
    socket.once(event, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

/** Emits with an acknowledgement; resolves with the ack's arguments. */
export function emitWithAck(socket, event, ...args) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ack for ${event}`)), 8000);
    socket.emit(event, ...args, (...ackArgs) => {
      clearTimeout(timer);
      resolve(ackArgs);
    });
  });
}

/** Connects and resolves once connected, or rejects with the connect error. */
export async function connected(version, url, opts = {}) {
  const socket = connect(version, url, opts);
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${version} client did not connect to ${url}`)), 5000);
      const fail = (err) => {
        clearTimeout(timer);
        reject(err);
      };
      socket.once("connect", () => {
        clearTimeout(timer);
        resolve();
      });
      socket.once("connect_error", fail);
      socket.once("error", fail);
    });
  } catch (err) {
    socket.close();
    throw err;
  }
  return socket;
}

/** An HS256 token for `secret`. */
export async function hsToken(secret, claims = {}, { expiresIn = "1h" } = {}) {
  let jwt = new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt();
  if (expiresIn) jwt = jwt.setExpirationTime(expiresIn);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** Waits `ms` milliseconds. */
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A bridge with one namespace and webhooks pointing at one receiver.
 * `hooks` are webhook bodies without `url` (the receiver's is used unless given).
 */
export async function setup({ namespace = "/chat", auth, hooks = [], env, handler } = {}) {
  const bridge = await startBridge(env);
  const receiver = await startReceiver(handler);
  const ns = await bridge.createNamespace(auth ? { name: namespace, auth } : { name: namespace });
  const webhooks = [];
  for (const hook of hooks) webhooks.push(await bridge.createWebhook(ns.id, { url: receiver.url, ...hook }));
  // No wait: an admin write answers once this node serves it (read-your-writes).
  return {
    bridge,
    receiver,
    ns,
    webhooks,
    url: `${bridge.url}${namespace === "/" ? "" : namespace}`,
    async close() {
      receiver.close();
      await bridge.stop();
    },
  };
}

/**
 * Parses Prometheus text exposition into `[{name, labels, value}]` (comments skipped), so that a
 * check reads one series' exact value rather than matching a substring (`… 1` is in `… 10`).
 */
export function parseMetrics(text) {
  const series = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)$/);
    if (!m) throw new Error(`unreadable metrics line: ${line}`);
    const labels = {};
    for (const [, k, v] of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k] = v;
    series.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return series;
}

/** The value of the one series of `node`'s /metrics named `name` whose labels include `labels`; undefined if none. */
export async function metric(node, name, labels = {}) {
  const all = parseMetrics(await (await fetch(`${node.adminUrl}/metrics`)).text());
  const found = all.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (found.length > 1) throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} series`);
  return found[0]?.value;
}

/**
 * A loopback TCP port nothing listens on (bound, then released), for a program that cannot listen
 * on port 0 itself; another process may take it meanwhile, so check that the program started there
 * holds it (deployment.mjs does). For a dead endpoint use `deadEndpoint()`.
 */
export async function freePort() {
  const server = createNetServer().listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address();
  server.close();
  await once(server, "close");
  return port;
}

/**
 * A dead HTTP endpoint that stays dead: it holds its port (nobody else can take it) and cuts every
 * connection before a byte is answered, as a backend that is down does. `url` and `close()`.
 */
export async function deadEndpoint() {
  const server = createNetServer((socket) => socket.resetAndDestroy());
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { url: `http://127.0.0.1:${server.address().port}/`, close: () => server.close() };
}

/**
 * A raw Engine.IO 4 WebSocket client of `namespace` (no socket.io-client): sends packets as
 * written, answers pings, and records every frame, for what the official clients refuse to send.
 */
export async function rawClient(baseUrl, namespace) {
  const frames = [];
  const waiters = new Set();
  const ws = new WebSocket(`${baseUrl.replace("http", "ws")}/socket.io/?EIO=4&transport=websocket`);
  ws.on("message", (data) => {
    const text = data.toString();
    frames.push(text);
    if (text === "2") ws.send("3");
    if (text.startsWith("0{")) ws.send(`40${namespace},`);
    for (const w of waiters) w();
  });
  const client = {
    frames,
    send: (packet) => ws.send(packet),
    /** Resolves when `predicate(frames)` holds, or rejects after `ms`. */
    waitFor(predicate, ms = 5000) {
      if (predicate(frames)) return Promise.resolve(frames);
      return new Promise((resolve, reject) => {
        const check = () => predicate(frames) && (waiters.delete(check), clearTimeout(timer), resolve(frames));
        const timer = setTimeout(() => (waiters.delete(check), reject(new Error(`raw client: ${frames.join(" | ")}`))), ms);
        waiters.add(check);
      });
    },
    close: () => ws.close(),
    /** Resolves when the server closes the connection, or rejects after `ms`. */
    waitClosed(ms = 5000) {
      if (ws.readyState === WebSocket.CLOSED) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`raw client: still open after ${ms} ms`)), ms);
        ws.once("close", () => (clearTimeout(timer), resolve()));
      });
    },
  };
  await client.waitFor((f) => f.some((x) => x.startsWith(`40${namespace},{`)));
  return client;
}
