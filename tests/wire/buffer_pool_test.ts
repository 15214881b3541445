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

Deno.test("recycle() makes room in a pool full of another size: the size in use keeps its buffers", () => {
  // An upload's chunks, kept and given back, fill the pool with one size.
  const chunks: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < 160; i++) chunks.push(keep(lend(64 * 1024)));
  for (const chunk of chunks) recycle(chunk);
  // Then large frames, each kept until acknowledged, two in turn.
  const first = keep(lend(1024 * 1024));
  const second = keep(lend(1024 * 1024));
  recycle(first);
  recycle(second);
  const buffers = [lend(1024 * 1024).buffer];
  keep(lend(1024 * 1024));
  buffers.push(lend(1024 * 1024).buffer);
  // Both came back from the pool: no fresh megabyte.
  assert.ok(buffers.includes(first.buffer), "first reused");
  assert.ok(buffers.includes(second.buffer), "second reused");
});
