/**
 * CPU profile of a benchmark server under the lean client: where the server's
 * time goes, in nanoseconds per request (or per delivery), by function.
 *
 *   deno run -A bench/profile.ts <server> <wire> <workload> <count> [size] [repeats]
 *
 * `server` is `raw`, `duplex` or the path of another server program (one
 * that prints `{"port": N}` like those two); `wire`, `workload`, `count` and `size` are
 * those of bench/lean_client.ts. The server runs under
 * `deno run --cpu-prof --cpu-prof-interval=100`; each repeat is a fresh
 * server. Prints, per repeat and as the median of the repeats, the server's
 * busy CPU per unit (everything but `(idle)`) and the functions with the most
 * self time, then the lean client's figures. On a shared machine, compare
 * servers by these per-unit CPU figures rather than by throughput: another
 * process taking a core changes the throughput, much less the CPU a request
 * costs.
 *
 * @module
 */

import { median } from "./stats.ts";
import { leanClient, spawnServer } from "./process.ts";

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const here = new URL(".", import.meta.url);

/** Self time (µs) by function label, from a V8 CPU profile. */
function selfTimes(profile: CpuProfile): Map<string, number> {
  const labels = new Map<number, string>();
  for (const node of profile.nodes) {
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.split("/").slice(-2).join("/");
    labels.set(
      node.id,
      url === ""
        ? functionName || "(anonymous)"
        : `${functionName || "(anonymous)"} ${file}:${lineNumber + 1}`,
    );
  }
  const times = new Map<string, number>();
  const { samples, timeDeltas } = profile;
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the delta to the next sample.
    const delta = timeDeltas[i + 1] ?? 0;
    const label = labels.get(samples[i])!;
    times.set(label, (times.get(label) ?? 0) + delta);
  }
  return times;
}

/** Units of work of a run: requests, or deliveries for a fan-out. */
export function unitsOf(workload: string, count: number, size: number): number {
  switch (workload) {
    case "pipelined":
      return count + Math.min(5000, count);
    case "sequential":
      return count + (size || 1000);
    case "fanout":
      return count * (size || 100);
    default:
      return count;
  }
}

async function profileOnce(
  server: string,
  wire: string,
  workload: string,
  count: number,
  size: number,
): Promise<{ times: Map<string, number>; client: Record<string, number> }> {
  const dir = await Deno.makeTempDir({ prefix: "duplex-prof-" });
  const file = server.endsWith(".ts")
    ? server
    : server === "raw"
    ? "raw_server.ts"
    : "duplex_server.ts";
  const running = await spawnServer([
    Deno.execPath(),
    "run",
    "-A",
    "--cpu-prof",
    `--cpu-prof-dir=${dir}`,
    "--cpu-prof-interval=100",
    new URL(file, here).pathname,
  ]);
  let client: Record<string, number> | undefined;
  try {
    client = await leanClient(wire, workload, running.port, count, size);
    if (!client) throw new Error(`Cannot profile ${server}: client failed`);
  } finally {
    await running.stop();
  }
  const [entry] = await Array.fromAsync(Deno.readDir(dir));
  const profile = JSON.parse(
    await Deno.readTextFile(`${dir}/${entry.name}`),
  ) as CpuProfile;
  await Deno.remove(dir, { recursive: true });
  return { times: selfTimes(profile), client };
}

/** What a function's self time is spent on (the groups of docs/performance.md). */
function groupOf(label: string): string {
  if (
    /^(decode|decodeRequest|plainStringEnd|validateFrame|isRecord|readBatch) /
      .test(label)
  ) {
    return "decode";
  }
  if (/^(op_now|now ext|observeRequest|#untimed|#finished)/.test(label)) {
    return "clock + histogram";
  }
  if (/^(encode|encodeResponse|encodeJsonResponse|encodeBatch) /.test(label)) {
    return "encode";
  }
  if (/ (peer|server|wire|bench)\//.test(label)) {
    return "dispatch (our code: peer, server, handler, coalescing)";
  }
  if (/timer/i.test(label)) return "runtime: WebSocket idle timer";
  if (/^op_ws_|websocket|event\.js|webidl|async_op|setPromise/.test(label)) {
    return "runtime: WebSocket send/receive, events";
  }
  if (label === "(garbage collector)") return "garbage collection";
  return "runtime: other";
}

if (import.meta.main) {
  const [server, wire, workload, countText, sizeText, repeatsText] = Deno.args;
  const count = Number(countText);
  const size = Number(sizeText ?? 0);
  const repeats = Number(repeatsText ?? 3);
  const units = unitsOf(workload, count, size);
  const runs: Awaited<ReturnType<typeof profileOnce>>[] = [];
  for (let i = 0; i < repeats; i++) {
    const run = await profileOnce(server, wire, workload, count, size);
    const busy = [...run.times].filter(([label]) => label !== "(idle)")
      .reduce((sum, [, us]) => sum + us, 0);
    console.log(
      `run ${i + 1}: busy ${(busy * 1000 / units).toFixed(0)} ns/unit, ` +
        `client ${JSON.stringify(run.client)}`,
    );
    runs.push(run);
  }
  const labels = new Set(runs.flatMap((run) => [...run.times.keys()]));
  const perUnit = [...labels].map((label) =>
    [
      label,
      median(runs.map((run) => (run.times.get(label) ?? 0) * 1000 / units)),
    ] as const
  ).sort((a, b) => b[1] - a[1]);
  const busy = median(
    runs.map((run) =>
      [...run.times].filter(([label]) => label !== "(idle)")
        .reduce((sum, [, us]) => sum + us, 0) * 1000 / units
    ),
  );
  console.log(
    `\n${server} ${wire} ${workload} ${count}/${size}: busy ${
      busy.toFixed(0)
    } ns per unit (median of ${repeats}); self time by group, then by function:`,
  );
  const groups = new Map<string, number>();
  for (const [label, ns] of perUnit) {
    if (label === "(idle)") continue;
    groups.set(groupOf(label), (groups.get(groupOf(label)) ?? 0) + ns);
  }
  for (const [group, ns] of [...groups].sort((a, b) => b[1] - a[1])) {
    console.log(`${ns.toFixed(0).padStart(8)}  [${group}]`);
  }
  for (
    const [label, ns] of perUnit.slice(
      0,
      Number(Deno.env.get("PROFILE_TOP") ?? 40),
    )
  ) {
    if (label === "(idle)") continue;
    console.log(`${ns.toFixed(1).padStart(8)}  ${label}`);
  }
}
