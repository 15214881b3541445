/**
 * The cost of one 64 KiB upload chunk, both ends in one process, on a real
 * loopback WebSocket: raw binary frames to a sink (`raw`), or a Duplex stream
 * upload to a handler that discards it (`stream`, with a session unless the
 * fourth argument is `0`). Two measures that do not swing with the machine's
 * load, unlike the throughput of bench/streams.ts:
 *
 * - instructions per chunk, counted by callgrind over `count` chunks after a
 *   warm-up of 3,000 (the instrumentation is switched on and off around them
 *   with `callgrind_control`); divide the "Collected" figure valgrind prints
 *   by `count`:
 *
 *       valgrind --tool=callgrind --instr-atstart=no \
 *         deno run -A --v8-flags=--single-threaded \
 *         bench/upload_instructions.ts <root> <raw|stream> <count> [1|0]
 *
 * - with `--heap` as the last argument (no valgrind; run it with
 *   `--v8-flags=--expose-gc,--min-semi-space-size=128,--max-semi-space-size=128`
 *   so that no scavenge runs inside a sample): bytes of JavaScript heap
 *   allocated per chunk, five samples of `count` chunks each.
 *
 * - with `--cpu` as the last argument (no valgrind; run it with
 *   `--v8-flags=--single-threaded`; `mode` is ignored): the process's CPU
 *   time for `count` chunks, raw frames and the stream alternately, five
 *   rounds, and raw's median over the stream's (both ends in one process,
 *   so the figure is the work of both, which two processes on a shared
 *   machine only blur).
 *
 * `root` is a checkout, so that the "before" of a change can be another one.
 * See docs/performance.md, "Upload, seventh round" and "eighth round".
 *
 * @module
 */

import process from "node:process";
import { counted } from "./_callgrind.ts";
import { median } from "./stats.ts";

const CHUNK = 65_536;

/** Uploads `n` chunks and resolves once the receiver counted them all. */
type Upload = (n: number) => Promise<void>;

/** A sink for raw binary frames: answers a text frame with the bytes got. */
function rawSink(request: Request): Response {
  const { socket, response } = Deno.upgradeWebSocket(request);
  socket.binaryType = "arraybuffer";
  let total = 0;
  socket.onmessage = (event) => {
    if (typeof event.data !== "string") {
      total += (event.data as ArrayBuffer).byteLength;
      return;
    }
    socket.send(String(total));
    total = 0;
  };
  return response;
}

async function rawUpload(base: string, chunk: Uint8Array): Promise<Upload> {
  const socket = new WebSocket(`ws://${base}/raw`);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve) => socket.onopen = resolve);
  return async (n) => {
    for (let i = 0; i < n; i++) {
      socket.send(chunk);
      while (socket.bufferedAmount > 8 * 1024 * 1024) {
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    }
    const total = new Promise<string>((resolve) =>
      socket.onmessage = (event) => resolve(event.data)
    );
    socket.send("done");
    if (Number(await total) !== n * CHUNK) {
      throw new Error("Cannot count: raw chunks missing");
    }
  };
}

/** `chunk`, `n` times. */
async function* repeated(
  chunk: Uint8Array,
  n: number,
): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) yield chunk;
}

if (import.meta.main) {
  const [given, mode = "stream", countText = "2000", sessionText = "1"] =
    Deno.args;
  const heap = Deno.args.includes("--heap");
  const cpu = Deno.args.includes("--cpu");
  const root = new URL(given ?? "..", `file://${Deno.cwd()}/`).href
    .replace(/\/$/, "");
  const count = Number(countText);
  const session = sessionText !== "0";
  const { DuplexServer } = await import(`${root}/server.ts`);
  const { Client, streams } = await import(`${root}/client.ts`);
  const { binaryCodec } = await import(`${root}/binary.ts`);
  const chunk = new Uint8Array(CHUNK).fill(1);

  const server = new DuplexServer({
    codecs: [binaryCodec],
    maxMessageSize: 4 * 1024 * 1024,
    rateLimit: false,
    sessions: session ? undefined : false,
  });
  server.handle("upload", async (chunks: AsyncIterable<Uint8Array>) => {
    let total = 0;
    for await (const received of chunks) total += received.byteLength;
    return total;
  });
  const http = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    (request) =>
      new URL(request.url).pathname === "/raw"
        ? rawSink(request)
        : server.fetch(request),
  );
  const base = `127.0.0.1:${http.addr.port}`;

  let upload: Upload;
  let client: { close(): Promise<void> } | undefined;
  if (mode === "stream" || cpu) {
    const streaming = new Client(`ws://${base}/?user=bench`, {
      codec: binaryCodec,
      streams,
      pingInterval: 0,
      timeout: 0,
      session,
    });
    await streaming.connect();
    client = streaming;
    upload = async (n) => {
      const total = await streaming.call("upload", repeated(chunk, n), {
        timeout: 0,
      });
      if (total !== n * CHUNK) throw new Error("Cannot count: chunks missing");
    };
  } else upload = await rawUpload(base, chunk);

  await upload(3_000);
  if (cpu) {
    const raw = await rawUpload(base, chunk);
    await raw(3_000);
    const used = () => {
      const { user, system } = process.cpuUsage();
      return (user + system) / 1000;
    };
    const times = { raw: [] as number[], stream: [] as number[] };
    for (let round = 0; round < 5; round++) {
      for (const [kind, run] of [["raw", raw], ["stream", upload]] as const) {
        const before = used();
        await run(count);
        times[kind].push(Math.round(used() - before));
      }
    }
    console.log(
      `CPU ms for ${count} chunks: raw ${times.raw.join(" ")}; stream ` +
        `(session ${session}) ${times.stream.join(" ")}; raw/stream ` +
        (median(times.raw) / median(times.stream)).toFixed(3),
    );
  } else if (heap) {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (gc === undefined) {
      throw new Error("Cannot measure: run with --expose-gc");
    }
    const samples: number[] = [];
    for (let i = 0; i < 5; i++) {
      gc();
      const before = Deno.memoryUsage().heapUsed;
      await upload(count);
      samples.push(Math.round((Deno.memoryUsage().heapUsed - before) / count));
    }
    console.log(
      `${mode}${mode === "stream" ? ` (session ${session})` : ""}: ` +
        `heap bytes allocated per chunk ${samples.join(" ")}`,
    );
  } else {
    await counted(() => upload(count));
  }
  await client?.close();
  await http.shutdown();
  Deno.exit(0);
}
