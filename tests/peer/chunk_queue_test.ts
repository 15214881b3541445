import assert from "node:assert/strict";
import { ChunkQueue } from "../../src/peer/chunk_queue.ts";

/**
 * Feeds `count` chunks made by `make` to a queue as its credit allows (a
 * sender that never runs ahead of it), reads them all, and returns the
 * credit grants the queue made.
 */
async function grantsOf(
  queue: ChunkQueue,
  first: number,
  count: number,
  make: () => unknown,
): Promise<number[]> {
  const grants: number[] = [];
  let credit = first;
  let sent = 0;
  const send = () => {
    for (; credit > 0 && sent < count; credit--, sent++) queue.push(make());
    if (sent === count) queue.end();
  };
  queue.bind((more) => {
    grants.push(more);
    credit += more;
  });
  send();
  let read = 0;
  for await (const _ of queue) {
    read++;
    send();
  }
  assert.equal(read, count);
  return grants;
}

Deno.test("ChunkQueue: an upload's window opens to 32 chunks of 64 KiB and is re-granted 4 at a time", async () => {
  const chunk = new Uint8Array(64 * 1024);
  const queue = new ChunkQueue(16, () => {}, 2 * 1024 * 1024);
  const grants = await grantsOf(queue, 16, 200, () => chunk);
  // The first read opens the window from 16 to 32 (15 still granted: 17
  // more), then every 4 reads grant 4.
  assert.equal(grants[0], 17);
  assert.ok(grants.length > 40, `${grants.length} grants`);
  assert.deepEqual(new Set(grants.slice(1)), new Set([4]));
});

Deno.test("ChunkQueue: a fixed window (a download's credit) is re-granted half at a time, at most 4", async () => {
  const queue = new ChunkQueue(16, () => {});
  const grants = await grantsOf(queue, 16, 100, () => "x");
  assert.ok(grants.length > 20, `${grants.length} grants`);
  assert.deepEqual(new Set(grants), new Set([4]));
  const small = new ChunkQueue(4, () => {});
  assert.deepEqual(
    new Set(await grantsOf(small, 4, 40, () => "x")),
    new Set([2]),
  );
});

Deno.test("ChunkQueue: a chunk beyond the credit fails the stream and stops the producer", async () => {
  let stopped: unknown;
  const queue = new ChunkQueue(2, (reason) => stopped = reason);
  queue.push("a");
  queue.push("b");
  queue.push("c");
  assert.equal(
    (stopped as Error).message,
    "Cannot read stream: more chunks than granted",
  );
  await assert.rejects(
    async () => {
      for await (const _ of queue) { /* the chunks before the error */ }
    },
    { code: "INVALID_FRAME" },
  );
});
