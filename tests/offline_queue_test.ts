import assert from "node:assert/strict";
import { OfflineQueue, QueueFullError, QueueTimeoutError } from "../client.ts";
import { deadline } from "./_helpers.ts";

Deno.test("OfflineQueue.drain() returns the items in insertion order and empties the queue", () => {
  using queue = new OfflineQueue<number>(() => {});
  for (let i = 0; i < 5; i++) queue.push(i);
  assert.equal(queue.size, 5);
  assert.deepEqual(queue.drain(), [0, 1, 2, 3, 4]);
  assert.equal(queue.size, 0);
  assert.deepEqual(queue.drain(), []);
});

Deno.test("OfflineQueue.push() throws QueueFullError beyond maxSize", () => {
  using queue = new OfflineQueue<string>(() => {}, { maxSize: 2 });
  queue.push("a");
  queue.push("b");
  assert.throws(() => queue.push("c"), (error: QueueFullError) => {
    assert.ok(error instanceof QueueFullError);
    assert.equal(error.limit, 2);
    assert.equal(error.code, "QUEUE_FULL");
    return true;
  });
  queue.drain();
  queue.push("c");
  assert.equal(queue.size, 1);
});

Deno.test("OfflineQueue with maxSize 0 refuses every item", () => {
  using queue = new OfflineQueue<string>(() => {}, { maxSize: 0 });
  assert.throws(() => queue.push("a"), QueueFullError);
});

Deno.test("OfflineQueue expires items after maxWait with QueueTimeoutError, oldest first", async () => {
  const expired: Array<[string, QueueTimeoutError]> = [];
  const all = Promise.withResolvers<void>();
  using queue = new OfflineQueue<string>((item, error) => {
    expired.push([item, error]);
    if (expired.length === 3) all.resolve();
  }, { maxWait: 5 });
  queue.push("a");
  queue.push("b");
  queue.push("c");
  await deadline(all.promise);
  assert.deepEqual(expired.map(([item]) => item), ["a", "b", "c"]);
  for (const [, error] of expired) {
    assert.ok(error instanceof QueueTimeoutError);
    assert.equal(error.wait, 5);
  }
  assert.equal(queue.size, 0);
});

Deno.test("OfflineQueue.delete() removes one item; the others still expire", async () => {
  const expired: string[] = [];
  const done = Promise.withResolvers<void>();
  using queue = new OfflineQueue<string>((item) => {
    expired.push(item);
    if (item === "c") done.resolve();
  }, { maxWait: 5 });
  queue.push("a");
  queue.push("b");
  queue.push("c");
  assert.equal(queue.delete("a"), true);
  assert.equal(queue.delete("a"), false);
  assert.equal(queue.delete("b"), true);
  await deadline(done.promise);
  assert.deepEqual(expired, ["c"]);
});

Deno.test("OfflineQueue with maxWait 0 or Infinity never expires and starts no timer", () => {
  for (const maxWait of [0, Infinity]) {
    using queue = new OfflineQueue<string>(() => {
      throw new Error("must not expire");
    }, { maxWait });
    queue.push("a");
    assert.equal(queue.size, 1);
    // The sanitizers fail the test if disposal leaves a timer running.
  }
});

Deno.test("OfflineQueue[Symbol.dispose]() forgets the items and stops the timer", () => {
  const queue = new OfflineQueue<string>(() => {}, { maxWait: 60_000 });
  queue.push("a");
  queue[Symbol.dispose]();
  assert.equal(queue.size, 0);
});
