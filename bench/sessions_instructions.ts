/**
 * Sessions on vs off in instructions (issue 19), deterministic where the
 * throughput of bench/sessions_bench.ts moves by 10–15 % from run to run:
 * the end-to-end fan-out of sessions_bench.ts (a `DuplexServer` and 50
 * `Client`s in one process, real WebSockets on 127.0.0.1, `server.notify`
 * to everyone) runs under `valgrind --tool=callgrind`, and only a window
 * after a warm-up is counted (`--instr-atstart=no`, `callgrind_control -i`):
 * every instruction of the process, the server's send side, Deno's
 * WebSocket work and the clients' receive side, per delivery.
 *
 *   deno run -A bench/sessions_instructions.ts [pushes] [warm] [root]
 *
 * `pushes` (default 2,000) are counted after `warm` (default 20,000, about
 * the work of sessions_bench.ts's first round, so that the session code is
 * compiled as in its later rounds) pushes; `root` is the checkout to
 * measure (another worktree is the "before" of a change). Pushes go out
 * as sessions_bench.ts sends them, 100 per turn with a 0 ms timer between
 * turns, delivery not awaited (`BENCH_PACE=wait`: each 100 delivered
 * before the next). V8 compiles and collects on the main thread with fixed
 * seeds (`--single-threaded`), so repeated runs agree within a few
 * instructions per delivery. The clients' delayed acknowledgement is set
 * to 100 s: under callgrind's ~50× slowdown the default 1 s would fire
 * where a run at full speed acknowledges by count alone
 * (`BENCH_ACK_DELAY=1000` keeps the default). `BENCH_TOP=40` also runs V8
 * with `--perf-basic-prof` and prints the 40 functions whose self cost per
 * delivery differs most between off and on (the perf map's writes are
 * counted too: compare its totals only with each other).
 *
 * @module
 */

import { countChild, counted, printDifferences } from "./_callgrind.ts";
import { checkoutModules, UNLIMITED } from "./_checkout.ts";

const here = new URL(".", import.meta.url);
const clients = 50;
const burst = 100;

/** The counted process: one fan-out, sessions on or off. */
async function child(
  root: string,
  sessions: boolean,
  pushes: number,
  warm: number,
): Promise<void> {
  const { Client, DuplexServer } = await checkoutModules(root);
  const server = new DuplexServer({
    ...UNLIMITED,
    sessions: sessions ? {} : false,
  });
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  const ackDelay = Number(Deno.env.get("BENCH_ACK_DELAY") ?? 100_000);
  const all: { close(): Promise<void> }[] = [];
  let received = 0;
  let target = 0;
  let wake = () => {};
  for (let i = 0; i < clients; i++) {
    const client = new Client(
      `ws://127.0.0.1:${http.addr.port}/?user=f${i}`,
      { session: sessions ? { ackDelay } : false, pingInterval: 0 },
    );
    await client.connect();
    client.on("tick", () => {
      if (++received === target) wake();
    });
    all.push(client);
  }
  const paced = Deno.env.get("BENCH_PACE") !== "wait";
  const run = async (count: number) => {
    for (let n = 0; n < count; n += paced ? count : burst) {
      const size = paced ? count : Math.min(burst, count - n);
      target = received + size * clients;
      const delivered = new Promise<void>((resolve) => wake = resolve);
      for (let i = 0; i < size; i++) {
        server.notify(i, { method: "tick" });
        if (paced && i % burst === burst - 1) {
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
      }
      await delivered;
    }
  };
  await run(warm);
  await counted(() => run(pushes));
  await Promise.all(all.map((client) => client.close()));
  await server.shutdown();
  await http.shutdown();
}

/** One child run: instructions per delivery, and by function with `top`. */
async function measure(
  root: string,
  sessions: boolean,
  pushes: number,
  warm: number,
  top = 0,
): Promise<{ total: number; byName: Map<string, number> }> {
  const run = await countChild(
    new URL(import.meta.url).pathname,
    [sessions ? "on" : "off", String(pushes), String(warm), root],
    top > 0,
  );
  const deliveries = pushes * clients;
  const byName = new Map<string, number>();
  for (const [name, cost] of run.byName) byName.set(name, cost / deliveries);
  return { total: run.total / deliveries, byName };
}

if (import.meta.main) {
  if (Deno.args[0] === "--child") {
    const [, mode, pushes, warm, root] = Deno.args;
    await child(root, mode === "on", Number(pushes), Number(warm));
  } else {
    const pushes = Number(Deno.args[0] ?? 2_000);
    const warm = Number(Deno.args[1] ?? 20_000);
    const root =
      new URL(`${Deno.args[2] ?? new URL("..", here).pathname}/`, "file:///")
        .href;
    const top = Number(Deno.env.get("BENCH_TOP") ?? 0);
    // `BENCH_ONLY=on` (or `off`) counts one side only (the other shows 0).
    const only = Deno.env.get("BENCH_ONLY");
    const none = { total: 0, byName: new Map<string, number>() };
    const off = only === "on"
      ? none
      : await measure(root, false, pushes, warm, top);
    const on = only === "off"
      ? none
      : await measure(root, true, pushes, warm, top);
    const pace = Deno.env.get("BENCH_PACE") === "wait" ? "wait" : "timer";
    console.log(
      `fan-out to ${clients} clients, ${pushes} pushes after ${warm} (pace ${pace}): ` +
        `instructions per delivery off ${off.total.toFixed(0)}, on ${
          on.total.toFixed(0)
        }, ` +
        `on/off ${(on.total / off.total).toFixed(3)} (off/on ${
          (off.total / on.total).toFixed(3)
        }, target ≥ 0.90)`,
    );
    if (top > 0) printDifferences(off.byName, on.byName, top);
    // `BENCH_DUMP=file.json` keeps the counts by function, to compare runs.
    const dump = Deno.env.get("BENCH_DUMP");
    if (dump !== undefined) {
      await Deno.writeTextFile(
        dump,
        JSON.stringify({
          off: Object.fromEntries(off.byName),
          on: Object.fromEntries(on.byName),
        }),
      );
    }
  }
}
