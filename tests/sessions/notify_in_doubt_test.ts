/**
 * Client→server notifications when the instance that received them dies
 * (issue 15): each runs once, or the client is told it is in doubt
 * (`SessionEvent.notificationsInDoubt`), never twice and never lost without
 * a word. The deaths are injected at exact points of the journal's writes
 * by a store wrapper (no sleeps): after the store kept "received" but
 * before the instance heard so (the listener never ran), after the
 * listener ran but before "dispatched" was stored, and before "received"
 * was stored (the client sends the frame again).
 *
 * @module
 */

import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { sessionLimits } from "../../src/peer/session_socket.ts";
import { Peer } from "../../src/peer/peer.ts";
import { HeldFrames } from "../../src/peer/held_frames.ts";
import { ServerSessionSocket } from "../../src/server/server_session_socket.ts";
import { ClientSession } from "../../src/client/client_session.ts";
import { decodeState, encodeState } from "../../src/wire/session_frames.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { redisTest } from "../_redis.ts";
import { deadline } from "../_helpers.ts";
import { pair } from "./_dying_store.ts";
import { FakeTransport } from "./_session_helpers.ts";

for (
  const [wire, options, note] of [
    ["JSON", {}, { k: 1 }],
    // Bytes in the message: the notification travels as a binary frame.
    ["binary-codec", { codec: binaryCodec }, new Uint8Array([1, 2, 3])],
  ] as const
) {
  redisTest(
    `Client: a ${wire} notification stored as received by an instance that died before its listener ran is reported in doubt, and runs nowhere`,
    async (redis) => {
      await using setup = pair(redis);
      const client = setup.client(`notify-${wire}`, options);
      await client.connect();
      assert.equal(await client.call("work", 1), "a:1");
      // Client frame 1 was the request; the note is frame 2.
      setup.dying.arm("after-received", 2);
      client.emit("note", note);
      const event = await setup.failOver();
      assert.equal(event.inDoubt, 0);
      assert.equal(event.notificationsInDoubt.length, 1);
      const [doubted] = event.notificationsInDoubt;
      assert.equal(doubted.method, "note");
      assert.deepEqual(doubted.message, note);
      // Later notifications run on b, once; the one in doubt ran nowhere.
      client.emit("note", { k: 2 });
      assert.equal(await client.call("work", 2), "b:2");
      assert.deepEqual(setup.ran.a, []);
      assert.deepEqual(setup.ran.b, [{ k: 2 }]);
      assert.equal(
        setup.instances[1].server.sessionMetrics.framesInDoubt,
        1,
      );
    },
  );
}

for (const writeAhead of [true, false]) {
  redisTest(
    `Client: a notification whose listener ran on an instance that died before storing so is reported in doubt, and never runs again (writeAhead: ${writeAhead})`,
    async (redis) => {
      await using setup = pair(redis, { writeAhead });
      // Acknowledgements every frame (1/16 of 16): without the rule that
      // they cover only what the store knows as run, the note's would go
      // out before its listener's push.
      const client = setup.client("notify-ran", {
        session: { maxBufferedFrames: 16 },
      });
      const told: unknown[] = [];
      const toldOnce = Promise.withResolvers<void>();
      client.on("ran", (message) => {
        told.push(message);
        toldOnce.resolve();
      });
      const heard = Promise.withResolvers<void>();
      setup.instances[0].server.on("note", () => heard.resolve());
      await client.connect();
      assert.equal(await client.call("work", 1), "a:1");
      // The note (frame 2) is stored and handed to its listener; the write
      // that would store "dispatched 2" never reaches the store.
      setup.dying.arm("before-dispatched", 2);
      client.emit("note", { k: 1 });
      await deadline(heard.promise, 5_000, "the listener on a");
      // Without write-ahead the listener's push leaves at once; with it,
      // it waits for the write that dies: it never leaves.
      if (!writeAhead) await deadline(toldOnce.promise, 5_000, "the push");
      const event = await setup.failOver();
      assert.deepEqual(
        event.notificationsInDoubt.map((frame) => frame.message),
        [{ k: 1 }],
      );
      assert.equal(await client.call("work", 2), "b:2");
      assert.deepEqual(setup.ran.a, [{ k: 1 }]);
      assert.deepEqual(setup.ran.b, []);
      assert.deepEqual(told, writeAhead ? [] : [{ k: 1 }]);
    },
  );
}

redisTest(
  "Client: a notification that an instance received but never stored is sent again after it died, and runs once on the next",
  async (redis) => {
    await using setup = pair(redis);
    const client = setup.client("notify-replayed");
    await client.connect();
    assert.equal(await client.call("work", 1), "a:1");
    setup.dying.arm("before-received", 2);
    client.emit("note", { k: 1 });
    client.emit("note", { k: 2 });
    const event = await setup.failOver();
    assert.deepEqual(event.notificationsInDoubt, []);
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(setup.ran.a, []);
    assert.deepEqual(setup.ran.b, [{ k: 1 }, { k: 2 }]);
  },
);

redisTest(
  "Client: notifications that ran before a clean take-over are not in doubt, and the server acknowledged only what the store knew as run",
  async (redis) => {
    await using setup = pair(redis);
    const client = setup.client("notify-clean");
    await client.connect();
    for (let k = 1; k <= 5; k++) client.emit("note", { k });
    assert.equal(await client.call("work", 1), "a:1");
    assert.equal(setup.ran.a.length, 5);
    // a dies at its next write, applied: a push makes one.
    setup.dying.arm("after-received", 0);
    setup.instances[0].server.notify(0, { to: "notify-clean", method: "t" });
    const event = await setup.failOver();
    assert.deepEqual(event.notificationsInDoubt, []);
    client.emit("note", { k: 6 });
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(setup.ran.b, [{ k: 6 }]);
  },
);

/** A server's session transport (holding is the server's), hooks silent. */
function serverSocket(): ServerSessionSocket {
  return new ServerSessionSocket(sessionLimits({ ackEvery: 1 }), {
    answers: () => false,
    onAcked: () => {},
    onEnding: () => {},
    onHeld: () => {},
  });
}

Deno.test("ServerSessionSocket: holding, acknowledgements cover only confirmed frames, and never go below what a handshake told", () => {
  const socket = serverSocket();
  const delivered: unknown[] = [];
  socket.addEventListener("message", {
    handleEvent: (event) => delivered.push((event as MessageEvent).data),
  });
  const held = new HeldFrames(socket);
  socket.hold(held);
  const transport = new FakeTransport();
  socket.attach(transport, 0);
  for (let k = 1; k <= 3; k++) {
    transport.receive(`{"sequence":0,"type":3,"message":${k}}`);
  }
  held.release(3);
  assert.equal(delivered.length, 3);
  assert.deepEqual(transport.sent, []);
  held.confirm(1);
  assert.deepEqual(transport.sent, ['{"type":10,"sequence":1}']);
  held.confirm(5); // capped at what was released
  assert.equal(transport.sent.at(-1), '{"type":10,"sequence":3}');
  assert.equal(held.confirmed, 3);
  // A resume tells the other side all released frames: later acks never
  // carry less, even before they are confirmed.
  const resumed = serverSocket();
  const resumedHeld = new HeldFrames(resumed);
  resumed.hold(resumedHeld);
  const first = new FakeTransport();
  resumed.attach(first, 0);
  first.receive(`{"sequence":0,"type":3,"message":1}`);
  first.receive(`{"sequence":0,"type":3,"message":2}`);
  resumedHeld.release(2);
  const second = new FakeTransport();
  resumed.attach(second, 0);
  resumedHeld.confirm(1);
  assert.deepEqual(second.sent, []);
  resumedHeld.confirm(2);
  assert.deepEqual(second.sent, []);
  second.receive(`{"sequence":0,"type":3,"message":3}`);
  resumedHeld.release(3);
  resumedHeld.confirm(3);
  assert.deepEqual(second.sent, ['{"type":10,"sequence":3}']);
  socket.close();
  resumed.close();
});

Deno.test("decodeState: dispatched is optional; when present it is a count of at most received", () => {
  const base = { resumed: true, received: 4, replayed: 0 };
  assert.equal(decodeState(encodeState(base)).dispatched, undefined);
  assert.equal(
    decodeState(encodeState({ ...base, dispatched: 2 })).dispatched,
    2,
  );
  assert.equal(
    decodeState(encodeState({ ...base, dispatched: 4 })).dispatched,
    4,
  );
  for (const dispatched of [5, -1, 1.5, "2", null]) {
    const data = `{"type":9,"sequence":0,"message":${
      JSON.stringify({ ...base, dispatched })
    }}`;
    assert.throws(() => decodeState(data), ProtocolError, String(dispatched));
  }
});

Deno.test("ClientSession: a resume with dispatched reports the notifications after it that the client still keeps, once", () => {
  const session = new ClientSession<Peer>({}, { onDetach() {}, onError() {} });
  const first = new FakeTransport();
  const state = encodeState({
    resumed: false,
    id: "session-id",
    secret: "session-secret",
    grace: 1000,
  });
  const { peer } = session.established(first, state, (s) => new Peer(s));
  peer.notify(1, { method: "a" }); // frame 1
  peer.request(null, { method: "r" }).catch(() => {}); // frame 2
  peer.notify(3, { method: "b" }); // frame 3
  peer.notify(4, { method: "c" }); // frame 4
  // The server acknowledged frame 1 (dispatched and stored as such).
  first.receive('{"type":10,"sequence":1}');
  const resume = encodeState({ resumed: true, received: 3, replayed: 0 });
  const withDoubt = resume.replace('"replayed"', '"dispatched":0,"replayed"');
  const second = new FakeTransport();
  const outcome = session.established(second, withDoubt, (s) => new Peer(s));
  // Frame 1 was acknowledged (not in doubt), 2 is a request, 4 was not
  // received (sent again).
  assert.deepEqual(
    outcome.event?.notificationsInDoubt.map((f) => [f.method, f.message]),
    [["b", 3]],
  );
  // Frame 4 is sent again, alone.
  assert.equal(second.sent.length, 1);
  assert.match(String(second.sent[0]), /"method":"c"/);
  // The same range again (a later take-over): nothing left to report.
  const third = new FakeTransport();
  const again = session.established(third, withDoubt, (s) => new Peer(s));
  assert.deepEqual(again.event?.notificationsInDoubt, []);
  session.close(1000, "");
});
