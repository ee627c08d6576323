// The smallest honest backend for the bridge: a chat. No dependencies, Node.js 20+.
//
// - Verifies every webhook's Standard Webhooks signature (HMAC-SHA256 over id.timestamp.body).
// - `$connect`: names the user (auth.name, unless a JWT already did), joins the sender to the
//   room "lobby" and greets it.
// - `chat:message`: answers the client's ack, then pushes the message to everyone in "lobby"
//   through the bridge's emit API.
//
// Env: QUICKSTART_WEBHOOK_SECRET (whsec_…), QUICKSTART_API_KEY, BRIDGE_URL
// (default http://127.0.0.1:3000), PORT (default 4000).
import { createServer } from "node:http";
import { createHmac, timingSafeEqual } from "node:crypto";

const secret = Buffer.from(required("QUICKSTART_WEBHOOK_SECRET").replace(/^whsec_/, ""), "base64");
const apiKey = required("QUICKSTART_API_KEY");
const bridgeUrl = process.env.BRIDGE_URL ?? "http://127.0.0.1:3000";
const port = Number(process.env.PORT ?? 4000);

function required(name) {
  if (!process.env[name]) {
    console.error(`set ${name} (see the README's quick start)`);
    process.exit(1);
  }
  return process.env[name];
}

/** Standard Webhooks: any `v1,<base64>` of the header must match, and the timestamp be recent. */
function verified(headers, body) {
  const id = headers["webhook-id"];
  const timestamp = headers["webhook-timestamp"];
  const signatures = (headers["webhook-signature"] ?? "").split(" ");
  if (!id || !timestamp || Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) return false;
  const expected = createHmac("sha256", secret).update(`${id}.${timestamp}.${body}`).digest();
  return signatures.some((s) => {
    const given = Buffer.from(s.replace(/^v1,/, ""), "base64");
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
}

/** What the bridge does with our answer: ack the client, name it, join rooms, emit to it. */
function answer(webhook) {
  const who = webhook.socket.user_id ?? "someone";
  switch (webhook.type) {
    case "connect": {
      const name = webhook.socket.user_id ?? webhook.handshake.auth?.name ?? "guest";
      console.log(`${webhook.namespace}: ${name} connected (socket ${webhook.socket.id})`);
      return {
        user_id: webhook.socket.user_id ? undefined : name,
        join: ["lobby"],
        emit: [{ event: "chat:message", data: { from: "backend", text: `welcome, ${name}` } }],
      };
    }
    case "disconnect":
      console.log(`${webhook.namespace}: ${who} left (${webhook.reason})`);
      return {};
    case "event":
      console.log(`${webhook.namespace}: ${webhook.event} from ${who}: ${JSON.stringify(webhook.args)}`);
      if (webhook.event === "chat:message") {
        broadcast(webhook.namespace, { from: who, text: webhook.args[0]?.text ?? "" });
        return { ack: { ok: true, delivered_to: "lobby" } };
      }
      return { ack: { ok: true } };
    default:
      return {};
  }
}

/** Pushes a message to the lobby through the emit API, after the ack has gone back. */
function broadcast(namespace, message) {
  setImmediate(async () => {
    const res = await fetch(`${bridgeUrl}/v1/emit`, {
      method: "POST",
      headers: { authorization: `Bearer ${apiKey}`, "content-type": "application/json" },
      body: JSON.stringify({ namespace, rooms: ["lobby"], event: "chat:message", data: message }),
    }).catch((err) => ({ status: 0, text: async () => err.message }));
    if (res.status !== 200) console.error(`emit API: ${res.status} ${await res.text()}`);
  });
}

createServer(async (req, res) => {
  let body = "";
  for await (const chunk of req) body += chunk;
  if (req.method !== "POST" || req.url !== "/webhooks") return res.writeHead(404).end();
  if (!verified(req.headers, body)) {
    console.error(`rejected a webhook with a bad signature (${req.headers["webhook-id"]})`);
    return res.writeHead(401).end();
  }
  const webhook = JSON.parse(body);
  console.log(`webhook ${req.headers["webhook-id"]} verified`);
  res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(answer(webhook)));
}).listen(port, "127.0.0.1", () => console.log(`example backend on http://127.0.0.1:${port}/webhooks`));
