import assert from "node:assert/strict";
import { Streams } from "../../src/peer/streams.ts";
import type { Frame } from "../../src/wire/protocol.ts";
import { deadline } from "../_helpers.ts";

/** `setImmediate` as Deno has it (the pump yields through it). */
const immediate = (globalThis as unknown as {
  setImmediate: (run: () => void) => unknown;
}).setImmediate;

Deno.test("Upload pump: sends at most 4 chunks per turn of the event loop, all of its credit in the end, and not one more", async () => {
  // Turns of the event loop, counted by an immediate that re-arms itself:
  // chunks sent between two counts went out in the same turn.
  let turn = 0;
  let counting = true;
  const count = () => {
    turn++;
    if (counting) immediate(count);
  };
  immediate(count);
  const perTurn = new Map<number, number>();
  let chunks = 0;
  let allSent: () => void = () => {};
  const sent = new Promise<void>((resolve) => allSent = resolve);
  const streams = new Streams((frame: Frame) => {
    if (frame.type !== 14) return;
    chunks++;
    perTurn.set(turn, (perTurn.get(turn) ?? 0) + 1);
    if (chunks === 16) allSent();
  }, () => {});
  let pulled = 0;
  async function* source(): AsyncGenerator<number> {
    for (let i = 0; i < 100; i++) {
      pulled++;
      yield i;
    }
  }
  let settle: (value: unknown) => void = () => {};
  const response = new Promise((resolve) => settle = resolve);
  streams.request(1, { method: "save" }, source(), response);
  streams.dispatch({ sequence: 1, type: 16, credit: 16 } as Frame);
  await deadline(sent);
  // Past the credit, nothing more goes, whatever the turns.
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((resolve) => immediate(resolve));
  }
  counting = false;
  assert.equal(chunks, 16);
  assert.ok(pulled <= 17, `${pulled} pulled with 16 granted`);
  const most = Math.max(...perTurn.values());
  assert.ok(most <= 4, `${most} chunks in one turn`);
  assert.ok(perTurn.size >= 4, `16 chunks in ${perTurn.size} turns`);
  // The responder stops reading: the source stops.
  streams.dispatch({ sequence: 1, type: 17 } as Frame);
  settle(null);
  await response;
  await new Promise<void>((resolve) => immediate(resolve));
});
