import assert from "node:assert/strict";
import {
  Cluster,
  type ClusterOptions,
  type LocalNode,
  type PresenceDetail,
  type Push,
  type UserRequestOptions,
} from "../../src/cluster/cluster.ts";
import { RemoteError, RequestTimeoutError } from "../../src/wire/errors.ts";
import { MemoryHub, MemoryPubSub } from "../../src/cluster/memory_pubsub.ts";
import {
  type BrokerLogger,
  BrokerUnavailableError,
  type PubSub,
} from "../../src/cluster/pubsub.ts";
import { RedisPubSub } from "../../redis.ts";
import { NotConnectedError } from "../../src/cluster/not_connected_error.ts";
import { deadline, once } from "../_helpers.ts";
import { type RedisServer, redisTest } from "../_redis.ts";

/**
 * Test intervals: heartbeats every 20 ms, expiry after 300 ms. The TTL spans
 * 15 heartbeats so that a live instance stalled by a loaded CI machine (two
 * cores, tests in parallel) does not expire; a 60 ms TTL once let a survivor
 * expire twice mid-test.
 */
const FAST = {
  heartbeatInterval: 20,
  presenceTtl: 300,
} as const satisfies ClusterOptions;

type Handler = (
  message: unknown,
  options: UserRequestOptions,
) => unknown;

/** A LocalNode that records deliveries and answers with per-user handlers. */
class FakeNode implements LocalNode {
  readonly deliveries: Push[] = [];
  readonly handlers = new Map<string, Handler>();
  #waiters: Array<
    { match: (push: Push) => boolean; resolve: (push: Push) => void }
  > = [];

  deliver(push: Push): void {
    this.deliveries.push(push);
    const index = this.#waiters.findIndex((waiter) => waiter.match(push));
    if (index >= 0) this.#waiters.splice(index, 1)[0].resolve(push);
  }

  request(
    user: string,
    message: unknown,
    options: UserRequestOptions,
  ): Promise<unknown> {
    const handler = this.handlers.get(user);
    if (handler === undefined) {
      return Promise.reject(new NotConnectedError(user));
    }
    return Promise.resolve().then(() => handler(message, options));
  }

  /** The next delivery matching `match` (already delivered ones count). */
  next(match: (push: Push) => boolean, what = "a delivery"): Promise<Push> {
    const found = this.deliveries.find(match);
    if (found !== undefined) return Promise.resolve(found);
    const { promise, resolve } = Promise.withResolvers<Push>();
    this.#waiters.push({ match, resolve });
    return deadline(promise, 3_000, what);
  }

  /** Deliveries whose data is `data`. */
  count(data: string): number {
    return this.deliveries.filter((push) => push.data === data).length;
  }
}

/** One instance: its transport, cluster and node. */
interface Instance {
  bus: PubSub;
  cluster: Cluster;
  node: FakeNode;
}

/** Makes the transport of one more instance. */
type BusFactory = () => PubSub;

/** A notify frame as the server would encode it. */
function frame(message: string, method?: string): string {
  return JSON.stringify({ sequence: 0, type: 3, message, method });
}

/** Waits for a presence event about `user` on `cluster`. */
function presence(
  cluster: Cluster,
  type: "join" | "leave",
  user: string,
  ms = 3_000,
): Promise<PresenceDetail> {
  const { promise, resolve } = Promise.withResolvers<PresenceDetail>();
  const listener = (event: CustomEvent<PresenceDetail>) => {
    if (event.detail.user !== user) return;
    cluster.removeEventListener(type, listener);
    resolve(event.detail);
  };
  cluster.addEventListener(type, listener);
  return deadline(promise, ms, `${type} of ${user}`).finally(() =>
    cluster.removeEventListener(type, listener)
  );
}

/** Starts `count` instances, in order, each knowing the earlier ones. */
async function startInstances(
  makeBus: BusFactory,
  count: number,
  options: ClusterOptions = {},
): Promise<Instance[] & AsyncDisposable> {
  const instances: Instance[] = [];
  const list = Object.assign(instances, {
    async [Symbol.asyncDispose](): Promise<void> {
      for (const { cluster } of instances) await cluster.close();
      for (const { bus } of instances) await bus.close();
    },
  });
  for (let i = 0; i < count; i++) {
    const bus = makeBus();
    const node = new FakeNode();
    const cluster = new Cluster(bus, {
      ...FAST,
      id: `node-${String.fromCharCode(97 + i)}`,
      node,
      ...options,
    });
    instances.push({ bus, cluster, node });
  }
  for (const { bus } of instances) {
    if (bus instanceof RedisPubSub) await deadline(bus.ready(), 5_000, "redis");
  }
  // Each start sends "sync"; the others answer with heartbeats. Wait until
  // every instance knows every other one.
  for (const { cluster } of instances) await cluster.start();
  for (const { cluster } of instances) {
    for (const other of instances) {
      if (other.cluster === cluster) continue;
      const probe = `probe-${other.cluster.id}-${cluster.id}`;
      const seen = presence(cluster, "join", probe);
      other.cluster.addLocalUser(probe);
      await seen;
      const gone = presence(cluster, "leave", probe);
      other.cluster.removeLocalUser(probe);
      await gone;
    }
  }
  return list;
}

/** Registers the transport-independent cluster tests. */
function clusterSuite(
  transport: string,
  register: (name: string, fn: (makeBus: BusFactory) => Promise<void>) => void,
): void {
  register(
    `Cluster.publish() reaches everyone, a room and all but one on every instance (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 3);
      const [a, b, c] = instances;
      a.cluster.publish({ data: frame("all"), extended: false });
      a.cluster.publish({
        data: frame("room", "news"),
        extended: true,
        room: "lobby",
      });
      a.cluster.publish({
        data: frame("others"),
        extended: false,
        except: "alice",
      });
      b.cluster.publish({ data: frame("marker-b"), extended: false });
      for (const { node } of [b, c]) {
        await node.next((push) => push.data === frame("others"), "others");
      }
      await a.node.next((push) => push.data === frame("marker-b"), "marker");
      await c.node.next((push) => push.data === frame("marker-b"), "marker");
      for (const { node } of instances) {
        assert.equal(node.count(frame("all")), 1);
        assert.equal(node.count(frame("room", "news")), 1);
        assert.equal(node.count(frame("others")), 1);
        assert.equal(node.count(frame("marker-b")), 1);
        assert.deepEqual(
          node.deliveries.find((push) => push.data === frame("room", "news")),
          { data: frame("room", "news"), extended: true, room: "lobby" },
        );
        assert.deepEqual(
          node.deliveries.find((push) => push.data === frame("others")),
          { data: frame("others"), extended: false, except: "alice" },
        );
      }
    },
  );

  register(
    `Cluster.publish() to a user reaches only the instances where the user is (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 3);
      const [a, b, c] = instances;
      const joined = presence(a.cluster, "join", "bob");
      b.cluster.addLocalUser("bob");
      await joined;
      a.cluster.publish({
        data: frame("to bob"),
        extended: false,
        user: "bob",
      });
      a.cluster.publish({
        data: frame("to nobody"),
        extended: false,
        user: "zed",
      });
      a.cluster.publish({ data: frame("marker"), extended: false });
      const push = await b.node.next((p) => p.data === frame("to bob"));
      assert.deepEqual(push, {
        data: frame("to bob"),
        extended: false,
        user: "bob",
      });
      await c.node.next((p) => p.data === frame("marker"));
      await b.node.next((p) => p.data === frame("marker"));
      assert.equal(c.node.count(frame("to bob")), 0);
      assert.equal(a.node.count(frame("to bob")), 0);
      assert.equal(b.node.count(frame("to nobody")), 0);
      // A user of this instance: delivered locally, at once.
      a.cluster.addLocalUser("alice");
      a.cluster.publish({
        data: frame("to alice"),
        extended: false,
        user: "alice",
      });
      assert.equal(a.node.count(frame("to alice")), 1);
    },
  );

  register(
    `Cluster.request() to a user on another instance resolves with the answer (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 3);
      const [a, b] = instances;
      b.node.handlers.set(
        "bob",
        (message, options) => ({
          doubled: (message as number) * 2,
          ...options,
          signal: undefined,
        }),
      );
      const joined = presence(a.cluster, "join", "bob");
      b.cluster.addLocalUser("bob");
      await joined;
      const answer = await a.cluster.request("bob", 21, {
        method: "double",
        from: "alice",
        timeout: 2_000,
      });
      // The local timeout is what is left before the asker's deadline.
      const { timeout, ...rest } = answer as { timeout: number };
      assert.deepEqual(rest, { doubled: 42, method: "double", from: "alice" });
      assert.ok(timeout > 0 && timeout <= 2_000, `timeout ${timeout}`);
      assert.equal(a.cluster.stats.requestsSent, 1);
      assert.equal(b.cluster.stats.requestsServed, 1);
      // A local user is asked directly.
      a.node.handlers.set("alice", () => "local");
      a.cluster.addLocalUser("alice");
      assert.equal(await a.cluster.request("alice", null), "local");
    },
  );

  register(
    `Cluster.request() rejects with the remote client's error (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 2);
      const [a, b] = instances;
      b.node.handlers.set("bob", () => {
        throw new RemoteError({
          code: "DECLINED",
          message: "No thanks",
          data: 7,
        });
      });
      b.node.handlers.set("carl", () => {
        throw new Error("secret detail");
      });
      const joined = Promise.all([
        presence(a.cluster, "join", "bob"),
        presence(a.cluster, "join", "carl"),
      ]);
      b.cluster.addLocalUser("bob");
      b.cluster.addLocalUser("carl");
      await joined;
      await assert.rejects(a.cluster.request("bob", "hi"), (error: unknown) => {
        assert.ok(error instanceof RemoteError);
        assert.equal(error.code, "DECLINED");
        assert.equal(error.message, "No thanks");
        assert.equal(error.data, 7);
        return true;
      });
      const failed = once(b.cluster, "error");
      await assert.rejects(
        a.cluster.request("carl", "hi"),
        (error: unknown) => {
          assert.ok(error instanceof RemoteError);
          assert.equal(error.code, "INTERNAL_ERROR");
          assert.ok(!error.message.includes("secret"));
          return true;
        },
      );
      await failed;
    },
  );

  register(
    `Cluster.request() rejects with NotConnectedError for a user connected nowhere (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 2);
      const [a, b] = instances;
      await assert.rejects(a.cluster.request("ghost", 1), (error: unknown) => {
        assert.ok(error instanceof NotConnectedError);
        assert.equal(error.code, "NOT_CONNECTED");
        return true;
      });
      // Announced on B, but B's server has no connection for it any more.
      const joined = presence(a.cluster, "join", "stale");
      b.cluster.addLocalUser("stale");
      await joined;
      await assert.rejects(a.cluster.request("stale", 1), NotConnectedError);
    },
  );

  register(
    `Cluster.request() times out and cancels the request on the other instance (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 2);
      const [a, b] = instances;
      const started = Promise.withResolvers<void>();
      const cancelled = Promise.withResolvers<unknown>();
      b.node.handlers.set(
        "slow",
        (_message, options) =>
          new Promise((_, reject) => {
            started.resolve();
            options.signal?.addEventListener("abort", () => {
              cancelled.resolve(options.signal?.reason);
              reject(options.signal?.reason);
            }, { once: true });
          }),
      );
      const joined = presence(a.cluster, "join", "slow");
      b.cluster.addLocalUser("slow");
      await joined;
      // The timeout leaves the request ample time to reach B: one that
      // arrives after its deadline is not run at all (and so is never
      // cancelled; broker_boundary_test.ts covers that path). A 30 ms
      // timeout once lost that race on a loaded CI machine.
      const timedOut = assert.rejects(
        a.cluster.request("slow", 1, { timeout: 400 }),
        (error: unknown) => {
          assert.ok(error instanceof RequestTimeoutError);
          assert.equal(error.code, "REQUEST_TIMEOUT");
          assert.equal(error.timeout, 400);
          return true;
        },
      );
      await deadline(started.promise, 3_000, "the request to reach B");
      await timedOut;
      const reason = await deadline(cancelled.promise, 3_000, "cancel");
      assert.equal((reason as { code?: string }).code, "CANCELLED");
      // An abort signal works the same way.
      const controller = new AbortController();
      const pending = a.cluster.request("slow", 2, {
        signal: controller.signal,
      });
      controller.abort(new Error("changed my mind"));
      await assert.rejects(pending, /changed my mind/);
    },
  );

  register(
    `Cluster presence: join and leave are cluster-wide (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 3);
      const [a, b, c] = instances;
      const joins = [a, c].map(({ cluster }) =>
        presence(cluster, "join", "bob")
      );
      const local = presence(b.cluster, "join", "bob");
      b.cluster.addLocalUser("bob");
      for (const detail of await Promise.all(joins)) {
        assert.deepEqual(detail, {
          user: "bob",
          instance: "node-b",
          reason: "join",
        });
      }
      assert.equal((await local).instance, "node-b");
      for (const { cluster } of instances) {
        assert.deepEqual(cluster.online(), ["bob"]);
        assert.deepEqual(cluster.locate("bob"), ["node-b"]);
      }
      // Bob also connects to C: no second join; he stays online until he
      // left both.
      const onC = Promise.withResolvers<void>();
      const located = (event: CustomEvent<PresenceDetail>) => {
        if (event.detail.user === "marker") onC.resolve();
      };
      a.cluster.addEventListener("join", located);
      c.cluster.addLocalUser("bob");
      c.cluster.addLocalUser("marker");
      await deadline(onC.promise, 3_000, "marker");
      a.cluster.removeEventListener("join", located);
      assert.deepEqual(a.cluster.locate("bob").sort(), ["node-b", "node-c"]);
      const left = [a, b, c].map(({ cluster }) =>
        presence(cluster, "leave", "bob")
      );
      b.cluster.removeLocalUser("bob");
      assert.equal(b.cluster.isOnline("bob"), true);
      c.cluster.removeLocalUser("bob");
      for (const detail of await Promise.all(left)) {
        assert.equal(detail.user, "bob");
        assert.equal(detail.reason, "leave");
      }
      for (const { cluster } of instances) {
        assert.equal(cluster.isOnline("bob"), false);
      }
      assert.equal(b.cluster.removeLocalUser("bob"), false);
    },
  );

  register(
    `Cluster learns the users of running instances when it starts (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 1);
      const [a] = instances;
      a.cluster.addLocalUser("early");
      const busB = makeBus();
      if (busB instanceof RedisPubSub) {
        await deadline(busB.ready(), 5_000, "redis");
      }
      const b = new Cluster(busB, { ...FAST, id: "node-late" });
      instances.push({ bus: busB, cluster: b, node: new FakeNode() });
      const learned = presence(b, "join", "early");
      await b.start();
      const detail = await learned;
      assert.equal(detail.instance, a.cluster.id);
      assert.equal(detail.reason, "heartbeat");
      assert.deepEqual(b.instances(), ["node-late", "node-a"]);
    },
  );

  register(
    `Cluster drops the users of an instance whose heartbeats stop, within the TTL (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 3);
      const [a, b, c] = instances;
      const joined = [a, b].map(({ cluster }) =>
        presence(cluster, "join", "carol")
      );
      c.cluster.addLocalUser("carol");
      await Promise.all(joined);
      const started = performance.now();
      const expired = [a, b].map(({ cluster }) =>
        presence(cluster, "leave", "carol")
      );
      // Simulated death: the transport goes away without a goodbye.
      await c.bus.close();
      for (const detail of await Promise.all(expired)) {
        assert.deepEqual(detail, {
          user: "carol",
          instance: "node-c",
          reason: "expired",
        });
      }
      const elapsed = performance.now() - started;
      // TTL + one sweep interval, plus scheduling slack; and not long before
      // the TTL (c's last heartbeat may precede `started` by a stall).
      const { heartbeatInterval, presenceTtl } = FAST;
      assert.ok(
        elapsed < presenceTtl + heartbeatInterval + 200,
        `took ${elapsed} ms`,
      );
      assert.ok(
        elapsed >= presenceTtl / 2,
        `took ${elapsed} ms`,
      );
      assert.deepEqual(a.cluster.online(), []);
      assert.equal(a.cluster.stats.expired, 1);
      assert.deepEqual(a.cluster.instances(), ["node-a", "node-b"]);
      // The dead instance's cluster fails to publish, quietly.
      await c.cluster.close();
    },
  );

  register(
    `Cluster.close() says goodbye: the others drop its users at once (${transport})`,
    async (makeBus) => {
      await using instances = await startInstances(makeBus, 2);
      const [a, b] = instances;
      const joined = presence(a.cluster, "join", "bob");
      b.cluster.addLocalUser("bob");
      await joined;
      const left = presence(a.cluster, "leave", "bob");
      await b.cluster.close();
      assert.equal((await left).reason, "goodbye");
      await assert.rejects(b.cluster.request("bob", 1), /cluster closed/);
      await assert.rejects(b.cluster.start(), TypeError);
    },
  );
}

clusterSuite("memory", (name, fn) => {
  Deno.test(name, async () => {
    const hub = new MemoryHub();
    await fn(() => new MemoryPubSub({ hub }));
  });
});

clusterSuite("redis", (name, fn) => {
  redisTest(name, async (redis) => {
    await fn(() => new RedisPubSub(fastRedis(redis)));
  });
});

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

Deno.test("Cluster counts and drops invalid envelopes", async () => {
  const hub = new MemoryHub();
  await using instances = await startInstances(
    () => new MemoryPubSub({ hub }),
    1,
  );
  const [a] = instances;
  const lines: string[] = [];
  await using raw = new MemoryPubSub({ hub });
  const logged = new Cluster(new MemoryPubSub({ hub }), {
    ...FAST,
    id: "logged",
    logger: {
      info: () => {},
      warn: (line) => lines.push(line),
      error: (line) => lines.push(line),
    },
  });
  await logged.start();
  for (
    const text of [
      "not json",
      "[1]",
      JSON.stringify({ v: 3, kind: "push", node: "x", data: "{}" }),
      JSON.stringify({ v: 2, kind: "push", node: "x" }),
      JSON.stringify({ v: 2, kind: "hb", node: "x", users: [1], ttl: 5 }),
      JSON.stringify({ v: 2, kind: "push" }),
    ]
  ) {
    await raw.publish("duplex:all", text);
  }
  await raw.publish(
    "duplex:all",
    JSON.stringify({ v: 2, kind: "future", node: "x" }),
  );
  const marker = a.node.next((push) => push.data === frame("after"));
  await raw.publish(
    "duplex:all",
    JSON.stringify({ v: 2, kind: "push", node: "x", data: frame("after") }),
  );
  await marker;
  assert.equal(a.cluster.stats.invalid, 6);
  assert.equal(logged.stats.invalid, 6);
  assert.ok(lines.some((line) => line.includes("version 3")), lines.join("\n"));
  await logged.close();
});

Deno.test("Cluster.request() to an instance that dies rejects with NotConnectedError", async () => {
  const hub = new MemoryHub();
  await using instances = await startInstances(
    () => new MemoryPubSub({ hub }),
    2,
  );
  const [a, b] = instances;
  b.node.handlers.set("bob", () => new Promise(() => {}));
  const joined = presence(a.cluster, "join", "bob");
  b.cluster.addLocalUser("bob");
  await joined;
  const pending = a.cluster.request("bob", 1, { timeout: 0 });
  await b.bus.close();
  await assert.rejects(pending, (error: unknown) => {
    assert.ok(error instanceof NotConnectedError);
    assert.match(error.message, /instance node-b left/);
    return true;
  });
});

Deno.test("Cluster() rejects invalid options", () => {
  const bus = new MemoryPubSub();
  assert.throws(() => new Cluster(bus, { heartbeatInterval: 0 }), RangeError);
  assert.throws(
    () => new Cluster(bus, { heartbeatInterval: 100, presenceTtl: 100 }),
    RangeError,
  );
  assert.throws(() => new Cluster(bus, { id: "" }), RangeError);
});

redisTest(
  "Cluster keeps local delivery during a Redis outage and resyncs after it",
  async (redis) => {
    const lines: string[] = [];
    const logger: BrokerLogger = {
      info: (line) => lines.push(line),
      warn: (line) => lines.push(line),
      error: (line) => lines.push(line),
    };
    await using instances = await startInstances(
      () => new RedisPubSub(fastRedis(redis)),
      2,
      { logger },
    );
    const [a, b] = instances;
    const joined = presence(a.cluster, "join", "bob");
    b.cluster.addLocalUser("bob");
    await joined;

    const downs = Promise.all([once(a.bus, "down"), once(b.bus, "down")]);
    // Reported once per outage (by the first failed publish).
    const failed = once(a.cluster, "error");
    await redis.stop();
    await downs;
    // Local delivery is unaffected; the remote copy is dropped and counted.
    a.cluster.publish({ data: frame("during"), extended: false });
    assert.equal(a.node.count(frame("during")), 1);
    await failed;
    assert.ok(a.cluster.stats.publishFailed >= 1);
    await assert.rejects(a.cluster.request("bob", 1), BrokerUnavailableError);
    // Presence is frozen while the broker is down: bob stays listed.
    assert.equal(a.cluster.isOnline("bob"), true);

    const ups = Promise.all([once(a.bus, "up"), once(b.bus, "up")]);
    await redis.restart();
    await ups;
    a.cluster.publish({ data: frame("after"), extended: false });
    await b.node.next((push) => push.data === frame("after"), "after");
    assert.equal(b.node.count(frame("during")), 0);
    b.node.handlers.set("bob", () => "back");
    assert.equal(await a.cluster.request("bob", 1), "back");
    assert.ok(
      lines.some((line) => line.includes("broker down")),
      lines.join("\n"),
    );
    assert.ok(
      lines.some((line) => line.includes("resyncing")),
      lines.join("\n"),
    );
  },
);
