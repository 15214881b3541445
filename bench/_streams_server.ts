/**
 * The server process of `bench/streams.ts`: a DuplexServer with the binary
 * codec (`/`) and a raw WebSocket endpoint (`/raw`) on the same port.
 *
 * - `upload` (Duplex): reads an uploaded stream and discards it; answers the
 *   byte count.
 * - `download` (Duplex): `{ chunks, size }` → a stream of `chunks` binary
 *   chunks of `size` bytes; counts how many the producer pulled (`GET
 *   /pulled`: `{ pulled }`).
 * - `echo` (Duplex): answers its params.
 * - `/raw?mode=sink`: discards binary frames, answers the total to a text
 *   `"done"`; `/raw?mode=echo`: echoes every frame; `/raw?mode=framed`:
 *   the least a protocol with a header can do without copying the bytes,
 *   no library: a small JSON head message, then the bytes as a message of
 *   their own, answered the same way.
 * - `GET /rss`: `{ rss, peak, kept, keptPeak }` in bytes after a full GC:
 *   `rss`, and `kept`, what V8 keeps alive (heap used + external memory,
 *   which holds the ArrayBuffers); `peak` is the highest RSS sampled every
 *   10 ms since the last `GET /rss?reset`. With `?reset&live` every sample
 *   comes after a full GC, and `keptPeak` is the highest `kept` sampled.
 * - `GET /cpu`: `{ cpuMs }`, the process's CPU time so far (user + system).
 *
 * Prints `{"port": N}` once listening. Run with `--v8-flags=--expose-gc`;
 * `SESSIONS=0` turns sessions off.
 *
 * @module
 */

import process from "node:process";
import { binaryCodec } from "../binary.ts";
import { DuplexServer } from "../server.ts";

/**
 * A full GC, twice: the first one's freeing of ArrayBuffers finishes in the
 * background, and `external` counts them until the next GC waits for it.
 */
function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  collect?.();
  collect?.();
}

/** What V8 keeps alive: its heap in use plus external memory (buffers). */
function kept(): number {
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

let peak = 0;
let keptPeak = 0;
/** Whether each sample first collects garbage (`GET /rss?reset&live`). */
let live = false;
const sampler = setInterval(() => {
  // Live: a full GC before every sample, so that the peak is what is kept
  // alive (and what the allocator holds), not garbage V8 has not collected
  // yet.
  if (live) {
    gc();
    keptPeak = Math.max(keptPeak, kept());
  }
  peak = Math.max(peak, Deno.memoryUsage().rss);
}, 10);

const server = new DuplexServer({
  codecs: [binaryCodec],
  maxMessageSize: 4 * 1024 * 1024,
  rateLimit: false,
  // SESSIONS=0: without sessions (the figures of the stream layer alone).
  sessions: Deno.env.get("SESSIONS") === "0" ? false : undefined,
});
server.handle("upload", async (chunks: AsyncIterable<Uint8Array>) => {
  let total = 0;
  for await (const chunk of chunks) total += chunk.byteLength;
  return total;
});
/** Chunks the current download's producer pulled so far. */
let pulled = 0;
server.handle(
  "download",
  async function* ({ chunks, size }: { chunks: number; size: number }) {
    pulled = 0;
    for (let i = 0; i < chunks; i++) {
      pulled++;
      yield new Uint8Array(size).fill(i);
    }
  },
);
server.handle("echo", (value: unknown) => value);

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function raw(request: Request, mode: string): Response {
  const { socket, response } = Deno.upgradeWebSocket(request);
  let total = 0;
  let head: ArrayBuffer | undefined;
  socket.onmessage = (event) => {
    if (mode === "echo") socket.send(event.data);
    else if (mode === "framed") {
      if (head === undefined) {
        head = event.data;
        return;
      }
      const { sequence } = JSON.parse(decoder.decode(head));
      head = undefined;
      const bytes = new Uint8Array(event.data);
      const answer = { sequence, type: 2, lengths: [bytes.byteLength] };
      socket.send(encoder.encode(JSON.stringify(answer)));
      socket.send(bytes);
    } else if (typeof event.data === "string") socket.send(String(total));
    else total += (event.data as ArrayBuffer).byteLength;
  };
  return response;
}

const http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (
  request,
) => {
  const url = new URL(request.url);
  if (url.pathname === "/rss") {
    gc();
    const rss = Deno.memoryUsage().rss;
    const now = kept();
    if (url.searchParams.has("reset")) {
      peak = rss;
      keptPeak = now;
      live = url.searchParams.has("live");
    }
    return Response.json({ rss, peak, kept: now, keptPeak });
  }
  if (url.pathname === "/pulled") return Response.json({ pulled });
  if (url.pathname === "/cpu") {
    const { user, system } = process.cpuUsage();
    return Response.json({ cpuMs: (user + system) / 1000 });
  }
  if (url.pathname === "/raw") {
    return raw(request, url.searchParams.get("mode") ?? "sink");
  }
  return server.fetch(request);
});
console.log(JSON.stringify({ port: http.addr.port }));
Deno.addSignalListener("SIGTERM", () => {
  clearInterval(sampler);
  server.shutdown().then(() => http.shutdown()).then(() => Deno.exit(0));
});
