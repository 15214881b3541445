/**
 * Session figures (issue 14), printed as lines "name: value unit":
 *
 * - throughput with sessions on vs off, interleaved: two child processes,
 *   one with sessions off and one with them on, each a `DuplexServer` and
 *   its `Client`s in one process (so the clients' own session work counts
 *   too), run the same workload in blocks, alternately (off, on, then on,
 *   off, ...), after a warm-up block each. Drift of a shared machine then
 *   falls on both alike, and neither heap holds the other's frames. For
 *   pipelined requests (one client, 256 in flight), fan-out (50 clients,
 *   pushes to everyone) and sequential round trips (one call in flight: a
 *   guard against pacing stalls, an ack behind TCP's delayed
 *   acknowledgement costs ~40 ms): the rate of each side (its units over
 *   its blocks' time), on/off (target ≥ 0.90), the block pairs' ratios
 *   (median and middle half), and the process CPU time per unit of each
 *   side (`process.cpuUsage`, every thread of the child) with its on/off
 *   (target ≤ 1.11, the same 10 %); each figure is the median over
 *   `--repeats` (BENCH_REPEATS, default 3) fresh pairs of sides, one pair
 *   after another, and the ratios are those of the medians;
 * - idle memory per session over a plain connection (server heap, 2,000
 *   raw clients each way);
 * - resume of a client that missed 1,000 notifications: time from the new
 *   connection to the last replayed frame, p50/p99 over 100 resumes.
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/sessions_bench.ts
 * [--repeats n]` (BENCH_QUICK=1 for a short run, one pair;
 * BENCH_SESSION_BLOCKS=n timed blocks per side and pair).
 * Instructions instead of time: bench/sessions_instructions.ts (both sides
 * in one process) and bench/sessions_sides.ts (the server and the clients
 * apart).
 *
 * @module
 */

import process from "node:process";
import { median } from "./stats.ts";
import { Client } from "../client.ts";
import { DuplexServer } from "../server.ts";

const quick = Deno.env.has("BENCH_QUICK");
const gc = (globalThis as { gc?: () => void }).gc;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function serve(sessions: boolean) {
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 100_000,
    sessions: sessions ? {} : false,
    maxConnectionsPerAddress: 100_000,
    maxConnections: 100_000,
  });
  server.handle("echo", (n: number) => n);
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  return {
    server,
    url: (user: string) => `ws://127.0.0.1:${http.addr.port}/?user=${user}`,
    async close() {
      await server.shutdown();
      await http.shutdown();
    },
  };
}

/** One side's workload, run in blocks of `count` units. */
interface Runner {
  /** Units per count: deliveries per push (fan-out), else 1. */
  perCount: number;
  block(count: number): Promise<void>;
  close(): Promise<void>;
}

/** Requests on one client, `window` in flight. */
async function pipelinedRunner(
  url: string,
  sessions: boolean,
  window: number,
): Promise<Runner> {
  const client = new Client(url, { session: sessions, pingInterval: 0 });
  await client.connect();
  return {
    perCount: 1,
    async block(count) {
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(window, count) }, async () => {
          while (next < count) await client.call("echo", next++);
        }),
      );
    },
    close: () => client.close(),
  };
}

/** Pushes to everyone, 50 clients, 100 pushes per turn. */
async function fanOutRunner(
  s: ReturnType<typeof serve>,
  sessions: boolean,
): Promise<Runner> {
  const clients = Array.from(
    { length: 50 },
    (_, i) =>
      new Client(s.url(`f${i}`), { session: sessions, pingInterval: 0 }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  let received = 0;
  let target = 0;
  let wake = () => {};
  for (const client of clients) {
    client.on("tick", () => {
      if (++received === target) wake();
    });
  }
  return {
    perCount: clients.length,
    async block(count) {
      target = received + count * clients.length;
      const done = new Promise<void>((resolve) => wake = resolve);
      for (let n = 0; n < count; n++) {
        s.server.notify(n, { method: "tick" });
        if (n % 100 === 99) await delay(0);
      }
      await done;
    },
    close: async () => {
      await Promise.all(clients.map((c) => c.close()));
    },
  };
}

/** What a side reports of one block. */
interface Block {
  /** Wall time, ms. */
  ms: number;
  /** Process CPU time (user + system, every thread), µs. */
  cpuUs: number;
  /** Units done (requests or deliveries). */
  units: number;
}

/**
 * A side (a child process): one server, sessions on or off, and the
 * runner of the workload the parent opens; runs the blocks it is told to,
 * one line each way (`open <workload>`, `run <count>`, `end`).
 */
async function side(sessions: boolean): Promise<void> {
  const s = serve(sessions);
  let runner: Runner | undefined;
  const encoder = new TextEncoder();
  const answer = (value: unknown) =>
    Deno.stdout.write(encoder.encode(JSON.stringify(value) + "\n"));
  for await (const line of lines(Deno.stdin.readable)) {
    const [command, argument] = line.split(" ");
    if (command === "open") {
      await runner?.close();
      runner = argument === "fan-out"
        ? await fanOutRunner(s, sessions)
        : await pipelinedRunner(
          s.url("p"),
          sessions,
          argument === "sequential" ? 1 : 256,
        );
      await answer("ready");
    } else if (command === "run" && runner !== undefined) {
      const count = Number(argument);
      const cpu = process.cpuUsage();
      const started = performance.now();
      await runner.block(count);
      const ms = performance.now() - started;
      const { user, system } = process.cpuUsage(cpu);
      const units = count * runner.perCount;
      await answer({ ms, cpuUs: user + system, units });
    } else break;
  }
  await runner?.close();
  await s.close();
}

/** The lines of a byte stream. */
async function* lines(
  readable: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let rest = "";
  for await (const text of readable.pipeThrough(new TextDecoderStream())) {
    const parts = (rest + text).split("\n");
    rest = parts.pop()!;
    yield* parts;
  }
}

/** The parent's handle on a side. */
interface Side {
  ask(line: string): Promise<unknown>;
  end(): Promise<void>;
}

function spawnSide(sessions: boolean): Side {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--side",
      sessions ? "on" : "off",
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const replies = lines(child.stdout);
  const encoder = new TextEncoder();
  return {
    async ask(line) {
      await writer.write(encoder.encode(line + "\n"));
      const reply = await replies.next();
      if (reply.done) throw new Error(`Cannot run "${line}": the side ended`);
      return JSON.parse(reply.value);
    },
    async end() {
      await writer.write(encoder.encode("end\n"));
      await writer.close();
      while (!(await replies.next()).done) { /* drain */ }
      if (!(await child.status).success) {
        throw new Error("Cannot finish: a side failed");
      }
    },
  };
}

/**
 * One workload on both sides, interleaved: a warm-up block each, then
 * `blocks` timed blocks each, the order reversed every other block.
 */
async function interleaved(
  sides: { off: Side; on: Side },
  workload: string,
  count: number,
  blocks: number,
): Promise<{ off: Block[]; on: Block[] }> {
  await sides.off.ask(`open ${workload}`);
  await sides.on.ask(`open ${workload}`);
  const runs = { off: [] as Block[], on: [] as Block[] };
  for (let b = 0; b <= blocks; b++) {
    const order = b % 2 ? ["on", "off"] as const : ["off", "on"] as const;
    for (const which of order) {
      const block = await sides[which].ask(`run ${count}`) as Block;
      if (b > 0) runs[which].push(block); // block 0 warms up
    }
  }
  return runs;
}

async function open(url: string, protocols: string[]): Promise<WebSocket> {
  const socket = new WebSocket(url, protocols);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  return socket;
}

/** Server heap per connection, sessions on or off. */
async function idleMemory(sessions: boolean, count: number): Promise<number> {
  const s = serve(sessions);
  gc?.();
  await delay(50);
  gc?.();
  const before = Deno.memoryUsage().heapUsed;
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i++) {
    const protocols = sessions
      ? ["duplex.v1", "duplex.session"]
      : ["duplex.v1"];
    const socket = await open(s.url(`m${i}`), protocols);
    // One frame each way on both kinds (a socket that has received a
    // message costs more than one that has not): the hello and its state,
    // or a ping and its pong.
    const answered = new Promise((resolve) => socket.onmessage = resolve);
    socket.send(
      sessions
        ? '{"type":8,"sequence":0,"message":{}}'
        : '{"sequence":0,"type":5}',
    );
    await answered;
    socket.onmessage = null;
    sockets.push(socket);
  }
  await delay(100);
  gc?.();
  await delay(50);
  gc?.();
  const after = Deno.memoryUsage().heapUsed;
  const closed = sockets.map((socket) =>
    new Promise((resolve) => socket.onclose = resolve)
  );
  for (const socket of sockets) socket.close();
  await Promise.all(closed);
  await s.close();
  return (after - before) / count;
}

/** Resumes of a client that missed `missed` notifications each time. */
async function resumes(rounds: number, missed: number): Promise<number[]> {
  const s = serve(true);
  const url = s.url("r");
  const protocols = ["duplex.v1", "duplex.session"];
  let socket = await open(url, protocols);
  let received = 0;
  const first = new Promise<MessageEvent>((resolve) =>
    socket.onmessage = resolve
  );
  socket.send('{"type":8,"sequence":0,"message":{}}');
  const state = JSON.parse((await first).data).message;
  const times: number[] = [];
  for (let round = 0; round < rounds; round++) {
    const detached = new Promise((resolve) =>
      s.server.addEventListener("disconnect", resolve, { once: true })
    );
    socket.close();
    await detached;
    for (let n = 0; n < missed; n++) {
      s.server.notify(n, { to: "r", method: "tick" });
    }
    const started = performance.now();
    socket = await open(url, protocols);
    const target = received + missed;
    const done = Promise.withResolvers<void>();
    let answered = false;
    socket.onmessage = (event) => {
      if (!answered) {
        answered = true; // the session state
        return;
      }
      // The server's acks (it answers each of ours) are not session frames.
      if (String(event.data).startsWith(`{"type":10,`)) return;
      if (++received === target) done.resolve();
    };
    socket.send(
      JSON.stringify({
        type: 8,
        sequence: 0,
        message: { id: state.id, secret: state.secret, received },
      }),
    );
    await done.promise;
    times.push(performance.now() - started);
    socket.send(`{"type":10,"sequence":${received}}`);
  }
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
  await s.close();
  return times;
}

if (Deno.args[0] === "--side") {
  await side(Deno.args[1] === "on");
  Deno.exit(0);
}

const blocks = Math.max(
  1,
  Number(Deno.env.get("BENCH_SESSION_BLOCKS") ?? (quick ? 6 : 30)),
);
// Fresh pairs of sides, one after another: a process's own luck (where its
// heap and code land, which CPU it gets) moved a single pair's fan-out
// on/off between 0.79 and 0.90 with the same code, so the figures are the
// medians over pairs, as every other figure of `deno task bench` is a
// median of repeats.
const repeatsAt = Deno.args.indexOf("--repeats");
const repeats = Math.max(
  1,
  Number(
    repeatsAt >= 0
      ? Deno.args[repeatsAt + 1]
      : Deno.env.get("BENCH_REPEATS") ?? (quick ? 1 : 3),
  ) || 1,
);
const workloads: { name: string; unit: string; count: number }[] = [
  { name: "pipelined", unit: "req/s", count: quick ? 5_000 : 20_000 },
  { name: "fan-out", unit: "deliveries/s", count: quick ? 500 : 2_000 },
  { name: "sequential", unit: "req/s", count: quick ? 300 : 1_000 },
];
const cost = (on: number, off: number) =>
  `${((1 - on / off) * 100).toFixed(1)} %`;
const sum = (runs: Block[], key: "ms" | "cpuUs" | "units") =>
  runs.reduce((total, run) => total + run[key], 0);
const rate = (r: Block[]) => sum(r, "units") / (sum(r, "ms") / 1000);
const cpu = (r: Block[]) => sum(r, "cpuUs") / sum(r, "units");
/** One pair of sides' figures for one workload. */
interface PairFigures {
  rateOff: number;
  rateOn: number;
  cpuOff: number;
  cpuOn: number;
  /** Each block pair's on/off (the inverse ratio of its times). */
  blockRatios: number[];
}
const measured = new Map<string, PairFigures[]>(
  workloads.map(({ name }) => [name, []]),
);
for (let repeat = 0; repeat < repeats; repeat++) {
  const sides = { off: spawnSide(false), on: spawnSide(true) };
  for (const { name, count } of workloads) {
    const runs = await interleaved(sides, name, count, blocks);
    measured.get(name)!.push({
      rateOff: rate(runs.off),
      rateOn: rate(runs.on),
      cpuOff: cpu(runs.off),
      cpuOn: cpu(runs.on),
      blockRatios: runs.on.map((r, i) => runs.off[i].ms / r.ms),
    });
  }
  await sides.off.end();
  await sides.on.end();
}
for (const { name, unit, count } of workloads) {
  const pairs = measured.get(name)!;
  const of = (key: Exclude<keyof PairFigures, "blockRatios">) =>
    median(pairs.map((pair) => pair[key]));
  const rateOff = of("rateOff");
  const rateOn = of("rateOn");
  const ratio = rateOn / rateOff;
  const eachRatio = pairs.map((p) => (p.rateOn / p.rateOff).toFixed(2));
  const blockRatios = pairs.flatMap((p) => p.blockRatios).sort((a, b) => a - b);
  const quarter = (q: number) =>
    blockRatios[Math.floor(q * (blockRatios.length - 1))];
  const cpuOff = of("cpuOff");
  const cpuOn = of("cpuOn");
  const cpuRatio = cpuOn / cpuOff;
  const eachCpu = pairs.map((p) => (p.cpuOn / p.cpuOff).toFixed(2));
  console.log(`${name}, sessions off: ${Math.round(rateOff)} ${unit}`);
  console.log(`${name}, sessions on: ${Math.round(rateOn)} ${unit}`);
  console.log(`${name} session cost: ${cost(rateOn, rateOff)}`);
  console.log(
    `${name} on/off: ${ratio.toFixed(2)} (target >= 0.9: ${
      ratio >= 0.9 ? "✓" : "✗"
    }; medians of ${repeats} pairs of sides, each pair ${
      eachRatio.join(", ")
    }; ${blocks} block pairs of ${count} each, median ${
      median(blockRatios).toFixed(2)
    }, middle half ${quarter(0.25).toFixed(2)}–${quarter(0.75).toFixed(2)})`,
  );
  console.log(
    `${name} CPU per unit on/off: ${cpuRatio.toFixed(2)} (target <= 1.11: ${
      cpuRatio <= 1.11 ? "✓" : "✗"
    }; off ${cpuOff.toFixed(2)} µs, on ${cpuOn.toFixed(2)} µs; each pair ${
      eachCpu.join(", ")
    })`,
  );
}

const count = quick ? 300 : 2_000;
// The idle figures come from a warm process, as a server's would (and as
// when this process ran the throughput itself): one round of each workload
// both ways first.
for (const sessions of [false, true]) {
  const s = serve(sessions);
  for (
    const runner of [
      await pipelinedRunner(s.url("w"), sessions, 256),
      await fanOutRunner(s, sessions),
    ]
  ) {
    await runner.block(runner.perCount > 1 ? 1_000 : 20_000);
    await runner.close();
  }
  await s.close();
}
const plain = await idleMemory(false, count);
const withSession = await idleMemory(true, count);
console.log(`idle heap per plain connection: ${Math.round(plain)} B`);
console.log(`idle heap per session connection: ${Math.round(withSession)} B`);
console.log(`idle session cost: ${Math.round(withSession - plain)} B`);

const times = (await resumes(quick ? 20 : 100, 1_000)).sort((a, b) => a - b);
const at = (q: number) =>
  times[Math.min(times.length - 1, Math.floor(q * times.length))];
console.log(`resume of 1,000 missed, p50: ${at(0.5).toFixed(1)} ms`);
console.log(`resume of 1,000 missed, p99: ${at(0.99).toFixed(1)} ms`);
