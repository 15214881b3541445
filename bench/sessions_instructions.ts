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
 * (`BENCH_ACK_DELAY=1000` keeps the default).
 *
 * @module
 */

import { callgrindArgs, instrumentation } from "./_callgrind.ts";

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
  const { Client } = await import(new URL("client.ts", root).href);
  const { DuplexServer } = await import(new URL("server.ts", root).href);
  const server = new DuplexServer({
    rateLimit: false,
    maxInFlight: 100_000,
    sessions: sessions ? {} : false,
    maxConnectionsPerAddress: 100_000,
    maxConnections: 100_000,
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
  await instrumentation(true);
  await run(pushes);
  await instrumentation(false);
  await Promise.all(all.map((client) => client.close()));
  await server.shutdown();
  await http.shutdown();
}

/** Instructions counted in one child run, per delivery. */
async function measure(
  root: string,
  sessions: boolean,
  pushes: number,
  warm: number,
): Promise<number> {
  const dir = await Deno.makeTempDir({ prefix: "duplex-sescg-" });
  try {
    const { stderr } = await new Deno.Command("valgrind", {
      args: [
        ...callgrindArgs(`${dir}/out`),
        Deno.execPath(),
        "run",
        "-A",
        "--v8-flags=--single-threaded,--hash-seed=1,--random-seed=1",
        new URL(import.meta.url).pathname,
        "--child",
        sessions ? "on" : "off",
        String(pushes),
        String(warm),
        root,
      ],
      stdout: "null",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(stderr);
    const collected = /Collected : (\d+)/.exec(text);
    if (collected === null) {
      throw new Error(`Cannot count instructions: valgrind said ${text}`);
    }
    return Number(collected[1]) / (pushes * clients);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
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
    const off = await measure(root, false, pushes, warm);
    const on = await measure(root, true, pushes, warm);
    const pace = Deno.env.get("BENCH_PACE") === "wait" ? "wait" : "timer";
    console.log(
      `fan-out to ${clients} clients, ${pushes} pushes after ${warm} (pace ${pace}): ` +
        `instructions per delivery off ${off.toFixed(0)}, on ${
          on.toFixed(0)
        }, ` +
        `on/off ${(on / off).toFixed(3)} (off/on ${
          (off / on).toFixed(3)
        }, target ≥ 0.90)`,
    );
  }
}
