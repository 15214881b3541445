/**
 * The opt-in 100,000-idle-connection workload (`BENCH_ONLY=idle100k deno
 * task bench`): one server process (raw, then Duplex) holds the connections
 * of several lean client processes, each under the hard open-files limit.
 *
 * Loopback has about 28,000 ephemeral ports (32768–60999) per destination
 * address, and Deno's `WebSocket` cannot bind a source address; so the
 * server listens on the same port of 127.0.0.1 … 127.0.0.5 (`BENCH_HOSTS`)
 * and the clients spread their connections over those five destinations
 * (Linux picks ephemeral ports per 4-tuple), room for 140,000.
 * Everything stays on loopback.
 *
 * The count is bounded by the hard open-files limit of one process: a
 * server needs one descriptor per connection. Where that limit is lower than
 * 100,000 (a container that cannot raise it), the workload holds as many as
 * it allows and says so in the row's note.
 * `bench/guest/run.sh` runs it in a QEMU guest that can raise the limit
 * (bench/guest/README.md).
 *
 * @module
 */

import type { Row, ServerName } from "./report.ts";
import { firstLine, spawnDeno, spawnServer } from "./process.ts";

/** The number of connections the workload aims for. */
export const IDLE_MANY_TARGET = 100_000;
/** Loopback destinations the connections are spread over. */
export const IDLE_MANY_HOSTS: string[] = Array.from(
  { length: 5 },
  (_, i) => `127.0.0.${i + 1}`,
);
/** Descriptors kept free in every process (listeners, runtime, pipes). */
const SPARE = 200;

const here = new URL(".", import.meta.url);

/** Options of {@linkcode measureIdleMany}. */
export interface IdleManyOptions {
  /**
   * Aim for 10,000 connections instead of 100,000.
   * @default {false}
   */
  quick?: boolean;
  /**
   * Runs per server (interleaved).
   * @default {1}
   */
  repeats?: number;
}

async function hardLimit(): Promise<number> {
  const { stdout } = await new Deno.Command("bash", {
    args: ["-c", "ulimit -Hn"],
    stdout: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout).trim();
  return text === "unlimited" ? 1_048_576 : Number(text);
}

async function rss(port: number): Promise<number> {
  const response = await fetch(`http://127.0.0.1:${port}/rss`);
  return (await response.json()).rss;
}

interface Held {
  opened: number;
  bytesPerConnection: number;
  failure: string;
}

async function holdOnce(
  server: ServerName,
  target: number,
  perProcess: number,
) {
  const hosts = IDLE_MANY_HOSTS.join(",");
  const running = await spawnServer([
    Deno.execPath(),
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    new URL(`${server}_server.ts`, here).pathname,
  ], { BENCH_HOSTS: hosts });
  const clients: Deno.ChildProcess[] = [];
  try {
    const before = await rss(running.port);
    const processes = Math.ceil(target / perProcess);
    const reports: Promise<{ line: string }>[] = [];
    for (let i = 0; i < processes; i++) {
      const count = Math.min(perProcess, target - i * perProcess);
      const child = spawnDeno([
        new URL("lean_client.ts", here).pathname,
        "original",
        "hold",
        String(running.port),
        String(count),
        String(i * perProcess),
      ], { env: { BENCH_HOSTS: hosts }, stdin: "piped" });
      clients.push(child);
      reports.push(firstLine(child.stdout));
    }
    let opened = 0;
    let failure = "";
    for (const report of await Promise.all(reports)) {
      const held = JSON.parse(report.line);
      opened += held.opened;
      failure ||= held.failure;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
    const after = await rss(running.port);
    return {
      opened,
      bytesPerConnection: opened > 0 ? (after - before) / opened : NaN,
      failure,
    };
  } finally {
    for (const child of clients) await child.stdin.close().catch(() => {});
    for (const child of clients) await child.status;
    await running.stop();
  }
}

/**
 * Runs the workload for the raw server and for Duplex.
 *
 * @param options Quick mode and repeats.
 * @returns Two rows: RSS bytes per connection (target ≤ 1.15× raw) and the
 * connections held (target 100,000).
 */
export async function measureIdleMany(
  options: IdleManyOptions = {},
): Promise<Row[]> {
  const limit = await hardLimit();
  const aim = options.quick ? 10_000 : IDLE_MANY_TARGET;
  const target = Math.min(aim, limit - SPARE);
  const perProcess = Math.min(20_000, limit - SPARE);
  const runs: Record<"raw" | "duplex", Held[]> = { raw: [], duplex: [] };
  for (let repeat = 0; repeat < (options.repeats ?? 1); repeat++) {
    for (const server of ["raw", "duplex"] as const) {
      const held = await holdOnce(server, target, perProcess);
      console.error(
        `idle ${server}: ${held.opened} held, ${
          Math.round(held.bytesPerConnection)
        } B/connection${held.failure ? ` (${held.failure})` : ""}`,
      );
      runs[server].push(held);
    }
  }
  const pick = (
    server: "raw" | "duplex",
    key: "opened" | "bytesPerConnection",
  ) => runs[server].map((held) => held[key]);
  const median = (values: number[]) =>
    [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  const capped = target < aim
    ? `capped at ${
      target.toLocaleString("en-US")
    } by this machine's hard open-files limit (${limit}; raising it needs CAP_SYS_RESOURCE)`
    : `aimed at ${target.toLocaleString("en-US")}`;
  const label = `${aim.toLocaleString("en-US")} idle connections (opt-in)`;
  const processes = Math.ceil(target / perProcess);
  return [
    {
      section: "Memory (idle connections, lean client)",
      workload: label,
      wire: "original",
      figure: "server RSS bytes/connection",
      higherIsBetter: false,
      target: { op: "<=", bound: 1.15, of: "ratio" },
      status: "measured",
      medians: {
        raw: median(pick("raw", "bytesPerConnection")),
        duplex: median(pick("duplex", "bytesPerConnection")),
      },
      runs: {
        raw: pick("raw", "bytesPerConnection"),
        duplex: pick("duplex", "bytesPerConnection"),
      },
      note: `${capped}; ${processes} client process${
        processes === 1 ? "" : "es"
      }, destinations ${IDLE_MANY_HOSTS[0]}–${IDLE_MANY_HOSTS.at(-1)}`,
    },
    {
      section: "Memory (idle connections, lean client)",
      workload: label,
      wire: "original",
      figure: "connections held by one server",
      higherIsBetter: true,
      target: { op: ">=", bound: aim, of: "value" },
      status: "measured",
      medians: {
        raw: median(pick("raw", "opened")),
        duplex: median(pick("duplex", "opened")),
      },
      runs: { raw: pick("raw", "opened"), duplex: pick("duplex", "opened") },
    },
  ];
}
