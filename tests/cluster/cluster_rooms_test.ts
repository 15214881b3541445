/**
 * Rooms and `duplicateUser: "replace"` across instances: real
 * `DuplexServer`s on real sockets, joined by a `MemoryPubSub` hub and by a
 * real redis-server. One test per behaviour that was local before.
 */

import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import {
  Cluster,
  type ClusterOptions,
  DuplexServer,
  type DuplexServerOptions,
  MemoryHub,
  MemoryPubSub,
  type PubSub,
  type RoomDetail,
} from "../../server.ts";
import { RedisPubSub } from "../../redis.ts";
import { deadline, once } from "../_helpers.ts";
import { redisTest } from "../_redis.ts";
import { listen, wsUrl } from "../_server_helpers.ts";

const FAST: ClusterOptions = { heartbeatInterval: 20, presenceTtl: 300 };

/** One instance: transport, cluster, server and HTTP. */
interface Instance extends AsyncDisposable {
  pubsub: PubSub;
  cluster: Cluster;
  server: DuplexServer;
  url(user: string): string;
  /** Dies without a goodbye: the transport goes, then the rest. */
  kill(): Promise<void>;
}

type Transport = () => Promise<PubSub>;

async function instance(
  transport: Transport,
  id: string,
  options: DuplexServerOptions = {},
): Promise<Instance> {
  const pubsub = await transport();
  const cluster = new Cluster(pubsub, { ...FAST, id });
  const server = new DuplexServer({ ...options, cluster });
  await cluster.start();
  const http = listen(server);
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await server.shutdown();
    await cluster.close();
    await pubsub.close();
    await http.shutdown();
  };
  return {
    pubsub,
    cluster,
    server,
    url: (user) => wsUrl(http, user),
    async kill() {
      await pubsub.close();
      await close();
    },
    [Symbol.asyncDispose]: close,
  };
}

/** Waits for a cluster `room` event. */
function roomEvent(
  cluster: Cluster,
  room: string,
  user: string,
  joined: boolean,
  ms = 3_000,
): Promise<RoomDetail> {
  const { promise, resolve } = Promise.withResolvers<RoomDetail>();
  const listener = (event: CustomEvent<RoomDetail>) => {
    const detail = event.detail;
    if (
      detail.room === room && detail.user === user && detail.joined === joined
    ) resolve(detail);
  };
  cluster.addEventListener("room", listener);
  return deadline(promise, ms, `${user} ${joined ? "in" : "out of"} ${room}`)
    .finally(() => cluster.removeEventListener("room", listener));
}

/** Waits until `cluster` lists `user` online. */
function joinedEvent(cluster: Cluster, user: string): Promise<void> {
  if (cluster.isOnline(user)) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const listener = (event: CustomEvent<{ user: string }>) => {
    if (event.detail.user === user) resolve();
  };
  cluster.addEventListener("join", listener);
  return deadline(promise, 3_000, `${user} online`).finally(() =>
    cluster.removeEventListener("join", listener)
  );
}

/** Two instances that know each other, and a client on each. */
async function pair(transport: Transport, options: DuplexServerOptions = {}) {
  const a = await instance(transport, "node-a", options);
  const b = await instance(transport, "node-b", options);
  const ada = new Client(a.url("ada"), { maxAttempts: 0 });
  const bob = new Client(b.url("bob"), { maxAttempts: 0 });
  await ada.connect();
  await bob.connect();
  await Promise.all([
    joinedEvent(a.cluster, "bob"),
    joinedEvent(b.cluster, "ada"),
  ]);
  return {
    a,
    b,
    ada,
    bob,
    async [Symbol.asyncDispose]() {
      await ada.close();
      await bob.close();
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
    },
  };
}

function register(name: string, fn: (transport: Transport) => Promise<void>) {
  Deno.test(`${name} (memory)`, async () => {
    const hub = new MemoryHub();
    await fn(() => Promise.resolve(new MemoryPubSub({ hub })));
  });
  redisTest(`${name} (redis)`, async (redis) => {
    await fn(async () => {
      const pubsub = new RedisPubSub({ url: redis.url });
      await deadline(pubsub.ready(), 5_000, "redis");
      return pubsub;
    });
  });
}

register(
  "DuplexServer.members() and roomsOf() list the members on every instance",
  async (transport) => {
    await using p = await pair(transport);
    const { a, b } = p;
    const seen = [
      roomEvent(a.cluster, "lobby", "bob", true),
      roomEvent(b.cluster, "lobby", "ada", true),
    ];
    assert.equal(a.server.join("lobby", "ada"), true);
    assert.equal(b.server.join("lobby", "bob"), true);
    await Promise.all(seen);
    assert.deepEqual(a.server.members("lobby").sort(), ["ada", "bob"]);
    assert.deepEqual(b.server.members("lobby").sort(), ["ada", "bob"]);
    assert.deepEqual(a.server.roomsOf("bob"), ["lobby"]);
    // A user's last connection closing takes the user out of every room.
    const out = roomEvent(a.cluster, "lobby", "bob", false);
    await p.bob.close();
    await out;
    assert.deepEqual(a.server.members("lobby"), ["ada"]);
    assert.deepEqual(a.server.roomsOf("bob"), []);
  },
);

register(
  "DuplexServer.join() and leave() act on a user connected to another instance, and room pushes reach the user",
  async (transport) => {
    await using p = await pair(transport);
    const { a, b, bob } = p;
    const news = bob.notifications({ method: "news" });
    const joined = roomEvent(a.cluster, "ops", "bob", true);
    assert.equal(a.server.join("ops", "bob"), true);
    await joined;
    assert.deepEqual(b.server.members("ops"), ["bob"]);
    assert.deepEqual(b.server.roomsOf("bob"), ["ops"]);
    a.server.emit("news", "to ops", { room: "ops" });
    assert.equal(
      (await deadline(news.next(), 3_000, "the room push")).value?.message,
      "to ops",
    );

    const left = roomEvent(a.cluster, "ops", "bob", false);
    assert.equal(a.server.leave("ops", "bob"), true);
    await left;
    assert.deepEqual(b.server.members("ops"), []);
    assert.equal(a.server.join("ops", "nobody"), false);
    await news.return?.();
  },
);

register(
  "DuplexServer room memberships of a killed instance vanish within the expiry",
  async (transport) => {
    await using p = await pair(transport);
    const { a, b } = p;
    const seen = roomEvent(a.cluster, "lobby", "bob", true);
    b.server.join("lobby", "bob");
    await seen;
    const started = performance.now();
    const gone = roomEvent(a.cluster, "lobby", "bob", false, 5_000);
    await b.kill();
    await gone;
    const elapsed = performance.now() - started;
    const { presenceTtl = 0, heartbeatInterval = 0 } = FAST;
    assert.ok(
      elapsed < presenceTtl + heartbeatInterval + 1_000,
      `took ${elapsed} ms`,
    );
    assert.deepEqual(a.server.members("lobby"), []);
    assert.equal(a.cluster.isOnline("bob"), false);
  },
);

register(
  "DuplexServer a user's new connection on another instance takes the user's rooms",
  async (transport) => {
    await using p = await pair(transport);
    const { a, b } = p;
    const seen = roomEvent(b.cluster, "lobby", "ada", true);
    a.server.join("lobby", "ada");
    await seen;
    // Ada opens a second tab, on B: room pushes from B reach it too.
    await using tab = new Client(b.url("ada"), { maxAttempts: 0 });
    const news = tab.notifications({ method: "news" });
    // B takes ada's rooms as her first connection there opens.
    const online = once(b.server, "online");
    await tab.connect();
    await online;
    b.server.emit("news", "lobby news", { room: "lobby", local: true });
    assert.equal(
      (await deadline(news.next(), 3_000, "the room push")).value?.message,
      "lobby news",
    );
    await news.return?.();
  },
);

register(
  'DuplexServer duplicateUser "replace" closes the older connection on another instance',
  async (transport) => {
    await using p = await pair(transport, { duplicateUser: "replace" });
    const { b, ada } = p;
    const closed = once<CloseEvent>(ada, "close");
    await using again = new Client(b.url("ada"), { maxAttempts: 0 });
    await again.connect();
    assert.equal((await closed).code, 4009);
    assert.equal(again.state, "open");
  },
);

Deno.test("Cluster drops room and metadata changes of a user the sender did not announce", async () => {
  const hub = new MemoryHub();
  await using a = await instance(
    () => Promise.resolve(new MemoryPubSub({ hub })),
    "node-a",
  );
  await using bus = new MemoryPubSub({ hub });
  await using bob = new Client(a.url("bob"), { maxAttempts: 0 });
  await bob.connect();
  const invalid = a.cluster.stats.invalid;
  const send = (envelope: Record<string, unknown>) =>
    bus.publish(
      "duplex:all",
      JSON.stringify({ v: 2, node: "mallory", ...envelope }),
    );
  // Mallory claims that bob (a user of node-a) joined a room, and sets his
  // metadata; then announces a user of its own, which A does take.
  await send({ kind: "room", user: "bob", room: "lobby", in: true });
  await send({ kind: "meta", user: "bob", meta: { status: "hacked" } });
  const probe = joinedEvent(a.cluster, "probe");
  await send({ kind: "join", user: "probe" });
  await probe;
  assert.deepEqual(a.server.members("lobby"), []);
  assert.equal(a.cluster.stats.invalid, invalid + 2);
  assert.equal(a.cluster.stats.received > 0, true);
});
