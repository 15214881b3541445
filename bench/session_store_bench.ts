/**
 * The cost of sessions in Redis (`RedisSessionStore`) against the default
 * memory store, on one instance: pipelined requests (one client, 256 in
 * flight), fan-out (room pushes to 100 clients: all in one turn, and 10 per
 * turn, `fanoutSpread`) and the latency of one
 * request at a time (p50 / p99 of its round trip), for the memory store and
 * the Redis store with `writeAhead` off and on. The three run interleaved,
 * `BENCH_REPEATS` times (medians reported), so that a busy machine slows
 * them alike. Reports what Redis saw too (script calls, i.e. session
 * writes, batched per event-loop turn). Needs `redis-server` and
 * `redis-cli`.
 *
 * Run: `deno run -A bench/session_store_bench.ts`
 *
 * @module
 */

import { Client } from "../client.ts";
import { DuplexServer, type SessionStore } from "../server.ts";
import { RedisSessionStore } from "../redis.ts";
import { RedisServer } from "../tests/_redis.ts";

const REQUESTS = Number(Deno.env.get("BENCH_REQUESTS") ?? 20_000);
const PUSHES = Number(Deno.env.get("BENCH_PUSHES") ?? 1_000);
const FANOUT = 100;
const PER_TURN = 10;
const SEQUENTIAL = Number(Deno.env.get("BENCH_SEQUENTIAL") ?? 2_000);
const REPEATS = Number(Deno.env.get("BENCH_REPEATS") ?? 3);

async function redisStats(port: number): Promise<Record<string, number>> {
  const { stdout } = await new Deno.Command("redis-cli", {
    args: ["-p", String(port), "info", "commandstats"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout);
  const stats: Record<string, number> = {};
  for (const match of text.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
    stats[match[1]] = Number(match[2]);
  }
  return stats;
}

/** The `q` quantile of sorted `values`. */
function quantile(values: number[], q: number): number {
  return values[Math.min(values.length - 1, Math.floor(values.length * q))];
}

function median(values: number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}

async function run(
  name: string,
  store: SessionStore | undefined,
  writeAhead = false,
) {
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 100_000,
    sessions: store === undefined ? {} : { store, writeAhead },
  });
  server.handle("echo", (n: number) => n);
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  const url = (user: string) =>
    `ws://127.0.0.1:${http.addr.port}/?user=${user}`;

  // Pipelined: one client, 256 requests in flight.
  const client = new Client(url("p"), { maxQueue: 100_000 });
  await client.connect();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next < REQUESTS) await client.call("echo", next++);
    }),
  );
  const pipelined = REQUESTS / ((performance.now() - t0) / 1000);
  // One request at a time: the round trip a waiting user sees.
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const start = performance.now();
    await client.call("echo", i);
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  await client.close();

  // Fan-out: PUSHES room pushes to FANOUT clients.
  const clients = Array.from(
    { length: FANOUT },
    (_, i) => new Client(url(`f${i}`)),
  );
  await Promise.all(clients.map((c) => c.connect()));
  for (let i = 0; i < FANOUT; i++) server.join("room", `f${i}`);
  let received = 0;
  let all = Promise.withResolvers<void>();
  for (const c of clients) {
    c.on("push", () => {
      if (++received === PUSHES * FANOUT) all.resolve();
    });
  }
  // One burst: every push in one turn.
  const t1 = performance.now();
  for (let i = 0; i < PUSHES; i++) {
    server.notify(i, { room: "room", method: "push" });
  }
  await all.promise;
  const fanout = (PUSHES * FANOUT) / ((performance.now() - t1) / 1000);
  // Spread: PER_TURN pushes per event-loop turn (pushes caused by
  // requests arrive over many turns).
  received = 0;
  all = Promise.withResolvers<void>();
  const t2 = performance.now();
  for (let i = 0; i < PUSHES; i += PER_TURN) {
    for (let j = i; j < Math.min(PUSHES, i + PER_TURN); j++) {
      server.notify(j, { room: "room", method: "push" });
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  await all.promise;
  const spread = (PUSHES * FANOUT) / ((performance.now() - t2) / 1000);
  await Promise.all(clients.map((c) => c.close()));
  await server.shutdown();
  await http.shutdown();
  return {
    name,
    pipelined: Math.round(pipelined),
    fanout: Math.round(fanout),
    fanoutSpread: Math.round(spread),
    p50: Math.round(quantile(times, 0.5) * 1000) / 1000,
    p99: Math.round(quantile(times, 0.99) * 1000) / 1000,
  };
}

/** The round trip of one Redis command (PING), median of 1,000, in ms. */
async function redisRoundTrip(store: RedisSessionStore): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 1_000; i++) {
    const start = performance.now();
    await store.get("bench-missing");
    times.push(performance.now() - start);
  }
  return Math.round(median(times) * 1000) / 1000;
}

type Result = Awaited<ReturnType<typeof run>>;
const results = new Map<string, Result[]>();
let scripts = 0;
let roundTrip = 0;
await using redis = await RedisServer.start();
for (let repeat = 0; repeat < REPEATS; repeat++) {
  const runs: [string, boolean | undefined][] = [
    ["memory store", undefined],
    ["Redis store, writeAhead off", false],
    ["Redis store, writeAhead on", true],
  ];
  // Interleaved, the order rotated each repeat.
  for (let i = 0; i < runs.length; i++) {
    const [name, writeAhead] = runs[(i + repeat) % runs.length];
    const before = await redisStats(redis.port);
    const store = writeAhead === undefined
      ? undefined
      : new RedisSessionStore({ url: redis.url });
    const result = await run(name, store, writeAhead);
    if (store !== undefined && repeat === 0 && writeAhead) {
      roundTrip = await redisRoundTrip(store);
    }
    await store?.close();
    const after = await redisStats(redis.port);
    if (writeAhead === true && repeat === 0) {
      scripts = (after.evalsha ?? 0) - (before.evalsha ?? 0);
    }
    results.set(name, [...results.get(name) ?? [], result]);
  }
}
for (const [name, list] of results) {
  console.log(JSON.stringify({
    name,
    pipelined: median(list.map((r) => r.pipelined)),
    fanout: median(list.map((r) => r.fanout)),
    fanoutSpread: median(list.map((r) => r.fanoutSpread)),
    p50: median(list.map((r) => r.p50)),
    p99: median(list.map((r) => r.p99)),
    runs: list.length,
  }));
}
console.log(
  JSON.stringify({
    redisRoundTripMs: roundTrip,
    redisScriptCalls: scripts,
    perRequestOrFrame: Math.round(
      scripts / (REQUESTS + SEQUENTIAL + 2 * PUSHES * FANOUT) * 1000,
    ) / 1000,
  }),
);
