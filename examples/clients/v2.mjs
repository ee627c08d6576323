// A socket.io-client v2 user of the JWT namespace /private, token in the query. Ctrl-C to stop.
import io from "socket.io-client-v2";

const socket = io(`${process.env.BRIDGE_URL ?? "http://127.0.0.1:3000"}/private`, { query: { token: process.env.TOKEN } });
socket.on("connect", () => {
  console.log(`connected as ${socket.id}`);
  socket.emit("chat:message", { text: "hello from a v2 client" }, (ack) => console.log("ack", JSON.stringify(ack)));
});
socket.on("chat:message", (message) => console.log("chat:message", JSON.stringify(message)));
socket.on("error", (err) => console.log("error", JSON.stringify(err)));
