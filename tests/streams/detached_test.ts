/**
 * Large attachments as messages of their own (src/wire/attachments.ts):
 * every frame type carries them, the wire shows the head and then the
 * bytes, a malformed or oversized head closes the connection before its
 * bytes are read, and a session replays a detached frame whole.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BINARY_SUBPROTOCOL, binaryCodec } from "../../binary.ts";
import { type SessionEvent, streams } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { partsOf } from "../../src/wire/attachments.ts";
import { deadline, MessageQueue, once } from "../_helpers.ts";
import { closeAndWait, listen, open, wsUrl } from "../_server_helpers.ts";
import { setup as sessionSetup } from "../sessions/_session_helpers.ts";
import { BIG, pattern, rawHead, setup, signal } from "./_streams.ts";

Deno.test("Detached frames: requests, responses, notifications and server requests carry 300 KiB both ways, byte for byte", async () => {
  const seen = signal<unknown>();
  await using s = await setup(
    (server) => {
      server.handle("echo", (value: unknown) => value);
      server.on("upload", (payload: unknown) => seen.resolve(payload));
    },
    { codecs: [binaryCodec] },
    { codec: binaryCodec },
  );
  const { server, client } = s;
  const one = pattern(BIG, 1);
  const two = pattern(BIG + 7, 2);
  // Two large attachments and a small one in one frame.
  const sent = { one, two, small: new Uint8Array([1, 2]), name: "\u0000x" };
  assert.deepEqual(await client.call("echo", sent), sent);
  await client.emit("upload", { one });
  assert.deepEqual(await seen.promise, { one });

  const pushed = signal<unknown>();
  client.on("image", (payload: unknown) => pushed.resolve(payload));
  client.handle("size", (bytes: Uint8Array) => bytes.byteLength);
  server.notify({ two }, { to: "alice", method: "image" });
  assert.deepEqual(await pushed.promise, { two });
  assert.equal(await server.call("size", one, { to: "alice" }), BIG);
});

Deno.test("Detached frames on the wire: the head (top bit set, the lengths) and then each attachment as a binary message of its own", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec] });
  server.handle("echo", (value: unknown) => value);
  await using http = listen(server);
  const socket = await open(wsUrl(http, "raw"), [BINARY_SUBPROTOCOL]);
  socket.binaryType = "arraybuffer";
  const queue = new MessageQueue(socket);
  const bytes = pattern(BIG, 3);
  const head = binaryCodec.encode({
    sequence: 1,
    type: 1,
    method: "echo",
    message: bytes,
  }) as Uint8Array<ArrayBuffer>;
  // No copy: the attachment is the caller's own bytes.
  assert.equal(partsOf(head)?.[0].buffer, bytes.buffer);
  assert.ok(head.byteLength < 100);
  socket.send(head);
  socket.send(bytes);
  const answerHead = await queue.next() as ArrayBuffer;
  const view = new DataView(answerHead);
  assert.ok(view.getUint32(0) >= 0x8000_0000);
  const headerEnd = 4 + view.getUint32(0) - 0x8000_0000;
  assert.equal(
    new TextDecoder().decode(answerHead.slice(4, headerEnd)),
    '{"sequence":1,"type":2,"message":"\\u0000u0"}',
  );
  assert.equal(view.getUint32(headerEnd), BIG);
  assert.equal(answerHead.byteLength, headerEnd + 4);
  assert.deepEqual(new Uint8Array(await queue.next() as ArrayBuffer), bytes);
  await closeAndWait(socket);
  await server.shutdown();
});

for (
  const [name, send, code] of [
    [
      "a head announcing more than maxMessageSize closes with 1009 before its bytes",
      (socket: WebSocket) => socket.send(rawHead("echo", [2 * 1024 * 1024])),
      1009,
    ],
    [
      "a text frame where an attachment is due closes with 1002",
      (socket: WebSocket) => {
        socket.send(rawHead("echo", [10]));
        socket.send('{"sequence":2,"type":1,"method":"echo"}');
      },
      1002,
    ],
    [
      "an attachment of another length than announced closes with 1002",
      (socket: WebSocket) => {
        socket.send(rawHead("echo", [10]));
        socket.send(new Uint8Array(11));
      },
      1002,
    ],
    [
      "a head that announces no attachment closes with 1002",
      (socket: WebSocket) => socket.send(rawHead("echo", [])),
      1002,
    ],
  ] as const
) {
  Deno.test(`Detached frames: ${name}`, async () => {
    const server = new DuplexServer({
      codecs: [binaryCodec],
      maxMessageSize: 1024 * 1024,
    });
    let handled = 0;
    server.handle("echo", () => handled++);
    await using http = listen(server);
    const socket = await open(wsUrl(http, "raw"), [BINARY_SUBPROTOCOL]);
    const closed = once<CloseEvent>(socket, "close");
    send(socket);
    const event = await deadline(closed);
    assert.equal(event.code, code);
    // Too big: the peer's own limit refuses the head (a session ends).
    assert.match(
      event.reason,
      code === 1009 ? /^Message too big$/ : /^Cannot read frame: /,
    );
    assert.equal(handled, 0);
    await server.shutdown();
  });
}

Deno.test("binaryCodec.decode refuses a detached head whose attachments were not gathered", () => {
  const head = binaryCodec.encode({
    sequence: 1,
    type: 2,
    message: pattern(BIG, 4),
  });
  // A copy of the head has no attachments.
  assert.throws(
    () => binaryCodec.decode((head as Uint8Array<ArrayBuffer>).slice()),
    /detached attachments missing/,
  );
});

for (const fault of ["rst", "midframe"] as const) {
  Deno.test(`Detached frames survive a resumed drop (${fault}): a download of 300 KiB chunks arrives whole, once, in order`, async () => {
    await using t = sessionSetup({ codecs: [binaryCodec], rateLimit: false });
    t.server.handle("chunks", async function* (n: number) {
      for (let i = 0; i < n; i++) yield pattern(BIG, i);
    });
    const client = t.client("alice", { codec: binaryCodec, streams });
    await client.connect();
    let received = 0;
    for await (
      const chunk of client.stream<Uint8Array>("chunks", 12, { credit: 4 })
    ) {
      assert.deepEqual(chunk, pattern(BIG, received));
      received++;
      if (received === 4) {
        const resumed = once<SessionEvent>(client, "resumed");
        t.proxy.cutAll(fault);
        await deadline(resumed);
      }
    }
    assert.equal(received, 12);
    assert.equal(t.server.sessionMetrics.resumed, 1);
  });
}
