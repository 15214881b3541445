import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  type Endpoint,
  RemoteError,
  RequestTimeoutError,
} from "../../mod.ts";
import {
  type Authenticate,
  CLOSE_REPLACED,
  Cluster,
  createChatServer,
  DuplexServer,
  getCookie,
  MemoryHub,
  MemoryPubSub,
  NotConnectedError,
} from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import {
  closeAndWait,
  duplexClient,
  legacyClient,
  listen,
  open,
  recordingLogger,
  until,
  wsUrl,
} from "../_server_helpers.ts";

/** A promise released by hand, for handlers that must stay in flight. */
function gate<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}

async function refusal(
  port: number,
  path: string,
  headers: Record<string, string> = {},
): Promise<string> {
  try {
    const raw = await RawWebSocket.connect(port, { path, headers });
    await raw.close();
    return "101";
  } catch (error) {
    return (error as Error).message.match(/HTTP\/1\.1 (\d+)/)?.[1] ??
      (error as Error).message;
  }
}

// --- Origin and authentication ------------------------------------------

Deno.test("DuplexServer refuses a foreign Origin with 403 before authenticating", async () => {
  let asked = 0;
  const server = new DuplexServer({
    authenticate: (_request, { url }) => {
      asked++;
      return url.searchParams.get("user");
    },
  });
  await using http = listen(server);
  const port = http.addr.port;
  assert.equal(
    await refusal(port, "/?user=alice", { Origin: "http://evil.example" }),
    "403",
  );
  assert.equal(
    await refusal(port, "/?user=alice", { Origin: "null" }),
    "403",
  );
  assert.equal(asked, 0, "authenticate is never reached");

  // Its own host, and no Origin at all (not a browser), are accepted.
  const same = await RawWebSocket.connect(port, {
    path: "/?user=alice",
    headers: { Origin: `http://127.0.0.1:${port}` },
  });
  const none = await RawWebSocket.connect(port, { path: "/?user=bob" });
  await until(server, () => server.connections === 2);
  await same.close();
  await none.close();
  await until(server, () => server.connections === 0);
});

Deno.test("DuplexServer with an origin allowlist accepts only the listed origins", async () => {
  const server = new DuplexServer({ origins: ["https://app.example.com"] });
  await using http = listen(server);
  const port = http.addr.port;
  assert.equal(
    await refusal(port, "/?user=a", { Origin: `http://127.0.0.1:${port}` }),
    "403",
  );
  const raw = await RawWebSocket.connect(port, {
    path: "/?user=a",
    headers: { Origin: "https://app.example.com" },
  });
  await until(server, () => server.isOnline("a"));
  await raw.close();
  await until(server, () => !server.isOnline("a"));
});

Deno.test("DuplexServer with cookie auth resists cross-site WebSocket hijacking", async () => {
  const sessions = new Map([["s3cr3t", "alice"]]);
  const authenticate: Authenticate = (request) => {
    const session = getCookie(request, "session");
    if (session === undefined) return undefined;
    return sessions.get(session) ?? new Response("Forbidden", { status: 403 });
  };
  const server = new DuplexServer({ authenticate });
  await using http = listen(server);
  const port = http.addr.port;
  const cookie = "session=s3cr3t";
  // A page on another site opens a socket; the browser attaches the cookie.
  assert.equal(
    await refusal(port, "/", {
      Origin: "https://evil.example",
      Cookie: cookie,
    }),
    "403",
  );
  assert.equal(server.connections, 0);
  // The same page on our own host gets in, as the cookie's user.
  const origin = `http://127.0.0.1:${port}`;
  assert.equal(await refusal(port, "/", { Origin: origin }), "401");
  assert.equal(
    await refusal(port, "/", { Origin: origin, Cookie: "session=forged" }),
    "403",
  );
  const raw = await RawWebSocket.connect(port, {
    path: "/",
    headers: { Origin: origin, Cookie: cookie },
  });
  await until(server, () => server.isOnline("alice"));
  await raw.close();
  await until(server, () => !server.isOnline("alice"));
});

Deno.test("DuplexServer reads a bearer token from the duplex.auth subprotocol and never echoes it", async () => {
  const server = new DuplexServer({
    authenticate: (_request, { token }) => {
      if (token === undefined) return null;
      return token === "t0k3n"
        ? { user: "alice", data: { role: "admin" } }
        : new Response("Forbidden", { status: 403 });
    },
  });
  await using http = listen(server);
  const port = http.addr.port;
  const online = until(server, () => server.isOnline("alice"));
  const socket = await open(`ws://127.0.0.1:${port}/`, [
    "duplex.v1",
    "duplex.auth.t0k3n",
  ]);
  await online;
  assert.equal(socket.protocol, "duplex.v1");
  const [connection] = server.connectionsOf("alice");
  assert.equal(connection.protocol, "duplex.v1");
  assert.deepEqual(connection.data, { role: "admin" });
  await closeAndWait(socket);

  assert.equal(
    await refusal(port, "/", { "Sec-WebSocket-Protocol": "duplex.auth.bad" }),
    "403",
  );
  assert.equal(await refusal(port, "/"), "401");
  // Non-browser clients may send the header instead.
  const raw = await RawWebSocket.connect(port, {
    path: "/",
    headers: { Authorization: "Bearer t0k3n" },
  });
  assert.equal(raw.headers.get("sec-websocket-protocol"), null);
  await until(server, () => server.isOnline("alice"));
  await raw.close();
  await until(server, () => !server.isOnline("alice"));
});

Deno.test("DuplexServer refuses with 400 without a valid user, and 500 when authenticate throws", async () => {
  const logger = recordingLogger();
  const plain = new DuplexServer();
  await using http = listen(plain);
  const port = http.addr.port;
  assert.equal(await refusal(port, "/"), "400");
  assert.equal(await refusal(port, `/?user=${"x".repeat(129)}`), "400");

  const failing = new DuplexServer({
    logger,
    authenticate: () => {
      throw new Error("database down");
    },
  });
  await using http2 = listen(failing);
  assert.equal(await refusal(http2.addr.port, "/?user=a"), "500");
  assert.ok(logger.lines.some((l) => l.startsWith("error authenticate")));
});

Deno.test("DuplexServer.fetch() routes upgrades, health, metrics and the fallback", async () => {
  const server = new DuplexServer({
    paths: ["/socket"],
    fallback: () => new Response("mine"),
  });
  await using http = listen(server);
  const base = `http://127.0.0.1:${http.addr.port}`;
  assert.equal(await (await fetch(`${base}/anything`)).text(), "mine");
  assert.equal(await (await fetch(`${base}/healthz`)).text(), "ok\n");
  // Upgrades only on the configured paths.
  assert.equal(await refusal(http.addr.port, "/?user=a"), "200");
  const raw = await RawWebSocket.connect(http.addr.port, {
    path: "/socket?user=a",
  });
  await until(server, () => server.isOnline("a"));
  await raw.close();
  await until(server, () => !server.isOnline("a"));
  // upgrade() called with a plain request says what is missing.
  const response = await server.upgrade(new Request(`${base}/socket`));
  assert.equal(response.status, 426);
  await response.body?.cancel();

  const bare = new DuplexServer();
  await using http2 = listen(bare);
  const missing = await fetch(`http://127.0.0.1:${http2.addr.port}/`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

Deno.test("DuplexServer.upgrade() mounts on a route of your own", async () => {
  const server = new DuplexServer();
  server.handle("ping", () => "pong");
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request, info) => {
      const url = new URL(request.url);
      if (url.pathname === "/api/live") return server.upgrade(request, info);
      return new Response("app");
    },
  );
  await using client = await duplexClient(server, http, "ann", "/api/live");
  assert.equal(await client.peer.call("ping", null), "pong");
});

Deno.test("DuplexServer refuses upgrades beyond maxConnections with 503", async () => {
  const server = new DuplexServer({ maxConnections: 1 });
  await using http = listen(server);
  await using _first = await legacyClient(server, http, "a");
  assert.equal(await refusal(http.addr.port, "/?user=b"), "503");
});

Deno.test("DuplexServer gives a refused upgrade's slot back, whether authenticate throws, rejects or refuses", async () => {
  let mode = "";
  const server = new DuplexServer({
    maxConnections: 1,
    authenticate: (_request, { url }) => {
      const user = url.searchParams.get("user");
      if (mode === "throw") throw new Error("database down");
      if (mode === "reject") return Promise.reject(new Error("database down"));
      if (mode === "refuse") return null;
      return mode === "async" ? Promise.resolve(user) : user;
    },
  });
  await using http = listen(server);
  for (const [next, status] of [["throw", "500"], ["reject", "500"]]) {
    mode = next;
    assert.equal(await refusal(http.addr.port, "/?user=a"), status);
  }
  mode = "refuse";
  assert.equal(await refusal(http.addr.port, "/?user=a"), "401");
  // The one slot is still free, for an asynchronous hook and a synchronous one.
  mode = "async";
  await using first = await legacyClient(server, http, "a");
  assert.equal(await refusal(http.addr.port, "/?user=b"), "503");
  await first[Symbol.asyncDispose]();
  await until(server, () => server.connections === 0);
  mode = "";
  await using _second = await legacyClient(server, http, "b");
  assert.equal(server.connections, 1);
});

Deno.test("DuplexServer dispatches connect and online to a listener added after earlier connections", async () => {
  const server = new DuplexServer();
  await using http = listen(server);
  await using _early = await legacyClient(server, http, "early");
  const events: string[] = [];
  server.addEventListener(
    "connect",
    (e) => events.push(`connect ${e.detail.user}`),
  );
  server.addEventListener(
    "online",
    (e) => events.push(`online ${e.detail.user}`),
  );
  await using _late = await legacyClient(server, http, "late");
  assert.deepEqual(events, ["connect late", "online late"]);
});

// --- Limits --------------------------------------------------------------

Deno.test("DuplexServer closes only the sender of an oversized message, with 1009 (default 1 MiB)", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  const frame = (size: number) => {
    const head = '{"sequence":1,"type":1,"message":"';
    return head + "x".repeat(size - head.length - 2) + '"}';
  };
  // Exactly 1 MiB is allowed.
  alice.socket.send(frame(1024 * 1024));
  assert.deepEqual(await alice.queue.next(), {
    sequence: 1,
    type: 2,
    message: "ok",
  });
  await bob.queue.next();
  await carol.queue.next();
  const closed = once<CloseEvent>(alice.socket, "close");
  alice.socket.send(frame(1024 * 1024 + 1));
  assert.equal((await closed).code, 1009);
  // Everyone else carries on.
  bob.send({ sequence: 2, type: 1, message: "still fine" });
  assert.equal((await carol.queue.next()).message, "still fine");
  assert.equal((await bob.queue.next()).message, "ok");
});

Deno.test("DuplexServer without a rate limit keeps the size and in-flight limits per connection", async () => {
  const release = gate();
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 1,
    maxMessageSize: 1000,
  });
  server.onRequest(async (message) => {
    if (message === "wait") await release.promise;
    return "ok";
  });
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  alice.send({ sequence: 1, type: 1, message: "wait" });
  alice.send({ sequence: 2, type: 1, message: "more" });
  const refused = await alice.queue.next();
  assert.equal(refused.sequence, 2);
  assert.equal((refused.error as { code: string }).code, "TOO_MANY_REQUESTS");
  // Alice's handler in flight does not count against Bob.
  bob.send({ sequence: 1, type: 1, message: "hi" });
  assert.deepEqual(await bob.queue.next(), {
    sequence: 1,
    type: 2,
    message: "ok",
  });
  const closed = once<CloseEvent>(carol.socket, "close");
  carol.send({ sequence: 1, type: 1, message: "x".repeat(1000) });
  assert.equal((await closed).code, 1009);
  release.resolve();
  assert.equal((await alice.queue.next()).sequence, 1);
  bob.send({ sequence: 2, type: 1, message: "still fine" });
  assert.equal((await bob.queue.next()).message, "ok");
});

Deno.test("DuplexServer answers malformed frames, ignores unreadable ones, then closes with 1002", async () => {
  const server = createChatServer({ maxMalformed: 3 });
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  alice.send({ sequence: 5, type: 1, method: 7 });
  const answer = await alice.queue.next();
  assert.equal(answer.sequence, 5);
  assert.equal(answer.type, 2);
  assert.equal((answer.error as { code: string }).code, "INVALID_FRAME");
  alice.socket.send("not json");
  alice.socket.send(new Uint8Array([1, 2, 3]));
  // Nothing came back for those two: the next message answers this one.
  alice.send({ sequence: 6, type: 1, message: "valid" });
  assert.deepEqual(await alice.queue.next(), {
    sequence: 6,
    type: 2,
    message: "ok",
  });
  assert.equal((await bob.queue.next()).message, "valid");
  const closed = once<CloseEvent>(alice.socket, "close");
  alice.socket.send("[]");
  assert.equal((await closed).code, 1002);
  bob.send({ sequence: 1, type: 1, message: "bob is fine" });
  assert.equal((await bob.queue.next()).message, "ok");
});

Deno.test("DuplexServer answers RATE_LIMITED over the token bucket, then closes with 1008", async () => {
  const server = createChatServer({
    rateLimit: { rate: 0.01, burst: 3, maxViolations: 2 },
  });
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  const closed = once<CloseEvent>(alice.socket, "close");
  for (let sequence = 1; sequence <= 6; sequence++) {
    alice.send({ sequence, type: 1, message: sequence });
  }
  for (let sequence = 1; sequence <= 3; sequence++) {
    assert.deepEqual(await alice.queue.next(), {
      sequence,
      type: 2,
      message: "ok",
    });
  }
  for (const sequence of [4, 5]) {
    const answer = await alice.queue.next();
    assert.equal(answer.sequence, sequence);
    assert.equal((answer.error as { code: string }).code, "RATE_LIMITED");
  }
  assert.equal((await closed).code, 1008);
});

Deno.test("DuplexServer answers TOO_MANY_REQUESTS beyond maxInFlight", async () => {
  const server = new DuplexServer({ maxInFlight: 2 });
  const release = gate<string>();
  server.handle("slow", () => release.promise);
  await using http = listen(server);
  await using client = await duplexClient(server, http, "alice");
  const first = client.peer.call("slow", null);
  const second = client.peer.call("slow", null);
  await assert.rejects(
    client.peer.call("slow", null),
    (error: RemoteError) => error.code === "TOO_MANY_REQUESTS",
  );
  release.resolve("done");
  assert.deepEqual(await Promise.all([first, second]), ["done", "done"]);
});

Deno.test("DuplexServer drops notifications above the high-water mark, never responses", async () => {
  const server = new DuplexServer({ highWaterMark: 1024 });
  const big = "x".repeat(2048);
  server.handle("flood", (_, { from }) => {
    // Synchronous pushes: the send buffer has no time to drain.
    for (let i = 0; i < 3; i++) server.notify(`${i}${big}`, { to: from });
    return "flooded";
  });
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice", "duplex.v1");
  alice.send({ sequence: 1, type: 1, method: "flood" });
  const first = await alice.queue.next();
  assert.equal((first.message as string)[0], "0");
  assert.deepEqual(await alice.queue.next(), {
    sequence: 1,
    type: 2,
    message: "flooded",
  });
  const [connection] = server.connectionsOf("alice");
  assert.equal(connection.peer.stats.dropped, 2);
  const metrics = await (await fetch(
    `http://127.0.0.1:${http.addr.port}/metrics`,
  )).text();
  assert.match(metrics, /^duplex_notifications_dropped_total 2$/m);
});

Deno.test('DuplexServer closes a slow reader with 1013 under backpressure "close", and only it', async () => {
  const server = createChatServer({
    highWaterMark: 1024,
    backpressure: "close",
  });
  await using http = listen(server);
  await using slow = await legacyClient(server, http, "slow");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  const closed = once<CloseEvent>(slow.socket, "close");
  const big = "x".repeat(2048);
  for (let i = 0; i < 3; i++) server.notify(big, { to: "slow" });
  assert.equal((await closed).code, 1013);
  bob.send({ sequence: 1, type: 1, message: "hi" });
  assert.equal((await carol.queue.next()).message, "hi");
  assert.equal((await bob.queue.next()).message, "ok");
});

Deno.test("DuplexServer survives a sender that vanishes while its request is handled", async () => {
  const errors: unknown[] = [];
  const server = createChatServer();
  server.addEventListener("error", (event) => errors.push(event.error));
  const release = gate();
  const started = gate<AbortSignal>();
  let finished = false;
  const untyped = server as unknown as DuplexServer;
  untyped.handle("slow", async (_params, { signal }) => {
    started.resolve(signal);
    await release.promise;
    finished = true;
    return "late";
  });
  await using http = listen(server);
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  const online = until(server, () => server.isOnline("alice"));
  const alice = await RawWebSocket.connect(http.addr.port, {
    path: "/?user=alice",
    headers: { "Sec-WebSocket-Protocol": "duplex.v1" },
  });
  await online;
  await alice.sendText('{"sequence":1,"type":1,"method":"slow"}');
  const signal = await deadline(started.promise);
  alice.drop();
  await until(server, () => !server.isOnline("alice"), "alice to vanish");
  assert.equal(signal.aborted, true);
  release.resolve();
  bob.send({ sequence: 1, type: 1, message: "anyone?" });
  assert.equal((await carol.queue.next()).message, "anyone?");
  assert.equal((await bob.queue.next()).message, "ok");
  assert.equal(finished, true);
  assert.deepEqual(errors, []);
});

Deno.test("DuplexServer drops clients that do not answer WebSocket pings (idleTimeout), answers app pings", async () => {
  const server = new DuplexServer({ idleTimeout: 1 });
  await using http = listen(server);
  await using legacy = await legacyClient(server, http, "legacy");
  legacy.send({ sequence: 9, type: 5 });
  assert.deepEqual(await legacy.queue.next(), { sequence: 9, type: 6 });

  const gone = new Promise<number>((resolve) =>
    server.addEventListener("disconnect", (event) => {
      if (event.detail.connection.user === "mute") {
        resolve(event.detail.code);
      }
    })
  );
  const online = until(server, () => server.isOnline("mute"));
  // A hand-made client that never answers pings.
  const mute = await RawWebSocket.connect(http.addr.port, {
    path: "/?user=mute",
  });
  await online;
  const code = await deadline(gone, 5_000, "the idle client to be dropped");
  assert.ok(code !== 1000, `closed with ${code}`);
  mute.drop();
  assert.ok(server.isOnline("legacy"));
});

// --- Handlers, pushes and rooms ------------------------------------------

Deno.test("DuplexServer hides unexpected handler errors behind INTERNAL_ERROR and reports them", async () => {
  const logger = recordingLogger();
  const server = new DuplexServer({ logger });
  const reported = new Promise<unknown>((resolve) =>
    server.addEventListener("error", (event) => resolve(event.error))
  );
  server.handle("boom", () => {
    throw new Error("secret detail");
  });
  server.handle("deny", () => {
    throw new RemoteError({ code: "FORBIDDEN", message: "Not for you" });
  });
  await using http = listen(server);
  await using client = await duplexClient(server, http, "alice");
  await assert.rejects(
    client.peer.call("boom", null),
    (error: RemoteError) =>
      error.code === "INTERNAL_ERROR" && !error.message.includes("secret"),
  );
  assert.equal(((await reported) as Error).message, "secret detail");
  assert.ok(
    logger.lines.some((l) => l.startsWith('error handler failed user="alice"')),
  );
  await assert.rejects(
    client.peer.call("deny", null),
    (error: RemoteError) => error.code === "FORBIDDEN",
  );
});

Deno.test("DuplexServer pushes to a user, a room, everyone and everyone but one; methods only to duplex.v1", async () => {
  const server = new DuplexServer();
  await using http = listen(server);
  const v1 = "duplex.v1";
  await using tab1 = await legacyClient(server, http, "alice", v1);
  await using tab2 = await legacyClient(server, http, "alice", v1);
  await using bob = await legacyClient(server, http, "bob", v1);
  await using carol = await legacyClient(server, http, "carol");
  assert.equal(server.join("lobby", "bob"), true);
  assert.equal(server.join("lobby", "carol"), true);
  assert.equal(server.join("lobby", "nobody"), false);

  server.notify("to alice", { to: "alice" });
  server.notify("to lobby", { room: "lobby" });
  server.notify("to lobby but bob", { room: "lobby", except: "bob" });
  server.notify("to all", {});
  server.notify("to all but alice", { except: "alice" });
  server.notify({ n: 1 }, { method: "tick" });
  server.emit("tock", { n: 2 }, { to: "alice", from: "system" });
  server.notify("end", { sequence: 99 });
  assert.throws(
    () => server.notify("x", { to: "alice", room: "lobby" }),
    TypeError,
  );

  const drain = async (client: { queue: { next(): Promise<unknown> } }) => {
    const got: unknown[] = [];
    for (;;) {
      const frame = await client.queue.next() as Record<string, unknown>;
      if (frame.message === "end") return got;
      got.push(frame.method ? `${frame.method}` : frame.message);
    }
  };
  const alice = ["to alice", "to all", "tick", "tock"];
  assert.deepEqual(await drain(tab1), alice);
  assert.deepEqual(await drain(tab2), alice);
  assert.deepEqual(await drain(bob), [
    "to lobby",
    "to all",
    "to all but alice",
    "tick",
  ]);
  assert.deepEqual(await drain(carol), [
    "to lobby",
    "to lobby but bob",
    "to all",
    "to all but alice",
  ]);
});

Deno.test("DuplexServer.on() and onNotify() hear client notifications with the server's idea of from", async () => {
  const server = new DuplexServer();
  const typing = gate<[unknown, string | undefined]>();
  const plain = gate<[unknown, string | undefined]>();
  server.on(
    "typing",
    (payload, frame) => typing.resolve([payload, frame.from]),
  );
  server.onNotify((payload, frame) => plain.resolve([payload, frame.from]));
  await using http = listen(server);
  await using alice = await duplexClient(server, http, "alice");
  alice.peer.notify({ room: "lobby" }, { method: "typing" });
  alice.socket.send('{"sequence":0,"type":3,"message":"psst","from":"bob"}');
  assert.deepEqual(await deadline(typing.promise), [
    { room: "lobby" },
    "alice",
  ]);
  assert.deepEqual(await deadline(plain.promise), ["psst", "alice"]);
});

Deno.test("DuplexServer skips a receiver whose socket is already closing", async () => {
  const server = new DuplexServer();
  const errors: unknown[] = [];
  server.addEventListener("error", (event) => errors.push(event.error));
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  const closed = once<CloseEvent>(alice.socket, "close");
  // Close alice's socket under the peer's feet: it is still listed.
  server.connectionsOf("alice")[0].peer.socket.close(1000, "bye");
  assert.ok(server.isOnline("alice"));
  server.notify("to everyone");
  assert.equal((await bob.queue.next()).message, "to everyone");
  await closed;
  assert.deepEqual(errors, []);
});

Deno.test("DuplexServer rooms: join, leave, members, and membership ends with the last connection", async () => {
  const server = new DuplexServer();
  await using http = listen(server);
  await using _alice = await legacyClient(server, http, "alice");
  const bob = await legacyClient(server, http, "bob");
  server.join("a", "alice");
  server.join("a", "bob");
  server.join("b", "bob");
  assert.deepEqual(server.members("a"), ["alice", "bob"]);
  assert.deepEqual(server.roomsOf("bob"), ["a", "b"]);
  assert.equal(server.leave("a", "alice"), true);
  assert.equal(server.leave("a", "alice"), false);
  assert.deepEqual(server.members("a"), ["bob"]);
  await closeAndWait(bob.socket);
  await until(server, () => !server.isOnline("bob"));
  assert.deepEqual(server.members("a"), []);
  assert.deepEqual(server.members("b"), []);
  assert.deepEqual(server.roomsOf("bob"), []);
});

interface ClientApi extends Endpoint {
  requests: { confirm: (question: string) => boolean };
  notifications: Record<never, never>;
}
interface ServerApi extends Endpoint {
  requests: { ask: (user: string) => boolean };
  notifications: Record<never, never>;
}

Deno.test("DuplexServer.request() asks the user's most recent duplex.v1 connection", async () => {
  const server = new DuplexServer<ServerApi, ClientApi>();
  await using http = listen(server);
  await using _legacy = await legacyClient(server, http, "alice");
  await assert.rejects(
    server.call("confirm", "sure?", { to: "alice" }),
    (error: NotConnectedError) =>
      error instanceof NotConnectedError && error.code === "NOT_CONNECTED" &&
      error.message.includes("duplex.v1"),
  );
  await using old = await duplexClient<
    ClientApi,
    ServerApi,
    ServerApi,
    ClientApi
  >(
    server,
    http,
    "alice",
  );
  await using recent = await duplexClient<
    ClientApi,
    ServerApi,
    ServerApi,
    ClientApi
  >(
    server,
    http,
    "alice",
  );
  old.peer.handle("confirm", () => false);
  recent.peer.handle("confirm", (question) => question === "sure?");
  assert.equal(await server.call("confirm", "sure?", { to: "alice" }), true);
  await assert.rejects(
    server.call("confirm", "x", { to: "nobody" }),
    NotConnectedError,
  );
  // A handler that relays to a user who is gone answers NOT_CONNECTED.
  server.handle(
    "ask",
    (user: string) => server.call("confirm", "?", { to: user }),
  );
  await assert.rejects(
    old.peer.call("ask", "ghost"),
    (error: RemoteError) => error.code === "NOT_CONNECTED",
  );
  // The usual typed errors: a client that never answers times out.
  const stuck = gate<boolean>();
  recent.peer.handle("confirm", () => stuck.promise);
  await assert.rejects(
    server.call("confirm", "?", { to: "alice", timeout: 20 }),
    RequestTimeoutError,
  );
  stuck.resolve(true);
  // A request pending when the user leaves rejects with the close.
  const hanging = gate<boolean>();
  old.peer.handle("confirm", () => hanging.promise);
  recent.peer.handle("confirm", () => hanging.promise);
  const pending = server.call("confirm", "?", { to: "alice", timeout: 0 });
  const rejected = assert.rejects(pending, ConnectionClosedError);
  await closeAndWait(recent.socket);
  await rejected;
  hanging.resolve(false);
});

Deno.test('DuplexServer with duplicateUser "allow" counts every tab; "replace" closes the older with 4000', async () => {
  const events: string[] = [];
  const allow = new DuplexServer();
  allow.addEventListener("online", (e) => events.push(`on ${e.detail.user}`));
  allow.addEventListener("offline", (e) => events.push(`off ${e.detail.user}`));
  await using http = listen(allow);
  const tab1 = await legacyClient(allow, http, "alice");
  const tab2 = await legacyClient(allow, http, "alice");
  assert.equal(allow.connectionsOf("alice").length, 2);
  await closeAndWait(tab1.socket);
  await until(allow, () => allow.connections === 1);
  assert.deepEqual(events, ["on alice"]);
  await closeAndWait(tab2.socket);
  await until(allow, () => allow.connections === 0);
  assert.deepEqual(events, ["on alice", "off alice"]);

  const replace = new DuplexServer({ duplicateUser: "replace" });
  const replaced: string[] = [];
  replace.addEventListener("offline", () => replaced.push("offline"));
  await using http2 = listen(replace);
  const older = await legacyClient(replace, http2, "alice");
  const closed = once<CloseEvent>(older.socket, "close");
  await using _newer = await legacyClient(replace, http2, "alice");
  const event = await closed;
  assert.equal(event.code, CLOSE_REPLACED);
  assert.equal(event.reason, "Replaced by a newer connection");
  await until(replace, () => replace.connections === 1);
  assert.ok(replace.isOnline("alice"));
  assert.deepEqual(replaced, []);
});

// --- Shutdown, health, metrics, logs ----------------------------------------

Deno.test("DuplexServer.shutdown() drains handlers, refuses newcomers, then closes every socket with 1001", async () => {
  const server = new DuplexServer();
  const release = gate<string>();
  const started = gate();
  server.handle("slow", () => {
    started.resolve();
    return release.promise;
  });
  server.handle("fast", () => "fast");
  await using http = listen(server);
  const port = http.addr.port;
  await using alice = await duplexClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  const slow = alice.peer.call("slow", null);
  await deadline(started.promise);
  const aliceClosed = once<CloseEvent>(alice.socket, "close");
  const bobClosed = once<CloseEvent>(bob.socket, "close");

  const done = server.shutdown();
  assert.equal(server.shutdown(), done, "idempotent");
  const health = await fetch(`http://127.0.0.1:${port}/healthz`);
  assert.equal(health.status, 503);
  await health.body?.cancel();
  assert.equal(await refusal(port, "/?user=carol"), "503");
  await assert.rejects(
    alice.peer.call("fast", null),
    (error: RemoteError) => error.code === "SHUTTING_DOWN",
  );
  release.resolve("finished");
  assert.equal(await slow, "finished");
  assert.equal((await aliceClosed).code, 1001);
  assert.equal((await bobClosed).code, 1001);
  await deadline(done);
  assert.equal(server.connections, 0);
});

Deno.test("DuplexServer.shutdown() closes anyway after shutdownTimeout and aborts stuck handlers", async () => {
  const server = new DuplexServer({ shutdownTimeout: 20 });
  const started = gate();
  server.handle("stuck", (_params, { signal }) => {
    started.resolve();
    return new Promise((_resolve, reject) => {
      signal.addEventListener("abort", () => reject(signal.reason), {
        once: true,
      });
    });
  });
  await using http = listen(server);
  await using alice = await duplexClient(server, http, "alice");
  const stuck = assert.rejects(
    alice.peer.call("stuck", null),
    ConnectionClosedError,
  );
  await deadline(started.promise);
  const closed = once<CloseEvent>(alice.socket, "close");
  await deadline(server.shutdown());
  assert.equal((await closed).code, 1001);
  await stuck;
});

Deno.test("DuplexServer serves Prometheus metrics", async () => {
  const server = createChatServer({ maxMessageSize: 64 });
  const release = gate<string>();
  const started = gate();
  (server as unknown as DuplexServer).handle("slow", () => {
    started.resolve();
    return release.promise;
  });
  await using http = listen(server);
  const url = `http://127.0.0.1:${http.addr.port}/metrics`;
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await duplexClient(server, http, "bob");
  alice.send({ sequence: 1, type: 1, message: "hi" });
  await alice.queue.next();
  const slow = bob.peer.call("slow", null);
  // Settled in every path, so that a failed assertion below shows itself.
  const slowSettled = slow.then(String, String);
  await deadline(started.promise);
  const oversized = await legacyClient(server, http, "big");
  const closed = once<CloseEvent>(oversized.socket, "close");
  oversized.send({ sequence: 1, type: 1, message: "x".repeat(100) });
  assert.equal((await closed).code, 1009);
  await until(server, () => !server.isOnline("big"));

  const response = await fetch(url);
  assert.equal(
    response.headers.get("content-type"),
    "text/plain; version=0.0.4; charset=utf-8",
  );
  const text = await response.text();
  for (
    const line of [
      "duplex_connections 2",
      "duplex_users 2",
      "duplex_connections_total 3",
      'duplex_frames_received_total{type="request"} 2',
      // The chat message, and big's presence.joined and .left to bob.
      'duplex_frames_sent_total{type="notify"} 3',
      'duplex_frames_sent_total{type="response"} 1',
      "duplex_requests_in_flight 1",
      'duplex_closes_total{code="1009"} 1',
      "duplex_request_duration_seconds_count 1",
      'duplex_request_duration_seconds_bucket{le="+Inf"} 1',
      "# TYPE duplex_request_duration_seconds histogram",
      "duplex_notifications_dropped_total 0",
    ]
  ) {
    assert.ok(text.split("\n").includes(line), `missing: ${line}\n${text}`);
  }
  release.resolve("ok");
  assert.equal(await slowSettled, "ok");
  const after = await (await fetch(url)).text();
  assert.match(after, /^duplex_requests_in_flight 0$/m);
  assert.match(after, /^duplex_request_duration_seconds_count 2$/m);
});

Deno.test("DuplexServer logs one line per connect and disconnect, and nothing by default", async () => {
  const logger = recordingLogger();
  const server = new DuplexServer({ logger });
  await using http = listen(server);
  const alice = await legacyClient(server, http, "alice");
  const closed = closeAndWait(alice.socket, 4001);
  await closed;
  await until(server, () => server.connections === 0);
  const lines = logger.lines.filter((l) => /connect/.test(l));
  assert.equal(lines.length, 2);
  assert.match(
    lines[0],
    /^info connect user="alice" id=\d+ protocol=original$/,
  );
  assert.match(
    lines[1],
    /^info disconnect user="alice" id=\d+ code=4001 reason=""$/,
  );
  assert.equal(await refusal(http.addr.port, "/"), "400");
  assert.match(logger.lines.at(-1) ?? "", /^warn refused status=400$/);
});

Deno.test("DuplexServer validates its limits", () => {
  assert.throws(() => new DuplexServer({ maxMessageSize: 0 }), RangeError);
  assert.throws(() => new DuplexServer({ maxInFlight: -1 }), RangeError);
});

Deno.test("DuplexServer users on /ws get the same chat as on /", async () => {
  const server = createChatServer();
  await using http = listen(server);
  const online = until(server, () => server.connections === 2);
  const a = await open(wsUrl(http, "a", "/ws"));
  const b = await open(wsUrl(http, "b", "/"));
  await online;
  const got = once<MessageEvent>(b, "message");
  a.send('{"sequence":1,"type":1,"message":"via /ws"}');
  assert.equal(
    (await got).data,
    '{"sequence":1,"type":3,"message":"via /ws","from":"a"}',
  );
  await closeAndWait(a);
  await closeAndWait(b);
});

Deno.test("DuplexServer with a cluster: pushes and requests reach another instance; local pushes stay here", async () => {
  const hub = new MemoryHub();
  await using busA = new MemoryPubSub({ hub });
  await using busB = new MemoryPubSub({ hub });
  await using clusterA = new Cluster(busA, { id: "a" });
  await using clusterB = new Cluster(busB, { id: "b" });
  const a = new DuplexServer({ cluster: clusterA });
  const b = new DuplexServer({ cluster: clusterB });
  assert.equal(a.cluster, clusterA);
  await clusterA.start();
  await clusterB.start();
  await using httpA = listen(a);
  await using httpB = listen(b);
  const bobJoined = once(clusterA, "join");
  await using bob = await duplexClient(b, httpB, "bob");
  await bobJoined;
  await using alice = await legacyClient(a, httpA, "alice");
  assert.deepEqual(clusterB.online(), ["bob", "alice"]);
  assert.deepEqual(a.users(), ["alice"]);

  const pushed: unknown[] = [];
  const twoPushes = Promise.withResolvers<void>();
  bob.peer.onNotify((message) => {
    pushed.push(message);
    if (pushed.length === 2) twoPushes.resolve();
  });
  a.notify("here only", { local: true });
  a.notify("everyone");
  a.notify("to bob", { to: "bob" });
  await deadline(twoPushes.promise);
  // The local push reached alice, not bob; the others reached bob in order.
  assert.deepEqual(pushed, ["everyone", "to bob"]);
  assert.equal((await alice.queue.next()).message, "here only");
  assert.equal((await alice.queue.next()).message, "everyone");

  bob.peer.handle("twice", (n: number) => n * 2);
  assert.equal(await a.request(21, { to: "bob", method: "twice" }), 42);
  await assert.rejects(a.request(1, { to: "carol" }), NotConnectedError);

  const bobLeft = once(clusterA, "leave");
  await closeAndWait(bob.socket);
  await bobLeft;
  assert.deepEqual(clusterA.online(), ["alice"]);
  await closeAndWait(alice.socket);
  await a.shutdown();
  await b.shutdown();
});
