/**
 * The send budget against a client that sends requests and never reads its
 * socket: the server's memory stays bounded (measured in a child process)
 * and the connection is closed with 1013; and the reads of a socket's buffer
 * that a send skips while far from both budgets.
 *
 * @module
 */

import assert from "node:assert/strict";
import { encodeClientFrame, RawWebSocket } from "../_raw_ws.ts";
import { mb, ServerProcess } from "../stress/_harness.ts";

const encoder = new TextEncoder();

/** Requests `count` responses of `size` bytes each, without ever reading. */
export async function hog(
  port: number,
  count: number,
  size: number,
  user = "hog",
): Promise<RawWebSocket> {
  const socket = await RawWebSocket.connect(port, {
    path: `/?user=${user}`,
    headers: { "Sec-WebSocket-Protocol": "duplex.v1" },
  });
  const frames: Uint8Array[] = [];
  for (let sequence = 1; sequence <= count; sequence++) {
    const frame = { sequence, type: 1, method: "big", message: size };
    frames.push(encodeClientFrame(1, encoder.encode(JSON.stringify(frame))));
  }
  const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  let offset = 0;
  for (const frame of frames) {
    all.set(frame, offset);
    offset += frame.length;
  }
  await socket.writeBytes(all);
  return socket;
}

Deno.test("DuplexServer sendBudget bounds a client that never reads: 1013, memory bounded", async () => {
  // 400 responses of 256 KiB: 100 MiB if responses were written unchecked.
  const server = await ServerProcess.start({ sendBudget: 1024 * 1024 });
  try {
    const before = await server.stats();
    const socket = await hog(server.port, 400, 256 * 1024);
    try {
      const after = await server.waitFor(
        (stats) => stats.closeCodes["1013"] === 1,
        10_000,
        "the hog to be closed with 1013",
      );
      const growth = after.rss - before.rss;
      assert.ok(
        growth < 40e6,
        `server rss grew ${mb(growth)} MB (${mb(before.rss)} → ${
          mb(after.rss)
        })`,
      );
    } finally {
      socket.drop();
    }
  } finally {
    await server.stop();
  }
});

Deno.test("DuplexServer totalSendBudget: of two slow readers over the total together, the larger is closed with 1013", async () => {
  // Each is within its own budget (64 MiB); together they pass the total
  // (8 MiB). The one holding more than the average when it sends goes.
  const server = await ServerProcess.start({
    sendBudget: 64 * 1024 * 1024,
    totalSendBudget: 8 * 1024 * 1024,
  });
  try {
    const before = await server.stats();
    const [large, small] = await Promise.all([
      hog(server.port, 200, 256 * 1024, "large"), // 50 MiB of responses
      hog(server.port, 200, 24 * 1024, "small"), // 4.7 MiB
    ]);
    try {
      const after = await server.waitFor(
        (stats) => stats.closeCodeOf.large === 1013,
        10_000,
        "the larger reader to be closed with 1013",
      );
      assert.equal(after.closeCodeOf.small, undefined);
      assert.equal(after.connections, 1);
      const growth = after.rss - before.rss;
      assert.ok(growth < 60e6, `server rss grew ${mb(growth)} MB`);
    } finally {
      large.drop();
      small.drop();
    }
  } finally {
    await server.stop();
  }
});

/** A socket whose buffer holds `buffered` bytes, counting reads of it. */
function countingSocket(): {
  socket: WebSocket;
  reads: () => number;
  fill: (bytes: number) => void;
  sent: string[];
} {
  let reads = 0;
  let buffered = 0;
  const sent: string[] = [];
  const socket = {
    readyState: 1,
    get bufferedAmount() {
      reads++;
      return buffered;
    },
    send(data: string) {
      sent.push(data);
    },
  } as unknown as WebSocket;
  return {
    socket,
    reads: () => reads,
    fill: (bytes) => buffered = bytes,
    sent,
  };
}

Deno.test("SendBudget reads a socket's buffer only when a send could near a budget, and decides as if it always did", async () => {
  const { SendBudget } = await import("../../src/server/send_budget.ts");
  const budget = new SendBudget(1 << 20, 1 << 30);
  const fast = countingSocket();
  let closed = 0;
  const wrapped = budget.wrap(fast.socket);
  wrapped.peer = { close: () => closed++ };
  // 40-character frames count 120 bytes each: 1,000 sends, few reads.
  const frame = "x".repeat(40);
  for (let i = 0; i < 1000; i++) wrapped.send(frame);
  assert.equal(fast.sent.length, 1000);
  assert.ok(fast.reads() > 0 && fast.reads() <= 10, `${fast.reads()} reads`);
  // A buffer over the connection's budget is seen at the next read.
  fast.fill(2 << 20);
  for (let i = 0; i < 200 && closed === 0; i++) wrapped.send(frame);
  assert.equal(closed, 1);
  // A small budget: every send reads, as before.
  const tight = new SendBudget(100, 1 << 30);
  const slow = countingSocket();
  const strict = tight.wrap(slow.socket);
  strict.peer = { close: () => closed++ };
  for (let i = 0; i < 5; i++) strict.send(frame);
  assert.equal(slow.reads(), 5);
  slow.fill(101);
  strict.send(frame);
  assert.equal(closed, 2);
  assert.equal(slow.sent.length, 5);
});
