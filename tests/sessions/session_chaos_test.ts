import assert from "node:assert/strict";
import { chaos } from "./_chaos.ts";

// The full run (10,000+ of each) is `deno task test:stress` (scenario
// "sessions"); SESSIONS_CHAOS_SCALE scales this short one.
const scale = Number(Deno.env.get("SESSIONS_CHAOS_SCALE") ?? 0.1);
const seed = Number(Deno.env.get("SESSIONS_CHAOS_SEED") ?? 20261214);

Deno.test(`Sessions chaos (seed ${seed}): cuts every 50-500 ms lose nothing, run nothing twice, keep rooms and presence`, async () => {
  const n = (value: number) => Math.max(1, Math.round(value * scale));
  const result = await chaos({
    seed,
    clients: 4,
    requests: n(10_000),
    serverRequests: n(10_000),
    notifications: n(10_000),
    durationMs: Number(Deno.env.get("SESSIONS_CHAOS_MS") ?? 6_000),
    verbose: Deno.env.has("SESSIONS_CHAOS_VERBOSE"),
  });
  assert.deepEqual(
    result.failures,
    [],
    `seed ${seed}; figures ${JSON.stringify(result.figures)}`,
  );
  assert.ok(Number(result.figures.cuts) > 0);
});
