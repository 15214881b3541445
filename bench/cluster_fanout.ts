/**
 * Cross-instance fan-out: 2 chat instances (separate processes, each a
 * `DuplexServer` chat with a `Cluster` on `RedisPubSub`, on a real
 * `redis-server` started here), 500 `duplex.v1` clients on each, one sender
 * on the first doing 1,000 chat requests; deliveries/s until every one of
 * the 1,000 receivers got all 1,000 notifications. Next to it, the same
 * load on a single instance (no cluster) holding all 1,000 receivers.
 * Median of `BENCH_REPEATS` (default 3) runs each, fresh processes every
 * run; the JSON of both figures is the last line.
 *
 *   deno run -A bench/cluster_fanout.ts
 *
 * Internal modes (spawned by the above):
 *   deno run -A bench/cluster_fanout.ts server <redis-url | none> <id>
 *   deno run -A bench/cluster_fanout.ts load <count> <sender-port> <port>...
 */

import { median } from "./stats.ts";
import { Client } from "../client.ts";
import { Cluster, createChatServer } from "../server.ts";
import { RedisPubSub } from "../redis.ts";
import { RedisServer } from "../tests/_redis.ts";

const RECEIVERS = 1000;
const COUNT = Number(Deno.env.get("BENCH_COUNT") ?? 1000);
const REPEATS = Number(Deno.env.get("BENCH_REPEATS") ?? 3);
const self = new URL(import.meta.url).pathname;
const root = new URL("..", import.meta.url).pathname;

/** Runs `deno run -A <args>` with the open-files limit raised. */
function spawn(args: string[]): Deno.ChildProcess {
  const command =
    `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "${Deno.execPath()}" run -A ${
      args.map((a) => `'${a}'`).join(" ")
    }`;
  return new Deno.Command("bash", {
    args: ["-c", command],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
}

/** A server process: its port, and how to stop it. */
interface ServerProcess {
  port: number;
  stop(): Promise<void>;
}

async function startServer(
  redisUrl: string,
  id: string,
): Promise<ServerProcess> {
  const child = spawn([self, "server", redisUrl, id]);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start server ${id}: ${text}`);
    text += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n")));
  return {
    port,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain.catch(() => {});
    },
  };
}

async function runLoad(senderPort: number, ports: number[]): Promise<number> {
  const child = spawn([
    self,
    "load",
    String(COUNT),
    String(senderPort),
    ...ports.map(String),
  ]);
  const { success, stdout } = await child.output();
  if (!success) throw new Error("Cannot run the load: it failed");
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]).deliveriesPerSecond;
}

async function orchestrate(): Promise<void> {
  await using redis = await RedisServer.start();
  const cluster: number[] = [];
  const single: number[] = [];
  for (let run = 1; run <= REPEATS; run++) {
    {
      const a = await startServer(redis.url, `a${run}`);
      const b = await startServer(redis.url, `b${run}`);
      try {
        cluster.push(await runLoad(a.port, [a.port, b.port]));
      } finally {
        await Promise.all([a.stop(), b.stop()]);
      }
    }
    {
      const s = await startServer("none", `s${run}`);
      try {
        single.push(await runLoad(s.port, [s.port]));
      } finally {
        await s.stop();
      }
    }
    console.log(
      `run ${run}: 2 instances on Redis ${Math.round(cluster.at(-1)!)}/s, ` +
        `1 instance ${Math.round(single.at(-1)!)}/s`,
    );
  }
  const figures = {
    receivers: RECEIVERS,
    notifications: COUNT,
    repeats: REPEATS,
    clusterDeliveriesPerSecond: Math.round(median(cluster)),
    singleDeliveriesPerSecond: Math.round(median(single)),
  };
  console.log(
    `Fan-out, 1 sender, ${RECEIVERS} receivers, ${COUNT} notifications (median of ${REPEATS}):`,
  );
  console.log(
    `  2 instances on Redis, 500 receivers each: ${figures.clusterDeliveriesPerSecond} deliveries/s`,
  );
  console.log(
    `  1 instance, all ${RECEIVERS} receivers:      ${figures.singleDeliveriesPerSecond} deliveries/s`,
  );
  console.log(JSON.stringify(figures));
}

async function serve(redisUrl: string, id: string): Promise<void> {
  // Broker trouble goes to stderr, with the instance id.
  const logger = {
    info() {},
    warn: (message: string) => console.error(`${id}: ${message}`),
    error: (message: string) => console.error(`${id}: ${message}`),
  };
  const pubsub = redisUrl === "none"
    ? undefined
    : new RedisPubSub({ url: redisUrl, logger });
  await pubsub?.ready();
  const cluster = pubsub && new Cluster(pubsub, { id, logger });
  const server = createChatServer({
    cluster,
    rateLimit: false,
    maxInFlight: 100_000,
    maxConnections: 100_000,
    maxConnectionsPerAddress: 100_000,
    idleTimeout: 0,
  });
  await cluster?.start();
  const http = Deno.serve(
    {
      hostname: "127.0.0.1",
      port: 0,
      onListen({ port }) {
        console.log(JSON.stringify({ port }));
      },
    },
    server.fetch,
  );
  const stop = async () => {
    if (cluster !== undefined) {
      console.error(
        `${id}: ${JSON.stringify(cluster.stats)} ${
          JSON.stringify(pubsub?.stats)
        }`,
      );
    }
    await server.shutdown();
    await cluster?.close();
    await pubsub?.close();
    await http.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => {
    stop().catch(() => Deno.exit(1));
  });
}

async function load(count: number, senderPort: number, ports: number[]) {
  const per = RECEIVERS / ports.length;
  const clients: Client[] = [];
  const counts: number[] = [];
  let finished = 0;
  let warm = 0;
  const warmed = Promise.withResolvers<void>();
  const allDone = Promise.withResolvers<void>();
  for (const port of ports) {
    for (let i = 0; i < per; i++) {
      const client = new Client(
        `ws://127.0.0.1:${port}/?user=r${port}-${i}`,
        { maxAttempts: 0, pingInterval: 600_000 },
      );
      let received = 0;
      let isWarm = false;
      const index = counts.push(0) - 1;
      client.onNotify((message) => {
        if (message === "warm-up") {
          if (!isWarm) {
            isWarm = true;
            if (++warm === RECEIVERS) warmed.resolve();
          }
          return;
        }
        counts[index]++;
        if (++received === count && ++finished === RECEIVERS) {
          allDone.resolve();
        }
      });
      await client.connect();
      clients.push(client);
    }
  }
  const sender = new Client(`ws://127.0.0.1:${senderPort}/?user=sender`, {
    maxAttempts: 0,
    pingInterval: 600_000,
  });
  await sender.connect();
  // Every receiver is registered (and the presence storm is over) once a
  // first message reached them all.
  // A socket may still be registering on the server when its client sees it
  // open: repeat the warm-up until it reached every receiver.
  for (let attempt = 1; warm < RECEIVERS; attempt++) {
    if (attempt > 50) {
      throw new Error(`Cannot warm up: ${warm} of ${RECEIVERS} receivers`);
    }
    await sender.request("warm-up");
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      warmed.promise,
      new Promise((resolve) => timer = setTimeout(resolve, 500)),
    ]);
    clearTimeout(timer);
  }
  const start = performance.now();
  await Promise.all(
    Array.from({ length: count }, (_, i) => sender.request(`m${i}`)),
  );
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stuck = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const lacking = counts.filter((n) => n < count).length;
      reject(
        new Error(
          `Cannot finish the fan-out: ${lacking} receivers lack messages ` +
            `(min ${Math.min(...counts)} of ${count})`,
        ),
      );
    }, 120_000);
  });
  await Promise.race([allDone.promise, stuck]).finally(() =>
    clearTimeout(timer)
  );
  const elapsed = performance.now() - start;
  await Promise.all([...clients, sender].map((c) => c.close()));
  console.log(
    JSON.stringify({
      deliveriesPerSecond: (RECEIVERS * count) / (elapsed / 1000),
    }),
  );
}

if (import.meta.main) {
  const [mode, ...rest] = Deno.args;
  if (mode === "server") await serve(rest[0], rest[1]);
  else if (mode === "load") {
    await load(Number(rest[0]), Number(rest[1]), rest.slice(2).map(Number));
  } else await orchestrate();
}
