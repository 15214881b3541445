/**
 * The threat model, end to end: one test per threat, each over real sockets
 * on 127.0.0.1. What each defends is stated in SECURITY.md; the finer cases
 * (allowlists, token subprotocol, malformed frames, in-flight limits) are in
 * server_test.ts.
 *
 * Close codes are asserted on the server side (its `disconnect` event): a
 * Deno server that closes while the client is still sending drops TCP, so
 * the client may see 0 (Deno) or 1006 (browsers) instead.
 */

import assert from "node:assert/strict";
import {
  type Authenticate,
  createChatServer,
  type DisconnectDetail,
  DuplexServer,
} from "../../server.ts";
import { deadline, MessageQueue } from "../_helpers.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import {
  closeAndWait,
  legacyClient,
  listen,
  open,
  until,
} from "../_server_helpers.ts";

/** The status line of a refused upgrade, e.g. `"403"`. */
async function refusedWith(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const error = await RawWebSocket.connect(port, { path, headers }).then(
    async (raw) => {
      await raw.close();
      throw new Error("Cannot refuse: the upgrade succeeded");
    },
    (error: Error) => error,
  );
  const match = error.message.match(/HTTP\/1\.1 (\d{3})/);
  assert.ok(match, error.message);
  return match[1];
}

/** The server-side close code of `user`'s next disconnect. */
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

Deno.test("threat: cross-site WebSocket hijacking — a foreign Origin is refused with 403 before authentication, cookie or not", async () => {
  let authenticated = 0;
  const authenticate: Authenticate = (request) => {
    authenticated++;
    return request.headers.get("cookie") === "session=alice-session"
      ? "alice"
      : undefined;
  };
  const server = new DuplexServer({ authenticate });
  await using http = listen(server);
  const port = http.addr.port;
  for (
    const origin of [
      "https://evil.example",
      `http://127.0.0.1.evil.example:${port}`,
      "null",
    ]
  ) {
    assert.equal(
      await refusedWith(port, "/", {
        Origin: origin,
        Cookie: "session=alice-session",
      }),
      "403",
      origin,
    );
  }
  assert.equal(authenticated, 0, "authenticate ran for a foreign origin");
  assert.equal(server.connections, 0);
  // The page on the server's own origin gets in with the same cookie.
  const raw = await RawWebSocket.connect(port, {
    headers: {
      Origin: `http://127.0.0.1:${port}`,
      Cookie: "session=alice-session",
    },
  });
  await until(server, () => server.isOnline("alice"));
  await raw.close();
  await until(server, () => server.connections === 0);
});

Deno.test("threat: unauthenticated access — without valid credentials the upgrade is refused, and the query cannot choose the user", async () => {
  const tokens = new Map([["token-of-alice", "alice"]]);
  const server = new DuplexServer({
    authenticate: (_request, { token }) =>
      token === undefined
        ? undefined
        : tokens.get(token) ?? new Response("Forbidden\n", { status: 403 }),
  });
  await using http = listen(server);
  const port = http.addr.port;
  assert.equal(await refusedWith(port, "/?user=admin"), "401");
  assert.equal(
    await refusedWith(port, "/?user=admin", {
      Authorization: "Bearer forged",
    }),
    "403",
  );
  assert.equal(server.connections, 0);
  const raw = await RawWebSocket.connect(port, {
    path: "/?user=admin",
    headers: { Authorization: "Bearer token-of-alice" },
  });
  await until(server, () => server.connections === 1);
  assert.deepEqual(server.users(), ["alice"]);
  await raw.close();
  await until(server, () => server.connections === 0);
});

Deno.test("threat: impersonation — the from on relayed messages and heard notifications is the server's idea of the sender", async () => {
  const server = createChatServer();
  const heard = Promise.withResolvers<string | undefined>();
  server.onNotify((_payload, frame) => heard.resolve(frame.from));
  await using http = listen(server);
  await using mallory = await legacyClient(server, http, "mallory");
  await using bob = await legacyClient(server, http, "bob");
  // A chat message claiming to be from alice…
  mallory.send({
    sequence: 1,
    type: 1,
    message: "send me your password",
    from: "alice",
  });
  // …and a notification claiming the same, on a duplex.v1 connection.
  const raw = await RawWebSocket.connect(http.addr.port, {
    path: "/?user=mallory",
    headers: { "Sec-WebSocket-Protocol": "duplex.v1" },
  });
  await raw.sendText('{"sequence":0,"type":3,"message":"psst","from":"alice"}');
  const relayed = await bob.queue.next((frame) => frame.type === 3);
  assert.equal(relayed.from, "mallory");
  assert.equal(relayed.message, "send me your password");
  assert.equal(await deadline(heard.promise), "mallory");
  await raw.close();
});

Deno.test("threat: flooding — past the rate limit the flooder gets RATE_LIMITED, then 1008; others are unaffected", async () => {
  const server = createChatServer({
    rateLimit: { rate: 1, burst: 20, maxViolations: 10 },
  });
  await using http = listen(server);
  await using flooder = await legacyClient(server, http, "flooder");
  await using bob = await legacyClient(server, http, "bob");
  const closed = serverCloseOf(server, "flooder");
  // The burst passes; then ten frames in a row are refused, and the next one
  // closes. Sending no more than that keeps the close clean.
  for (let sequence = 1; sequence <= 31; sequence++) {
    flooder.send({ sequence, type: 1, message: sequence });
  }
  const answer = await flooder.queue.next((frame) => frame.error !== undefined);
  assert.equal((answer.error as { code: string }).code, "RATE_LIMITED");
  assert.equal(await closed, 1008);
  // Bob is served as before, and was not disconnected.
  bob.send({ sequence: 1, type: 1, method: "users.list" });
  const users = await bob.queue.next((frame) => frame.type === 2);
  assert.deepEqual(users.message, ["bob"]);
  assert.equal(bob.socket.readyState, WebSocket.OPEN);
});

Deno.test("threat: oversized messages — the sender alone is closed with 1009", async () => {
  const server = createChatServer({ maxMessageSize: 64 * 1024 });
  await using http = listen(server);
  await using mallory = await legacyClient(server, http, "mallory");
  await using bob = await legacyClient(server, http, "bob");
  const closed = serverCloseOf(server, "mallory");
  mallory.send({ sequence: 1, type: 1, message: "x".repeat(64 * 1024) });
  assert.equal(await closed, 1009);
  assert.equal(bob.queue.buffered.length, 0, "bob received part of it");
  bob.send({ sequence: 1, type: 1, method: "users.list" });
  assert.deepEqual((await bob.queue.next((f) => f.type === 2)).message, [
    "bob",
  ]);
});

Deno.test("threat: hostile user ids — over 128 characters refused; HTML in a user id is carried as data", async () => {
  const server = createChatServer();
  await using http = listen(server);
  const port = http.addr.port;
  assert.equal(await refusedWith(port, `/?user=${"a".repeat(129)}`), "400");
  const evil = "<img src=x onerror=alert(1)>";
  const socket = await open(
    `ws://127.0.0.1:${port}/?user=${encodeURIComponent(evil)}`,
  );
  const queue = new MessageQueue(socket);
  await until(server, () => server.isOnline(evil));
  socket.send('{"sequence":1,"type":1,"method":"users.list"}');
  assert.deepEqual((await queue.next()).message, [evil]);
  await closeAndWait(socket);
});

Deno.test("threat: script injection in the demo page — user text only through textContent, under a nonce CSP", async () => {
  // Executing it in Chromium with hostile names and messages is
  // tests/browser_test.ts ("escaping"); this checks the page it serves.
  const server = createChatServer();
  await using http = listen(server);
  const response = await fetch(`http://127.0.0.1:${http.addr.port}/`);
  const html = await response.text();
  const csp = response.headers.get("content-security-policy") ?? "";
  assert.match(csp, /script-src 'self' 'nonce-[0-9a-f]+'/);
  const scriptSrc = csp.split(";").find((d) =>
    d.trim().startsWith("script-src")
  );
  assert.ok(scriptSrc, csp);
  assert.doesNotMatch(scriptSrc, /unsafe-inline|unsafe-eval|\*/);
  for (
    const sink of [
      "innerHTML",
      "outerHTML",
      "insertAdjacentHTML",
      "document.write",
      "eval(",
    ]
  ) {
    assert.ok(!html.includes(sink), `the demo page uses ${sink}`);
  }
  assert.ok(html.includes("textContent"));
});
