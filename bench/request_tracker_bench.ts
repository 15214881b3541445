/**
 * RequestTracker in-process figures: track+resolve pairs per second, and heap
 * bytes per pending request at 100,000 pending.
 *
 * Run: `deno run --v8-flags=--expose-gc bench/request_tracker_bench.ts`
 * (prints JSON on the last line for bench/run.ts).
 */

import { RequestTracker } from "../mod.ts";

/** Result of {@linkcode measureTracker}. */
export interface TrackerFigures {
  /** track + resolve pairs per second (median of runs). */
  pairsPerSecond: number;
  /** Heap bytes per pending request at `pending` pending. */
  bytesPerPending: number;
  /** How many were pending for the memory figure. */
  pending: number;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function pairsPerSecond(batch: number, rounds: number): Promise<number> {
  using tracker = new RequestTracker({ timeout: 30_000 });
  const sequences = new Int32Array(batch);
  const promises: Promise<unknown>[] = new Array(batch);
  const start = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < batch; i++) {
      const pending = tracker.track();
      sequences[i] = pending.sequence;
      promises[i] = pending.promise;
    }
    for (let i = 0; i < batch; i++) tracker.resolve(sequences[i], i);
    await promises[batch - 1];
  }
  const seconds = (performance.now() - start) / 1000;
  return (batch * rounds) / seconds;
}

/**
 * Measures the tracker.
 *
 * @returns The figures.
 */
export async function measureTracker(): Promise<TrackerFigures> {
  await pairsPerSecond(1000, 200); // warm up
  const runs: number[] = [];
  for (let i = 0; i < 5; i++) runs.push(await pairsPerSecond(1000, 1000));
  runs.sort((a, b) => a - b);

  const pending = 100_000;
  gc();
  const before = Deno.memoryUsage().heapUsed;
  const tracker = new RequestTracker({ timeout: 60_000, maxPending: pending });
  const held: Promise<unknown>[] = new Array(pending);
  for (let i = 0; i < pending; i++) held[i] = tracker.track().promise;
  gc();
  const after = Deno.memoryUsage().heapUsed;
  // The array of promises is the caller's, not the tracker's: subtract it.
  const bytesPerPending = (after - before - pending * 8) / pending;
  for (const promise of held) promise.catch(() => {});
  tracker.rejectAll(new Error("done"));
  return {
    pairsPerSecond: Math.round(runs[2]),
    bytesPerPending: Math.round(bytesPerPending),
    pending,
  };
}

if (import.meta.main) {
  const figures = await measureTracker();
  console.log(
    `RequestTracker: ${
      figures.pairsPerSecond.toLocaleString("en-US")
    } track+resolve pairs/s (target >= 3,000,000); ${figures.bytesPerPending} heap bytes per pending request at ${
      figures.pending.toLocaleString("en-US")
    } pending (target <= 300)`,
  );
  console.log(JSON.stringify(figures));
}
