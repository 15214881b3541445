/**
 * Peer server for `deno task bench --peers`: the chat on Node's `ws` package
 * (npm, installed by bench/peers.ts into bench/.peers). Same behaviour as
 * bench/duplex_server.ts for the original protocol: a request
 * `{"sequence":n,"type":1,"message":m}` from user U is relayed as
 * `{"sequence":n,"type":3,"message":m,"from":U}` to every other connection
 * and answered `{"sequence":n,"type":2,"message":"ok"}`. Listens on
 * 127.0.0.1 port 0 and prints `{"port": N}`; `GET /rss` answers the RSS in
 * bytes after a full GC (run node with --expose-gc).
 *
 *   DUPLEX_PEERS=bench/.peers node --expose-gc bench/peers/ws_server.cjs
 */
"use strict";
const process = require("node:process");
const http = require("node:http");
const path = require("node:path");
const { WebSocketServer } = require(
  path.join(process.env.DUPLEX_PEERS, "node_modules", "ws"),
);

const server = http.createServer((request, response) => {
  if (request.url === "/rss") {
    globalThis.gc?.();
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ rss: process.memoryUsage().rss }));
    return;
  }
  response.writeHead(404);
  response.end();
});

const chat = new WebSocketServer({ server });
chat.on("connection", (socket, request) => {
  const user = new URL(request.url, "http://localhost").searchParams.get(
    "user",
  ) ?? "";
  socket.on("error", () => {});
  socket.on("message", (data) => {
    const frame = JSON.parse(String(data));
    if (frame.type !== 1) return;
    const notify = JSON.stringify({
      sequence: frame.sequence,
      type: 3,
      message: frame.message,
      from: user,
    });
    for (const other of chat.clients) {
      if (other !== socket && other.readyState === 1) other.send(notify);
    }
    socket.send(
      JSON.stringify({ sequence: frame.sequence, type: 2, message: "ok" }),
    );
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ port: server.address().port }));
});
process.on("SIGTERM", () => process.exit(0));
