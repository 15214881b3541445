/**
 * Binary and stream figures (issue 20), against a server in its own process
 * (`bench/_streams_server.ts`) so that its RSS is its own:
 *
 * 1. upload: `--upload-mib` MiB (default 1024) in 64 KiB binary chunks
 *    through a stream to a handler that discards them, against raw binary
 *    frames of the same size to a raw endpoint that discards them. Memory,
 *    the same measurement for both:
 *    - kept alive: what V8 holds (heap used + external buffers) sampled
 *      every 10 ms, each sample after a full GC, minus the level before;
 *      at a quarter of the size and at the full size (flat: it must not
 *      grow with the size), each in a fresh server process after a warm-up
 *      of 32 MiB; target at most 8 MiB;
 *    - the RSS of those same runs: the allocator's high-water mark, which
 *      includes the buffers received between two GCs (no target);
 *    - the RSS as V8 leaves it: the highest RSS sampled every 10 ms during
 *      the timed uploads minus the RSS before (after a full GC), the worst
 *      of the repeats. Every message arrives in a fresh buffer that V8
 *      collects when its heuristics say so, raw frames as well: no target,
 *      printed beside raw's (docs/performance.md, "Server memory during an
 *      upload"). `--server-v8-flags` passes V8 flags to the server (e.g.
 *      `--max-semi-space-size=1`).
 * 2. slow download: 1,000 chunks of 16 KiB to a consumer that waits 1 ms
 *    per chunk; the most chunks ever received and not yet consumed, and
 *    every 50 chunks how far the producer has pulled ahead of the consumer
 *    (neither may exceed the credit); the producer's RSS growth (flat:
 *    at most 2 MiB, under an eighth of the 16 MiB produced).
 * 3. round trip: a 1 MiB `Uint8Array` through `call("echo")` against a raw
 *    binary echo, median of `--rounds` (default 40) per repeat, interleaved
 *    in blocks of 10 (each first in every other pair of blocks, the first
 *    round of a block not counted), with the lowest and highest ratio of
 *    one repeat's medians; in a fresh server process (the target's
 *    figure), then in the one that served the uploads, whose allocator no
 *    longer gives pages back between messages (the raw echo's round is
 *    faster there, Duplex's JavaScript is not: docs/performance.md, "Fourth
 *    round"); the target holds only when both do. A third kind in the same
 *    blocks does the exchange with no library (a JSON head, then the bytes
 *    as a message of their own, both ways): the floor of a framing that
 *    keeps the bytes uncopied (`framedRatio`, docs/performance.md "Fifth
 *    round").
 *
 * With `--repeats N` (default 1) the upload and the round trips run N times,
 * raw and Duplex interleaved, and every figure is the median; each also
 * gives the CPU time of the client and of the server process (`cpuMs`),
 * steadier than wall time on a shared machine.
 *
 * Prints the targets of issue 20 with ✓ or ✗, then one JSON object.
 * `deno run -A bench/streams.ts [--upload-mib N]
 * [--rounds N] [--repeats N] [--sessions 0] [--server-v8-flags FLAGS]`
 * (sessions are on by default, as in the client and server).
 *
 * @module
 */

import { median } from "./stats.ts";
import process from "node:process";
import { parseArgs } from "node:util";
import { binaryCodec } from "../binary.ts";
import { Client, streams } from "../client.ts";

const { values } = parseArgs({
  options: {
    "upload-mib": { type: "string", default: "1024" },
    rounds: { type: "string", default: "40" },
    sessions: { type: "string", default: "1" },
    repeats: { type: "string", default: "1" },
    "server-v8-flags": { type: "string", default: "" },
  },
});
const SESSIONS = values.sessions !== "0";
const UPLOAD = Number(values["upload-mib"]) * 1024 * 1024;
const ROUNDS = Number(values.rounds);
const REPEATS = Number(values.repeats);
const CHUNK = 64 * 1024;
const MIB = 1024 * 1024;
/** Round trips of one kind in a row (section 3). */
const BLOCK = 10;

/** A server process (`bench/_streams_server.ts`) at `base` (host:port). */
interface Server {
  base: string;
  stop(): Promise<void>;
}

async function startServer(): Promise<Server> {
  const flags = values["server-v8-flags"];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      `--v8-flags=--expose-gc${flags ? `,${flags}` : ""}`,
      new URL("./_streams_server.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "inherit",
    env: { SESSIONS: SESSIONS ? "1" : "0" },
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  const { value: line } = await reader.read();
  const { port } = JSON.parse(line!);
  return {
    base: `127.0.0.1:${port}`,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      await reader.cancel();
    },
  };
}

const main = await startServer();
const base = main.base;

/** The server's memory after a full GC, and its peaks since a reset. */
interface Memory {
  /** RSS. */
  rss: number;
  /** The highest RSS sampled (every 10 ms). */
  peak: number;
  /** What V8 keeps alive: heap used + external memory (the buffers). */
  kept: number;
  /** The highest `kept` sampled, in live mode (a full GC before each). */
  keptPeak: number;
}

async function rss(
  reset: "" | "reset" | "reset&live" = "",
  at: string = base,
): Promise<Memory> {
  const response = await fetch(`http://${at}/rss?${reset}`);
  return await response.json();
}

/** CPU ms of this process and of the server at `at` so far. */
async function cpu(
  at: string = base,
): Promise<{ client: number; server: number }> {
  const { user, system } = process.cpuUsage();
  const response = await fetch(`http://${at}/cpu`);
  const { cpuMs } = await response.json();
  return { client: (user + system) / 1000, server: cpuMs };
}

/** Runs `run`, adding the CPU ms it took on both sides to `into`. */
async function timed<T>(
  run: () => Promise<T>,
  into: { client: number[]; server: number[] },
  at: string = base,
): Promise<T> {
  const before = await cpu(at);
  const result = await run();
  const after = await cpu(at);
  into.client.push(after.client - before.client);
  into.server.push(after.server - before.server);
  return result;
}

function cpuFigures(
  of: { client: number[]; server: number[] },
): { client: number; server: number } {
  return {
    client: Math.round(median(of.client)),
    server: Math.round(median(of.server)),
  };
}

async function openRaw(mode: string, at: string = base): Promise<WebSocket> {
  const socket = new WebSocket(`ws://${at}/raw?mode=${mode}`);
  socket.binaryType = "arraybuffer";
  await new Promise((resolve) => socket.onopen = resolve);
  return socket;
}

async function rawUpload(bytes: number, at: string = base): Promise<number> {
  const socket = await openRaw("sink", at);
  const chunk = new Uint8Array(CHUNK).fill(1);
  const started = performance.now();
  for (let sent = 0; sent < bytes; sent += CHUNK) {
    socket.send(chunk);
    // Only enough pacing to bound the send buffer (8 MiB, far more than the
    // stream's 16-chunk window): the fastest the raw socket goes.
    while (socket.bufferedAmount > 8 * MIB) {
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  const done = new Promise<string>((resolve) =>
    socket.onmessage = (event) => resolve(event.data)
  );
  socket.send("done");
  const total = Number(await done);
  const seconds = (performance.now() - started) / 1000;
  if (total !== bytes) throw new Error(`raw sink got ${total} of ${bytes}`);
  socket.close();
  return bytes / MIB / seconds;
}

async function* chunks(bytes: number): AsyncGenerator<Uint8Array> {
  const chunk = new Uint8Array(CHUNK).fill(1);
  for (let sent = 0; sent < bytes; sent += CHUNK) yield chunk;
}

async function connect(at: string): Promise<Client> {
  const client = new Client(`ws://${at}/?user=bench`, {
    codec: binaryCodec,
    streams,
    pingInterval: 0,
    timeout: 0,
    session: SESSIONS,
  });
  await client.connect();
  return client;
}
const client = await connect(base);

async function streamUpload(
  bytes: number,
  on: Client = client,
): Promise<number> {
  const started = performance.now();
  const total = await on.call("upload", chunks(bytes), { timeout: 0 });
  const seconds = (performance.now() - started) / 1000;
  if (total !== bytes) throw new Error(`upload got ${total} of ${bytes}`);
  return bytes / MIB / seconds;
}

// Warm up both paths.
await rawUpload(32 * MIB);
await streamUpload(32 * MIB);

const rawRuns: number[] = [];
const streamRuns: number[] = [];
const rawCpu = { client: [] as number[], server: [] as number[] };
const streamCpu = { client: [] as number[], server: [] as number[] };
let growth = 0;
let rawGrowth = 0;
/** Runs an upload, returning its result and the server's RSS growth. */
async function measured(run: () => Promise<number>): Promise<[number, number]> {
  const before = await rss("reset");
  const result = await run();
  const after = await rss();
  return [result, after.peak - before.rss];
}
for (let repeat = 0; repeat < REPEATS; repeat++) {
  const [raw, rawGrew] = await measured(() =>
    timed(() => rawUpload(UPLOAD), rawCpu)
  );
  rawRuns.push(raw);
  rawGrowth = Math.max(rawGrowth, rawGrew);
  const [stream, grew] = await measured(() =>
    timed(() => streamUpload(UPLOAD), streamCpu)
  );
  streamRuns.push(stream);
  growth = Math.max(growth, grew);
}
// What an upload keeps alive, and the RSS without the garbage V8 collects
// late: each kind at a quarter of the size and at the full size, each in a
// fresh server process (the RSS of one that served the uploads above stays
// at their garbage's high-water mark), after a warm-up of 32 MiB, with a full
// GC before every sample (every 10 ms).
async function live(
  kind: "raw" | "stream",
  bytes: number,
): Promise<{ keptMib: number; rssMib: number }> {
  const server = await startServer();
  const at = server.base;
  const fresh = kind === "stream" ? await connect(at) : undefined;
  const upload = (n: number) =>
    fresh ? streamUpload(n, fresh) : rawUpload(n, at);
  await upload(32 * MIB);
  const before = await rss("reset&live", at);
  await upload(bytes);
  const after = await rss("", at);
  await fresh?.close();
  await server.stop();
  return {
    keptMib: Number(((after.keptPeak - before.kept) / MIB).toFixed(2)),
    rssMib: Number(((after.peak - before.rss) / MIB).toFixed(2)),
  };
}
const liveFigures = [];
for (const bytes of [UPLOAD / 4, UPLOAD]) {
  liveFigures.push({
    mib: bytes / MIB,
    stream: await live("stream", bytes),
    raw: await live("raw", bytes),
  });
}
const upload = {
  mib: UPLOAD / MIB,
  chunkBytes: CHUNK,
  repeats: REPEATS,
  streamMibPerS: Math.round(median(streamRuns)),
  rawMibPerS: Math.round(median(rawRuns)),
  ratio: Number(
    median(streamRuns.map((stream, i) => stream / rawRuns[i])).toFixed(3),
  ),
  cpuMs: { raw: cpuFigures(rawCpu), stream: cpuFigures(streamCpu) },
  /** CPU of both processes, stream over raw (medians). */
  cpuRatio: Number(
    (
      (median(streamCpu.client) + median(streamCpu.server)) /
      (median(rawCpu.client) + median(rawCpu.server))
    ).toFixed(3),
  ),
  /** Peak RSS growth as V8 leaves it (its own GC pace), worst repeat. */
  serverRssGrowthMib: Number((growth / MIB).toFixed(2)),
  rawServerRssGrowthMib: Number((rawGrowth / MIB).toFixed(2)),
  /** A full GC before each sample: kept alive, and RSS, by upload size. */
  live: liveFigures,
};

// Slow consumer.
const credit = 16;
const downloadBefore = await rss("reset");
let consumed = 0;
let maxAhead = 0;
let maxPulledAhead = 0;
const samples: number[] = [];
const framesIn = client.peer!.stats.framesIn;
const startFrames = framesIn[12];
for await (
  const chunk of client.stream<Uint8Array>("download", {
    chunks: 1000,
    size: 16 * 1024,
  }, { credit })
) {
  if (chunk.byteLength !== 16 * 1024) throw new Error("short chunk");
  // Received and not consumed yet, this one included.
  maxAhead = Math.max(maxAhead, framesIn[12] - startFrames - consumed);
  consumed++;
  if (consumed % 50 === 0) {
    // The producer's lead over what was consumed (the slow consumer's
    // wait: a fetch takes longer than the 1 ms sleep).
    const response = await fetch(`http://${base}/pulled`);
    const { pulled } = await response.json();
    maxPulledAhead = Math.max(maxPulledAhead, pulled - consumed);
    samples.push((await rss()).rss);
  } else await new Promise((resolve) => setTimeout(resolve, 1));
}
const downloadAfter = await rss();
const download = {
  chunks: consumed,
  credit,
  maxInFlight: maxAhead,
  maxPulledAhead,
  serverRssSpreadMib: Number(
    ((Math.max(...samples) - Math.min(...samples)) / MIB).toFixed(2),
  ),
  serverRssGrowthMib: Number(
    ((downloadAfter.peak - downloadBefore.rss) / MIB).toFixed(2),
  ),
};

// 1 MiB round trip, against a fresh server process (like the memory
// figures above: what the uploads left in the server's heap does not bill
// this section), and for information against the server that served them.
const payload = new Uint8Array(MIB).fill(7);
const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** The round trip figures against the server at `at`. */
async function roundTrips(at: string, client: Client) {
  const echo = await openRaw("echo", at);
  async function rawRound(): Promise<number> {
    const started = performance.now();
    const back = new Promise((resolve) => echo.onmessage = resolve);
    echo.send(payload);
    await back;
    return performance.now() - started;
  }
  async function duplexRound(): Promise<number> {
    const started = performance.now();
    const back = await client.call("echo", payload) as Uint8Array;
    if (back.byteLength !== MIB) throw new Error("short echo");
    return performance.now() - started;
  }
  // The same exchange with no library: a JSON head, then the bytes as a
  // message of their own (the detached form's two messages, uncopied).
  const framed = await openRaw("framed", at);
  let sequence = 0;
  async function framedRound(): Promise<number> {
    const started = performance.now();
    let head: { sequence: number } | undefined;
    const back = new Promise<ArrayBuffer>((resolve) =>
      framed.onmessage = (event) => {
        if (head !== undefined) resolve(event.data);
        else head = JSON.parse(decoder.decode(event.data));
      }
    );
    const asked = {
      sequence: ++sequence,
      type: 1,
      method: "echo",
      lengths: [MIB],
    };
    framed.send(encoder.encode(JSON.stringify(asked)));
    framed.send(payload);
    const bytes = await back;
    if (bytes.byteLength !== MIB || head?.sequence !== sequence) {
      throw new Error("short framed echo");
    }
    return performance.now() - started;
  }
  const raws: number[] = [];
  const duplexes: number[] = [];
  const frameds: number[] = [];
  /** The ratio of the medians of each repeat (the spread shows the noise). */
  const repeatRatios: number[] = [];
  const rawRoundCpu = { client: [] as number[], server: [] as number[] };
  const duplexRoundCpu = { client: [] as number[], server: [] as number[] };
  for (let i = 0; i < 5; i++) {
    await rawRound() + await duplexRound() + await framedRound();
  }
  for (let repeat = 0; repeat < REPEATS; repeat++) {
    const repeatRaws: number[] = [];
    const repeatDuplexes: number[] = [];
    const kinds = [
      [rawRound, repeatRaws],
      [duplexRound, repeatDuplexes],
      [framedRound, frameds],
    ] as const;
    // In blocks of BLOCK rounds, the kinds in turn (each block of three
    // starting one kind later), the first round of a block not counted: a
    // round right after another kind's runs with what that one left in
    // flight (a session's acknowledgements, which make the raw echo's next
    // megabyte arrive faster, as any small message before it does; a
    // collection of the other's buffers), so that round by round
    // interleaving measures the mix rather than either.
    for (let block = 0; block * BLOCK < ROUNDS; block++) {
      for (let k = 0; k < kinds.length; k++) {
        const [round, into] = kinds[(block + k) % kinds.length];
        await round();
        for (let i = 0; i < BLOCK; i++) into.push(await round());
      }
    }
    raws.push(...repeatRaws);
    duplexes.push(...repeatDuplexes);
    repeatRatios.push(median(repeatDuplexes) / median(repeatRaws));
    // CPU in blocks (a fetch per round would swamp it).
    await timed(
      async () => {
        for (let i = 0; i < ROUNDS; i++) await rawRound();
      },
      rawRoundCpu,
      at,
    );
    await timed(
      async () => {
        for (let i = 0; i < ROUNDS; i++) await duplexRound();
      },
      duplexRoundCpu,
      at,
    );
  }
  echo.close();
  framed.close();
  const perRound = (of: { client: number[]; server: number[] }) => {
    const { client, server } = cpuFigures(of);
    return {
      client: Number((median(of.client) / ROUNDS).toFixed(3)),
      server: Number((median(of.server) / ROUNDS).toFixed(3)),
      total: Number(((client + server) / ROUNDS).toFixed(3)),
    };
  };
  return {
    bytes: MIB,
    rawMs: Number(median(raws).toFixed(2)),
    duplexMs: Number(median(duplexes).toFixed(2)),
    ratio: Number((median(duplexes) / median(raws)).toFixed(3)),
    repeatRatios: repeatRatios.map((ratio) => Number(ratio.toFixed(3))),
    framedMs: Number(median(frameds).toFixed(2)),
    /** The floor of any framing that keeps the bytes uncopied. */
    framedRatio: Number((median(frameds) / median(raws)).toFixed(3)),
    cpuMsPerRound: {
      raw: perRound(rawRoundCpu),
      duplex: perRound(duplexRoundCpu),
    },
  };
}
const fresh = await startServer();
const freshClient = await connect(fresh.base);
const roundTrip = await roundTrips(fresh.base, freshClient);
await freshClient.close();
await fresh.stop();
const roundTripAfterUploads = await roundTrips(base, client);
await client.close();
await main.stop();

function check(ok: boolean, text: string): void {
  console.log(`${ok ? "✓" : "✗"} ${text}`);
}
check(
  upload.ratio >= 0.8,
  `upload of ${upload.mib} MiB: ${upload.streamMibPerS} MiB/s, ` +
    `${upload.ratio} of raw binary frames (${upload.rawMibPerS} MiB/s); ` +
    `target at least 0.80 (CPU of both processes: ${upload.cpuRatio}× raw)`,
);
const [quarter, full] = upload.live;
check(
  Math.max(quarter.stream.keptMib, full.stream.keptMib) <= 8 &&
    full.stream.keptMib - quarter.stream.keptMib <= 2 &&
    Math.max(quarter.stream.rssMib, full.stream.rssMib) <= 8,
  `upload: server memory kept alive (V8 heap + external buffers after a ` +
    `full GC, sampled every 10 ms) grew by ${quarter.stream.keptMib} MiB ` +
    `at ${quarter.mib} MiB and ${full.stream.keptMib} MiB at ${full.mib} ` +
    `MiB (raw frames: ${quarter.raw.keptMib} and ${full.raw.keptMib}); ` +
    `target at most 8, flat (issue 20's "server RSS grows by at most 8 ` +
    `MiB", applied to what the server keeps; its RSS figures follow)`,
);
check(
  Math.max(quarter.stream.rssMib, full.stream.rssMib) <= 8,
  `upload: server RSS in those runs grew by ${quarter.stream.rssMib} and ` +
    `${full.stream.rssMib} MiB (raw frames: ${quarter.raw.rssMib} and ` +
    `${full.raw.rssMib}): the allocator's high-water mark, which includes ` +
    `the message buffers received between two GCs; target at most 8`,
);
console.log(
  `· upload: server RSS as V8 leaves it grew by ` +
    `${upload.serverRssGrowthMib} MiB at most (raw frames: ` +
    `${upload.rawServerRssGrowthMib} MiB): message buffers no longer ` +
    `referenced that V8 has not collected yet, not memory the server keeps ` +
    `(see docs/performance.md, "Server memory during an upload")`,
);
check(
  download.maxInFlight <= credit && download.maxPulledAhead <= credit,
  `slow download: at most ${download.maxInFlight} chunks received and ` +
    `not consumed, the producer at most ${download.maxPulledAhead} ahead; ` +
    `credit ${credit}`,
);
check(
  download.serverRssGrowthMib <= 2,
  `slow download: producer RSS grew by ${download.serverRssGrowthMib} MiB ` +
    `(spread of the samples ${download.serverRssSpreadMib} MiB); flat: ` +
    `at most 2`,
);
check(
  roundTrip.ratio <= 1.1,
  `1 MiB round trip: ${roundTrip.duplexMs} ms, ${roundTrip.ratio} of a ` +
    `raw binary echo (${roundTrip.rawMs} ms; repeats ` +
    `${Math.min(...roundTrip.repeatRatios)}–` +
    `${Math.max(...roundTrip.repeatRatios)}), a fresh server; target at ` +
    `most 1.10`,
);
check(
  roundTripAfterUploads.ratio <= 1.1,
  `1 MiB round trip in the server that served the uploads above: ` +
    `${roundTripAfterUploads.duplexMs} ms, ${roundTripAfterUploads.ratio} ` +
    `of a raw binary echo in the same process ` +
    `(${roundTripAfterUploads.rawMs} ms; repeats ` +
    `${Math.min(...roundTripAfterUploads.repeatRatios)}–` +
    `${Math.max(...roundTripAfterUploads.repeatRatios)}); target at most ` +
    `1.10`,
);
for (
  const [where, figures] of [["a fresh server", roundTrip], [
    "the server after the uploads",
    roundTripAfterUploads,
  ]] as const
) {
  console.log(
    `· 1 MiB round trip with no library, a JSON head then the bytes as a ` +
      `message of their own, in ${where}: ${figures.framedMs} ms, ` +
      `${figures.framedRatio} of the raw echo (the floor of a framing that ` +
      `does not copy the bytes; Duplex ${figures.ratio})`,
  );
}
console.log(
  JSON.stringify(
    {
      sessions: SESSIONS,
      upload,
      download,
      roundTrip,
      roundTripAfterUploads,
    },
    null,
    2,
  ),
);
