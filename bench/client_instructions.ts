/**
 * The end-to-end pipelined workload of bench/load.ts (issue 19's e2e rows:
 * lanes that each `await client.request("hello")`, 1,000 in flight) in
 * instructions, which do not swing with the machine's load: the bench
 * server's `DuplexServer` (bench/duplex_server.ts's relay) and one `Client`
 * (default options: session and batch frames on) in one process, on a real
 * loopback WebSocket, under `valgrind --tool=callgrind`; only `count`
 * requests after `warm` warm-up ones are counted (`--instr-atstart=no`,
 * `callgrind_control -i`). The count is the whole process (server, runtime
 * and client) per request; `lean` counts the same server driven by a lean
 * client (bench/lean_client.ts's pipelined run on the `duplex.v1` wire: a
 * raw WebSocket, one `JSON.parse` per reply), so `client − lean` is about what
 * our `Client` costs over the least a client can do (the server also does
 * its session and batch work for our `Client`, which the lean client does
 * not ask for).
 *
 *   deno run -A bench/client_instructions.ts [count] [warm] [root] [modes]
 *
 * `count` defaults to 20,000, `warm` to 100,000, `root` to this checkout
 * (another worktree is the "before" of a change), `modes` to
 * `client,lean` (also `nosession`: our `Client` with `session: false`;
 * `leanbatch`: the lean client offering `duplex.batch`);
 * `BENCH_WINDOW` sets the requests in flight (default 1,000; 1 counts
 * sequential round trips).
 * V8 compiles and collects on the main thread with fixed seeds
 * (`--single-threaded`), so repeated runs agree closely. `BENCH_TOP=40`
 * also prints the 40 functions with the most self instructions per request
 * (V8's `--perf-basic-prof` map; its writes are counted too), and with two
 * modes the functions whose cost differs most between them.
 *
 * @module
 */

import { countChild, counted, printDifferences } from "./_callgrind.ts";
import { checkoutModules, UNLIMITED } from "./_checkout.ts";
import { closeAll, open, pipelinedRuns, wireFor } from "./lean_client.ts";

const here = new URL(".", import.meta.url);
/** Requests in flight (`BENCH_WINDOW=1`: sequential round trips). */
const WINDOW = Number(Deno.env.get("BENCH_WINDOW") ?? 1000);

/** The counted process: `count` pipelined requests after `warm`. */
async function child(
  root: string,
  mode: string,
  count: number,
  warm: number,
): Promise<void> {
  const { Client, DuplexServer } = await checkoutModules(root);
  const server = new DuplexServer(UNLIMITED);
  server.onRequest(
    (message: unknown, { from, sequence }: {
      from?: string;
      sequence: number;
    }) => {
      server.notify(message, { except: from, from, sequence });
      return "ok";
    },
  );
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  const url = `ws://127.0.0.1:${http.addr.port}/?user=bench`;
  let run: (total: number) => Promise<void>;
  let close: () => Promise<void>;
  if (mode === "lean" || mode === "leanbatch") {
    const wire = wireFor(mode === "lean" ? "duplex.v1" : "batch");
    const socket = await open(wire, "127.0.0.1", http.addr.port, "bench");
    run = pipelinedRuns(wire, socket, WINDOW);
    close = () => closeAll([socket]);
  } else {
    const client = new Client(url, {
      maxAttempts: 0,
      session: mode === "nosession" ? false : undefined,
    });
    await client.connect();
    run = async (total) => {
      let issued = 0;
      const lane = async () => {
        while (issued < total) {
          issued++;
          await client.request("hello");
        }
      };
      await Promise.all(Array.from({ length: Math.min(WINDOW, total) }, lane));
    };
    close = () => client.close();
  }
  await run(warm);
  await counted(() => run(count));
  await close();
  await server.shutdown();
  await http.shutdown();
}

/** One child run under callgrind: instructions per request. */
async function measure(
  root: string,
  mode: string,
  count: number,
  warm: number,
  top = 0,
): Promise<{ perRequest: number; byName: Map<string, number> }> {
  const { total, byName } = await countChild(
    new URL(import.meta.url).pathname,
    [mode, String(count), String(warm), root],
    top > 0,
  );
  if (top > 0) printTop(byName, count, top);
  const perRequest = new Map(
    [...byName].map(([name, cost]) => [name, cost / count]),
  );
  return { perRequest: total / count, byName: perRequest };
}

/** Prints the `top` functions by self instructions per request. */
function printTop(
  byName: Map<string, number>,
  count: number,
  top: number,
): void {
  const rows = [...byName].sort((a, b) => b[1] - a[1]).slice(0, top);
  for (const [label, cost] of rows) {
    console.log(`${(cost / count).toFixed(1).padStart(9)}  ${label}`);
  }
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    const [, mode, count, warm, root] = Deno.args;
    await child(root, mode, Number(count), Number(warm));
  } else {
    const count = Number(Deno.args[0] ?? 20_000);
    const warm = Number(Deno.args[1] ?? 100_000);
    const root = new URL(
      `${Deno.args[2] ?? new URL("..", here).pathname}/`.replace(/\/+$/, "/"),
      `file://${Deno.cwd()}/`,
    ).href;
    const modes = (Deno.args[3] ?? "client,lean").split(",");
    // `BENCH_TOP=40`: the 40 costliest functions (self, per request) too.
    const top = Number(Deno.env.get("BENCH_TOP") ?? 0);
    const results: Record<string, number> = {};
    const profiles: Map<string, number>[] = [];
    for (const mode of modes) {
      const { perRequest, byName } = await measure(
        root,
        mode,
        count,
        warm,
        top,
      );
      results[mode] = perRequest;
      profiles.push(byName);
      console.log(
        `${mode}: ${
          results[mode].toFixed(0)
        } instructions per request (${WINDOW} in flight, ${count} after ${warm})`,
      );
    }
    // Two modes: where the second spends more or less than the first.
    if (top > 0 && modes.length === 2) {
      console.log(`${modes[0]} → ${modes[1]}:`);
      printDifferences(profiles[0], profiles[1], top);
    }
    if (results.client !== undefined && results.lean !== undefined) {
      console.log(
        `client − lean: ${(results.client - results.lean).toFixed(0)}`,
      );
    }
  }
}
