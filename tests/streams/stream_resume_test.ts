/**
 * Streams over a session: a connection drop that the session resumes
 * within its grace period does not end the streams; they continue where
 * they were, every chunk once and in order (stream frames are ordinary
 * frames to the session layer, kept and replayed like the others).
 *
 * @module
 */

import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { type SessionEvent, streams } from "../../client.ts";
import type { RequestContext } from "../../mod.ts";
import { deadline, once } from "../_helpers.ts";
import { setup } from "../sessions/_session_helpers.ts";
import type { SessionSocket } from "../../src/peer/session_socket.ts";

for (const fault of ["rst", "midframe"] as const) {
  Deno.test(`Streams survive a resumed drop (${fault}): a download and an upload continue, every chunk once, in order`, async () => {
    await using t = setup({ codecs: [binaryCodec], rateLimit: false });
    let uploaded = 0;
    const uploads: number[] = [];
    t.server.handle("numbers", async function* (n: number) {
      for (let i = 0; i < n; i++) yield new Uint8Array([i & 255, i >> 8]);
    });
    t.server.handle("collect", async (chunks: AsyncIterable<Uint8Array>) => {
      for await (const chunk of chunks) uploads.push(chunk[0] | chunk[1] << 8);
      return uploads.length;
    });
    const client = t.client("alice", { codec: binaryCodec, streams });
    await client.connect();
    assert.equal(client.protocol, "duplex.v1.bin");

    const cut = async () => {
      const resumed = once<SessionEvent>(client, "resumed");
      t.proxy.cutAll(fault);
      await deadline(resumed);
    };
    async function* source(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 300; i++) {
        if (i === 100) await cut();
        uploaded++;
        yield new Uint8Array([i & 255, i >> 8]);
      }
    }
    assert.equal(await client.call("collect", source()), 300);
    assert.deepEqual(uploads, Array.from({ length: 300 }, (_, i) => i));
    assert.equal(uploaded, 300);

    const received: number[] = [];
    for await (
      const chunk of client.stream<Uint8Array>("numbers", 300, { credit: 8 })
    ) {
      received.push(chunk[0] | chunk[1] << 8);
      if (received.length === 100) await cut();
    }
    assert.deepEqual(received, Array.from({ length: 300 }, (_, i) => i));
    assert.equal(t.server.sessionMetrics.resumed, 2);
  });
}

/** The bytes a session keeps for a replay (its outbox). */
function kept(socket: unknown): number {
  let bytes = 0;
  for (const frame of (socket as SessionSocket).pendingFrames()) {
    bytes += typeof frame === "string" ? frame.length : frame.byteLength;
  }
  return bytes;
}

// Default limits: the upload's chunks are credited, so the rate limits do
// not cut it off, before or after the resume.
Deno.test("A resume in the middle of a 32 MiB upload loses nothing; what either side keeps stays bounded by the window and the acknowledgement pacing", async () => {
  const CHUNK = 64 * 1024;
  const CHUNKS = 512;
  await using t = setup({ codecs: [binaryCodec] });
  let serverKept = 0;
  const arrived: number[] = [];
  t.server.handle(
    "save",
    async (chunks: AsyncIterable<Uint8Array>, context: RequestContext) => {
      let total = 0;
      for await (const chunk of chunks) {
        assert.equal(chunk.byteLength, CHUNK);
        arrived.push(chunk[0] | chunk[1] << 8);
        total += chunk.byteLength;
        serverKept = Math.max(serverKept, kept(context.peer.socket));
      }
      return total;
    },
  );
  const client = t.client("alice", {
    codec: binaryCodec,
    pingInterval: 0,
    streams,
  });
  await client.connect();
  let clientKept = 0;
  async function* source(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < CHUNKS; i++) {
      if (i === 200) {
        const resumed = once<SessionEvent>(client, "resumed");
        t.proxy.cutAll("midframe");
        await deadline(resumed);
      }
      clientKept = Math.max(clientKept, kept(client.peer!.socket));
      const chunk = new Uint8Array(CHUNK).fill(i & 255);
      chunk[1] = i >> 8;
      yield chunk;
    }
  }
  assert.equal(
    await client.call("save", source(), { timeout: 0 }),
    CHUNKS * CHUNK,
  );
  assert.deepEqual(arrived, Array.from({ length: CHUNKS }, (_, i) => i));
  assert.equal(t.server.sessionMetrics.resumed, 1);
  // The client keeps what the server has not acknowledged: at most the
  // upload window (2 MiB: 32 chunks of 64 KiB) in flight, plus the 1 MiB
  // after which the server's acknowledgement is due (64 frames, 4 MiB,
  // before acknowledging by bytes), plus what reaches the server in the task
  // before that acknowledgement goes (it goes in the next one): another
  // window at most.
  assert.ok(clientKept <= 5.5 * 1024 * 1024, `client kept ${clientKept}`);
  // The server sends only credit: it keeps next to nothing.
  assert.ok(serverKept < 64 * 1024, `server kept ${serverKept}`);
});
