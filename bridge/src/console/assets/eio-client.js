// A small Socket.IO client (Engine.IO 4 over WebSocket, text packets) for the playground, written
// here so that nothing is fetched from a CDN or copied into the repo. It connects to one
// namespace, answers heartbeats, emits with or without an acknowledgement, and reports events,
// acks and disconnects through callbacks. Binary attachments are not supported.
"use strict";

class PlaygroundSocket {
  /** `auth` goes in the CONNECT packet; `query` on the URL. */
  constructor({ namespace, auth, query, onEvent, onStatus }) {
    this.prefix = namespace === "/" ? "" : `${namespace},`;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.acks = new Map();
    this.nextAck = 1;
    const params = new URLSearchParams({ EIO: "4", transport: "websocket", ...(query ?? {}) });
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(`${scheme}//${location.host}/socket.io/?${params}`);
    this.ws.onmessage = (message) => this.receive(String(message.data));
    this.ws.onclose = () => this.onStatus("closed", "the connection closed");
    this.auth = auth;
  }

  receive(packet) {
    if (packet === "2") return this.ws.send("3");
    if (packet.startsWith("0")) return this.ws.send(`40${this.prefix}${this.auth ? JSON.stringify(this.auth) : ""}`);
    if (packet === "1") return this.onStatus("closed", "the server closed the session");
    const socketPacket = packet.slice(1);
    const type = socketPacket[0];
    let rest = socketPacket.slice(1);
    if (this.prefix && rest.startsWith(this.prefix)) rest = rest.slice(this.prefix.length);
    const digits = rest.match(/^\d*/)[0];
    const body = rest.slice(digits.length);
    const data = body ? JSON.parse(body) : undefined;
    if (type === "0") {
      this.id = data?.sid;
      this.onStatus("connected", `connected as ${this.id}`);
    } else if (type === "4") {
      this.onStatus("refused", `connect_error: ${JSON.stringify(data)}`);
    } else if (type === "1") {
      this.onStatus("disconnected", "disconnected by the server");
    } else if (type === "2") {
      const [event, ...args] = data;
      this.onEvent(event, args);
    } else if (type === "3") {
      const resolve = this.acks.get(Number(digits));
      this.acks.delete(Number(digits));
      resolve?.(data);
    }
  }

  /** Emits `event` with `args`; with `withAck`, resolves with the acknowledgement's arguments. */
  emit(event, args, withAck) {
    const payload = JSON.stringify([event, ...args]);
    if (!withAck) {
      this.ws.send(`42${this.prefix}${payload}`);
      return Promise.resolve(undefined);
    }
    const id = this.nextAck++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => (this.acks.delete(id), reject(new Error("no ack within 10 s"))), 10000);
      this.acks.set(id, (data) => (clearTimeout(timer), resolve(data)));
      this.ws.send(`42${this.prefix}${id}${payload}`);
    });
  }

  close() {
    this.ws.close();
  }
}

window.PlaygroundSocket = PlaygroundSocket;
