/**
 * Hostile input against a live server for a bounded time (the full run is
 * part of `deno task test:stress`). The seed is printed; rerun a failure
 * with `FUZZ_SEED=<seed> deno task test tests/fuzz_test.ts`.
 */

import assert from "node:assert/strict";
import { fuzz, Random } from "../stress/fuzz.ts";

Deno.test("the PRNG is deterministic for a seed", () => {
  const a = new Random(7);
  const b = new Random(7);
  const c = new Random(8);
  const first = [a.next(), a.next(), a.next()];
  assert.deepEqual([b.next(), b.next(), b.next()], first);
  assert.notDeepEqual([c.next(), c.next(), c.next()], first);
});

Deno.test("fuzz: the server survives random and mutated frames and keeps answering", async () => {
  const seed = Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 1e9);
  const result = await fuzz({ durationMs: 4_000, seed });
  assert.deepEqual(
    result.failures,
    [],
    `seed ${seed}: ${JSON.stringify(result.figures)}`,
  );
  assert.ok(Number(result.figures.inputs) > 100, "too few inputs tried");
  assert.ok(Number(result.figures.answered) > 0);
});
