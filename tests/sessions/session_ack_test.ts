import assert from "node:assert/strict";
import { sessionLimits, SessionSocket } from "../../src/peer/session_socket.ts";
import { type Endpoint, Peer } from "../../src/peer/peer.ts";
import { Session as ServerSession } from "../../src/server/server_session.ts";
import type { ServerSessionSocket } from "../../src/server/server_session_socket.ts";
import type { ServerSessions } from "../../src/server/server_sessions.ts";
import { ClientSession } from "../../src/client/client_session.ts";
import {
  askedPacing,
  decodeAck,
  decodeAckFast,
  decodeHello,
  decodeState,
  encodeHello,
  encodeState,
} from "../../src/wire/session_frames.ts";
import { DuplexServer } from "../../server.ts";
import { deadline, MessageQueue, once } from "../_helpers.ts";
import { listen, open } from "../_server_helpers.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { afterDueAcks, FakeTransport } from "./_session_helpers.ts";

/**
 * A session with 5 frames sent, and what its hooks heard; `server`: a
 * server's session (its hooks answer acks), over a stand-in for its
 * sessions that counts the errors and drops.
 */
function sessionWithFive(server = false, limits = sessionLimits({})) {
  const heard = { errors: 0, detached: 0, remoteEnd: 0 };
  const session = server
    ? new ServerSession(
      {
        warn: () => heard.errors++,
        onDetach: () => heard.detached++,
      } as unknown as ServerSessions<Endpoint, Endpoint>,
      "id",
      "user",
      "hash",
      limits,
    ).socket
    : new SessionSocket(limits, {
      onError: () => heard.errors++,
      onDetach: () => heard.detached++,
      onRemoteEnd: () => heard.remoteEnd++,
    });
  const transport = new FakeTransport();
  session.attach(transport, 0);
  for (let i = 1; i <= 5; i++) {
    session.send(`{"sequence":0,"type":3,"message":${i}}`);
  }
  return { session, transport, heard };
}

/**
 * A lone ack of `ack` frames whose answer waits: nothing leaves at once, and
 * when the wait ends (no frame of ours left meanwhile) the answer carries
 * `count`.
 */
function answeredAfterWait(
  session: ServerSessionSocket,
  transport: FakeTransport,
  ack: number,
  count: number,
): void {
  const before = transport.sent.length;
  transport.receive(`{"type":10,"sequence":${ack}}`);
  assert.equal(transport.sent.length, before);
  session.answerLater();
  assert.deepEqual(transport.sent.slice(before), [
    `{"type":10,"sequence":${count}}`,
  ]);
}

Deno.test("SessionSocket: plain acks trim the outbox, one with end is told to the owner", () => {
  const { session, transport, heard } = sessionWithFive();
  assert.equal(session.pendingFrames().length, 5);
  transport.receive(`{"type":10,"sequence":2}`);
  assert.equal(session.pendingFrames().length, 3);
  transport.receive(`{"type":10,"sequence":2}`);
  assert.equal(session.pendingFrames().length, 3);
  // Another order of the fields goes through JSON.parse, to the same effect.
  transport.receive(`{"type":10,"sequence":4 }`);
  assert.equal(session.pendingFrames().length, 1);
  transport.receive(`{"type":10,"sequence":5,"end":true}`);
  assert.equal(session.pendingFrames().length, 0);
  assert.equal(heard.remoteEnd, 1);
  assert.equal(heard.errors, 0);
});

Deno.test("Session (the server's): the ack of a client that only received is answered only when no frame of ours leaves within the wait (that frame carries TCP's acknowledgement of it)", () => {
  const five = sessionWithFive(true);
  const { transport, heard } = five;
  const session = five.session as ServerSessionSocket;
  const before = transport.sent.length;
  // Nothing received from the client: its ack waits for a frame of ours.
  transport.receive(`{"type":10,"sequence":2}`);
  assert.equal(transport.sent.length, before);
  session.send(`{"sequence":0,"type":3,"message":6}`);
  session.answerLater(); // the wait is over: a frame left, no answer
  assert.deepEqual(transport.sent.slice(before), [
    `{"sequence":0,"type":3,"message":6}`,
  ]);
  // None leaves within the wait: answered then, with the count unchanged.
  answeredAfterWait(session, transport, 4, 0);
  assert.equal(session.pendingFrames().length, 2);
  assert.equal(heard.errors, 0);
  session.end("expired");
});

for (
  const [name, ack] of [
    ["leading zeros", `{"type":10,"sequence":02}`],
    ["more than were sent", `{"type":10,"sequence":6}`],
    ["past 2^53 - 1", `{"type":10,"sequence":9007199254740993}`],
    ["not a number", `{"type":10,"sequence":1x}`],
    ["no count", `{"type":10,"sequence":}`],
  ]
) {
  Deno.test(`SessionSocket: an ack with ${name} closes the socket with 1002`, () => {
    const { session, transport, heard } = sessionWithFive();
    transport.receive(`{"type":10,"sequence":1}`);
    transport.receive(ack);
    assert.equal(transport.closedWith, 1002);
    assert.equal(heard.errors, 1);
    assert.equal(heard.detached, 1);
    // Nothing was trimmed by the bad ack: the session can still replay.
    assert.equal(session.pendingFrames().length, 4);
    assert.equal(session.ended, false);
    session.end("expired");
  });
}

Deno.test("Session (the server's): every ack of new frames is answered at once, also from a client that sent nothing since its last", () => {
  const { session, transport, heard } = sessionWithFive(true);
  // Two frames received from the other side: under the pacing of 64.
  transport.receive(`{"sequence":1,"type":3,"method":"a"}`);
  transport.receive(`{"sequence":2,"type":3,"method":"b"}`);
  const before = transport.sent.length;
  transport.receive(`{"type":10,"sequence":3}`);
  assert.deepEqual(transport.sent.slice(before), [`{"type":10,"sequence":2}`]);
  // Nothing new acknowledged: no answer.
  transport.receive(`{"sequence":3,"type":3,"method":"c"}`);
  transport.receive(`{"type":10,"sequence":3}`);
  assert.equal(transport.sent.length, before + 1);
  // New frames acknowledged, nothing sent since its last ack (the tail of a
  // burst the client only received; its next requests follow this ack):
  // answered too, with the count unchanged.
  transport.receive(`{"type":10,"sequence":4}`);
  assert.deepEqual(transport.sent.slice(before + 1), [
    `{"type":10,"sequence":3}`,
  ]);
  // Both again: answered.
  transport.receive(`{"sequence":4,"type":3,"method":"d"}`);
  transport.receive(`{"type":10,"sequence":5}`);
  assert.deepEqual(transport.sent.slice(before + 2), [
    `{"type":10,"sequence":4}`,
  ]);
  assert.equal(session.pendingFrames().length, 0);
  assert.equal(heard.errors, 0);
  session.end("expired");
});

Deno.test("Session (the server's): the ack of a client that sent frames since its previous ack is answered at once, even when our own ack already covered them (sequential calls cross both pacings together)", async () => {
  const five = sessionWithFive(true, sessionLimits({ ackEvery: 2 }));
  const { transport, heard } = five;
  const session = five.session as ServerSessionSocket;
  // The client sends two frames, and our own ack (pacing 2) covers them.
  transport.receive(`{"sequence":1,"type":3,"method":"a"}`);
  transport.receive(`{"sequence":2,"type":3,"method":"b"}`);
  await afterDueAcks();
  const before = transport.sent.length;
  assert.deepEqual(transport.sent.slice(before - 1), [
    `{"type":10,"sequence":2}`,
  ]);
  // Its ack: nothing new for us to acknowledge, but it sent since its
  // previous ack, so its next frames wait behind this one: answered now.
  transport.receive(`{"type":10,"sequence":3}`);
  assert.deepEqual(transport.sent.slice(before), [`{"type":10,"sequence":2}`]);
  // Its next ack, with nothing sent since: it only receives, so the answer
  // waits for a frame of ours (none leaves: answered when the wait ends).
  answeredAfterWait(session, transport, 4, 2);
  assert.equal(session.pendingFrames().length, 1);
  assert.equal(heard.errors, 0);
  session.end("expired");
});

Deno.test("SessionSocket: without the server's hooks (the client), an ack is not answered", () => {
  const { session, transport } = sessionWithFive();
  transport.receive(`{"sequence":1,"type":3,"method":"a"}`);
  const before = transport.sent.length;
  transport.receive(`{"type":10,"sequence":3}`);
  assert.equal(transport.sent.length, before);
  assert.equal(session.pendingFrames().length, 2);
  session.end("expired");
});

/** A client session started by a state with `ackEvery`, and its transport. */
function startedClient(ackEvery: number | undefined, given?: number) {
  const client = new ClientSession<Peer>(
    given === undefined ? {} : { ackEvery: given },
    { onDetach() {}, onError() {} },
  );
  const transport = new FakeTransport();
  const state = encodeState({
    resumed: false,
    id: "session-id",
    secret: "session-secret",
    grace: 1000,
    ...(ackEvery === undefined ? {} : { ackEvery }),
  });
  client.established(transport, state, (socket) => new Peer(socket));
  for (let i = 1; i <= 3; i++) {
    transport.receive(`{"sequence":0,"type":3,"method":"m${i}"}`);
  }
  return {
    client,
    // A due ack goes out at the next turn.
    acks: () => transport.sent.filter((d) => d === `{"type":10,"sequence":3}`),
  };
}

Deno.test("ClientSession: acknowledges at the pacing the server's state asks for, unless ackEvery was given", async () => {
  const paced = startedClient(3);
  const defaulted = startedClient(undefined);
  const given = startedClient(3, 64);
  await afterDueAcks();
  assert.equal(paced.acks().length, 1);
  assert.equal(defaulted.acks().length, 0);
  assert.equal(given.acks().length, 0);
  for (const { client } of [paced, defaulted, given]) client.close(1000, "");
});

Deno.test("decodeState: ackEvery is optional; when present it is an integer of at least 1", () => {
  const base = { resumed: false, id: "i", secret: "s", grace: 5 };
  assert.equal(decodeState(encodeState(base)).ackEvery, undefined);
  assert.equal(
    decodeState(encodeState({ ...base, ackEvery: 625 })).ackEvery,
    625,
  );
  for (const ackEvery of [0, -1, 1.5, "64"]) {
    const data = `{"type":9,"sequence":0,"message":${
      JSON.stringify({ ...base, ackEvery })
    }}`;
    assert.throws(() => decodeState(data), ProtocolError);
  }
});

Deno.test("decodeHello: ackEvery is optional in a start and a resume; when present it is an integer of at least 1", () => {
  assert.deepEqual(decodeHello(encodeHello({ ackEvery: 625 })), {
    ackEvery: 625,
  });
  assert.deepEqual(
    decodeHello(encodeHello({ id: "i", secret: "s", received: 2 })),
    { id: "i", secret: "s", received: 2 },
  );
  for (const ackEvery of [0, 2.5, "64"]) {
    const data = `{"type":8,"sequence":0,"message":${
      JSON.stringify({ ackEvery })
    }}`;
    assert.throws(() => decodeHello(data), ProtocolError);
  }
  // A client asks for 1/16 of what it keeps, from 1 to 1,024.
  const pacing = (maxFrames: number) =>
    askedPacing({ maxFrames, maxBytes: 1 }).ackEvery;
  assert.equal(pacing(10_000), 625);
  assert.equal(pacing(100_000), 1024);
  assert.equal(pacing(8), 1);
});

Deno.test("Session: the server acknowledges at the pacing the client's hello asks for, and a ClientSession asks for its own", async () => {
  const client = new ClientSession<Peer>({ maxBufferedFrames: 48 }, {
    onDetach() {},
    onError() {},
  });
  const asked = JSON.parse(client.hello()).message;
  assert.equal(asked.ackEvery, 3);
  // No delayed ack within the test: only the count can trigger one.
  const server = new DuplexServer({ sessions: { ackDelay: 60_000 } });
  await using http = listen(server);
  const socket = await open(
    `ws://127.0.0.1:${http.addr.port}/?user=paced`,
    ["duplex.v1", "duplex.session"],
  );
  const queue = new MessageQueue(socket);
  socket.send(client.hello());
  assert.equal((await queue.next()).type, 9);
  for (let i = 1; i <= 3; i++) {
    socket.send(`{"sequence":0,"type":3,"method":"n${i}"}`);
  }
  // The ack comes after the third frame, not the 64th.
  const ack = await deadline(queue.next());
  assert.deepEqual(ack, { type: 10, sequence: 3 });
  const closed = once(socket, "close");
  socket.close();
  await closed;
  await server.shutdown();
});

Deno.test("Session: the server answers the ack a client sends at the tail of a burst, after sending nothing since its last ack (its next requests wait behind that ack under Nagle)", async () => {
  // No delayed ack within the test: every ack below is the client's own.
  const server = new DuplexServer({ sessions: { ackDelay: 60_000 } });
  server.onRequest(() => "ok");
  await using http = listen(server);
  const socket = await open(
    `ws://127.0.0.1:${http.addr.port}/?user=burst`,
    ["duplex.v1", "duplex.session"],
  );
  const queue = new MessageQueue(socket);
  socket.send(`{"type":8,"sequence":0,"message":{}}`);
  assert.equal((await queue.next()).type, 9);
  type Frame = { type: number; sequence: number };
  const isAck = (frame: Frame) => frame.type === 10;
  // A burst of 8 requests, all sent before any answer is read.
  for (let i = 1; i <= 8; i++) {
    socket.send(`{"sequence":${i},"type":1,"message":"hello"}`);
  }
  for (let i = 1; i <= 8; i++) {
    const response = await queue.next((frame: Frame) => frame.type === 2);
    assert.equal(response.sequence, i);
  }
  // Half of the answers acknowledged: the client sent since its last ack.
  socket.send(`{"type":10,"sequence":4}`);
  assert.deepEqual(await queue.next(isAck), { type: 10, sequence: 8 });
  // The tail: nothing sent since that ack, and still answered at once.
  socket.send(`{"type":10,"sequence":8}`);
  assert.deepEqual(await queue.next(isAck), { type: 10, sequence: 8 });
  // An ack of nothing new gets no answer: the next frame is the response.
  socket.send(`{"type":10,"sequence":8}`);
  socket.send(`{"sequence":9,"type":1,"message":"hello"}`);
  assert.deepEqual(await queue.next(), {
    sequence: 9,
    type: 2,
    message: "ok",
  });
  const closed = once(socket, "close");
  socket.close();
  await closed;
  await server.shutdown();
});

Deno.test("SessionSocket: a due ack goes out right after the first frame its delivery makes this side send, never alone ahead of it (Nagle)", async () => {
  const session = new SessionSocket(sessionLimits({ ackEvery: 2 }));
  const transport = new FakeTransport();
  session.attach(transport, 0);
  // Each frame received is answered a few promise hops later (as a
  // client's next request is).
  session.addEventListener("message", {
    handleEvent() {
      Promise.resolve().then(() => Promise.resolve()).then(() =>
        session.send(`{"sequence":1,"type":1,"message":"next"}`)
      );
    },
  });
  transport.receive(`{"sequence":0,"type":3,"message":1}`);
  transport.receive(`{"sequence":0,"type":3,"message":2}`);
  assert.deepEqual(transport.sent, []);
  // The first answer went first, the ack of both right after it (not a
  // turn later), then the second answer.
  await afterDueAcks();
  assert.deepEqual(
    transport.sent.map((frame) => JSON.parse(frame as string).type),
    [1, 10, 1],
  );
  assert.equal(JSON.parse(transport.sent[1] as string).sequence, 2);
  session.close();
});

Deno.test("SessionSocket: a due ack follows a frame its delivery sends at once, in the same turn, and none is sent twice", async () => {
  const session = new SessionSocket(sessionLimits({ ackEvery: 1 }));
  const transport = new FakeTransport();
  session.attach(transport, 0);
  // Answered within the delivery (a server's synchronous handler).
  session.addEventListener("message", {
    handleEvent() {
      session.send(`{"sequence":1,"type":2,"message":"ok"}`);
    },
  });
  transport.receive(`{"sequence":1,"type":1,"message":"a"}`);
  const types = () =>
    transport.sent.map((frame) => JSON.parse(frame as string).type);
  assert.deepEqual(types(), [2, 10]);
  // Its turn finds nothing left to acknowledge.
  await afterDueAcks();
  assert.deepEqual(types(), [2, 10]);
  session.close();
});

Deno.test("SessionSocket: the delayed ack outlives acks by count (one timer per delay, not one per ack), and a frame after one is still acknowledged within the delay", async () => {
  const ackDelay = 20;
  const session = new SessionSocket(sessionLimits({ ackEvery: 2, ackDelay }));
  const acked = Promise.withResolvers<void>();
  const transport = new class extends FakeTransport {
    override send(data: string | Uint8Array<ArrayBuffer>): void {
      super.send(data);
      if (JSON.parse(data as string).sequence === 5) acked.resolve();
    }
  }();
  session.attach(transport, 0);
  const acks = () =>
    transport.sent.map((frame) => JSON.parse(frame as string).sequence);
  // The delayed acks' timers set while frames arrive (no other timer runs
  // here: due acks take `setImmediate`).
  let delayed = 0;
  const setTimer = globalThis.setTimeout;
  globalThis.setTimeout = ((run: () => void, ms?: number, ...args: []) => {
    if (ms === ackDelay) delayed++;
    return setTimer(run, ms, ...args);
  }) as typeof setTimeout;
  try {
    for (let n = 1; n <= 5; n++) {
      transport.receive(`{"sequence":0,"type":3,"message":${n}}`);
      if (n % 2 === 0) await afterDueAcks();
    }
  } finally {
    globalThis.setTimeout = setTimer;
  }
  // Frames 2 and 4 made an ack due; the timer frame 1 set was left pending.
  assert.deepEqual(acks(), [2, 4]);
  assert.equal(delayed, 1);
  // Frame 5 came after the last ack by count: the pending timer covers it.
  await deadline(acked.promise, 1_000, "the delayed ack of frame 5");
  assert.deepEqual(acks(), [2, 4, 5]);
  session.close();
});

Deno.test("decodeAckFast (the server's) reads every ack as decodeAck does, and refuses the same ones", () => {
  const frames = [
    '{"type":10,"sequence":0}',
    '{"type":10,"sequence":42}',
    '{"type":10,"sequence":9007199254740991}',
    '{"type":10,"sequence":9007199254740992}',
    '{"type":10,"sequence":007}',
    '{"type":10,"sequence":12,"end":true}',
    '{"type":10,"sequence":-1}',
    '{"type":10,"sequence":1.5}',
    '{"type":10,"sequence":"1"}',
    '{"type":10,"sequence":1',
    '{"type":10,"sequence":1}x',
  ];
  let refused = 0;
  for (const data of frames) {
    let expected: unknown;
    try {
      expected = decodeAck(data);
    } catch (error) {
      assert.ok(error instanceof ProtocolError);
      assert.throws(() => decodeAckFast(data), ProtocolError, data);
      refused++;
      continue;
    }
    assert.deepEqual(decodeAckFast(data), expected, data);
  }
  assert.equal(refused, 7);
  assert.deepEqual(decodeAckFast('{"type":10,"sequence":42}'), {
    received: 42,
    end: false,
  });
});
