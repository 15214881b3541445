/**
 * The guarded listener against slow and silent request heads (hardening
 * finding 3): heads that do not complete within `headerTimeout` are
 * dropped, unfinished heads are capped per address and in all, oversized
 * heads get 431, and real clients are served meanwhile, with their own
 * address.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  DuplexServer,
  type GuardDropDetail,
  type GuardedServer,
  serveGuarded,
} from "../../server.ts";
import { deadline, MessageQueue } from "../_helpers.ts";
import { closeAndWait, open } from "../_server_helpers.ts";

const encoder = new TextEncoder();

/** Resolves with the first `count` drops' details. */
function drops(
  server: GuardedServer,
  count: number,
  ms = 10_000,
): Promise<GuardDropDetail[]> {
  const seen: GuardDropDetail[] = [];
  const { promise, resolve } = Promise.withResolvers<GuardDropDetail[]>();
  const listener = (event: CustomEvent<GuardDropDetail>) => {
    if (seen.push(event.detail) < count) return;
    server.removeEventListener("drop", listener);
    resolve(seen);
  };
  server.addEventListener("drop", listener);
  return deadline(promise, ms, `${count} drops`).finally(() =>
    server.removeEventListener("drop", listener)
  );
}

/** Reads until the server closes the connection; returns what it sent. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const buffer = new Uint8Array(4096);
  let text = "";
  while (true) {
    const n = await conn.read(buffer).catch(() => null);
    if (n === null) return text;
    text += new TextDecoder().decode(buffer.subarray(0, n));
  }
}

function connect(port: number): Promise<Deno.TcpConn> {
  return Deno.connect({ hostname: "127.0.0.1", port });
}

Deno.test("serveGuarded drops 1,000 silent and trickled heads after headerTimeout while a real client connects and chats", async () => {
  const duplex = new DuplexServer();
  duplex.handle("echo", (params) => params);
  const http = serveGuarded(duplex.fetch, {
    hostname: "127.0.0.1",
    port: 0,
    headerTimeout: 500,
    maxPendingHeads: 2_000,
    maxPendingHeadsPerAddress: 2_000,
  });
  const port = http.addr.port;
  const dropped = drops(http, 1_000);
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < 1_000; i++) conns.push(await connect(port));
  // Half of them trickle a head that never ends: a start line, then one
  // header byte after another.
  const trickled = conns.slice(0, 500);
  await Promise.all(
    trickled.map((conn) =>
      conn.write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n"))
    ),
  );
  let trickling = true;
  const trickle = (async () => {
    while (trickling) {
      await Promise.all(
        trickled.map((conn) => conn.write(encoder.encode("X")).catch(() => 0)),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  })();
  try {
    // While they wait, a real client connects and is served.
    const socket = await open(`ws://127.0.0.1:${port}/?user=ada`, "duplex.v1");
    const queue = new MessageQueue(socket);
    socket.send('{"sequence":1,"type":1,"method":"echo","message":"hi"}');
    assert.deepEqual(await queue.next(), {
      sequence: 1,
      type: 2,
      message: "hi",
    });
    assert.equal(http.piped, 1);
    const details = await dropped;
    assert.ok(details.every((d) => d.reason === "timeout"));
    assert.equal(http.dropped.timeout, 1_000);
    assert.equal(http.pendingHeads, 0);
    // Every one of them was closed by the server.
    const ends = await deadline(
      Promise.all(conns.map(readToEnd)),
      5_000,
      "1,000 connections to be closed",
    );
    assert.ok(ends.every((text) => text === ""));
    // The real client was not: it still chats.
    socket.send('{"sequence":2,"type":1,"method":"echo","message":"still"}');
    assert.equal((await queue.next() as { message: string }).message, "still");
    await closeAndWait(socket);
  } finally {
    trickling = false;
    await trickle;
    for (const conn of conns) conn.close();
    await duplex.shutdown();
    await http.shutdown();
  }
});

Deno.test("serveGuarded caps unfinished heads per address (dropped at once) and in all (oldest evicted)", async () => {
  await using http = serveGuarded(() => new Response("ok"), {
    hostname: "127.0.0.1",
    port: 0,
    headerTimeout: 10_000,
    maxPendingHeadsPerAddress: 3,
    maxPendingHeads: 5,
  });
  const port = http.addr.port;
  const first = drops(http, 1);
  const conns = [];
  for (let i = 0; i < 4; i++) conns.push(await connect(port));
  assert.deepEqual(await first, [{ reason: "address", address: "127.0.0.1" }]);
  assert.equal(http.pendingHeads, 3);
  // A complete head frees its place at once and is answered.
  await conns[0].write(encoder.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  assert.match(await readToEnd(conns[0]), /^HTTP\/1\.1 200 OK[\s\S]*ok$/);
  assert.equal(http.pendingHeads, 2);
  for (const conn of conns) conn.close();
  assert.equal(http.handedOff, 1);
});

Deno.test("serveGuarded evicts the oldest unfinished head when maxPendingHeads wait", async () => {
  await using http = serveGuarded(() => new Response("ok"), {
    hostname: "127.0.0.1",
    port: 0,
    maxPendingHeads: 2,
  });
  const port = http.addr.port;
  const oldest = await connect(port);
  const evicted = drops(http, 1);
  const others = [await connect(port), await connect(port)];
  assert.equal((await evicted)[0].reason, "evicted");
  assert.equal(await readToEnd(oldest), "");
  assert.equal(http.pendingHeads, 2);
  oldest.close();
  for (const conn of others) conn.close();
});

Deno.test("serveGuarded answers a head over maxHeadSize with 431 and drops it", async () => {
  await using http = serveGuarded(() => new Response("ok"), {
    hostname: "127.0.0.1",
    port: 0,
    maxHeadSize: 1024,
  });
  const conn = await connect(http.addr.port);
  const dropped = drops(http, 1);
  await conn.write(
    encoder.encode(`GET / HTTP/1.1\r\nCookie: ${"c".repeat(2000)}\r\n`),
  );
  assert.equal((await dropped)[0].reason, "too-large");
  assert.match(await readToEnd(conn), /^HTTP\/1\.1 431 /);
  conn.close();
});

Deno.test("serveGuarded gives the handler the client's address and one request per HTTP connection", async () => {
  const seen: Deno.NetAddr[] = [];
  await using http = serveGuarded((_request, info) => {
    seen.push(info.remoteAddr);
    return new Response("ok");
  }, { hostname: "127.0.0.1", port: 0 });
  const conn = await connect(http.addr.port);
  // Keep-alive and two pipelined requests: only the first passed the guard,
  // so the server answers it and closes.
  await conn.write(
    encoder.encode(
      "GET /a HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n" +
        "GET /b HTTP/1.1\r\nHost: x\r\n\r\n",
    ),
  );
  const answer = await readToEnd(conn);
  assert.equal(answer.match(/HTTP\/1\.1 200/g)?.length, 1, answer);
  assert.match(answer, /connection: close/i);
  conn.close();
  assert.deepEqual(seen, [conn.localAddr]);
});

Deno.test("serveGuarded rejects limits that are not positive", () => {
  assert.throws(
    () => serveGuarded(() => new Response(), { headerTimeout: 0 }),
    RangeError,
  );
});
