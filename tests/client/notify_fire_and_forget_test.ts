/**
 * `notify()` and `emit()` used fire-and-forget (not awaited) never cause an
 * unhandled rejection: failures surface through the `error` event, and the
 * promise still rejects for a caller who awaits it. The test runner fails a
 * test on an unhandled rejection; the listener below also records them.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client, ConnectionClosedError, QueueFullError } from "../../client.ts";
import { deadline, once } from "../_helpers.ts";

Deno.test("Client.notify() and emit() fired and forgotten on a closed client report through the error event, never an unhandled rejection", async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (event: PromiseRejectionEvent) => {
    unhandled.push(event.reason);
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    const client = new Client("ws://127.0.0.1:1/");
    const errors: unknown[] = [];
    const two = Promise.withResolvers<void>();
    client.addEventListener("error", (event) => {
      if (errors.push(event.error) === 2) two.resolve();
    });
    client.notify("fire");
    client.emit("typing", { room: "lobby" });
    await two.promise;
    for (const error of errors) {
      assert.ok(error instanceof ConnectionClosedError);
      assert.match(
        error.message,
        /^Cannot send notification: connection closed/,
      );
      assert.doesNotMatch(error.message, /request/);
    }
    // Awaited, the same failure rejects.
    await assert.rejects(client.notify("awaited"), ConnectionClosedError);
    // One more macrotask: any unhandled rejection would have fired by now.
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.deepEqual(unhandled, []);
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
  }
});

Deno.test("Client.notify() queued while disconnected and dropped at close reports a notification error", async () => {
  await using server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    () => new Response("no", { status: 503 }),
  );
  const client = new Client(`ws://127.0.0.1:${server.addr.port}`, {
    maxQueue: 1,
  });
  const failed = client.connect().catch((error: unknown) => error);
  const closedError = Promise.withResolvers<unknown>();
  client.addEventListener("error", (event) => {
    if (event.error instanceof ConnectionClosedError) {
      closedError.resolve(event.error);
    }
  });
  const overflow = once<ErrorEvent>(client, "error");
  client.notify("queued"); // waits for the connection
  client.notify("overflow"); // the queue holds one
  assert.ok((await overflow).error instanceof QueueFullError);
  await failed;
  await client.close();
  const error = await deadline(closedError.promise);
  assert.ok(error instanceof ConnectionClosedError);
  assert.match(error.message, /^Cannot send notification/);
});
