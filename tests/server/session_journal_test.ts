import assert from "node:assert/strict";
import { frameHead } from "../../src/server/session_journal.ts";
import {
  loadedFrame,
  storedFrame,
} from "../../src/server/session_frame_codec.ts";
import { sizeOf } from "../../src/wire/attachments.ts";
import { binaryCodec } from "../../binary.ts";

Deno.test("frameHead reads type and sequence of JSON frames in any key order and of binary-codec frames", () => {
  assert.deepEqual(frameHead('{"sequence":3,"type":1,"method":"m"}'), [1, 3]);
  assert.deepEqual(frameHead('{"type":1,"method":"m","sequence":9}'), [1, 9]);
  const bytes = binaryCodec.encode({
    sequence: 42,
    type: 1,
    method: "m",
    message: new Uint8Array([1, 2, 3]),
  });
  assert.ok(bytes instanceof Uint8Array);
  assert.deepEqual(frameHead(bytes), [1, 42]);
  assert.deepEqual(frameHead(bytes.slice().buffer), [1, 42]);
  // Not frames: nothing.
  assert.equal(frameHead("not json"), undefined);
  assert.equal(frameHead('{"type":"1","sequence":2}'), undefined);
  assert.equal(frameHead(new Uint8Array([0, 0, 0, 9, 1])), undefined);
  assert.equal(frameHead(undefined), undefined);
});

Deno.test("A detached frame's head is read like any binary frame, and a store keeps it whole: what it loads decodes to the same frame", () => {
  const big = new Uint8Array(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i & 255;
  const frame = {
    sequence: 7,
    type: 3 as const,
    method: "file",
    message: { big },
  };
  const head = binaryCodec.encode(frame) as Uint8Array<ArrayBuffer>;
  assert.ok(head.byteLength < 100);
  assert.deepEqual(frameHead(head), [3, 7]);
  const loaded = loadedFrame(storedFrame(head));
  assert.ok(loaded instanceof Uint8Array);
  assert.equal(loaded.byteLength, sizeOf(head));
  assert.deepEqual(binaryCodec.decode(loaded), frame);
});
