import assert from "node:assert/strict";
import { frameHead } from "../../src/server/session_journal.ts";
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
