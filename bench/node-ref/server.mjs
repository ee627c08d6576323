// The Node.js reference of the benchmarks: a socket.io 4.8 server doing the bridge's job, so both
// are measured under the same load. JWT (HS256) checked at the handshake; every client event
// forwarded as a Standard Webhooks-signed POST over keep-alive HTTP, in order per socket, the
// ack answered once the webhook has it queued; a REST emit endpoint (POST /v1/emit
// {namespace, event, data}, bearer key) broadcasting to a namespace. v2 clients with allowEIO3.
//
// Env: PORT (0 = any; the bound port is printed as `listening port=N`), JWT_SECRET, WEBHOOK_URL,
// WEBHOOK_SECRET (whsec_…), EMIT_KEY.
import { createServer } from "node:http";
import { createHmac, randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { Server } from "socket.io";
import { jwtVerify } from "jose";

const jwtSecret = new TextEncoder().encode(process.env.JWT_SECRET ?? "bench-secret");
const webhookUrl = new URL(process.env.WEBHOOK_URL ?? "http://127.0.0.1:4000/");
const signingKey = Buffer.from((process.env.WEBHOOK_SECRET ?? "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMtb2s=").replace(/^whsec_/, ""), "base64");
const emitKey = process.env.EMIT_KEY ?? "bench-key";
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function post(body) {
  const id = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000);
  const signature = createHmac("sha256", signingKey).update(`${id}.${ts}.${body}`).digest("base64");
  return new Promise((resolve) => {
    const req = request(webhookUrl, {
      method: "POST",
      agent,
      headers: { "content-type": "application/json", "webhook-id": id, "webhook-timestamp": ts, "webhook-signature": `v1,${signature}` },
    }, (res) => {
      res.resume();
      res.on("end", resolve);
    });
    req.on("error", resolve);
    req.end(body);
  });
}

const http = createServer(async (req, res) => {
  if (req.method === "POST" && req.url === "/v1/emit") {
    let body = "";
    for await (const chunk of req) body += chunk;
    if (req.headers.authorization !== `Bearer ${emitKey}`) return res.writeHead(401).end();
    const { namespace, event, data } = JSON.parse(body);
    io.of(namespace).emit(event, data);
    return res.writeHead(200, { "content-type": "application/json" }).end('{"ok":true}');
  }
  res.writeHead(404).end();
});
const io = new Server(http, { allowEIO3: true, cors: { origin: true } });

// One parent namespace for every name (two `io.of(/.*/)` calls would make two parents).
const namespaces = io.of(/.*/);
namespaces.use(async (socket, next) => {
  const token = socket.handshake.auth?.token ?? socket.handshake.query?.token;
  if (!token) return next();
  try {
    const { payload } = await jwtVerify(token, jwtSecret, { algorithms: ["HS256"] });
    socket.data.userId = payload.sub;
    next();
  } catch {
    next(new Error("unauthorized"));
  }
});

namespaces.on("connection", (socket) => {
  // One queue per socket: events reach the webhook in order, one request in flight.
  let chain = Promise.resolve();
  socket.onAny((event, ...args) => {
    const ack = typeof args.at(-1) === "function" ? args.pop() : null;
    const body = JSON.stringify({
      type: "event", namespace: socket.nsp.name, event, args, ack: !!ack,
      socket: { id: socket.id, user_id: socket.data.userId ?? null, rooms: [...socket.rooms] },
      timestamp: new Date().toISOString(),
    });
    chain = chain.then(() => post(body));
    ack?.({ ok: true });
  });
});

http.listen(Number(process.env.PORT ?? 0), "127.0.0.1", () => console.log(`listening port=${http.address().port}`));
