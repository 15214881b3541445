/**
 * The lean external client: raw `WebSocket`s that send hand-written request
 * frames and only `JSON.parse` what comes back, counting replies by their
 * sequence. The same client drives every server, so the difference between
 * two servers' figures is the servers' own cost. Runs one workload in its
 * own process and prints its figures as JSON on the last line:
 *
 *   deno run -A bench/lean_client.ts <wire> <workload> <port> <count> [size]
 *   deno run -A bench/lean_client.ts interleave <workload> <count> <size> <blocks> <wire>@<port>...
 *
 * The second form runs a `sequential`, `pipelined` or `fanout` workload
 * against several servers at once, interleaved ({@linkcode interleaved}:
 * `count` split into `blocks` blocks, each run on every server in turn),
 * and prints one result per server, in order, as a JSON array.
 *
 * Wires: `original` (no subprotocol, `{"sequence":n,"type":1,"message":"hello"}`),
 * `duplex.v1` (the same frames with the `duplex.v1` subprotocol offered and
 * answered pings, which is all a Duplex client sends for a default request),
 * `batch` (`duplex.v1` offering `duplex.batch` too: replies may come as batch
 * frames, `{"type":11,"sequence":n,"message":[...]}`, parsed once each),
 * `session` (`duplex.v1` offering `duplex.session`: after `open` it sends
 * the hello `{"type":8,"sequence":0,"message":{}}` and waits for the type-9
 * state; it counts the session frames it receives, a batch as its
 * `sequence`, and acknowledges them cumulatively, `{"type":10,"sequence":n}`,
 * every `ackEvery` frames of the state (else 64); PROTOCOL.md "Sessions"),
 * `socketio` (Engine.IO v4 over a WebSocket: `42n["message","hello"]`
 * answered by the ack `43n["ok"]`).
 *
 * Workloads: `sequential` (one in flight; size = warm-up count),
 * `pipelined` (size = requests in flight), `fanout` (size = receivers;
 * count = requests of the one sender, each relayed to every receiver),
 * `idle` (count connections; server RSS growth per connection),
 * `hold` (opens count connections spread over `BENCH_HOSTS`, prints how many
 * opened, keeps them until stdin closes; size = number of the first user;
 * used by the 100,000-connection workload).
 *
 * @module
 */

/** How a lean client speaks to one kind of server. */
export interface Wire {
  /** Subprotocols to offer. */
  protocols: string[];
  /** Path and query of the WebSocket URL, for user `user`. */
  path(user: string): string;
  /** The request frame with sequence (ack id) `sequence`. */
  request(sequence: number): string;
  /**
   * Reads one incoming message and calls `each` for every frame in it (a
   * batch holds several): with the sequence of a reply (≥ 1) or 0 for any
   * other delivery; control frames it answers or skips are not reported.
   */
  read(data: string, socket: WebSocket, each: (sequence: number) => void): void;
  /** Completes the handshake after `open` (Socket.IO's namespace connect). */
  ready(socket: WebSocket): Promise<void>;
}

const HELLO = `"hello"`;

function duplexWire(protocols: string[]): Wire {
  const frame = (
    frame: { type: number; sequence: number },
    socket: WebSocket,
    each: (sequence: number) => void,
  ): void => {
    switch (frame.type) {
      case 3:
        return each(0);
      case 5:
        // A duplex.v1 peer answers pings (the server keep-alive sends them
        // to connections that sent nothing for idleTimeout / 3).
        socket.send(`{"sequence":${frame.sequence},"type":6}`);
        return;
      default:
        // 2 from a chat server; 1 echoed by the raw server.
        return each(frame.sequence);
    }
  };
  return {
    protocols,
    path: (user) => `/?user=${user}`,
    request: (sequence) =>
      `{"sequence":${sequence},"type":1,"message":${HELLO}}`,
    read(data, socket, each) {
      const parsed = JSON.parse(data);
      if (parsed.type !== 11) return frame(parsed, socket, each);
      // A batch (offered with duplex.batch): one parse for all its frames.
      for (const inner of parsed.message) frame(inner, socket, each);
    },
    ready: () => Promise.resolve(),
  };
}

/** How often the session wire acknowledges when the state does not say. */
const ACK_EVERY = 64;

/**
 * The `duplex.v1` wire with a session: the same frames, plus the hello, the
 * count of session frames received and an acknowledgement every `ackEvery`
 * frames of the server's state (else {@linkcode ACK_EVERY}), which is all
 * the session layer asks of a client that never drops its connection.
 */
function sessionWire(): Wire {
  const plain = duplexWire(["duplex.v1", "duplex.session"]);
  // Per socket: session frames received, the count last acknowledged, and
  // the pacing.
  const counts = new WeakMap<
    WebSocket,
    { received: number; acked: number; every: number }
  >();
  return {
    ...plain,
    read(data, socket, each) {
      // Session frames (states, acks) are not counted, nor are pings/pongs.
      if (data.startsWith(`{"type":9`) || data.startsWith(`{"type":10`)) return;
      if (data.endsWith(`"type":5}`) || data.endsWith(`"type":6}`)) {
        return plain.read(data, socket, each);
      }
      const count = counts.get(socket)!;
      count.received += data.startsWith(`{"type":11`)
        ? Number(data.slice(22, data.indexOf(",", 22)))
        : 1;
      if (count.received - count.acked >= count.every) {
        count.acked = count.received;
        socket.send(`{"type":10,"sequence":${count.received}}`);
      }
      plain.read(data, socket, each);
    },
    ready(socket) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      socket.onmessage = (event) => {
        const data = String(event.data);
        if (!data.startsWith(`{"type":9`)) {
          return reject(new Error(`Cannot start a session: ${data}`));
        }
        if (!data.includes(`"resumed":false`)) {
          return reject(new Error(`Cannot start a session: ${data}`));
        }
        const every = JSON.parse(data).message.ackEvery ?? ACK_EVERY;
        counts.set(socket, { received: 0, acked: 0, every });
        resolve();
      };
      socket.onclose = () =>
        reject(new Error("Cannot start a session: closed"));
      if (socket.protocol !== "duplex.session") {
        reject(new Error(`Cannot start a session: got "${socket.protocol}"`));
      }
      socket.send(`{"type":8,"sequence":0,"message":{}}`);
      return promise.finally(() => socket.onclose = null);
    },
  };
}

const socketIoWire: Wire = {
  protocols: [],
  path: (user) => `/socket.io/?EIO=4&transport=websocket&user=${user}`,
  request: (sequence) => `42${sequence}["message",${HELLO}]`,
  read(data, socket, each) {
    if (data.startsWith("43")) {
      const bracket = data.indexOf("[");
      JSON.parse(data.slice(bracket));
      return each(Number(data.slice(2, bracket)));
    }
    if (data.startsWith("42")) {
      JSON.parse(data.slice(2));
      return each(0);
    }
    if (data === "2") socket.send("3"); // Engine.IO ping → pong
  },
  ready(socket) {
    // Engine.IO open packet "0{...}", then connect to namespace "/".
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    socket.onmessage = (event) => {
      const data = String(event.data);
      if (data.startsWith("0{")) socket.send("40");
      else if (data.startsWith("40")) resolve();
      else if (data.startsWith("44")) reject(new Error(`Cannot join: ${data}`));
    };
    return promise;
  },
};

/**
 * Returns the wire for a name.
 *
 * @param name `original`, `duplex.v1`, `batch` (`duplex.v1` offering
 * `duplex.batch`: reads batch frames), `session` (`duplex.v1` offering
 * `duplex.session`: a session, acknowledged at the state's pacing) or `socketio`.
 * @returns The wire.
 * @throws {TypeError} For another name.
 */
export function wireFor(name: string): Wire {
  switch (name) {
    case "original":
      return duplexWire([]);
    case "duplex.v1":
      return duplexWire(["duplex.v1"]);
    case "batch":
      return duplexWire(["duplex.v1", "duplex.batch"]);
    case "session":
      return sessionWire();
    case "socketio":
      return socketIoWire;
    default:
      throw new TypeError(`Cannot use wire: unknown "${name}"`);
  }
}

/** Longest a workload may take before the client gives up, in ms. */
const DEADLINE_MS = 180_000;

function deadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Cannot finish ${what}: over ${DEADLINE_MS} ms`)),
      DEADLINE_MS,
    );
  });
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer));
}

/** Opens one lean connection as `user` and completes the wire's handshake. */
export async function open(
  wire: Wire,
  host: string,
  port: number,
  user: string,
): Promise<WebSocket> {
  const url = `ws://${host}:${port}${wire.path(user)}`;
  const socket = new WebSocket(url, wire.protocols);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = () => reject(new Error(`Cannot open ${url}`));
  });
  await wire.ready(socket);
  socket.onerror = null;
  socket.onmessage = null;
  return socket;
}

/** Opens `count` connections, `batch` handshakes at a time. */
async function openMany(
  wire: Wire,
  hosts: string[],
  port: number,
  count: number,
  first: number,
  batch = 100,
): Promise<WebSocket[]> {
  const sockets: WebSocket[] = [];
  for (let start = 0; start < count; start += batch) {
    const end = Math.min(count, start + batch);
    const opening: Promise<WebSocket>[] = [];
    for (let i = start; i < end; i++) {
      const host = hosts[i % hosts.length];
      opening.push(open(wire, host, port, `u${first + i}`));
    }
    sockets.push(...await Promise.all(opening));
  }
  return sockets;
}

/** Closes the sockets, resolving once each is closed. */
export async function closeAll(sockets: WebSocket[]): Promise<void> {
  await Promise.all(sockets.map((socket) =>
    new Promise((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve(undefined);
      socket.onclose = resolve;
      socket.close();
    })
  ));
}

function percentile(sorted: Float64Array, p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/**
 * A workload set up against one server, run in timed blocks: the blocks of
 * several runners can be interleaved in one process, so every server is
 * measured in the same stretches of time (see {@linkcode interleaved}).
 */
export interface Runner {
  /** Runs `n` units (round trips, requests, or sends to fan out) and
   * resolves with the time they took, in ms. */
  block(n: number): Promise<number>;
  /** The round trips' latencies, in ms (sequential runners only). */
  latencies?: number[];
  /** Deliveries per unit (fan-out runners: the receivers). */
  perUnit: number;
  /** Closes the runner's connections. */
  close(): Promise<void>;
}

/**
 * Sequential round trips, one request in flight, after `warmup` untimed ones.
 *
 * @param wire How to speak to the server.
 * @param port The server's port on 127.0.0.1.
 * @param warmup Round trips before timing.
 * @returns The runner; a unit is one round trip.
 */
export async function sequentialRunner(
  wire: Wire,
  port: number,
  warmup: number,
): Promise<Runner> {
  const socket = await open(wire, "127.0.0.1", port, "bench");
  let expected = 0;
  let next: () => void = () => {};
  socket.onmessage = (event) => {
    wire.read(event.data, socket, (sequence) => {
      if (sequence === expected) next();
    });
  };
  const roundTrip = (sequence: number) =>
    new Promise<void>((resolve) => {
      next = resolve;
      expected = sequence;
      socket.send(wire.request(sequence));
    });
  let sequence = 0;
  while (sequence < warmup) await roundTrip(++sequence);
  const latencies: number[] = [];
  return {
    latencies,
    perUnit: 1,
    async block(n) {
      const start = performance.now();
      for (let i = 0; i < n; i++) {
        const t = performance.now();
        await roundTrip(++sequence);
        latencies.push(performance.now() - t);
      }
      return performance.now() - start;
    },
    close: () => closeAll([socket]),
  };
}

/**
 * Pipelined requests, `window` in flight on one connection, after an
 * untimed warm-up of `warmup` requests.
 *
 * @param wire How to speak to the server.
 * @param port The server's port on 127.0.0.1.
 * @param window Requests in flight.
 * @param warmup Requests before timing.
 * @returns The runner; a unit is one request.
 */
export async function pipelinedRunner(
  wire: Wire,
  port: number,
  window: number,
  warmup: number,
): Promise<Runner> {
  const socket = await open(wire, "127.0.0.1", port, "bench");
  const run = pipelinedRuns(wire, socket, window);
  await deadline(run(warmup), "pipelined warm-up");
  return {
    perUnit: 1,
    async block(n) {
      const start = performance.now();
      await deadline(run(n), "pipelined");
      return performance.now() - start;
    },
    close: () => closeAll([socket]),
  };
}

/**
 * Fan-out: `receivers` connections and one sender; a block sends its
 * requests at once, the server relays each to every receiver and answers
 * the sender, and the block ends once every delivery and reply arrived.
 *
 * @param wire How to speak to the server.
 * @param port The server's port on 127.0.0.1.
 * @param receivers Connections that receive every relay.
 * @returns The runner; a unit is one request of the sender.
 */
export async function fanoutRunner(
  wire: Wire,
  port: number,
  receivers: number,
): Promise<Runner> {
  const sockets = await openMany(wire, ["127.0.0.1"], port, receivers, 0);
  let remaining = 0;
  let delivered = Promise.withResolvers<void>();
  const delivery = (): void => {
    if (--remaining === 0) delivered.resolve();
  };
  for (const socket of sockets) {
    socket.onmessage = (event) => wire.read(event.data, socket, delivery);
  }
  const sender = await open(wire, "127.0.0.1", port, "sender&fanout=sender");
  // Replies of the current block: sequences first..last, each counted once.
  let first = 1;
  let last = 0;
  let seen = new Uint8Array(0);
  let acked = 0;
  let answered = Promise.withResolvers<void>();
  const ack = (sequence: number): void => {
    const i = sequence - first;
    if (i >= 0 && sequence <= last && !seen[i]) {
      seen[i] = 1;
      if (++acked === last - first + 1) answered.resolve();
    }
  };
  sender.onmessage = (event) => wire.read(event.data, sender, ack);
  return {
    perUnit: receivers,
    async block(n) {
      first = last + 1;
      last += n;
      seen = new Uint8Array(n);
      acked = 0;
      remaining = receivers * n;
      delivered = Promise.withResolvers<void>();
      answered = Promise.withResolvers<void>();
      const start = performance.now();
      for (let i = first; i <= last; i++) sender.send(wire.request(i));
      await deadline(
        Promise.all([delivered.promise, answered.promise]),
        "fan-out",
      );
      return performance.now() - start;
    },
    close: () => closeAll([...sockets, sender]),
  };
}

/** One server to measure: its port on 127.0.0.1 and the wire it speaks. */
export interface Target {
  /** The wire's name ({@linkcode wireFor}). */
  wire: string;
  /** The server's port. */
  port: number;
}

/**
 * Runs one workload against every target, interleaved: `count` units split
 * into `blocks` blocks, each block run on every target in turn, the order
 * reversed every other block. Drift of a shared, noisy machine (another
 * process, the CPU's clock, the host) then falls on every server alike.
 *
 * @param workload `sequential`, `pipelined` or `fanout`.
 * @param targets The servers.
 * @param count Timed units per target.
 * @param size Warm-up round trips (sequential), requests in flight
 * (pipelined) or receivers (fan-out).
 * @param blocks How many blocks to split `count` into.
 * @returns One result per target, in their order: requests/s (and p50 and
 * p99 latency in ms, sequential) or deliveries/s (fan-out).
 */
export async function interleaved(
  workload: string,
  targets: Target[],
  count: number,
  size: number,
  blocks: number,
): Promise<Record<string, number>[]> {
  const runners: Runner[] = [];
  for (const { wire: name, port } of targets) {
    const wire = wireFor(name);
    switch (workload) {
      case "sequential":
        runners.push(await sequentialRunner(wire, port, size || 1000));
        break;
      case "pipelined":
        runners.push(
          await pipelinedRunner(wire, port, size || 100, Math.min(5000, count)),
        );
        break;
      case "fanout":
        runners.push(await fanoutRunner(wire, port, size || 100));
        break;
      default:
        throw new TypeError(`Cannot run workload: unknown "${workload}"`);
    }
  }
  const elapsed = runners.map(() => 0);
  const order = runners.map((_, i) => i);
  for (let b = 0; b < blocks; b++) {
    const n = Math.floor(count * (b + 1) / blocks) -
      Math.floor(count * b / blocks);
    for (const i of b % 2 ? order.toReversed() : order) {
      elapsed[i] += await runners[i].block(n);
    }
  }
  await Promise.all(runners.map((runner) => runner.close()));
  return runners.map((runner, i): Record<string, number> => {
    const perSecond = count * runner.perUnit / (elapsed[i] / 1000);
    if (workload === "fanout") return { deliveriesPerSecond: perSecond };
    if (!runner.latencies) return { requestsPerSecond: perSecond };
    const sorted = Float64Array.from(runner.latencies).sort();
    return {
      requestsPerSecond: perSecond,
      p50Ms: percentile(sorted, 0.5),
      p99Ms: percentile(sorted, 0.99),
    };
  });
}

/**
 * Runs of pipelined requests on one lean connection: each run sends `total`
 * requests numbered from 1, `window` in flight, and resolves once every one
 * was answered, each reply counted once by its sequence.
 *
 * @param wire How to speak to the server.
 * @param socket An open connection on that wire.
 * @param window Requests in flight.
 * @returns A run of `total` requests.
 */
export function pipelinedRuns(
  wire: Wire,
  socket: WebSocket,
  window: number,
): (total: number) => Promise<void> {
  return (total) =>
    new Promise<void>((resolve, reject) => {
      const seen = new Uint8Array(total + 1);
      let sent = 0;
      let received = 0;
      const reply = (sequence: number): void => {
        if (sequence <= 0) return;
        if (sequence > total || seen[sequence]) {
          return reject(new Error(`Cannot count reply ${sequence}`));
        }
        seen[sequence] = 1;
        received++;
        if (sent < total) socket.send(wire.request(++sent));
        else if (received === total) resolve();
      };
      socket.onmessage = (event) => wire.read(event.data, socket, reply);
      while (sent < Math.min(window, total)) socket.send(wire.request(++sent));
    });
}

async function rss(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/rss`);
  return (await response.json()).rss;
}

/**
 * Idle connections: the server's RSS growth per open connection.
 *
 * @param wire How to speak to the server.
 * @param port The server's port on 127.0.0.1.
 * @param count Connections.
 * @returns bytes per connection.
 */
export async function idle(
  wire: Wire,
  port: number,
  count: number,
): Promise<Record<string, number>> {
  const before = await rss(port);
  const sockets = await openMany(wire, ["127.0.0.1"], port, count, 0);
  // Let the server settle the last handshakes before it is weighed.
  await new Promise((resolve) => setTimeout(resolve, 200));
  const after = await rss(port);
  await closeAll(sockets);
  return { bytesPerConnection: (after - before) / count };
}

/**
 * Holds up to `count` connections spread over `BENCH_HOSTS` until stdin
 * closes; prints `{"opened": n}` once they are open (fewer than `count`
 * when the server or this process ran out of descriptors).
 *
 * @param wire How to speak to the server.
 * @param port The server's port on every host.
 * @param count Connections to open.
 * @param first Number of the first user (unique across processes).
 */
export async function hold(
  wire: Wire,
  port: number,
  count: number,
  first: number,
): Promise<void> {
  const hosts = (Deno.env.get("BENCH_HOSTS") ?? "127.0.0.1").split(",");
  const sockets: WebSocket[] = [];
  const batch = 100;
  let failure = "";
  for (let start = 0; start < count && failure === ""; start += batch) {
    const end = Math.min(count, start + batch);
    const opening: Promise<WebSocket>[] = [];
    for (let i = start; i < end; i++) {
      opening.push(open(wire, hosts[i % hosts.length], port, `h${first + i}`));
    }
    for (const result of await Promise.allSettled(opening)) {
      if (result.status === "fulfilled") sockets.push(result.value);
      else failure = String(result.reason?.message ?? result.reason);
    }
  }
  console.log(JSON.stringify({ opened: sockets.length, failure }));
  for await (const _ of Deno.stdin.readable) { /* wait for EOF */ }
  await closeAll(sockets);
}

if (import.meta.main) {
  if (Deno.args[0] === "interleave") {
    // interleave <workload> <count> <size> <blocks> <wire>@<port>...
    const [, workload, countText, sizeText, blocksText, ...rest] = Deno.args;
    const targets = rest.map((target) => {
      const at = target.lastIndexOf("@");
      return { wire: target.slice(0, at), port: Number(target.slice(at + 1)) };
    });
    const results = await interleaved(
      workload,
      targets,
      Number(countText),
      Number(sizeText),
      Number(blocksText),
    );
    console.log(JSON.stringify(results));
    Deno.exit(0);
  }
  const [wireName, workload, portText, countText, sizeText] = Deno.args;
  const wire = wireFor(wireName);
  const port = Number(portText);
  const count = Number(countText);
  const size = Number(sizeText ?? 0);
  let result: Record<string, number>;
  switch (workload) {
    case "sequential":
    case "pipelined":
    case "fanout":
      [result] = await interleaved(
        workload,
        [{ wire: wireName, port }],
        count,
        size,
        1,
      );
      break;
    case "idle":
      result = await idle(wire, port, count);
      break;
    case "hold":
      await hold(wire, port, count, size);
      Deno.exit(0);
      break;
    default:
      throw new TypeError(`Cannot run workload: unknown "${workload}"`);
  }
  console.log(JSON.stringify(result));
}
