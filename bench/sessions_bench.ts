/**
 * Session figures (issue 14), printed as lines "name: value unit":
 *
 * - throughput with sessions on vs off, same run, interleaved (off then on,
 *   a fresh server each time, 5 repeats; medians): pipelined requests (one
 *   client, 256 in flight) and fan-out (50 clients, pushes to everyone),
 *   target on/off ≥ 0.90, with each pair's ratio and the process's CPU time
 *   per unit (server and clients share this process); sequential round
 *   trips (one client, one call in flight) as a guard against pacing stalls
 *   (an ack that waits behind TCP's delayed acknowledgement costs ~40 ms);
 * - idle memory per session over a plain connection (server heap, 2,000
 *   raw clients each way);
 * - resume of a client that missed 1,000 notifications: time from the new
 *   connection to the last replayed frame, p50/p99 over 100 resumes.
 *
 * Run: `deno run -A --v8-flags=--expose-gc bench/sessions_bench.ts`
 * (BENCH_QUICK=1 for a short run).
 *
 * @module
 */

import { median } from "./stats.ts";
import { Client } from "../client.ts";
import { DuplexServer } from "../server.ts";

const quick = Deno.env.has("BENCH_QUICK");
const gc = (globalThis as { gc?: () => void }).gc;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** This process's CPU time (user + system) in ms; NaN off Linux. */
function cpuMs(): number {
  try {
    const stat = Deno.readTextFileSync("/proc/self/stat");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/** One timed run: units per second and CPU µs per unit. */
interface Measured {
  rate: number;
  cpuUs: number;
}

function measured(units: number, started: number, cpu: number): Measured {
  return {
    rate: units / ((performance.now() - started) / 1000),
    cpuUs: (cpuMs() - cpu) * 1000 / units,
  };
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

async function pipelined(
  sessions: boolean,
  total: number,
  window = 256,
): Promise<Measured> {
  const s = serve(sessions);
  const client = new Client(s.url("p"), { session: sessions, pingInterval: 0 });
  await client.connect();
  let next = 0;
  const started = performance.now();
  const cpu = cpuMs();
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < total) await client.call("echo", next++);
    }),
  );
  const result = measured(total, started, cpu);
  await client.close();
  await s.close();
  return result;
}

async function fanOut(sessions: boolean, pushes: number): Promise<Measured> {
  const s = serve(sessions);
  const clients = Array.from(
    { length: 50 },
    (_, i) =>
      new Client(s.url(`f${i}`), { session: sessions, pingInterval: 0 }),
  );
  await Promise.all(clients.map((c) => c.connect()));
  let received = 0;
  const expected = pushes * clients.length;
  const done = Promise.withResolvers<void>();
  for (const client of clients) {
    client.on("tick", () => {
      if (++received === expected) done.resolve();
    });
  }
  const started = performance.now();
  const cpu = cpuMs();
  for (let n = 0; n < pushes; n++) {
    s.server.notify(n, { method: "tick" });
    if (n % 100 === 99) await delay(0);
  }
  await done.promise;
  const result = measured(expected, started, cpu);
  await Promise.all(clients.map((c) => c.close()));
  await s.close();
  return result;
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

const rounds = quick ? 2 : 5;
const workloads: {
  name: string;
  unit: string;
  target?: number;
  run: (sessions: boolean) => Promise<Measured>;
}[] = [
  {
    name: "pipelined",
    unit: "req/s",
    target: 0.9,
    run: (on) => pipelined(on, quick ? 20_000 : 100_000),
  },
  {
    name: "fan-out",
    unit: "deliveries/s",
    target: 0.9,
    run: (on) => fanOut(on, quick ? 1_000 : 10_000),
  },
  {
    name: "sequential",
    unit: "req/s",
    target: 0.9,
    run: (on) => pipelined(on, quick ? 1_000 : 5_000, 1),
  },
];
const cost = (on: number, off: number) =>
  `${((1 - on / off) * 100).toFixed(1)} %`;
for (const workload of workloads) {
  const runs = { on: [] as Measured[], off: [] as Measured[] };
  for (let round = 0; round < rounds; round++) {
    // Interleaved: each pair ran under the same load.
    runs.off.push(await workload.run(false));
    runs.on.push(await workload.run(true));
  }
  const rateOff = median(runs.off.map((r) => r.rate));
  const rateOn = median(runs.on.map((r) => r.rate));
  const pairs = runs.on.map((r, i) => (r.rate / runs.off[i].rate).toFixed(2));
  const ratio = rateOn / rateOff;
  const cpuOff = median(runs.off.map((r) => r.cpuUs));
  const cpuOn = median(runs.on.map((r) => r.cpuUs));
  const { name, unit, target } = workload;
  console.log(`${name}, sessions off: ${Math.round(rateOff)} ${unit}`);
  console.log(`${name}, sessions on: ${Math.round(rateOn)} ${unit}`);
  console.log(`${name} session cost: ${cost(rateOn, rateOff)}`);
  console.log(
    `${name} on/off: ${ratio.toFixed(2)} (target >= ${target}: ${
      ratio >= target! ? "✓" : "✗"
    }; pairs ${pairs.join(", ")}; CPU per unit off ${
      cpuOff.toFixed(2)
    } µs, on ${cpuOn.toFixed(2)} µs, on/off ${(cpuOn / cpuOff).toFixed(2)})`,
  );
}

const count = quick ? 300 : 2_000;
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
