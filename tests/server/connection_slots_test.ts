/**
 * Connection slots: `maxConnections` holds against concurrent upgrades whose
 * `authenticate` hook is asynchronous, and `maxConnectionsPerAddress` limits
 * one address (or one forwarded-for address behind a trusted proxy).
 *
 * @module
 */

import assert from "node:assert/strict";
import { DuplexServer } from "../../server.ts";
import { deadline } from "../_helpers.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import { closeAndWait, listen, until } from "../_server_helpers.ts";

/** The status of a refused upgrade, or 101. */
async function statusOf(
  port: number,
  path: string,
  headers: Record<string, string> = {},
  opened: RawWebSocket[] = [],
): Promise<number> {
  try {
    opened.push(await RawWebSocket.connect(port, { path, headers }));
    return 101;
  } catch (error) {
    const match = (error as Error).message.match(/HTTP\/1\.1 (\d{3})/);
    assert.ok(match, (error as Error).message);
    return Number(match[1]);
  }
}

Deno.test("DuplexServer maxConnections holds while an asynchronous authenticate runs", async () => {
  const gate = Promise.withResolvers<void>();
  let calls = 0;
  const duplex = new DuplexServer({
    maxConnections: 10,
    authenticate: async (_request, { url }) => {
      calls++;
      await gate.promise;
      return url.searchParams.get("user") ?? undefined;
    },
  });
  await using http = listen(duplex);
  const fortyRefused = Promise.withResolvers<void>();
  let refused = 0;
  const sockets: WebSocket[] = [];
  const outcomes = Array.from({ length: 50 }, (_, i) => {
    const socket = new WebSocket(
      `ws://127.0.0.1:${http.addr.port}/?user=u${i}`,
    );
    sockets.push(socket);
    return new Promise<string>((resolve) => {
      socket.onopen = () => resolve("open");
      socket.onclose = () => {
        if (++refused === 40) fortyRefused.resolve();
        resolve("refused");
      };
    });
  });
  try {
    // The 40 beyond the limit are refused while the 10 hooks still wait.
    await deadline(fortyRefused.promise, 5_000, "40 refusals");
  } finally {
    gate.resolve();
  }
  const results = await deadline(Promise.all(outcomes), 5_000, "upgrades");
  assert.equal(results.filter((r) => r === "open").length, 10);
  assert.equal(calls, 10);
  await until(duplex, () => duplex.connections === 10, "10 connections");
  await Promise.all(
    sockets.filter((s) => s.readyState === WebSocket.OPEN).map((socket) =>
      closeAndWait(socket)
    ),
  );
  await duplex.shutdown();
});

Deno.test("DuplexServer maxConnectionsPerAddress refuses with 429; trustProxy counts the forwarded-for address", async () => {
  const duplex = new DuplexServer({ maxConnectionsPerAddress: 2 });
  await using http = listen(duplex);
  const port = http.addr.port;
  const opened: RawWebSocket[] = [];
  assert.equal(await statusOf(port, "/?user=a", {}, opened), 101);
  assert.equal(await statusOf(port, "/?user=b", {}, opened), 101);
  assert.equal(await statusOf(port, "/?user=c", {}, opened), 429);
  // Without trustProxy the header changes nothing.
  assert.equal(
    await statusOf(port, "/?user=d", { "X-Forwarded-For": "10.0.0.9" }, opened),
    429,
  );
  // A slot is given back when its socket has closed.
  await opened.shift()!.close();
  await until(duplex, () => duplex.connections === 1, "a slot back");
  assert.equal(await statusOf(port, "/?user=e", {}, opened), 101);
  for (const socket of opened) await socket.close();
  await duplex.shutdown();

  const proxied = new DuplexServer({
    maxConnectionsPerAddress: 1,
    trustProxy: true,
  });
  await using proxy = listen(proxied);
  const behind: RawWebSocket[] = [];
  const from = (address: string) => ({
    "X-Forwarded-For": `203.0.113.7, ${address}`,
  });
  assert.equal(
    await statusOf(proxy.addr.port, "/?user=a", from("198.51.100.1"), behind),
    101,
  );
  assert.equal(
    await statusOf(proxy.addr.port, "/?user=b", from("198.51.100.2"), behind),
    101,
  );
  assert.equal(
    await statusOf(proxy.addr.port, "/?user=c", from("198.51.100.1"), behind),
    429,
  );
  for (const socket of behind) await socket.close();
  await proxied.shutdown();
});
