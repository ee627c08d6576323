// The web console in a real browser: Debian's Chromium driven by playwright-core. Each test saves
// screenshots under tests/js/artifacts/.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { startBridge, startReceiver, connected, until, emitWithAck, hsToken, signedBy } from "./harness.mjs";

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");
mkdirSync(ARTIFACTS, { recursive: true });
const CHROMIUM = process.env.CHROMIUM_BIN ?? "/usr/bin/chromium";

async function browserPage() {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  return { browser, page };
}

test("dashboard: log in, create a namespace, a webhook and a key, see a client live, retry a failed delivery", async () => {
  let answer = 400;
  const receiver = await startReceiver(() => ({ status: answer }));
  const bridge = await startBridge();
  const { browser, page } = await browserPage();
  const clients = [];
  try {
    await page.goto(`${bridge.adminUrl}/ui/`);
    // A wrong token is refused with the API's own error.
    await page.fill("input[name=token]", "wrong");
    await page.click("#login-form button[type=submit]");
    await page.getByText("unauthorized:").waitFor();
    await page.fill("input[name=token]", bridge.token);
    await page.click("#login-form button[type=submit]");
    await page.getByRole("button", { name: "Namespaces" }).click();

    await page.fill("#namespace-form input[name=name]", "/chat");
    await page.click("#namespace-form button[type=submit]");
    const row = page.locator("#namespaces tr", { hasText: "/chat" });
    await row.waitFor();
    // A bad name gets the API's message.
    await page.fill("#namespace-form input[name=name]", "no slash");
    await page.click("#namespace-form button[type=submit]");
    await page.getByText("invalid_field: name:").waitFor();
    // A JWT namespace with its auth settings: an identity provider's JWKS, issuer and audience.
    await page.fill("#namespace-form input[name=name]", "/idp");
    await page.selectOption("#namespace-form select[name=mode]", "jwks_url");
    await page.selectOption("#namespace-form select[name=algorithm]", "RS256");
    await page.fill("#namespace-form input[name=jwks_url]", "https://tenant.example.com/.well-known/jwks.json");
    await page.fill("#namespace-form input[name=issuer]", "https://tenant.example.com/");
    await page.fill("#namespace-form input[name=audience]", "bridge");
    await page.click("#namespace-form button[type=submit]");
    await page.locator("#namespaces tr", { hasText: "JWT RS256, JWKS https://tenant.example.com/.well-known/jwks.json" }).waitFor();
    const idp = (await bridge.admin("GET", "/admin/namespaces")).body.find((n) => n.name === "/idp");
    assert.deepEqual(idp.auth, { mode: "jwt", algorithm: "RS256", jwks_url: "https://tenant.example.com/.well-known/jwks.json", issuer: "https://tenant.example.com/", audience: "bridge", timeout_ms: 10000 });

    await row.getByRole("button", { name: "Webhooks" }).click();
    await page.fill("#webhook-form input[name=url]", receiver.url);
    await page.click("#webhook-form button[type=submit]");
    await page.getByText(/Signing secret of .* \(shown once\): whsec_/).waitFor();
    const hookRow = page.locator("#webhooks tr", { hasText: receiver.url });
    await hookRow.waitFor();
    // Edit its events in place.
    await hookRow.getByRole("button", { name: "Edit" }).click();
    await page.fill("#webhook-form input[name=events]", "order, other");
    await page.click("#webhook-form button[type=submit]");
    await page.locator("#webhooks tr", { hasText: "order, other" }).waitFor();
    const chat = (await bridge.admin("GET", "/admin/namespaces")).body.find((n) => n.name === "/chat");
    const [hook] = (await bridge.admin("GET", `/admin/namespaces/${chat.id}/webhooks`)).body;
    assert.deepEqual(hook.events, ["order", "other"]);
    assert.equal(hook.batch, null);
    // Batch it from the form: the bounds given, the others the defaults; then not any more.
    await hookRow.getByRole("button", { name: "Edit" }).click();
    await page.check("#webhook-form input[name=batched]");
    await page.fill("#webhook-form input[name=max_events]", "50");
    await page.fill("#webhook-form input[name=max_in_flight]", "4");
    await page.click("#webhook-form button[type=submit]");
    await page.locator("#webhooks tr", { hasText: "batched (50 events, 262144 bytes, 20 ms, 4 in flight)" }).waitFor();
    assert.deepEqual((await bridge.admin("GET", `/admin/webhooks/${hook.id}`)).body.batch, { max_events: 50, max_bytes: 262144, max_wait_ms: 20, max_in_flight: 4 });
    await page.locator("#webhooks tr", { hasText: receiver.url }).getByRole("button", { name: "Edit" }).click();
    assert.equal(await page.inputValue("#webhook-form input[name=max_events]"), "50");
    assert.equal(await page.inputValue("#webhook-form input[name=max_in_flight]"), "4");
    await page.uncheck("#webhook-form input[name=batched]");
    await page.click("#webhook-form button[type=submit]");
    await until(async () => (await bridge.admin("GET", `/admin/webhooks/${hook.id}`)).body.batch === null, 5000, "batching turned off");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-namespaces.png"), fullPage: true });

    await page.getByRole("button", { name: "API keys" }).click();
    await page.fill("#key-form input[name=name]", "orders");
    await page.click("#key-form button[type=submit]");
    const shown = await page.getByText(/API key orders \(shown once\): bk_\S+/).textContent();
    const key = shown.match(/bk_\S+/)[0];
    assert.equal((await bridge.v1("POST", "/v1/emit", key, { namespace: "/chat", event: "e" })).status, 200, "the key shown works");

    // Live: a connected client appears without a reload.
    await page.getByRole("button", { name: "Live", exact: true }).click();
    const socket = await connected("v4", `${bridge.url}/chat`);
    clients.push(socket);
    await page.locator("#connections tr", { hasText: "/chat" }).getByText("1", { exact: true }).waitFor({ timeout: 10000 });
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-live.png"), fullPage: true });

    // A failed delivery (the receiver answers 400: final), then retried from the dashboard.
    assert.deepEqual(await emitWithAck(socket, "order", { n: 1 }), [{ ok: true }]);
    await receiver.waitFor((r) => r.length === 1);
    await page.getByRole("button", { name: "Deliveries" }).click();
    await page.selectOption("#delivery-filter select[name=status]", "failed");
    await page.click("#delivery-filter button[type=submit]");
    const failed = page.locator("#deliveries tr", { hasText: "order" });
    await failed.getByText("failed").waitFor();
    await failed.getByRole("button", { name: "Attempts" }).click();
    await page.locator("#attempts tr", { hasText: "400" }).waitFor();
    answer = 200;
    await failed.getByRole("button", { name: "Retry" }).click();
    await page.getByText(/Delivery msg_\S+ sent again/).waitFor();
    await receiver.waitFor((r) => r.length === 2, 10000);
    assert.equal(receiver.received[1].headers["webhook-id"], receiver.received[0].headers["webhook-id"]);
    // The live view shows the attempts' latency.
    await page.getByRole("button", { name: "Live", exact: true }).click();
    await page.locator(".stat", { hasText: "webhook latency" }).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-deliveries.png"), fullPage: true });
  } finally {
    for (const c of clients) c.close();
    await browser.close();
    receiver.close();
    await bridge.stop();
  }
});

test("playground: off by default; connect, emit with an ack answered by a reply webhook, receive an emit from the API", async () => {
  const off = await startBridge();
  try {
    assert.equal((await fetch(`${off.url}/playground/`)).status, 404);
  } finally {
    await off.stop();
  }
  const receiver = await startReceiver((req) => (req.json?.event === "ask" ? { body: { ack: { answer: req.json.args[0].q * 2 } } } : {}));
  const bridge = await startBridge({ BRIDGE_PLAYGROUND: "true" });
  const { browser, page } = await browserPage();
  try {
    const ns = await bridge.createNamespace({ name: "/play" });
    await bridge.createWebhook(ns.id, { url: receiver.url, events: ["ask"], reply: true });
    const key = await bridge.createKey(["/play", "/secure"]);
    await page.goto(`${bridge.url}/playground/`);
    await page.fill("input[name=namespace]", "/play");
    await page.click("#connect");
    await page.getByText(/connected as \S+/).first().waitFor();
    await page.fill("input[name=event]", "ask");
    await page.fill("input[name=args]", '[{"q": 21}]');
    await page.click("#emit");
    await page.locator("#log div[data-kind=ack]", { hasText: '[{"answer":42}]' }).waitFor();
    const res = await bridge.v1("POST", "/v1/emit", key, { namespace: "/play", event: "news", data: { title: "from the API" } });
    assert.equal(res.status, 200);
    await page.locator("#log div[data-kind=event]", { hasText: 'news [{"title":"from the API"}]' }).waitFor();
    // Bad arguments are shown, not sent.
    await page.fill("input[name=args]", "not json");
    await page.click("#emit");
    await page.getByText(/^arguments:/).waitFor();
    await page.screenshot({ path: join(ARTIFACTS, "playground.png"), fullPage: true });
    const disconnected = page.locator("#log div[data-kind=disconnected]").waitFor();
    assert.equal((await bridge.v1("POST", "/v1/disconnect", key, { namespace: "/play" })).status, 200);
    await disconnected;

    // A JWT namespace, the token sent each of the three ways.
    await bridge.createNamespace({ name: "/secure", auth: { mode: "jwt", algorithm: "HS256", secret: "play-secret" } });
    const token = await hsToken("play-secret", { sub: "player" });
    for (const mode of ["auth", "query", "authenticate"]) {
      await page.reload();
      await page.fill("input[name=namespace]", "/secure");
      await page.fill("input[name=token]", token);
      await page.selectOption("select[name=mode]", mode);
      await page.click("#connect");
      await page.getByText(/connected as \S+/).first().waitFor();
      if (mode === "authenticate") await page.locator("#log div[data-kind=event]", { hasText: 'authenticated [{"user_id":"player"}]' }).waitFor();
      const listed = await until(async () => {
        const sockets = (await bridge.v1("GET", "/v1/sockets?namespace=/secure&user=player", key)).body.sockets ?? [];
        return sockets.length === 1 && sockets;
      }, 5000, `${mode}: the socket is listed as player`).catch(() => null);
      assert.ok(listed, `${mode}: authenticated as player`);
      assert.equal((await bridge.v1("POST", "/v1/disconnect", key, { namespace: "/secure" })).status, 200);
    }
    // A bad token: refused, and the page says so.
    await page.reload();
    await page.fill("input[name=namespace]", "/secure");
    await page.fill("input[name=token]", "not-a-jwt");
    await page.click("#connect");
    await page.getByText(/connect_error: \{"message":"unauthorized"\}/).first().waitFor();
  } finally {
    await browser.close();
    receiver.close();
    await bridge.stop();
  }
});

/** The console's Content-Security-Policy, directive by directive: only this origin's scripts,
 * styles, images and connections (WebSockets for the playground), nothing inline, no framing. */
const CSP = {
  "default-src": ["'none'"],
  "script-src": ["'self'"],
  "style-src": ["'self'"],
  "connect-src": ["'self'", "ws:", "wss:"],
  "img-src": ["'self'", "data:"],
  "base-uri": ["'none'"],
  "form-action": ["'none'"],
  "frame-ancestors": ["'none'"],
};

function parseCsp(header) {
  return Object.fromEntries(
    header
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...values]) => [name, values]),
  );
}

test("console: every file of the dashboard and the playground carries the strict CSP, and the browser enforces it", async () => {
  const bridge = await startBridge({ BRIDGE_PLAYGROUND: "true" });
  const outside = await startReceiver();
  const { browser, page } = await browserPage();
  try {
    const files = [
      [bridge.adminUrl, "/ui/", "text/html"],
      [bridge.adminUrl, "/ui/dashboard.js", "text/javascript"],
      [bridge.adminUrl, "/ui/console.css", "text/css"],
      [bridge.url, "/playground/", "text/html"],
      [bridge.url, "/playground/playground.js", "text/javascript"],
      [bridge.url, "/playground/eio-client.js", "text/javascript"],
      [bridge.url, "/playground/console.css", "text/css"],
    ];
    for (const [base, path, type] of files) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, 200, path);
      assert.ok(res.headers.get("content-type").startsWith(type), `${path}: ${res.headers.get("content-type")}`);
      assert.deepEqual(parseCsp(res.headers.get("content-security-policy") ?? ""), CSP, `${path}: ${res.headers.get("content-security-policy")}`);
      assert.equal(res.headers.get("x-content-type-options"), "nosniff", path);
    }
    assert.equal((await fetch(`${bridge.adminUrl}/ui/nothing.js`)).status, 404);

    // In the browser: an inline script is blocked, and so is a request to another origin.
    for (const url of [`${bridge.adminUrl}/ui/`, `${bridge.url}/playground/`]) {
      await page.goto(url);
      // The icon is inline, so the browser asks for no /favicon.ico (a 404 in its console at every load).
      assert.match(await page.getAttribute("link[rel=icon]", "href"), /^data:image\/svg\+xml,/, `${url}: an inline icon`);
      const outcome = await page.evaluate(async (elsewhere) => {
        const violations = [];
        document.addEventListener("securitypolicyviolation", (e) => violations.push(e.effectiveDirective));
        const script = document.createElement("script");
        script.textContent = "window.__inlineRan = true";
        document.body.append(script);
        let fetched;
        try {
          await fetch(elsewhere);
          fetched = "fetched";
        } catch {
          fetched = "blocked";
        }
        await new Promise((r) => setTimeout(r, 0));
        return { inlineRan: window.__inlineRan === true, fetched, violations };
      }, outside.url);
      assert.equal(outcome.inlineRan, false, `${url}: an inline script ran`);
      assert.equal(outcome.fetched, "blocked", `${url}: a request to another origin went out`);
      assert.ok(outcome.violations.includes("script-src-elem") || outcome.violations.includes("script-src"), `${url}: ${outcome.violations}`);
    }
    assert.equal(outside.received.length, 0, "nothing reached the other origin");
  } finally {
    await browser.close();
    outside.close();
    await bridge.stop();
  }
});

test("dashboard: delete, enable and disable, rotate, revoke and retry-dead, each seen in the admin API afterwards", async () => {
  let failing = true;
  const receiver = await startReceiver(() => ({ status: failing ? 503 : 200 }));
  // Durable deliveries die after two attempts 100 ms apart.
  const bridge = await startBridge({ BRIDGE_OUTBOX_SCHEDULE: "100ms" });
  const { browser, page } = await browserPage();
  const clients = [];
  try {
    const chat = await bridge.createNamespace({ name: "/chat" });
    await bridge.createNamespace({ name: "/gone" });
    const kept = await bridge.createWebhook(chat.id, { url: `${receiver.url}/kept`, events: ["*"], durable: true });
    const doomed = await bridge.createWebhook(chat.id, { url: `${receiver.url}/doomed`, events: ["never"] });
    const keyRes = await bridge.admin("POST", "/admin/api-keys", { name: "old-service", namespaces: ["/chat"] });
    const key = keyRes.body;

    await page.goto(`${bridge.adminUrl}/ui/`);
    await page.fill("input[name=token]", bridge.token);
    await page.click("#login-form button[type=submit]");
    await page.getByRole("button", { name: "Namespaces" }).click();

    // Delete: /chat's confirmation dismissed (kept), then /gone's accepted (deleted). The page
    // handles the clicks in order, so /chat's delete, had it gone out, went out first.
    const goneRow = page.locator("#namespaces tr", { hasText: "/gone" });
    page.once("dialog", (d) => d.dismiss());
    await page.locator("#namespaces tr", { hasText: "/chat" }).getByRole("button", { name: "Delete" }).click();
    page.once("dialog", (d) => d.accept());
    await goneRow.getByRole("button", { name: "Delete" }).click();
    await goneRow.waitFor({ state: "detached" });
    assert.deepEqual((await bridge.admin("GET", "/admin/namespaces")).body.map((n) => n.name), ["/chat"]);

    // The webhooks of /chat: disable and enable one, rotate its secret, delete the other.
    await page.locator("#namespaces tr", { hasText: "/chat" }).getByRole("button", { name: "Webhooks" }).click();
    const keptRow = page.locator("#webhooks tr", { hasText: `${receiver.url}/kept` });
    await keptRow.getByRole("button", { name: "Enabled: disable" }).click();
    await keptRow.getByRole("button", { name: "Disabled: enable" }).waitFor();
    assert.equal((await bridge.admin("GET", `/admin/webhooks/${kept.id}`)).body.enabled, false);
    await keptRow.getByRole("button", { name: "Disabled: enable" }).click();
    await keptRow.getByRole("button", { name: "Enabled: disable" }).waitFor();
    assert.equal((await bridge.admin("GET", `/admin/webhooks/${kept.id}`)).body.enabled, true);

    await keptRow.getByRole("button", { name: "Rotate secret" }).click();
    const notice = await page.getByText(/New secret of .*\/kept \(shown once.*\): whsec_\S+/).textContent();
    const rotated = notice.match(/whsec_\S+/)[0];
    assert.notEqual(rotated, kept.secret);

    const doomedRow = page.locator("#webhooks tr", { hasText: `${receiver.url}/doomed` });
    page.once("dialog", (d) => d.accept());
    await doomedRow.getByRole("button", { name: "Delete" }).click();
    await doomedRow.waitFor({ state: "detached" });
    assert.equal((await bridge.admin("GET", `/admin/webhooks/${doomed.id}`)).status, 404);
    assert.deepEqual((await bridge.admin("GET", `/admin/namespaces/${chat.id}/webhooks`)).body.map((w) => w.id), [kept.id]);

    // A durable event dies (the receiver answers 503), each attempt signed with the new secret.
    const socket = await connected("v4", `${bridge.url}/chat`);
    clients.push(socket);
    assert.deepEqual(await emitWithAck(socket, "order", { n: 1 }), [{ ok: true }]);
    const [dead] = await until(async () => {
      const list = (await bridge.admin("GET", `/admin/deliveries?webhook=${kept.id}&status=dead`)).body.deliveries;
      return list.length === 1 && list;
    }, 10000, "the delivery dead");
    assert.ok(receiver.received.length >= 1 && receiver.received.every((d) => signedBy(rotated, d)), "signed with the secret the dashboard showed");

    // Retry-dead for that webhook, from the deliveries view.
    failing = false;
    await page.getByRole("button", { name: "Deliveries" }).click();
    await page.selectOption("#delivery-filter select[name=webhook]", kept.id);
    await page.getByRole("button", { name: "Retry this webhook's dead deliveries" }).click();
    await page.getByText("1 dead deliveries sent again.").waitFor();
    await until(async () => (await bridge.admin("GET", `/admin/deliveries/${dead.id}`)).body.status === "delivered", 10000, "the dead delivery sent again");
    const last = receiver.received.at(-1);
    assert.equal(last.headers["webhook-id"], dead.id);
    assert.ok(signedBy(rotated, last));

    // Revoke the key: the API shows it revoked, and the emit API refuses it.
    assert.equal((await bridge.v1("POST", "/v1/emit", key.key, { namespace: "/chat", event: "e" })).status, 200);
    await page.getByRole("button", { name: "API keys" }).click();
    const keyRow = page.locator("#keys tr", { hasText: "old-service" });
    page.once("dialog", (d) => d.accept());
    await keyRow.getByRole("button", { name: "Revoke" }).click();
    await keyRow.getByText(/^revoked /).waitFor();
    const listed = (await bridge.admin("GET", "/admin/api-keys")).body.find((k) => k.id === key.id);
    assert.ok(listed.revoked_at, JSON.stringify(listed));
    await until(async () => (await bridge.v1("POST", "/v1/emit", key.key, { namespace: "/chat", event: "e" })).status === 401, 3000, "the revoked key refused");
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-actions.png"), fullPage: true });
  } finally {
    for (const c of clients) c.close();
    await browser.close();
    receiver.close();
    await bridge.stop();
  }
});
