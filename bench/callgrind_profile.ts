/**
 * Instructions per request of a benchmark server, by function: the server
 * runs under `valgrind --tool=callgrind` with V8's `--perf-basic-prof`, the
 * lean client warms it up (uncounted), then drives `count` more requests
 * while callgrind counts; each function's self instructions are divided by
 * the requests (warm-up of the client's own run included, as in
 * bench/profile.ts). JavaScript and V8's builtins are named through
 * `/tmp/perf-<pid>.map`; the runtime's native code (Rust, V8's C++, libc)
 * has no symbols in a release build of Deno and is shown by address, the
 * same for every server of one Deno binary, so two servers can be compared
 * line by line.
 *
 *   deno run -A bench/callgrind_profile.ts <server> <wire> <count> <size> [top] [warm]
 *
 * `server` is `raw`, `duplex` or the path of a server program (another
 * checkout's bench/duplex_server.ts is the "before" of a change); `wire` and
 * `size` (requests in flight) are those of bench/lean_client.ts's pipelined
 * workload. Unlike a CPU profile this does not move with the machine's
 * load, and unlike bench/hot_path_instructions.ts it includes the runtime's
 * WebSocket work, where a change in what our code hands to the runtime shows
 * (a rope string sent instead of a flat one, for instance).
 *
 * `CALLGRIND_V8_FLAGS` adds V8 flags to the server's. With
 * `--single-threaded,--hash-seed=1,--random-seed=1` (compilation and
 * collection on the main thread, fixed seeds) repeated runs agree within a
 * few hundred instructions per request, and a `warm` of 1 counts a fresh
 * server from its first request, as `deno task bench` runs it (JIT
 * compilation included): the default warm-up's client closes its socket
 * before the count, which deoptimizes the hot functions (a first close
 * changes the maps and field types they were compiled for), so the counted
 * window then includes their recompilation, which a bench run never has.
 *
 * @module
 */

import { callgrindArgs } from "./_callgrind.ts";
import { unitsOf } from "./profile.ts";
import { leanClient, spawnServer } from "./process.ts";

const here = new URL(".", import.meta.url);

async function control(args: string[]): Promise<void> {
  await new Deno.Command("callgrind_control", {
    args,
    stdout: "null",
    stderr: "null",
  }).output();
}

/** Self instructions by function name (or address) from a callgrind file. */
export function selfCosts(text: string): Map<string, number> {
  const names = new Map<string, string>();
  const costs = new Map<string, number>();
  let current = "";
  let callLine = false;
  for (const line of text.split("\n")) {
    const fn = /^(c?)fn=\((\d+)\)(?: (.*))?$/.exec(line);
    if (fn) {
      if (fn[3] !== undefined) names.set(fn[2], fn[3]);
      if (fn[1] === "") current = names.get(fn[2]) ?? fn[2];
      continue;
    }
    if (line.startsWith("calls=")) {
      // The next cost line is the call's inclusive cost, not self cost.
      callLine = true;
      continue;
    }
    if (/^[0-9+\-*]/.test(line)) {
      if (callLine) {
        callLine = false;
        continue;
      }
      const cost = Number(line.split(" ")[1] ?? 0);
      costs.set(current, (costs.get(current) ?? 0) + cost);
    }
  }
  return costs;
}

/** Names an address through V8's perf map (sorted by start). */
export function namer(map: string): (name: string) => string {
  const entries = map.split("\n").filter(Boolean).map((line) => {
    const [start, size, ...rest] = line.split(" ");
    return {
      start: parseInt(start, 16),
      end: parseInt(start, 16) + parseInt(size, 16),
      name: rest.join(" ").replace(/file:\/\/\/\S*?\/(src|bench)\//, "$1/"),
    };
  }).sort((a, b) => a.start - b.start);
  return (name) => {
    const match = /^0x([0-9a-f]+)/.exec(name);
    if (!match) return name;
    const address = parseInt(match[1], 16);
    let low = 0;
    let high = entries.length - 1;
    while (low <= high) {
      const mid = (low + high) >> 1;
      if (entries[mid].start <= address) low = mid + 1;
      else high = mid - 1;
    }
    const entry = entries[high];
    return entry && address < entry.end ? entry.name : `native ${match[0]}`;
  };
}

if (import.meta.main) {
  const [server, wire, countText, sizeText, topText, warmText] = Deno.args;
  const count = Number(countText);
  const size = Number(sizeText);
  const flags = Deno.env.get("CALLGRIND_V8_FLAGS");
  const script = server.endsWith(".ts")
    ? server
    : new URL(`${server}_server.ts`, here).pathname;
  const dir = await Deno.makeTempDir({ prefix: "duplex-cgp-" });
  const running = await spawnServer([
    "valgrind",
    ...callgrindArgs(`${dir}/out`),
    Deno.execPath(),
    "run",
    "-A",
    `--v8-flags=${["--perf-basic-prof", flags].filter(Boolean).join(",")}`,
    script,
  ]);
  const pid = String(running.pid);
  let client: Record<string, number> | undefined;
  try {
    await leanClient(
      wire,
      "pipelined",
      running.port,
      Number(warmText ?? 30000),
      size,
    );
    await control(["-z", pid]);
    await control(["-i", "on", pid]);
    client = await leanClient(wire, "pipelined", running.port, count, size);
    await control(["-d", pid]);
    await control(["-i", "off", pid]);
  } finally {
    await running.stop();
    // V8 also writes its log (isolate-…-<pid>-v8.log) where the server ran.
    const root = new URL("..", here).pathname;
    for (const entry of Deno.readDirSync(root)) {
      if (entry.name.endsWith(`-${pid}-v8.log`)) {
        await Deno.remove(`${root}${entry.name}`);
      }
    }
  }
  const dumps = [...Deno.readDirSync(dir)].map((entry) => entry.name)
    .filter((name) => name !== "out").sort();
  const text = await Deno.readTextFile(`${dir}/${dumps.at(-1)}`);
  const name = namer(await Deno.readTextFile(`/tmp/perf-${pid}.map`));
  await Deno.remove(dir, { recursive: true });
  const units = unitsOf("pipelined", count, size);
  const byName = new Map<string, number>();
  for (const [raw, cost] of selfCosts(text)) {
    const label = name(raw);
    byName.set(label, (byName.get(label) ?? 0) + cost);
  }
  const total = [...byName.values()].reduce((a, b) => a + b, 0);
  console.log(
    `${server} ${wire} pipelined ${count}/${size}: ${
      (total / units).toFixed(0)
    } instructions per request; client ${JSON.stringify(client)}`,
  );
  const rows = [...byName].sort((a, b) => b[1] - a[1])
    .slice(0, Number(topText ?? 60));
  for (const [label, cost] of rows) {
    console.log(`${(cost / units).toFixed(1).padStart(9)}  ${label}`);
  }
}
