import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { SessionSocket } from "../../src/peer/session_socket.ts";
import {
  Coalescer,
  CoalescingSocket,
  IDLE_HOPS,
  LONE_HOPS,
} from "../../src/server/coalescing_socket.ts";
import { deadline, once } from "../_helpers.ts";
import {
  afterBurst,
  closeAndWait,
  legacyClient,
  listen,
  open,
  recordingSocket,
  until,
  wsUrl,
} from "../_server_helpers.ts";

/** A raw client that keeps every message as it arrived. */
async function rawClient(
  duplex: DuplexServer,
  http: Deno.HttpServer<Deno.NetAddr>,
  user: string,
  protocols: string[],
): Promise<{ socket: WebSocket; messages: string[] }> {
  const registered = until(duplex, () => duplex.isOnline(user));
  const socket = await open(wsUrl(http, user), protocols);
  const messages: string[] = [];
  socket.addEventListener("message", (event) => messages.push(event.data));
  await registered;
  return { socket, messages };
}

/** Resolves once `messages` holds `count` frames (counting batch contents). */
function frames(
  socket: WebSocket,
  messages: string[],
  count: number,
): Promise<unknown[]> {
  const all = (): unknown[] =>
    messages.flatMap((data) => {
      const frame = JSON.parse(data);
      return frame.type === 11 ? frame.message : [frame];
    });
  if (all().length >= count) return Promise.resolve(all());
  return deadline(
    new Promise((resolve) => {
      const check = () => {
        if (all().length < count) return;
        socket.removeEventListener("message", check);
        resolve(all());
      };
      socket.addEventListener("message", check);
    }),
  );
}

const BATCH = ["duplex.v1", "duplex.batch"];

Deno.test("DuplexServer sends the pushes of one turn to a duplex.batch client as one batch frame, in order", async () => {
  const duplex = new DuplexServer();
  await using http = listen(duplex);
  const { socket, messages } = await rawClient(duplex, http, "ann", BATCH);
  for (let i = 1; i <= 10; i++) duplex.notify(`n${i}`, { to: "ann" });
  const received = await frames(socket, messages, 10);
  assert.equal(messages.length, 1);
  assert.equal(
    messages[0],
    `{"type":11,"sequence":10,"message":[${
      received.map((frame) => JSON.stringify(frame)).join(",")
    }]}`,
  );
  assert.deepEqual(
    received,
    Array.from(
      { length: 10 },
      (_, i) => ({ sequence: 0, type: 3, message: `n${i + 1}` }),
    ),
  );
  // A frame alone in its turn leaves as it is.
  duplex.notify("alone", { to: "ann" });
  await frames(socket, messages, 11);
  assert.equal(messages[1], '{"sequence":0,"type":3,"message":"alone"}');
  await closeAndWait(socket);
  await duplex.shutdown();
});

Deno.test("DuplexServer answers pipelined requests of a duplex.batch client in batches, each response once", async () => {
  const duplex = new DuplexServer();
  duplex.onRequest((message) => `re ${message}`);
  await using http = listen(duplex);
  const { socket, messages } = await rawClient(duplex, http, "ann", BATCH);
  const count = 200;
  let burst = "";
  for (let i = 1; i <= count; i++) {
    burst = JSON.stringify({ sequence: i, type: 1, message: `m${i}` });
    socket.send(burst);
  }
  const received = await frames(socket, messages, count) as {
    sequence: number;
    message: string;
  }[];
  assert.deepEqual(
    received.map((frame) => frame.sequence),
    Array.from({ length: count }, (_, i) => i + 1),
  );
  assert.ok(
    received.every((frame) => frame.message === `re m${frame.sequence}`),
  );
  // Fewer messages than responses: the burst was coalesced.
  assert.ok(messages.length < count, `${messages.length} messages`);
  for (const data of messages) {
    const frame = JSON.parse(data);
    if (frame.type === 11) {
      assert.ok(frame.message.length >= 2);
      assert.equal(frame.sequence, frame.message.length);
    }
  }
  await closeAndWait(socket);
  await duplex.shutdown();
});

Deno.test("DuplexServer never sends a batch to a client that did not offer duplex.batch, nor with coalesce: false", async () => {
  for (
    const [protocols, coalesce] of [
      [[], true],
      [["duplex.v1"], true],
      [["duplex.batch"], true], // without duplex.v1: an original client
      [BATCH, false],
    ] as const
  ) {
    const duplex = new DuplexServer({ coalesce });
    await using http = listen(duplex);
    const { socket, messages } = await rawClient(
      duplex,
      http,
      "ann",
      [...protocols],
    );
    for (let i = 1; i <= 5; i++) duplex.notify(`n${i}`, { to: "ann" });
    await frames(socket, messages, 5);
    assert.deepEqual(
      messages,
      [1, 2, 3, 4, 5].map((i) => `{"sequence":0,"type":3,"message":"n${i}"}`),
      `${protocols} coalesce ${coalesce}`,
    );
    await closeAndWait(socket);
    await duplex.shutdown();
  }
});

Deno.test("DuplexServer sends a ping after the frames queued before it, and never inside a batch", async () => {
  const duplex = new DuplexServer();
  await using http = listen(duplex);
  const { socket, messages } = await rawClient(duplex, http, "ann", BATCH);
  const [connection] = duplex.connectionsOf("ann");
  duplex.notify("a", { to: "ann" });
  duplex.notify("b", { to: "ann" });
  connection.peer.ping();
  duplex.notify("c", { to: "ann" });
  await frames(socket, messages, 4);
  assert.deepEqual(messages, [
    `{"type":11,"sequence":2,"message":[${[
      '{"sequence":0,"type":3,"message":"a"}',
      '{"sequence":0,"type":3,"message":"b"}',
    ]}]}`,
    '{"sequence":0,"type":5}',
    '{"sequence":0,"type":3,"message":"c"}',
  ]);
  await closeAndWait(socket);
  await duplex.shutdown();
});

Deno.test("DuplexServer applies the high-water mark to frames still queued for a batch", async () => {
  const duplex = new DuplexServer({ highWaterMark: 100 });
  await using http = listen(duplex);
  const { socket, messages } = await rawClient(duplex, http, "ann", BATCH);
  const [connection] = duplex.connectionsOf("ann");
  const text = "x".repeat(40); // frames of 60 characters
  for (let i = 0; i < 10; i++) duplex.notify(text, { to: "ann" });
  // 0 and 60 waiting are under the mark; 120 is over: 8 dropped.
  assert.equal(connection.peer.stats.dropped, 8);
  await frames(socket, messages, 2);
  assert.equal(messages.length, 1);
  assert.equal(JSON.parse(messages[0]).sequence, 2);
  await closeAndWait(socket);
  await duplex.shutdown();
});

Deno.test("DuplexServer takes a batch frame from a client for an invalid frame", async () => {
  const duplex = new DuplexServer();
  duplex.onRequest(() => "ok");
  await using http = listen(duplex);
  await using ann = await legacyClient(duplex, http, "ann", BATCH);
  ann.socket.send(
    `{"type":11,"sequence":1,"message":[{"sequence":1,"type":1,"message":"hi"}]}`,
  );
  const answer = await ann.queue.next();
  assert.equal(answer.type, 2);
  assert.equal((answer.error as { code: string }).code, "INVALID_FRAME");
  await duplex.shutdown();
});

Deno.test("Client reads batches: pipelined requests and a burst of pushes arrive each once, in order", async () => {
  const duplex = new DuplexServer();
  duplex.handle("double", (n: number) => n * 2);
  await using http = listen(duplex);
  const client = new Client(wsUrl(http, "ann"));
  await client.connect();
  await until(duplex, () => duplex.isOnline("ann"));
  const results = await Promise.all(
    Array.from({ length: 300 }, (_, i) => client.call("double", i)),
  );
  assert.deepEqual(results, Array.from({ length: 300 }, (_, i) => i * 2));
  const pushed: unknown[] = [];
  const all = Promise.withResolvers<void>();
  client.on("tick", (n: number) => {
    pushed.push(n);
    if (pushed.length === 100) all.resolve();
  });
  for (let i = 0; i < 100; i++) {
    duplex.emit("tick", i, { to: "ann" });
  }
  await deadline(all.promise);
  assert.deepEqual(pushed, Array.from({ length: 100 }, (_, i) => i));
  const [connection] = duplex.connectionsOf("ann");
  assert.equal(connection.peer.stats.framesOut[3], 100);
  const closed = once(client, "close");
  client.close();
  await closed;
  await duplex.shutdown();
});

Deno.test("Sessions count the frames inside a batch on both sides", async () => {
  const duplex = new DuplexServer();
  await using http = listen(duplex);
  const client = new Client(wsUrl(http, "ann"));
  await client.connect();
  await until(duplex, () => duplex.isOnline("ann"));
  const all = Promise.withResolvers<void>();
  let count = 0;
  client.on("tick", () => {
    if (++count === 100) all.resolve();
  });
  for (let i = 0; i < 100; i++) duplex.emit("tick", i, { to: "ann" });
  await deadline(all.promise);
  const [connection] = duplex.connectionsOf("ann");
  const serverSide = connection.peer.socket as SessionSocket;
  const clientSide = client.peer!.socket as SessionSocket;
  assert.ok(serverSide instanceof SessionSocket);
  // Counted one by one on the server, as a batch's count on the client.
  assert.equal(serverSide.sent, 100);
  assert.equal(clientSide.received, 100);
  const closed = once(client, "close");
  client.close();
  await closed;
  await duplex.shutdown();
});

/** Resolves after the coalescer's hops (and a margin) have run. */
Deno.test("CoalescingSocket sends the first frame of a burst at once after a lone frame, and batches the rest", async () => {
  const sent: string[] = [];
  const socket = new CoalescingSocket(recordingSocket(sent), new Coalescer());
  const frame = (n: number) => `{"sequence":${n},"type":2,"message":"ok"}`;
  // A new connection batches from its first frame.
  socket.send(frame(1));
  assert.equal(sent.length, 0);
  await afterBurst();
  assert.deepEqual(sent, [frame(1)]);
  // That burst was one frame: the next one leaves at once, unbatched.
  socket.send(frame(2));
  assert.deepEqual(sent, [frame(1), frame(2)]);
  await afterBurst();
  // A burst after a lone frame: the first at once, the rest in one batch.
  socket.send(frame(3));
  assert.equal(sent.length, 3);
  socket.send(frame(4));
  socket.send(frame(5));
  assert.equal(sent.length, 3);
  await afterBurst();
  assert.equal(sent.length, 4);
  assert.equal(JSON.parse(sent[3]).sequence, 2);
  // The last burst was not lone: the next is batched whole.
  for (let n = 6; n <= 8; n++) socket.send(frame(n));
  assert.equal(sent.length, 4);
  await afterBurst();
  assert.equal(sent.length, 5);
  assert.deepEqual(
    JSON.parse(sent[4]).message.map((f: { sequence: number }) => f.sequence),
    [6, 7, 8],
  );
});

Deno.test("Coalescer: after a lone frame the burst ends sooner (LONE_HOPS), unless frames keep coming one hop apart", async () => {
  const sent: string[] = [];
  const socket = new CoalescingSocket(recordingSocket(sent), new Coalescer());
  const frame = (n: number) => `{"sequence":${n},"type":2,"message":"ok"}`;
  socket.send(frame(1));
  await afterBurst();
  // Lone: sent at once, and its burst is over after LONE_HOPS idle hops,
  // where a queued burst waits IDLE_HOPS.
  socket.send(frame(2));
  assert.equal(sent.length, 2);
  // Each await of a resolved promise is one microtask hop (inline: an
  // awaited helper would add two).
  for (let i = 0; i <= LONE_HOPS; i++) await Promise.resolve();
  assert.ok(LONE_HOPS + 1 < IDLE_HOPS);
  socket.send(frame(3));
  assert.equal(sent.length, 3, "a new burst: its first frame leaves at once");
  // Frames one hop apart (Deno dispatches buffered messages so): one burst,
  // the first at once, the rest batched once the full IDLE_HOPS pass.
  await afterBurst();
  socket.send(frame(4));
  for (let n = 5; n <= 8; n++) {
    await Promise.resolve();
    socket.send(frame(n));
  }
  assert.equal(sent.length, 4);
  await afterBurst();
  assert.equal(sent.length, 5);
  assert.deepEqual(
    JSON.parse(sent[4]).message.map((f: { sequence: number }) => f.sequence),
    [5, 6, 7, 8],
  );
});
