/**
 * Callgrind with counting off at the start, and the switch that turns the
 * counting of this process on or off, so that only a window of the work is
 * counted. Shared by the callgrind tools in this folder.
 *
 * @module
 */

/**
 * The valgrind arguments that run a command under callgrind with counting
 * off until {@linkcode instrumentation} turns it on.
 *
 * @param outFile Where callgrind writes its counts.
 * @returns The arguments to put before the command.
 */
export function callgrindArgs(outFile: string): string[] {
  return [
    "--tool=callgrind",
    "--instr-atstart=no",
    `--callgrind-out-file=${outFile}`,
  ];
}

/**
 * Turns the counting of this process's instructions on or off.
 *
 * @param on Whether to count from now on.
 */
export async function instrumentation(on: boolean): Promise<void> {
  await new Deno.Command("callgrind_control", {
    args: ["-i", on ? "on" : "off", String(Deno.pid)],
    stdout: "null",
    stderr: "null",
  }).output();
}

/**
 * Counts this process's instructions while `work` runs (callgrind's
 * instrumentation on before it, off after it).
 *
 * @param work What to count.
 */
export async function counted(work: () => unknown): Promise<void> {
  await instrumentation(true);
  await work();
  await instrumentation(false);
}

/** What one counted run gives. */
export interface CountedRun {
  /** Instructions counted in all. */
  total: number;
  /** Self instructions by function name (empty unless asked for). */
  byName: Map<string, number>;
}

/**
 * Runs `script --child ...args` under callgrind, V8 on one thread with fixed
 * seeds, in a temporary folder (where V8's log lands, if any); the script
 * turns the counting on and off around its window with
 * {@linkcode instrumentation}.
 *
 * @param script The path of the script.
 * @param args Its arguments after `--child`.
 * @param byFunction Whether to also count by function (V8's perf map names
 * the JIT's code; `bench/callgrind_profile.ts` is loaded only then, so that
 * the counted child loads no more modules than without).
 * @returns The instructions counted, and by function when asked.
 */
export async function countChild(
  script: string,
  args: string[],
  byFunction: boolean,
): Promise<CountedRun> {
  const dir = await Deno.makeTempDir({ prefix: "duplex-callgrind-" });
  const flags = ["--single-threaded", "--hash-seed=1", "--random-seed=1"];
  if (byFunction) flags.push("--perf-basic-prof");
  try {
    const child = new Deno.Command("valgrind", {
      args: [
        ...callgrindArgs(`${dir}/out`),
        Deno.execPath(),
        "run",
        "-A",
        `--v8-flags=${flags.join(",")}`,
        script,
        "--child",
        ...args,
      ],
      cwd: dir,
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const { success, stderr } = await child.output();
    const text = new TextDecoder().decode(stderr);
    const collected = /Collected : (\d+)/.exec(text);
    if (!success || collected === null) {
      throw new Error(`Cannot count instructions: valgrind said ${text}`);
    }
    const byName = new Map<string, number>();
    if (byFunction) {
      const { namer, selfCosts } = await import("./callgrind_profile.ts");
      const map = `/tmp/perf-${child.pid}.map`;
      const name = namer(await Deno.readTextFile(map));
      await Deno.remove(map);
      for (
        const [raw, cost] of selfCosts(await Deno.readTextFile(`${dir}/out`))
      ) {
        const label = name(raw);
        byName.set(label, (byName.get(label) ?? 0) + cost);
      }
    }
    return { total: Number(collected[1]), byName };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Prints the functions whose self cost (per delivery) differs most between
 * sessions off and on, the largest difference first.
 *
 * @param off Cost per function name, sessions off.
 * @param on Cost per function name, sessions on.
 * @param top How many functions to print.
 */
export function printDifferences(
  off: Map<string, number>,
  on: Map<string, number>,
  top: number,
): void {
  const names = new Set([...off.keys(), ...on.keys()]);
  const rows = [...names].map((name) => {
    const a = off.get(name) ?? 0;
    const b = on.get(name) ?? 0;
    return { name, off: a, on: b, diff: b - a };
  }).sort((x, y) => Math.abs(y.diff) - Math.abs(x.diff)).slice(0, top);
  console.log("      off       on   on−off  function (self, per delivery)");
  for (const row of rows) {
    console.log(
      `${row.off.toFixed(1).padStart(9)}${row.on.toFixed(1).padStart(9)}${
        row.diff.toFixed(1).padStart(9)
      }  ${row.name}`,
    );
  }
}
