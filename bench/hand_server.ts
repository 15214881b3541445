/**
 * The hand-written Deno chat server: `Deno.serve` + `Deno.upgradeWebSocket`
 * and the reference chat in a few lines, the floor of any server that
 * speaks the protocol. A request `{"sequence":n,"type":1,"message":m}` from
 * user U is parsed (`JSON.parse`), relayed as
 * `{"sequence":n,"type":3,"message":m,"from":U}` to every other connection
 * and answered `{"sequence":n,"type":2,"message":"ok"}` (`JSON.stringify`),
 * as bench/peers/ws_server.cjs does on Node. No validation, no limits, no
 * errors, no extensions: it accepts the `duplex.v1` subprotocol when offered
 * only so that the same lean client runs against it on both wires.
 *
 * Listens like bench/raw_server.ts (127.0.0.1 port 0, plus `BENCH_HOSTS`),
 * prints `{"port": N}` once listening; `GET /rss` answers the process RSS in
 * bytes after a full GC.
 *
 * @module
 */

import { listenAll, rssOrUpgrade } from "./listen.ts";

const sockets = new Set<WebSocket>();

listenAll((request) => {
  const upgraded = rssOrUpgrade(request);
  if (upgraded instanceof Response) return upgraded;
  const { socket, response } = upgraded;
  const url = new URL(request.url);
  const user = url.searchParams.get("user") ?? "";
  socket.onopen = () => sockets.add(socket);
  socket.onclose = () => sockets.delete(socket);
  socket.onerror = () => {};
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type !== 1) return;
    if (sockets.size > 1) {
      const notify = JSON.stringify({
        sequence: frame.sequence,
        type: 3,
        message: frame.message,
        from: user,
      });
      for (const other of sockets) {
        if (other !== socket && other.readyState === 1) other.send(notify);
      }
    }
    socket.send(
      JSON.stringify({ sequence: frame.sequence, type: 2, message: "ok" }),
    );
  };
  return response;
});
