import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { setup, signal } from "./_streams.ts";

/**
 * Uploads `chunks` made by `make` to a handler that reads one chunk, waits
 * for `release`, then reads the rest; at every read it checks that the
 * source ran at most `lead(read)` chunks ahead of the reader. Resolves with
 * the chunks the source had pulled once the paused handler's connection went
 * quiet, and the handler's count.
 */
async function paused<T>(
  count: number,
  make: (i: number) => T,
  lead: (read: number) => number,
  binary: boolean,
): Promise<{ pulledWhilePaused: number; read: number }> {
  let pulled = 0;
  const firstRead = signal();
  const release = signal();
  await using s = await setup(
    (server) => {
      server.handle("save", async (chunks: AsyncIterable<T>) => {
        let read = 0;
        for await (const _ of chunks) {
          read++;
          assert.ok(
            pulled - read <= lead(read),
            `${pulled} pulled, ${read} read, at most ${lead(read)} ahead`,
          );
          if (read === 1) {
            firstRead.resolve();
            await release.promise;
          }
        }
        return read;
      });
      server.handle("noop", () => null);
    },
    binary ? { codecs: [binaryCodec] } : {},
    binary ? { codec: binaryCodec } : {},
  );
  async function* source(): AsyncGenerator<T> {
    for (let i = 0; i < count; i++) {
      pulled++;
      yield make(i);
    }
  }
  const result = s.client.call("save", source(), { timeout: 0 });
  await firstRead.promise;
  // A few round trips on the same socket: credit granted by the first read
  // has reached the source by now, and what it pulled has been sent.
  for (let i = 0; i < 5; i++) await s.client.call("noop", null);
  const pulledWhilePaused = pulled;
  release.resolve();
  return { pulledWhilePaused, read: await result as number };
}

Deno.test("Upload window: 64 KiB chunks open it to 32 chunks (2 MiB) after the first 16, never more in flight or buffered", async () => {
  const chunk = new Uint8Array(64 * 1024).fill(1);
  const { pulledWhilePaused, read } = await paused(
    300,
    () => chunk,
    () => 32,
    true,
  );
  // The first read made the window up to 32 granted-but-unread chunks.
  assert.equal(pulledWhilePaused, 1 + 32);
  assert.equal(read, 300);
});

Deno.test("Upload window: 512 KiB chunks shrink it to 4 chunks (2 MiB) once the first 16 are read", async () => {
  const chunk = new Uint8Array(512 * 1024).fill(2);
  const { pulledWhilePaused, read } = await paused(
    60,
    () => chunk,
    // The first grant (16) stands; after it, at most 4 granted-but-unread.
    (read) => Math.max(16 - read, 4),
    true,
  );
  assert.equal(pulledWhilePaused, 16);
  assert.equal(read, 60);
});

Deno.test("Upload window: small text chunks open it to at most 32; values of no plain size keep 16", async () => {
  const text = await paused(1000, () => "x", () => 32, false);
  assert.equal(text.pulledWhilePaused, 1 + 32);
  assert.equal(text.read, 1000);
  const values = await paused(100, (i) => ({ i }), () => 16, false);
  // One read owes one chunk: credit goes back in batches of half the window.
  assert.equal(values.pulledWhilePaused, 16);
  assert.equal(values.read, 100);
});
