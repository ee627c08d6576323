// The admin dashboard: every action is a call to the admin API with the token the user entered
// (kept in sessionStorage, never in a URL). API errors are shown as the API says them.
"use strict";

const $ = (id) => document.getElementById(id);
const state = {
  token: sessionStorage.getItem("bridge-admin-token"),
  namespace: null,
  timer: null,
  last: null,
  editing: { namespace: null, webhook: null },
};

/** An element with text content (never HTML from data). */
function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function button(label, onClick, cls = "secondary") {
  const b = el("button", label, { type: "button", class: cls });
  b.addEventListener("click", onClick);
  return b;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) {
    const td = document.createElement("td");
    if (cell instanceof Node) td.append(cell);
    else if (Array.isArray(cell)) td.append(...cell);
    else td.textContent = cell ?? "";
    tr.append(td);
  }
  return tr;
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function showNotice(text) {
  $("notice").textContent = text;
  $("notice").hidden = !text;
}

/** Calls the admin API; throws the API's own `code: message` on failure. */
async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${state.token}`, ...(body ? { "content-type": "application/json" } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401) logout();
    const err = json?.error;
    throw new Error(err ? `${err.code}: ${err.message}` : `HTTP ${res.status}`);
  }
  return json;
}

/** Runs an action, showing its error instead of swallowing it. */
function act(fn) {
  return async (...args) => {
    showError("");
    try {
      await fn(...args);
    } catch (err) {
      showError(err.message);
    }
  };
}

function show(view) {
  for (const name of ["live", "namespaces", "keys", "deliveries"]) $(`view-${name}`).hidden = name !== view;
  for (const b of document.querySelectorAll("#nav button")) {
    if (b.dataset.view === view) b.setAttribute("aria-current", "page");
    else b.removeAttribute("aria-current");
  }
  clearInterval(state.timer);
  if (view === "live") {
    refreshLive();
    state.timer = setInterval(refreshLive, 2000);
  }
  if (view === "namespaces") act(loadNamespaces)();
  if (view === "keys") act(loadKeys)();
  if (view === "deliveries") act(loadDeliveryFilters)().then(act(loadDeliveries));
}

function logout() {
  sessionStorage.removeItem("bridge-admin-token");
  state.token = null;
  clearInterval(state.timer);
  $("nav").hidden = true;
  for (const name of ["live", "namespaces", "keys", "deliveries"]) $(`view-${name}`).hidden = true;
  $("login").hidden = false;
}

/** Mean attempt duration since the previous reading, or "-" without attempts. */
function latency(stats) {
  if (!state.last) return "-";
  const attempts = stats.webhook_attempts - state.last.stats.webhook_attempts;
  const ms = stats.webhook_attempt_ms_total - state.last.stats.webhook_attempt_ms_total;
  return attempts > 0 ? (ms / attempts).toFixed(1) : "-";
}

// Live: /admin/stats every 2 s, rates from the difference of two readings.
const refreshLive = act(async () => {
  const stats = await api("GET", "/admin/stats");
  const now = Date.now();
  const rate = (key) => (state.last ? ((stats[key] - state.last.stats[key]) * 1000) / (now - state.last.at) : 0);
  $("node").textContent = `node ${stats.node.id}${stats.node.adapter_connected === false ? " (adapter down)" : ""}`;
  const tiles = [
    ["connected sockets", Object.values(stats.connections).reduce((a, b) => a + b, 0)],
    ["events in / s", rate("events_in").toFixed(1)],
    ["webhooks sent / s", rate("webhooks_sent").toFixed(1)],
    ["webhooks failed / s", rate("webhooks_failed").toFixed(1)],
    ["webhook latency (ms, last 2 s)", latency(stats)],
    ["emits / s", rate("emits").toFixed(1)],
    ["webhooks failed (total)", stats.webhooks_failed],
  ];
  $("rates").replaceChildren(...tiles.map(([label, value]) => {
    const tile = el("div", undefined, { class: "stat" });
    tile.append(el("div", value, { class: "value" }), el("div", label, { class: "muted" }));
    return tile;
  }));
  const rows = Object.entries(stats.connections).map(([ns, n]) => row([ns, String(n)]));
  $("connections").replaceChildren(...(rows.length ? rows : [row(["no sockets connected", ""])]));
  state.last = { stats, at: now };
});

// Namespaces and their webhooks.
async function loadNamespaces() {
  const list = await api("GET", "/admin/namespaces");
  $("namespaces").replaceChildren(...list.map((ns) => row([
    ns.name,
    describeAuth(ns.auth),
    [
      button("Webhooks", act(() => selectNamespace(ns))),
      button("Edit", () => editNamespace(ns)),
      button("Delete", act(async () => {
        if (!confirm(`Delete ${ns.name}, its webhooks and their deliveries? Its sockets are disconnected.`)) return;
        await api("DELETE", `/admin/namespaces/${ns.id}`);
        if (state.namespace?.id === ns.id) $("webhooks-card").hidden = true;
        await loadNamespaces();
      }), "danger"),
    ],
  ])));
}

async function selectNamespace(ns) {
  state.namespace = ns;
  state.editing.webhook = null;
  $("webhook-form").reset();
  $("webhook-form").querySelector("button[type=submit]").textContent = "Add webhook";
  $("webhooks-of").textContent = ns.name;
  $("webhooks-card").hidden = false;
  await loadWebhooks();
}

async function loadWebhooks() {
  const ns = state.namespace;
  const hooks = await api("GET", `/admin/namespaces/${ns.id}/webhooks`);
  $("webhooks").replaceChildren(...hooks.map((hook) => row([
    hook.url,
    hook.events.join(", "),
    [
      hook.reply ? "reply" : "",
      hook.durable ? "durable" : "",
      hook.batch ? `batched (${hook.batch.max_events} events, ${hook.batch.max_bytes} bytes, ${hook.batch.max_wait_ms} ms, ${hook.batch.max_in_flight} in flight)` : "",
    ].filter(Boolean).join(" ") || "-",
    button(hook.enabled ? "Enabled: disable" : "Disabled: enable", act(async () => {
      await api("PATCH", `/admin/webhooks/${hook.id}`, { enabled: !hook.enabled });
      await loadWebhooks();
    })),
    [
      button("Edit", () => editWebhook(hook)),
      button("Rotate secret", act(async () => {
        const rotated = await api("POST", `/admin/webhooks/${hook.id}/rotate-secret`);
        showNotice(`New secret of ${hook.url} (shown once; the old one signs beside it for 24 h): ${rotated.secret}`);
      })),
      button("Delete", act(async () => {
        if (!confirm(`Delete the webhook to ${hook.url} and its deliveries?`)) return;
        await api("DELETE", `/admin/webhooks/${hook.id}`);
        await loadWebhooks();
      }), "danger"),
    ],
  ])));
}

// API keys.
async function loadKeys() {
  const keys = await api("GET", "/admin/api-keys");
  $("keys").replaceChildren(...keys.map((key) => row([
    key.name,
    key.namespaces.join(", "),
    key.prefix,
    key.revoked_at ? `revoked ${key.revoked_at}` : key.last_used_at ?? "never",
    key.revoked_at ? "" : button("Revoke", act(async () => {
      if (!confirm(`Revoke ${key.name}? It stops working on every node within a second.`)) return;
      await api("DELETE", `/admin/api-keys/${key.id}`);
      await loadKeys();
    }), "danger"),
  ])));
}

// Deliveries.
async function loadDeliveryFilters() {
  const select = document.querySelector("#delivery-filter select[name=webhook]");
  const chosen = select.value;
  const options = [el("option", "any", { value: "" })];
  for (const ns of await api("GET", "/admin/namespaces")) {
    for (const hook of await api("GET", `/admin/namespaces/${ns.id}/webhooks`)) {
      options.push(el("option", `${ns.name} → ${hook.url}`, { value: hook.id }));
    }
  }
  select.replaceChildren(...options);
  select.value = chosen;
}

async function loadDeliveries() {
  const form = new FormData($("delivery-filter"));
  const query = new URLSearchParams({ limit: "100" });
  for (const key of ["webhook", "status"]) if (form.get(key)) query.set(key, form.get(key));
  const page = await api("GET", `/admin/deliveries?${query}`);
  const rows = page.deliveries.map((d) => row([
    el("code", d.id),
    d.event,
    d.status,
    String(d.attempts),
    d.last_status ?? d.last_error ?? "",
    [
      button("Attempts", act(() => openDelivery(d.id))),
      button("Retry", act(async () => {
        await api("POST", `/admin/deliveries/${d.id}/retry`);
        showNotice(`Delivery ${d.id} sent again.`);
        await loadDeliveries();
      })),
    ],
  ]));
  $("deliveries").replaceChildren(...(rows.length ? rows : [row(["no deliveries", "", "", "", "", ""])]));
}

async function openDelivery(id) {
  const d = await api("GET", `/admin/deliveries/${id}`);
  $("delivery-id").textContent = d.id;
  $("attempts").replaceChildren(...d.history.map((a) => row([a.at, a.status ?? "-", a.error ?? "", String(a.duration_ms)])));
  $("delivery-card").hidden = false;
}

// Wiring.
$("login-form").addEventListener("submit", act(async (event) => {
  event.preventDefault();
  state.token = new FormData(event.target).get("token");
  await api("GET", "/admin/stats");
  sessionStorage.setItem("bridge-admin-token", state.token);
  event.target.reset();
  start();
}));

/** A namespace's auth in a few words. */
function describeAuth(auth) {
  if (auth.mode !== "jwt") return "none";
  const source = auth.jwks_url ? `JWKS ${auth.jwks_url}` : auth.public_key ? "public key" : "shared secret";
  return `JWT ${auth.algorithm}, ${source}${auth.issuer ? `, issuer ${auth.issuer}` : ""}${auth.audience ? `, audience ${auth.audience}` : ""}`;
}

/** The `auth` object the namespace form describes (a secret left empty is not sent: kept). */
function authFromForm(form) {
  const mode = form.get("mode");
  if (mode === "none") return { mode: "none" };
  const auth = { mode: "jwt", algorithm: form.get("algorithm") };
  for (const field of ["issuer", "audience"]) if (form.get(field)) auth[field] = form.get(field);
  if (form.get(mode)) auth[mode] = form.get(mode);
  return auth;
}

/** Fills the namespace form with `ns`: its submit then saves the changes. */
function editNamespace(ns) {
  const form = $("namespace-form");
  state.editing.namespace = ns;
  form.reset();
  form.elements.name.value = ns.name;
  const auth = ns.auth;
  form.elements.mode.value = auth.mode !== "jwt" ? "none" : auth.jwks_url ? "jwks_url" : auth.public_key ? "public_key" : "secret";
  if (auth.mode === "jwt") {
    form.elements.algorithm.value = auth.algorithm;
    form.elements.public_key.value = auth.public_key ?? "";
    form.elements.jwks_url.value = auth.jwks_url ?? "";
    form.elements.issuer.value = auth.issuer ?? "";
    form.elements.audience.value = auth.audience ?? "";
  }
  form.elements.secret.placeholder = auth.mode === "jwt" ? "unchanged when empty" : "";
  form.querySelector("button[type=submit]").textContent = `Save ${ns.name}`;
  form.elements.name.focus();
}

$("namespace-form").addEventListener("submit", act(async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const auth = authFromForm(form);
  const editing = state.editing.namespace;
  if (editing) await api("PATCH", `/admin/namespaces/${editing.id}`, { name: form.get("name"), auth });
  else await api("POST", "/admin/namespaces", { name: form.get("name"), auth });
  state.editing.namespace = null;
  event.target.reset();
  event.target.querySelector("button[type=submit]").textContent = "Create namespace";
  await loadNamespaces();
}));

const BATCH_BOUNDS = ["max_events", "max_bytes", "max_wait_ms", "max_in_flight"];

/** The form's `batch`: null when not batched, else the bounds given (the others default). */
function batchFromForm(form) {
  if (form.get("batched") !== "on") return null;
  const batch = {};
  for (const bound of BATCH_BOUNDS) {
    const value = form.get(bound);
    if (value !== null && value !== "") batch[bound] = Number(value);
  }
  return batch;
}

/** Fills the webhook form with `hook`: its submit then saves the changes. */
function editWebhook(hook) {
  const form = $("webhook-form");
  state.editing.webhook = hook;
  form.elements.url.value = hook.url;
  form.elements.events.value = hook.events.join(", ");
  form.elements.reply.checked = hook.reply;
  form.elements.durable.checked = hook.durable;
  form.elements.batched.checked = hook.batch !== null;
  for (const bound of BATCH_BOUNDS) form.elements[bound].value = hook.batch?.[bound] ?? "";
  form.querySelector("button[type=submit]").textContent = "Save webhook";
  form.elements.events.focus();
}

$("webhook-form").addEventListener("submit", act(async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = {
    url: form.get("url"),
    events: form.get("events").split(",").map((e) => e.trim()).filter(Boolean),
    reply: form.get("reply") === "on",
    durable: form.get("durable") === "on",
    batch: batchFromForm(form),
  };
  const editing = state.editing.webhook;
  if (editing) {
    await api("PATCH", `/admin/webhooks/${editing.id}`, body);
  } else {
    const created = await api("POST", `/admin/namespaces/${state.namespace.id}/webhooks`, body);
    showNotice(`Signing secret of ${created.url} (shown once): ${created.secret}`);
  }
  state.editing.webhook = null;
  event.target.reset();
  event.target.querySelector("button[type=submit]").textContent = "Add webhook";
  await loadWebhooks();
}));

$("key-form").addEventListener("submit", act(async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const created = await api("POST", "/admin/api-keys", {
    name: form.get("name"),
    namespaces: form.get("namespaces").split(",").map((n) => n.trim()).filter(Boolean),
  });
  showNotice(`API key ${created.name} (shown once): ${created.key}`);
  event.target.reset();
  await loadKeys();
}));

$("delivery-filter").addEventListener("submit", act(async (event) => {
  event.preventDefault();
  await loadDeliveries();
}));

$("retry-dead").addEventListener("click", act(async () => {
  const webhook = new FormData($("delivery-filter")).get("webhook");
  if (!webhook) throw new Error("choose a webhook first");
  const { retried } = await api("POST", `/admin/webhooks/${webhook}/retry-dead`);
  showNotice(`${retried} dead deliveries sent again.`);
  await loadDeliveries();
}));

for (const b of document.querySelectorAll("#nav button")) {
  b.addEventListener("click", () => (b.dataset.view === "logout" ? logout() : show(b.dataset.view)));
}

function start() {
  $("login").hidden = true;
  $("nav").hidden = false;
  show("live");
}

if (state.token) start();
