/**
 * One server instance of the cross-instance sessions chaos run, as its own
 * process: a `DuplexServer` whose sessions live in Redis
 * (`RedisSessionStore`) and whose presence spans the cluster (`Cluster` on
 * `RedisPubSub`). It prints `listening <port>` once ready, appends one line
 * per handler run and per notification received to the log file
 * `DUPLEX_LOG` (synchronously: a kill -9 loses nothing written), and one
 * line per cluster presence event (with the time). SIGTERM hands its sessions over and
 * exits 0.
 *
 * Handlers: `work` `{ k }` notifies the caller `tick` `k`, waits `k % 5` ms
 * and answers `k`; the notification `note` `{ k }` is logged.
 *
 * @module
 */

import { Cluster, DuplexServer } from "../../server.ts";
import { RedisPubSub, RedisSessionStore } from "../../redis.ts";

const url = Deno.env.get("REDIS_URL")!;
const name = Deno.env.get("DUPLEX_NAME") ?? "i";
const log = await Deno.open(Deno.env.get("DUPLEX_LOG")!, {
  append: true,
  create: true,
  write: true,
});
const encoder = new TextEncoder();
function write(line: string): void {
  log.writeSync(encoder.encode(line + "\n"));
}

const store = new RedisSessionStore({ url, commandTimeout: 1_000 });
const pubsub = new RedisPubSub({ url, reconnectDelay: 50 });
// Presence survives the run's 8 s Redis freeze (a frozen broker is not seen
// as down: only the heartbeats stop).
const cluster = new Cluster(pubsub, {
  heartbeatInterval: 1_000,
  presenceTtl: 12_000,
});
cluster.addEventListener("join", (event) => {
  write(`P join ${(event as CustomEvent).detail.user} ${Date.now()}`);
});
cluster.addEventListener("leave", (event) => {
  write(`P leave ${(event as CustomEvent).detail.user} ${Date.now()}`);
});
const server = new DuplexServer({
  rateLimit: false,
  maxInFlight: 10_000,
  idleTimeout: 0,
  cluster,
  sessions: {
    store,
    grace: 30_000,
    handoverTimeout: 5_000,
    storeTimeout: 1_500,
    writeAhead: Deno.env.get("DUPLEX_WRITE_AHEAD") === "1",
  },
});
server.handle("work", async (params: { k: number }, context) => {
  write(`W ${context.from} ${params.k} ${name}`);
  server.notify(params.k, { to: context.from, method: "tick" });
  if (params.k % 5 !== 0) {
    await new Promise((resolve) => setTimeout(resolve, params.k % 5));
  }
  return params.k;
});
server.on("note", (params: { k: number }, context) => {
  write(`N ${context.from} ${params.k} ${name}`);
});
server.handle("join", (room: string, context) => {
  server.join(room, context.from);
  return server.roomsOf(context.from);
});
server.handle("rooms", (_: unknown, context) => server.roomsOf(context.from));

await cluster.start().catch(() => {});
const http = Deno.serve(
  {
    hostname: "127.0.0.1",
    port: Number(Deno.env.get("DUPLEX_PORT") ?? 0),
    onListen({ port }) {
      console.log(`listening ${port}`);
    },
  },
  server.fetch,
);

Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await cluster.close();
  await pubsub.close();
  await http.shutdown();
  await store.close();
  log.close();
  Deno.exit(0);
});
