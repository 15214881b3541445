import assert from "node:assert/strict";
import { ServerMetrics } from "../../server.ts";
import {
  GracefulShutdown,
  SAMPLE_EVERY,
} from "../../src/server/graceful_shutdown.ts";
import type { RequestContext } from "../../mod.ts";

const context = {} as RequestContext;

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* a slow synchronous handler */ }
}

/** The sum of the latency histogram, from the rendered metrics. */
function sum(metrics: ServerMetrics): number {
  const text = metrics.render({
    connections: 0,
    users: 0,
    requestsInFlight: 0,
    framesIn: [],
    framesOut: [],
    dropped: 0,
    malformed: 0,
    rateLimited: 0,
  });
  return Number(text.match(/^duplex_request_duration_seconds_sum (.*)$/m)![1]);
}

Deno.test("GracefulShutdown.measure() counts every call of a fast synchronous handler, timing one in SAMPLE_EVERY", () => {
  const metrics = new ServerMetrics();
  const graceful = new GracefulShutdown(metrics, 1000);
  const handler = graceful.measure(() => "ok");
  const calls = SAMPLE_EVERY * 3 + 5;
  for (let i = 0; i < calls; i++) assert.equal(handler(null, context), "ok");
  assert.equal(metrics.requestsTotal, calls);
  assert.equal(graceful.inFlight, 0);
  // Every estimate is a timed duration of a fast handler.
  assert.ok(sum(metrics) < calls * 0.0005);
});

Deno.test("GracefulShutdown.measure() times every call of a handler slower than the first bucket", () => {
  const metrics = new ServerMetrics();
  const graceful = new GracefulShutdown(metrics, 1000);
  let slow = false;
  const handler = graceful.measure(() => {
    if (slow) busy(2);
    return "ok";
  });
  handler(null, context); // timed, fast: the next SAMPLE_EVERY - 1 are not
  slow = true;
  const before = sum(metrics);
  for (let i = 0; i < SAMPLE_EVERY + 4; i++) handler(null, context);
  // From the first timed slow call on, each slow call is timed (≥ 2 ms).
  assert.equal(metrics.requestsTotal, SAMPLE_EVERY + 5);
  assert.ok(sum(metrics) - before >= 5 * 0.002, `sum ${sum(metrics)}`);
});

Deno.test("GracefulShutdown.measure() times every call of a handler that returns a promise, and counts throws", async () => {
  const metrics = new ServerMetrics();
  const graceful = new GracefulShutdown(metrics, 1000);
  const handler = graceful.measure(async (wait: number) => {
    await new Promise((resolve) => setTimeout(resolve, wait));
    return "late";
  });
  for (let i = 0; i < 3; i++) {
    assert.equal(await handler(3, context), "late");
  }
  assert.ok(sum(metrics) >= 3 * 0.003, `sum ${sum(metrics)}`);
  const failing = graceful.measure(() => {
    throw new Error("boom");
  });
  for (let i = 0; i < 3; i++) assert.throws(() => failing(null, context));
  assert.equal(metrics.requestsTotal, 6);
  assert.equal(graceful.inFlight, 0);
});
