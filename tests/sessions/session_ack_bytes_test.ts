/**
 * The acknowledgement byte pacing of sessions: the hello and the state carry
 * `ackBytes` (an eighth of the sender's byte bound), each side acknowledges by the
 * other's, and a peer that does not say keeps 1 MiB.
 */
import assert from "node:assert/strict";
import { Peer } from "../../src/peer/peer.ts";
import { sessionLimits } from "../../src/peer/session_limits.ts";
import { pacedLimits } from "../../src/server/server_session.ts";
import { ClientSession } from "../../src/client/client_session.ts";
import {
  askedPacing,
  decodeHello,
  decodeState,
  encodeHello,
  encodeState,
} from "../../src/wire/session_frames.ts";
import { ProtocolError } from "../../src/wire/errors.ts";
import { DuplexServer } from "../../server.ts";
import type { SessionOptions } from "../../server.ts";
import { MessageQueue, once } from "../_helpers.ts";
import { listen, open } from "../_server_helpers.ts";
import { afterDueAcks, FakeTransport } from "./_session_helpers.ts";

const MiB = 1024 * 1024;

/** A notification of `size` characters in all (text: UTF-16 units). */
function notification(size: number, method = "n"): string {
  const head = `{"sequence":0,"type":3,"method":"${method}","message":"`;
  return `${head}${"x".repeat(size - head.length - 2)}"}`;
}

Deno.test("askedPacing: a side asks for acks every eighth of the bytes it keeps, from 1 to 2 GiB", () => {
  assert.deepEqual(askedPacing({ maxFrames: 10_000, maxBytes: 8 * MiB }), {
    ackEvery: 625,
    ackBytes: MiB,
  });
  assert.equal(
    askedPacing({ maxFrames: 16, maxBytes: 65_536 }).ackBytes,
    8_192,
  );
  assert.equal(askedPacing({ maxFrames: 16, maxBytes: 1 }).ackBytes, 1);
  assert.equal(askedPacing({ maxFrames: 16, maxBytes: 3.5 }).ackBytes, 1);
  // An unbounded outbox still asks for an integer (JSON has no Infinity).
  assert.equal(
    askedPacing({ maxFrames: 16, maxBytes: Infinity }).ackBytes,
    2 ** 31,
  );
});

Deno.test("pacedLimits: one limits object per pacing of frames and bytes; what the server's options set is kept", () => {
  const limits = sessionLimits({});
  assert.equal(pacedLimits(limits, {}, {}), limits);
  const asked = { ackEvery: 625, ackBytes: 4 * MiB };
  const paced = pacedLimits(limits, asked, {});
  assert.deepEqual([paced.ackEvery, paced.ackBytes], [625, 4 * MiB]);
  assert.equal(pacedLimits(limits, { ...asked }, {}), paced);
  const fewerBytes = pacedLimits(limits, { ...asked, ackBytes: 32_768 }, {});
  assert.notEqual(fewerBytes, paced);
  assert.deepEqual([fewerBytes.ackEvery, fewerBytes.ackBytes], [625, 32_768]);
  // Given options win: here only the frames follow the hello.
  const given = { ackBytes: MiB };
  const kept = pacedLimits(sessionLimits(given), asked, given);
  assert.deepEqual([kept.ackEvery, kept.ackBytes], [625, MiB]);
});

Deno.test("decodeState: ackBytes is optional; when present it is an integer of at least 1", () => {
  const base = { resumed: false, id: "i", secret: "s", grace: 5 };
  assert.equal(decodeState(encodeState(base)).ackBytes, undefined);
  assert.deepEqual(
    decodeState(encodeState({ ...base, ackEvery: 625, ackBytes: 4 * MiB })),
    { ...base, ackEvery: 625, ackBytes: 4 * MiB },
  );
  for (const ackBytes of [0, -1, 1.5, "4194304", null, 2 ** 53]) {
    const data = `{"type":9,"sequence":0,"message":${
      JSON.stringify({ ...base, ackBytes })
    }}`;
    assert.throws(() => decodeState(data), ProtocolError, "bad ackBytes");
  }
});

Deno.test("decodeHello: ackBytes is optional in a start and a resume; when present it is an integer of at least 1", () => {
  assert.deepEqual(decodeHello(encodeHello({ ackBytes: 4 * MiB })), {
    ackBytes: 4 * MiB,
  });
  assert.deepEqual(
    decodeHello(
      encodeHello({ id: "i", secret: "s", received: 2, ackBytes: 7 }),
    ),
    { id: "i", secret: "s", received: 2, ackBytes: 7 },
  );
  for (const ackBytes of [0, 2.5, "64", null]) {
    const data = `{"type":8,"sequence":0,"message":${
      JSON.stringify({ ackBytes })
    }}`;
    assert.throws(() => decodeHello(data), ProtocolError, "bad ackBytes");
  }
});

Deno.test("ClientSession: its hello asks for acks every eighth of the bytes it keeps, in a start and a resume", () => {
  const hooks = { onDetach() {}, onError() {} };
  const defaulted = new ClientSession<Peer>({}, hooks);
  assert.deepEqual(JSON.parse(defaulted.hello()).message, {
    ackEvery: 625,
    ackBytes: MiB,
  });
  const small = new ClientSession<Peer>({ maxBufferedBytes: 65_536 }, hooks);
  assert.equal(JSON.parse(small.hello()).message.ackBytes, 8_192);
  // Its resume asks for the same.
  const transport = new FakeTransport();
  small.established(
    transport,
    encodeState({ resumed: false, id: "i", secret: "s", grace: 1000 }),
    (socket) => new Peer(socket),
  );
  const resume = JSON.parse(small.hello()).message;
  assert.equal(resume.id, "i");
  assert.equal(resume.ackBytes, 8_192);
  small.close(1000, "");
});

/**
 * A client session started by `state`, that received `frames` frames of
 * 1 MiB: the acks it sent.
 */
async function clientAcks(
  state: string,
  frames: number,
  given: { ackBytes?: number } = {},
): Promise<number[]> {
  const client = new ClientSession<Peer>(given, {
    onDetach() {},
    onError() {},
  });
  const transport = new FakeTransport();
  client.established(transport, state, (socket) => new Peer(socket));
  for (let i = 1; i <= frames; i++) {
    transport.receive(notification(MiB, `m${i}`));
    // A due ack goes out at the next turn (frames of one turn share one).
    await afterDueAcks();
  }
  client.close(1000, "");
  return transport.sent.flatMap((data) => {
    const frame = JSON.parse(data as string);
    return frame.type === 10 && frame.end !== true ? [frame.sequence] : [];
  });
}

/** A server, and a raw session socket that sent `hello` and got `state`. */
interface Started {
  state: string;
  socket: WebSocket;
  queue: MessageQueue;
  end(): Promise<void>;
}

/** A server's state, as it wrote it to a raw socket that sent `hello`. */
async function serverState(
  options: SessionOptions,
  hello: string,
): Promise<Started> {
  // 1 MiB frames and their heads fit.
  const server = new DuplexServer({
    maxMessageSize: 2 * MiB,
    sessions: options,
  });
  const http = listen(server);
  const socket = await open(
    `ws://127.0.0.1:${http.addr.port}/?user=bytes`,
    ["duplex.v1", "duplex.session"],
  );
  const queue = new MessageQueue(socket);
  const first = once<MessageEvent>(socket, "message");
  socket.send(hello);
  const state = (await first).data as string;
  assert.equal((await queue.next()).type, 9);
  return {
    state,
    socket,
    queue,
    async end() {
      const closed = once(socket, "close");
      socket.close();
      await closed;
      await server.shutdown();
      await http.shutdown();
    },
  };
}

Deno.test("Session: the server's state asks for acks every eighth of its byte bound, and the client acknowledges by it", async () => {
  const hello = new ClientSession<Peer>({}, {
    onDetach() {},
    onError() {},
  }).hello();
  // A server with maxBufferedBytes 64 KiB asks for acks by 8 KiB.
  const small = await serverState({ maxBufferedBytes: 65_536 }, hello);
  assert.equal(decodeState(small.state).ackBytes, 8_192);
  await small.end();
  // The default: 8 MiB kept, acks asked for every 1 MiB.
  const defaulted = await serverState({}, hello);
  assert.equal(decodeState(defaulted.state).ackBytes, MiB);
  await defaulted.end();
  // One that keeps 32 MiB asks for 4 MiB: the client acknowledges 1 MiB
  // frames by it, not at each.
  const large = await serverState({ maxBufferedBytes: 32 * MiB }, hello);
  assert.equal(decodeState(large.state).ackBytes, 4 * MiB);
  await large.end();
  assert.deepEqual(await clientAcks(large.state, 3), []);
  assert.deepEqual(await clientAcks(large.state, 4), [4]);
  assert.deepEqual(await clientAcks(large.state, 8), [4, 8]);
  // A client whose ackBytes is given keeps it.
  assert.deepEqual(
    await clientAcks(large.state, 2, { ackBytes: MiB }),
    [1, 2],
  );
  // A server that does not say (older): 1 MiB, an ack for each such frame.
  const old = encodeState({ resumed: false, id: "i", secret: "s", grace: 9 });
  assert.deepEqual(await clientAcks(old, 2), [1, 2]);
});

/**
 * The first ack a server (no delayed ack within the test) sends to a client
 * that sent `hello` and then `frames` frames of 1 MiB, one at a time.
 */
async function firstServerAck(
  hello: string,
  frames: number,
  options: SessionOptions = {},
): Promise<number> {
  const { socket, queue, end } = await serverState(
    { ackDelay: 60_000, ...options },
    hello,
  );
  for (let i = 1; i <= frames; i++) {
    socket.send(notification(MiB, `n${i}`));
    if (i === frames) break;
    // Two pings answered: an ack due after this frame (at the server's next
    // turn) left before the second pong, so it is seen here.
    for (let ping = 0; ping < 2; ping++) {
      socket.send(`{"sequence":0,"type":5}`);
      await queue.next((frame) => frame.type === 6);
    }
    if (
      queue.buffered.some((frame) => (frame as { type: number }).type === 10)
    ) {
      break;
    }
  }
  const ack = await queue.next((frame) => frame.type === 10);
  await end();
  return ack.sequence as number;
}

Deno.test("Session: the server acknowledges by the client's hello's ackBytes, else 1 MiB, unless its own ackBytes is given", async () => {
  // The first ack comes after the fourth 1 MiB frame (4 MiB), not the first.
  assert.equal(await firstServerAck(encodeHello({ ackBytes: 4 * MiB }), 4), 4);
  // A client that does not say (older): at 1 MiB, after the first.
  assert.equal(await firstServerAck(encodeHello({}), 1), 1);
  // The server's own ackBytes wins over the hello's.
  assert.equal(
    await firstServerAck(encodeHello({ ackBytes: 4 * MiB }), 2, {
      ackBytes: 2 * MiB,
    }),
    2,
  );
});
