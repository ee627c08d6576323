// Namespaces whose tokens an identity provider signs: keys from a JWKS served on loopback.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { once } from "node:events";
import { generateKeyPair, exportJWK, SignJWT } from "jose";
import { startBridge, connected, until } from "./harness.mjs";

/** A JWKS provider on loopback whose key sets can be switched, or taken down, and its fetches counted. */
async function provider() {
  const sets = new Map();
  const fetches = new Map();
  let failing = false;
  const server = createServer((req, res) => {
    fetches.set(req.url, (fetches.get(req.url) ?? 0) + 1);
    if (failing) return res.writeHead(503).end();
    const keys = sets.get(req.url);
    if (!keys) return res.writeHead(404).end();
    res.writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=1" }).end(JSON.stringify({ keys }));
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    url: (path) => `http://127.0.0.1:${server.address().port}${path}`,
    publish: (path, keys) => sets.set(path, keys),
    fetches: (path) => fetches.get(path) ?? 0,
    /** From now on every fetch is answered 503. */
    fail: () => (failing = true),
    close() {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** A signing key with its public JWK (`kid` set). */
async function key(alg, kid, crv) {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true, ...(crv ? { crv } : {}) });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg, use: "sig" };
  const sign = (sub, { audience = "bridge" } = {}) =>
    new SignJWT({}).setProtectedHeader({ alg, kid }).setSubject(sub).setIssuer("https://idp.test/")
      .setAudience(audience).setExpirationTime("10m").sign(privateKey);
  return { jwk, sign };
}

const refusal = (promise) => promise.then((s) => (s.close(), "connected"), (e) => e.message ?? e);

test("JWKS: keys by kid, a new key picked up without a restart, unknown kids refused, cached keys outlive the provider", async () => {
  const idp = await provider();
  const bridge = await startBridge();
  try {
    const a = await key("RS256", "a");
    const b = await key("RS256", "b");
    const stranger = await key("RS256", "c");
    idp.publish("/rsa", [a.jwk]);
    await bridge.createNamespace({
      name: "/idp",
      auth: { mode: "jwt", algorithm: "RS256", jwks_url: idp.url("/rsa"), issuer: "https://idp.test/", audience: "bridge" },
    });
    const url = `${bridge.url}/idp`;
    for (const version of ["v4", "v2"]) {
      const token = await a.sign(`alice-${version}`);
      (await connected(version, url, version === "v4" ? { auth: { token } } : { query: { token } })).close();
    }

    // The provider rotates to key b: a token with kid b connects once the set is fetched again.
    idp.publish("/rsa", [b.jwk]);
    const tokenB = await b.sign("bob");
    await until(async () => (await refusal(connected("v4", url, { auth: { token: tokenB } }))) === "connected", 15000, "kid b accepted");

    // A kid the provider never published is refused, and a flood of them fetches at most once per 5 s.
    const before = idp.fetches("/rsa");
    const started = Date.now();
    for (let i = 0; i < 20; i++) {
      assert.equal(await refusal(connected("v4", url, { auth: { token: await stranger.sign("mallory") } })), "unauthorized");
    }
    const allowed = 1 + Math.floor((Date.now() - started) / 5000);
    assert.ok(idp.fetches("/rsa") - before <= allowed, `${idp.fetches("/rsa") - before} fetches for 20 unknown kids in ${Date.now() - started} ms`);
    // Signed by a key of the set but for another audience: refused like any bad token.
    assert.equal(await refusal(connected("v4", url, { auth: { token: await b.sign("eve", { audience: "other" }) } })), "unauthorized");

    // The provider fails: once the rate limit's window has passed, an unknown kid makes the
    // bridge fetch again (seen by the provider), which fails; the cached key b keeps working.
    const mallory = await stranger.sign("mallory");
    idp.fail();
    const failedBefore = idp.fetches("/rsa");
    await until(async () => {
      assert.equal(await refusal(connected("v4", url, { auth: { token: mallory } })), "unauthorized");
      return idp.fetches("/rsa") > failedBefore;
    }, 15000, "a fetch answered 503");
    (await connected("v4", url, { auth: { token: tokenB } })).close();
    // The provider goes away altogether: the next fetch the bridge tries fails to connect (it
    // logs each failed fetch), and key b still works.
    idp.close();
    const failures = () => bridge.log().match(/cannot fetch the JWKS/g)?.length ?? 0;
    const failuresBefore = failures();
    await until(async () => {
      assert.equal(await refusal(connected("v4", url, { auth: { token: mallory } })), "unauthorized");
      return failures() > failuresBefore;
    }, 15000, "a fetch from an unreachable provider");
    (await connected("v4", url, { auth: { token: tokenB } })).close();
  } finally {
    idp.close();
    await bridge.stop();
  }
});

test("JWKS: EC (ES256) and Ed25519 (EdDSA) keys; a JWKS URL must be https, or http on loopback", async () => {
  const idp = await provider();
  const bridge = await startBridge();
  try {
    for (const [alg, crv, path] of [["ES256", undefined, "/ec"], ["EdDSA", "Ed25519", "/ed"]]) {
      const k = await key(alg, `${alg}-1`, crv);
      idp.publish(path, [k.jwk]);
      await bridge.createNamespace({ name: path, auth: { mode: "jwt", algorithm: alg, jwks_url: idp.url(path), issuer: "https://idp.test/", audience: "bridge" } });
      (await connected("v4", `${bridge.url}${path}`, { auth: { token: await k.sign(`${alg}-user`) } })).close();
    }
    for (const [jwks_url, says] of [
      ["http://idp.example.com/jwks.json", "https://"],
      ["ftp://127.0.0.1/jwks.json", "https://"],
    ]) {
      const res = await bridge.admin("POST", "/admin/namespaces", { name: "/bad", auth: { mode: "jwt", algorithm: "RS256", jwks_url } });
      assert.equal(res.status, 400);
      assert.match(res.body.error.message, new RegExp(`auth.jwks_url: .*${says}`));
    }
    const hs = await bridge.admin("POST", "/admin/namespaces", { name: "/bad", auth: { mode: "jwt", algorithm: "HS256", secret: "s", jwks_url: idp.url("/ec") } });
    assert.equal(hs.status, 400);
  } finally {
    idp.close();
    await bridge.stop();
  }
});

test("JWKS: namespaces sharing a JWKS URL share its cache, across catalog reloads too", async () => {
  const idp = await provider();
  const bridge = await startBridge();
  try {
    const a = await key("RS256", "a");
    const b = await key("RS256", "b");
    idp.publish("/shared", [a.jwk]);
    const auth = { mode: "jwt", algorithm: "RS256", jwks_url: idp.url("/shared"), issuer: "https://idp.test/", audience: "bridge" };
    await bridge.createNamespace({ name: "/one", auth });
    await bridge.createNamespace({ name: "/two", auth });
    const join = async (ns, token) => (await connected("v4", `${bridge.url}${ns}`, { auth: { token } })).close();
    await join("/one", await a.sign("alice"));
    assert.equal(idp.fetches("/shared"), 1, "fetched once for /one");
    await join("/two", await a.sign("bob"));
    assert.equal(idp.fetches("/shared"), 1, "/two uses the set /one fetched");
    // A catalog reload (a new namespace) keeps the cache.
    await bridge.createNamespace({ name: "/three", auth });
    await join("/three", await a.sign("carol"));
    await join("/one", await a.sign("alice"));
    assert.equal(idp.fetches("/shared"), 1, "the set outlives the catalog reload");

    // A rotation seen through one namespace serves the others: kid b makes /two fetch again
    // (once the 5 s rate limit allows), then /one and /three know b without a fetch.
    idp.publish("/shared", [a.jwk, b.jwk]);
    const tokenB = await b.sign("dave");
    await until(async () => (await refusal(connected("v4", `${bridge.url}/two`, { auth: { token: tokenB } }))) === "connected", 15000, "kid b accepted on /two");
    const fetched = idp.fetches("/shared");
    await join("/one", tokenB);
    await join("/three", tokenB);
    assert.equal(idp.fetches("/shared"), fetched, "no fetch for the namespaces sharing the set");
  } finally {
    idp.close();
    await bridge.stop();
  }
});

test("JWKS: the webhooks' URL policy holds for key sets: metadata addresses refused at save, refused addresses at fetch", async () => {
  const idp = await provider();
  const open = await startBridge();
  const closed = await startBridge({ BRIDGE_WEBHOOK_DENY_PRIVATE: "true" });
  try {
    const auth = (jwks_url) => ({ mode: "jwt", algorithm: "RS256", jwks_url, issuer: "https://idp.test/", audience: "bridge" });
    // Link-local (where cloud metadata services answer) and AWS's IPv6 metadata address: never.
    for (const url of ["https://169.254.169.254/latest/jwks", "https://[fd00:ec2::254]/jwks", "https://[fe80::1]/jwks"]) {
      const res = await open.admin("POST", "/admin/namespaces", { name: "/meta", auth: auth(url) });
      assert.equal(res.status, 400, url);
      assert.equal(res.body.error.code, "invalid_field");
      assert.match(res.body.error.message, /^auth\.jwks_url: destination not allowed: .* link-local/);
    }
    const ns = await open.createNamespace({ name: "/idp", auth: auth(idp.url("/rsa")) });
    const patched = await open.admin("PATCH", `/admin/namespaces/${ns.id}`, { auth: auth("https://169.254.169.254/jwks") });
    assert.equal(patched.status, 400);
    assert.match(patched.body.error.message, /^auth\.jwks_url: destination not allowed/);

    // With private addresses denied: a loopback literal is refused at save; a host name that
    // resolves to loopback is saved, then refused when the set is fetched (nothing reaches it).
    const literal = await closed.admin("POST", "/admin/namespaces", { name: "/idp", auth: auth(idp.url("/rsa")) });
    assert.equal(literal.status, 400);
    assert.match(literal.body.error.message, /^auth\.jwks_url: destination not allowed: .*private or loopback/);
    const k = await key("RS256", "a");
    idp.publish("/named", [k.jwk]);
    const named = idp.url("/named").replace("127.0.0.1", "localhost");
    await closed.createNamespace({ name: "/named", auth: auth(named) });
    const refused = await refusal(connected("v4", `${closed.url}/named`, { auth: { token: await k.sign("u1") } }));
    assert.notEqual(refused, "connected");
    await until(() => /cannot fetch the JWKS.*destination not allowed: localhost resolves to .*private or loopback/.test(closed.log()), 5000, "the fetch refused");
    assert.equal(idp.fetches("/named"), 0, "the provider saw no request");
    // The same provider on the open node: fetched and accepted (the refusal was the policy's).
    await open.createNamespace({ name: "/named", auth: auth(named) });
    (await connected("v4", `${open.url}/named`, { auth: { token: await k.sign("u1") } })).close();
    assert.equal(idp.fetches("/named"), 1);
  } finally {
    idp.close();
    await open.stop();
    await closed.stop();
  }
});
