// The playground: connect as a v4 client, emit with or without an ack, and watch acks, pushed
// events and disconnects. How a developer checks a webhook backend by hand.
"use strict";

const $ = (id) => document.getElementById(id);
let socket = null;

function log(kind, text) {
  const line = document.createElement("div");
  line.textContent = `${new Date().toISOString().slice(11, 23)}  ${kind.padEnd(10)} ${text}`;
  line.dataset.kind = kind;
  $("log").append(line);
  $("log").scrollTop = $("log").scrollHeight;
}

function setConnected(connected) {
  $("emit").disabled = !connected;
  $("disconnect").disabled = !socket;
  $("connect").disabled = !!socket;
}

$("connect-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const token = form.get("token");
  const mode = form.get("mode");
  socket = new PlaygroundSocket({
    namespace: form.get("namespace"),
    auth: token && mode === "auth" ? { token } : undefined,
    query: token && mode === "query" ? { token } : undefined,
    onEvent: (name, args) => log("event", `${name} ${JSON.stringify(args)}`),
    onStatus: (status, text) => {
      $("status").textContent = text;
      log(status, text);
      if (status === "connected" && token && mode === "authenticate") {
        socket.emit("authenticate", [{ token }], false);
      }
      if (status !== "connected") socket = status === "closed" || status === "refused" ? null : socket;
      setConnected(status === "connected");
    },
  });
  setConnected(false);
});

$("disconnect").addEventListener("click", () => {
  socket?.close();
  socket = null;
  setConnected(false);
});

$("emit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("error").hidden = true;
  const form = new FormData(event.target);
  let args;
  try {
    args = JSON.parse(form.get("args"));
    if (!Array.isArray(args)) throw new Error("the arguments must be a JSON array");
  } catch (err) {
    $("error").textContent = `arguments: ${err.message}`;
    $("error").hidden = false;
    return;
  }
  const name = form.get("event");
  log("emit", `${name} ${JSON.stringify(args)}`);
  try {
    const ack = await socket.emit(name, args, form.get("ack") === "on");
    if (ack !== undefined) log("ack", JSON.stringify(ack));
  } catch (err) {
    log("error", err.message);
  }
});
