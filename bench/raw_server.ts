/**
 * The raw baseline: `Deno.serve` + `Deno.upgradeWebSocket`, no protocol layer.
 * It echoes every message back to its sender, except messages whose text
 * starts with `{"sequence"` and arrive on a connection opened with
 * `?fanout=sender`: those are forwarded as they are to every other
 * connection (the cheapest possible broadcast), and the sender gets an echo.
 * A client that offers the `duplex.v1` subprotocol gets it echoed back, so
 * the same lean client can run against both servers.
 *
 * Listens on 127.0.0.1 port 0, and on the same port of every further
 * loopback address listed in `BENCH_HOSTS` (comma-separated, e.g.
 * `127.0.0.1,127.0.0.2`: more addresses, more client ports for the 100,000
 * connection workload). Prints `{"port": N}` on stdout once listening.
 * `GET /rss` answers the process RSS in bytes after a full GC.
 *
 * @module
 */

import { listenAll, rssOrUpgrade } from "./listen.ts";

const sockets = new Set<WebSocket>();

function handler(request: Request): Response {
  const upgraded = rssOrUpgrade(request);
  if (upgraded instanceof Response) return upgraded;
  const { socket, response } = upgraded;
  const url = new URL(request.url);
  const sender = url.searchParams.get("fanout") === "sender";
  socket.onopen = () => sockets.add(socket);
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => {};
  socket.onmessage = sender
    ? (event) => {
      for (const other of sockets) {
        if (other !== socket && other.readyState === 1) other.send(event.data);
      }
      socket.send(event.data);
    }
    : (event) => socket.send(event.data);
  return response;
}

listenAll(handler);
