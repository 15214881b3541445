/**
 * The CPU a server spends per request, for A/B comparisons on a shared
 * machine: wall-clock throughput moves with whatever else runs, the CPU a
 * request costs much less.
 *
 *   deno run -A bench/server_cpu.ts <wire> <workload> <count> <size> <repeats> <server>...
 *
 * Each `server` is a label and a script, `label=path/to/server.ts` (`raw`
 * and `duplex` name bench/raw_server.ts and bench/duplex_server.ts; another
 * checkout's bench/duplex_server.ts is the "before" of a change). Each
 * repeat starts every server in turn (interleaved: A B A B ...), drives it
 * with bench/lean_client.ts, and reads the server's CPU time (user + system,
 * all its threads, from `/proc/<pid>/task/<tid>/schedstat`, nanoseconds)
 * before and after the client's run. Prints, per server, the median CPU
 * nanoseconds per unit (request, or delivery for a fan-out; warm-up
 * included, as in bench/profile.ts) and the median client figures.
 *
 * With `BENCH_CALLGRIND=1` each server runs under
 * `valgrind --tool=callgrind` with instrumentation switched on only while the
 * client runs (`callgrind_control -i on|off`), and the figure is
 * instructions per unit instead of nanoseconds: deterministic enough to
 * judge a change of a few percent while other work shares the machine
 * (use smaller counts: the server runs some 50 times slower).
 *
 * With `BENCH_WARM=N` each server first serves an uncounted run of the
 * client with count N (its JIT compilation, mostly, then left out: under
 * callgrind it is a large part of a short run).
 *
 * With `BENCH_HANDLING=1` each server also prints, on stderr, its own
 * handling time per message (bench/handling_time.ts).
 *
 * @module
 */

import { median } from "./stats.ts";
import { unitsOf } from "./profile.ts";
import { leanClient, spawnServer } from "./process.ts";

const here = new URL(".", import.meta.url);

/**
 * Only the main thread (JavaScript, and Deno's WebSocket ops, which run on
 * it): `BENCH_MAIN_THREAD=1`. Less noisy than every thread (V8's compiler
 * and GC helpers, the runtime's pools), which is the default.
 */
const MAIN_THREAD = Deno.env.get("BENCH_MAIN_THREAD") === "1";

/** CPU nanoseconds of every thread of process `pid`, so far. */
export async function cpuNanoseconds(pid: number): Promise<number> {
  if (MAIN_THREAD) {
    const text = await Deno.readTextFile(`/proc/${pid}/task/${pid}/schedstat`);
    return Number(text.split(" ")[0]);
  }
  let total = 0;
  for await (const task of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const text = await Deno.readTextFile(
        `/proc/${pid}/task/${task.name}/schedstat`,
      );
      total += Number(text.split(" ")[0]);
    } catch {
      // The thread ended in between.
    }
  }
  return total;
}

const CALLGRIND = Deno.env.get("BENCH_CALLGRIND") === "1";
/** `BENCH_WARM=N`: a first client run of N units, not counted. */
const WARM = Number(Deno.env.get("BENCH_WARM") ?? 0);
/** `BENCH_HANDLING=1`: each server prints its handling time per message. */
const HANDLING = Deno.env.get("BENCH_HANDLING") === "1"
  ? ["--preload", new URL("handling_time.ts", here).pathname]
  : [];

async function callgrindControl(args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command("callgrind_control", { args })
    .output();
  return new TextDecoder().decode(stdout);
}

/** Instructions collected so far by the callgrind running as `pid`. */
async function instructions(pid: number, dir: string): Promise<number> {
  const said = await callgrindControl(["-d", String(pid)]);
  if (Deno.env.get("BENCH_DEBUG")) console.error(said);
  let total = 0;
  for await (const entry of Deno.readDir(dir)) {
    const text = await Deno.readTextFile(`${dir}/${entry.name}`);
    const match = /^(?:summary|totals): (\d+)/m.exec(text);
    if (Deno.env.get("BENCH_DEBUG")) console.error(entry.name, match?.[0]);
    if (match) total += Number(match[1]);
  }
  return total;
}

async function once(
  script: string,
  wire: string,
  workload: string,
  count: number,
  size: number,
): Promise<{ cpu: number; client: Record<string, number> }> {
  const dir = CALLGRIND ? await Deno.makeTempDir({ prefix: "duplex-cg-" }) : "";
  const valgrind = CALLGRIND
    ? [
      "valgrind",
      "--tool=callgrind",
      "--instr-atstart=no",
      `--callgrind-out-file=${dir}/out.%p`,
    ]
    : [];
  const running = await spawnServer([
    ...valgrind,
    Deno.execPath(),
    "run",
    "-A",
    ...HANDLING,
    script,
  ]);
  try {
    // Let start-up (module loading, JIT of the listener) finish first.
    await new Promise((resolve) => setTimeout(resolve, 300));
    // And optionally a first run of the client, so that what is counted is
    // the server warm (its JIT compilation done), not its first requests.
    if (WARM > 0) await leanClient(wire, workload, running.port, WARM, size);
    if (CALLGRIND) await callgrindControl(["-i", "on", String(running.pid)]);
    const before = CALLGRIND ? 0 : await cpuNanoseconds(running.pid);
    const client = await leanClient(wire, workload, running.port, count, size);
    const after = CALLGRIND
      ? await instructions(running.pid, dir)
      : await cpuNanoseconds(running.pid);
    if (!client) throw new Error(`Cannot measure ${script}: client failed`);
    return { cpu: after - before, client };
  } finally {
    await running.stop();
    if (CALLGRIND) await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  const [wire, workload, countText, sizeText, repeatsText, ...specs] =
    Deno.args;
  const count = Number(countText);
  const size = Number(sizeText);
  const repeats = Number(repeatsText);
  const units = unitsOf(workload, count, size);
  const unit = CALLGRIND ? "Ir" : "ns";
  const servers = specs.map((spec) => {
    const [label, path] = spec.includes("=") ? spec.split("=") : [spec, ""];
    const script = path ||
      new URL(`${label}_server.ts`, here).pathname;
    return { label, script, cpu: [] as number[], client: [] as number[][] };
  });
  for (let i = 0; i < repeats; i++) {
    for (const server of servers) {
      const run = await once(server.script, wire, workload, count, size);
      server.cpu.push(run.cpu / units);
      server.client.push(Object.values(run.client));
      console.log(
        `${server.label}: ${(run.cpu / units).toFixed(0)} ${unit}/unit ${
          JSON.stringify(run.client)
        }`,
      );
    }
  }
  const base = median(servers[0].cpu);
  for (const server of servers) {
    const cpu = median(server.cpu);
    const client = server.client[0].map((_, k) =>
      median(server.client.map((figures) => figures[k])).toPrecision(4)
    );
    console.log(
      `${server.label.padEnd(10)} ${cpu.toFixed(0).padStart(6)} ${unit}/unit ` +
        `(${(cpu / base).toFixed(3)}× ${servers[0].label}) client ${
          client.join(" ")
        } [min ${Math.min(...server.cpu).toFixed(0)}]`,
    );
  }
}
