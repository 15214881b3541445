import assert from "node:assert/strict";
import { RateLimiter } from "../../mod.ts";

Deno.test("RateLimiter.take() allows a burst, then refuses", () => {
  const limiter = new RateLimiter({ rate: 0.001, burst: 3 });
  assert.deepEqual(
    [limiter.take(), limiter.take(), limiter.take(), limiter.take()],
    [true, true, true, false],
  );
});

Deno.test("RateLimiter.take() refills from the clock", async () => {
  const limiter = new RateLimiter({ rate: 1000, burst: 1 });
  assert.ok(limiter.take());
  // 1,000 tokens per second: one token per millisecond. Wait for a timer
  // tick of at least 2 ms, then a token must be there again.
  const start = performance.now();
  await new Promise<void>((resolve) => setTimeout(resolve, 2));
  assert.ok(performance.now() - start >= 1);
  assert.ok(limiter.take());
});

Deno.test("RateLimiter does not bank tokens beyond the burst", async () => {
  const limiter = new RateLimiter({ rate: 20, burst: 2 });
  await new Promise<void>((resolve) => setTimeout(resolve, 150));
  // 150 ms at 20 tokens/s would be 3 tokens; the bucket holds 2, and the
  // next token takes 50 ms to come (a margin for a loaded machine that
  // pauses the process between two takes).
  assert.ok(limiter.take());
  assert.ok(limiter.take());
  assert.equal(limiter.take(), false);
});

Deno.test("RateLimiter rejects invalid options with RangeError", () => {
  assert.throws(() => new RateLimiter({ rate: 0 }), RangeError);
  assert.throws(() => new RateLimiter({ rate: 1, burst: 0 }), RangeError);
});
