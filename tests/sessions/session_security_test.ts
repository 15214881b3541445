import assert from "node:assert/strict";
import { DuplexServer, type ServerLogger } from "../../server.ts";
import { MessageQueue, once } from "../_helpers.ts";
import { listen, open } from "../_server_helpers.ts";

const PROTOCOLS = ["duplex.v1", "duplex.session"];

/** Opens a raw session socket and sends `hello`; returns its first answer. */
async function hello(
  port: number,
  user: string,
  message: Record<string, unknown>,
): Promise<{ socket: WebSocket; state: Record<string, unknown> }> {
  const socket = await open(`ws://127.0.0.1:${port}/?user=${user}`, PROTOCOLS);
  assert.equal(socket.protocol, "duplex.session");
  const queue = new MessageQueue(socket);
  socket.send(
    `{"type":8,"sequence":0,"message":${JSON.stringify(message)}}`,
  );
  const frame = await queue.next();
  assert.equal(frame.type, 9);
  return { socket, state: frame.message as Record<string, unknown> };
}

async function closed(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return;
  const done = once(socket, "close");
  socket.close();
  await done;
}

Deno.test("Session security: a stolen id without its secret, or another user's secret, is refused and the session stays intact", async () => {
  const lines: string[] = [];
  const logger: ServerLogger = {
    info: (line) => lines.push(line),
    warn: (line) => lines.push(line),
    error: (line) => lines.push(line),
  };
  const server = new DuplexServer({ logger });
  await using http = listen(server);
  const port = http.addr.port;
  const alice = await hello(port, "alice", {});
  const { id, secret } = alice.state as { id: string; secret: string };
  assert.equal(typeof id, "string");
  assert.equal(secret.length, 43);
  await closed(alice.socket);

  const guessed = await hello(port, "alice", {
    id,
    secret: "A".repeat(43),
    received: 0,
  });
  assert.equal(guessed.state.resumed, false);
  assert.equal(guessed.state.reason, "forbidden");
  assert.notEqual(guessed.state.id, id);
  await closed(guessed.socket);

  const mallory = await hello(port, "mallory", { id, secret, received: 0 });
  assert.equal(mallory.state.resumed, false);
  assert.equal(mallory.state.reason, "forbidden");
  await closed(mallory.socket);

  const unknown = await hello(port, "alice", {
    id: "nope",
    secret,
    received: 0,
  });
  assert.equal(unknown.state.reason, "unknown");
  await closed(unknown.socket);

  // The owner still resumes.
  const back = await hello(port, "alice", { id, secret, received: 0 });
  assert.equal(back.state.resumed, true);
  await closed(back.socket);
  await server.shutdown();
  // The secret is never logged (nor is it ever in a URL: it travels only
  // in the hello and state frames).
  assert.ok(lines.length > 0);
  assert.ok(lines.every((line) => !line.includes(secret)), lines.join("\n"));
  assert.equal(server.sessionMetrics.notResumed.forbidden, 2);
});

Deno.test("Session security: a resume passes authenticate again; a user refused now cannot resume", async () => {
  const revoked = new Set<string>();
  const server = new DuplexServer({
    authenticate: (_, { url }) => {
      const user = url.searchParams.get("user")!;
      return revoked.has(user)
        ? new Response("Revoked", { status: 403 })
        : user;
    },
  });
  await using http = listen(server);
  const port = http.addr.port;
  const alice = await hello(port, "alice", {});
  const { id, secret } = alice.state as { id: string; secret: string };
  await closed(alice.socket);
  revoked.add("alice");
  const response = await fetch(`http://127.0.0.1:${port}/?user=alice`, {
    headers: {
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      "sec-websocket-protocol": "duplex.v1, duplex.session",
    },
  });
  assert.equal(response.status, 403);
  await response.body?.cancel();
  assert.equal(server.sessionMetrics.resumed, 0);
  // Nor can anyone else with the id and secret.
  const mallory = await hello(port, "mallory", { id, secret, received: 0 });
  assert.equal(mallory.state.reason, "forbidden");
  await closed(mallory.socket);
  await server.shutdown();
});

Deno.test("Session security: anything but a hello first, or frames before the state, close the socket with 1002", async () => {
  const server = new DuplexServer();
  await using http = listen(server);
  const socket = await open(
    `ws://127.0.0.1:${http.addr.port}/?user=alice`,
    PROTOCOLS,
  );
  const closing = once<CloseEvent>(socket, "close");
  socket.send('{"sequence":1,"type":1,"message":"hi"}');
  assert.equal((await closing).code, 1002);
  const bad = await open(
    `ws://127.0.0.1:${http.addr.port}/?user=alice`,
    PROTOCOLS,
  );
  const badClosing = once<CloseEvent>(bad, "close");
  bad.send('{"type":8,"sequence":0,"message":{"id":"x"}}');
  assert.equal((await badClosing).code, 1002);
  assert.equal(server.sessionMetrics.started, 0);
  await server.shutdown();
});
