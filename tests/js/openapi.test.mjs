// The OpenAPI document as a backend team uses it: valid against the official OpenAPI 3.1 schema,
// turned into a typed client by a widely used generator (openapi-typescript + openapi-fetch,
// type-checked by tsc, then run against a bridge for the main flows, every answer checked against
// the document), and its `webhooks` section checked against the bodies a running bridge sends.

import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync, copyFileSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { Validator } from "@seriousme/openapi-schema-validator";
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import createClient from "openapi-fetch";
import { startBridge, startReceiver, connect, connected, emitWithAck, next, onAnyEvent, until } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const run = promisify(execFile);

/** The document a fresh bridge serves (public: no token). */
async function documentOf(bridge) {
  const res = await fetch(`${bridge.adminUrl}/admin/openapi.json`);
  assert.equal(res.status, 200);
  return res.json();
}

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/** Every operation of `paths` and `webhooks`: `{where, key, method, op}`. */
function operations(doc) {
  const ops = [];
  for (const where of ["paths", "webhooks"]) {
    for (const [key, item] of Object.entries(doc[where] ?? {})) {
      for (const method of METHODS) if (item[method]) ops.push({ where, key, method, op: item[method] });
    }
  }
  return ops;
}

/** The value a local `$ref` (`#/…`) points at, or undefined. */
function pointer(doc, ref) {
  if (!ref.startsWith("#/")) return undefined;
  let node = doc;
  for (const part of ref.slice(2).split("/")) {
    node = node?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
  }
  return node;
}

/** A Response Object, through its `$ref`. */
const resolve = (doc, node) => (node?.$ref ? pointer(doc, node.$ref) : node);

/**
 * An Ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1) that knows the document's schemas as
 * `bridge#/$defs/<name>`. With `closed`, every object schema that lists its properties refuses
 * others, so a field the bridge sends but the document does not describe fails too.
 */
function schemaValidator(doc, { closed = false } = {}) {
  const ajv = new Ajv2020({ allErrors: true, strict: true, strictTypes: false, strictTuples: false });
  addFormats(ajv);
  for (const format of ["int32", "int64"]) ajv.addFormat(format, { type: "number", validate: Number.isInteger });
  for (const format of ["float", "double"]) ajv.addFormat(format, { type: "number", validate: () => true });
  // OpenAPI's own keywords in Schema Objects: annotations for validation.
  ajv.addVocabulary(["discriminator", "example", "xml", "externalDocs"]);
  const text = JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', '"bridge#/$defs/');
  const defs = JSON.parse(text);
  if (closed) {
    const close = (node) => {
      if (Array.isArray(node)) return node.forEach(close);
      if (!node || typeof node !== "object") return;
      if (node.properties && node.additionalProperties === undefined) node.unevaluatedProperties = false;
      Object.values(node).forEach(close);
    };
    close(defs);
  }
  ajv.addSchema({ $id: "bridge", $defs: defs });
  const compiled = new Map();
  return (schema, value) => {
    const key = JSON.stringify(schema);
    if (!compiled.has(key)) {
      const text = key.replaceAll('"#/components/schemas/', '"bridge#/$defs/');
      compiled.set(key, ajv.compile(JSON.parse(text)));
    }
    const validate = compiled.get(key);
    return validate(value) ? null : ajv.errorsText(validate.errors);
  };
}

test("the document is valid OpenAPI 3.1: official schema, unique operation ids, declared parameters, resolved references, every answer and its errors described", async () => {
  const bridge = await startBridge();
  try {
    const doc = await documentOf(bridge);
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(validator.version, "3.1");
    assert.ok(result.valid, `not valid OpenAPI 3.1:\n${JSON.stringify(result.errors, null, 1)?.slice(0, 4000)}`);

    // What the 3.1 schema cannot express.
    const ops = operations(doc);
    assert.ok(ops.length >= 27 + 7, `only ${ops.length} operations`);
    const ids = ops.map(({ op }) => op.operationId);
    assert.ok(ids.every((id) => typeof id === "string" && /^[a-z][A-Za-z]+$/.test(id)), `operation ids: ${ids}`);
    assert.deepEqual(ids.filter((id, i) => ids.indexOf(id) !== i), [], "operation ids are unique");
    for (const id of ["listNamespaces", "createNamespace", "createWebhook", "createApiKey", "listDeliveries", "listSockets", "listRooms", "listRoomMembers", "emitEvent"]) {
      assert.ok(ids.includes(id), `${id} is an operation`);
    }
    for (const { where, key, method, op } of ops) {
      const name = `${method} ${key}`;
      const templated = [...key.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const inPath = (op.parameters ?? []).filter((p) => p.in === "path").map((p) => p.name).sort();
      assert.deepEqual(inPath, where === "paths" ? templated : [], `${name}: path parameters are those of the template`);
      const responses = Object.entries(op.responses);
      assert.ok(responses.length > 0, `${name} has answers`);
      for (const [status, response] of responses) {
        assert.ok(resolve(doc, response)?.description, `${name} ${status} is described`);
      }
      if (where === "paths") {
        assert.ok(op.summary, `${name} has a summary`);
        const errors = responses.filter(([status]) => /^[45]/.test(status));
        assert.ok(errors.some(([status]) => status === "401"), `${name} answers 401`);
        for (const [status, response] of errors) {
          const schema = resolve(doc, response).content?.["application/json"]?.schema;
          assert.equal(schema?.$ref, "#/components/schemas/ErrorBody", `${name} ${status} is an ErrorBody`);
          assert.match(resolve(doc, response).description, /`[a-z_]+`/, `${name} ${status} names its error codes`);
        }
        if (op.requestBody) {
          for (const status of ["400", "413", "415"]) assert.ok(op.responses[status], `${name} answers ${status}`);
        }
      }
    }
    const deliveryFilters = ops.find(({ op }) => op.operationId === "listDeliveries").op.parameters;
    assert.deepEqual(
      deliveryFilters.map((p) => `${p.in}:${p.name}`).sort(),
      ["cursor", "limit", "namespace", "since", "status", "until", "webhook"].map((n) => `query:${n}`),
    );
    for (const id of ["listSockets", "listRooms", "listRoomMembers"]) {
      const namespace = ops.find(({ op }) => op.operationId === id).op.parameters.find((p) => p.name === "namespace");
      assert.deepEqual([namespace.in, namespace.required], ["query", true], `${id}: namespace is a required query parameter`);
    }

    // Every reference resolves.
    const refs = [...JSON.stringify(doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length > 50);
    for (const ref of new Set(refs)) assert.notEqual(pointer(doc, ref), undefined, `${ref} resolves`);

    // The tagged unions are oneOf named schemas with a discriminator.
    for (const [union, tag] of [["NamespaceAuth", "mode"], ["WebhookBody", "type"]]) {
      const schema = doc.components.schemas[union];
      assert.equal(schema.discriminator?.propertyName, tag, `${union} has a discriminator`);
      assert.ok(schema.oneOf.every((item) => item.$ref), `${union}: every variant is a named schema`);
    }

    // The main requests carry examples, and each is valid for its schema.
    const check = schemaValidator(doc);
    for (const id of ["createNamespace", "updateNamespace", "createWebhook", "updateWebhook", "createApiKey", "emitEvent", "emitBatch", "joinRooms", "leaveRooms", "disconnectSockets"]) {
      const media = ops.find(({ op }) => op.operationId === id).op.requestBody.content["application/json"];
      const examples = media.examples ? Object.values(media.examples).map((e) => e.value) : [media.example];
      assert.ok(examples.length > 0 && examples.every((e) => e !== undefined), `${id} has examples`);
      for (const example of examples) assert.equal(check(media.schema, example), null, `${id} example ${JSON.stringify(example)}`);
    }
  } finally {
    await bridge.stop();
  }
});

/**
 * An openapi-fetch middleware that checks every answer against the document: its status is one
 * the operation describes, and its JSON body fits that response's schema.
 */
function conformance(doc, failures) {
  const check = schemaValidator(doc, { closed: true });
  return {
    async onResponse({ request, response, schemaPath }) {
      const op = doc.paths[schemaPath]?.[request.method.toLowerCase()];
      const name = `${request.method} ${schemaPath}`;
      if (!op) return void failures.push(`${name}: not in the document`);
      const described = op.responses[String(response.status)] ?? op.responses[`${String(response.status)[0]}XX`] ?? op.responses.default;
      if (!described) return void failures.push(`${name}: ${response.status} is not described`);
      const schema = resolve(doc, described).content?.["application/json"]?.schema;
      const text = await response.clone().text();
      if (!schema) {
        if (text) failures.push(`${name}: ${response.status} has a body the document does not describe`);
        return;
      }
      const problem = check(schema, JSON.parse(text));
      if (problem) failures.push(`${name} ${response.status}: ${problem} in ${text.slice(0, 500)}`);
    },
  };
}

test("a client generated by openapi-typescript compiles under tsc --strict and runs the main flows against a bridge, every answer as documented", async () => {
  const bridge = await startBridge();
  const receiver = await startReceiver();
  const dir = mkdtempSync(join(tmpdir(), "bridge-openapi-"));
  const sockets = [];
  try {
    const doc = await documentOf(bridge);
    writeFileSync(join(dir, "openapi.json"), JSON.stringify(doc));
    const cli = join(here, "node_modules", "openapi-typescript", "bin", "cli.js");
    const generated = await run(process.execPath, [cli, "openapi.json", "--output", "schema.ts"], {
      cwd: dir,
      timeout: 60000,
      env: { ...process.env, NO_COLOR: "1", FORCE_COLOR: "0" },
    });
    // It prints its banner and the file written; anything else is a warning or an error.
    const noise = (generated.stdout + generated.stderr)
      .split("\n")
      .filter((line) => line.trim() && !/^✨ openapi-typescript \d/.test(line) && !/^🚀 openapi\.json → schema\.ts/.test(line));
    assert.deepEqual(noise, [], "openapi-typescript generates without a warning");
    copyFileSync(join(here, "openapi", "flows.ts"), join(dir, "flows.ts"));
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          noUncheckedIndexedAccess: true,
          target: "es2022",
          module: "nodenext",
          moduleResolution: "nodenext",
          outDir: "out",
          rootDir: ".",
          skipLibCheck: true,
          types: [],
          lib: ["es2022", "dom"],
          paths: { "openapi-fetch": [join(here, "node_modules", "openapi-fetch", "dist", "index.d.mts")] },
        },
        files: ["schema.ts", "flows.ts"],
      }),
    );
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    const tsc = join(here, "node_modules", "typescript", "bin", "tsc");
    await run(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: dir, timeout: 120000 }).catch((err) => {
      assert.fail(`tsc refused the generated client:\n${err.stdout}${err.stderr}`);
    });
    const types = readFileSync(join(dir, "schema.ts"), "utf8");
    for (const id of ["listNamespaces", "createNamespace", "createWebhook", "createApiKey", "listSockets", "emitEvent", "listDeliveries"]) {
      assert.ok(types.includes(`\n    ${id}: {\n`), `${id} is a generated operation`);
    }
    const flows = await import(pathToFileURL(join(dir, "out", "flows.js")).href);

    const failures = [];
    const outcome = await flows.mainFlows({
      createClient,
      adminUrl: bridge.adminUrl,
      publicUrl: bridge.url,
      adminToken: bridge.token,
      receiverUrl: receiver.url,
      middleware: conformance(doc, failures),
      async connect(namespace) {
        const socket = await connected("v4", `${bridge.url}${namespace}`);
        sockets.push(socket);
        const received = [];
        onAnyEvent(socket, (...args) => received.push(args));
        return { id: socket.id, received: () => received, emit: (...args) => socket.emit(...args) };
      },
      delivered: () => receiver.received.map((r) => ({ webhookId: r.headers["webhook-id"], body: r.json })),
      waitFor: (check, what) => until(check, 10000, what),
    });

    assert.deepEqual(failures, [], "every answer is as the document describes it");
    assert.equal(outcome.namespace.name, "/generated");
    assert.equal(outcome.webhook.durable, true);
    assert.match(outcome.webhook.secret, /^whsec_/);
    assert.match(outcome.key.key, /^bk_/);
    assert.deepEqual(outcome.listed.sockets.map((s) => s.id), [outcome.socketId]);
    assert.deepEqual(outcome.emitted, { ok: true });
    assert.equal(outcome.batch.results.length, 2);
    assert.deepEqual(outcome.batch.results[0], { ok: true });
    assert.equal(outcome.batch.results[1].error.code, "forbidden");
    // Five deliveries, two a page: three pages, each delivery once, newest first.
    const sent = receiver.received.map((r) => r.headers["webhook-id"]);
    assert.equal(outcome.pages, 3);
    assert.deepEqual([...outcome.deliveryIds].sort(), [...sent].sort());
    assert.equal(outcome.delivery.id, outcome.deliveryIds[0]);
    const body = receiver.received.find((r) => r.headers["webhook-id"] === outcome.delivery.id).json;
    assert.deepEqual(outcome.delivery.payload, body);
    assert.deepEqual(outcome.described.sort(), [0, 1, 2, 3, 4].map((n) => `event tick (1 args, ack false) from ${outcome.socketId} #${n + 1}`).sort());
    assert.deepEqual(outcome.missing, { status: 404, code: "not_found" });
  } finally {
    for (const socket of sockets) socket.close();
    receiver.close();
    await bridge.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

/** The `webhooks` entry a body is sent as. */
const hookOf = (body) => (body.type === "event" ? "event" : body.type === "batch" ? "batch" : `$${body.type}`);

test("every body a running bridge sends, its headers and the replies it applies fit the document's webhooks schemas", async () => {
  const bridge = await startBridge();
  const replies = [];
  const answer = (reply) => {
    replies.push(reply);
    return { body: reply };
  };
  const receiver = await startReceiver(({ path, json }) => {
    if (path !== "/reply") return {};
    if (json.type === "connect") return answer({ user_id: 42, join: ["lobby"], emit: [{ event: "welcome", args: ["hi", 1] }] });
    if (json.type === "event" && json.ack) {
      return answer({ ack_args: ["saved", { n: json.args[0].n }], join: ["r2"], leave: ["lobby"], emit: [{ event: "echo", data: { seq: json.seq } }] });
    }
    return answer({});
  });
  let socket;
  try {
    const doc = await documentOf(bridge);
    assert.deepEqual(
      Object.keys(doc.webhooks ?? {}).sort(),
      ["$connect", "$disconnect", "$join", "$leave", "$room_occupied", "$room_vacated", "batch", "event"],
      "the document's webhooks section has an entry per subscription",
    );
    const check = schemaValidator(doc, { closed: true });
    const ns = await bridge.createNamespace({ name: "/hooks" });
    await bridge.createWebhook(ns.id, { url: `${receiver.url}/reply`, events: ["*", "$connect"], reply: true });
    await bridge.createWebhook(ns.id, { url: `${receiver.url}/plain`, events: ["$disconnect", "$room_occupied", "$room_vacated", "$join", "$leave"] });
    await bridge.createWebhook(ns.id, { url: `${receiver.url}/batch`, events: ["*", "$connect", "$disconnect", "$join"], batch: { max_wait_ms: 50 } });

    // Listening before the connection: the $connect reply's emit comes right after it.
    socket = connect("v4", `${bridge.url}/hooks`, { transports: ["websocket"] });
    const received = [];
    onAnyEvent(socket, (...args) => received.push(args));
    await next(socket, "connect");
    const echo = next(socket, "echo");
    const ack = await emitWithAck(socket, "save", { n: 7 }, Buffer.from([1, 2, 3]));
    assert.deepEqual(ack, ["saved", { n: 7 }], "the reply's ack_args are the acknowledgement");
    assert.equal((await echo)[0].seq, 1, "the reply's emit reaches the socket");
    socket.emit("note", "no ack", null);
    await receiver.waitFor((all) => all.some((r) => r.json?.event === "note"), 10000);
    assert.deepEqual(received.find(([event]) => event === "welcome"), ["welcome", "hi", 1], "the $connect reply's emit reaches the socket");
    socket.close();
    const kinds = ["event", "connect", "disconnect", "room_occupied", "room_vacated", "join", "leave"];
    await receiver.waitFor((all) => kinds.every((kind) => all.some((r) => r.json?.type === kind)) && all.filter((r) => r.json?.type === "room_vacated").length === 2, 10000);
    const batched = () => receiver.received.filter((r) => r.path === "/batch").flatMap((r) => r.json.deliveries.map((d) => d.body.type));
    await receiver.waitFor(() => batched().includes("disconnect"), 10000);
    assert.deepEqual([...new Set(batched())].sort(), ["connect", "disconnect", "event", "join"], "a batched webhook gets its lifecycle deliveries in batches too");

    // The $connect reply named the user and joined lobby; the event's reply joined r2 and left lobby.
    const plain = receiver.received.filter((r) => r.path === "/plain").map((r) => r.json);
    for (const room of ["lobby", "r2"]) {
      const kinds = plain.filter((body) => body.room === room).map((body) => body.type);
      assert.deepEqual(kinds, ["room_occupied", "join", "leave", "room_vacated"], `${room}'s deliveries`);
    }
    assert.equal(receiver.received.find((r) => r.json.type === "join").json.socket.user_id, "42");

    for (const delivery of receiver.received) {
      const body = delivery.json;
      const hook = doc.webhooks[hookOf(body)]?.post;
      assert.ok(hook, `a webhook entry for ${body.type}`);
      const schema = hook.requestBody.content["application/json"].schema;
      assert.equal(check(schema, body), null, `${hookOf(body)} body ${delivery.raw}`);
      if (body.type === "batch") {
        for (const entry of body.deliveries) assert.equal(check({ $ref: "#/components/schemas/WebhookBody" }, entry.body), null, `batched WebhookBody ${JSON.stringify(entry)}`);
      } else {
        assert.equal(check({ $ref: "#/components/schemas/WebhookBody" }, body), null, `WebhookBody ${delivery.raw}`);
      }
      for (const header of hook.parameters.filter((p) => p.in === "header")) {
        const value = delivery.headers[header.name];
        assert.ok(value !== undefined || !header.required, `${header.name} is sent`);
        assert.equal(check(header.schema, value), null, `${header.name}: ${value}`);
      }
    }
    const event = receiver.received.find((r) => r.json.event === "save").json;
    assert.deepEqual(event.args[1], { $binary: Buffer.from([1, 2, 3]).toString("base64") });
    const replySchema = doc.webhooks.event.post.responses["2XX"].content["application/json"].schema;
    assert.deepEqual(doc.webhooks.$connect.post.responses["2XX"].content["application/json"].schema, replySchema);
    assert.ok(replies.length >= 3);
    for (const reply of replies) assert.equal(check(replySchema, reply), null, `reply ${JSON.stringify(reply)}`);

    // The schemas are not vacuous: what the bridge would never send, or read, is refused.
    const connectBody = receiver.received.find((r) => r.json.type === "connect").json;
    const { seq, ...noSeq } = connectBody;
    assert.equal(seq, 0);
    assert.notEqual(check(doc.webhooks.$connect.post.requestBody.content["application/json"].schema, noSeq), null);
    assert.notEqual(check({ $ref: "#/components/schemas/WebhookBody" }, { ...event, type: "connect" }), null);
    assert.notEqual(check({ $ref: "#/components/schemas/WebhookBody" }, { ...event, extra: 1 }), null, "closed for the test");
    const batchSchema = doc.webhooks.batch.post.requestBody.content["application/json"].schema;
    const aBatch = receiver.received.find((r) => r.path === "/batch").json;
    assert.notEqual(check(batchSchema, { ...aBatch, type: "event" }), null);
    assert.notEqual(check(batchSchema, { type: "batch", deliveries: [{ id: aBatch.deliveries[0].id, body: { ...event, extra: 1 } }] }), null);
    assert.notEqual(check(batchSchema, { type: "batch", deliveries: [] }), null);
    assert.notEqual(check(replySchema, { join: "lobby" }), null);
    assert.notEqual(check(replySchema, { emit: [{ data: 1 }] }), null);
  } finally {
    socket?.close();
    receiver.close();
    await bridge.stop();
  }
});
