/**
 * Whether Deno's `idleTimeout` closes live connections: a raw Deno server
 * (`Deno.upgradeWebSocket` with `idleTimeout`, no library) and `processes`
 * client processes holding `clients` raw WebSockets in all that never send
 * anything; they answer the server's pings, as every WebSocket does (Deno
 * answers them by itself). Any close with 1001 "No response from ping
 * frame." during the run is a live connection closed although it answered.
 * Every process reports its event loop's worst lag, to tell a stalled
 * process from a lost pong.
 *
 *   deno run -A bench/idle_timeout_race.ts [clients] [idleTimeout] [seconds] [processes] [--duplex]
 *
 * With `--duplex` the server is a `DuplexServer` with the same
 * `idleTimeout`, and the clients offer `duplex.v1` and answer its type-5
 * pings (its keep-alive, src/server/keep_alive.ts) with pongs, as every
 * `duplex.v1` peer does; otherwise they still send nothing.
 *
 * On the 2-core machine of the docs (Deno 2.9.6), 8,000 clients in 4
 * processes, `idleTimeout` 2, 45 s: 43 and 321 such closes in two runs, no
 * process lagging more than 42 ms; at `idleTimeout` 10 (a fifth of the
 * pings), none. A client whose own frames come more often than every
 * `idleTimeout / 2` seconds is never pinged, so never closed this way
 * (docs/server.md, `idleTimeout`).
 *
 * @module
 */

import { lagProbe } from "../tests/_lag_probe.ts";
import { spawnDeno } from "./process.ts";
import { DuplexServer } from "../server.ts";

const MODE = Deno.args[0];
const DUPLEX = Deno.args.includes("--duplex");
const NO_RESPONSE = "No response from ping frame.";

/** What a server process counts. */
interface Counts {
  opened: number;
  /** Closed by Deno's idle timer ("No response from ping frame."). */
  closed: number;
  otherCloses: number;
}

/** A `DuplexServer`'s handler, reporting opens and closes. */
function duplexHandler(
  idle: number,
  opened: () => void,
  ended: (code: number, reason: string) => void,
): Deno.ServeHandler {
  const duplex = new DuplexServer({
    idleTimeout: idle,
    maxConnections: 1e6,
    maxConnectionsPerAddress: 1e6,
    rateLimit: false,
  });
  duplex.addEventListener("connect", opened);
  duplex.addEventListener(
    "disconnect",
    ({ detail }) => ended(detail.code, detail.reason),
  );
  return duplex.fetch;
}

/** A raw Deno handler: the upgrade with `idleTimeout`, nothing else. */
function rawHandler(
  idle: number,
  opened: () => void,
  ended: (code: number, reason: string) => void,
): Deno.ServeHandler {
  return (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request, {
      idleTimeout: idle,
    });
    socket.onopen = opened;
    // Deno dispatches a second close (1005) after its idle timer's.
    socket.addEventListener(
      "close",
      (event) => ended(event.code, event.reason),
      {
        once: true,
      },
    );
    return response;
  };
}

/**
 * `--server <idle> <seconds> <clients> [--duplex]`: prints its port, then
 * its counts, the pings it sent (Duplex) and the CPU time it used after the
 * last client opened.
 */
async function server(
  idle: number,
  seconds: number,
  total: number,
): Promise<void> {
  const lag = lagProbe();
  const counts: Counts = { opened: 0, closed: 0, otherCloses: 0 };
  let cpu = NaN; // CPU seconds when the last client opened
  const opened = () => {
    if (++counts.opened === total) cpu = cpuSeconds();
  };
  const ended = (code: number, reason: string) => {
    if (code === 1001 && reason === NO_RESPONSE) counts.closed++;
    else counts.otherCloses++;
  };
  const http = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: ({ port }) => console.log(port),
  }, (DUPLEX ? duplexHandler : rawHandler)(idle, opened, ended));
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const cpuSecondsUsed = cpuSeconds() - cpu;
  let appPings: string | undefined;
  if (DUPLEX) {
    const metrics = await fetch(`http://127.0.0.1:${http.addr.port}/metrics`);
    appPings = /duplex_frames_sent_total\{type="ping"\} (\d+)/.exec(
      await metrics.text(),
    )?.[1];
  }
  console.log(
    JSON.stringify({ ...counts, appPings, cpuSecondsUsed, lag: lag() }),
  );
  await http.shutdown();
  Deno.exit(0);
}

const PONG = '{"sequence":0,"type":6}';

/** This process's CPU time (user + system) in seconds, from /proc. */
function cpuSeconds(): number {
  const stat = Deno.readTextFileSync("/proc/self/stat");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime
}

/** `--clients <port> <n>`: opens `n` sockets, then reports its lag on stdin's end. */
async function clients(port: number, n: number): Promise<void> {
  const lag = lagProbe();
  let next = 0;
  const opener = async () => {
    while (next++ < n) {
      const socket = DUPLEX
        ? new WebSocket(`ws://127.0.0.1:${port}/?user=u${next}`, "duplex.v1")
        : new WebSocket(`ws://127.0.0.1:${port}/`);
      // A duplex.v1 peer answers pings (sequence 0, type 5) with pongs.
      if (DUPLEX) socket.onmessage = () => socket.send(PONG);
      await new Promise((resolve) => socket.onopen = resolve);
    }
  };
  await Promise.all(Array.from({ length: 100 }, opener));
  console.log("open");
  for await (const _ of Deno.stdin.readable) {
    // Held until the parent closes stdin.
  }
  console.log(JSON.stringify({ lag: lag() }));
  Deno.exit(0);
}

/** The lines a child prints, one by one. */
function lines(child: Deno.ChildProcess): ReadableStreamDefaultReader<string> {
  let rest = "";
  return child.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>({
      transform(chunk, out) {
        rest += chunk;
        let end;
        while ((end = rest.indexOf("\n")) >= 0) {
          out.enqueue(rest.slice(0, end));
          rest = rest.slice(end + 1);
        }
      },
    }),
  ).getReader();
}

if (MODE === "--server") {
  await server(
    Number(Deno.args[1]),
    Number(Deno.args[2]),
    Number(Deno.args[3]),
  );
} else if (MODE === "--clients") {
  await clients(Number(Deno.args[1]), Number(Deno.args[2]));
} else if (import.meta.main) {
  const [total = 8_000, idle = 2, seconds = 45, processes = 4] = Deno.args
    .filter((arg) => !arg.startsWith("--")).map(Number);
  const flags = DUPLEX ? ["--duplex"] : [];
  const spawn = (args: string[]) =>
    spawnDeno([import.meta.filename!, ...args, ...flags], { stdin: "piped" });
  const host = spawn([
    "--server",
    String(idle),
    String(seconds),
    String(total),
  ]);
  const hostLines = lines(host);
  const port = Number((await hostLines.read()).value);
  const children = Array.from(
    { length: processes },
    () => spawn(["--clients", String(port), String(total / processes)]),
  );
  const childLines = children.map(lines);
  for (const reader of childLines) await reader.read(); // "open"
  const result = JSON.parse((await hostLines.read()).value!);
  const lags: number[] = [];
  for (const [i, child] of children.entries()) {
    await child.stdin.close();
    lags.push(JSON.parse((await childLines[i].read()).value!).lag);
    await child.status;
  }
  await host.status;
  console.log(
    `${result.opened} clients answering pings, ${
      DUPLEX ? "DuplexServer" : "raw Deno server"
    }, idleTimeout ${idle} s, ${seconds} s: ` +
      `${result.closed} closed with 1001 "No response from ping frame."; ` +
      `worst lag: server ${result.lag} ms, clients ${Math.max(...lags)} ms`,
  );
  console.log(JSON.stringify({ ...result, idle, seconds, clientLag: lags }));
}
