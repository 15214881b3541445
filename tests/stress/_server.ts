/**
 * The stress server: a {@linkcode DuplexServer} in its own process, with
 * handlers the scenarios drive and a `GET /stats` endpoint that reports what
 * the scenarios assert (connections, rooms, pending server→client requests,
 * in-flight handlers, close codes, unhandled errors, memory).
 *
 * Run: `deno run -A --v8-flags=--expose-gc tests/stress/_server.ts '{"port":0}'`.
 * It prints `Listening on 127.0.0.1:<port>` on stdout, and, when `logExec`
 * is set, one `exec <id>` line per executed `work` request, written
 * synchronously so that the lines survive a SIGKILL.
 *
 * @module
 */

import { type BackpressurePolicy, chat, DuplexServer } from "../../server.ts";
import { lagProbe } from "../_lag_probe.ts";

/** The configuration, passed as JSON in the first argument. */
export interface StressServerConfig {
  /** Port; 0 picks one. */
  port?: number;
  /** Server `idleTimeout` in seconds. */
  idleTimeout?: number;
  /** Server `highWaterMark` in bytes. */
  highWaterMark?: number;
  /** Server backpressure policy. */
  backpressure?: BackpressurePolicy;
  /** Print `exec <id>` for every `work` request. */
  logExec?: boolean;
  /** Server `sendBudget` in bytes. */
  sendBudget?: number;
  /** Server `totalSendBudget` in bytes. */
  totalSendBudget?: number;
  /** Server `maxConnections`. */
  maxConnections?: number;
  /** Server `maxConnectionsPerAddress`. */
  maxConnectionsPerAddress?: number;
  /** Milliseconds the authenticate hook waits (an asynchronous check). */
  authDelay?: number;
  /** Sample RSS every 20 ms and report the peak as `rssPeak`. */
  samplePeak?: boolean;
  /** Server `rateLimit` (`false` by default here). */
  rateLimit?: { rate: number; burst: number; maxViolations?: number };
  /** Use the server's default rate limit (frames and bytes). */
  defaultRateLimit?: boolean;
  /** Install the chat (relay, presence, `users.list`). */
  chat?: boolean;
}

/** What `GET /stats` answers. */
export interface StressStats {
  connections: number;
  users: number;
  roomMembers: number;
  rooms: number;
  pendingAsks: number;
  slowRunning: number;
  requestsInFlight: number;
  dropped: number;
  malformed: number;
  rateLimited: number;
  /**
   * Pings and pongs received: the clients' heartbeats, and their answers to
   * the server's keep-alive.
   */
  livenessIn: number;
  executed: number;
  closeCodes: Record<string, number>;
  /** The last close code of each user. */
  closeCodeOf: Record<string, number>;
  unhandled: number;
  errors: number;
  rss: number;
  /** The highest RSS sampled (with `samplePeak`), else `rss`. */
  rssPeak: number;
  heapUsed: number;
  /** The event loop's worst lag so far (ms): a stalled server reads no pong. */
  maxLagMs: number;
}

const config: StressServerConfig = JSON.parse(Deno.args[0] ?? "{}");
const encoder = new TextEncoder();
const closeCodes: Record<string, number> = {};
const closeCodeOf: Record<string, number> = {};
let rssPeak = 0;
if (config.samplePeak) {
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, Deno.memoryUsage().rss);
  }, 20);
  Deno.unrefTimer(sampler);
}
const maxLagMs = lagProbe();
const knownRooms = new Set<string>();
let pendingAsks = 0;
let slowRunning = 0;
let executed = 0;
let unhandled = 0;
let errors = 0;

globalThis.addEventListener("unhandledrejection", (event) => {
  event.preventDefault();
  unhandled++;
  console.error("unhandledrejection", event.reason);
});
globalThis.addEventListener("error", (event) => {
  event.preventDefault();
  unhandled++;
  console.error("error", event.error);
});

function metric(text: string, name: string): number {
  const match = text.match(new RegExp(`^${name} (\\S+)$`, "m"));
  return match ? Number(match[1]) : 0;
}

async function stats(): Promise<StressStats> {
  const text = await (await server.fetch(
    new Request("http://127.0.0.1/metrics"),
  )).text();
  let roomMembers = 0;
  let rooms = 0;
  for (const room of knownRooms) {
    const members = server.members(room).length;
    roomMembers += members;
    if (members) rooms++;
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  const memory = Deno.memoryUsage();
  return {
    connections: server.connections,
    users: server.users().length,
    roomMembers,
    rooms,
    pendingAsks,
    slowRunning,
    requestsInFlight: metric(text, "duplex_requests_in_flight"),
    dropped: metric(text, "duplex_notifications_dropped_total"),
    malformed: metric(text, "duplex_malformed_frames_total"),
    rateLimited: metric(text, "duplex_rate_limited_total"),
    livenessIn: metric(text, 'duplex_frames_received_total\\{type="ping"\\}') +
      metric(text, 'duplex_frames_received_total\\{type="pong"\\}'),
    executed,
    closeCodes: { ...closeCodes },
    closeCodeOf: { ...closeCodeOf },
    unhandled,
    errors,
    rss: memory.rss,
    rssPeak: Math.max(rssPeak, memory.rss),
    heapUsed: memory.heapUsed,
    maxLagMs: maxLagMs(),
  };
}

const server = new DuplexServer({
  idleTimeout: config.idleTimeout ?? 30,
  highWaterMark: config.highWaterMark,
  backpressure: config.backpressure,
  rateLimit: config.defaultRateLimit ? undefined : config.rateLimit ?? false,
  maxInFlight: 10_000,
  sendBudget: config.sendBudget,
  totalSendBudget: config.totalSendBudget,
  maxConnections: config.maxConnections ?? 100_000,
  maxConnectionsPerAddress: config.maxConnectionsPerAddress ?? 100_000,
  authenticate: config.authDelay === undefined
    ? undefined
    : async (_request, { url }) => {
      await new Promise((resolve) => setTimeout(resolve, config.authDelay));
      return url.searchParams.get("user") ?? undefined;
    },
  fallback: async (request) => {
    if (new URL(request.url).pathname === "/stats") {
      return Response.json(await stats());
    }
    return new Response("Not found\n", { status: 404 });
  },
});
server.addEventListener("disconnect", (event) => {
  const { code, connection } = event.detail;
  closeCodes[code] = (closeCodes[code] ?? 0) + 1;
  closeCodeOf[connection.user] = code;
});
server.addEventListener("error", () => errors++);
if (config.chat) chat(server);

server.handle("echo", (params) => params);
server.handle("big", (size) => "x".repeat(Number(size)));
server.handle("work", (params) => {
  const id = (params as { id: string }).id;
  executed++;
  if (config.logExec) Deno.stdout.writeSync(encoder.encode(`exec ${id}\n`));
  return id;
});
server.handle("join", (params, { from }) => {
  const room = String(params);
  knownRooms.add(room);
  server.join(room, from!);
  return true;
});
server.handle(
  "leave",
  (params, { from }) => server.leave(String(params), from!),
);
server.handle("slow", async (params, { signal }) => {
  slowRunning++;
  try {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Number(params));
      signal.addEventListener("abort", () => {
        clearTimeout(timer);
        resolve();
      }, { once: true });
    });
    return "slow";
  } finally {
    slowRunning--;
  }
});
server.handle("ask", async (_params, { peer }) => {
  pendingAsks++;
  try {
    return await peer.request("are you there?", { timeout: 600_000 });
  } catch (error) {
    return (error as Error).name;
  } finally {
    pendingAsks--;
  }
});
server.handle("blast", (params) => {
  const { room, count, size } = params as {
    room: string;
    count: number;
    size: number;
  };
  const payload = "x".repeat(size);
  for (let i = 0; i < count; i++) {
    server.notify(payload, { room, method: "blast" });
  }
  return count;
});
server.handle("say", (params, { from }) => {
  const { room, text } = params as { room: string; text: string };
  server.notify(text, { room, from, method: "say" });
  return true;
});

const http = Deno.serve({
  hostname: "127.0.0.1",
  port: config.port ?? 0,
  onListen({ hostname, port }) {
    console.log(`Listening on ${hostname}:${port}`);
  },
}, server.fetch);

Deno.addSignalListener("SIGTERM", async () => {
  await server.shutdown();
  await http.shutdown();
  Deno.exit(0);
});
