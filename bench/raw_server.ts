/**
 * The raw baseline: `Deno.serve` + `Deno.upgradeWebSocket`, no protocol layer.
 * It echoes every message back to its sender, except messages whose text
 * starts with `{"sequence"` and arrive on a connection opened with
 * `?fanout=sender`: those are forwarded as they are to every other
 * connection (the cheapest possible broadcast), and the sender gets an echo.
 *
 * Prints `{"port": N}` on stdout once listening. `GET /rss` answers the
 * process RSS in bytes after a full GC.
 */

const sockets = new Set<WebSocket>();

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen({ port }) {
    console.log(JSON.stringify({ port }));
  },
}, (request) => {
  const url = new URL(request.url);
  if (url.pathname === "/rss") {
    gc();
    return Response.json({ rss: Deno.memoryUsage().rss });
  }
  const { socket, response } = Deno.upgradeWebSocket(request);
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
});

Deno.addSignalListener("SIGTERM", () => {
  server.shutdown();
  Deno.exit(0);
});
