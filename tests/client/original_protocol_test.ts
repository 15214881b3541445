/**
 * The client against a server of the original protocol (tests/_original_server.ts
 * reproduces the original Go chat server): it sends only original frames,
 * refuses at once what the original protocol cannot carry, tolerates the
 * original's omitted fields, and its `close()` completes although such a
 * server never answers a close frame.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Client,
  ConnectionClosedError,
  OriginalProtocolError,
} from "../../client.ts";
import { deadline, MessageQueue, once } from "../_helpers.ts";
import { OriginalServer } from "../_original_server.ts";
import { open } from "../_server_helpers.ts";

/** A chat user of the original protocol on a plain WebSocket. */
async function referenceUser(server: OriginalServer, user: string) {
  const socket = await open(server.url(user));
  const queue = new MessageQueue(socket);
  return {
    socket,
    queue,
    close(): void {
      // The original server never answers the close frame: it drops the
      // connection when it closes, which ends this socket.
      if (socket.readyState < 2) socket.close();
    },
  };
}

/** Lets `ms` of idle time pass: the time itself is what is under test. */
function idle(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

Deno.test("Client against an original-protocol server: requests work and the other users see nothing but real chat over 60 heartbeat intervals", async () => {
  const server = OriginalServer.start({ maxDelay: 3, seed: 16 });
  const bob = await referenceUser(server, "bob");
  const client = new Client(server.url("alice"), {
    pingInterval: 5,
    pingTimeout: 5,
    closeTimeout: 20,
  });
  const errors: unknown[] = [];
  client.addEventListener("error", (event) => errors.push(event.error));
  const heard: Array<{ message: unknown; from?: string }> = [];
  const twoHeard = Promise.withResolvers<void>();
  client.onNotify((message, frame) => {
    if (heard.push({ message, from: frame.from }) === 2) twoHeard.resolve();
  });
  try {
    await client.connect();
    assert.equal(client.protocol, "");
    assert.equal(client.peer?.original, true);

    // Pipelined requests: the server answers them out of order.
    const texts = Array.from({ length: 20 }, (_, i) => `hello ${i}`);
    const answers = await Promise.all(texts.map((t) => client.request(t)));
    assert.deepEqual(answers, texts.map(() => "ok"));

    // What the original protocol cannot carry is refused before sending.
    await assert.rejects(client.call("users.list", undefined), (error) => {
      assert.ok(error instanceof OriginalProtocolError);
      assert.match(error.message, /original protocol.*no methods/);
      return true;
    });
    await assert.rejects(client.request({ text: "hi" }), OriginalProtocolError);
    await assert.rejects(client.request(42), OriginalProtocolError);
    const errorEvent = once<ErrorEvent>(client, "error");
    const notified = client.notify("psst");
    await assert.rejects(notified, OriginalProtocolError);
    assert.ok((await errorEvent).error instanceof OriginalProtocolError);
    await assert.rejects(client.emit("typing", {}), OriginalProtocolError);

    // A request given up locally sends no cancel frame (it would be chat).
    const aborted = new AbortController();
    const gone = client.request("given up", { signal: aborted.signal });
    aborted.abort(new Error("changed my mind"));
    await assert.rejects(gone, /changed my mind/);

    // 60 heartbeat intervals of idle time: no ping may reach the server.
    await idle(60 * 5);
    assert.equal(await client.request("after idle"), "ok");

    // Bob saw exactly the chat, in order, and nothing else.
    const sent = [...texts, "given up", "after idle"];
    const seen = [];
    for (let i = 0; i < sent.length; i++) seen.push(await bob.queue.next());
    for (const frame of seen) {
      assert.equal(frame.type, 3);
      assert.equal(frame.from, "alice");
    }
    assert.deepEqual(seen.map((frame) => frame.message), sent);
    // And the server got only unnamed string requests, one per chat.
    assert.equal(server.received.length, sent.length);
    for (const { text } of server.received) {
      const frame = JSON.parse(text);
      assert.deepEqual(Object.keys(frame), ["sequence", "type", "message"]);
      assert.equal(frame.type, 1);
      assert.equal(typeof frame.message, "string");
    }

    // Notifications of the original shape arrive, empty ones as "".
    bob.socket.send(JSON.stringify({ sequence: 7, type: 1, message: "hi" }));
    bob.socket.send(JSON.stringify({ type: 1, message: "" }));
    await deadline(twoHeard.promise);
    assert.deepEqual(heard, [
      { message: "hi", from: "bob" },
      { message: "", from: "bob" },
    ]);
    assert.equal(client.peer?.stats.malformed, 0);
    assert.ok(errors.every((e) => e instanceof OriginalProtocolError));
  } finally {
    await client.close();
    await server.close();
    // The server dropped the lingering socket: close() now sees it end.
    await client.close();
    bob.close();
  }
});

Deno.test("Client.close() completes against a server that never answers the close frame", async () => {
  const server = OriginalServer.start();
  const client = new Client(server.url("alice"), { closeTimeout: 30 });
  await client.connect();
  const closed = once<CloseEvent>(client, "close");
  const started = performance.now();
  await client.close();
  assert.ok(performance.now() - started < 2_000);
  assert.equal(client.state, "closed");
  assert.equal((await closed).code, 1000);
  await server.until(() => server.closeFrames === 1);
  // Pending work is refused at once, with the close's code.
  await assert.rejects(client.request("late"), (error) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.closeCode, 1000);
    return true;
  });
  // The socket lingers (CLOSING) until the server drops the connection.
  assert.deepEqual(server.users, ["alice"]);
  await server.close();
  await client.close();
});

Deno.test("Client reports a dropped connection of an original server as 1006, never 0", async () => {
  const server = OriginalServer.start();
  const client = new Client(server.url("alice"), { maxAttempts: 0 });
  await client.connect();
  const closed = once<CloseEvent>(client, "close");
  const pending = client.request("never answered");
  server.drop("alice");
  assert.equal((await closed).code, 1006);
  await assert.rejects(pending, (error) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.closeCode, 1006);
    return true;
  });
  await server.close();
  await client.close();
});
