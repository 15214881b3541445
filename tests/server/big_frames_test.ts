/**
 * Big frames (hardening finding 7): Deno assembles a whole message, up to
 * its 64 MiB cap, before Duplex sees it and closes the sender with 1009.
 * Measured in a child process: two 48 MiB frames raise the server's RSS by
 * a bounded amount, and the memory is returned once the senders are gone.
 * The bounds below are those SECURITY.md states.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeClientFrame, RawWebSocket } from "../_raw_ws.ts";
import { mb, ServerProcess } from "../stress/_harness.ts";

/** Frame size: under Deno's 64 MiB cap, far over maxMessageSize (1 MiB). */
const FRAME = 48 * 1024 * 1024;
/** Peak growth allowed per frame in flight (measured: about 2×). */
const PEAK_PER_FRAME = 3 * FRAME;
/** RSS above the start allowed once the senders are gone. */
const RETURNED_WITHIN = 64e6;

Deno.test("DuplexServer big frames: 2 × 48 MiB raise RSS by a bounded amount, closed 1009, memory returned after close", async () => {
  const server = await ServerProcess.start({ samplePeak: true });
  try {
    const before = await server.stats();
    const frame = encodeClientFrame(1, new Uint8Array(FRAME).fill(0x78));
    const senders = await Promise.all([
      RawWebSocket.connect(server.port, { path: "/?user=big1" }),
      RawWebSocket.connect(server.port, { path: "/?user=big2" }),
    ]);
    try {
      // The server may close before reading the end: a failed write is fine.
      await Promise.all(
        senders.map((s) => s.writeBytes(frame).catch(() => {})),
      );
      const closed = await server.waitFor(
        (stats) => stats.closeCodes["1009"] === 2,
        30_000,
        "both senders to be closed with 1009",
      );
      const peak = closed.rssPeak - before.rss;
      assert.ok(
        peak < 2 * PEAK_PER_FRAME,
        `peak rss grew ${mb(peak)} MB (${mb(before.rss)} → ${
          mb(closed.rssPeak)
        })`,
      );
    } finally {
      for (const sender of senders) sender.drop();
    }
    // The frames are released with the closed sockets' last references:
    // within a few GCs (each /stats runs one), RSS is back near the start.
    const after = await server.waitFor(
      (stats) =>
        stats.connections === 0 && stats.rss - before.rss < RETURNED_WITHIN,
      10_000,
      `rss to be back within ${mb(RETURNED_WITHIN)} MB of ${mb(before.rss)} MB`,
      200,
    );
    console.log(
      `big frames: rss ${mb(before.rss)} → peak ${mb(after.rssPeak)} → ${
        mb(after.rss)
      } MB after close`,
    );
  } finally {
    await server.stop();
  }
});
