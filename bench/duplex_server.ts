/**
 * The Duplex side of the benchmark: a `DuplexServer` (server.ts) with the
 * chat's relay — a request from U is sent as a notify with `from: U` to every
 * other user, then answered "ok" — as in the reference chat. Two differences
 * from `createChatServer()`, both so that the run measures the protocol layer
 * against the raw baseline: no presence (each of 5,000 joins would notify
 * every user already there: 12.5 million frames of setup that the raw server
 * does not send), and no per-connection rate limit (the pipelined workload
 * would trip the flood defence). Listens like bench/raw_server.ts (127.0.0.1
 * port 0, plus `BENCH_HOSTS`) and prints `{"port": N}` once listening;
 * `GET /rss` answers the process RSS in bytes after a full GC.
 *
 * @module
 */

import { DuplexServer } from "../server.ts";
import { listenAll } from "./listen.ts";

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

const chat = new DuplexServer({
  rateLimit: false,
  maxInFlight: 100_000,
  maxConnections: 100_000,
  maxConnectionsPerAddress: 100_000,
});
chat.onRequest((message, { from, sequence }) => {
  chat.notify(message, { except: from, from, sequence });
  return "ok";
});

listenAll((request, info) => {
  if (new URL(request.url).pathname === "/rss") {
    gc();
    return Response.json({ rss: Deno.memoryUsage().rss });
  }
  return chat.fetch(request, info);
});
