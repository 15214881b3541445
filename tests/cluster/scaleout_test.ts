/**
 * Scale-out end to end: chat server instances (each `Deno.serve` on
 * 127.0.0.1 port 0) joined by a real broker, with real clients on each:
 * original-protocol clients on raw WebSockets and `duplex.v1` clients with
 * the `Client` of `client.ts`.
 *
 * - Redis: a real `redis-server` on a free port (tests/_redis.ts), two
 *   instances in this thread; a third in a Worker that is terminated to
 *   play a dead instance.
 * - BroadcastChannel: two instances in separate Workers of this process.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import type {
  ChatClientEndpoint,
  ChatServerEndpoint,
  Cluster,
  NotifyFrame,
} from "../../server.ts";
import { RedisPubSub } from "../../redis.ts";
import { deadline, DEADLINE_MS, once, WORKER_START_MS } from "../_helpers.ts";
import { redisTest } from "../_redis.ts";
import { closeAndWait, open } from "../_server_helpers.ts";
import {
  type ChatInstance,
  startChatInstance,
} from "../_workers/chat_instance.ts";

/** Values in arrival order; `next()` takes the first that matches. */
class Inbox<T> {
  #items: T[] = [];
  #waiters: Array<{ match: (value: T) => boolean; resolve: (v: T) => void }> =
    [];

  push(value: T): void {
    const index = this.#waiters.findIndex((w) => w.match(value));
    if (index >= 0) this.#waiters.splice(index, 1)[0].resolve(value);
    else this.#items.push(value);
  }

  next(
    match: (value: T) => boolean = () => true,
    what = "a message",
    ms: number = DEADLINE_MS,
  ): Promise<T> {
    const index = this.#items.findIndex(match);
    if (index >= 0) return Promise.resolve(this.#items.splice(index, 1)[0]);
    const { promise, resolve } = Promise.withResolvers<T>();
    const waiter = { match, resolve };
    this.#waiters.push(waiter);
    return deadline(promise, ms, what).catch((error) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw error;
    });
  }

  /** Everything received and not taken yet. */
  get buffered(): readonly T[] {
    return this.#items;
  }
}

/** An original-protocol client: a raw WebSocket, frames as received. */
interface RawUser extends AsyncDisposable {
  socket: WebSocket;
  inbox: Inbox<string>;
  send(frame: Record<string, unknown>): void;
}

async function rawUser(url: string): Promise<RawUser> {
  const socket = await open(url);
  const inbox = new Inbox<string>();
  socket.addEventListener("message", (event) => inbox.push(event.data));
  return {
    socket,
    inbox,
    send: (frame) => socket.send(JSON.stringify(frame)),
    async [Symbol.asyncDispose]() {
      await closeAndWait(socket);
    },
  };
}

/** What a `duplex.v1` chat client receives. */
type Received =
  | { kind: "chat"; message: unknown; from: string | undefined; seq: number }
  | { kind: "joined" | "left"; user: string };

/** A `duplex.v1` client (the package's `Client`) recording what it gets. */
interface DuplexUser extends AsyncDisposable {
  client: Client<ChatClientEndpoint, ChatServerEndpoint>;
  inbox: Inbox<Received>;
}

async function duplexUser(url: string): Promise<DuplexUser> {
  const client = new Client<ChatClientEndpoint, ChatServerEndpoint>(url, {
    maxAttempts: 0,
  });
  const inbox = new Inbox<Received>();
  client.onNotify((message, frame: NotifyFrame) =>
    inbox.push({ kind: "chat", message, from: frame.from, seq: frame.sequence })
  );
  client.on(
    "presence.joined",
    ({ user }) => inbox.push({ kind: "joined", user }),
  );
  client.on("presence.left", ({ user }) => inbox.push({ kind: "left", user }));
  await client.connect();
  return {
    client,
    inbox,
    async [Symbol.asyncDispose]() {
      await client.close();
    },
  };
}

/** Resolves once `predicate()` holds, checked after each join and leave. */
function untilCluster(
  cluster: Cluster,
  predicate: () => boolean,
  what: string,
  ms: number = DEADLINE_MS,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const check = () => {
    if (predicate()) resolve();
  };
  cluster.addEventListener("join", check);
  cluster.addEventListener("leave", check);
  return deadline(promise, ms, what).finally(() => {
    cluster.removeEventListener("join", check);
    cluster.removeEventListener("leave", check);
  });
}

function chatFrame(seq: number, message: unknown, from: string): string {
  return JSON.stringify({ sequence: seq, type: 3, message, from });
}

function okFrame(seq: number): string {
  return JSON.stringify({ sequence: seq, type: 2, message: "ok" });
}

function isChat(seq: number, from: string): (r: Received) => boolean {
  return (r) => r.kind === "chat" && r.seq === seq && r.from === from;
}

async function redisInstance(
  url: string,
  id: string,
  presence = { heartbeatInterval: 200, presenceTtl: 3_000 },
): Promise<ChatInstance> {
  const pubsub = new RedisPubSub({
    url,
    reconnectDelay: 10,
    maxReconnectDelay: 100,
    minUptime: 100,
  });
  await pubsub.ready();
  return await startChatInstance(pubsub, { id, ...presence });
}

redisTest(
  "Cluster over Redis: two chat instances share chat, presence, users.list, rooms and user requests, and survive a Redis restart",
  async (redis) => {
    await using a = await redisInstance(redis.url, "a");
    await using b = await redisInstance(redis.url, "b");

    // dave (duplex.v1) on B first: A learns of him through the broker.
    await using dave = await duplexUser(b.url("dave"));
    await untilCluster(
      a.cluster,
      () => a.cluster.isOnline("dave"),
      "A to see dave",
    );
    // bob (duplex.v1) on A: dave, on B, hears that bob joined.
    await using bob = await duplexUser(a.url("bob"));
    assert.deepEqual(
      await dave.inbox.next((r) => r.kind === "joined", "presence.joined"),
      { kind: "joined", user: "bob" },
    );
    // Original-protocol users on both instances.
    await using alice = await rawUser(a.url("alice"));
    await using carol = await rawUser(b.url("carol"));
    const everyone = ["alice", "bob", "carol", "dave"];
    for (const instance of [a, b]) {
      await untilCluster(
        instance.cluster,
        () => everyone.every((u) => instance.cluster.isOnline(u)),
        `${instance.cluster.id} to see everyone`,
      );
    }
    assert.deepEqual(
      await bob.inbox.next((r) => r.kind === "joined" && r.user === "carol"),
      { kind: "joined", user: "carol" },
    );
    assert.deepEqual(a.server.users().sort(), ["alice", "bob"]);
    // users.list covers both instances, from either side.
    assert.deepEqual(await dave.client.call("users.list", undefined), everyone);
    assert.deepEqual(await bob.client.call("users.list", undefined), everyone);

    // Chat with the original semantics: notify every other user on A and B
    // with from, then "ok" to the sender; never the sender itself.
    alice.send({ sequence: 7, type: 1, message: "hi" });
    assert.equal(await alice.inbox.next(), okFrame(7));
    assert.equal(await carol.inbox.next(), chatFrame(7, "hi", "alice"));
    assert.deepEqual(await bob.inbox.next(isChat(7, "alice")), {
      kind: "chat",
      message: "hi",
      from: "alice",
      seq: 7,
    });
    assert.deepEqual(await dave.inbox.next(isChat(7, "alice")), {
      kind: "chat",
      message: "hi",
      from: "alice",
      seq: 7,
    });
    // The other way, B to A. alice's next frame is carol's message: she
    // never got her own.
    carol.send({ sequence: 8, type: 1, message: { text: "yo" } });
    assert.equal(await carol.inbox.next(), okFrame(8));
    assert.equal(
      await alice.inbox.next(),
      chatFrame(8, { text: "yo" }, "carol"),
    );
    await bob.inbox.next(isChat(8, "carol"));
    await dave.inbox.next(isChat(8, "carol"));
    // A duplex.v1 sender gets the same relay.
    assert.equal(await dave.client.request("from dave"), "ok");
    const relayed = JSON.parse(await alice.inbox.next());
    assert.deepEqual(
      [relayed.type, relayed.message, relayed.from],
      [3, "from dave", "dave"],
    );
    await carol.inbox.next();
    await bob.inbox.next((r) => r.kind === "chat" && r.from === "dave");

    // A room spans instances: the members on B get a push made on A.
    assert.equal(b.server.join("ops", "dave"), true);
    a.server.notify("deploying", { room: "ops" });
    assert.deepEqual(
      await dave.inbox.next((r) =>
        r.kind === "chat" && r.message === "deploying"
      ),
      { kind: "chat", message: "deploying", from: undefined, seq: 0 },
    );

    // A user-targeted request made on A, answered by dave on B.
    dave.client.handle(
      "confirm" as never,
      ((params: { amount: number }) => ({ ok: params.amount * 2 })) as never,
    );
    assert.deepEqual(
      await a.server.request({ amount: 5 }, { to: "dave", method: "confirm" }),
      { ok: 10 },
    );
    // Users the cluster cannot ask: nowhere, or original-protocol only.
    await assert.rejects(
      a.server.request("x", { to: "nobody", timeout: 2_000 }),
      (error: Error & { code?: string }) => error.code === "NOT_CONNECTED",
    );
    await assert.rejects(
      a.server.request("x", { to: "carol", timeout: 2_000 }),
      (error: Error & { code?: string }) => error.code === "NOT_CONNECTED",
    );

    // Redis goes away: both instances notice and log it; local chat goes on.
    const down = [once(a.pubsub, "down"), once(b.pubsub, "down")];
    await redis.stop();
    await Promise.all(down);
    alice.send({ sequence: 9, type: 1, message: "local only" });
    assert.equal(await alice.inbox.next(), okFrame(9));
    await bob.inbox.next(isChat(9, "alice"));
    await assert.rejects(
      a.server.request("x", { to: "dave", timeout: 2_000 }),
      (error: Error & { code?: string }) =>
        error.code === "BROKER_UNAVAILABLE" || error.code === "NOT_CONNECTED",
    );
    // Redis comes back on the same port: both reconnect and resubscribe.
    const up = [
      once(a.pubsub, "up", 15_000),
      once(b.pubsub, "up", 15_000),
    ];
    await redis.restart();
    await Promise.all(up);
    for (const instance of [a, b]) {
      const lines = instance.logger.lines.join("\n");
      assert.match(lines, /redis/);
      assert.match(lines, /lost|down/);
    }
    assert.deepEqual(carol.inbox.buffered, []);
    alice.send({ sequence: 10, type: 1, message: "back" });
    assert.equal(await alice.inbox.next(), okFrame(10));
    assert.equal(await carol.inbox.next(), chatFrame(10, "back", "alice"));
    await dave.inbox.next(isChat(10, "alice"));
    await bob.inbox.next(isChat(10, "alice"));
    assert.deepEqual(
      await a.server.request({ amount: 1 }, { to: "dave", method: "confirm" }),
      { ok: 2 },
    );

    // bob leaves: dave, on B, hears it, and users.list drops him.
    await bob.client.close();
    assert.deepEqual(
      await dave.inbox.next((r) => r.kind === "left"),
      { kind: "left", user: "bob" },
    );
    await untilCluster(
      b.cluster,
      () => !b.cluster.isOnline("bob"),
      "B to drop bob",
    );
    assert.deepEqual(
      await dave.client.call("users.list", undefined),
      ["alice", "carol", "dave"],
    );
  },
);

/** A chat instance in a Worker, driven by messages. */
class WorkerInstance {
  readonly worker: Worker;
  port = 0;
  #inbox = new Inbox<Record<string, unknown>>();
  #ref = 0;
  #terminated = false;

  constructor() {
    this.worker = new Worker(
      new URL("../_workers/chat_instance_worker.ts", import.meta.url),
      { type: "module" },
    );
    this.worker.onmessage = (event) => this.#inbox.push(event.data);
  }

  static async start(
    command: Record<string, unknown>,
  ): Promise<WorkerInstance> {
    const instance = new WorkerInstance();
    instance.worker.postMessage({ cmd: "start", ...command });
    try {
      const started = await instance.#inbox.next(
        (m) => m.ev === "started",
        `worker ${command.id} to start`,
        WORKER_START_MS,
      );
      instance.port = started.port as number;
    } catch (error) {
      instance.terminate();
      throw error;
    }
    return instance;
  }

  url(user: string): string {
    return `ws://127.0.0.1:${this.port}/?user=${encodeURIComponent(user)}`;
  }

  async request(
    to: string,
    message: unknown,
    method?: string,
  ): Promise<Record<string, unknown>> {
    const ref = ++this.#ref;
    this.worker.postMessage({ cmd: "request", ref, to, message, method });
    return await this.#inbox.next(
      (m) => m.ev === "response" && m.ref === ref,
      "a response",
    );
  }

  /** Closes the instance gracefully, then the Worker. */
  async close(): Promise<void> {
    if (this.#terminated) return;
    this.worker.postMessage({ cmd: "close" });
    try {
      await this.#inbox.next((m) => m.ev === "closed", "worker to close");
    } finally {
      this.terminate();
    }
  }

  /** Kills the instance at once: no goodbye. */
  terminate(): void {
    if (this.#terminated) return;
    this.#terminated = true;
    this.worker.terminate();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

redisTest(
  "Cluster over Redis: users of a dead instance leave the online list within the TTL",
  async (redis) => {
    const presence = { heartbeatInterval: 100, presenceTtl: 1_000 };
    await using a = await redisInstance(redis.url, "a", presence);
    await using b = await WorkerInstance.start({
      broker: "redis",
      url: redis.url,
      id: "b",
      ...presence,
    });
    await using bob = await duplexUser(a.url("bob"));
    const carol = await rawUser(b.url("carol"));
    assert.deepEqual(
      await bob.inbox.next((r) => r.kind === "joined"),
      { kind: "joined", user: "carol" },
    );
    assert.deepEqual(await bob.client.call("users.list", undefined), [
      "bob",
      "carol",
    ]);
    // carol relays through B to bob on A.
    carol.send({ sequence: 1, type: 1, message: "before" });
    assert.equal(await carol.inbox.next(), okFrame(1));
    await bob.inbox.next(isChat(1, "carol"));

    // B dies without a word: its Worker is terminated.
    const left = once<CustomEvent<{ user: string; reason: string }>>(
      a.cluster,
      "leave",
      10_000,
    );
    const carolClosed = once(carol.socket, "close");
    const killed = performance.now();
    b.terminate();
    await carolClosed;
    const event = await left;
    const elapsed = performance.now() - killed;
    assert.deepEqual(
      [event.detail.user, event.detail.reason],
      ["carol", "expired"],
    );
    // The bound: presenceTtl plus one tick of the expiry check, with slack
    // for a loaded machine.
    assert.ok(
      elapsed < presence.presenceTtl + presence.heartbeatInterval + 1_500,
      `carol expired after ${Math.round(elapsed)} ms`,
    );
    assert.deepEqual(
      await bob.inbox.next((r) => r.kind === "left"),
      { kind: "left", user: "carol" },
    );
    assert.deepEqual(await bob.client.call("users.list", undefined), ["bob"]);
    assert.match(a.logger.lines.join("\n"), /instance b left \(expired\)/);
  },
);

Deno.test(
  "Cluster over BroadcastChannel: chat instances in two Workers share chat, presence and user requests",
  async () => {
    const presence = { heartbeatInterval: 100, presenceTtl: 3_000 };
    const prefix = `scaleout-${crypto.randomUUID()}:`;
    await using a = await WorkerInstance.start({
      broker: "broadcast-channel",
      prefix,
      id: "a",
      ...presence,
    });
    await using b = await WorkerInstance.start({
      broker: "broadcast-channel",
      prefix,
      id: "b",
      ...presence,
    });
    await using dave = await duplexUser(b.url("dave"));
    await using bob = await duplexUser(a.url("bob"));
    assert.deepEqual(
      await dave.inbox.next((r) => r.kind === "joined"),
      { kind: "joined", user: "bob" },
    );
    await using alice = await rawUser(a.url("alice"));
    await using carol = await rawUser(b.url("carol"));
    for (const user of ["alice", "carol"]) {
      await bob.inbox.next((r) => r.kind === "joined" && r.user === user);
      await dave.inbox.next((r) => r.kind === "joined" && r.user === user);
    }
    const everyone = ["alice", "bob", "carol", "dave"];
    assert.deepEqual(await bob.client.call("users.list", undefined), everyone);
    assert.deepEqual(await dave.client.call("users.list", undefined), everyone);

    alice.send({ sequence: 3, type: 1, message: "hi" });
    assert.equal(await alice.inbox.next(), okFrame(3));
    assert.equal(await carol.inbox.next(), chatFrame(3, "hi", "alice"));
    await bob.inbox.next(isChat(3, "alice"));
    await dave.inbox.next(isChat(3, "alice"));
    carol.send({ sequence: 4, type: 1, message: "hey" });
    assert.equal(await carol.inbox.next(), okFrame(4));
    assert.equal(await alice.inbox.next(), chatFrame(4, "hey", "carol"));
    await bob.inbox.next(isChat(4, "carol"));
    await dave.inbox.next(isChat(4, "carol"));

    // A request made in Worker A, answered by dave on Worker B.
    dave.client.handle(
      "confirm" as never,
      ((params: number) => params + 1) as never,
    );
    assert.deepEqual(await a.request("dave", 41, "confirm"), {
      ev: "response",
      ref: 1,
      value: 42,
    });
    const missing = await a.request("nobody", 1, "confirm");
    assert.equal(
      (missing.error as { code: string }).code,
      "NOT_CONNECTED",
    );

    // dave leaves B: bob, on A, hears it.
    await dave.client.close();
    assert.deepEqual(
      await bob.inbox.next((r) => r.kind === "left"),
      { kind: "left", user: "dave" },
    );
    assert.deepEqual(await bob.client.call("users.list", undefined), [
      "alice",
      "bob",
      "carol",
    ]);
  },
);
