/**
 * Detached frames (src/wire/attachments.ts) on the paths the first tests
 * leave out: one push fanned out to several sessions (one of them dropped
 * mid-frame), write-ahead and a replay from the journal on another
 * instance, the size and byte-rate limits, a bare `Peer`, and what happens
 * around the gathering (more attachments than a head may announce, frames
 * after a refusal, a close while a head waits, a listener added first).
 *
 * @module
 */

import assert from "node:assert/strict";
import { BINARY_SUBPROTOCOL, binaryCodec } from "../../binary.ts";
import {
  Client,
  ConnectionClosedError,
  type SessionEvent,
} from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { Peer } from "../../mod.ts";
import { sizeOf } from "../../src/wire/attachments.ts";
import { SessionOutbox } from "../../src/peer/session_outbox.ts";
import { deadline, MessageQueue, once } from "../_helpers.ts";
import { closeAndWait, listen, open, wsUrl } from "../_server_helpers.ts";
import { FaultProxy } from "../_fault_proxy.ts";
import { FAST } from "../sessions/_session_helpers.ts";
import { pair } from "../sessions/_dying_store.ts";
import { redisTest } from "../_redis.ts";
import { BIG, pattern, rawHead, setup, signal } from "./_streams.ts";

const KIB = 1024;

/** Values received, in order; `reached(n)` resolves once there are `n`. */
class Seen<T = unknown> {
  readonly values: T[] = [];
  #waiting: [number, () => void][] = [];
  add(value: T): void {
    this.values.push(value);
    this.#waiting = this.#waiting.filter(([count, resolve]) =>
      this.values.length >= count ? (resolve(), false) : true
    );
  }
  reached(count: number): Promise<void> {
    if (this.values.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiting.push([count, resolve]));
  }
}

Deno.test("Detached fan-out: one 300 KiB push reaches three session clients whole; the one dropped mid-frame gets it once, intact, on its resume", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec], rateLimit: false });
  await using http = listen(server);
  await using proxy = new FaultProxy(http.addr.port);
  const url = (port: number, user: string) =>
    `ws://127.0.0.1:${port}/?user=${user}`;
  const clients = [
    new Client(url(proxy.port, "cut"), { ...FAST, codec: binaryCodec }),
    new Client(url(http.addr.port, "b"), { ...FAST, codec: binaryCodec }),
    new Client(url(http.addr.port, "c"), { ...FAST, codec: binaryCodec }),
  ];
  try {
    const seen = clients.map((client) => {
      client.addEventListener("error", () => {});
      const pushes = new Seen();
      client.on("image", (payload: unknown) => pushes.add(payload));
      return pushes;
    });
    await Promise.all(clients.map((client) => client.connect()));
    const one = pattern(BIG, 1);
    server.notify({ one }, { method: "image" });
    await deadline(Promise.all(seen.map((pushes) => pushes.reached(1))));
    for (const pushes of seen) assert.deepEqual(pushes.values, [{ one }]);

    // The next push is cut in the middle on its way to the first client.
    const two = pattern(BIG + 5, 2);
    const resumed = once<SessionEvent>(clients[0], "resumed");
    server.notify({ two }, { method: "image" });
    proxy.cutAll("midframe");
    const event = await deadline(resumed);
    assert.equal(event.replayed, 1);
    // After the replay: a marker that arrives behind it, in order.
    server.notify("end", { method: "image" });
    await deadline(Promise.all(seen.map((pushes) => pushes.reached(3))));
    for (const pushes of seen) {
      assert.deepEqual(pushes.values, [{ one }, { two }, "end"]);
    }
    assert.equal(server.sessionMetrics.resumed, 1);
  } finally {
    const closed = clients.map((client) => client.close());
    proxy.closeAll();
    await Promise.all(closed);
    await server.shutdown();
  }
});

Deno.test("Detached upload survives a drop mid-frame: the call of 300 KiB is replayed by the client and handled once, byte for byte", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec], rateLimit: false });
  const uploads: Uint8Array[] = [];
  server.handle("upload", (bytes: Uint8Array) => {
    uploads.push(bytes);
    return bytes.byteLength;
  });
  await using http = listen(server);
  await using proxy = new FaultProxy(http.addr.port);
  const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=up`, {
    ...FAST,
    codec: binaryCodec,
  });
  client.addEventListener("error", () => {});
  try {
    await client.connect();
    const bytes = pattern(BIG, 7);
    const resumed = once<SessionEvent>(client, "resumed");
    const answer = client.call("upload", bytes);
    proxy.cutAll("midframe");
    await deadline(resumed);
    assert.equal(await deadline(answer), BIG);
    assert.equal(uploads.length, 1);
    assert.deepEqual(uploads[0], bytes);
  } finally {
    const closed = client.close();
    proxy.closeAll();
    await closed;
    await server.shutdown();
  }
});

for (const death of ["none", "after-sent"] as const) {
  redisTest(
    `Detached write-ahead (${death}): a 300 KiB push held until stored ${
      death === "none"
        ? "then leaves whole (and a note received, held until stored)"
        : "is replayed from the journal by the next instance, whole, once"
    }`,
    async (redis) => {
      const setupPair = pair(redis, { writeAhead: true });
      await using _ = setupPair;
      const client = setupPair.client("ahead", { codec: binaryCodec });
      const seen = new Seen();
      client.on("push", (payload: unknown) => seen.add(payload));
      await client.connect();
      assert.equal(await client.call("work", 1), "a:1");
      const bytes = pattern(BIG, 9);
      if (death === "none") {
        setupPair.instances[0].server.notify({ bytes }, {
          to: "ahead",
          method: "push",
        });
        await deadline(seen.reached(1));
        // And a 300 KiB note the other way, held until stored (received),
        // told back by the instance as a push of its own.
        const ran = new Seen();
        client.on("ran", (payload: unknown) => ran.add(payload));
        const back = pattern(BIG + 3, 15);
        await client.emit("note", { back });
        await deadline(ran.reached(1));
        assert.deepEqual(ran.values, [{ back }]);
        assert.deepEqual(setupPair.ran.a, [{ back }]);
      } else {
        // Server frame 1 was the answer: the push is frame 2, stored, and
        // the instance dies before it hears so (the push never left).
        setupPair.dying.arm("after-sent", 2);
        setupPair.instances[0].server.notify({ bytes }, {
          to: "ahead",
          method: "push",
        });
        const event = await setupPair.failOver();
        assert.equal(event.replayed, 1);
        assert.equal(await client.call("work", 2), "b:2");
      }
      assert.deepEqual(seen.values, [{ bytes }]);
    },
  );
}

redisTest(
  "Detached write-ahead: a note over maxMessageSize, held until stored, ends the session with 1009 once (no resume)",
  async (redis) => {
    const setupPair = pair(redis, { writeAhead: true });
    await using _ = setupPair;
    const client = setupPair.client("big", { codec: binaryCodec });
    let resumes = 0;
    client.addEventListener("resumed", () => resumes++);
    await client.connect();
    assert.equal(await client.call("work", 1), "a:1");
    const closed = once<CloseEvent>(client, "close");
    await client.emit("note", pattern(1024 * KIB + 1, 16));
    assert.equal((await deadline(closed)).code, 1009);
    // The next call goes out on a new session (a resume would send the
    // note again, and be refused again).
    assert.match(
      String(await deadline(client.call("work", 2), 10_000)),
      /^[ab]:2$/,
    );
    assert.equal(resumes, 0);
    assert.deepEqual(setupPair.ran.a, []);
  },
);

Deno.test("Detached limits: a frame of exactly maxMessageSize bytes (head and attachment) is handled; one byte more closes with 1009", async () => {
  const bytes = pattern(BIG, 4);
  const exact = rawHead("size", [BIG]).byteLength + BIG;
  const server = new DuplexServer({
    codecs: [binaryCodec],
    maxMessageSize: exact,
    sessions: false,
  });
  const sizes: number[] = [];
  server.handle("size", (value: Uint8Array) => sizes.push(value.byteLength));
  await using http = listen(server);
  const socket = await open(wsUrl(http, "raw"), [BINARY_SUBPROTOCOL]);
  socket.binaryType = "arraybuffer";
  const queue = new MessageQueue(socket);
  socket.send(rawHead("size", [BIG]));
  socket.send(bytes);
  assert.deepEqual(await queue.next(), { sequence: 1, type: 2, message: 1 });
  assert.deepEqual(sizes, [BIG]);
  const closed = once<CloseEvent>(socket, "close");
  socket.send(rawHead("size", [BIG + 1]));
  socket.send(pattern(BIG + 1, 5));
  assert.equal((await deadline(closed)).code, 1009);
  assert.deepEqual(sizes, [BIG]);
  await server.shutdown();
});

Deno.test("Detached limits with a session: a call over maxMessageSize ends the session with 1009 and rejects, instead of resuming and resending it for ever", async () => {
  let handled = 0;
  await using s = await setup(
    (server) => server.handle("size", () => handled++),
    { codecs: [binaryCodec], maxMessageSize: 512 * KIB },
    { ...FAST, codec: binaryCodec },
  );
  const { client, server } = s;
  client.addEventListener("error", () => {});
  let resumes = 0;
  client.addEventListener("resumed", () => resumes++);
  const error = await deadline(
    client.call("size", pattern(600 * KIB, 6)).then(
      () => assert.fail("Cannot pass: the call should be refused"),
      (error: unknown) => error,
    ),
  );
  assert.ok(error instanceof ConnectionClosedError);
  assert.equal(error.closeCode, 1009);
  // The next call goes out on a new session (a resume would send the
  // frame again, and be refused again).
  assert.equal(await deadline(client.call("size", new Uint8Array(1))), 0);
  assert.equal(handled, 1);
  assert.equal(resumes, 0);
  assert.equal(server.sessionMetrics.resumed, 0);
});

Deno.test("Detached limits: the byte rate limit counts the attachments, not the head", async () => {
  let handled = 0;
  await using s = await setup(
    (server) => server.handle("size", () => handled++),
    {
      codecs: [binaryCodec],
      // 700 KiB at once, then next to nothing: two 300 KiB frames fit.
      rateLimit: { bytesPerSecond: 1, burstBytes: 700 * KIB },
    },
    { codec: binaryCodec },
  );
  const bytes = pattern(BIG, 8);
  assert.equal(await s.client.call("size", bytes), 0);
  assert.equal(await s.client.call("size", bytes), 1);
  await assert.rejects(
    s.client.call("size", bytes),
    (error: { code?: unknown }) => error.code === "RATE_LIMITED",
  );
  assert.equal(handled, 2);
});

Deno.test("Detached frames with more attachments than a head may announce (5,000 of 64 bytes) travel in one message and arrive", async () => {
  await using s = await setup(
    (server) => server.handle("echo", (list: Uint8Array[]) => list),
    { codecs: [binaryCodec], rateLimit: false },
    { codec: binaryCodec },
  );
  const list = Array.from({ length: 5000 }, (_, i) => pattern(64, i));
  const encoded = binaryCodec.encode({
    sequence: 1,
    type: 1,
    method: "echo",
    message: list,
  }) as Uint8Array;
  // One message, the bytes inline.
  assert.equal(sizeOf(encoded), encoded.byteLength);
  assert.deepEqual(await deadline(s.client.call("echo", list)), list);
});

Deno.test("Detached frames between two bare Peers (a raw server-side socket): 300 KiB both ways", async () => {
  const serverPeer = signal<Peer>();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const peer = new Peer(socket, { codec: binaryCodec });
      peer.handle("reverse", (bytes: Uint8Array) => bytes.slice().reverse());
      serverPeer.resolve(peer);
      return response;
    },
  );
  const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await once(socket, "open");
  const peer = new Peer(socket, { codec: binaryCodec });
  assert.equal(socket.binaryType, "arraybuffer");
  peer.handle(
    "sum",
    (parts: Uint8Array[]) =>
      parts.map((part) => part.reduce((a, b) => a + b, 0)),
  );
  const bytes = pattern(BIG, 10);
  assert.deepEqual(
    await deadline(peer.call("reverse", bytes)),
    bytes.slice().reverse(),
  );
  const parts = [pattern(200 * KIB, 11), pattern(100 * KIB, 12)];
  const other = await serverPeer.promise;
  assert.deepEqual(
    await deadline(other.call("sum", parts)),
    parts.map((part) => part.reduce((a, b) => a + b, 0)),
  );
  await closeAndWait(socket);
});

Deno.test("Detached frames: after a refusal (1002), the messages that follow on that socket are not handled", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec], sessions: false });
  let handled = 0;
  server.handle("echo", () => handled++);
  await using http = listen(server);
  const socket = await open(wsUrl(http, "raw"), [BINARY_SUBPROTOCOL]);
  const closed = once<CloseEvent>(socket, "close");
  socket.send(rawHead("echo", [10]));
  socket.send(new Uint8Array(11));
  // Sent before the close arrives: a whole, valid frame (the attachment
  // that was due never came).
  socket.send('{"sequence":2,"type":1,"method":"echo"}');
  socket.send(rawHead("echo", [10]));
  socket.send(new Uint8Array(10));
  // 1002, or, as Deno ends a connection closed with frames still unread,
  // an abnormal closure: no frame of it is handled either way.
  assert.ok([0, 1002, 1006].includes((await deadline(closed)).code));
  assert.equal(handled, 0);
  await server.shutdown();
});

Deno.test("Detached frames: a close while a head waits for its attachments rejects the call and delivers nothing", async () => {
  const headSent = signal();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.binaryType = "arraybuffer";
      socket.addEventListener("message", () => {
        // The answer's head, and not its attachment.
        const header = new TextEncoder().encode(
          '{"sequence":1,"type":2,"message":"\\u0000u0"}',
        );
        const answer = new Uint8Array(4 + header.byteLength + 4);
        const view = new DataView(answer.buffer);
        view.setUint32(0, 0x8000_0000 + header.byteLength);
        answer.set(header, 4);
        view.setUint32(4 + header.byteLength, BIG);
        socket.send(answer);
        headSent.resolve();
      });
      return response;
    },
  );
  const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await once(socket, "open");
  const peer = new Peer(socket, { codec: binaryCodec });
  let delivered = 0;
  socket.addEventListener("message", () => delivered++);
  const answer = peer.call("x", 1);
  const refused = assert.rejects(answer, ConnectionClosedError);
  await deadline(headSent.promise);
  // The head is held (nothing delivered) until the close.
  const closed = once(socket, "close");
  peer.close();
  await deadline(refused);
  await deadline(closed);
  assert.equal(delivered, 0);
});

Deno.test("Detached frames: a message listener added before the Peer sees the head and the attachment as they came; the Peer decodes the gathered frame once", async () => {
  await using s = await setup(
    (server) => {
      server.handle("echo", (value: unknown) => value);
    },
    { codecs: [binaryCodec], sessions: false },
  );
  const socket = await open(wsUrl(s.http, "first"), [BINARY_SUBPROTOCOL]);
  const sizes: number[] = [];
  socket.addEventListener("message", (event) => {
    sizes.push((event.data as ArrayBuffer).byteLength ?? -1);
  });
  const peer = new Peer(socket, { codec: binaryCodec });
  const bytes = pattern(BIG, 13);
  assert.deepEqual(await deadline(peer.call("echo", bytes)), bytes);
  // The head, then its attachment (no second event for the gathered frame).
  assert.equal(sizes.length, 2);
  assert.ok(sizes[0] > 0 && sizes[0] < 64);
  assert.equal(sizes[1], BIG);
  await closeAndWait(socket);
});

Deno.test("Detached frames: 300 KiB in a SharedArrayBuffer (which WebSocket send refuses) travel inline and arrive", async () => {
  await using s = await setup(
    (server) => server.handle("echo", (bytes: Uint8Array) => bytes),
    { codecs: [binaryCodec], rateLimit: false },
    { codec: binaryCodec },
  );
  const shared = new Uint8Array(new SharedArrayBuffer(BIG));
  shared.set(pattern(BIG, 14));
  assert.deepEqual(
    await deadline(s.client.call("echo", shared)),
    pattern(BIG, 14),
  );
  // The client is still connected: the next call is answered.
  assert.deepEqual(await deadline(s.client.call("echo", "after")), "after");
});

Deno.test("Detached frames: bytes whose buffer was transferred before a replay go as the one-message form (the changed bytes), not a head that announces what is gone", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec], rateLimit: false });
  const notes = new Seen();
  server.on("note", (payload: unknown) => notes.add(payload));
  await using http = listen(server);
  await using proxy = new FaultProxy(http.addr.port);
  const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=t`, {
    ...FAST,
    codec: binaryCodec,
  });
  client.addEventListener("error", () => {});
  let resumes = 0;
  client.addEventListener("resumed", () => resumes++);
  try {
    await client.connect();
    // Sent into a black hole: kept for the replay.
    proxy.cutAll("blackhole");
    const bytes = pattern(BIG, 17);
    const resumed = once<SessionEvent>(client, "resumed");
    await client.emit("note", { bytes });
    // The caller gives the buffer away (documented as a change).
    bytes.buffer.transfer();
    await deadline(resumed, 5_000, "the resume");
    await deadline(notes.reached(1), 5_000, "the note");
    assert.deepEqual(notes.values, [{ bytes: new Uint8Array(0) }]);
    assert.equal(resumes, 1);
  } finally {
    const closed = client.close();
    proxy.closeAll();
    await closed;
    await server.shutdown();
  }
});

Deno.test("SessionOutbox: a detached frame counts the same bytes when acknowledged as when kept, though its buffer was given away meanwhile", () => {
  const bytes = pattern(BIG, 18);
  const head = binaryCodec.encode({
    sequence: 1,
    type: 3,
    message: bytes,
  }) as Uint8Array<ArrayBuffer>;
  const outbox = new SessionOutbox({
    maxFrames: 10,
    maxBytes: 1 << 20,
    maxAge: 60_000,
  });
  assert.ok(outbox.push(head, () => 0));
  assert.equal(outbox.bytes, head.byteLength + BIG);
  bytes.buffer.transfer();
  outbox.trim(1);
  assert.equal(outbox.bytes, 0);
});
