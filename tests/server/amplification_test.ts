/**
 * Amplification (hardening finding 4): a relay budget in bytes per second as
 * well as frames, and `users.list` pages encoded once between presence
 * changes.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  createChatServer,
  type DisconnectDetail,
  type DuplexServer,
} from "../../server.ts";
import { deadline } from "../_helpers.ts";
import { legacyClient, listen } from "../_server_helpers.ts";
import { EncodedResult, resultCodec } from "../../src/server/encoded_result.ts";
import type { RequestContext } from "../../src/peer/peer.ts";

function serverCloseOf(server: DuplexServer, user: string): Promise<number> {
  return deadline(
    new Promise<number>((resolve) => {
      const listener = (event: CustomEvent<DisconnectDetail>) => {
        if (event.detail.connection.user !== user) return;
        server.removeEventListener("disconnect", listener as EventListener);
        resolve(event.detail.code);
      };
      server.addEventListener("disconnect", listener);
    }),
    10_000,
    `${user} to be disconnected`,
  );
}

async function rateLimited(server: DuplexServer): Promise<number> {
  const response = await server.fetch(new Request("http://127.0.0.1/metrics"));
  const text = await response.text();
  return Number(text.match(/^duplex_rate_limited_total (\d+)$/m)?.[1]);
}

Deno.test("DuplexServer rateLimit bytesPerSecond: a client relaying 1 MB messages under the frame limit gets RATE_LIMITED, then 1008", async () => {
  // Default frame limit (500/s) and byte budget (1 MiB/s, burst 4 MiB); the
  // client sends 12 messages of 1,000,000 bytes at once: 12 frames are far
  // under the frame limit, 12 MB far over the bytes.
  const server = createChatServer({ rateLimit: { maxViolations: 2 } });
  await using http = listen(server);
  await using mallory = await legacyClient(server, http, "mallory");
  await using bob = await legacyClient(server, http, "bob");
  const closed = serverCloseOf(server, "mallory");
  const text = "x".repeat(1_000_000 - 40);
  for (let sequence = 1; sequence <= 12; sequence++) {
    mallory.send({ sequence, type: 1, message: text });
  }
  const refused = await mallory.queue.next((frame) =>
    frame.error !== undefined
  );
  assert.equal((refused.error as { code: string }).code, "RATE_LIMITED");
  // The burst (4 MiB) passed: 4 answered "ok" before the first refusal.
  assert.equal(refused.sequence, 5);
  assert.equal(await closed, 1008);
  assert.ok(await rateLimited(server) >= 3);
  // Bob received what passed the budget, and no more.
  const relayed = [];
  for (let i = 0; i < 4; i++) {
    relayed.push((await bob.queue.next((frame) => frame.type === 3)).sequence);
  }
  assert.deepEqual(relayed, [1, 2, 3, 4]);
  bob.send({ sequence: 1, type: 1, method: "users.list" });
  assert.deepEqual(
    (await bob.queue.next((frame) => frame.type === 2)).message,
    ["bob"],
  );
  assert.equal(
    (bob.queue.buffered as Array<{ type: number }>).filter((f) => f.type === 3)
      .length,
    0,
  );
});

Deno.test("DuplexServer rateLimit counts binary bytes like text", async () => {
  const server = createChatServer({
    rateLimit: { bytesPerSecond: 1000, burstBytes: 3000, maxViolations: 1 },
  });
  await using http = listen(server);
  await using mallory = await legacyClient(server, http, "mallory");
  const closed = serverCloseOf(server, "mallory");
  // Binary frames are malformed for the JSON codec, but they are counted
  // against the byte budget first: 3 × 1,000 bytes pass, then two refusals close.
  for (let i = 0; i < 6; i++) mallory.socket.send(new Uint8Array(1000));
  assert.equal(await closed, 1008);
  assert.equal(await rateLimited(server), 2);
});

Deno.test("chat users.list keeps each page encoded until presence changes; the bytes are plain JSON", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice", "duplex.v1");
  const handler = server.registry.handlers.get("users.list")!;
  const call = (params?: unknown): unknown =>
    (handler as (params: unknown, context: RequestContext) => unknown)(
      params,
      {} as RequestContext,
    );
  const first = call();
  assert.ok(first instanceof EncodedResult);
  assert.equal(first.json, '["alice"]');
  assert.equal(call(), first, "encoded again without a presence change");
  assert.equal(call({ limit: 5 }), first, "the same page, another limit");
  await using bob = await legacyClient(server, http, "bob");
  const second = call();
  assert.notEqual(second, first);
  assert.equal((second as EncodedResult).json, '["alice","bob"]');
  // On the wire: exactly what JSON.stringify of the frame gives.
  const raw = new Promise<string>((resolve) =>
    alice.socket.addEventListener("message", (event) => {
      if (String(event.data).includes('"type":2')) resolve(event.data);
    })
  );
  alice.send({ sequence: 7, type: 1, method: "users.list" });
  assert.equal(
    await deadline(raw),
    JSON.stringify({ sequence: 7, type: 2, message: ["alice", "bob"] }),
  );
  assert.equal(bob.socket.readyState, WebSocket.OPEN);
});

Deno.test("resultCodec splices an EncodedResult and encodes every other frame as JSON", () => {
  const page = new EncodedResult(["a", "é"]);
  assert.equal(
    resultCodec.encode({ sequence: 1, type: 2, message: page }),
    JSON.stringify({ sequence: 1, type: 2, message: ["a", "é"] }),
  );
  const notify = { sequence: 0, type: 3 as const, message: "x", from: "a" };
  assert.equal(resultCodec.encode(notify), JSON.stringify(notify));
  assert.deepEqual(resultCodec.decode('{"sequence":1,"type":2}'), {
    sequence: 1,
    type: 2,
  });
  assert.throws(() => new EncodedResult(undefined), TypeError);
  // A codec that knows nothing of it still encodes the value.
  assert.equal(JSON.stringify({ message: page }), '{"message":["a","é"]}');
});
