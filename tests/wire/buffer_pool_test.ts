import assert from "node:assert/strict";
import { keep, lend, recycle } from "../../src/wire/buffer_pool.ts";

Deno.test("lend() reuses its buffer until keep() takes it; keep() copies anything else", () => {
  const first = lend(64 * 1024);
  first.fill(1);
  // Not kept: the next frame is encoded in the same buffer.
  assert.equal(lend(64 * 1024).buffer, first.buffer);
  // Kept: the outbox holds the very bytes, and the codec moves on.
  const kept = keep(first);
  assert.equal(kept, first);
  const next = lend(64 * 1024);
  assert.notEqual(next.buffer, first.buffer);
  next.fill(2);
  assert.equal(kept[0], 1);
  // A frame that is not the lent buffer, or a small one, is copied.
  const other = new Uint8Array(8 * 1024).fill(3);
  const copy = keep(other);
  assert.notEqual(copy.buffer, other.buffer);
  assert.deepEqual(copy, other);
  const small = lend(100);
  small.fill(4);
  const smallCopy = keep(small);
  assert.notEqual(smallCopy.buffer, small.buffer);
  assert.deepEqual(smallCopy, small);
});

Deno.test("recycle() gives a kept buffer back: the next lend of its class takes it", () => {
  const size = 300 * 1024;
  const kept = keep(lend(size));
  const buffer = kept.buffer;
  recycle(kept);
  // The codec's own buffer is of another class: it takes the recycled one.
  lend(20 * 1024);
  assert.equal(lend(size).buffer, buffer);
});
