/**
 * The cost of sessions in Redis (`RedisSessionStore`) against the default
 * memory store, on one instance: pipelined requests (one client, 256 in
 * flight) and fan-out (room pushes to 100 clients). Reports throughput and
 * what Redis saw (script calls, i.e. session writes, and round trips are
 * batched per event-loop turn). Needs `redis-server` and `redis-cli`.
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

async function run(name: string, store: SessionStore | undefined) {
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 100_000,
    sessions: store === undefined ? {} : { store },
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
  await client.close();

  // Fan-out: PUSHES room pushes to FANOUT clients.
  const clients = Array.from(
    { length: FANOUT },
    (_, i) => new Client(url(`f${i}`)),
  );
  await Promise.all(clients.map((c) => c.connect()));
  for (let i = 0; i < FANOUT; i++) server.join("room", `f${i}`);
  let received = 0;
  const all = Promise.withResolvers<void>();
  for (const c of clients) {
    c.on("push", () => {
      if (++received === PUSHES * FANOUT) all.resolve();
    });
  }
  const t1 = performance.now();
  for (let i = 0; i < PUSHES; i++) {
    server.notify(i, { room: "room", method: "push" });
  }
  await all.promise;
  const fanout = (PUSHES * FANOUT) / ((performance.now() - t1) / 1000);
  await Promise.all(clients.map((c) => c.close()));
  await server.shutdown();
  await http.shutdown();
  return { name, pipelined: Math.round(pipelined), fanout: Math.round(fanout) };
}

await using redis = await RedisServer.start();
const memory = await run("memory store", undefined);
const before = await redisStats(redis.port);
const store = new RedisSessionStore({ url: redis.url });
const shared = await run("Redis store", store);
await store.close();
const after = await redisStats(redis.port);
const scripts = (after.evalsha ?? 0) - (before.evalsha ?? 0);
console.log(JSON.stringify(memory));
console.log(JSON.stringify(shared));
console.log(
  JSON.stringify({
    redisScriptCalls: scripts,
    perRequestOrFrame:
      Math.round(scripts / (REQUESTS + PUSHES * FANOUT) * 1000) / 1000,
  }),
);
