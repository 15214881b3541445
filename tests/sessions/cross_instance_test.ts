import assert from "node:assert/strict";
import { type Client, OutcomeUnknownError } from "../../client.ts";
import { binaryCodec } from "../../binary.ts";
import { DuplexServer } from "../../server.ts";
import { RedisSessionStore } from "../../redis.ts";
import { listen } from "../_server_helpers.ts";
import { type RedisServer, redisTest } from "../_redis.ts";
import { deadline, once } from "../_helpers.ts";
import { behindProxy } from "./_session_helpers.ts";

/** Two instances on one Redis behind a round-robin balancer. */
function pair(redis: RedisServer, grace = 30_000) {
  const counts = new Map<string, number>();
  const gates: PromiseWithResolvers<string>[] = [];
  /** Resolved when the first `hang` handler starts. */
  const hangStarted = Promise.withResolvers<void>();
  const instances = ["a", "b"].map((name) => {
    const store = new RedisSessionStore({ url: redis.url });
    const server = new DuplexServer({
      codecs: [binaryCodec],
      sessions: { store, grace, handoverTimeout: 3_000 },
    });
    server.handle("work", (n: number) => {
      counts.set(`${n}`, (counts.get(`${n}`) ?? 0) + 1);
      return `${name}:${n}`;
    });
    server.handle("hang", () => {
      const gate = Promise.withResolvers<string>();
      gates.push(gate);
      hangStarted.resolve();
      return gate.promise;
    });
    server.handle("join", (room: string, context) => {
      server.join(room, context.from);
      return server.roomsOf(context.from);
    });
    const http = listen(server);
    return { name, server, http, store };
  });
  const cluster = behindProxy(instances);
  return {
    ...cluster,
    counts,
    gates,
    hangStarted: hangStarted.promise,
    async [Symbol.asyncDispose]() {
      for (const gate of gates) gate.resolve("late");
      await cluster[Symbol.asyncDispose]();
    },
  };
}

function resumed(client: Client): Promise<Event & { inDoubt: number }> {
  return deadline(
    once(client, "resumed") as Promise<Event & { inDoubt: number }>,
    10_000,
    "resumed",
  );
}

redisTest(
  "RedisSessionStore: a session resumes on another instance with its rooms and buffered pushes",
  async (redis) => {
    await using setup = pair(redis);
    const [a, b] = setup.instances;
    const client = setup.client("ada");
    await client.connect();
    // Round robin: the first connection went to a.
    assert.equal(await client.call("work", 1), "a:1");
    assert.deepEqual(await client.call("join", "lobby"), ["lobby"]);
    const ticks: number[] = [];
    client.on("tick", (n: number) => ticks.push(n));
    const back = resumed(client);
    // Pushes while the client is away from a are stored, then it lands on b.
    setup.proxy.cutAll("rst");
    for (let n = 0; n < 5; n++) {
      a.server.notify(n, { to: "ada", method: "tick" });
    }
    const event = await back;
    assert.equal(event.inDoubt, 0);
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(b.server.roomsOf("ada"), ["lobby"]);
    const pushed = Promise.withResolvers<void>();
    client.on("tick", (n: number) => n === 99 && pushed.resolve());
    b.server.notify(99, { room: "lobby", method: "tick" });
    await deadline(pushed.promise, 5_000, "room push on b");
    assert.deepEqual(ticks, [0, 1, 2, 3, 4, 99]);
    assert.deepEqual([...setup.counts.values()], [1, 1]);
    assert.equal(b.server.sessionMetrics.takenOver, 1);
  },
);

for (
  const [wire, options, params] of [
    ["JSON", {}, null],
    // Bytes in the params: the request travels as a binary frame.
    ["binary-codec", { codec: binaryCodec }, new Uint8Array([1, 2, 3])],
  ] as const
) {
  redisTest(
    `RedisSessionStore: a ${wire} request of an instance that died is in doubt, never run twice; the others go on`,
    async (redis) => {
      await using setup = pair(redis);
      const [a, b] = setup.instances;
      const client = setup.client(`in-doubt-${wire}`, options);
      await client.connect();
      if (wire === "binary-codec") {
        assert.equal(client.protocol, "duplex.v1.bin");
      }
      assert.equal(await client.call("work", 1), "a:1");
      const hung = client.call("hang", params);
      hung.catch(() => {});
      await deadline(setup.hangStarted, 5_000, "the handler to start");
      // a "dies": it can no longer write to the store, and is unreachable.
      await a.store.close();
      setup.proxy.targets = [b.http.addr.port];
      const back = resumed(client);
      setup.proxy.cutAll("rst");
      const event = await back;
      assert.equal(event.inDoubt, 1);
      await assert.rejects(hung, OutcomeUnknownError);
      assert.equal(await client.call("work", 2), "b:2");
      assert.equal(setup.gates.length, 1);
      assert.deepEqual([...setup.counts.values()], [1, 1]);
    },
  );
}

redisTest(
  "RedisSessionStore: a shutdown hands sessions over: the running handler answers, no offline or online",
  async (redis) => {
    await using setup = pair(redis);
    const [a, b] = setup.instances;
    const client = setup.client("cy");
    await client.connect();
    assert.equal(await client.call("work", 1), "a:1");
    await client.call("join", "lobby");
    const presence: string[] = [];
    for (const { name, server } of setup.instances) {
      for (const type of ["online", "offline", "expire"]) {
        server.addEventListener(type, () => presence.push(`${name}:${type}`));
      }
    }
    const slow = client.call("hang");
    await deadline(setup.hangStarted, 5_000, "the handler to start");
    const back = resumed(client);
    const down = a.server.shutdown();
    // The handler finishes while a drains; its answer reaches the client on b.
    setTimeout(() => setup.gates[0].resolve("done"), 50);
    const event = await back;
    assert.equal(event.inDoubt, 0);
    assert.equal(await slow, "done");
    await down;
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(b.server.roomsOf("cy"), ["lobby"]);
    // b took the user over before a let it go: b's `online` only, no flap
    // seen by a cluster (a's local offline comes after b's online).
    assert.deepEqual(presence.filter((p) => p.startsWith("b:")), ["b:online"]);
    assert.ok(!presence.includes("a:expire"));
    assert.ok(
      presence.indexOf("b:online") < presence.indexOf("a:offline"),
      presence.join(),
    );
  },
);

/** Waits until `check` holds (polled: the state of another part). */
async function until(check: () => boolean, what: string): Promise<void> {
  await deadline(
    (async () => {
      while (!check()) await new Promise((r) => setTimeout(r, 5));
    })(),
    5_000,
    what,
  );
}

redisTest(
  "RedisSessionStore: a late answer to a dead instance's request never settles the new instance's request",
  async (redis) => {
    await using setup = pair(redis);
    const [a, b] = setup.instances;
    const client = setup.client("dee");
    const asked: PromiseWithResolvers<void>[] = [];
    const started: string[] = [];
    /** Resolved as the client's handler gets q1, then q2. */
    const arrived = [
      Promise.withResolvers<void>(),
      Promise.withResolvers<void>(),
    ];
    client.handle("ask", async (question: string) => {
      const gate = Promise.withResolvers<void>();
      asked.push(gate);
      started.push(question);
      arrived[started.length - 1]?.resolve();
      await gate.promise;
      return `answer:${question}`;
    });
    await client.connect();
    assert.equal(await client.call("work", 1), "a:1");
    const first = a.server.request("q1", { to: "dee", method: "ask" });
    first.catch(() => {});
    await deadline(arrived[0].promise, 5_000, "the client to get q1");
    // a dies with q1 pending; the client answers it later, on b.
    await a.store.close();
    setup.proxy.targets = [b.http.addr.port];
    const back = resumed(client);
    setup.proxy.cutAll("rst");
    await back;
    const second = b.server.request<string>("q2", { to: "dee", method: "ask" });
    await deadline(arrived[1].promise, 5_000, "the client to get q2");
    asked[0].resolve();
    asked[1].resolve();
    assert.equal(
      await deadline(second, 5_000, "the answer to q2"),
      "answer:q2",
    );
    const [connection] = b.server.connectionsOf("dee") ?? [];
    await until(
      () => connection.peer.stats.unexpected === 1,
      "the answer to q1 dropped and counted",
    );
  },
);

redisTest(
  "RedisSessionStore: after Redis lost its data, a session resumes on another instance once its owner wrote it again",
  async (redis) => {
    // Grace 4 s: the owner writes its idle sessions again every second.
    await using setup = pair(redis, 4_000);
    const [a, b] = setup.instances;
    const client = setup.client("eve");
    const lost: string[] = [];
    client.addEventListener("not-resumed", (event) => {
      lost.push((event as Event & { reason: string }).reason);
    });
    await client.connect();
    assert.equal(await client.call("work", 1), "a:1");
    assert.deepEqual(await client.call("join", "lobby"), ["lobby"]);
    // Redis restarts without its data; the client's connection to a goes
    // silent (a sees nothing, so writes nothing) and the client lands on b
    // before a wrote the session again.
    await redis.restart();
    setup.proxy.targets = [b.http.addr.port];
    const back = resumed(client);
    setup.proxy.cutAll("blackhole");
    await back;
    assert.deepEqual(lost, []);
    assert.equal(await client.call("work", 2), "b:2");
    assert.deepEqual(b.server.roomsOf("eve"), ["lobby"]);
    assert.equal(b.server.sessionMetrics.takenOver, 1);
    assert.equal(a.server.sessionMetrics.takenOver, 0);
  },
);
