/**
 * `deno task bench`: Duplex against a raw Deno WebSocket baseline, in the same
 * run on the same machine. Every workload runs with the server and the load
 * generator in separate processes (a fresh server each time), raw and Duplex
 * interleaved, `REPEATS` times; the table shows medians and the ratio
 * Duplex/raw. The table is also written as JSON to bench/results/.
 *
 * Options (environment): BENCH_REPEATS (default 3), BENCH_QUICK=1 (small
 * counts, for a smoke run), BENCH_ONLY=fanout,idle (only these workloads).
 */

import {
  measureTracker,
  type TrackerFigures,
} from "./request_tracker_bench.ts";
import { bundleSize } from "../scripts/bundle_size.ts";

const REPEATS = Number(Deno.env.get("BENCH_REPEATS") ?? 3);
const QUICK = Deno.env.get("BENCH_QUICK") === "1";
/** Comma-separated workload names to run (default: all). */
const ONLY = Deno.env.get("BENCH_ONLY")?.split(",");
const here = new URL(".", import.meta.url);
const root = new URL("..", import.meta.url);

type Impl = "raw" | "duplex";

interface Workload {
  name: string;
  label: string;
  count: number;
  /** Figures to report: key → [label, higher is better]. */
  figures: Record<string, [string, boolean]>;
}

const WORKLOADS: Workload[] = [
  {
    name: "sequential",
    label: "1. Sequential round trips (1 in flight)",
    count: QUICK ? 2000 : 10_000,
    figures: {
      requestsPerSecond: ["requests/s", true],
      p50Ms: ["p50 latency (ms)", false],
      p99Ms: ["p99 latency (ms)", false],
    },
  },
  {
    name: "pipelined",
    label: "2. Pipelined (1,000 in flight)",
    count: QUICK ? 20_000 : 100_000,
    figures: { requestsPerSecond: ["requests/s", true] },
  },
  {
    name: "fanout",
    label: "3. Fan-out (1 sender, 1,000 receivers, 1,000 notifications)",
    count: QUICK ? 200 : 1000,
    figures: { deliveriesPerSecond: ["deliveries/s", true] },
  },
  {
    name: "idle",
    label: "4. Memory (5,000 idle connections)",
    count: QUICK ? 1000 : 5000,
    figures: { bytesPerConnection: ["server RSS bytes/connection", false] },
  },
];

const SERVERS: Record<Impl, string> = {
  raw: new URL("raw_server.ts", here).pathname,
  duplex: new URL("duplex_server.ts", here).pathname,
};

/** Runs a deno command under `ulimit -n`; returns the child. */
function spawn(args: string[], piped = true): Deno.ChildProcess {
  // Raise the soft open-files limit to the hard one (5,000 sockets per side).
  const command =
    `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "${Deno.execPath()}" ${
      args.map((a) => `'${a}'`).join(" ")
    }`;
  return new Deno.Command("bash", {
    args: ["-c", command],
    cwd: root.pathname,
    stdout: piped ? "piped" : "null",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
}

async function readFirstLine(stream: ReadableStream<Uint8Array>): Promise<{
  line: string;
  rest: ReadableStreamDefaultReader<string>;
}> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot start server: no port printed (${text})`);
    text += value;
  }
  return { line: text.slice(0, text.indexOf("\n")), rest: reader };
}

async function runOnce(
  impl: Impl,
  workload: Workload,
): Promise<Record<string, number>> {
  const server = spawn(["run", "-A", "--v8-flags=--expose-gc", SERVERS[impl]]);
  const { line, rest } = await readFirstLine(server.stdout);
  // Keep draining the server's stdout so it never blocks on a full pipe.
  const drain = (async () => {
    while (!(await rest.read()).done) { /* discard */ }
  })();
  const { port } = JSON.parse(line);
  try {
    const load = spawn([
      "run",
      "-A",
      "bench/load.ts",
      impl,
      workload.name,
      String(port),
      String(workload.count),
    ]);
    const output = new TextDecoder().decode((await load.output()).stdout);
    const status = await load.status;
    if (!status.success) {
      throw new Error(`Cannot run ${impl} ${workload.name}: load failed`);
    }
    const lines = output.trim().split("\n");
    return JSON.parse(lines[lines.length - 1]);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await drain.catch(() => {});
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? sorted[middle]
    : (sorted[middle - 1] + sorted[middle]) / 2;
}

function format(value: number): string {
  if (Math.abs(value) >= 100) return Math.round(value).toLocaleString("en-US");
  return value.toFixed(3);
}

interface Row {
  workload: string;
  figure: string;
  raw: number;
  duplex: number;
  /** Duplex/raw; for "lower is better" figures the ratio raw/duplex is in `score`. */
  ratio: number;
  higherIsBetter: boolean;
  runs: { raw: number[]; duplex: number[] };
}

const rows: Row[] = [];
const started = performance.now();
for (const workload of WORKLOADS) {
  if (ONLY !== undefined && !ONLY.includes(workload.name)) continue;
  const results: Record<Impl, Record<string, number>[]> = {
    raw: [],
    duplex: [],
  };
  for (let i = 0; i < REPEATS; i++) {
    for (const impl of ["raw", "duplex"] as const) {
      results[impl].push(await runOnce(impl, workload));
    }
  }
  for (
    const [key, [figure, higherIsBetter]] of Object.entries(workload.figures)
  ) {
    const raw = results.raw.map((r) => r[key]);
    const duplex = results.duplex.map((r) => r[key]);
    const row: Row = {
      workload: workload.label,
      figure,
      raw: median(raw),
      duplex: median(duplex),
      ratio: median(duplex) / median(raw),
      higherIsBetter,
      runs: { raw, duplex },
    };
    rows.push(row);
    console.error(
      `${workload.name} ${figure}: raw ${format(row.raw)}, duplex ${
        format(row.duplex)
      }, ratio ${row.ratio.toFixed(2)}`,
    );
  }
}

const tracker: TrackerFigures = await measureTrackerInChild();
const cluster = await measureClusterFanout();
const bundle = await bundleSize();
const seconds = (performance.now() - started) / 1000;

interface ClusterFigures {
  clusterDeliveriesPerSecond: number;
  singleDeliveriesPerSecond: number;
}

/** Cross-instance fan-out on a real redis-server (bench/cluster_fanout.ts). */
async function measureClusterFanout(): Promise<ClusterFigures | undefined> {
  if (QUICK) return undefined;
  const child = spawn(["run", "-A", "bench/cluster_fanout.ts"]);
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

const TARGETS: Record<string, string> = {
  "requests/s": "≥ 0.90",
  "p50 latency (ms)": "≤ 1.10",
  "deliveries/s": "≥ 1.00",
  "server RSS bytes/connection": "≤ 1.15",
};

const header =
  "| Workload | Figure | Raw WebSocket | Duplex | Duplex/raw | Target |\n| --- | --- | ---: | ---: | ---: | --- |";
const lines = rows.map((row) => {
  const target = row.figure === "requests/s" && row.workload.startsWith("1.")
    ? "≥ 0.90"
    : TARGETS[row.figure] ?? "";
  return `| ${row.workload} | ${row.figure} | ${format(row.raw)} | ${
    format(row.duplex)
  } | ${row.ratio.toFixed(2)}× | ${target} |`;
});
const cpu = (() => {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return info.match(/model name\s*:\s*(.*)/)?.[1] ?? "unknown CPU";
  } catch {
    return "unknown CPU";
  }
})();
const table = [
  `Duplex benchmark — ${
    new Date().toISOString()
  } — Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores (${cpu}), median of ${REPEATS}`,
  "",
  header,
  ...lines,
  "",
  `RequestTracker: ${
    tracker.pairsPerSecond.toLocaleString("en-US")
  } track+resolve pairs/s (target ≥ 3,000,000); ${tracker.bytesPerPending} heap bytes per pending request at ${
    tracker.pending.toLocaleString("en-US")
  } pending (target ≤ 300)`,
  cluster === undefined
    ? "Cross-instance fan-out: not measured (quick run or no redis-server)"
    : `Fan-out across 2 instances on Redis (500 receivers each, 1,000 notifications): ${
      Math.round(cluster.clusterDeliveriesPerSecond).toLocaleString("en-US")
    } deliveries/s; 1 instance with all 1,000 receivers in the same run: ${
      Math.round(cluster.singleDeliveriesPerSecond).toLocaleString("en-US")
    } deliveries/s`,
  `Client bundle: ${bundle.minified.toLocaleString("en-US")} bytes minified, ${
    bundle.gzip.toLocaleString("en-US")
  } bytes gzip (target ≤ 5,120)`,
  `Run took ${seconds.toFixed(0)} s.`,
].join("\n");
console.log(table);

const resultsDir = new URL("results/", here);
await Deno.mkdir(resultsDir, { recursive: true });
const json = JSON.stringify(
  {
    date: new Date().toISOString(),
    deno: Deno.version.deno,
    cores: navigator.hardwareConcurrency,
    cpu,
    repeats: REPEATS,
    rows,
    tracker,
    cluster,
    bundle,
  },
  null,
  2,
);
const file = new URL(
  `bench-${new Date().toISOString().replaceAll(":", "-")}.json`,
  resultsDir,
);
await Deno.writeTextFile(file, json);
await Deno.writeTextFile(new URL("latest.json", resultsDir), json);
console.log(`\nJSON: ${file.pathname}`);
