/**
 * The load generator: runs one workload against one server and prints its
 * figures as JSON on the last line. Runs in its own process, apart from the
 * server. Usage:
 *
 *   deno run -A bench/load.ts <raw|duplex> <workload> <port> [count] [warmup]
 *
 * Workloads: sequential (after `warmup` untimed round trips, default
 * 1,000), pipelined, fanout, idle.
 */

import { Client } from "../client.ts";

type Impl = "raw" | "duplex";

const [impl, workload, portText, countText, warmupText] = Deno.args as [
  Impl,
  string,
  string,
  string?,
  string?,
];
const port = Number(portText);
const base = `ws://127.0.0.1:${port}`;

/** One request's text, the same for both implementations. */
function frame(sequence: number): string {
  return `{"sequence":${sequence},"type":1,"message":"hello"}`;
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function openRaw(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`Cannot open ${url}`));
  });
  socket.onerror = null;
  return socket;
}

async function openDuplex(url: string, options = {}): Promise<Client> {
  const client = new Client(url, { maxAttempts: 0, ...options });
  await client.connect();
  return client;
}

async function closeRaw(sockets: WebSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) =>
    new Promise((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve(undefined);
      socket.onclose = resolve;
      socket.close();
    })
  ));
}

/** Sequential round trips: one request in flight. */
async function sequential(count: number): Promise<Record<string, number>> {
  const latencies = new Float64Array(count);
  const warmup = Number(warmupText ?? 1000);
  let elapsed: number;
  if (impl === "raw") {
    const socket = await openRaw(`${base}/?user=bench`);
    let next: (value: unknown) => void = () => {};
    socket.onmessage = (event) => next(JSON.parse(event.data));
    const roundTrip = (i: number) =>
      new Promise((resolve) => {
        next = resolve;
        socket.send(frame(i));
      });
    for (let i = 0; i < warmup; i++) await roundTrip(i + 1);
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      await roundTrip(i + 1);
      latencies[i] = performance.now() - t;
    }
    elapsed = performance.now() - start;
    await closeRaw([socket]);
  } else {
    const client = await openDuplex(`${base}/?user=bench`);
    for (let i = 0; i < warmup; i++) await client.request("hello");
    const start = performance.now();
    for (let i = 0; i < count; i++) {
      const t = performance.now();
      await client.request("hello");
      latencies[i] = performance.now() - t;
    }
    elapsed = performance.now() - start;
    await client.close();
  }
  latencies.sort();
  return {
    requestsPerSecond: count / (elapsed / 1000),
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
  };
}

/** Pipelined: `window` requests in flight on one connection. */
async function pipelined(
  count: number,
  window = 1000,
): Promise<Record<string, number>> {
  let elapsed: number;
  if (impl === "raw") {
    const socket = await openRaw(`${base}/?user=bench`);
    const run = (total: number) =>
      new Promise<void>((resolve) => {
        let sent = 0;
        let received = 0;
        socket.onmessage = (event) => {
          JSON.parse(event.data);
          received++;
          if (sent < total) socket.send(frame(++sent));
          else if (received === total) resolve();
        };
        while (sent < Math.min(window, total)) socket.send(frame(++sent));
      });
    await run(Math.min(5000, count));
    const start = performance.now();
    await run(count);
    elapsed = performance.now() - start;
    await closeRaw([socket]);
  } else {
    const client = await openDuplex(`${base}/?user=bench`);
    const run = async (total: number) => {
      let issued = 0;
      const lane = async () => {
        while (issued < total) {
          issued++;
          await client.request("hello");
        }
      };
      await Promise.all(
        Array.from({ length: Math.min(window, total) }, lane),
      );
    };
    await run(Math.min(5000, count));
    const start = performance.now();
    await run(count);
    elapsed = performance.now() - start;
    await client.close();
  }
  return { requestsPerSecond: count / (elapsed / 1000) };
}

/**
 * Fan-out: `receivers` connections each receive every one of `count`
 * notifications that one sender causes.
 */
async function fanout(
  count: number,
  receivers = 1000,
): Promise<Record<string, number>> {
  let remaining = receivers * count;
  const done = Promise.withResolvers<void>();
  const deliver = () => {
    if (--remaining === 0) done.resolve();
  };
  let elapsed: number;
  if (impl === "raw") {
    const sockets: WebSocket[] = [];
    for (let i = 0; i < receivers; i++) {
      const socket = await openRaw(`${base}/?user=r${i}`);
      socket.onmessage = (event) => {
        JSON.parse(event.data);
        deliver();
      };
      sockets.push(socket);
    }
    const sender = await openRaw(`${base}/?user=sender&fanout=sender`);
    let acked = 0;
    const allAcked = Promise.withResolvers<void>();
    sender.onmessage = () => {
      if (++acked === count) allAcked.resolve();
    };
    const start = performance.now();
    for (let i = 0; i < count; i++) sender.send(frame(i + 1));
    await Promise.all([done.promise, allAcked.promise]);
    elapsed = performance.now() - start;
    await closeRaw([...sockets, sender]);
  } else {
    const clients: Client[] = [];
    for (let i = 0; i < receivers; i++) {
      const client = await openDuplex(`${base}/?user=r${i}`);
      client.onNotify(deliver);
      clients.push(client);
    }
    const sender = await openDuplex(`${base}/?user=sender`);
    const start = performance.now();
    await Promise.all(
      Array.from({ length: count }, () => sender.request("hello")),
    );
    await done.promise;
    elapsed = performance.now() - start;
    await Promise.all([...clients, sender].map((c) => c.close()));
  }
  return { deliveriesPerSecond: (receivers * count) / (elapsed / 1000) };
}

async function rss(): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/rss`);
  return (await response.json()).rss;
}

/** Idle connections: server RSS growth per connection. */
async function idle(count: number): Promise<Record<string, number>> {
  const before = await rss();
  let close: () => Promise<void>;
  if (impl === "raw") {
    const sockets: WebSocket[] = [];
    for (let i = 0; i < count; i++) {
      sockets.push(await openRaw(`${base}/?user=idle${i}`));
    }
    close = () => closeRaw(sockets);
  } else {
    const clients: Client[] = [];
    for (let i = 0; i < count; i++) {
      clients.push(await openDuplex(`${base}/?user=idle${i}`));
    }
    close = async () => {
      await Promise.all(clients.map((c) => c.close()));
    };
  }
  const after = await rss();
  await close();
  return { bytesPerConnection: (after - before) / count };
}

const count = Number(countText ?? "0");
let result: Record<string, number>;
switch (workload) {
  case "sequential":
    result = await sequential(count || 5000);
    break;
  case "pipelined":
    result = await pipelined(count || 50_000);
    break;
  case "fanout":
    result = await fanout(count || 1000);
    break;
  case "idle":
    result = await idle(count || 5000);
    break;
  default:
    throw new TypeError(`Cannot run workload: unknown "${workload}"`);
}
console.log(JSON.stringify(result));
