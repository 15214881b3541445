/**
 * When Deno writes a WebSocket message: a raw Deno echo server (its own
 * process) that, after `send`, queues a microtask doing `busy` µs of work
 * (a spin on the clock), against the same echo doing none. If the message
 * left at `send`, the round trip would not change; it grows by the work's
 * length, because Deno writes the message only once the turn's microtasks
 * are done (docs/performance.md "Sequential calls with batch frames: the
 * hops before the write"). Sequential round trips of one byte from a raw
 * Deno client, the two servers in turn (blocks of 1,000 after a warm-up),
 * the server on CPU 1 and this client on CPU 0 when `taskset` exists.
 *
 *   deno run -A bench/write_after_microtasks.ts [busyMicroseconds] [rounds]
 *
 * Prints the p50 of each server and their difference, then one JSON line.
 *
 * @module
 */

import { median } from "./stats.ts";
import { open, wireFor } from "./lean_client.ts";
import {
  onCpu1,
  pinToCpu0,
  type RunningServer,
  spawnServer,
} from "./process.ts";

const [busyText = "30", roundsText = "10000"] = Deno.args;
const busy = Number(busyText);
const rounds = Number(roundsText);
const BLOCK = 1_000;

/** The echo: `--serve <busy>` prints its port, then echoes until killed. */
function serve(busyUs: number): void {
  const spin = () => {
    const end = performance.now() + busyUs / 1_000;
    while (performance.now() < end) {
      // The work queued after the send.
    }
  };
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => {
        socket.send(event.data);
        if (busyUs > 0) queueMicrotask(spin);
      };
      return response;
    },
  );
  console.log(JSON.stringify({ port: http.addr.port }));
}

/** Starts an echo in its own process (on CPU 1 when `pinned`). */
function start(busyUs: number, pinned: boolean): Promise<RunningServer> {
  return spawnServer(onCpu1([
    Deno.execPath(),
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    "--serve",
    String(busyUs),
  ], pinned));
}

/** One round trip of one byte, in ms. */
function roundTrip(socket: WebSocket): Promise<number> {
  const started = performance.now();
  return new Promise((resolve) => {
    socket.onmessage = () => resolve(performance.now() - started);
    socket.send("x");
  });
}

if (Deno.args[0] === "--serve") {
  serve(Number(Deno.args[1]));
} else {
  const pin = await pinToCpu0();
  const servers = [await start(0, pin), await start(busy, pin)];
  const sockets = await Promise.all(
    servers.map(({ port }) =>
      open(wireFor("original"), "127.0.0.1", port, "x")
    ),
  );
  const times: number[][] = [[], []];
  for (const socket of sockets) {
    for (let i = 0; i < BLOCK; i++) await roundTrip(socket);
  }
  for (let block = 0; block * BLOCK < rounds; block++) {
    for (let k = 0; k < 2; k++) {
      const which = (block + k) % 2;
      for (let i = 0; i < BLOCK; i++) {
        times[which].push(await roundTrip(sockets[which]));
      }
    }
  }
  for (const socket of sockets) socket.close();
  await Promise.all(servers.map((server) => server.stop()));
  const p50 = times.map((list) => median(list) * 1_000);
  console.log(`echo:                           p50 ${p50[0].toFixed(1)} µs`);
  console.log(
    `echo, then ${busy} µs in a microtask: p50 ${p50[1].toFixed(1)} µs`,
  );
  console.log(`difference: ${(p50[1] - p50[0]).toFixed(1)} µs`);
  console.log(JSON.stringify({ busyUs: busy, p50Us: p50, pinned: pin }));
}
