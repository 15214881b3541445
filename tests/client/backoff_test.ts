import assert from "node:assert/strict";
import { backoffDelay } from "../../client.ts";

Deno.test("backoffDelay() scales the ceiling min(maxDelay, minDelay * factor ** attempt) by random()", () => {
  const options = { minDelay: 100, maxDelay: 1_000, factor: 2 };
  const ceilings = [100, 200, 400, 800, 1_000, 1_000];
  for (const [attempt, ceiling] of ceilings.entries()) {
    assert.equal(backoffDelay(attempt, { ...options, random: () => 0 }), 0);
    assert.equal(
      backoffDelay(attempt, { ...options, random: () => 0.5 }),
      ceiling / 2,
    );
    assert.equal(
      backoffDelay(attempt, { ...options, random: () => 1 }),
      ceiling,
    );
  }
});

Deno.test("backoffDelay() stays within its bounds with Math.random", () => {
  for (let attempt = 0; attempt < 50; attempt++) {
    const delay = backoffDelay(attempt, {
      minDelay: 10,
      maxDelay: 300,
      factor: 3,
    });
    assert.ok(delay >= 0 && delay <= Math.min(300, 10 * 3 ** attempt));
  }
});

Deno.test("backoffDelay() uses 1000 ms, factor 2 and a 30 s cap by default", () => {
  const top = { random: () => 1 };
  assert.equal(backoffDelay(0, top), 1_000);
  assert.equal(backoffDelay(3, top), 8_000);
  assert.equal(backoffDelay(20, top), 30_000);
  assert.equal(backoffDelay(5_000, top), 30_000); // factor ** attempt overflows to Infinity
});

Deno.test("backoffDelay() throws RangeError for a negative attempt", () => {
  assert.throws(() => backoffDelay(-1), RangeError);
  assert.throws(() => backoffDelay(NaN), RangeError);
});
