/**
 * Peer server for `deno task bench --peers`: the chat on Socket.IO 4 (npm,
 * installed by bench/peers.ts into bench/.peers), WebSocket transport only.
 * An event `message` with an ack from user U is broadcast to every other
 * socket as `message` `{message, from: U}` and acknowledged with "ok" — on
 * the wire `42n["message","hello"]` in, `42["message",{...}]` out to the
 * others and `43n["ok"]` back. Listens on 127.0.0.1 port 0 and prints
 * `{"port": N}`; `GET /rss` answers the RSS in bytes after a full GC (run
 * node with --expose-gc).
 *
 *   DUPLEX_PEERS=bench/.peers node --expose-gc bench/peers/socketio_server.cjs
 */
"use strict";
const process = require("node:process");
const http = require("node:http");
const path = require("node:path");
const { Server } = require(
  path.join(process.env.DUPLEX_PEERS, "node_modules", "socket.io"),
);

const server = http.createServer((request, response) => {
  if (request.url === "/rss") {
    globalThis.gc?.();
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ rss: process.memoryUsage().rss }));
  }
  // Other requests: Socket.IO answers its own path; nothing else is asked.
});

const io = new Server(server, {
  transports: ["websocket"],
  serveClient: false,
});
io.on("connection", (socket) => {
  const user = String(socket.handshake.query.user ?? "");
  socket.on("message", (message, ack) => {
    socket.broadcast.emit("message", { message, from: user });
    if (typeof ack === "function") ack("ok");
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
