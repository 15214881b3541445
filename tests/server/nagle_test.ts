import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { binaryCodec } from "../../binary.ts";
import {
  Coalescer,
  CoalescingSocket,
  NAGLE_ANSWER,
} from "../../src/server/coalescing_socket.ts";
import { deadline } from "../_helpers.ts";
import {
  afterBurst,
  closeAndWait,
  listen,
  open,
  recordingSocket,
  until,
  wsUrl,
} from "../_server_helpers.ts";

/** Resolves with `messages` once `done(messages)` holds. */
function arrived(
  socket: WebSocket,
  messages: string[],
  done: (messages: string[]) => boolean,
): Promise<string[]> {
  return deadline(
    new Promise((resolve) => {
      const check = () => {
        if (!done(messages)) return;
        socket.removeEventListener("message", check);
        resolve(messages);
      };
      socket.addEventListener("message", check);
      check();
    }),
  );
}

/** Resolves with `messages` once it holds `count` of them. */
function received(
  socket: WebSocket,
  messages: string[],
  count: number,
): Promise<string[]> {
  return arrived(socket, messages, () => messages.length >= count);
}

/** Frames in `messages`, counting what each batch holds. */
function frames(messages: string[]): number {
  return messages.reduce(
    (sum, data) =>
      sum + (data.startsWith('{"type":11,') ? JSON.parse(data).sequence : 1),
    0,
  );
}

const RESPONSE = '{"sequence":1,"type":2,"message":"ok"}';

Deno.test("DuplexServer answers a duplex.nagle client's unanswered notification with a pong, and never an answered request", async () => {
  for (
    const [protocols, coalesce, answered] of [
      [["duplex.v1", "duplex.batch", "duplex.nagle"], true, true],
      [["duplex.v1", "duplex.nagle"], true, true], // no batches
      [["duplex.v1", "duplex.batch", "duplex.nagle"], false, true],
      [["duplex.v1", "duplex.batch"], true, false], // did not offer it
      [["duplex.nagle"], true, false], // an original client: no pongs
    ] as const
  ) {
    const label = `${protocols} coalesce ${coalesce}`;
    const duplex = new DuplexServer({ coalesce });
    const heard = Promise.withResolvers<void>();
    duplex.onNotify(() => heard.resolve());
    duplex.onRequest(() => "ok");
    await using http = listen(duplex);
    const registered = until(duplex, () => duplex.isOnline("ann"));
    const socket = await open(wsUrl(http, "ann"), [...protocols]);
    const messages: string[] = [];
    socket.addEventListener("message", (event) => {
      // A session's state and acknowledgements are not what this is about.
      if (!event.data.startsWith('{"type":')) messages.push(event.data);
    });
    await registered;

    // A notification nothing answers: the burst that read it ends with a
    // pong, written before the request below is even sent.
    socket.send('{"sequence":0,"type":3,"message":"hi"}');
    await deadline(heard.promise);
    socket.send('{"sequence":1,"type":1,"message":"q"}');
    const first = answered ? [NAGLE_ANSWER, RESPONSE] : [RESPONSE];
    assert.deepEqual(await received(socket, messages, first.length), first);
    // Counted as the connection's pongs (the server's metrics add them up).
    const [connection] = duplex.connectionsOf("ann");
    assert.equal(connection.peer.stats.framesOut[6], answered ? 1 : 0, label);

    // Pipelined requests, each answered in the burst that read it, need
    // nothing more: the fence request's response comes next, no pong.
    messages.length = 0;
    for (let i = 0; i < 3; i++) {
      socket.send('{"sequence":1,"type":1,"message":"q"}');
    }
    await arrived(socket, messages, () => frames(messages) >= 3);
    const answers = messages.splice(0);
    socket.send('{"sequence":1,"type":1,"message":"q"}');
    assert.deepEqual(await received(socket, messages, 1), [RESPONSE], label);
    assert.ok(!answers.includes(NAGLE_ANSWER), `${label}: ${answers}`);
    await closeAndWait(socket);
    await duplex.shutdown();
  }
});

Deno.test("Client in Deno offers duplex.nagle, gets a pong for a notification nothing answers, and ignores it; nagle: false does not", async () => {
  const duplex = new DuplexServer({ codecs: [binaryCodec] });
  const heard: string[] = [];
  duplex.onNotify((message) => void heard.push(String(message)));
  duplex.onRequest((message) => `re ${message}`);
  await using http = listen(duplex);
  for (const codec of [undefined, binaryCodec]) {
    for (const session of [false, true]) {
      for (const nagle of [undefined, false]) {
        const label = `${codec?.name ?? "json"} session ${session} ${nagle}`;
        await using client = new Client(wsUrl(http, "ann"), {
          session,
          nagle,
          codec,
        });
        const errors: unknown[] = [];
        client.addEventListener("error", (event) => errors.push(event.error));
        await client.connect();
        await client.notify("first");
        assert.equal(await client.request("then"), "re then", label);
        const stats = client.peer!.stats;
        assert.deepEqual(heard.splice(0), ["first"], label);
        // The pong came before the response (the notification's burst
        // ended before the request was read), or not at all.
        assert.equal(stats.framesIn[6], nagle === false ? 0 : 1, label);
        assert.equal(stats.unexpected, 0, label);
        assert.equal(stats.malformed, 0, label);
        assert.deepEqual(errors, [], label);
      }
    }
  }
  await duplex.shutdown();
});

Deno.test("Client with a session in Deno: notifications and requests interleaved arrive once each, in order", async () => {
  const duplex = new DuplexServer();
  const heard: string[] = [];
  duplex.onNotify((message) => void heard.push(String(message)));
  duplex.onRequest((message) => {
    heard.push(String(message));
    return "ok";
  });
  await using http = listen(duplex);
  await using client = new Client(wsUrl(http, "ann"));
  await client.connect();
  const expected: string[] = [];
  for (let i = 0; i < 20; i++) {
    await client.notify(`n${i}`);
    assert.equal(await client.request(`r${i}`), "ok");
    expected.push(`n${i}`, `r${i}`);
  }
  assert.deepEqual(heard, expected);
  assert.equal(client.peer!.stats.unexpected, 0);
  await duplex.shutdown();
});

Deno.test("CoalescingSocket answers a burst that read frames and wrote nothing, but leaves a lone session ack to the session layer", async () => {
  const sent: string[] = [];
  const inner = recordingSocket(sent);
  const socket = new CoalescingSocket(inner, new Coalescer(), {
    batches: true,
    nagle: true,
  });
  const read: string[] = [];
  socket.addEventListener("message", {
    handleEvent: (event) => read.push((event as MessageEvent).data),
  });
  const arrive = (data: string) =>
    inner.listener!.handleEvent(new MessageEvent("message", { data }));

  arrive('{"sequence":0,"type":3,"message":"hi"}');
  await afterBurst();
  assert.deepEqual(sent, [NAGLE_ANSWER]);

  // A session ack alone: the session layer's answer rule, no pong.
  sent.length = 0;
  arrive('{"type":10,"sequence":7}');
  await afterBurst();
  assert.deepEqual(sent, []);

  // A notification after the ack, in the same burst: answered.
  arrive('{"type":10,"sequence":8}');
  arrive('{"sequence":0,"type":3,"message":"hi"}');
  await afterBurst();
  assert.deepEqual(sent, [NAGLE_ANSWER]);
  // Every frame reached the listener behind it, in order.
  assert.equal(read.length, 4);
});
