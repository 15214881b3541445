import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import type { Endpoint, Peer, RequestContext } from "../../mod.ts";
import { once } from "../_helpers.ts";
import { setup } from "./_streams.ts";

const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;
const TOTAL = 64 * MIB;

async function* bytes(total: number): AsyncGenerator<Uint8Array> {
  for (let sent = 0; sent < total; sent += CHUNK) {
    yield new Uint8Array(CHUNK).fill((sent / CHUNK) & 255);
  }
}

// The server's limits are left at their defaults (500 frames/s, 1 MiB/s,
// bursts of 1,000 frames and 4 MiB): 64 MiB in 1,024 chunks is far beyond
// both budgets, but every chunk was asked for by the receiver's credit.
Deno.test("DuplexServer with default limits: a 64 MiB upload and download pass (credited chunks are exempt), a 64 MiB burst of notifications is still cut off with 1008", async () => {
  let serverPeer: Peer<Endpoint, Endpoint> | undefined;
  await using s = await setup(
    (server) => {
      server.handle(
        "upload",
        async (chunks: AsyncIterable<Uint8Array>, context: RequestContext) => {
          serverPeer = context.peer;
          let total = 0;
          let index = 0;
          for await (const chunk of chunks) {
            assert.equal(chunk[0], index++ & 255);
            total += chunk.byteLength;
          }
          return total;
        },
      );
      server.handle("download", (total: number) => bytes(total));
    },
    { codecs: [binaryCodec] },
    { codec: binaryCodec },
  );
  const { client } = s;

  assert.equal(
    await client.call("upload", bytes(TOTAL), { timeout: 0 }),
    TOTAL,
  );
  let received = 0;
  let index = 0;
  for await (const chunk of client.stream<Uint8Array>("download", TOTAL)) {
    assert.equal(chunk[0], index++ & 255);
    received += chunk.byteLength;
  }
  assert.equal(received, TOTAL);
  assert.equal(serverPeer!.stats.rateLimited, 0);
  assert.equal(client.state, "open");

  // Notifications are relayed traffic: the byte budget still applies.
  const closed = once<CloseEvent>(client, "close");
  const payload = new Uint8Array(512 * 1024);
  for (let sent = 0; sent < TOTAL; sent += payload.byteLength) {
    client.emit("blob", payload).catch(() => {});
  }
  assert.equal((await closed).code, 1008);
  assert.ok(serverPeer!.stats.rateLimited > 50);
});
