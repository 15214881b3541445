/**
 * `deno task bench`: Duplex against a raw Deno WebSocket baseline, in the same
 * run on the same machine.
 *
 * - Server alone: the same lean external client (bench/lean_client.ts: a raw
 *   `WebSocket`, hand-written frames, replies only `JSON.parse`d) drives the
 *   raw server and the Duplex chat server, once with the original protocol
 *   and once as a `duplex.v1` client, so the ratio is the servers' own cost.
 * - End-to-end: our `Client` against our server vs a raw client against the
 *   raw server (bench/load.ts), as before.
 * - Memory: server RSS per idle connection at 5,000 connections.
 * - Write coalescing: the lean client offers `duplex.batch` to Duplex (and
 *   reads its batch frames) and is a plain `duplex.v1` client to raw.
 * - Sessions on vs off, server alone: the lean client with and without a
 *   session (wire `session`) against two Duplex servers, interleaved;
 *   pipelined and fan-out on/off ≥ 0.90, and sequential round trips as a
 *   guard against acknowledgement stalls.
 * - The benchmarks other features keep in files of their own
 *   (bench/others.ts: sessions_bench.ts, streams.ts, presence.ts), each
 *   figure with its issue's target.
 *
 * Every measurement starts fresh server processes and runs its client in
 * another process. The lean client's throughput and latency workloads run
 * every server of a row at once and interleave them in blocks within the
 * client process (`runInterleaved`), so the machine's drift falls on all of
 * them alike (sequential: the servers pinned to one CPU and the client to
 * another, `PIN`); memory and end-to-end run one server at a time, interleaved
 * within each repeat. The tables
 * show medians and ratios to raw Deno, each with its target and ✓/✗.
 * `--peers` adds Socket.IO 4 and `ws` servers under Node (bench/peers/) to
 * the server-alone and memory workloads (and leaves out end-to-end and the
 * library figures, which do not involve them).
 *
 * Options (environment): BENCH_REPEATS (default 3), BENCH_BLOCKS (blocks
 * of an interleaved workload, default 20), BENCH_PIN=0 (no CPU pinning),
 * BENCH_SEQ_WARMUP (untimed round trips before a sequential workload,
 * default 20,000), BENCH_QUICK=1 (small counts, for a smoke run),
 * BENCH_ONLY=seq,pipe100,... (workload ids or section ids: server, e2e,
 * memory, coalescing, session-server, extras, sessions, streams, presence).
 * The opt-in workload BENCH_ONLY=idle100k holds 100,000 idle connections
 * (bench/idle_many.ts).
 *
 * Full runs write bench/results/latest.{json,md,svg} (latest-peers.* with
 * `--peers`); quick and partial runs write bench/results/scratch.*.
 *
 * @module
 */

import { median } from "./stats.ts";
import {
  measureTracker,
  type TrackerFigures,
} from "./request_tracker_bench.ts";
import { bundleSize } from "../scripts/bundle_size.ts";
import {
  type ClusterFigures,
  meetsTarget,
  type Results,
  resultsMarkdown,
  type Row,
  type ServerName,
  type Target,
  writeResults,
} from "./report.ts";
import { PEERS_DIR, type PeerVersions, preparePeers } from "./peers.ts";
import { measureIdleMany } from "./idle_many.ts";
import { measureOthers } from "./others.ts";
import {
  type RunningServer,
  spawnDeno,
  spawnRaised,
  spawnServer,
} from "./process.ts";

const REPEATS = Number(Deno.env.get("BENCH_REPEATS") ?? 3);
const QUICK = Deno.env.get("BENCH_QUICK") === "1";
/** Blocks an interleaved workload is split into (BENCH_BLOCKS). */
const BLOCKS = Number(Deno.env.get("BENCH_BLOCKS") ?? 20);
/**
 * CPUs of the interleaved sequential workloads (BENCH_PIN=0: none): the
 * servers on one, the client on another, each process with every thread of
 * it. On a VM a wake-up across CPUs costs about as much as a whole round trip
 * on one, and the scheduler places each process anew, so unpinned sequential
 * latencies moved by 2–3× between server processes of one run (one server
 * sharing the client's CPU, the other not); pinned, every server is reached
 * the same way, as from another machine. Needs 2 CPUs and `taskset`
 * (util-linux).
 */
const PIN: { server: string; client: string } | undefined = (() => {
  if (Deno.env.get("BENCH_PIN") === "0" || navigator.hardwareConcurrency < 2) {
    return undefined;
  }
  try {
    const probe = new Deno.Command("taskset", { args: ["-c", "0", "true"] });
    return probe.outputSync().success
      ? { server: "1", client: "0" }
      : undefined;
  } catch {
    return undefined;
  }
})();
/**
 * Untimed round trips before a sequential workload is timed (its `size`),
 * BENCH_SEQ_WARMUP to change: what a long-running server's steady state is.
 * V8 compiles a server's hot path with its top tier (TurboFan) only after
 * about 16,000 sequential round trips, the raw server's and Duplex's alike.
 * With the 1,000 of earlier runs, the 10,000 timed round trips ran on the
 * tier below (Maglev), where Duplex's longer path costs relatively more: the
 * batch row read 0.89–0.92 and the plain wire 0.92–0.95 there, against
 * 0.96–1.00 after 20,000 (docs/performance.md, "Sequential rows: timed past
 * the optimizing compiler").
 */
const SEQUENTIAL_WARMUP = Number(
  Deno.env.get("BENCH_SEQ_WARMUP") ?? (QUICK ? 1000 : 20_000),
);
/** The fewest sends of the one sender in a fan-out block. */
const FANOUT_BLOCK = 200;
const ONLY = Deno.env.get("BENCH_ONLY")?.split(",");
const PEERS = Deno.args.includes("--peers");
const here = new URL(".", import.meta.url);

/** Which program drives the servers. */
type Driver = "lean" | "e2e";

/** One figure a workload reports. */
interface FigureSpec {
  key: string;
  label: string;
  higherIsBetter: boolean;
  target?: Target;
  /** Factor from the driver's unit to the label's (ms → µs: 1,000). */
  scale?: number;
}

/** One entry of the benchmark table. */
interface Workload {
  /** Name for BENCH_ONLY. */
  id: string;
  /** Section id for BENCH_ONLY, and its title. */
  section:
    | "server"
    | "e2e"
    | "memory"
    | "coalescing"
    | "sessions"
    | "session-server";
  label: string;
  /** Wires the lean client speaks to raw and Duplex ("" for e2e). */
  wires: string[];
  driver: Driver;
  /**
   * Workload name of the driver, count and size (window, receivers; for a
   * sequential workload, its untimed warm-up round trips).
   */
  workload: string;
  count: number;
  size?: number;
  /** Whether the peers join (with `--peers`, on the original wire). */
  peers: boolean;
  figures: FigureSpec[];
  /** Why the workload cannot run yet (the feature it measures is missing). */
  missing?: string;
  /**
   * The wire the lean client speaks to Duplex when it differs from the
   * raw server's (`batch`: it also offers `duplex.batch`).
   */
  duplexWire?: string;
  /**
   * Duplex against itself: the lean client speaks `wires[0]` (off) and
   * `wires[1]` (on) to two Duplex bench servers, interleaved; the rows
   * are both medians and their ratio on/off, with `figures[0].target`.
   */
  onOff?: boolean;
}

const SECTIONS: Record<Workload["section"], string> = {
  server: "Server alone (same lean client for every server)",
  e2e: "End-to-end (our Client vs a raw client)",
  memory: "Memory (idle connections, lean client)",
  coalescing: "Write coalescing (duplex.v1 batch frames)",
  sessions: "Sessions on vs off",
  "session-server": "Sessions on vs off, server alone (lean client)",
};

const at = (op: ">=" | "<=", bound: number): Target => ({
  op,
  bound,
  of: "ratio",
});
const requests = (target?: Target): FigureSpec => ({
  key: "requestsPerSecond",
  label: "requests/s",
  higherIsBetter: true,
  target,
});
const deliveries = (target?: Target): FigureSpec => ({
  key: "deliveriesPerSecond",
  label: "deliveries/s",
  higherIsBetter: true,
  target,
});
const latency = (p50?: Target): FigureSpec[] => [
  {
    key: "p50Ms",
    label: "p50 latency (µs)",
    higherIsBetter: false,
    target: p50,
    scale: 1000,
  },
  {
    key: "p99Ms",
    label: "p99 latency (µs)",
    higherIsBetter: false,
    scale: 1000,
  },
];
const BOTH = ["original", "duplex.v1"];
/** Sessions on/off (issue 14): the ratio of Duplex's own two figures. */
const on: Target = { op: ">=", bound: 0.9, of: "value" };

/** The benchmark table: one entry per workload. */
const WORKLOADS: Workload[] = [
  {
    id: "seq",
    section: "server",
    label: "sequential round trips",
    wires: BOTH,
    driver: "lean",
    workload: "sequential",
    count: QUICK ? 2000 : 10_000,
    size: SEQUENTIAL_WARMUP,
    peers: true,
    figures: [requests(at(">=", 0.95)), ...latency(at("<=", 1.05))],
  },
  {
    id: "pipe100",
    section: "server",
    label: "pipelined, 100 in flight",
    wires: BOTH,
    driver: "lean",
    workload: "pipelined",
    count: QUICK ? 20_000 : 100_000,
    size: 100,
    peers: true,
    figures: [requests(at(">=", 0.95))],
  },
  {
    id: "pipe1000",
    section: "server",
    label: "pipelined, 1,000 in flight",
    wires: BOTH,
    driver: "lean",
    workload: "pipelined",
    count: QUICK ? 20_000 : 200_000,
    size: 1000,
    peers: true,
    figures: [requests(at(">=", 0.95))],
  },
  {
    id: "fan100",
    section: "server",
    label: "fan-out to 100 receivers",
    wires: BOTH,
    driver: "lean",
    workload: "fanout",
    count: QUICK ? 1000 : 10_000,
    size: 100,
    peers: true,
    figures: [deliveries()],
  },
  {
    id: "fan1000",
    section: "server",
    label: "fan-out to 1,000 receivers",
    wires: BOTH,
    driver: "lean",
    workload: "fanout",
    count: QUICK ? 100 : 1000,
    size: 1000,
    peers: true,
    figures: [deliveries()],
  },
  {
    id: "e2e-seq",
    section: "e2e",
    label: "sequential round trips",
    wires: [""],
    driver: "e2e",
    workload: "sequential",
    count: QUICK ? 2000 : 10_000,
    size: SEQUENTIAL_WARMUP,
    peers: false,
    figures: [requests(at(">=", 0.9)), ...latency(at("<=", 1.1))],
  },
  {
    id: "e2e-pipe",
    section: "e2e",
    label: "pipelined, 1,000 in flight",
    wires: [""],
    driver: "e2e",
    workload: "pipelined",
    count: QUICK ? 20_000 : 100_000,
    peers: false,
    figures: [requests(at(">=", 0.9))],
  },
  {
    id: "e2e-fan",
    section: "e2e",
    label: "fan-out to 1,000 receivers",
    wires: [""],
    driver: "e2e",
    workload: "fanout",
    count: QUICK ? 200 : 1000,
    peers: false,
    figures: [deliveries(at(">=", 1))],
  },
  {
    id: "idle",
    section: "memory",
    label: `${QUICK ? "1,000" : "5,000"} idle connections`,
    wires: BOTH,
    driver: "lean",
    workload: "idle",
    count: QUICK ? 1000 : 5000,
    peers: true,
    figures: [{
      key: "bytesPerConnection",
      label: "server RSS bytes/connection",
      higherIsBetter: false,
      target: at("<=", 1.15),
    }],
  },
  {
    id: "batch-pipe1000",
    section: "coalescing",
    label: "pipelined, 1,000 in flight",
    wires: ["duplex.v1"],
    driver: "lean",
    workload: "pipelined",
    count: QUICK ? 20_000 : 200_000,
    size: 1000,
    peers: false,
    figures: [requests(at(">=", 1.5))],
    duplexWire: "batch",
  },
  {
    id: "batch-fan1000",
    section: "coalescing",
    label: "fan-out to 1,000 receivers",
    wires: ["duplex.v1"],
    driver: "lean",
    workload: "fanout",
    count: QUICK ? 100 : 1000,
    size: 1000,
    peers: false,
    figures: [deliveries(at(">=", 1.5))],
    duplexWire: "batch",
  },
  {
    id: "batch-seq",
    section: "coalescing",
    label: "sequential round trips (unchanged)",
    wires: ["duplex.v1"],
    driver: "lean",
    workload: "sequential",
    count: QUICK ? 2000 : 10_000,
    size: SEQUENTIAL_WARMUP,
    peers: false,
    figures: [requests(at(">=", 0.95)), ...latency(at("<=", 1.05))],
    duplexWire: "batch",
  },
  ...[
    ["session-pipe1000", "pipelined, 1,000 in flight", "pipelined", 1000],
    ["session-fan100", "fan-out to 100 receivers", "fanout", 100],
    ["session-fan1000", "fan-out to 1,000 receivers", "fanout", 1000],
    // A guard: an ack that nothing answers once cost ~40 ms every 64 round
    // trips (Nagle's algorithm in Deno's client; PROTOCOL.md "Sessions").
    [
      "session-seq",
      "sequential round trips (guard)",
      "sequential",
      SEQUENTIAL_WARMUP,
    ],
  ].map(([id, label, workload, size]): Workload => ({
    id: id as string,
    section: "session-server",
    label: label as string,
    wires: ["duplex.v1", "session"],
    driver: "lean",
    workload: workload as string,
    count: workload === "pipelined"
      ? (QUICK ? 20_000 : 200_000)
      : workload === "sequential"
      ? (QUICK ? 2000 : 10_000)
      : size === 100
      ? (QUICK ? 1000 : 10_000)
      : (QUICK ? 100 : 1000),
    size: size as number,
    peers: false,
    figures: [workload === "fanout" ? deliveries(on) : requests(on)],
    onOff: true,
  })),
];

function selected(id: string, section: string): boolean {
  // --peers: the workloads the peers take part in, plus the not-built rows.
  if (PEERS && ONLY === undefined) {
    return section !== "e2e" && section !== "session-server";
  }
  if (ONLY === undefined) return id !== "idle100k";
  return ONLY.includes(id) || ONLY.includes(section);
}

/** The servers of a workload on a wire. */
function serversFor(workload: Workload, wire: string): ServerName[] {
  const servers: ServerName[] = ["raw", "duplex"];
  // The hand-written Deno chat: the floor of any server of the protocol.
  if (workload.section === "server" && interleavable(workload)) {
    servers.push("hand");
  }
  if (PEERS && workload.peers && wire === "original") {
    servers.push("ws", "socketio");
  }
  return servers;
}

/** How to start each server: the command line after `exec`. */
function serverCommand(server: ServerName): string[] {
  const deno = (file: string) => [
    Deno.execPath(),
    "run",
    "-A",
    "--v8-flags=--expose-gc",
    new URL(file, here).pathname,
  ];
  switch (server) {
    case "raw":
      return deno("raw_server.ts");
    case "duplex":
      return deno("duplex_server.ts");
    case "hand":
      return deno("hand_server.ts");
    case "ws":
      return [
        "node",
        "--expose-gc",
        new URL("peers/ws_server.cjs", here).pathname,
      ];
    case "socketio":
      return [
        "node",
        "--expose-gc",
        new URL("peers/socketio_server.cjs", here).pathname,
      ];
  }
}

/** The wire the lean client speaks to `server` in a workload on `wire`. */
function wireOf(server: ServerName, workload: Workload, wire: string): string {
  if (server === "socketio") return "socketio";
  return server === "duplex" ? workload.duplexWire ?? wire : wire;
}

/**
 * Whether a workload runs interleaved (every server at once, in blocks:
 * {@linkcode runInterleaved}): the lean client's throughput and latency
 * workloads. Memory and the end-to-end workloads run one server at a time.
 */
function interleavable(workload: Workload): boolean {
  return workload.driver === "lean" && workload.workload !== "idle";
}

/**
 * The blocks of an interleaved workload: {@linkcode BLOCKS}, but at least
 * {@linkcode FANOUT_BLOCK} sends in a fan-out block, so that a block still
 * sends a burst that write coalescing can batch, as the whole run did
 * before it was split.
 */
function blocksOf(workload: Workload): number {
  const most = workload.workload === "fanout"
    ? Math.floor(workload.count / FANOUT_BLOCK)
    : workload.count;
  return Math.max(1, Math.min(BLOCKS, most));
}

/**
 * One interleaved measurement: a fresh process of each server, all at
 * once, and one lean client process that splits the workload into
 * {@linkcode BLOCKS} blocks and runs each block on every server in turn
 * (bench/lean_client.ts `interleaved`), so that what the machine does
 * meanwhile (the host, the CPU's clock, another process) falls on every
 * server alike. Each server is idle while another one's block runs.
 */
async function runInterleaved(
  servers: ServerName[],
  wires: string[],
  workload: Workload,
): Promise<Record<string, number>[]> {
  const running: RunningServer[] = [];
  try {
    // Only the latency workload is pinned: in the throughput workloads
    // every process is busy and the scheduler keeps them apart anyway, and
    // the client pinned to one CPU would become the bottleneck (and a
    // server's garbage collector could not use the client's idle time).
    const pin = workload.workload === "sequential" ? PIN : undefined;
    const pinned = (cpu: string | undefined, argv: string[]) =>
      cpu === undefined ? argv : ["taskset", "-c", cpu, ...argv];
    for (const server of servers) {
      running.push(
        await spawnServer(pinned(pin?.server, serverCommand(server)), {
          DUPLEX_PEERS: PEERS_DIR,
        }),
      );
    }
    const { success, stdout } = await spawnRaised(pinned(pin?.client, [
      Deno.execPath(),
      "run",
      "-A",
      new URL("lean_client.ts", here).pathname,
      "interleave",
      workload.workload,
      String(workload.count),
      String(workload.size ?? 0),
      String(blocksOf(workload)),
      ...running.map(({ port }, i) => `${wires[i]}@${port}`),
    ])).output();
    if (!success) {
      throw new Error(`Cannot run ${workload.id}: client failed`);
    }
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    return JSON.parse(lines[lines.length - 1]);
  } finally {
    await Promise.all(running.map((server) => server.stop()));
  }
}

/** One measurement: a fresh server, one client process, its figures. */
async function runOnce(
  server: ServerName,
  workload: Workload,
  wire: string,
): Promise<Record<string, number>> {
  const running = await spawnServer(serverCommand(server), {
    DUPLEX_PEERS: PEERS_DIR,
  });
  try {
    const args = workload.driver === "lean"
      ? [
        new URL("lean_client.ts", here).pathname,
        wireOf(server, workload, wire),
        workload.workload,
        String(running.port),
        String(workload.count),
        String(workload.size ?? 0),
      ]
      : [
        new URL("load.ts", here).pathname,
        server,
        workload.workload,
        String(running.port),
        String(workload.count),
        String(workload.size ?? 0),
      ];
    const { success, stdout } = await spawnDeno(args).output();
    if (!success) {
      throw new Error(`Cannot run ${server} ${workload.id}: client failed`);
    }
    const lines = new TextDecoder().decode(stdout).trim().split("\n");
    return JSON.parse(lines[lines.length - 1]);
  } finally {
    await running.stop();
  }
}

async function measure(workload: Workload, wire: string): Promise<Row[]> {
  const servers = serversFor(workload, wire);
  const results = new Map<ServerName, Record<string, number>[]>(
    servers.map((s) => [s, []]),
  );
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    if (interleavable(workload)) {
      const wires = servers.map((server) => wireOf(server, workload, wire));
      let figures: Record<string, number>[];
      try {
        figures = await runInterleaved(servers, wires, workload);
      } catch (error) {
        console.error(`${workload.id} ${wire}: ${error}`);
        figures = servers.map(() => ({}));
      }
      servers.forEach((server, i) => results.get(server)!.push(figures[i]));
      continue;
    }
    for (const server of servers) {
      try {
        results.get(server)!.push(await runOnce(server, workload, wire));
      } catch (error) {
        console.error(`${server} ${workload.id} ${wire}: ${error}`);
        results.get(server)!.push({});
      }
    }
  }
  return workload.figures.map((figure) => {
    const runs: Row["runs"] = {};
    const medians: Row["medians"] = {};
    for (const server of servers) {
      runs[server] = results.get(server)!.map((r) =>
        (r[figure.key] ?? NaN) * (figure.scale ?? 1)
      );
      medians[server] = median(runs[server]!);
    }
    return {
      section: SECTIONS[workload.section],
      workload: workload.label,
      wire,
      figure: figure.label,
      higherIsBetter: figure.higherIsBetter,
      target: figure.target,
      status: "measured",
      medians,
      runs,
    };
  });
}

/**
 * Sessions on vs off, server alone: two fresh Duplex bench servers driven by
 * one lean client, as a plain `duplex.v1` client (off) of one and with a
 * session (on) of the other, interleaved in blocks ({@linkcode runInterleaved}).
 */
async function measureOnOff(workload: Workload): Promise<Row[]> {
  const [off, on] = workload.wires;
  const results: Record<string, Record<string, number>[]> = {
    [off]: [],
    [on]: [],
  };
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    let figures: Record<string, number>[];
    try {
      figures = await runInterleaved(["duplex", "duplex"], [off, on], workload);
    } catch (error) {
      console.error(`duplex ${workload.id}: ${error}`);
      figures = [{}, {}];
    }
    results[off].push(figures[0]);
    results[on].push(figures[1]);
  }
  return workload.figures.flatMap((figure) => {
    const runsOf = (wire: string) =>
      results[wire].map((r) => r[figure.key] ?? NaN);
    const row = (
      label: string,
      runs: number[],
      value: number,
      target?: Target,
    ): Row => ({
      section: SECTIONS[workload.section],
      workload: workload.label,
      wire: `${off} vs ${on}`,
      figure: label,
      higherIsBetter: figure.higherIsBetter,
      target,
      status: "measured",
      medians: { duplex: value },
      runs: { duplex: runs },
    });
    const offRuns = runsOf(off);
    const onRuns = runsOf(on);
    const ratios = onRuns.map((value, i) => value / offRuns[i]);
    return [
      row(`${figure.label}, off (${off})`, offRuns, median(offRuns)),
      row(`${figure.label}, on (${on})`, onRuns, median(onRuns)),
      row(
        "on/off",
        ratios,
        median(onRuns) / median(offRuns),
        figure.target,
      ),
    ];
  });
}

function notBuilt(workload: Workload): Row[] {
  return workload.figures.map((figure) => ({
    section: SECTIONS[workload.section],
    workload: workload.label,
    wire: workload.wires[0],
    figure: figure.label,
    higherIsBetter: figure.higherIsBetter,
    target: figure.target,
    status: workload.missing!,
    medians: {},
    runs: {},
  }));
}

function progress(row: Row): void {
  const figures = Object.entries(row.medians).map(([server, value]) =>
    `${server} ${value?.toFixed(value > 100 ? 0 : 3)}`
  ).join(", ");
  const met = meetsTarget(row);
  console.error(
    `${row.workload} [${row.wire || "e2e"}] ${row.figure}: ${figures}${
      met === undefined ? "" : met ? " ✓" : " ✗"
    }`,
  );
}

// ---------------------------------------------------------------------------

const started = performance.now();
const loadBefore = Deno.loadavg();
let peerVersions: PeerVersions | undefined;
if (PEERS) peerVersions = await preparePeers();

const rows: Row[] = [];
for (const workload of WORKLOADS) {
  if (!selected(workload.id, workload.section)) continue;
  if (workload.missing !== undefined) {
    rows.push(...notBuilt(workload));
    continue;
  }
  if (workload.onOff) {
    for (const row of await measureOnOff(workload)) {
      progress(row);
      rows.push(row);
    }
    continue;
  }
  for (const wire of workload.wires) {
    for (const row of await measure(workload, wire)) {
      progress(row);
      rows.push(row);
    }
  }
}
// The feature benchmarks of their own files (sessions, streams, presence):
// in the default run, or by their section ids.
if (!PEERS) {
  rows.push(
    ...await measureOthers(
      (section) => ONLY === undefined || ONLY.includes(section),
      QUICK,
    ),
  );
}
if (ONLY?.includes("idle100k")) {
  rows.push(...await measureIdleMany({ quick: QUICK, repeats: REPEATS }));
}

// The library figures do not involve the peers: only in the default run.
const extras = !PEERS && (ONLY === undefined || ONLY.includes("extras"));
const tracker = extras ? await measureTrackerInChild() : undefined;
const cluster = extras ? await measureClusterFanout() : undefined;
const bundle = extras ? await bundleSize() : undefined;
const seconds = (performance.now() - started) / 1000;

/** Cross-instance fan-out on a real redis-server (bench/cluster_fanout.ts). */
async function measureClusterFanout(): Promise<ClusterFigures | undefined> {
  if (QUICK) return undefined;
  const child = spawnDeno([new URL("cluster_fanout.ts", here).pathname]);
  const output = new TextDecoder().decode((await child.output()).stdout);
  if (!(await child.status).success) {
    console.error("cluster fan-out failed (is redis-server installed?)");
    return undefined;
  }
  const lines = output.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

async function measureTrackerInChild(): Promise<TrackerFigures> {
  // A child process with --expose-gc, so heap figures are exact.
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL("request_tracker_bench.ts", here).pathname,
    ],
    stdout: "piped",
    stderr: "inherit",
  });
  const { stdout, success } = await child.output();
  if (!success) return await measureTracker();
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines[lines.length - 1]);
}

if (tracker !== undefined && bundle !== undefined) {
  const section = "Library figures (Duplex alone)";
  const row = (
    figure: string,
    value: number,
    target: Target,
    higherIsBetter: boolean,
  ): Row => ({
    section,
    workload: figure.split(":")[0],
    wire: "",
    figure: figure.split(":")[1],
    higherIsBetter,
    target,
    status: "measured",
    medians: { duplex: value },
    runs: { duplex: [value] },
  });
  rows.push(
    row(
      "RequestTracker:track+resolve pairs/s",
      tracker.pairsPerSecond,
      { op: ">=", bound: 3_000_000, of: "value" },
      true,
    ),
    row(
      `RequestTracker:heap bytes/pending (${tracker.pending} pending)`,
      tracker.bytesPerPending,
      { op: "<=", bound: 300, of: "value" },
      false,
    ),
    row(
      "Client bundle:bytes min+gzip",
      bundle.gzip,
      { op: "<=", bound: 7 * 1024, of: "value" },
      false,
    ),
  );
}

const cpu = (() => {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return info.match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
})();
const machine = `${navigator.hardwareConcurrency} cores (${cpu}), ${
  Math.round(Deno.systemMemoryInfo().total / 2 ** 30)
} GiB, Linux ${Deno.osRelease()}, Deno ${Deno.version.deno}${
  peerVersions === undefined
    ? ""
    : `, Node ${peerVersions.node} (socket.io ${peerVersions.socketIo}, ws ${peerVersions.ws})`
}; load average before the run ${
  loadBefore.map((l) => l.toFixed(2)).join(" ")
}; ${
  PIN === undefined
    ? "nothing pinned"
    : `sequential: servers on CPU ${PIN.server}, client on CPU ${PIN.client}`
}`;
const results: Results = {
  date: new Date().toISOString(),
  machine,
  deno: Deno.version.deno,
  peers: peerVersions,
  repeats: REPEATS,
  quick: QUICK,
  rows,
  tracker,
  cluster,
  bundle,
  seconds,
};
const markdown = resultsMarkdown(results);
console.log(markdown);

const name = QUICK
  ? "scratch"
  : ONLY?.length === 1 && ONLY[0] === "idle100k"
  ? "idle100k"
  : ONLY !== undefined
  ? "scratch"
  : PEERS
  ? "latest-peers"
  : "latest";
const resultsDir = new URL("results/", here);
await Deno.mkdir(resultsDir, { recursive: true });
await writeResults(new URL(name, resultsDir).pathname, results);
console.log(`\nWritten: bench/results/${name}.{json,md,svg}`);
