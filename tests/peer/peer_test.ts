import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  DuplexError,
  type Endpoint,
  type NotifyFrame,
  OriginalProtocolError,
  Peer,
  PeerLimits,
  type PeerOptions,
  ProtocolError,
  RemoteError,
  RequestTimeoutError,
  type SocketLike,
} from "../../mod.ts";
import { deadline, once } from "../_helpers.ts";

/** A server Peer and a client Peer joined by a real WebSocket on 127.0.0.1. */
interface Pair extends AsyncDisposable {
  server: Peer;
  client: Peer;
  raw: WebSocket;
}

async function pair(
  serverOptions: PeerOptions = {},
  setup: (server: Peer) => void = () => {},
): Promise<Pair> {
  const accepted = Promise.withResolvers<Peer>();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      const peer = new Peer(socket, serverOptions);
      peer.addEventListener("error", () => {});
      setup(peer);
      socket.addEventListener("open", () => accepted.resolve(peer), {
        once: true,
      });
      return response;
    },
  );
  const raw = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await once(raw, "open");
  const client = new Peer(raw);
  client.addEventListener("error", () => {});
  const server = await deadline(accepted.promise);
  return {
    server,
    client,
    raw,
    async [Symbol.asyncDispose]() {
      if (raw.readyState !== WebSocket.CLOSED) {
        const closed = once(raw, "close");
        client.close();
        await closed;
      }
      if (!server.closed) await once(server, "close");
      await http.shutdown();
    },
  };
}

Deno.test("Peer.request() reaches the default handler and returns its result", async () => {
  await using p = await pair({}, (server) => {
    server.onRequest((message, context) => {
      assert.equal(context.method, undefined);
      return `echo:${message}`;
    });
  });
  assert.equal(await p.client.request("hello"), "echo:hello");
});

Deno.test("Peer sends requests in both directions", async () => {
  await using p = await pair({}, (server) => {
    server.handle("add", ([a, b]: [number, number]) => a + b);
  });
  p.client.handle("whoami", () => "client");
  assert.equal(await p.client.call("add", [2, 3]), 5);
  assert.equal(await p.server.call("whoami", null), "client");
});

Deno.test("Peer matches 1,000 concurrent requests in both directions", async () => {
  await using p = await pair({}, (server) => {
    server.handle("double", async (n: number) => {
      // Answer out of order: later requests first, on later ticks.
      await new Promise<void>((resolve) => queueMicrotask(resolve));
      return n * 2;
    });
  });
  p.client.handle("negate", (n: number) => 1000 - n);
  const numbers = Array.from({ length: 1000 }, (_, i) => i);
  const [doubled, negated] = await Promise.all([
    Promise.all(numbers.map((n) => p.client.call("double", n))),
    Promise.all(numbers.map((n) => p.server.call("negate", n))),
  ]);
  assert.deepEqual(doubled, numbers.map((n) => n * 2));
  assert.deepEqual(negated, numbers.map((n) => 1000 - n));
  assert.equal(p.client.pending, 0);
  assert.equal(p.server.pending, 0);
});

Deno.test("Peer.call() is typed by the endpoints", async () => {
  interface Server extends Endpoint {
    requests: { greet: (name: string) => string };
    notifications: { tick: number };
  }
  interface Client extends Endpoint {
    requests: Record<never, never>;
    notifications: { hello: { text: string } };
  }
  const ticks: number[] = [];
  const seen = Promise.withResolvers<void>();
  await using p = await pair({}, (peer) => {
    const server = peer as unknown as Peer<Server, Client>;
    server.handle("greet", (name) => `hi ${name.toUpperCase()}`);
    server.on("tick", (n) => {
      ticks.push(n);
      seen.resolve();
    });
  });
  const client = p.client as unknown as Peer<Client, Server>;
  const reply: string = await client.call("greet", "ada");
  assert.equal(reply, "hi ADA");
  client.emit("tick", 7);
  await deadline(seen.promise);
  assert.deepEqual(ticks, [7]);
});

Deno.test("Peer delivers notifications to method, default and any listeners", async () => {
  await using p = await pair();
  const got: string[] = [];
  const done = Promise.withResolvers<void>();
  p.client.on("news", (text: string) => got.push(`news:${text}`));
  p.client.onNotify((text, frame) => got.push(`plain:${text}:${frame.from}`));
  p.client.registry.on(undefined, (_: unknown, frame: NotifyFrame) => {
    got.push(`any:${frame.method ?? ""}`);
    if (got.length === 4) done.resolve();
  });
  p.server.notify("flash", { method: "news" });
  p.server.sendNotification(
    JSON.stringify({ sequence: 0, type: 3, message: "hi", from: "bob" }),
  );
  await deadline(done.promise);
  assert.deepEqual(got, ["news:flash", "any:news", "plain:hi:bob", "any:"]);
});

Deno.test("Peer with an identity overrides the from that the sender claims", async () => {
  const seen = Promise.withResolvers<
    [string | undefined, string | undefined]
  >();
  let requestFrom: string | undefined;
  await using p = await pair({ identity: "alice" }, (server) => {
    server.onRequest((_message, context) => {
      requestFrom = context.from;
      return "ok";
    });
    server.onNotify((_message, frame) =>
      seen.resolve([frame.from, requestFrom])
    );
  });
  p.raw.send(
    JSON.stringify({ sequence: 1, type: 1, message: "x", from: "mallory" }),
  );
  await once(p.raw, "message");
  p.raw.send(JSON.stringify({ sequence: 2, type: 3, from: "mallory" }));
  assert.deepEqual(await deadline(seen.promise), ["alice", "alice"]);
});

Deno.test("Peer answers RemoteError as is and hides other handler errors", async () => {
  const errors: unknown[] = [];
  await using p = await pair({}, (server) => {
    server.addEventListener("error", (event) => errors.push(event.error));
    server.handle("denied", () => {
      throw new RemoteError({ code: "FORBIDDEN", message: "No", data: [1] });
    });
    server.handle("bug", () => {
      throw new Error("secret stack detail");
    });
    server.handle("asyncBug", () => Promise.reject(new Error("async secret")));
    server.handle("cyclic", () => {
      const value: Record<string, unknown> = {};
      value.self = value;
      return value;
    });
  });
  await assert.rejects(p.client.call("denied", null), (error: RemoteError) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.code, "FORBIDDEN");
    assert.equal(error.message, "No");
    assert.deepEqual(error.data, [1]);
    return true;
  });
  for (const method of ["bug", "asyncBug", "cyclic"]) {
    await assert.rejects(p.client.call(method, null), (error: RemoteError) => {
      assert.equal(error.code, "INTERNAL_ERROR");
      assert.equal(error.message, "Internal error");
      assert.doesNotMatch(JSON.stringify(error.data ?? ""), /secret/);
      return true;
    });
  }
  assert.equal(errors.length, 3);
});

Deno.test("Peer answers an unknown method with METHOD_NOT_FOUND", async () => {
  await using p = await pair();
  await assert.rejects(
    p.client.call("missing", null),
    (error: RemoteError) => error.code === "METHOD_NOT_FOUND",
  );
  await assert.rejects(
    p.client.request("no default handler"),
    (error: RemoteError) => error.code === "METHOD_NOT_FOUND",
  );
});

Deno.test("Peer propagates cancellation to the handler's signal", async () => {
  const aborted = Promise.withResolvers<unknown>();
  const started = Promise.withResolvers<void>();
  await using p = await pair({}, (server) => {
    server.handle("wait", (_params, context) => {
      started.resolve();
      context.signal.addEventListener(
        "abort",
        () => aborted.resolve(context.signal.reason),
      );
      return new Promise(() => {});
    });
  });
  const controller = new AbortController();
  const call = p.client.call("wait", null, { signal: controller.signal });
  await deadline(started.promise);
  const reason = new Error("changed my mind");
  controller.abort(reason);
  await assert.rejects(call, (e) => e === reason);
  const remoteReason = await deadline(aborted.promise);
  assert.ok(remoteReason instanceof DuplexError);
  assert.equal(remoteReason.code, "CANCELLED");
  assert.equal(p.server.inFlight, 0);
});

Deno.test("Peer cancels the remote handler when a request times out, server to client too", async () => {
  const aborted = Promise.withResolvers<void>();
  await using p = await pair();
  p.client.handle("wait", (_params, context) => {
    context.signal.addEventListener("abort", () => aborted.resolve());
    return new Promise(() => {});
  });
  await assert.rejects(
    p.server.call("wait", null, { timeout: 5 }),
    RequestTimeoutError,
  );
  await deadline(aborted.promise);
  assert.equal(p.client.inFlight, 0);
});

Deno.test("Peer rejects pending requests on both sides when the connection closes", async () => {
  const handlerAborted = Promise.withResolvers<unknown>();
  const serverGotIt = Promise.withResolvers<void>();
  const clientGotIt = Promise.withResolvers<void>();
  await using p = await pair({}, (server) => {
    server.handle("never", (_params, context) => {
      context.signal.addEventListener(
        "abort",
        () => handlerAborted.resolve(context.signal.reason),
      );
      serverGotIt.resolve();
      return new Promise(() => {});
    });
  });
  p.client.handle("never", () => {
    clientGotIt.resolve();
    return new Promise(() => {});
  });
  const fromClient = p.client.call("never", null);
  const fromServer = p.server.call("never", null);
  // Both requests reach the other side before the close.
  await deadline(Promise.all([serverGotIt.promise, clientGotIt.promise]));
  const serverClosed = once<CloseEvent>(p.server, "close");
  p.client.close(4321, "bye");
  await assert.rejects(fromClient, (error: ConnectionClosedError) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.closeCode, 4321);
    assert.equal(error.reason, "bye");
    return true;
  });
  await assert.rejects(fromServer, ConnectionClosedError);
  assert.equal((await serverClosed).code, 4321);
  assert.ok((await deadline(handlerAborted.promise)) instanceof Error);
  await assert.rejects(p.client.request("after"), ConnectionClosedError);
});

Deno.test("Peer answers application pings with pongs", async () => {
  await using p = await pair();
  const pong = once<MessageEvent>(p.raw, "message");
  p.raw.send(JSON.stringify({ sequence: 42, type: 5 }));
  assert.deepEqual(JSON.parse((await pong).data), { sequence: 42, type: 6 });
  const before = p.client.stats.framesIn[6];
  const next = once(p.raw, "message");
  p.client.ping();
  await next;
  assert.equal(p.client.stats.framesIn[6], before + 1);
});

Deno.test("Peer answers malformed frames with INVALID_FRAME when the sequence is readable", async () => {
  const errors: unknown[] = [];
  await using p = await pair({}, (server) => {
    server.addEventListener("error", (event) => errors.push(event.error));
  });
  const replies: unknown[] = [];
  const three = Promise.withResolvers<void>();
  p.raw.addEventListener("message", (e) => {
    replies.push(JSON.parse(e.data));
    if (replies.length === 3) three.resolve();
  });
  p.raw.send("not json");
  p.raw.send(JSON.stringify({ sequence: 5, type: 99 }));
  p.raw.send(JSON.stringify({ sequence: 6, type: 1, method: 7 }));
  p.raw.send(JSON.stringify({ sequence: 7, type: 2, error: "x" }));
  // The last frame is a ping: replies come in order, the pong last.
  p.raw.send(JSON.stringify({ sequence: 8, type: 5 }));
  await deadline(three.promise);
  const [first, second] = replies as Array<
    { sequence: number; error: { code: string; message: string } }
  >;
  assert.equal(first.sequence, 5);
  assert.equal(first.error.code, "INVALID_FRAME");
  assert.match(first.error.message, /unknown type 99/);
  assert.equal(second.sequence, 6);
  assert.match(second.error.message, /"method" must be a string/);
  assert.deepEqual(replies[2], { sequence: 8, type: 6 });
  assert.equal(p.server.stats.malformed, 4);
  assert.equal(errors.length, 4);
  assert.ok(errors.every((e) => e instanceof ProtocolError));
});

// The close code is asserted on the server side: a Deno server that closes
// while the client is still sending drops the TCP connection, so the client
// sees an abnormal close (code 0 in Deno, 1006 in browsers; see
// denoland/deno#21642). Either way the abuser is disconnected.
Deno.test("Peer closes with 1002 after too many malformed frames", async () => {
  await using p = await pair({ maxMalformed: 3 });
  const serverClosed = once<CloseEvent>(p.server, "close");
  const clientClosed = once<CloseEvent>(p.raw, "close");
  for (let i = 0; i < 5; i++) p.raw.send("garbage");
  assert.equal((await serverClosed).code, 1002);
  await clientClosed;
});

Deno.test("Peer closes with 1009 when a message exceeds maxMessageSize", async () => {
  const guard = new PeerLimits({ maxMessageSize: 1024 });
  await using p = await pair({ guard }, (server) => {
    server.onRequest((m) => m);
  });
  // Just under the limit in UTF-8 bytes passes, even with multi-byte text.
  const fits = "é".repeat(490);
  assert.equal(await p.client.request(fits), fits);
  const closed = once<CloseEvent>(p.raw, "close");
  const tooBig = p.client.request("é".repeat(600));
  await assert.rejects(tooBig, ConnectionClosedError);
  assert.equal((await closed).code, 1009);
});

Deno.test("Peer refuses frames over the rate limit, then closes with 1008", async () => {
  await using p = await pair(
    {
      guard: new PeerLimits({
        rateLimit: { rate: 0.001, burst: 2, maxViolations: 3 },
      }),
    },
    (server) => server.onRequest(() => "ok"),
  );
  assert.equal(await p.client.request(1), "ok");
  assert.equal(await p.client.request(2), "ok");
  await assert.rejects(
    p.client.request(3),
    (error: RemoteError) => error.code === "RATE_LIMITED",
  );
  const serverClosed = once<CloseEvent>(p.server, "close");
  const clientClosed = once<CloseEvent>(p.raw, "close");
  const flood = Array.from({ length: 5 }, (_, i) => p.client.request(i));
  const results = await Promise.allSettled(flood);
  assert.ok(results.every((r) => r.status === "rejected"));
  assert.equal((await serverClosed).code, 1008);
  await clientClosed;
  assert.ok(p.server.stats.rateLimited >= 4);
});

Deno.test("Peer refuses requests beyond maxInFlight with TOO_MANY_REQUESTS", async () => {
  const release = Promise.withResolvers<void>();
  const guard = new PeerLimits({ maxInFlight: 2 });
  await using p = await pair({ guard }, (server) => {
    server.handle("hold", async () => {
      await release.promise;
      return "done";
    });
  });
  const held = [p.client.call("hold", null), p.client.call("hold", null)];
  await assert.rejects(
    p.client.call("hold", null),
    (error: RemoteError) => error.code === "TOO_MANY_REQUESTS",
  );
  release.resolve();
  assert.deepEqual(await Promise.all(held), ["done", "done"]);
});

/** A socket whose send buffer never drains, to test backpressure. */
class StuckSocket extends EventTarget implements SocketLike {
  readyState = 1;
  bufferedAmount = 0;
  sent: unknown[] = [];
  closedWith: number | undefined;
  send(data: string): void {
    this.sent.push(data);
    this.bufferedAmount += data.length;
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
}

Deno.test("Peer drops notifications above the high-water mark, never responses", () => {
  const socket = new StuckSocket();
  const peer = new Peer(socket, {
    guard: new PeerLimits({ highWaterMark: 10 }),
  });
  peer.onRequest(() => "ok");
  assert.equal(peer.notify("0123456789"), true);
  assert.equal(peer.notify("again"), false);
  assert.equal(peer.stats.dropped, 1);
  peer.receive(JSON.stringify({ sequence: 1, type: 1 }));
  assert.equal(socket.sent.length, 2);
  assert.match(String(socket.sent[1]), /"type":2/);
  peer.close();
});

Deno.test("Peer closes with 1013 above the high-water mark when so configured", () => {
  const socket = new StuckSocket();
  const peer = new Peer(socket, {
    guard: new PeerLimits({ highWaterMark: 10, backpressure: "close" }),
  });
  peer.notify("0123456789");
  assert.equal(peer.notify("x"), false);
  assert.equal(socket.closedWith, 1013);
  assert.ok(peer.closed);
  assert.throws(() => peer.notify("y"), ConnectionClosedError);
});

Deno.test("Peer pings with sequence 0, so a response to a ping settles no request", async () => {
  await using p = await pair();
  const ping = once<MessageEvent>(p.raw, "message");
  // The server side pings; the raw client reads the frame before its Peer.
  p.server.ping();
  assert.deepEqual(JSON.parse((await ping).data), { sequence: 0, type: 5 });
  // A legacy peer that answered a ping with a response: no request matches.
  const checked = Promise.withResolvers<void>();
  p.client.onRequest(async () => {
    await checked.promise;
    return 1;
  });
  const pending = p.server.request("real", { timeout: 0 });
  const unexpected = p.server.stats.unexpected;
  p.raw.send(JSON.stringify({ sequence: 0, type: 2, message: "pong?" }));
  // A frame sent after it comes back after it: the pong of this ping.
  const pong = Promise.withResolvers<void>();
  const onPong = (event: MessageEvent) => {
    if (JSON.parse(event.data).type === 6) pong.resolve();
  };
  p.raw.addEventListener("message", onPong);
  p.raw.send(JSON.stringify({ sequence: 3, type: 5 }));
  await deadline(pong.promise);
  p.raw.removeEventListener("message", onPong);
  assert.equal(p.server.stats.unexpected, unexpected + 1);
  assert.equal(p.server.pending, 1);
  checked.resolve();
  assert.equal(await pending, 1);
});

Deno.test("Peer counts recent malformed frames only (maxMalformed within malformedWindow)", async () => {
  let now = 0;
  const realNow = Date.now;
  Date.now = () => now;
  try {
    await using p = await pair({ maxMalformed: 2, malformedWindow: 1_000 });
    // Three malformed frames, each far from the others: never too many.
    for (let i = 0; i < 3; i++) {
      now += 5_000;
      const answer = once<MessageEvent>(p.raw, "message");
      p.raw.send(JSON.stringify({ sequence: 1, type: 99 }));
      assert.equal(JSON.parse((await answer).data).error.code, "INVALID_FRAME");
    }
    assert.equal(p.server.closed, false);
    assert.equal(p.server.stats.malformed, 3);
    // Three within the window: closed with 1002.
    const closed = once<CloseEvent>(p.server, "close");
    for (let i = 0; i < 3; i++) p.raw.send("garbage");
    assert.equal((await closed).code, 1002);
  } finally {
    Date.now = realNow;
  }
});

Deno.test("Peer with original: true sends only original frames and refuses the rest at once", async () => {
  const accepted = Promise.withResolvers<WebSocket>();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.addEventListener("open", () => accepted.resolve(socket));
      return response;
    },
  );
  const raw = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await once(raw, "open");
  const peer = new Peer(raw, { original: true });
  const server = await deadline(accepted.promise);
  const frames: unknown[] = [];
  const answered = Promise.withResolvers<void>();
  server.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    frames.push(frame);
    // Answers as the original server: empty fields left out.
    server.send(JSON.stringify({ sequence: frame.sequence, type: 2 }));
    answered.resolve();
  });
  assert.throws(() => peer.ping(), OriginalProtocolError);
  assert.throws(() => peer.notify("hi"), OriginalProtocolError);
  await assert.rejects(peer.call("users.list", null), OriginalProtocolError);
  await assert.rejects(peer.request(["a"]), OriginalProtocolError);
  // Given up by its timeout: no cancel frame goes out.
  assert.equal(await peer.request("hello"), "");
  await answered.promise;
  assert.deepEqual(frames, [{ sequence: 1, type: 1, message: "hello" }]);
  const closed = once(server, "close");
  peer.close();
  await closed;
});

Deno.test("Peer.closeWithReason() delivers the running handlers' responses, then announces the close", async () => {
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  await using p = await pair({ protocol: "duplex.v1" }, (server) => {
    server.handle("slow", async () => {
      started.resolve();
      await release.promise;
      return "done";
    });
  });
  const slow = p.client.call("slow", null);
  await started.promise;
  const clientClosed = once<CloseEvent>(p.client, "close");
  p.server.closeWithReason(4321, "Closing for a reason");
  // Closing: the peer takes nothing new.
  assert.throws(() => p.server.notify("late"), ConnectionClosedError);
  release.resolve();
  assert.equal(await slow, "done");
  const event = await clientClosed;
  assert.equal(event.code, 4321);
  assert.equal(event.reason, "Closing for a reason");
  assert.equal(p.server.stats.framesOut[7], 1);
});

Deno.test("Peer's default timeouts: one timer follows the earliest deadline, each request expires on its own", async () => {
  const socket = new StuckSocket();
  const peer = new Peer(socket, { timeout: 0 });
  const order: string[] = [];
  const settle = (name: string, promise: Promise<unknown>) =>
    promise.then(
      () => order.push(`${name} resolved`),
      (error) =>
        order.push(
          `${name} ${
            error instanceof RequestTimeoutError
              ? error.timeout
              : error.constructor.name
          }`,
        ),
    );
  const slow = settle("slow", peer.request("a", { timeout: 60 }));
  const none = settle("none", peer.request("b"));
  const fast = settle("fast", peer.request("c", { timeout: 20 }));
  const answered = settle("answered", peer.request("d", { timeout: 10 }));
  peer.receive(JSON.stringify({ sequence: 4, type: 2, message: "ok" }));
  await deadline(Promise.all([fast, slow, answered]));
  assert.deepEqual(order, ["answered resolved", "fast 20", "slow 60"]);
  assert.equal(peer.pending, 1);
  // One cancel for each expired request.
  const cancels = socket.sent.filter((data) => /"type":4/.test(String(data)));
  assert.deepEqual(cancels, [
    '{"sequence":3,"type":4}',
    '{"sequence":1,"type":4}',
  ]);
  // The request without a timeout waits until the close (no timer left).
  peer.close();
  await none;
  assert.equal(order.at(-1), "none ConnectionClosedError");
});
