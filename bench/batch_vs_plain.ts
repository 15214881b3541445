/**
 * Sequential round trips to ONE bench server (bench/duplex_server.ts, its
 * own process) over two connections of one user: one offering `duplex.v1`
 * alone, one offering `duplex.v1` and `duplex.batch`, in turn (blocks of
 * 1,000, each starting one kind later), after a warm-up. The same server
 * process, the same user, the same client code: what differs is only the
 * server's path for a batch-reading client (its `CoalescingSocket`), so
 * the row "sequential round trips (unchanged)" of `deno task bench` can be
 * told apart from the machine's drift between two servers
 * (docs/performance.md "Sequential calls with batch frames"). The server
 * runs on CPU 1 and this client on CPU 0 when `taskset` exists.
 *
 *   deno run -A bench/batch_vs_plain.ts [rounds per kind]
 *
 * Prints mean, p50, p90 and p99 of each kind (µs) and batch/plain of the
 * means, then one JSON line.
 *
 * @module
 */

import { median } from "./stats.ts";
import { onCpu1, pinToCpu0, spawnServer } from "./process.ts";
import { open, wireFor } from "./lean_client.ts";

const rounds = Number(Deno.args[0] ?? 40_000);
const BLOCK = 1_000;

let sequence = 0;

/** One request and its response (a batch frame is never expected here). */
function roundTrip(socket: WebSocket): Promise<number> {
  const asked = ++sequence;
  const started = performance.now();
  return new Promise((resolve) => {
    socket.onmessage = (event) => {
      if (JSON.parse(event.data).sequence === asked) {
        resolve(performance.now() - started);
      }
    };
    socket.send(`{"sequence":${asked},"type":1,"message":"hello"}`);
  });
}

function figures(times: number[]) {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.floor(q * (sorted.length - 1))] * 1e3;
  const mean = sorted.reduce((sum, t) => sum + t, 0) / sorted.length * 1e3;
  return { mean, p50: median(sorted) * 1e3, p90: at(0.9), p99: at(0.99) };
}

const pin = await pinToCpu0();
const server = await spawnServer(onCpu1([
  Deno.execPath(),
  "run",
  "-A",
  new URL("duplex_server.ts", import.meta.url).pathname,
], pin));
// One user: the bench server's relay notifies the others, here nobody.
const kinds = {
  plain: await open(wireFor("duplex.v1"), "127.0.0.1", server.port, "ab"),
  batch: await open(wireFor("batch"), "127.0.0.1", server.port, "ab"),
};
const names = ["plain", "batch"] as const;
const times: Record<string, number[]> = { plain: [], batch: [] };
for (const name of names) {
  for (let i = 0; i < BLOCK; i++) await roundTrip(kinds[name]);
}
for (let block = 0; block * BLOCK < rounds; block++) {
  for (let k = 0; k < names.length; k++) {
    const name = names[(block + k) % names.length];
    await roundTrip(kinds[name]);
    for (let i = 0; i < BLOCK; i++) {
      times[name].push(await roundTrip(kinds[name]));
    }
  }
}
for (const socket of Object.values(kinds)) socket.close();
await server.stop();
const result = {
  plain: figures(times.plain),
  batch: figures(times.batch),
  pinned: pin,
};
for (const name of names) {
  const { mean, p50, p90, p99 } = result[name];
  console.log(
    `${name.padEnd(5)} mean ${mean.toFixed(1)} p50 ${p50.toFixed(1)} p90 ${
      p90.toFixed(1)
    } p99 ${p99.toFixed(1)} µs`,
  );
}
console.log(
  `batch/plain, means: ${
    (result.batch.mean / result.plain.mean).toFixed(3)
  }, p50: ${(result.batch.p50 / result.plain.p50).toFixed(3)}`,
);
console.log(JSON.stringify(result));
