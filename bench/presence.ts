/**
 * Presence cost: the chat server (one process, `presenceInterval` 1 s) and
 * `duplex.v1` clients on raw WebSockets in this process.
 *
 * - storm: N clients join one after the other (50 connecting at a time).
 *   "per-user" clients do not listen to the feed and get one
 *   `presence.joined` per later user (what every duplex.v1 client got before
 *   the feed); "diff" clients call `presence.listen` on open and get one
 *   `presence.state`, then at most one `presence.diff` per second.
 * - churn: 1,000 users online (listening, or not), one client connecting and
 *   disconnecting 100 times a second with fresh ids for 10 s (each cycle
 *   waits for its open and close, so a busy server gets fewer), and
 *   `users.list` asked every 50 ms meanwhile. A join and leave within one
 *   interval cancel out: diff clients hear of none of them.
 *
 * Figures: presence frames received (total, per client, and the most any
 * client got; for diff clients only `presence.state` and `presence.diff`,
 * the per-user frames that reach them between connecting and listening are
 * a column of their own), the server's CPU time (from /proc) and, for churn, the
 * `users.list` p50. The table is printed, then the JSON of every row as the
 * last line.
 *
 *   deno run -A bench/presence.ts            # every case
 *   deno run -A bench/presence.ts server     # internal: the server process
 *
 * @module
 */

import { createChatServer } from "../server.ts";
import { spawnDeno } from "./process.ts";

const self = new URL(import.meta.url).pathname;
const INTERVAL = 1_000;

/** One row of the table. */
export interface PresenceRow {
  /** What ran. */
  name: string;
  /** Presence frames received by every client together. */
  frames: number;
  /** Frames per client (average). */
  perClient: number;
  /** The most frames one client received. */
  maxPerClient: number;
  /** Server CPU time, ms. */
  cpuMs: number;
  /** `users.list` p50, ms (churn only). */
  listP50?: number;
  /**
   * Diff clients: per-user frames received between connecting and their
   * `presence.listen` (the chat still counts them as older clients).
   */
  early?: number;
}

function serve(): void {
  const server = createChatServer({
    presenceInterval: INTERVAL,
    // Every client comes from 127.0.0.1.
    maxConnections: 100_000,
    maxConnectionsPerAddress: 100_000,
  });
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  console.log(JSON.stringify({ port: http.addr.port }));
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    await http.shutdown();
    Deno.exit(0);
  });
}

/** The server process: its port, pid and CPU time. */
async function startServer() {
  const child = spawnDeno([self, "server"]);
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start the presence server: ${text}`);
    text += value;
  }
  const drain = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  const { port } = JSON.parse(text.slice(0, text.indexOf("\n")));
  const pid = child.pid;
  return {
    port: port as number,
    /** utime + stime of the server, in ms (Linux). */
    cpu(): number {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await drain.catch(() => {});
    },
  };
}

/** A raw duplex.v1 client that counts presence frames. */
class Counter {
  /** Presence frames of the kind the client asked for. */
  frames = 0;
  /** `presence.joined` / `presence.left` of a diff client (before it listened). */
  early = 0;
  last = performance.now();
  socket: WebSocket;
  constructor(
    url: string,
    listen: boolean,
    opened: () => void,
    failed: (error: Error) => void,
  ) {
    const socket = this.socket = new WebSocket(url, "duplex.v1");
    socket.onerror = () => failed(new Error(`Cannot connect ${url}`));
    socket.onopen = () => {
      if (listen) {
        socket.send(
          JSON.stringify({ sequence: 1, type: 1, method: "presence.listen" }),
        );
      }
      opened();
    };
    socket.onmessage = (event) => {
      if (
        typeof event.data !== "string" ||
        !event.data.includes('"method":"presence.')
      ) return;
      this.last = performance.now();
      const perUser = event.data.includes('"method":"presence.joined"') ||
        event.data.includes('"method":"presence.left"');
      if (listen && perUser) this.early++;
      else this.frames++;
    };
  }
}

async function connectAll(
  port: number,
  count: number,
  prefix: string,
  listen: boolean,
): Promise<Counter[]> {
  const clients: Counter[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(count, i + 50); j++) {
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      clients.push(
        new Counter(
          `ws://127.0.0.1:${port}/?user=${prefix}${j}`,
          listen,
          resolve,
          reject,
        ),
      );
      batch.push(promise);
    }
    await Promise.all(batch);
  }
  return clients;
}

/** Waits until no presence frame arrived for `quiet` ms. */
async function settle(clients: Counter[], quiet = INTERVAL * 2): Promise<void> {
  while (true) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const last = Math.max(...clients.map((client) => client.last));
    if (performance.now() - last > quiet) return;
  }
}

async function closeAll(clients: Counter[]): Promise<void> {
  await Promise.all(clients.map(({ socket }) =>
    new Promise((resolve) => {
      if (socket.readyState === WebSocket.CLOSED) return resolve(undefined);
      socket.onclose = resolve;
      socket.close();
    })
  ));
}

function row(name: string, clients: Counter[], cpuMs: number): PresenceRow {
  const frames = clients.reduce((sum, client) => sum + client.frames, 0);
  const early = clients.reduce((sum, client) => sum + client.early, 0);
  return {
    name,
    ...(early > 0 ? { early } : {}),
    frames,
    perClient: Math.round(frames / clients.length * 10) / 10,
    maxPerClient: Math.max(...clients.map((client) => client.frames)),
    cpuMs,
  };
}

async function storm(count: number, listen: boolean): Promise<PresenceRow> {
  const server = await startServer();
  try {
    const before = server.cpu();
    const started = performance.now();
    const clients = await connectAll(server.port, count, "u", listen);
    await settle(clients);
    const cpuMs = server.cpu() - before;
    const seconds = (performance.now() - started) / 1000;
    const result = row(
      `storm: ${count.toLocaleString("en")} joins in ${seconds.toFixed(1)} s, ${
        listen ? "diff" : "per-user"
      }`,
      clients,
      cpuMs,
    );
    await closeAll(clients);
    return result;
  } finally {
    await server.stop();
  }
}

async function churn(listen: boolean): Promise<PresenceRow> {
  const server = await startServer();
  try {
    const clients = await connectAll(server.port, 1_000, "u", listen);
    await settle(clients);
    for (const client of clients) client.frames = client.early = 0;
    const prober = new WebSocket(
      `ws://127.0.0.1:${server.port}/?user=prober`,
      "duplex.v1",
    );
    await new Promise((resolve) => prober.onopen = resolve);
    const sent = new Map<number, number>();
    const latencies: number[] = [];
    prober.onmessage = (event) => {
      const frame = JSON.parse(event.data);
      const at = sent.get(frame.sequence);
      if (frame.type === 2 && at !== undefined) {
        latencies.push(performance.now() - at);
        sent.delete(frame.sequence);
      }
    };
    const before = server.cpu();
    const started = performance.now();
    let sequence = 0;
    const ask = setInterval(() => {
      sent.set(++sequence, performance.now());
      prober.send(
        JSON.stringify({ sequence, type: 1, method: "users.list" }),
      );
    }, 50);
    let cycle = 0;
    while (performance.now() - started < 10_000) {
      const next = started + cycle * 10;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const socket = new WebSocket(
        `ws://127.0.0.1:${server.port}/?user=churn-${cycle++}`,
        "duplex.v1",
      );
      await new Promise((resolve) => socket.onopen = resolve);
      socket.close();
      await new Promise((resolve) => socket.onclose = resolve);
    }
    clearInterval(ask);
    await settle(clients);
    const cpuMs = server.cpu() - before;
    latencies.sort((a, b) => a - b);
    const result = row(
      `churn: ${cycle} cycles in 10 s, 1,000 online, ${
        listen ? "diff" : "per-user"
      }`,
      clients,
      cpuMs,
    );
    result.listP50 = Math.round(
      latencies[Math.floor(latencies.length / 2)] * 10,
    ) / 10;
    prober.close();
    await new Promise((resolve) => prober.onclose = resolve);
    await closeAll(clients);
    return result;
  } finally {
    await server.stop();
  }
}

/**
 * Runs every case.
 *
 * @returns The rows.
 */
export async function benchPresence(): Promise<PresenceRow[]> {
  const rows: PresenceRow[] = [];
  rows.push(await storm(1_000, false));
  rows.push(await storm(1_000, true));
  rows.push(await storm(10_000, true));
  rows.push(await churn(false));
  rows.push(await churn(true));
  return rows;
}

/**
 * The table of the rows, in Markdown.
 *
 * @param rows The rows.
 * @returns The table.
 */
export function presenceTable(rows: PresenceRow[]): string {
  const lines = [
    "| case | presence frames | per client | most to one client | server CPU | users.list p50 | per-user frames before listening |",
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
  ];
  for (const r of rows) {
    lines.push(
      `| ${r.name} | ${
        r.frames.toLocaleString("en")
      } | ${r.perClient} | ${r.maxPerClient} | ${r.cpuMs} ms | ${
        r.listP50 === undefined ? "" : `${r.listP50} ms`
      } | ${r.early?.toLocaleString("en") ?? ""} |`,
    );
  }
  return lines.join("\n");
}

if (import.meta.main) {
  if (Deno.args[0] === "server") serve();
  else {
    const rows = await benchPresence();
    console.log(presenceTable(rows));
    console.log(JSON.stringify(rows));
  }
}
