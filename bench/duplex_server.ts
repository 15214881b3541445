/**
 * The Duplex side of the benchmark: the real chat server (`createChatServer`
 * from server.ts) with its per-connection rate limit off, so that the
 * pipelined workload measures speed rather than the flood defence. Prints
 * `{"port": N}` on stdout once listening; `GET /rss` answers the process RSS
 * in bytes after a full GC.
 */

import { createChatServer } from "../server.ts";

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

const chat = createChatServer({ rateLimit: false, maxInFlight: 100_000 });

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen({ port }) {
    console.log(JSON.stringify({ port }));
  },
}, (request, info) => {
  if (new URL(request.url).pathname === "/rss") {
    gc();
    return Response.json({ rss: Deno.memoryUsage().rss });
  }
  return chat.fetch(request, info);
});

Deno.addSignalListener("SIGTERM", () => {
  server.shutdown();
  Deno.exit(0);
});
