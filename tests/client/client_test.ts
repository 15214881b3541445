import assert from "node:assert/strict";
import { Peer, type PeerOptions } from "../../mod.ts";
import {
  Client,
  type ClientOptions,
  ConnectError,
  ConnectionClosedError,
  DuplexError,
  type NotifyFrame,
  QueueFullError,
  QueueTimeoutError,
  type ReconnectingEvent,
} from "../../client.ts";
import { deadline, once } from "../_helpers.ts";

/** Delays small enough for tests, passed through options. */
const FAST: ClientOptions = {
  minDelay: 1,
  maxDelay: 20,
  connectTimeout: 2_000,
  pingInterval: 0,
};

/** A Duplex server on 127.0.0.1 that can stop and start again on its port. */
class TestServer implements AsyncDisposable {
  /** Server-side peers of the open connections. */
  readonly peers: Set<Peer> = new Set();
  /** Server-side sockets not closed yet. */
  readonly sockets: Set<WebSocket> = new Set();
  /** The `Sec-WebSocket-Protocol` header of each upgrade request. */
  readonly offered: string[] = [];
  /** Connections accepted so far. */
  connections = 0;
  /** One deferred server peer per connection, in order. */
  #accepted: PromiseWithResolvers<Peer>[] = [];
  #taken = 0;
  #http: Deno.HttpServer<Deno.NetAddr> | undefined;
  #setup: (peer: Peer) => void;
  #options: PeerOptions;
  #refuse: number | undefined = undefined;
  port = 0;

  constructor(
    setup: (peer: Peer) => void = () => {},
    options: PeerOptions = {},
  ) {
    this.#setup = setup;
    this.#options = options;
    this.start();
  }

  /** The URL of the server. */
  get url(): string {
    return `ws://127.0.0.1:${this.port}`;
  }

  /** Starts listening, on the previous port when there was one. */
  start(refuse?: number): void {
    this.#refuse = refuse;
    this.#http = Deno.serve(
      { hostname: "127.0.0.1", port: this.port, onListen() {} },
      (request) => {
        this.offered.push(request.headers.get("sec-websocket-protocol") ?? "");
        if (this.#refuse) {
          return new Response("Refused", { status: this.#refuse });
        }
        const { socket, response } = Deno.upgradeWebSocket(request, {
          protocol: "duplex.v1",
        });
        this.sockets.add(socket);
        socket.addEventListener("close", () => this.sockets.delete(socket));
        const peer = new Peer(socket, this.#options);
        peer.addEventListener("error", () => {});
        this.peers.add(peer);
        const accepted = this.#deferred(this.connections++);
        peer.addEventListener("close", () => this.peers.delete(peer));
        this.#setup(peer);
        socket.addEventListener("open", () => accepted.resolve(peer), {
          once: true,
        });
        return response;
      },
    );
    this.port = this.#http.addr.port;
  }

  /** Waits for the server peer of the next connection not taken yet. */
  nextPeer(): Promise<Peer> {
    const promise = this.#deferred(this.#taken++).promise;
    return deadline(promise, undefined, "a connection");
  }

  #deferred(index: number): PromiseWithResolvers<Peer> {
    return this.#accepted[index] ??= Promise.withResolvers();
  }

  /**
   * Closes every connection with `code`, waits until they are closed (Deno's
   * `shutdown()` would replace the code with 1001), and stops listening.
   */
  async stop(code = 1012, reason = "Restarting"): Promise<void> {
    const closed = [...this.sockets].map((socket) => once(socket, "close"));
    for (const peer of this.peers) peer.close(code, reason);
    await Promise.all(closed);
    await this.#http?.shutdown();
    this.#http = undefined;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop(1001, "");
  }
}

/** A port where nothing listens. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Records the events of a client. */
function record(client: EventTarget): Event[] {
  const events: Event[] = [];
  for (const type of ["open", "close", "reconnecting", "error"]) {
    client.addEventListener(type, (event) => events.push(event));
  }
  return events;
}

Deno.test("Client.connect() opens, offers duplex.v1 and the extra protocols, and request() gets the reply", async () => {
  await using server = new TestServer((peer) => peer.onRequest(() => "ok"));
  const client = new Client(server.url, {
    ...FAST,
    protocols: ["duplex.auth.token123"],
  });
  assert.equal(client.state, "closed");
  const opened = once(client, "open");
  const connecting = client.login();
  assert.equal(client.state, "connecting");
  await connecting;
  await opened;
  assert.equal(client.state, "open");
  assert.equal(await client.request("hello"), "ok");
  // In Deno (Nagle on) the client offers duplex.nagle.
  assert.deepEqual(server.offered, [
    "duplex.v1, duplex.session, duplex.batch, duplex.nagle, duplex.auth.token123",
  ]);
  assert.equal(client.peer?.socket.readyState, WebSocket.OPEN);
  await client.connect(); // already open: resolves at once
  const closed = once<CloseEvent>(client, "close");
  await client.logout();
  assert.equal((await closed).code, 1000);
  assert.equal(client.state, "closed");
  await client.close(); // idempotent
});

Deno.test("Client.connect() rejects with ConnectError when nothing listens", async () => {
  const port = freePort();
  const client = new Client(`ws://127.0.0.1:${port}`, FAST);
  const events = record(client);
  const connecting = client.connect();
  const queued = assert.rejects(
    client.request("queued while connecting"),
    ConnectionClosedError,
  );
  await assert.rejects(connecting, (error: ConnectError) => {
    assert.ok(error instanceof ConnectError);
    assert.equal(error.url, `ws://127.0.0.1:${port}`);
    assert.equal(error.closeCode, 1006);
    return true;
  });
  await queued;
  assert.equal(client.state, "closed");
  assert.deepEqual(events.map((e) => e.type), ["error", "close"]);
  await client.close();
});

Deno.test("Client.connect() rejects with ConnectError after connectTimeout", async () => {
  // Accepts TCP connections and never answers the handshake.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) conns.push(conn);
  })();
  const client = new Client(`ws://127.0.0.1:${listener.addr.port}`, {
    ...FAST,
    connectTimeout: 20,
  });
  await assert.rejects(
    client.connect(),
    (error: ConnectError) =>
      error instanceof ConnectError &&
      error.message.includes("no connection after 20 ms"),
  );
  await client.close();
  listener.close();
  await accepting;
  for (const conn of conns) conn.close();
});

Deno.test("Client.close() during connect() rejects it and stops", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, FAST);
  const connecting = client.connect();
  const closing = client.close();
  await assert.rejects(connecting, ConnectError);
  await closing;
  assert.equal(client.state, "closed");
  await assert.rejects(client.request("late"), ConnectionClosedError);
});

Deno.test("Client reconnects after the server restarts on the same port", async () => {
  await using server = new TestServer((peer) => peer.onRequest(() => "ok"));
  const client = new Client(server.url, FAST);
  client.handle("whoami", () => "client");
  const events = record(client);
  await client.connect();
  const first = await server.nextPeer();
  assert.equal(await first.call("whoami", null), "client");

  const dropped = once<CloseEvent>(client, "close");
  const reconnecting = once<ReconnectingEvent>(client, "reconnecting");
  await server.stop(1012, "Restarting");
  assert.equal((await dropped).code, 1012);
  assert.equal(client.state, "reconnecting");
  assert.equal((await reconnecting).attempt, 1);

  const reopened = once(client, "open");
  server.start();
  const second = await server.nextPeer();
  await reopened;
  assert.equal(client.state, "open");
  // Handlers survive the reconnection; requests work again.
  assert.equal(await second.call("whoami", null), "client");
  assert.equal(await client.request("again"), "ok");
  assert.deepEqual(events.slice(0, 3).map((e) => e.type), [
    "open",
    "close",
    "reconnecting",
  ]);
  assert.equal(events.at(-1)?.type, "open");
  await client.close();
});

Deno.test("Client rejects pending requests with ConnectionClosedError when the connection drops, and never re-sends them", async () => {
  let received = 0;
  const arrived = Promise.withResolvers<void>();
  await using server = new TestServer((peer) => {
    peer.handle("slow", () => {
      received++;
      arrived.resolve();
      return new Promise(() => {});
    });
    peer.onRequest(() => "ok");
  });
  const client = new Client(server.url, FAST);
  await client.connect();
  const peer = await server.nextPeer();
  const pending = client.call("slow", null, { timeout: 0 });
  await deadline(arrived.promise);
  const reopened = once(client, "open");
  peer.close(1011, "Oops");
  await assert.rejects(pending, (error: ConnectionClosedError) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.closeCode, 1011);
    return true;
  });
  await reopened;
  assert.equal(await client.request("after"), "ok");
  assert.equal(received, 1);
  await client.close();
});

Deno.test("Client sends requests and notifications queued while disconnected exactly once, in order, after reconnecting", async () => {
  const seen: string[] = [];
  await using server = new TestServer((peer) => {
    peer.handle("add", (item: string) => {
      seen.push(`request ${item}`);
      return item.toUpperCase();
    });
    peer.on("log", (item: string) => seen.push(`notify ${item}`));
  });
  const client = new Client(server.url, { ...FAST, maxQueueWait: 10_000 });
  await client.connect();
  await server.nextPeer();
  const dropped = once(client, "close");
  await server.stop();
  await dropped;
  assert.equal(client.state, "reconnecting");

  const results = [
    client.call("add", "a"),
    client.notify("b", { method: "log" }),
    client.call("add", "c"),
    client.emit("log", "d"),
  ];
  // A send from an `open` listener goes after the queued ones.
  const fromListener = Promise.withResolvers<Promise<boolean>>();
  client.addEventListener("open", () => {
    fromListener.resolve(client.emit("log", "open"));
  }, { once: true });
  const reopened = once(client, "open");
  server.start();
  await reopened;
  assert.deepEqual(await Promise.all(results), ["A", true, "C", true]);
  assert.equal(await await fromListener.promise, true);
  // A round trip after the queue proves the notifications were processed.
  assert.equal(await client.call("add", "e"), "E");
  assert.deepEqual(seen, [
    "request a",
    "notify b",
    "request c",
    "notify d",
    "notify open",
    "request e",
  ]);
  assert.equal(server.connections, 2);
  await client.close();
});

Deno.test("Client rejects with QueueFullError and QueueTimeoutError while disconnected", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, {
    ...FAST,
    minDelay: 5,
    maxQueue: 2,
    maxQueueWait: 20,
  });
  await client.connect();
  const dropped = once(client, "close");
  await server.stop();
  await dropped;

  const first = client.request(1);
  const second = client.notify(2);
  await assert.rejects(client.request(3), (error: QueueFullError) => {
    assert.ok(error instanceof QueueFullError);
    assert.equal(error.limit, 2);
    return true;
  });
  await assert.rejects(first, QueueTimeoutError);
  await assert.rejects(second, (error: QueueTimeoutError) => {
    assert.ok(error instanceof QueueTimeoutError);
    assert.equal(error.wait, 20);
    return true;
  });
  // Room again once expired; close() rejects what still waits.
  const third = assert.rejects(client.request(4), ConnectionClosedError);
  await client.close();
  await third;
});

Deno.test("Client with queueWhileDisconnected: false rejects at once, and an aborted queued request leaves the queue", async () => {
  let received = 0;
  await using server = new TestServer((peer) =>
    peer.onRequest(() => ++received)
  );
  const strict = new Client(server.url, {
    ...FAST,
    queueWhileDisconnected: false,
  });
  await assert.rejects(strict.request("before connect"), ConnectionClosedError);
  const connecting = strict.connect();
  await assert.rejects(
    strict.request("while connecting"),
    ConnectionClosedError,
  );
  await connecting;
  await strict.close();

  const client = new Client(server.url, FAST);
  const opening = client.connect();
  const controller = new AbortController();
  const aborted = client.request("aborted", { signal: controller.signal });
  const kept = client.request("kept");
  controller.abort(new Error("never mind"));
  await assert.rejects(aborted, { message: "never mind" });
  await opening;
  assert.equal(await kept, 1);
  assert.equal(received, 1);
  await client.close();
});

Deno.test("Client reconnecting events carry attempt numbers and delays within the backoff bounds", async () => {
  await using server = new TestServer();
  const options = { ...FAST, minDelay: 2, maxDelay: 10, factor: 2 };
  const client = new Client(server.url, { ...options, maxAttempts: 5 });
  const events: ReconnectingEvent[] = [];
  client.addEventListener("reconnecting", (event) => events.push(event));
  await client.connect();
  const gaveUp = Promise.withResolvers<CloseEvent>();
  client.addEventListener("close", (event) => {
    if (client.state === "closed") gaveUp.resolve(event);
  });
  await server.stop();
  await deadline(gaveUp.promise);
  assert.deepEqual(events.map((e) => e.attempt), [1, 2, 3, 4, 5]);
  for (const { attempt, delay } of events) {
    const ceiling = Math.min(10, 2 * 2 ** (attempt - 1));
    assert.ok(delay >= 0 && delay <= ceiling, `${delay} within ${ceiling}`);
  }
  assert.equal(client.state, "closed");
  await assert.rejects(
    client.request("after giving up"),
    ConnectionClosedError,
  );
  await client.close();
});

Deno.test("Client uses the injected random and resets the attempt counter after resetAfter", async () => {
  await using server = new TestServer();
  for (const [resetAfter, expected] of [[0, [1, 1]], [60_000, [1, 2]]]) {
    const client = new Client(server.url, {
      ...FAST,
      minDelay: 4,
      random: () => 0.5,
      resetAfter: resetAfter as number,
    });
    const events: ReconnectingEvent[] = [];
    client.addEventListener("reconnecting", (event) => events.push(event));
    await client.connect();
    for (let i = 0; i < 2; i++) {
      const reopened = once(client, "open");
      (await server.nextPeer()).close(1012);
      await reopened;
    }
    await server.nextPeer();
    assert.deepEqual(events.map((e) => e.attempt), expected);
    assert.equal(events[0].delay, 2); // 0.5 * 4 * 2 ** 0
    await client.close();
  }
});

Deno.test("Client calls the URL function and the protocols function before every attempt", async () => {
  await using server = new TestServer();
  let urls = 0;
  let tokens = 0;
  const client = new Client(async () => {
    urls++;
    return await Promise.resolve(`${server.url}/?attempt=${urls}`);
  }, { ...FAST, protocols: () => [`duplex.auth.t${++tokens}`] });
  await client.connect();
  const reopened = once(client, "open");
  await server.stop();
  server.start();
  await reopened;
  assert.ok(urls >= 2);
  assert.equal(tokens, urls);
  assert.equal(
    server.offered[0],
    "duplex.v1, duplex.session, duplex.batch, duplex.nagle, duplex.auth.t1",
  );
  assert.equal(
    server.offered.at(-1),
    `duplex.v1, duplex.session, duplex.batch, duplex.nagle, duplex.auth.t${tokens}`,
  );
  await client.close();
});

Deno.test("Client.connect() rejects with ConnectError when the URL function throws", async () => {
  const client = new Client(() => {
    throw new Error("no token");
  }, FAST);
  await assert.rejects(client.connect(), (error: ConnectError) => {
    assert.ok(error instanceof ConnectError);
    assert.match(error.message, /no token/);
    return true;
  });
});

Deno.test("Client does not reconnect after close()", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, FAST);
  const events = record(client);
  await client.connect();
  const serverSide = await server.nextPeer();
  const serverClosed = once<CloseEvent>(serverSide, "close");
  await client.close(4321, "bye");
  assert.equal((await serverClosed).code, 4321);
  assert.equal(client.state, "closed");
  assert.deepEqual(events.map((e) => e.type), ["open", "close"]);
  assert.equal(server.connections, 1);
});

Deno.test("Client does not reconnect after a policy close (1008, 4001, 4003) or when shouldReconnect() says no", async () => {
  const cases: Array<[number, ((event: CloseEvent) => boolean)?]> = [
    [1008],
    [4001],
    [4003],
    [1012, (event) => event.code !== 1012],
  ];
  for (const [code, shouldReconnect] of cases) {
    await using server = new TestServer();
    const client = new Client(server.url, { ...FAST, shouldReconnect });
    const events = record(client);
    await client.connect();
    const peer = await server.nextPeer();
    const closed = once<CloseEvent>(client, "close");
    peer.close(code, "Go away");
    assert.equal((await closed).code, code);
    assert.equal(client.state, "closed");
    assert.deepEqual(events.map((e) => e.type), ["open", "close"]);
    await client.close();
  }
});

Deno.test("Client does not reconnect when the handshake is refused with HTTP 401 or 403", async () => {
  for (const status of [401, 403]) {
    await using server = new TestServer();
    const client = new Client(server.url, FAST);
    await client.connect();
    const gaveUp = Promise.withResolvers<Event>();
    const errors: ErrorEvent[] = [];
    client.addEventListener("error", (event) => errors.push(event));
    client.addEventListener("close", (event) => {
      if (client.state === "closed") gaveUp.resolve(event);
    });
    await server.stop();
    server.start(status);
    await deadline(gaveUp.promise);
    const last = errors.at(-1)?.error;
    assert.ok(last instanceof ConnectError);
    assert.match(last.message, new RegExp(`${status}`));
    await client.close();
  }
});

Deno.test("Client answers server-to-client requests through handle() and onRequest(), typed by the endpoints", async () => {
  interface ClientApi {
    requests: { confirm: (question: string) => boolean };
    notifications: { tick: number };
  }
  interface ServerApi {
    requests: { sum: (numbers: number[]) => number };
    notifications: { typing: { room: string } };
  }
  let typing: unknown;
  await using server = new TestServer((peer) => {
    peer.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b));
    peer.on("typing", (payload) => typing = payload);
  });
  const client = new Client<ClientApi, ServerApi>(server.url, FAST);
  client.handle("confirm", (question) => question.endsWith("?"));
  client.onRequest((message) => `default got ${message}`);
  await client.connect();
  const peer = await server.nextPeer();
  assert.equal(await peer.call("confirm", "ready?"), true);
  assert.equal(await peer.request("x"), "default got x");
  const sum: number = await client.call("sum", [1, 2, 3]);
  assert.equal(sum, 6);
  assert.equal(await client.emit("typing", { room: "a" }), true);
  assert.equal(await client.call("sum", [0]), 0); // round trip after the notify
  assert.deepEqual(typing, { room: "a" });
  await client.close();
});

Deno.test("Client.request() cancellation aborts the server handler's signal", async () => {
  const started = Promise.withResolvers<void>();
  const aborted = Promise.withResolvers<unknown>();
  await using server = new TestServer((peer) => {
    peer.handle("wait", (_params, context) => {
      context.signal.addEventListener(
        "abort",
        () => aborted.resolve(context.signal.reason),
      );
      started.resolve();
      return new Promise(() => {});
    });
  });
  const client = new Client(server.url, FAST);
  await client.connect();
  const controller = new AbortController();
  const call = client.call("wait", null, { signal: controller.signal });
  await deadline(started.promise);
  controller.abort(new Error("stop"));
  await assert.rejects(call, { message: "stop" });
  const reason = await deadline(aborted.promise);
  assert.ok(reason instanceof DuplexError);
  assert.equal(reason.code, "CANCELLED");
  await client.close();
});

Deno.test("Client delivers notifications to listeners and iterators across reconnections; iterators end on close", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, FAST);
  const heard: unknown[] = [];
  client.onNotify((message) => heard.push(message));
  client.on("tick", (n: number) => heard.push(n));
  const all = client.notifications();
  const ticks = client.notifications({ method: "tick" });
  await client.connect();
  let peer = await server.nextPeer();
  peer.notify("hello");
  peer.emit("tick", 1);
  assert.equal((await all.next()).value?.message, "hello");
  assert.equal((await ticks.next()).value?.message, 1);

  const reopened = once(client, "open");
  peer.close(1012);
  peer = await server.nextPeer();
  await reopened;
  peer.emit("tick", 2);
  const frame = (await all.next()).value as NotifyFrame;
  assert.equal(frame.method, "tick");
  assert.equal(frame.message, 1);
  assert.equal((await all.next()).value?.message, 2);
  assert.equal((await ticks.next()).value?.message, 2);
  assert.deepEqual(heard, ["hello", 1, 2]);

  const ended = all.next();
  await client.close();
  assert.deepEqual(await ended, { value: undefined, done: true });
  assert.equal((await ticks.next()).done, true);
});

Deno.test("Client notification iterator ends with BUFFER_FULL when the consumer falls behind", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, FAST);
  await client.connect();
  const peer = await server.nextPeer();
  const iterator = client.notifications({ bufferSize: 2 });
  const done = Promise.withResolvers<void>();
  client.onNotify((message) => message === 3 && done.resolve());
  for (const n of [1, 2, 3]) peer.notify(n);
  await deadline(done.promise);
  assert.equal((await iterator.next()).value?.message, 1);
  assert.equal((await iterator.next()).value?.message, 2);
  await assert.rejects(
    iterator.next(),
    (error: DuplexError) => error.code === "BUFFER_FULL",
  );
  // for await over the client itself, stopped by break.
  peer.notify("last");
  for await (const frame of client) {
    assert.equal(frame.message, "last");
    break;
  }
  await client.close();
});

Deno.test("Client pings at once on online and visibilitychange, and closes on pagehide", async () => {
  await using server = new TestServer();
  const client = new Client(server.url, { ...FAST, pingInterval: 60_000 });
  await client.connect();
  const peer = await server.nextPeer();
  const pings = client.peer!.stats.framesOut;
  const serverClosed = once<CloseEvent>(peer, "close");
  globalThis.dispatchEvent(new Event("online"));
  globalThis.dispatchEvent(new Event("visibilitychange"));
  assert.equal(pings[5], 2);
  const closed = once<CloseEvent>(client, "close");
  globalThis.dispatchEvent(new Event("pagehide"));
  assert.equal((await closed).code, 1000);
  assert.equal(client.state, "closed");
  await client.close();
  assert.equal((await serverClosed).code, 1000);
  // The listeners are gone once closed.
  globalThis.dispatchEvent(new Event("online"));
  assert.equal(pings[5], 2);
});
