import assert from "node:assert/strict";
import { type Frame, ProtocolError } from "../../mod.ts";
import {
  batchSize,
  encodeBatch,
  isBatch,
  readBatch,
} from "../../src/wire/batch.ts";

function read(data: string): { frames: Frame[]; errors: unknown[] } {
  const frames: Frame[] = [];
  const errors: unknown[] = [];
  readBatch(data, (frame) => frames.push(frame), (error) => errors.push(error));
  return { frames, errors };
}

Deno.test("encodeBatch() and readBatch() carry frames in order, and batchSize() counts them", () => {
  const inner = [
    '{"sequence":1,"type":2,"message":"ok"}',
    '{"sequence":0,"type":3,"message":{"a":[1,2]},"from":"bob"}',
    '{"sequence":2,"type":2}',
  ];
  const batch = encodeBatch(inner);
  assert.equal(
    batch,
    `{"type":11,"sequence":3,"message":[${inner.join(",")}]}`,
  );
  assert.ok(isBatch(batch));
  assert.equal(batchSize(batch), 3);
  assert.equal(batchSize(inner[0]), 1);
  assert.equal(batchSize(new Uint8Array(4)), 1);
  assert.ok(!isBatch(inner[0]));
  const { frames, errors } = read(batch);
  assert.deepEqual(errors, []);
  assert.deepEqual(frames, inner.map((text) => JSON.parse(text)));
});

Deno.test("readBatch() refuses a batch whose sequence does not count its frames, and skips invalid frames inside", () => {
  for (
    const bad of [
      '{"type":11,"sequence":3,"message":[{"sequence":1,"type":2}]}',
      '{"type":11,"sequence":1,"message":{"sequence":1,"type":2}}',
      '{"type":11,"sequence":1,',
      '{"type":11}',
    ]
  ) {
    const { frames, errors } = read(bad);
    assert.deepEqual(frames, [], bad);
    assert.equal(errors.length, 1, bad);
    assert.ok(errors[0] instanceof ProtocolError);
    assert.match((errors[0] as Error).message, /^Cannot decode batch: /);
  }
  const { frames, errors } = read(
    '{"type":11,"sequence":3,"message":[{"sequence":1,"type":2},{"type":99},{"sequence":2,"type":2}]}',
  );
  assert.deepEqual(frames.map((frame) => frame.sequence), [1, 2]);
  assert.equal(errors.length, 1);
  assert.ok(errors[0] instanceof ProtocolError);
});
