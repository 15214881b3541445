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
import type { SessionEvent } from "../../client.ts";
import { deadline, once } from "../_helpers.ts";
import { setup } from "../sessions/_session_helpers.ts";

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
    const client = t.client("alice", { codec: binaryCodec });
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
