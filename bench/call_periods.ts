/**
 * Periodic stalls in sequential calls: our `Client` (default options, or the
 * JSON given) against the bench server (bench/duplex_server.ts, in its own
 * process) makes `count` sequential calls after a warm-up, then lays their
 * latencies out by call index modulo each period (16 to 1,024, and 625: the
 * `ackEvery` a default server asks for) and prints, per period, the residue
 * with the most slow calls (over 10 times the median) against what chance
 * gives, and that residue's mean latency. A stall tied to a count (an ack
 * every n frames, a timer every n calls) shows as one residue far above
 * chance; scheduler and collector pauses spread evenly.
 *
 *   deno run -A bench/call_periods.ts [count] [client options as JSON]
 *
 * Found with it: one call in 625 waited ~3 ms for the answer to an ack
 * (docs/performance.md, "A second Nagle pause").
 *
 * @module
 */

import { Client, type ClientOptions } from "../client.ts";
import { spawnServer } from "./process.ts";

const PERIODS = [16, 32, 64, 100, 128, 256, 500, 512, 625, 1000, 1024];

/** The residue of `period` with the most slow calls, and its figures. */
function worstResidue(
  latencies: Float64Array,
  period: number,
  slow: number,
): { residue: number; slow: number; calls: number; meanMs: number } {
  const counts = new Float64Array(period);
  const sums = new Float64Array(period);
  for (let i = 0; i < latencies.length; i++) {
    if (latencies[i] > slow) counts[i % period]++;
    sums[i % period] += latencies[i];
  }
  let residue = 0;
  for (let r = 1; r < period; r++) {
    if (counts[r] > counts[residue]) residue = r;
  }
  const calls = Math.ceil((latencies.length - residue) / period);
  return {
    residue,
    slow: counts[residue],
    calls,
    meanMs: sums[residue] / calls,
  };
}

if (import.meta.main) {
  const count = Number(Deno.args[0] ?? 20_000);
  const options: ClientOptions = JSON.parse(Deno.args[1] ?? "{}");
  const server = await spawnServer([
    Deno.execPath(),
    "run",
    "-A",
    new URL("duplex_server.ts", import.meta.url).pathname,
  ]);
  const client = new Client(`ws://127.0.0.1:${server.port}/?user=periods`, {
    maxAttempts: 0,
    ...options,
  });
  try {
    await client.connect();
    for (let i = 0; i < 2_000; i++) await client.request("hello");
    const latencies = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const started = performance.now();
      await client.request("hello");
      latencies[i] = performance.now() - started;
    }
    const sorted = latencies.toSorted();
    const median = sorted[count >> 1];
    const slow = 10 * median;
    const slowCalls = sorted.filter((ms) => ms > slow).length;
    console.log(
      `${count} calls, median ${
        (median * 1000).toFixed(1)
      } µs, ${slowCalls} over ${(slow * 1000).toFixed(0)} µs`,
    );
    for (const period of PERIODS) {
      const worst = worstResidue(latencies, period, slow);
      console.log(
        `period ${period}: residue ${worst.residue}, ${worst.slow} slow of ${worst.calls} (chance ${
          (slowCalls / period).toFixed(1)
        }), mean ${(worst.meanMs * 1000).toFixed(0)} µs`,
      );
    }
  } finally {
    await client.close();
    await server.stop();
  }
}
