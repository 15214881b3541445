import assert from "node:assert/strict";
import { SessionOutbox } from "../../src/peer/session_outbox.ts";
import { Random } from "../_random.ts";

const limits = { maxFrames: 100_000, maxBytes: 1 << 30, maxAge: 60_000 };

Deno.test("SessionOutbox: partial and whole trims in any order keep exactly the frames after the count, text and binary, and their bytes (seeded)", () => {
  for (const seed of [1, 2, 3, 4, 5]) {
    const random = new Random(seed);
    const outbox = new SessionOutbox(limits);
    // The model: every frame sent, and how many the other side received.
    const sent: (string | Uint8Array<ArrayBuffer>)[] = [];
    let acked = 0;
    for (let step = 0; step < 400; step++) {
      if (random.int(3) > 0) {
        // A burst of frames of random lengths.
        for (let n = random.int(40); n > 0; n--) {
          // Mostly text, some binary (kept as a copy).
          const frame = random.int(5) === 0
            ? new Uint8Array(1 + random.int(60)).fill(sent.length & 255)
            : `{"sequence":0,"type":3,"message":"${
              "x".repeat(random.int(50))
            }#${sent.length}"}`;
          sent.push(frame);
          assert.ok(outbox.push(frame, () => 0));
        }
      } else {
        // An ack of some (often most, sometimes none or all) of the rest.
        const count = acked + random.int(sent.length - acked + 1);
        assert.ok(outbox.trim(count));
        acked = count;
      }
      const kept = sent.slice(acked);
      assert.deepEqual(outbox.pending(), kept, `seed ${seed} step ${step}`);
      assert.equal(outbox.size, kept.length);
      assert.equal(
        outbox.bytes,
        kept.reduce(
          (sum, frame) =>
            sum + (typeof frame === "string" ? frame.length : frame.byteLength),
          0,
        ),
      );
    }
    // Beyond what was sent, or below what was dropped: refused.
    assert.equal(outbox.trim(sent.length + 1), false);
    if (acked > 0) assert.equal(outbox.trim(acked - 1), false);
    assert.ok(outbox.trim(sent.length));
    assert.deepEqual(outbox.pending(), []);
    assert.equal(outbox.bytes, 0);
  }
});
