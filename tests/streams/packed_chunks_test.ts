import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { validateFrame } from "../../mod.ts";
import { DuplexServer } from "../../server.ts";
import { listen, wsUrl } from "../_server_helpers.ts";
import {
  closeSocket,
  deadline,
  DEADLINE_MS,
  MessageQueue,
  openSocket,
} from "../_helpers.ts";
import { pattern, setup } from "./_streams.ts";

/**
 * Uploads `count` binary chunks (chunk `i` of `size(i)` bytes) from a Client
 * to a handler that checks each, byte for byte, in order; returns the
 * upload chunk frames (type 14) that carried them and how many chunks
 * arrived as a whole buffer of their own (a message of their own, not a
 * view into a frame of several).
 */
async function packedUpload(
  count: number,
  size: (i: number) => number,
): Promise<{ framesIn: number; whole: number }> {
  let framesIn = 0;
  let whole = 0;
  await using s = await setup(
    (server) => {
      server.handle("save", async (chunks: AsyncIterable<Uint8Array>, c) => {
        const before = c.peer.stats.framesIn[14];
        let i = 0;
        for await (const chunk of chunks) {
          assert.deepEqual(chunk, pattern(size(i), i), `chunk ${i}`);
          if (chunk.byteOffset === 0 && chunk.buffer.byteLength === size(i)) {
            whole++;
          }
          i++;
        }
        framesIn = c.peer.stats.framesIn[14] - before;
        return i;
      });
    },
    { codecs: [binaryCodec] },
    { codec: binaryCodec },
  );
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < count; i++) yield pattern(size(i), i);
  }
  assert.equal(await s.client.call("save", source(), { timeout: 0 }), count);
  return { framesIn, whole };
}

Deno.test("Packed chunks: a Client packs an upload's small binary chunks into fewer frames; the handler reads each, in order, byte for byte", async () => {
  const count = 300;
  const { framesIn, whole } = await packedUpload(count, (i) => 8192 + i);
  // 8 KiB chunks, up to 129 KiB of them (the server's pack) in one frame,
  // copied into it: views of the frame's message, except a chunk sent alone.
  assert.ok(framesIn > 0 && framesIn <= count / 4, `${framesIn} frames`);
  assert.equal(whole, 0);
});

Deno.test("Packed chunks: 64 KiB chunks travel packed and detached: each arrives as a message of its own (a whole buffer), byte for byte, in fewer frames", async () => {
  const count = 40;
  const { framesIn, whole } = await packedUpload(count, () => 64 * 1024);
  // Two chunks a frame (the server's pack is 129 KiB), some sent alone
  // (inline, after a header).
  assert.ok(framesIn > 0 && framesIn < count, `${framesIn} frames`);
  assert.equal(whole, 2 * (count - framesIn), `${whole} whole buffers`);
});

Deno.test("Packed chunks: a chunk is not held for a full frame: each leaves when its turn ends", async () => {
  const read: Array<PromiseWithResolvers<void>> = Array.from(
    { length: 5 },
    () => Promise.withResolvers<void>(),
  );
  await using s = await setup(
    (server) => {
      server.handle("save", async (chunks: AsyncIterable<Uint8Array>) => {
        const sizes: number[] = [];
        for await (const chunk of chunks) {
          read[sizes.length].resolve();
          sizes.push(chunk.byteLength);
        }
        return sizes;
      });
    },
    { codecs: [binaryCodec] },
    { codec: binaryCodec },
  );
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 5; i++) {
      // The next chunk only once the handler read this one: a packer that
      // waited for a full frame would wait forever.
      if (i > 0) await deadline(read[i - 1].promise, DEADLINE_MS, "a read");
      yield new Uint8Array(100 + i);
    }
  }
  const sizes = await s.client.call("save", source(), { timeout: 0 });
  assert.deepEqual(sizes, [100, 101, 102, 103, 104]);
});

/** A raw `duplex.v1` connection (no session) to a server that saves uploads. */
async function rawUpload(
  offer: boolean,
): Promise<
  AsyncDisposable & {
    socket: WebSocket;
    queue: MessageQueue;
    grant: Record<string, unknown>;
  }
> {
  const server = new DuplexServer();
  server.handle("save", async (chunks: AsyncIterable<unknown>) => {
    const got: unknown[] = [];
    for await (const chunk of chunks) got.push(chunk);
    return got;
  });
  const http = listen(server);
  const socket = await openSocket(wsUrl(http, "raw"), ["duplex.v1"]);
  const queue = new MessageQueue(socket);
  socket.send(JSON.stringify({
    sequence: 1,
    type: 1,
    method: "save",
    upload: true,
    ...(offer ? { pack: true } : {}),
  }));
  const grant = await queue.next((frame) => frame.type === 16);
  return {
    socket,
    queue,
    grant,
    async [Symbol.asyncDispose]() {
      await closeSocket(socket);
      await server.shutdown();
      await http.shutdown();
    },
  };
}

Deno.test("Packed chunks: negotiated per upload: the first grant says pack only to a request that offered it", async () => {
  {
    await using raw = await rawUpload(false);
    assert.deepEqual(raw.grant, { sequence: 1, type: 16, credit: 16 });
  }
  await using raw = await rawUpload(true);
  // Half the default largest message (1 MiB), at most 129 KiB.
  assert.deepEqual(raw.grant, {
    sequence: 1,
    type: 16,
    credit: 16,
    pack: 132_096,
  });
  raw.socket.send(
    JSON.stringify({
      sequence: 1,
      type: 14,
      message: ["a", "b", "c"],
      chunks: 3,
    }),
  );
  raw.socket.send(JSON.stringify({ sequence: 1, type: 14, message: "d" }));
  raw.socket.send(JSON.stringify({ sequence: 1, type: 15 }));
  const response = await raw.queue.next((frame) => frame.type === 2);
  assert.deepEqual(response, {
    sequence: 1,
    type: 2,
    message: ["a", "b", "c", "d"],
  });
});

Deno.test("Packed chunks: packed without leave, or beyond the credit, fail the upload with INVALID_FRAME", async () => {
  {
    await using raw = await rawUpload(false);
    raw.socket.send(
      JSON.stringify({ sequence: 1, type: 14, message: ["a", "b"], chunks: 2 }),
    );
    const response = await raw.queue.next((frame) => frame.type === 2);
    assert.equal((response.error as { code: string }).code, "INVALID_FRAME");
    assert.match(
      (response.error as { message: string }).message,
      /packed without leave/,
    );
  }
  await using raw = await rawUpload(true);
  const many = Array.from({ length: 17 }, (_, i) => i);
  raw.socket.send(
    JSON.stringify({ sequence: 1, type: 14, message: many, chunks: 17 }),
  );
  const response = await raw.queue.next((frame) => frame.type === 2);
  assert.equal((response.error as { code: string }).code, "INVALID_FRAME");
  assert.match(
    (response.error as { message: string }).message,
    /more chunks than granted/,
  );
});

Deno.test("Packed chunks: the frame fields are checked: pack true in a request, a positive integer in a grant, chunks counting an array of 2 or more", () => {
  assert.equal(
    validateFrame({ sequence: 1, type: 1, upload: true, pack: true }).type,
    1,
  );
  assert.throws(
    () => validateFrame({ sequence: 1, type: 1, upload: true, pack: 1 }),
    /"pack" must be true/,
  );
  assert.equal(
    validateFrame({ sequence: 1, type: 16, credit: 4, pack: 1024 }).type,
    16,
  );
  assert.throws(
    () => validateFrame({ sequence: 1, type: 16, credit: 4, pack: 0 }),
    /"pack" must be a positive integer/,
  );
  assert.equal(
    validateFrame({ sequence: 1, type: 14, message: [1, 2], chunks: 2 }).type,
    14,
  );
  for (
    const bad of [
      { message: [1, 2, 3], chunks: 2 },
      { message: [1], chunks: 1 },
      { message: "ab", chunks: 2 },
      { message: [1, 2], chunks: 2.5 },
    ]
  ) {
    assert.throws(
      () => validateFrame({ sequence: 1, type: 14, ...bad }),
      /"chunks" must count the chunks of "message"/,
      JSON.stringify(bad),
    );
  }
});
