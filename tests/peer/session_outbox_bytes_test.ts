import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { SessionOutbox } from "../../src/peer/session_outbox.ts";
import { frameBytes } from "../../src/wire/frame_bytes.ts";
import { keep } from "../../src/wire/buffer_pool.ts";

const limits = { maxFrames: 10, maxBytes: 1 << 20, maxAge: 60_000 };

Deno.test("SessionOutbox: with the binary codec loaded, a frame it encoded is kept as it is (its pooled buffer), other bytes as a copy", () => {
  // Loading the binary codec installed the pool.
  assert.equal(frameBytes.keep, keep);
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
