/**
 * Sessions on vs off in instructions, one side at a time (issue 19): the
 * fan-out of bench/sessions_bench.ts (a `DuplexServer` pushing to 50 of
 * our `Client`s, real WebSockets on 127.0.0.1) split over two processes,
 * the server in one and the 50 clients in the other, and only one of them
 * counted under `valgrind --tool=callgrind` (the other runs at full speed).
 * In-process, bench/sessions_instructions.ts counts both sides together;
 * here the on/off difference is told apart: what the server pays (outbox,
 * counting, acks it receives) and what the clients pay (counting, acks
 * they send).
 *
 *   deno run -A bench/sessions_sides.ts [blocks] [warm] [root]
 *
 * The server pushes in blocks of 1,000 (100 per turn, a 0 ms timer between
 * turns, as sessions_bench.ts sends them); after each block it waits until
 * the clients got all of it (one call from the clients' process). `warm`
 * blocks (default 20) run first, then `blocks` (default 2) are counted: on
 * the server, from its first push to the clients' report of the last
 * delivery; on the clients, from the report of the warm blocks to the last
 * delivery. The clients' delayed acknowledgement is 100 s, as in
 * sessions_instructions.ts (they acknowledge by count). `BENCH_TOP=30`
 * also prints the functions whose self cost per delivery differs most.
 * Run one at a time: the two processes meet on a port picked just before
 * (two runs at once may pick the same one and hang).
 *
 * @module
 */

import { countChild, instrumentation, printDifferences } from "./_callgrind.ts";
import { checkoutModules, UNLIMITED } from "./_checkout.ts";

const clients = 50;
const block = 1_000;
const burst = 100;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** What one side's process is told. */
interface Side {
  /** The checkout whose modules it loads. */
  root: string;
  /** The server's port. */
  port: number;
  /** Sessions on. */
  sessions: boolean;
  /** Blocks of pushes in all. */
  blocks: number;
  /** Blocks before the counted ones. */
  warm: number;
  /** This side is the one counted under callgrind. */
  counted: boolean;
}

/** The server's process: pushes in blocks, counted from the warm blocks on. */
async function serverSide(
  { root, port, sessions, blocks, warm, counted }: Side,
): Promise<void> {
  const { DuplexServer } = await checkoutModules(root);
  const server = new DuplexServer({
    ...UNLIMITED,
    sessions: sessions ? {} : false,
  });
  let reached = -2;
  let wake = () => {};
  server.handle("got", (n: number) => {
    reached = n;
    wake();
    return true;
  });
  const until = async (n: number) => {
    while (reached < n) await new Promise<void>((resolve) => wake = resolve);
  };
  const http = Deno.serve(
    { hostname: "127.0.0.1", port, onListen() {} },
    server.fetch,
  );
  await until(-1); // every client connected
  for (let b = 0; b < warm + blocks; b++) {
    if (b === warm && counted) await instrumentation(true);
    for (let i = 0; i < block; i++) {
      server.notify(i, { method: "tick" });
      if (i % burst === burst - 1) await delay(0);
    }
    await until(b);
  }
  if (counted) await instrumentation(false);
  await until(warm + blocks); // the clients are closing
  await server.shutdown();
  await http.shutdown();
}

/** The clients' process: reports each block delivered. */
async function clientSide(
  { root, port, sessions, blocks, warm, counted }: Side,
): Promise<void> {
  const { Client } = await checkoutModules(root);
  const url = (user: string) => `ws://127.0.0.1:${port}/?user=${user}`;
  // The server's process may still be starting (under valgrind: seconds).
  for (;;) {
    try {
      await (await fetch(`http://127.0.0.1:${port}/`)).body?.cancel();
      break;
    } catch {
      await delay(200);
    }
  }
  const all: {
    close(): Promise<void>;
    call(m: string, n: number): Promise<unknown>;
  }[] = [];
  let received = 0;
  let wake = () => {};
  for (let i = 0; i < clients; i++) {
    const client = new Client(url(`f${i}`), {
      session: sessions ? { ackDelay: 100_000 } : false,
      pingInterval: 0,
    });
    await client.connect();
    client.on("tick", () => {
      if (++received % (block * clients) === 0) wake();
    });
    all.push(client);
  }
  await all[0].call("got", -1);
  for (let b = 0; b < warm + blocks; b++) {
    const target = (b + 1) * block * clients;
    while (received < target) {
      await new Promise<void>((resolve) => wake = resolve);
    }
    if (counted && b === warm - 1) await instrumentation(true);
    if (counted && b === warm + blocks - 1) await instrumentation(false);
    await all[0].call("got", b);
  }
  await all[0].call("got", warm + blocks);
  await Promise.all(all.map((client) => client.close()));
}

/** A free port on 127.0.0.1. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr;
  listener.close();
  return port;
}

/** One side counted, the other at full speed: instructions per delivery. */
async function measure(
  side: "server" | "client",
  sessions: boolean,
  blocks: number,
  warm: number,
  root: string,
  top: boolean,
): Promise<{ total: number; byName: Map<string, number> }> {
  const port = freePort();
  const args = (role: string) => [
    role,
    String(port),
    sessions ? "on" : "off",
    String(blocks),
    String(warm),
    root,
  ];
  const other = side === "server" ? "client" : "server";
  const partner = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(import.meta.url).pathname,
      "--partner",
      ...args(other),
    ],
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  const run = await countChild(
    new URL(import.meta.url).pathname,
    args(side),
    top,
  );
  if (!(await partner.status).success) {
    throw new Error(`Cannot measure the ${side}: its partner failed`);
  }
  const deliveries = blocks * block * clients;
  const byName = new Map<string, number>();
  for (const [name, cost] of run.byName) byName.set(name, cost / deliveries);
  return { total: run.total / deliveries, byName };
}

if (import.meta.main) {
  if (Deno.args[0] === "--child" || Deno.args[0] === "--partner") {
    const [mode, role, port, on, blocks, warm, root] = Deno.args;
    const side = role === "server" ? serverSide : clientSide;
    await side({
      root,
      port: Number(port),
      sessions: on === "on",
      blocks: Number(blocks),
      warm: Number(warm),
      counted: mode === "--child",
    });
  } else {
    const blocks = Number(Deno.args[0] ?? 2);
    const warm = Number(Deno.args[1] ?? 20);
    const root = new URL(
      `${Deno.args[2] ?? new URL("..", import.meta.url).pathname}/`,
      "file:///",
    ).href;
    const top = Number(Deno.env.get("BENCH_TOP") ?? 0);
    const sides = (Deno.env.get("BENCH_SIDES") ?? "server,client").split(",");
    for (const side of sides as ("server" | "client")[]) {
      const off = await measure(side, false, blocks, warm, root, top > 0);
      const on = await measure(side, true, blocks, warm, root, top > 0);
      console.log(
        `fan-out to ${clients} clients, ${side} side, ${
          blocks * block
        } pushes after ${warm * block}: instructions per delivery off ${
          off.total.toFixed(0)
        }, on ${on.total.toFixed(0)}, on−off ${
          (on.total - off.total).toFixed(0)
        }, on/off ${(on.total / off.total).toFixed(3)}`,
      );
      if (top > 0) printDifferences(off.byName, on.byName, top);
    }
  }
}
