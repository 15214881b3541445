/**
 * Shared start-up of the Deno benchmark servers: listen on 127.0.0.1 port 0,
 * then on the same port of every other loopback address in `BENCH_HOSTS`,
 * print `{"port": N}`, and stop on SIGTERM.
 *
 * @module
 */

/** The loopback addresses to listen on: `BENCH_HOSTS`, or 127.0.0.1. */
export function benchHosts(): string[] {
  const hosts = (Deno.env.get("BENCH_HOSTS") ?? "127.0.0.1").split(",");
  for (const host of hosts) {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) {
      throw new RangeError(`Cannot listen on ${host}: not a loopback address`);
    }
  }
  return hosts;
}

/**
 * Serves `handler` on every benchmark address (one port for all), prints
 * `{"port": N}` on stdout and exits 0 on SIGTERM.
 *
 * @param handler The `Deno.serve` handler.
 * @returns The port, once every listener is up.
 */
export function listenAll(handler: Deno.ServeHandler): number {
  const [first, ...rest] = benchHosts();
  const noop = () => {};
  const servers = [
    Deno.serve({ hostname: first, port: 0, onListen: noop }, handler),
  ];
  const { port } = servers[0].addr;
  for (const hostname of rest) {
    servers.push(Deno.serve({ hostname, port, onListen: noop }, handler));
  }
  console.log(JSON.stringify({ port }));
  Deno.addSignalListener("SIGTERM", () => {
    for (const server of servers) server.shutdown();
    Deno.exit(0);
  });
  return port;
}

/**
 * The `/rss` answer of a benchmark server (its RSS in bytes after a full
 * GC, with `--expose-gc`), or else the WebSocket upgrade of `request`,
 * answering `duplex.v1` when the client offers it (so that the same lean
 * client runs on both wires against servers that ignore the subprotocol).
 *
 * @param request The request.
 * @returns The `/rss` response, or the upgraded socket and its response.
 */
export function rssOrUpgrade(
  request: Request,
): Response | { socket: WebSocket; response: Response } {
  if (new URL(request.url).pathname === "/rss") {
    (globalThis as { gc?: () => void }).gc?.();
    return Response.json({ rss: Deno.memoryUsage().rss });
  }
  const offered = request.headers.get("sec-websocket-protocol") ?? "";
  return Deno.upgradeWebSocket(request, {
    protocol: offered.split(",").some((p) => p.trim() === "duplex.v1")
      ? "duplex.v1"
      : undefined,
  });
}
