/**
 * Acknowledgements carried in the heads of detached frames (PROTOCOL.md
 * "Carried acknowledgements"): the format, the negotiation (a hello that asks,
 * a state that grants), the count a head carries trims the other side's
 * outbox in place of an ack message, and a peer that did not ask never sees
 * one.
 *
 * @module
 */

import assert from "node:assert/strict";
import { BINARY_SUBPROTOCOL, binaryCodec } from "../../binary.ts";
import { DuplexServer } from "../../server.ts";
import { Peer } from "../../src/peer/peer.ts";
import { sessionLimits, SessionSocket } from "../../src/peer/session_socket.ts";
import {
  CARRIES,
  carry,
  detach,
  DETACHED,
  partsOf,
  uncarry,
} from "../../src/wire/attachments.ts";
import {
  decodeHello,
  decodeState,
  encodeHello,
} from "../../src/wire/session_frames.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { MessageQueue } from "../_helpers.ts";
import { redisTest } from "../_redis.ts";
import { pair } from "./_dying_store.ts";
import { closeAndWait, listen, open, wsUrl } from "../_server_helpers.ts";
import { BIG, pattern, setup } from "../streams/_streams.ts";
import { FakeTransport } from "./_session_helpers.ts";

const SESSION_BIN = "duplex.session.bin";

/** A detached request frame's head (its bytes stay apart), as encoded. */
function bigRequest(sequence: number, bytes = pattern(BIG, sequence)) {
  return binaryCodec.encode({
    sequence,
    type: 1,
    method: "echo",
    message: bytes,
  }) as Uint8Array<ArrayBuffer>;
}

/** `data` as the other side receives it (the gatherer keeps its parts). */
function received(data: Uint8Array<ArrayBuffer>): ArrayBuffer {
  const buffer = data.slice().buffer;
  return detach(buffer, partsOf(data)!);
}

Deno.test("carry / uncarry: a head gets the count after its lengths and the flag, and gives both back; other frames carry nothing", () => {
  const head = bigRequest(1);
  const carried = carry(head, 2 ** 40 + 3)!;
  assert.equal(carried.byteLength, head.byteLength + 8);
  const word = new DataView(carried.buffer).getUint32(0);
  assert.equal(word & CARRIES, CARRIES);
  assert.ok(word >= DETACHED);
  assert.equal(partsOf(carried), partsOf(head));
  // The head itself (kept in an outbox) is untouched.
  assert.equal(new DataView(head.buffer).getUint32(0) & CARRIES, 0);
  const [count, back] = uncarry(received(carried))!;
  assert.equal(count, 2 ** 40 + 3);
  assert.deepEqual(back, head);
  assert.deepEqual(binaryCodec.decode(back), binaryCodec.decode(head));
  // A small frame (one message), a text frame and a plain head: nothing.
  const small = binaryCodec.encode({
    sequence: 1,
    type: 1,
    message: new Uint8Array(10),
  }) as Uint8Array<ArrayBuffer>;
  assert.equal(carry(small, 1), undefined);
  assert.equal(carry(new Uint8Array(8), 1), undefined);
  assert.equal(uncarry(received(head)), undefined);
  assert.equal(uncarry(small.slice().buffer), undefined);
});

Deno.test("Session frames: carriedAcks in a hello and a state is a boolean, absent by default", () => {
  assert.equal(decodeHello(encodeHello({})).carriedAcks, undefined);
  assert.equal(
    decodeHello(encodeHello({ carriedAcks: true })).carriedAcks,
    true,
  );
  const state = (message: string) =>
    `{"type":9,"sequence":0,"message":${message}}`;
  assert.equal(
    decodeState(state('{"resumed":true,"received":0,"carriedAcks":true}'))
      .carriedAcks,
    true,
  );
  assert.equal(
    decodeState(state('{"resumed":false,"id":"i","secret":"s","grace":1}'))
      .carriedAcks,
    undefined,
  );
  assert.throws(
    () => decodeHello(`{"type":8,"sequence":0,"message":{"carriedAcks":1}}`),
    ProtocolError,
    "bad carriedAcks",
  );
});

/** A session socket with `sent` text frames out, carrying when `carries`. */
function socketWith(sent: number, carries: boolean) {
  const socket = new SessionSocket(sessionLimits({ ackDelay: 60_000 }), {});
  const transport = new FakeTransport();
  socket.attach(transport, 0, carries ? binaryCodec.carrier : undefined);
  const peer = new Peer(socket, { codec: binaryCodec });
  for (let i = 1; i <= sent; i++) peer.notify(i);
  return { socket, transport, peer };
}

Deno.test("SessionSocket: a received head's count trims the outbox like an ack, and the peer reads the frame without it", async () => {
  const { socket, transport, peer } = socketWith(5, true);
  const got = Promise.withResolvers<unknown>();
  peer.handle("echo", (bytes) => {
    got.resolve(bytes);
    return 1;
  });
  assert.equal(socket.pendingFrames().length, 5);
  transport.receive(received(carry(bigRequest(1), 3)!));
  assert.deepEqual(await got.promise, pattern(BIG, 1));
  // 3 trimmed; the response to the request is kept.
  assert.equal(socket.pendingFrames().length, 5 - 3 + 1);
  // A count past what was sent is a violation (1002), as in an ack.
  transport.receive(received(carry(bigRequest(2), 99)!));
  assert.equal(transport.closedWith, 1002);
  peer.close();
  socket.close();
});

Deno.test("SessionSocket: 8 bytes that are not a count (NaN, a fraction, negative, past 2^53 - 1) close the connection with 1002", () => {
  for (const bad of [NaN, 1.5, -1, 2 ** 53, Infinity]) {
    const { socket, transport, peer } = socketWith(3, true);
    transport.receive(received(carry(bigRequest(1), bad)!));
    assert.equal(transport.closedWith, 1002, String(bad));
    // Nothing was trimmed: the outbox still replays all three.
    assert.equal(socket.pendingFrames().length, 3);
    peer.close();
    socket.close();
  }
});

Deno.test("SessionSocket: a head sent carries what arrived since the last ack, in place of the ack; without the agreement it goes as it is", () => {
  for (const carries of [true, false]) {
    const { socket, transport, peer } = socketWith(0, carries);
    transport.receive(`{"sequence":0,"type":3,"message":1}`);
    transport.receive(`{"sequence":0,"type":3,"message":2}`);
    peer.request(pattern(BIG, 1)).catch(() => {});
    const [head] = transport.sent as Uint8Array<ArrayBuffer>[];
    const word = new DataView(head.buffer, head.byteOffset).getUint32(0);
    if (carries) {
      assert.equal(word & CARRIES, CARRIES);
      assert.equal(uncarry(received(head))![0], 2);
      // Nothing owed any more: no ack follows, now or later.
      assert.equal(transport.sent.length, 1);
    } else {
      assert.equal(word & CARRIES, 0);
      assert.deepEqual(transport.sent.slice(1), []);
    }
    // The outbox keeps the frame without a count (a replay carries none).
    const [kept] = socket.pendingFrames() as Uint8Array[];
    const keptWord = new DataView(kept.buffer, kept.byteOffset).getUint32(0);
    assert.equal(keptWord, (word & ~CARRIES) >>> 0);
    peer.close();
    socket.close();
  }
});

/** A raw session client on the binary codec; `hello` as it asks. */
async function rawSession(server: DuplexServer, hello: string) {
  const http = listen(server);
  const socket = await open(wsUrl(http, "raw"), [
    BINARY_SUBPROTOCOL,
    SESSION_BIN,
  ]);
  assert.equal(socket.protocol, SESSION_BIN);
  socket.binaryType = "arraybuffer";
  const queue = new MessageQueue(socket);
  socket.send(hello);
  const state = decodeState(JSON.stringify(await queue.next()));
  return {
    state,
    socket,
    queue,
    async end() {
      await closeAndWait(socket);
      await server.shutdown();
      await http.shutdown();
    },
  };
}

/** The server's acks among what the queue holds, after two pings answered. */
async function loneAcks(socket: WebSocket, queue: MessageQueue) {
  for (let ping = 0; ping < 2; ping++) {
    socket.send(`{"sequence":0,"type":5}`);
    await queue.next((frame) => frame.type === 6);
  }
  return queue.buffered.filter((frame) =>
    (frame as { type?: number }).type === 10
  ).length;
}

Deno.test("Carried acks on the wire: granted to a hello that asks; each answer's head carries the count, no ack message goes either way", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec] });
  server.handle("echo", (bytes: unknown) => bytes);
  const raw = await rawSession(server, encodeHello({ carriedAcks: true }));
  assert.equal(raw.state.carriedAcks, true);
  for (let round = 1; round <= 3; round++) {
    const bytes = pattern(BIG, round);
    // Ours carries the count of the server's answers received so far.
    raw.socket.send(carry(bigRequest(round, bytes), round - 1)!);
    raw.socket.send(bytes);
    const head = await raw.queue.next() as ArrayBuffer;
    const view = new DataView(head);
    assert.equal(view.getUint32(0) & CARRIES, CARRIES);
    // The server received `round` frames of ours.
    assert.equal(view.getFloat64(head.byteLength - 8), round);
    assert.deepEqual(
      new Uint8Array(await raw.queue.next() as ArrayBuffer),
      bytes,
    );
  }
  assert.equal(await loneAcks(raw.socket, raw.queue), 0);
  await raw.end();
});

Deno.test("Carried acks not asked for: the state does not grant them, heads go as they are with an ack message, and a carried head is malformed", async () => {
  const server = new DuplexServer({
    codecs: [binaryCodec],
    maxMessageSize: 2 * 1024 * 1024,
  });
  let ran = 0;
  server.handle("echo", (bytes: unknown) => {
    ran++;
    return bytes;
  });
  const raw = await rawSession(server, encodeHello({}));
  assert.equal(raw.state.carriedAcks, undefined);
  const bytes = pattern(1024 * 1024, 1);
  raw.socket.send(bigRequest(1, bytes));
  raw.socket.send(bytes);
  const head = await raw.queue.next() as ArrayBuffer;
  assert.equal(new DataView(head).getUint32(0) & CARRIES, 0);
  await raw.queue.next();
  // 1 MiB is due at once: the server's ack follows its answer.
  assert.equal((await raw.queue.next()).type, 10);
  // Carried without the agreement: the frame cannot be read, nothing runs.
  raw.socket.send(carry(bigRequest(2, bytes), 1)!);
  raw.socket.send(bytes);
  // (It counts as a session frame: the ack of its megabyte comes.)
  assert.equal(await loneAcks(raw.socket, raw.queue), 1);
  assert.equal(ran, 1);
  assert.ok(!raw.queue.buffered.some((frame) => frame instanceof ArrayBuffer));
  assert.equal(raw.socket.readyState, WebSocket.OPEN);
  await raw.end();
});

Deno.test("Client and server carry acks: with acks otherwise a minute away, each side's outbox empties as the answers come", async () => {
  const options = { ackDelay: 60_000 };
  await using s = await setup(
    (server) => server.handle("echo", (bytes: unknown) => bytes),
    { codecs: [binaryCodec], sessions: options },
    { codec: binaryCodec, session: options },
  );
  const socket = s.client.peer!.socket as SessionSocket;
  for (let round = 1; round <= 4; round++) {
    const bytes = pattern(BIG, round);
    assert.deepEqual(await s.client.call("echo", bytes), bytes);
    // 300 KiB is under the 1 MiB pacing: only the carried count trims.
    assert.equal(socket.pendingFrames().length, 0);
  }
});

redisTest(
  "Carried acks across instances: large echoes through a journaled session on a, a dies, b resumes and goes on; none lost, none run twice",
  async (redis) => {
    const setup = pair(redis);
    await using _ = setup;
    const ran: string[] = [];
    for (const { name, server } of setup.instances) {
      server.handle("echo", (bytes: Uint8Array) => {
        ran.push(`${name}:${bytes[0]}`);
        return bytes;
      });
    }
    const client = setup.client("carrier", { codec: binaryCodec });
    await client.connect();
    for (let round = 1; round <= 3; round++) {
      const bytes = pattern(BIG, round);
      assert.deepEqual(await client.call("echo", bytes), bytes);
    }
    // a's answers were frames 1 to 3: it dies at the write of its fourth.
    setup.dying.arm("before-sent", 4);
    setup.instances[0].server.notify("x", { to: "carrier", method: "push" });
    const event = await setup.failOver();
    assert.equal(event.inDoubt, 0);
    for (let round = 4; round <= 5; round++) {
      const bytes = pattern(BIG, round);
      assert.deepEqual(await client.call("echo", bytes), bytes);
    }
    const first = (round: number) => pattern(BIG, round)[0];
    assert.deepEqual(ran, [
      ...[1, 2, 3].map((round) => `a:${first(round)}`),
      ...[4, 5].map((round) => `b:${first(round)}`),
    ]);
  },
);
