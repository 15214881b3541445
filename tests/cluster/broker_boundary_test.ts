/**
 * The broker is a boundary: one test per abuse of a publisher that is not a
 * real instance (forged sender, non-frame, uncapped TTL, forged goodbye,
 * 20,000-user heartbeat, oversized envelope), signing, deadlines, the
 * outcome-unknown error, the per-asker quota, and the clean start. Real
 * redis-server where the transport matters, MemoryPubSub where it does not.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  Cluster,
  type ClusterOptions,
  type LocalNode,
  type PresenceDetail,
  type Push,
  type UserRequestOptions,
} from "../../src/cluster/cluster.ts";
import { MemoryHub, MemoryPubSub } from "../../src/cluster/memory_pubsub.ts";
import {
  type BrokerLogger,
  BrokerOutcomeUnknownError,
  type PubSub,
} from "../../src/cluster/pubsub.ts";
import { TooManyPendingError } from "../../src/wire/errors.ts";
import { DuplexServer } from "../../src/server/duplex_server.ts";
import { RedisPubSub } from "../../redis.ts";
import { deadline, once } from "../_helpers.ts";
import { type RedisServer, redisTest } from "../_redis.ts";

// 15 heartbeats per TTL: a live member stalled by CI load must not expire.
const FAST: ClusterOptions = { heartbeatInterval: 20, presenceTtl: 300 };
const SECRET = "a test secret of 32 characters!!";

/** A local node that records deliveries and requests. */
class Node implements LocalNode {
  readonly deliveries: Push[] = [];
  readonly asked: unknown[] = [];
  answer: (message: unknown) => Promise<unknown> = (message) =>
    Promise.resolve(message);
  #waiters: Array<{ data: string; resolve: () => void }> = [];

  deliver(push: Push): void {
    this.deliveries.push(push);
    for (const waiter of this.#waiters.filter((w) => w.data === push.data)) {
      waiter.resolve();
    }
  }

  request(
    _user: string,
    message: unknown,
    _options: UserRequestOptions,
  ): Promise<unknown> {
    this.asked.push(message);
    return this.answer(message);
  }

  /** Waits until a push with `data` was delivered. */
  delivered(data: string): Promise<void> {
    if (this.deliveries.some((push) => push.data === data)) {
      return Promise.resolve();
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ data, resolve });
    return deadline(promise, 3_000, `delivery of ${data}`);
  }
}

/** One instance of a test cluster. */
interface Member {
  bus: PubSub;
  cluster: Cluster;
  node: Node;
}

/** Starts `ids.length` instances on transports from `makeBus`. */
async function members(
  makeBus: () => PubSub,
  ids: string[],
  options: ClusterOptions = {},
): Promise<Member[] & AsyncDisposable> {
  const list: Member[] = [];
  const disposable = Object.assign(list, {
    async [Symbol.asyncDispose](): Promise<void> {
      for (const { cluster } of list) await cluster.close();
      for (const { bus } of list) await bus.close();
    },
  });
  for (const id of ids) {
    const bus = makeBus();
    if (bus instanceof RedisPubSub) await deadline(bus.ready(), 5_000, "redis");
    const node = new Node();
    const cluster = new Cluster(bus, { ...FAST, id, node, ...options });
    list.push({ bus, cluster, node });
  }
  for (const [i, { cluster }] of list.entries()) {
    await cluster.start();
    // Each earlier instance sees this one: it announces a probe user.
    const probe = `probe-${cluster.id}`;
    const others = list.slice(0, i).map((member) => member.cluster);
    const seen = others.map((other) => presence(other, "join", probe));
    cluster.addLocalUser(probe);
    await Promise.all(seen);
    const gone = others.map((other) => presence(other, "leave", probe));
    cluster.removeLocalUser(probe);
    await Promise.all(gone);
  }
  return disposable;
}

/** Waits for a presence event about `user`. */
function presence(
  cluster: Cluster,
  type: "join" | "leave",
  user: string,
  ms = 3_000,
): Promise<PresenceDetail> {
  const { promise, resolve } = Promise.withResolvers<PresenceDetail>();
  const listener = (event: CustomEvent<PresenceDetail>) => {
    if (event.detail.user === user) resolve(event.detail);
  };
  cluster.addEventListener(type, listener);
  return deadline(promise, ms, `${type} of ${user}`).finally(() =>
    cluster.removeEventListener(type, listener)
  );
}

/** A notify frame as a server encodes it. */
function frame(message: string, from?: string, method?: string): string {
  return JSON.stringify({ sequence: 0, type: 3, message, method, from });
}

/** A raw envelope of version 2. */
function raw(node: string, fields: Record<string, unknown>): string {
  return JSON.stringify({ v: 2, node, ...fields });
}

/** A push that every instance delivers: sent after the abuse, it proves the
 * abuse was processed (one publisher's messages arrive in order). */
async function marker(bus: PubSub, node: string, name: string): Promise<void> {
  await bus.publish(
    "duplex:all",
    raw(node, { kind: "push", data: frame(name) }),
  );
}

function fastRedis(redis: RedisServer, logger?: BrokerLogger) {
  return {
    url: redis.url,
    logger,
    reconnectDelay: 10,
    maxReconnectDelay: 40,
    minUptime: 0,
    publishTimeout: 1_000,
  };
}

function recorder(): BrokerLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (line) => lines.push(line),
    warn: (line) => lines.push(line),
    error: (line) => lines.push(line),
  };
}

redisTest(
  "Cluster drops a push from a user its sender did not announce (forged sender)",
  async (redis) => {
    await using list = await members(
      () => new RedisPubSub(fastRedis(redis)),
      ["node-a", "node-b"],
    );
    const [a, b] = list;
    const joined = presence(b.cluster, "join", "alice");
    a.cluster.addLocalUser("alice");
    await joined;
    await using forger = new RedisPubSub(fastRedis(redis));
    await deadline(forger.ready(), 5_000, "forger");
    // A publisher that is no instance, and one that is an instance but not
    // alice's, both claim a message from alice.
    for (const node of ["evil", "node-b"]) {
      await forger.publish(
        "duplex:all",
        raw(node, {
          kind: "push",
          data: frame(`forged by ${node}`, "alice", "chat.message"),
          extended: true,
        }),
      );
    }
    await marker(forger, "evil", "after");
    await a.node.delivered(frame("after"));
    assert.equal(a.node.deliveries.length, 1); // Only the marker.
    assert.equal(a.cluster.stats.forged, 2);
    // The instance that announced alice speaks for her.
    a.cluster.publish({
      data: frame("real", "alice", "chat.message"),
      extended: true,
    });
    await b.node.delivered(frame("real", "alice", "chat.message"));
    assert.equal(b.cluster.stats.forged, 1); // "evil"; its own echo is skipped.
  },
);

Deno.test("Cluster never hands a client anything but a notify frame (non-frames)", async () => {
  const hub = new MemoryHub();
  await using list = await members(() => new MemoryPubSub({ hub }), ["a"]);
  const [a] = list;
  await using bus = new MemoryPubSub({ hub });
  const bad = [
    "<script>alert(1)</script>",
    "[3]",
    JSON.stringify({ sequence: 1, type: 1, method: "x" }), // A request.
    JSON.stringify({ sequence: 0, type: 3, message: "x", extra: true }),
    JSON.stringify({ sequence: -1, type: 3 }),
    JSON.stringify({ sequence: 0, type: 3, from: 7 }),
    frame("method but not extended", undefined, "m"), // Would reach v0 clients.
  ];
  for (const data of bad) {
    await bus.publish("duplex:all", raw("x", { kind: "push", data }));
  }
  await bus.publish(
    "duplex:all",
    raw("x", { kind: "push", data: frame("not extended"), extended: true }),
  );
  // Padding and duplicate keys are re-encoded away.
  await bus.publish(
    "duplex:all",
    raw("x", {
      kind: "push",
      data: ' {"type":3, "sequence":0,"message":"padded","message":"last"} ',
    }),
  );
  await marker(bus, "x", "after");
  await a.node.delivered(frame("after"));
  assert.deepEqual(a.node.deliveries.map((push) => push.data), [
    JSON.stringify({ sequence: 0, type: 3, message: "last" }),
    frame("after"),
  ]);
  assert.equal(a.cluster.stats.invalid, bad.length + 1);
});

Deno.test("Cluster caps the TTL a heartbeat asks for (no ghost user forever)", async () => {
  const hub = new MemoryHub();
  await using list = await members(
    () => new MemoryPubSub({ hub }),
    ["a"],
    { presenceTtl: 60, maxPresenceTtl: 100 },
  );
  const [a] = list;
  await using bus = new MemoryPubSub({ hub });
  const joined = presence(a.cluster, "join", "ghost");
  await bus.publish(
    "duplex:all",
    raw("ghost-node", { kind: "hb", users: ["ghost"], ttl: 1e15 }),
  );
  await joined;
  const started = performance.now();
  const left = await presence(a.cluster, "leave", "ghost");
  assert.equal(left.reason, "expired");
  assert.ok(performance.now() - started < 1_000);
  assert.equal(a.cluster.stats.expired, 1);
  assert.throws(
    () => new Cluster(bus, { presenceTtl: 200, maxPresenceTtl: 100 }),
    RangeError,
  );
});

redisTest(
  "Cluster with a secret ignores a forged goodbye and replays; without it, the next heartbeat restores the users",
  async (redis) => {
    const logger = recorder();
    await using list = await members(
      () => new RedisPubSub(fastRedis(redis)),
      ["node-a", "node-b"],
      { secret: SECRET, logger },
    );
    const [a, b] = list;
    await using forger = new RedisPubSub(fastRedis(redis));
    await deadline(forger.ready(), 5_000, "forger");
    const captured: string[] = [];
    const capturedJoin = Promise.withResolvers<string>();
    await forger.subscribe("duplex:all", (data) => {
      captured.push(data);
      if (data.includes('"kind":"join"')) capturedJoin.resolve(data);
    });
    const joined = presence(a.cluster, "join", "bob");
    b.cluster.addLocalUser("bob");
    await joined;
    const join = await deadline(capturedJoin.promise, 3_000, "signed join");
    assert.match(join, /,"sig":"[A-Za-z0-9_-]{43}"\}$/);

    // A goodbye in node-b's name, unsigned and with a made-up signature.
    await forger.publish("duplex:all", raw("node-b", { kind: "bye" }));
    await forger.publish(
      "duplex:all",
      `${
        raw("node-b", { kind: "bye", seq: Date.now() * 1000 }).slice(0, -1)
      },"sig":"${"A".repeat(43)}"}`,
    );
    // node-b's own signed join, replayed on its channel and on another one.
    await forger.publish("duplex:all", join);
    await forger.publish("duplex:node:node-a", join);
    // A push through node-b proves the forgeries were processed.
    const left = presence(a.cluster, "leave", "bob", 60_000);
    b.cluster.publish({ data: frame("after"), extended: false });
    await a.node.delivered(frame("after"));
    assert.equal(a.cluster.isOnline("bob"), true);
    assert.equal(a.cluster.stats.unauthenticated, 3); // 2 byes + other channel.
    assert.equal(a.cluster.stats.replayed, 1);
    assert.ok(
      logger.lines.some((line) => /no valid signature/.test(line)),
      logger.lines.join("\n"),
    );
    b.cluster.removeLocalUser("bob");
    assert.equal((await left).reason, "leave");

    // Without a secret a forged goodbye is believed, and undone by the next
    // heartbeat of the real instance (see SECURITY.md).
    await using open = await members(
      () => new RedisPubSub(fastRedis(redis)),
      ["open-a", "open-b"],
      { prefix: "open:" },
    );
    const [c, d] = open;
    const carol = presence(c.cluster, "join", "carol");
    d.cluster.addLocalUser("carol");
    await carol;
    const gone = presence(c.cluster, "leave", "carol");
    await forger.publish("open:all", raw("open-b", { kind: "bye" }));
    assert.equal((await gone).reason, "goodbye");
    const back = await presence(c.cluster, "join", "carol");
    assert.equal(back.reason, "heartbeat");
  },
);

Deno.test("Cluster refuses a 20,000-user heartbeat: no presence event at all", async () => {
  const hub = new MemoryHub();
  await using list = await members(() => new MemoryPubSub({ hub }), ["a"]);
  const [a] = list;
  let joins = 0;
  a.cluster.addEventListener("join", () => joins++);
  await using bus = new MemoryPubSub({ hub });
  const users = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);
  await bus.publish("duplex:all", raw("big", { kind: "hb", users, ttl: 60 }));
  await marker(bus, "x", "after");
  await a.node.delivered(frame("after"));
  assert.equal(joins, 0);
  assert.equal(a.cluster.stats.invalid, 1);
  assert.deepEqual(a.cluster.online(), []);

  // One join at a time, the cap holds too; and the instances are capped.
  await using capped = await members(
    () => new MemoryPubSub({ hub }),
    ["c"],
    { maxUsersPerInstance: 2, maxInstances: 1, prefix: "capped:" },
  );
  const [c] = capped;
  await using bus2 = new MemoryPubSub({ hub });
  for (let i = 0; i < 3; i++) {
    await bus2.publish(
      "capped:all",
      raw("one", { kind: "join", user: `u${i}` }),
    );
  }
  await bus2.publish("capped:all", raw("two", { kind: "join", user: "v" }));
  await bus2.publish(
    "capped:all",
    raw("x", { kind: "push", data: frame("after") }),
  );
  await c.node.delivered(frame("after"));
  assert.deepEqual(c.cluster.online(), ["u0", "u1"]);
  assert.equal(c.cluster.stats.invalid, 2);
});

Deno.test("Cluster drops an oversized envelope before parsing it, and never sends one", async () => {
  const hub = new MemoryHub();
  await using list = await members(
    () => new MemoryPubSub({ hub }),
    ["a", "b"],
    { maxEnvelopeSize: 4_096 },
  );
  const [a, b] = list;
  await using bus = new MemoryPubSub({ hub });
  const big = "é".repeat(2_100); // 4,200 bytes of UTF-8 in 2,100 characters.
  await bus.publish("duplex:all", raw("x", { kind: "push", data: frame(big) }));
  await marker(bus, "x", "after");
  await a.node.delivered(frame("after"));
  assert.equal(a.node.deliveries.length, 1);
  assert.equal(a.cluster.stats.oversized, 1);
  assert.equal(a.cluster.stats.invalid, 1);

  // Sending: a push is delivered locally and reported, not published.
  const error = once(a.cluster, "error");
  a.cluster.publish({ data: frame(big), extended: false });
  assert.match(
    String((await error as ErrorEvent).message),
    /exceed maxEnvelopeSize 4096/,
  );
  assert.equal(a.node.deliveries.length, 2);
  const joined = presence(a.cluster, "join", "bob");
  b.cluster.addLocalUser("bob");
  await joined;
  await assert.rejects(a.cluster.request("bob", big), RangeError);
  assert.deepEqual(b.node.asked, []);
  assert.equal(b.cluster.stats.oversized, 1); // The forger's, not a's.
});

Deno.test("Cluster drops its own echo before parsing it", async () => {
  const hub = new MemoryHub();
  await using list = await members(() => new MemoryPubSub({ hub }), ["a"]);
  const [a] = list;
  await using bus = new MemoryPubSub({ hub });
  // Not even JSON, but it starts as a's own messages do: never parsed.
  await bus.publish("duplex:all", '{"v":2,"node":"a",garbage');
  // Another formatting of a's id is parsed, and refused.
  await bus.publish("duplex:all", '{"node":"a","v":2,"kind":"bye"}');
  await marker(bus, "x", "after");
  await a.node.delivered(frame("after"));
  assert.equal(a.cluster.stats.invalid, 1);
});

Deno.test("Cluster drops a request that arrives after its deadline, unanswered", async () => {
  const hub = new MemoryHub();
  await using list = await members(() => new MemoryPubSub({ hub }), ["a"]);
  const [a] = list;
  a.cluster.addLocalUser("bob");
  await using bus = new MemoryPubSub({ hub });
  const answers: string[] = [];
  await bus.subscribe("duplex:node:asker", (data) => answers.push(data));
  const ask = (id: number, deadline: number) =>
    bus.publish(
      "duplex:node:a",
      raw("asker", {
        kind: "req",
        id,
        user: "bob",
        message: id,
        timeout: 1_000,
        deadline,
      }),
    );
  await ask(1, Date.now() - 1);
  await ask(2, Date.now() + 10_000);
  const answered = Promise.withResolvers<void>();
  await bus.subscribe("duplex:node:asker", () => answered.resolve());
  await deadline(answered.promise, 3_000, "answer");
  assert.deepEqual(a.node.asked, [2]);
  assert.equal(answers.length, 1);
  assert.match(answers[0], /"kind":"res","id":2/);
  assert.equal(a.cluster.stats.late, 1);
});

redisTest(
  "Cluster.request() whose publish times out rejects with BrokerOutcomeUnknownError; the late request is not run",
  async (redis) => {
    await using list = await members(
      () => new RedisPubSub({ ...fastRedis(redis), publishTimeout: 100 }),
      ["node-a", "node-b"],
      // Presence outlives the pause: the request must find bob.
      { heartbeatInterval: 1_000, presenceTtl: 5_000 },
    );
    const [a, b] = list;
    const joined = presence(a.cluster, "join", "bob");
    b.cluster.addLocalUser("bob");
    await joined;
    const down = once(a.bus, "down");
    redis.pause(true);
    await assert.rejects(
      a.cluster.request("bob", "while wedged", { timeout: 200 }),
      (error: unknown) => {
        assert.ok(error instanceof BrokerOutcomeUnknownError);
        assert.equal(error.code, "OUTCOME_UNKNOWN");
        return true;
      },
    );
    assert.equal(a.cluster.stats.outcomeUnknown, 1);
    await down;
    // Nothing could be sent at all: that is BrokerUnavailableError.
    await assert.rejects(
      a.cluster.request("bob", "while down"),
      (error: unknown) =>
        error instanceof Error && error.name === "BrokerUnavailableError",
    );
    // What is tested is time passing: the request's deadline (200 ms after
    // it was sent) passes while Redis is still stopped.
    await new Promise((resolve) => setTimeout(resolve, 250));
    const up = once(a.bus, "up", 10_000);
    redis.pause(false);
    await up;
    await deadline((a.bus as RedisPubSub).ready(), 5_000, "a");
    await deadline((b.bus as RedisPubSub).ready(), 5_000, "b");
    a.cluster.publish({ data: frame("after"), extended: false });
    await b.node.delivered(frame("after"));
    // The wedged PUBLISH reached node-b after all, past its deadline.
    assert.equal(b.cluster.stats.late, 1);
    assert.deepEqual(b.node.asked, []);
  },
);

Deno.test("Cluster.request() holds a quota per asker: one asker cannot starve the others", async () => {
  const hub = new MemoryHub();
  await using list = await members(
    () => new MemoryPubSub({ hub }),
    ["a", "b"],
    { maxPendingPerAsker: 3, maxPending: 10 },
  );
  const [a, b] = list;
  const joined = presence(a.cluster, "join", "bob");
  b.cluster.addLocalUser("bob");
  await joined;
  const never = Promise.withResolvers<unknown>();
  b.node.answer = (message) =>
    message === "greedy" ? never.promise : Promise.resolve(`ok ${message}`);
  const controller = new AbortController();
  const greedy = Array.from(
    { length: 3 },
    () =>
      a.cluster.request("bob", "greedy", {
        from: "mallory",
        signal: controller.signal,
      }).catch((error: unknown) => error),
  );
  await assert.rejects(
    a.cluster.request("bob", "greedy", { from: "mallory" }),
    TooManyPendingError,
  );
  assert.equal(
    await a.cluster.request("bob", "polite", { from: "alice" }),
    "ok polite",
  );
  assert.equal(await a.cluster.request("bob", "server"), "ok server");
  controller.abort(new Error("enough"));
  for (const result of await Promise.all(greedy)) {
    assert.equal((result as Error).message, "enough");
  }
  // The quota is free again.
  b.node.answer = (message) => Promise.resolve(`ok ${message}`);
  assert.equal(
    await a.cluster.request("bob", "again", { from: "mallory" }),
    "ok again",
  );
  never.resolve(undefined);
});

redisTest(
  "Cluster.start() before Redis is connected logs no publish failure and announces itself once up",
  async (redis) => {
    const logger = recorder();
    await using other = await members(
      () => new RedisPubSub(fastRedis(redis)),
      ["node-b"],
    );
    const [b] = other;
    await using bus = new RedisPubSub(fastRedis(redis, logger));
    await using cluster = new Cluster(bus, { ...FAST, id: "node-a", logger });
    cluster.addLocalUser("ada");
    assert.equal(bus.connected, false);
    const joined = presence(b.cluster, "join", "ada");
    await cluster.start();
    await joined;
    assert.equal(cluster.stats.publishFailed, 0);
    assert.ok(
      !logger.lines.some((line) => /cannot publish/.test(line)),
      logger.lines.join("\n"),
    );
    assert.ok(
      logger.lines.some((line) => /broker up; announcing/.test(line)),
      logger.lines.join("\n"),
    );
  },
);

Deno.test("Cluster with a secret works between instances that share it, and not with others", async () => {
  const hub = new MemoryHub();
  await using list = await members(
    () => new MemoryPubSub({ hub }),
    ["a", "b"],
    { secret: SECRET },
  );
  const [a, b] = list;
  const joined = presence(a.cluster, "join", "bob");
  b.cluster.addLocalUser("bob");
  await joined;
  assert.equal(await a.cluster.request("bob", "hi"), "hi");
  a.cluster.publish({ data: frame("one"), extended: false });
  a.cluster.publish({ data: frame("two"), extended: false });
  await b.node.delivered(frame("two"));
  assert.deepEqual(b.node.deliveries.map((push) => push.data), [
    frame("one"),
    frame("two"),
  ]);
  await using stranger = await members(
    () => new MemoryPubSub({ hub }),
    ["s"],
    { secret: "another secret, also long enough" },
  );
  // A spy on the hub sees the stranger's push in the same dispatch as a.
  await using spy = new MemoryPubSub({ hub });
  const spied = Promise.withResolvers<void>();
  await spy.subscribe("duplex:all", (data) => {
    if (data.includes("stranger")) spied.resolve();
  });
  stranger[0].cluster.publish({ data: frame("stranger"), extended: false });
  await deadline(spied.promise, 3_000, "stranger's push");
  b.cluster.publish({ data: frame("after"), extended: false });
  await a.node.delivered(frame("after"));
  assert.equal(
    a.node.deliveries.some((p) => p.data === frame("stranger")),
    false,
  );
  assert.ok(a.cluster.stats.unauthenticated >= 1);
  assert.throws(
    () => new Cluster(new MemoryPubSub(), { secret: "short" }),
    RangeError,
  );
});

Deno.test("DuplexServer /metrics shows the cluster's counters", async () => {
  const hub = new MemoryHub();
  await using bus = new MemoryPubSub({ hub });
  await using cluster = new Cluster(bus, FAST);
  const server = new DuplexServer({ cluster });
  await cluster.start();
  await using forger = new MemoryPubSub({ hub });
  await forger.publish("duplex:all", "not json");
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  const response = await fetch(`http://127.0.0.1:${http.addr.port}/metrics`);
  const text = await response.text();
  assert.match(text, /^duplex_cluster_invalid_total 1$/m);
  assert.match(text, /^duplex_cluster_publish_failed_total 0$/m);
  assert.match(text, /^duplex_cluster_expired_instances_total 0$/m);
  await server.shutdown();
});
