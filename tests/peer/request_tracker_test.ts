import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  MAX_SEQUENCE,
  RemoteError,
  RequestTimeoutError,
  RequestTracker,
  TooManyPendingError,
  type UnexpectedResponse,
} from "../../mod.ts";

Deno.test("RequestTracker.track() allocates increasing sequences from 1", () => {
  using tracker = new RequestTracker();
  const a = tracker.track();
  const b = tracker.track();
  assert.equal(a.sequence, 1);
  assert.equal(b.sequence, 2);
  assert.equal(tracker.size, 2);
  assert.ok(tracker.has(1) && tracker.has(2) && !tracker.has(3));
  tracker.rejectAll(new Error("done"));
  return Promise.allSettled([a.promise, b.promise]).then(() => {});
});

Deno.test("RequestTracker.resolve() settles the matching request only", async () => {
  using tracker = new RequestTracker();
  const a = tracker.track<string>();
  const b = tracker.track<string>();
  assert.equal(tracker.resolve(b.sequence, "B"), true);
  assert.equal(tracker.resolve(a.sequence, "A"), true);
  assert.equal(await a.promise, "A");
  assert.equal(await b.promise, "B");
  assert.equal(tracker.size, 0);
  assert.equal(tracker.stats.resolved, 2);
});

Deno.test("RequestTracker.reject() rejects with the given error", async () => {
  using tracker = new RequestTracker();
  const { sequence, promise } = tracker.track();
  const error = new RemoteError({ code: "NOPE", message: "no" });
  assert.equal(tracker.reject(sequence, error), true);
  await assert.rejects(promise, (e) => e === error);
  assert.equal(tracker.stats.rejected, 1);
});

Deno.test("RequestTracker.track() rejects with RequestTimeoutError", async () => {
  const abandoned: number[] = [];
  using tracker = new RequestTracker({
    timeout: 5,
    onAbandon: (sequence) => abandoned.push(sequence),
  });
  const { sequence, promise } = tracker.track();
  await assert.rejects(promise, (error: RequestTimeoutError) => {
    assert.ok(error instanceof RequestTimeoutError);
    assert.equal(error.code, "REQUEST_TIMEOUT");
    assert.equal(error.sequence, sequence);
    assert.equal(error.timeout, 5);
    return true;
  });
  assert.deepEqual(abandoned, [sequence]);
  assert.equal(tracker.size, 0);
  assert.equal(tracker.stats.timedOut, 1);
});

Deno.test("RequestTracker.track() honours per-request timeouts in deadline order", async () => {
  using tracker = new RequestTracker({ timeout: 60_000 });
  const order: number[] = [];
  const slow = tracker.track({ timeout: 30 });
  const fast = tracker.track({ timeout: 2 });
  const none = tracker.track({ timeout: 0 });
  const settled = [slow, fast].map(({ sequence, promise }) =>
    promise.catch((error) => {
      assert.ok(error instanceof RequestTimeoutError);
      order.push(sequence);
    })
  );
  await Promise.all(settled);
  assert.deepEqual(order, [fast.sequence, slow.sequence]);
  // A request without timeout is still pending.
  assert.ok(tracker.has(none.sequence));
  tracker.resolve(none.sequence, 1);
  assert.equal(await none.promise, 1);
});

Deno.test("RequestTracker times out only expired requests among many", async () => {
  using tracker = new RequestTracker({ timeout: 60_000 });
  const kept = Array.from({ length: 1000 }, () => tracker.track<number>());
  const doomed = tracker.track({ timeout: 3 });
  await assert.rejects(doomed.promise, RequestTimeoutError);
  assert.equal(tracker.size, 1000);
  for (const { sequence } of kept) tracker.resolve(sequence, sequence);
  const values = await Promise.all(kept.map((p) => p.promise));
  assert.deepEqual(values, kept.map((p) => p.sequence));
});

Deno.test("RequestTracker.track() rejects with signal.reason on abort", async () => {
  const abandoned: unknown[] = [];
  using tracker = new RequestTracker({
    onAbandon: (_sequence, reason) => abandoned.push(reason),
  });
  const controller = new AbortController();
  const { promise } = tracker.track({ signal: controller.signal });
  const reason = new Error("user gave up");
  controller.abort(reason);
  await assert.rejects(promise, (e) => e === reason);
  assert.deepEqual(abandoned, [reason]);
  assert.equal(tracker.stats.aborted, 1);
  assert.equal(tracker.size, 0);
});

Deno.test("RequestTracker.track() throws at once for an aborted signal", () => {
  using tracker = new RequestTracker();
  const reason = new Error("already");
  assert.throws(
    () => tracker.track({ signal: AbortSignal.abort(reason) }),
    (e) => e === reason,
  );
  assert.equal(tracker.size, 0);
});

Deno.test("RequestTracker removes its abort listener on every settle path", async () => {
  using tracker = new RequestTracker({ timeout: 2 });
  const controller = new AbortController();
  const signal = controller.signal;
  const resolved = tracker.track({ signal });
  tracker.resolve(resolved.sequence, "x");
  const rejected = tracker.track({ signal });
  tracker.reject(rejected.sequence, new Error("x"));
  await assert.rejects(rejected.promise);
  const timedOut = tracker.track({ signal });
  await assert.rejects(timedOut.promise, RequestTimeoutError);
  assert.equal(await resolved.promise, "x");
  // Aborting now must not touch settled requests.
  controller.abort();
  assert.equal(tracker.stats.aborted, 0);
});

Deno.test("RequestTracker.rejectAll() rejects everything with ConnectionClosedError", async () => {
  using tracker = new RequestTracker();
  const pending = Array.from({ length: 10 }, () => tracker.track());
  const error = new ConnectionClosedError(1006, "");
  assert.equal(tracker.rejectAll(error), 10);
  for (const { promise } of pending) {
    await assert.rejects(promise, (e) => e === error);
  }
  assert.equal(tracker.size, 0);
  assert.equal(tracker.rejectAll(error), 0);
});

Deno.test("RequestTracker.track() throws TooManyPendingError at the bound", async () => {
  using tracker = new RequestTracker({ maxPending: 2 });
  const a = tracker.track();
  const b = tracker.track();
  assert.throws(() => tracker.track(), (error: TooManyPendingError) => {
    assert.ok(error instanceof TooManyPendingError);
    assert.equal(error.code, "TOO_MANY_PENDING");
    assert.equal(error.limit, 2);
    return true;
  });
  tracker.resolve(a.sequence, 1);
  const c = tracker.track();
  tracker.resolve(b.sequence, 2);
  tracker.resolve(c.sequence, 3);
  assert.deepEqual(await Promise.all([a.promise, b.promise, c.promise]), [
    1,
    2,
    3,
  ]);
});

Deno.test("RequestTracker wraps around and skips sequences still pending", async () => {
  using tracker = new RequestTracker({ maxSequence: 3 });
  const one = tracker.track();
  const two = tracker.track();
  const three = tracker.track();
  assert.deepEqual([one.sequence, two.sequence, three.sequence], [1, 2, 3]);
  tracker.resolve(1, "a");
  tracker.resolve(3, "c");
  // 2 is still pending: the next sequences are 1, then 3.
  const again = tracker.track();
  const next = tracker.track();
  assert.deepEqual([again.sequence, next.sequence], [1, 3]);
  assert.throws(() => tracker.track(), TooManyPendingError);
  tracker.rejectAll(new Error("done"));
  await Promise.allSettled([two, again, next].map((p) => p.promise));
});

Deno.test("RequestTracker wraps before 2^31 with the default range", async () => {
  using tracker = new RequestTracker({ maxSequence: MAX_SEQUENCE });
  assert.equal(MAX_SEQUENCE, 2 ** 31 - 1);
  const first = tracker.track();
  tracker.resolve(first.sequence, 0);
  await first.promise;
  assert.equal(first.sequence, 1);
});

Deno.test("RequestTracker counts late, duplicate and unknown responses without throwing", async () => {
  const seen: Array<[number, UnexpectedResponse]> = [];
  using tracker = new RequestTracker({
    timeout: 2,
    onUnexpected: (sequence, kind) => seen.push([sequence, kind]),
  });
  const answered = tracker.track({ timeout: 0 });
  assert.equal(tracker.resolve(answered.sequence, "first"), true);
  assert.equal(tracker.resolve(answered.sequence, "again"), false);
  const expired = tracker.track();
  await assert.rejects(expired.promise, RequestTimeoutError);
  assert.equal(tracker.resolve(expired.sequence, "too late"), false);
  assert.equal(tracker.reject(expired.sequence, new Error("late")), false);
  assert.equal(tracker.resolve(999, "who?"), false);
  assert.equal(tracker.resolve(0, "never allocated"), false);
  assert.equal(await answered.promise, "first");
  assert.deepEqual(seen, [
    [answered.sequence, "duplicate"],
    [expired.sequence, "late"],
    [expired.sequence, "late"],
    [999, "unknown"],
    [0, "unknown"],
  ]);
  const stats = tracker.stats;
  assert.equal(stats.duplicate, 1);
  assert.equal(stats.late, 2);
  assert.equal(stats.unknown, 2);
});

Deno.test("RequestTracker stays correct through many short-lived requests", async () => {
  // Exercises unlinking from the timeout lists in any order.
  using tracker = new RequestTracker({ timeout: 60_000 });
  const stuck = tracker.track();
  for (let round = 0; round < 50; round++) {
    const batch = Array.from({ length: 200 }, () => tracker.track<number>());
    for (const { sequence } of batch.toReversed()) {
      tracker.resolve(sequence, sequence);
    }
    const values = await Promise.all(batch.map((p) => p.promise));
    assert.deepEqual(values, batch.map((p) => p.sequence));
  }
  assert.equal(tracker.size, 1);
  const late = tracker.track({ timeout: 1 });
  await assert.rejects(late.promise, RequestTimeoutError);
  assert.ok(tracker.has(stuck.sequence));
  tracker.resolve(stuck.sequence, "finally");
  assert.equal(await stuck.promise, "finally");
});

Deno.test("RequestTracker rejects invalid options with RangeError", () => {
  assert.throws(() => new RequestTracker({ timeout: -1 }), RangeError);
  assert.throws(() => new RequestTracker({ maxPending: -1 }), RangeError);
  assert.throws(() => new RequestTracker({ maxSequence: 0 }), RangeError);
  assert.throws(
    () => new RequestTracker({ maxSequence: MAX_SEQUENCE + 1 }),
    RangeError,
  );
});

Deno.test("RequestTracker with maxPending 0 refuses every request", () => {
  using tracker = new RequestTracker({ maxPending: 0 });
  assert.throws(() => tracker.track(), TooManyPendingError);
  assert.equal(tracker.size, 0);
});
