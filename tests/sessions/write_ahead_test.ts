/**
 * Write-ahead with a shared store (`SessionOptions.writeAhead`, issue 15):
 * a server→client frame leaves only once the journal write that carries it
 * is stored, so an instance that dies takes with it only frames that never
 * left. The deaths are injected at exact journal writes by the store
 * wrapper of `_dying_store.ts` (no sleeps): the write that counts a frame
 * never reaches the store ("before-sent"), or reaches it and its answer
 * never reaches the instance ("after-sent").
 *
 * @module
 */

import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { OutcomeUnknownError } from "../../client.ts";
import type { DuplexServer } from "../../server.ts";
import { RedisSessionStore } from "../../redis.ts";
import {
  sessionLimits,
  type SessionSocket,
} from "../../src/peer/session_socket.ts";
import { ServerSessionSocket } from "../../src/server/server_session_socket.ts";
import { WriteAheadOutbox } from "../../src/peer/write_ahead_outbox.ts";
import { type RedisServer, redisTest } from "../_redis.ts";
import { deadline } from "../_helpers.ts";
import { FakeTransport, setup as single } from "./_session_helpers.ts";
import { pair } from "./_dying_store.ts";

/** Two instances; the client records its pushes and answers in order. */
function watched(redis: RedisServer, options = {}) {
  const setup = pair(redis, { writeAhead: true });
  for (const { server } of setup.instances) {
    // A request that pushes three times to its caller, then answers.
    server.handle("pushThen", (n: number, context) => {
      for (let k = 1; k <= 3; k++) {
        server.notify(`${n}.${k}`, { to: context.from, method: "push" });
      }
      return n;
    });
  }
  const client = setup.client("ahead", options);
  const seen: unknown[] = [];
  client.on("push", (message) => seen.push(message));
  return { setup, client, seen };
}

/** {@linkcode watched}, connected, after one request instance a answered. */
async function answered(redis: RedisServer, options = {}) {
  const watching = watched(redis, options);
  try {
    await watching.client.connect();
    assert.equal(await watching.client.call("work", 1), "a:1");
    return watching;
  } catch (error) {
    await watching.setup[Symbol.asyncDispose]();
    throw error;
  }
}

redisTest(
  "Write-ahead: a push whose write never reached the store never leaves the dying instance, and is not replayed",
  async (redis) => {
    const { setup, client, seen } = await answered(redis);
    await using _ = setup;
    // Server frame 1 was the answer; the push (a timer's) is frame 2.
    setup.dying.arm("before-sent", 2);
    setup.instances[0].server.notify("lost", { to: "ahead", method: "push" });
    const event = await setup.failOver();
    assert.equal(event.replayed, 0);
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(seen, []);
  },
);

for (
  const [wire, options, payload] of [
    ["JSON", {}, { k: 1 }],
    // Bytes: the push travels, and is stored, as a binary frame.
    ["binary-codec", { codec: binaryCodec }, new Uint8Array([1, 2, 3])],
  ] as const
) {
  redisTest(
    `Write-ahead: a ${wire} push whose write was stored (its answer lost with the instance) is replayed exactly once by the next`,
    async (redis) => {
      const { setup, client, seen } = await answered(redis, options);
      await using _ = setup;
      setup.dying.arm("after-sent", 2);
      setup.instances[0].server.notify(payload, {
        to: "ahead",
        method: "push",
      });
      const event = await setup.failOver();
      assert.equal(event.replayed, 1);
      assert.equal(await client.call("work", 2), "b:2");
      assert.deepEqual(seen, [payload]);
    },
  );
}

redisTest(
  "Write-ahead: pushes made by a request, then its answer, arrive in order, once, through the next instance's replay",
  async (redis) => {
    const { setup, client, seen } = watched(redis);
    await using _ = setup;
    await client.connect();
    // No death: three pushes (held, then sent together, a batch) first.
    const order: unknown[] = seen;
    assert.equal(
      await client.call("pushThen", 1).then((n) => {
        order.push(`answer ${n}`);
        return n;
      }),
      1,
    );
    assert.deepEqual(order, ["1.1", "1.2", "1.3", "answer 1"]);
    // The write carrying pushes 5 to 7 and answer 8 is stored; a dies.
    setup.dying.arm("after-sent", 5);
    const answer = client.call("pushThen", 2).then((n) => {
      order.push(`answer ${n}`);
      return n;
    });
    const event = await setup.failOver();
    assert.equal(event.inDoubt, 0);
    assert.equal(event.replayed, 4);
    assert.equal(await answer, 2);
    assert.deepEqual(order.slice(4), ["2.1", "2.2", "2.3", "answer 2"]);
  },
);

redisTest(
  "Write-ahead: pushes made by a request whose write never reached the store never leave; the request is in doubt",
  async (redis) => {
    const { setup, client, seen } = await answered(redis);
    await using _ = setup;
    setup.dying.arm("before-sent", 2);
    const answer = client.call("pushThen", 2);
    const failed = assert.rejects(answer, OutcomeUnknownError);
    const event = await setup.failOver();
    assert.equal(event.inDoubt, 1);
    await failed;
    assert.deepEqual(seen, []);
    assert.equal(await client.call("work", 3), "b:3");
    assert.deepEqual(seen, []);
  },
);

/** The server's session socket of `user`, its writes to the wire counted. */
function probe(server: DuplexServer, user: string) {
  const [connection] = server.connectionsOf(user);
  const socket = connection.peer.socket as SessionSocket;
  const transport = socket.transport!;
  const writes: unknown[] = [];
  const send = transport.send.bind(transport);
  transport.send = (data) => {
    writes.push(data);
    send(data);
  };
  return { socket, writes };
}

/** A push with the given store: leaves in the same turn, or once stored. */
async function pushProbe(
  redis: RedisServer | undefined,
  writeAhead: boolean,
): Promise<void> {
  const shared = redis === undefined
    ? undefined
    : new RedisSessionStore({ url: redis.url });
  const held = shared !== undefined && writeAhead;
  {
    await using s = single({
      sessions: shared === undefined
        ? {}
        : { store: shared, writeAhead, handoverTimeout: 100 },
    });
    const client = s.client("probe");
    const pushed = Promise.withResolvers<unknown>();
    client.on("push", (message) => pushed.resolve(message));
    await client.connect();
    const { socket, writes } = probe(s.server, "probe");
    const sent = socket.sent;
    // Held back: sent by the peer (counted), not written yet.
    const heldSent = () => socket.sent - sent - writes.length;
    s.server.notify("now", { to: "probe", method: "push" });
    assert.equal(writes.length, held ? 0 : 1);
    assert.equal(heldSent(), held ? 1 : 0);
    assert.equal(await deadline(pushed.promise, 5_000, "the push"), "now");
    assert.equal(writes.length, 1);
    assert.equal(heldSent(), 0);
  }
  await shared?.close();
}

Deno.test("Write-ahead: with the memory store a push leaves for the wire in the same turn", async () => {
  await pushProbe(undefined, true);
});

redisTest(
  "Write-ahead: with a Redis store a push leaves for the wire once stored",
  (redis) => pushProbe(redis, true),
);

redisTest(
  "Write-ahead: with a Redis store and writeAhead off a push leaves for the wire in the same turn",
  (redis) => pushProbe(redis, false),
);

const frame = (k: number) => `{"sequence":0,"type":3,"message":${k}}`;

Deno.test("ServerSessionSocket: holdSent keeps frames off the socket until releaseSent, in order; a replay sends only stored ones; close sends the rest first", () => {
  const limits = sessionLimits({});
  const outbox = new WriteAheadOutbox(limits);
  // The server's transport (what is held leaves before an end).
  const socket: ServerSessionSocket = new ServerSessionSocket(limits, {
    outbox: () => outbox,
    onEnding: () => outbox.releaseSent(Infinity, socket.transport),
    answers: () => false,
    onAcked: () => {},
    onHeld: () => {},
  });
  const heldSent = () => Math.max(0, socket.sent - (outbox.stored ?? Infinity));
  const first = new FakeTransport();
  socket.attach(first, 0);
  socket.send(frame(1)); // before holdSent: leaves at once
  outbox.holdSent();
  for (let k = 2; k <= 4; k++) socket.send(frame(k));
  assert.deepEqual(first.sent, [frame(1)]);
  assert.equal(heldSent(), 3);
  outbox.releaseSent(3, socket.transport);
  assert.deepEqual(first.sent, [frame(1), frame(2), frame(3)]);
  outbox.releaseSent(2, socket.transport); // never backwards
  assert.equal(heldSent(), 1);
  // A resume by a side that received 1: replays 2 and 3, not 4 (unstored).
  const second = new FakeTransport();
  assert.equal(socket.attach(second, 1), 2);
  assert.deepEqual(second.sent, [frame(2), frame(3)]);
  socket.send(frame(5)); // behind 4, held
  outbox.releaseSent(5, socket.transport);
  assert.deepEqual(second.sent.slice(2), [frame(4), frame(5)]);
  // Detached, stored: kept for the replay, nothing sent.
  socket.detach();
  socket.send(frame(6));
  outbox.releaseSent(6, socket.transport);
  socket.send(frame(7));
  const third = new FakeTransport();
  assert.equal(socket.attach(third, 5), 1);
  assert.deepEqual(third.sent, [frame(6)]);
  // Ended on purpose: the held frame leaves before the end.
  socket.close();
  assert.deepEqual(third.sent, [
    frame(6),
    frame(7),
    '{"type":10,"sequence":0,"end":true}',
  ]);
});
