/**
 * Handshake details against a hostile client: subprotocol lists without
 * spaces, Deno's error text kept from the client, the status routes behind
 * a check, bounded close-code labels, and the host allowlist against DNS
 * rebinding.
 *
 * @module
 */

import assert from "node:assert/strict";
import { DuplexServer } from "../../server.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import { listen, until } from "../_server_helpers.ts";

const decoder = new TextDecoder();

/** Sends a raw request head and returns the whole response as text. */
async function rawExchange(port: number, head: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(head));
    let text = "";
    const chunk = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(chunk);
      if (n === null) break;
      text += decoder.decode(chunk.subarray(0, n));
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) continue;
      const length = Number(/content-length: (\d+)/i.exec(text)?.[1] ?? 0);
      if (text.length >= end + 4 + length) break;
    }
    return text;
  } finally {
    conn.close();
  }
}

Deno.test("DuplexServer.upgrade() accepts a subprotocol list without spaces", async () => {
  let token: string | undefined;
  const duplex = new DuplexServer({
    authenticate: (_request, context) => {
      token = context.token;
      return "alice";
    },
  });
  await using http = listen(duplex);
  const raw = await RawWebSocket.connect(http.addr.port, {
    headers: { "Sec-WebSocket-Protocol": "duplex.v1,duplex.auth.s3cr3t" },
  });
  assert.equal(raw.headers.get("sec-websocket-protocol"), "duplex.v1");
  assert.equal(token, "s3cr3t");
  await until(duplex, () => duplex.connections === 1, "the connection");
  assert.equal(duplex.connectionsOf("alice")[0].protocol, "duplex.v1");
  await raw.close();
  await duplex.shutdown();
});

Deno.test("DuplexServer.upgrade() answers an invalid handshake with a clean 400", async () => {
  const duplex = new DuplexServer();
  await using http = listen(duplex);
  const response = await rawExchange(
    http.addr.port,
    "GET /?user=a HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n",
  );
  assert.match(response, /^HTTP\/1\.1 400 /);
  assert.match(response, /Cannot connect: invalid WebSocket handshake$/);
  assert.doesNotMatch(response, /Invalid Header|sec-websocket-key/i);
  await duplex.shutdown();
});

Deno.test("DuplexServer authorizeStatus guards /metrics and /healthz", async () => {
  const duplex = new DuplexServer({
    authorizeStatus: (request) =>
      request.headers.get("authorization") === "Bearer ops",
  });
  await using http = listen(duplex);
  const base = `http://127.0.0.1:${http.addr.port}`;
  for (const path of ["/metrics", "/healthz"]) {
    const refused = await fetch(base + path);
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const allowed = await fetch(base + path, {
      headers: { authorization: "Bearer ops" },
    });
    assert.equal(allowed.status, 200);
    await allowed.body?.cancel();
  }
  await duplex.shutdown();
});

Deno.test("ServerMetrics buckets client-chosen close codes", async () => {
  const duplex = new DuplexServer();
  await using http = listen(duplex);
  for (const [user, code] of [["a", 1000], ["b", 3123], ["c", 4567]] as const) {
    const raw = await RawWebSocket.connect(http.addr.port, {
      path: `/?user=${user}`,
    });
    await until(duplex, () => duplex.isOnline(user), `${user} online`);
    await raw.close(code);
    await until(duplex, () => !duplex.isOnline(user), `${user} offline`);
  }
  const text = await (await fetch(`http://127.0.0.1:${http.addr.port}/metrics`))
    .text();
  assert.match(text, /^duplex_closes_total\{code="1000"\} 1$/m);
  assert.match(text, /^duplex_closes_total\{code="3xxx"\} 1$/m);
  assert.match(text, /^duplex_closes_total\{code="4xxx"\} 1$/m);
  assert.doesNotMatch(text, /code="(3123|4567)"/);
  await duplex.shutdown();
});

Deno.test("DuplexServer hosts refuses a rebound host name with 403", async () => {
  const duplex = new DuplexServer({ hosts: ["chat.example.com"] });
  await using http = listen(duplex);
  const refused = await RawWebSocket.connect(http.addr.port, {
    path: "/?user=a",
  }).then(() => "101", (error: Error) => error.message);
  assert.match(refused, / 403 /);
  const head = (host: string, origin: string) =>
    `GET /?user=b HTTP/1.1\r\nHost: ${host}\r\nOrigin: ${origin}\r\n` +
    "Upgrade: websocket\r\nConnection: Upgrade\r\n" +
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
    "Sec-WebSocket-Version: 13\r\n\r\n";
  // A page on the rebound name is same-origin for the default policy.
  const rebound = await rawExchange(
    http.addr.port,
    head("rebind.attacker.example", "http://rebind.attacker.example"),
  );
  assert.match(rebound, /^HTTP\/1\.1 403 /);
  assert.match(rebound, /host not allowed/);
  const allowed = await rawExchange(
    http.addr.port,
    head("chat.example.com", "https://chat.example.com"),
  );
  assert.match(allowed, /^HTTP\/1\.1 101 /);
  await until(duplex, () => duplex.connections === 0, "the dropped socket");
  await duplex.shutdown();
});
