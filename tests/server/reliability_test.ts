/**
 * Short versions of the reliability scenarios of `deno task test:stress`
 * (see tests/stress/scenarios.ts): the same code with small counts and
 * durations. The server runs in its own process in every one.
 */

import assert from "node:assert/strict";
import {
  abruptDisconnects,
  connections,
  restart,
  type ScenarioResult,
  slowConsumer,
  soak,
} from "../stress/scenarios.ts";

function assertPassed(result: ScenarioResult): void {
  assert.deepEqual(
    result.failures,
    [],
    `${result.name} failed; figures: ${JSON.stringify(result.figures)}`,
  );
}

Deno.test("connections: 300 over 2 processes stay connected with heartbeats, each request answered, heap flat", async () => {
  const result = await connections({
    clients: 300,
    processes: 2,
    holdMs: 3_000,
    sampleMs: 500,
    warmupMs: 1_000,
    pingInterval: 500,
    pingTimeout: 1_500,
    idleTimeout: 1,
  });
  assertPassed(result);
  assert.equal(result.figures.requestsAnswered, 300);
});

Deno.test("slow consumer: memory bounded, drops counted, others' latency kept; close policy closes 1013", async () => {
  const result = await slowConsumer({
    blasts: 300,
    perBlast: 2,
    size: 16_384,
    others: 4,
    highWaterMark: 64 * 1024,
    maxGrowth: 32e6,
  });
  assertPassed(result);
  assert.equal(result.figures.closePolicyCodes, '{"1013":1}');
});

Deno.test("abrupt disconnects: 3 × 100 resets with requests in flight both ways release everything", async () => {
  const result = await abruptDisconnects({
    clients: 100,
    rounds: 3,
    others: 5,
  });
  assertPassed(result);
  assert.equal(result.figures.faultsSurvived, 300);
});

Deno.test("server restart: SIGKILL under load, nothing hangs, typed errors only, all reconnect, nothing runs twice", async () => {
  const result = await restart({
    clients: 20,
    beforeMs: 1_000,
    downMs: 300,
    afterMs: 1_000,
  });
  assertPassed(result);
  assert.equal(result.figures.requestsLost, 0);
  assert.equal(result.figures.executedTwice, 0);
});

Deno.test("soak: mixed traffic with reconnects, heap sampled, everything released", async () => {
  const result = await soak({
    clients: 10,
    durationMs: 3_000,
    sampleMs: 500,
    warmupMs: 1_000,
    maxSlopeMBPerMin: 2,
  });
  assertPassed(result);
  assert.ok(Number(result.figures.reconnects) > 0, "no reconnect happened");
});
