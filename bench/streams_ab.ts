/**
 * The upload of `bench/streams.ts` (64 KiB chunks through a stream to a
 * handler that discards them, against raw binary frames), for several
 * checkouts at once, interleaved: each checkout's server
 * (`bench/_streams_server.ts`) runs in a process of its own and each
 * checkout's client is loaded in this one; every round runs, for each
 * checkout in turn (the order rotating from round to round), a raw upload
 * then a stream upload against that checkout's server. Prints per checkout
 * the medians of the per-round stream/raw throughput ratio, of the CPU of
 * both processes stream/raw, and of the client's and the server's CPU per
 * GiB of the stream upload: on a shared machine compare checkouts by these
 * medians, never by one run, and run it twice with the checkouts in both
 * orders (in some runs of 2026-12-01 the checkout listed first came out ahead
 * whichever it was: docs/performance.md, "Upload path, sixth round").
 *
 *   deno run -A bench/streams_ab.ts [--upload-mib 256] [--rounds 20] CHECKOUT...
 *
 * (`CHECKOUT` is the root of a checkout or a copy of one: `.` for this one;
 * sessions on, as in the client and server.)
 *
 * @module
 */

import process from "node:process";
import { parseArgs } from "node:util";
import { median } from "./stats.ts";

const { values, positionals } = parseArgs({
  options: {
    "upload-mib": { type: "string", default: "256" },
    rounds: { type: "string", default: "20" },
  },
  allowPositionals: true,
});
const MIB = 1024 * 1024;
const CHUNK = 64 * 1024;
const BYTES = Number(values["upload-mib"]) * MIB;
const ROUNDS = Number(values.rounds);

/** One checkout: its server, its client, and its figures. */
interface Checkout {
  root: string;
  at: string;
  stop(): Promise<void>;
  upload(bytes: number): Promise<unknown>;
  close(): Promise<void>;
  ratio: number[];
  cpuRatio: number[];
  clientMs: number[];
  serverMs: number[];
}

async function start(root: string): Promise<Checkout> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--v8-flags=--expose-gc", "bench/_streams_server.ts"],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const { value: line } = await reader.read();
  const at = `127.0.0.1:${JSON.parse(line!).port}`;
  const { Client, streams } = await import(`${root}/client.ts`);
  const { binaryCodec } = await import(`${root}/binary.ts`);
  const client = new Client(`ws://${at}/?user=bench`, {
    codec: binaryCodec,
    streams,
    pingInterval: 0,
    timeout: 0,
  });
  await client.connect();
  return {
    root,
    at,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await reader.cancel();
    },
    upload: (bytes) => client.call("upload", chunks(bytes), { timeout: 0 }),
    close: () => client.close(),
    ratio: [],
    cpuRatio: [],
    clientMs: [],
    serverMs: [],
  };
}

async function* chunks(bytes: number): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(CHUNK).fill(1);
  for (let sent = 0; sent < bytes; sent += CHUNK) yield chunk;
}

async function rawUpload(at: string, bytes: number): Promise<void> {
  const socket = new WebSocket(`ws://${at}/raw?mode=sink`);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve) => socket.onopen = resolve);
  const chunk = new Uint8Array(CHUNK).fill(1);
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    socket.send(chunk);
    while (socket.bufferedAmount > 8 * MIB) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  const done = new Promise((resolve) => socket.onmessage = resolve);
  socket.send("done");
  await done;
  socket.close();
}

/** Wall ms and CPU ms of this process and of the server at `at`. */
async function measured(
  at: string,
  run: () => Promise<unknown>,
): Promise<{ ms: number; client: number; server: number }> {
  const serverCpu = async () =>
    (await (await fetch(`http://${at}/cpu`)).json()).cpuMs as number;
  const server = await serverCpu();
  const client = process.cpuUsage();
  const started = performance.now();
  await run();
  const ms = performance.now() - started;
  const { user, system } = process.cpuUsage(client);
  return {
    ms,
    client: (user + system) / 1000,
    server: await serverCpu() - server,
  };
}

const checkouts: Checkout[] = [];
for (const path of positionals) {
  const checkout = await start(await Deno.realPath(path));
  await rawUpload(checkout.at, 32 * MIB);
  await checkout.upload(32 * MIB);
  checkouts.push(checkout);
}
const perGiB = 1024 * MIB / BYTES;
for (let round = 0; round < ROUNDS; round++) {
  const k = round % checkouts.length;
  for (const c of [...checkouts.slice(k), ...checkouts.slice(0, k)]) {
    const raw = await measured(c.at, () => rawUpload(c.at, BYTES));
    const stream = await measured(c.at, () => c.upload(BYTES));
    c.ratio.push(raw.ms / stream.ms);
    c.cpuRatio.push(
      (stream.client + stream.server) / (raw.client + raw.server),
    );
    c.clientMs.push(stream.client * perGiB);
    c.serverMs.push(stream.server * perGiB);
  }
}
for (const c of checkouts) {
  console.log(JSON.stringify({
    checkout: c.root,
    rounds: ROUNDS,
    ratio: Number(median(c.ratio).toFixed(3)),
    cpuRatio: Number(median(c.cpuRatio).toFixed(3)),
    clientCpuMsPerGiB: Math.round(median(c.clientMs)),
    serverCpuMsPerGiB: Math.round(median(c.serverMs)),
  }));
  await c.close();
  await c.stop();
}
