import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { SessionOutbox } from "../../src/peer/session_outbox.ts";
import { partsOf } from "../../src/wire/attachments.ts";

const limits = { maxFrames: 10, maxBytes: 1 << 20, maxAge: 60_000 };

Deno.test("SessionOutbox: with the binary codec loaded, a frame it encoded is kept as it is (its pooled buffer), other bytes as a copy", () => {
  // Loading the binary codec installed the pool (the kept frame below is
  // the pooled buffer itself).
  const encoded = binaryCodec.encode({
    sequence: 1,
    type: 1,
    message: new Uint8Array(8192).fill(3),
  }) as Uint8Array<ArrayBuffer>;
  const mine = new Uint8Array(16).fill(9);
  const outbox = new SessionOutbox(limits);
  assert.ok(outbox.push(encoded, () => 0));
  assert.ok(outbox.push(mine, () => 0));
  const [kept, copied] = outbox.pending() as Uint8Array[];
  assert.equal(kept, encoded);
  assert.notEqual(copied, mine);
  assert.deepEqual(copied, mine);
  mine.fill(0);
  assert.equal(copied[0], 9);
  outbox.trim(2);
  assert.deepEqual(outbox.pending(), []);
});

Deno.test("SessionOutbox: a detached frame's head is kept as a copy that keeps the attachments (not copied) and counts their bytes", () => {
  const big = new Uint8Array(300 * 1024).fill(5);
  const head = binaryCodec.encode({
    sequence: 1,
    type: 1,
    message: big,
  }) as Uint8Array<ArrayBuffer>;
  const outbox = new SessionOutbox(limits);
  assert.ok(outbox.push(head, () => 0));
  const [kept] = outbox.pending() as Uint8Array[];
  assert.notEqual(kept, head);
  assert.deepEqual(kept, head);
  assert.equal(partsOf(kept)?.[0].buffer, big.buffer);
  assert.equal(outbox.bytes, head.byteLength + big.byteLength);
  outbox.trim(1);
  assert.equal(outbox.bytes, 0);
});
