// The deployment of docker-compose.yml run as local processes: the repo's own deploy/nginx.conf
// in front of two bridge nodes on one Postgres store, linked by a redis-server of the test's own
// (the machine's shared Redis is never touched). The compose file's host names become local
// ports; nothing else of the nginx file is changed. Used by topology.test.mjs and faults.test.mjs.

import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { Agent } from "node:http";
import { connect as tcpConnect } from "node:net";
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { once } from "node:events";
import { io as ioV4 } from "socket.io-client";
import ioV2 from "socket.io-client-v2";
import { startBridge, startReceiver, freshPostgres, freePort, until, sleep, psql, callApi } from "./harness.mjs";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const NGINX_BIN = process.env.NGINX_BIN ?? "/usr/sbin/nginx";

/** Whether something accepts TCP connections on `port`. */
export function accepts(port) {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** The process id of the redis-server answering on `port`, or null when none answers. */
function redisPid(port) {
  try {
    const info = execFileSync("redis-cli", ["-p", String(port), "info", "server"], { encoding: "utf8", timeout: 2000, stdio: ["ignore", "pipe", "ignore"] });
    return Number(info.match(/^process_id:(\d+)/m)?.[1]) || null;
  } catch {
    return null;
  }
}

/**
 * A redis-server of the test's own on a free port, killed (SIGKILL) and started again at will.
 * redis-server cannot listen on port 0, so a port is picked and the server that answers there is
 * checked to be ours (its process id); another port is tried when one was taken meanwhile.
 */
export async function ownRedis() {
  let child = null;
  const redis = {
    url: null,
    port: null,
    /** Starts redis-server on `redis.port`; false when it could not listen there (see `restart()`). */
    async start() {
      child = spawn("redis-server", ["--port", String(redis.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], {
        stdio: "ignore",
      });
      const started = child;
      await until(() => started.exitCode !== null || started.signalCode !== null || redisPid(redis.port) === started.pid, 5000, `redis-server on ${redis.port}`);
      return redisPid(redis.port) === started.pid;
    },
    /**
     * Starts redis-server again on the same port (after `kill()`); throws when it could not hold
     * the port (another process took it meanwhile), rather than leaving the test to time out on
     * an adapter that never comes back.
     */
    async restart() {
      if (await redis.start()) return;
      const exit = child.exitCode ?? child.signalCode;
      await redis.kill();
      const other = redisPid(redis.port);
      throw new Error(
        `redis-server could not listen on port ${redis.port} again (it ${exit === null ? "did not answer there" : `exited with ${exit}`}); ` +
          (other ? `another redis-server (pid ${other}) answers there` : "another process took the port after the kill"),
      );
    },
    async kill() {
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
  };
  for (let attempt = 1; ; attempt++) {
    redis.port = await freePort();
    redis.url = `redis://127.0.0.1:${redis.port}`;
    if (await redis.start()) return redis;
    await redis.kill();
    if (attempt === 5) throw new Error("redis-server found no free port in 5 tries");
  }
}

/** deploy/nginx.conf with the compose host names replaced by `ports`, listening on a free port. */
export async function startNginx(ports) {
  if (!existsSync(NGINX_BIN)) throw new Error(`${NGINX_BIN} is missing: apt-get install nginx (scripts/test installs it)`);
  // nginx cannot listen on port 0: a free port is picked, and another tried if it was taken meanwhile.
  for (let attempt = 1; ; attempt++) {
    const nginx = await nginxOn(await freePort(), ports);
    if (nginx) return nginx;
    if (attempt === 5) throw new Error("nginx found no free port in 5 tries");
  }
}

/** nginx on `port` in front of `ports`, or null when it could not listen there. */
async function nginxOn(port, ports) {
  const dir = mkdtempSync(join(tmpdir(), "bridge-nginx-"));
  chmodSync(dir, 0o777); // nginx's workers (nobody, when started as root) write their buffers here
  let site = readFileSync(join(root, "deploy", "nginx.conf"), "utf8");
  const substitutions = [
    ["bridge-1:3000", `127.0.0.1:${ports[0]}`],
    ["bridge-2:3000", `127.0.0.1:${ports[1]}`],
    ["listen 80;", `listen 127.0.0.1:${port};`],
  ];
  for (const [from, to] of substitutions) {
    assert.ok(site.includes(from), `deploy/nginx.conf has no ${from}`);
    site = site.replaceAll(from, to);
  }
  writeFileSync(join(dir, "site.conf"), site);
  writeFileSync(
    join(dir, "nginx.conf"),
    `daemon off;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  log_format upstreams '$remote_addr "$request" $status upstream=$upstream_addr upstream_status=$upstream_status';
  access_log ${dir}/access.log upstreams;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/site.conf;
}
`,
  );
  const child = spawn(NGINX_BIN, ["-p", dir, "-e", join(dir, "error.log"), "-c", join(dir, "nginx.conf")], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  // nginx writes its pid file once it listens: then the port is ours.
  const pidFile = join(dir, "nginx.pid");
  const listening = () => existsSync(pidFile) && Number(readFileSync(pidFile, "utf8")) === child.pid;
  await until(() => child.exitCode !== null || listening(), 5000, `nginx on ${port}: ${stderr}`);
  if (!listening()) {
    if (child.exitCode === null) child.kill("SIGKILL");
    if (!/Address already in use/.test(stderr)) throw new Error(`nginx did not start: ${stderr}`);
    return null;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    /** The access log, one parsed line per request. */
    requests() {
      const text = existsSync(join(dir, "access.log")) ? readFileSync(join(dir, "access.log"), "utf8") : "";
      return text
        .split("\n")
        .filter(Boolean)
        .map((line) => {
          const m = line.match(/^(\S+) "(\S+) (\S+) [^"]*" (\d+) upstream=(.*) upstream_status=(.*)$/);
          return m ? { from: m[1], method: m[2], path: m[3], status: Number(m[4]), upstream: m[5], upstreamStatus: m[6] } : { line };
        });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/**
 * Two bridge nodes (`bridge-1`, `bridge-2`) on fixed ports, one fresh Postgres store, the adapter
 * `adapter` (Redis on a redis-server of the test's own), nginx in front; `/chat` with the webhooks
 * `hooks(receiverUrl)` and an API key. `env` is added to both nodes' environment.
 */
export async function deployment({ adapter = "redis", env = {}, hooks = () => [], handler } = {}) {
  const db = freshPostgres();
  const redis = adapter === "redis" ? await ownRedis() : null;
  const common = {
    DATABASE_URL: db.url,
    BRIDGE_ADAPTER: adapter,
    BRIDGE_ADMIN_TOKEN: `admin-${Math.random().toString(36).slice(2)}`,
    ...(redis ? { REDIS_URL: redis.url } : {}),
    ...env,
  };
  const slots = [];
  for (const id of ["bridge-1", "bridge-2"]) {
    // Each node takes ports from the kernel; a restart reuses them (compose keeps a container's port).
    const bridge = await startBridge({ ...common, BRIDGE_NODE_ID: id, BRIDGE_LISTEN: "127.0.0.1:0", BRIDGE_ADMIN_LISTEN: "127.0.0.1:0" });
    const env = { ...common, BRIDGE_NODE_ID: id, BRIDGE_LISTEN: new URL(bridge.url).host, BRIDGE_ADMIN_LISTEN: new URL(bridge.adminUrl).host };
    slots.push({ id, env, bridge });
  }
  const receiver = await startReceiver(handler);
  const ns = await slots[0].bridge.createNamespace({ name: "/chat" });
  const webhooks = [];
  for (const hook of hooks(receiver.url)) webhooks.push(await slots[0].bridge.createWebhook(ns.id, hook));
  const key = await slots[0].bridge.createKey(["/chat"]);
  const nginx = await startNginx(slots.map((s) => Number(s.env.BRIDGE_LISTEN.split(":")[1])));
  const d = {
    db,
    redis,
    receiver,
    nginx,
    key,
    slots,
    webhooks,
    /** The running bridge of slot `i` (0 or 1). */
    node: (i) => slots[i].bridge,
    /** Starts slot `i` again on the same ports and waits until it is ready. */
    async restart(i) {
      slots[i].bridge = await startBridge(slots[i].env);
      await until(async () => (await ready(slots[i].bridge)).status === 200, 15000, `${slots[i].id} ready`);
    },
    /** Calls the emit API through nginx. */
    v1: (method, path, body) => callApi(nginx.url, method, path, key, body),
    /** Which node holds each socket id of `/chat` (asked through nginx). */
    async where() {
      const nodes = new Map();
      let cursor = null;
      do {
        const res = await d.v1("GET", `/v1/sockets?namespace=/chat&limit=1000${cursor ? `&cursor=${cursor}` : ""}`);
        assert.equal(res.status, 200, JSON.stringify(res.body));
        for (const s of res.body.sockets) nodes.set(s.id, s.node);
        cursor = res.body.next_cursor;
      } while (cursor);
      return nodes;
    },
    async close() {
      await nginx.stop();
      receiver.close();
      for (const s of slots) await s.bridge.stop();
      await redis?.kill();
      psql(`DROP DATABASE IF EXISTS ${db.name} WITH (FORCE)`);
    },
  };
  await until(async () => (await Promise.all(slots.map((s) => ready(s.bridge)))).every((r) => r.status === 200), 15000, "both nodes ready");
  // The key and namespace were made on bridge-1; bridge-2 learns of them by its catalog poll.
  const knows = async (s) => (await s.bridge.v1("GET", "/v1/rooms?namespace=/chat", key)).status === 200;
  await until(async () => (await Promise.all(slots.map(knows))).every(Boolean), 5000, "the API key known to both nodes");
  return d;
}

/** `/readyz` of `bridge`: `{status, body}` (status 0 when nothing answers). */
export async function ready(bridge) {
  try {
    const res = await fetch(`${bridge.url}/readyz`);
    return { status: res.status, body: await res.json() };
  } catch {
    return { status: 0, body: null };
  }
}

/** The kinds of client an operator's users run: generation and transports (defaults when absent). */
export const KINDS = [
  { version: "v4", transports: undefined },
  { version: "v4", transports: ["websocket"] },
  { version: "v4", transports: ["polling"] },
  { version: "v2", transports: undefined },
  { version: "v2", transports: ["polling"] },
];

export const kindName = (kind) => `${kind.version}/${kind.transports?.join("+") ?? "default"}`;

/**
 * An official client of `kind` through `url` from its own loopback address (nginx keeps a
 * client on one node by address), reconnection left at the client's defaults. It records its
 * connects, disconnect reasons and every event it receives.
 */
export function reconnectingClient(url, kind, index) {
  const localAddress = `127.0.${1 + Math.floor(index / 200)}.${10 + (index % 200)}`;
  const agent = new Agent({ keepAlive: true, localAddress });
  const opts = { forceNew: true, agent, localAddress, ...(kind.transports ? { transports: kind.transports } : {}) };
  const socket = kind.version === "v2" ? ioV2(`${url}/chat`, opts) : ioV4(`${url}/chat`, opts);
  const client = { kind, index, socket, agent, connects: 0, reasons: [], inbox: [], errors: [] };
  socket.on("connect", () => client.connects++);
  socket.on("disconnect", (reason) => client.reasons.push(reason));
  socket.on("connect_error", (err) => client.errors.push(String(err?.message ?? err)));
  const record = (event, ...args) => client.inbox.push([event, ...args]);
  if (typeof socket.onAny === "function") socket.onAny(record);
  else {
    const original = socket.onevent;
    socket.onevent = function (packet) {
      record(...(packet.data ?? []));
      return original.call(this, packet);
    };
  }
  client.id = () => socket.id?.split("#").pop();
  client.close = () => {
    socket.close();
    agent.destroy();
  };
  return client;
}

/** Emits `event` with `data` and an acknowledgement; resolves with the ack's first argument, or null after `ms`. */
export function ask(socket, event, data, ms = 5000) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), ms);
    socket.emit(event, data, (answer) => {
      clearTimeout(timer);
      resolve(answer);
    });
  });
}

/**
 * Every client emits events (`event`, `{id}`; `note` goes to a durable webhook) with
 * acknowledgements, one at a time with `pauseMs` between them, until `stop()`; `accepted` holds
 * the ids acknowledged `{"ok": true}`.
 */
export function emitLoad(clients, pauseMs = 100, event = "note") {
  const accepted = new Set();
  const refused = [];
  let running = true;
  let sent = 0;
  const loops = clients.map(async (client) => {
    let n = 0;
    while (running) {
      if (client.socket.connected) {
        const id = `${client.index}-${n++}`;
        sent++;
        const answer = await ask(client.socket, event, { id });
        if (answer?.ok === true) accepted.add(id);
        else if (answer) refused.push(answer);
      }
      await sleep(pauseMs);
    }
  });
  return {
    accepted,
    refused,
    get sent() {
      return sent;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** The backend's side: an emit to room `lobby` through nginx every `everyMs`, until `stop()`. */
export function roomEmits(d, everyMs = 200) {
  let running = true;
  const counts = { ok: 0, failed: 0 };
  const loop = (async () => {
    let n = 0;
    while (running) {
      try {
        const res = await d.v1("POST", "/v1/emit", { namespace: "/chat", rooms: ["lobby"], event: "news", data: n++ });
        counts[res.status === 200 ? "ok" : "failed"]++;
      } catch {
        counts.failed++;
      }
      await sleep(everyMs);
    }
  })();
  return {
    counts,
    async stop() {
      running = false;
      await loop;
    },
  };
}

/** Every delivery body the receiver took, a batch's one by one (a handler marks a request it refused with `refused`). */
export function bodies(receiver) {
  return receiver.received
    .filter((r) => !r.refused)
    .flatMap((r) => (r.json?.type === "batch" ? r.json.deliveries.map((d) => d.body) : [r.json]));
}

/** The ids of the `event` events the receiver took, and how many arrived more than once. */
export function delivered(receiver, event = "note") {
  const seen = new Set();
  let duplicates = 0;
  for (const body of bodies(receiver)) {
    if (body?.type !== "event" || body.event !== event) continue;
    const id = body.args?.[0]?.id;
    if (seen.has(id)) duplicates++;
    else seen.add(id);
  }
  return { ids: seen, duplicates };
}

/** Whether every id `load` had accepted was delivered as an `event` (one pass over the receiver's requests). */
export function allDelivered(load, receiver, event = "note") {
  const { ids } = delivered(receiver, event);
  return [...load.accepted].every((id) => ids.has(id));
}
