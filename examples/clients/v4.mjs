// A socket.io-client v4 user of /chat: says hello, prints what arrives. Ctrl-C to stop.
import { io } from "socket.io-client";

const socket = io(`${process.env.BRIDGE_URL ?? "http://127.0.0.1:3000"}/chat`, { auth: { name: process.env.NAME ?? "ann" } });
socket.on("connect", () => {
  console.log(`connected as ${socket.id}`);
  socket.emit("chat:message", { text: "hello from a v4 client" }, (ack) => console.log("ack", JSON.stringify(ack)));
});
socket.on("chat:message", (message) => console.log("chat:message", JSON.stringify(message)));
socket.on("connect_error", (err) => console.log("connect_error", err.message));
