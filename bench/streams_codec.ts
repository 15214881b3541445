/**
 * The binary codec choice, measured: Duplex's JSON header with binary
 * attachments (`@duplex/ws/binary`) against MessagePack (`@msgpack/msgpack`)
 * and plain JSON (which cannot carry bytes: they become objects of numbered
 * keys, shown for size only), on three frames: a chat message without bytes,
 * an image message (a 20 KiB `Uint8Array` with a name), and a 1 MiB chunk.
 * Prints, per frame, the encoded size and the encode+decode time (µs), and
 * the gzip size of each codec's browser bundle.
 *
 * `deno run -A bench/streams_codec.ts`
 *
 * @module
 */

import { decode, encode } from "npm:@msgpack/msgpack@3.1.3";
import { binaryCodec } from "../binary.ts";
import type { Frame } from "../mod.ts";
import { gzip } from "../scripts/bundle_size.ts";

const frames: Record<string, Frame> = {
  chat: {
    sequence: 7,
    type: 3,
    message: { text: "hello there, how are you?", room: "lobby" },
    from: "alice",
  },
  image: {
    sequence: 8,
    type: 1,
    method: "image",
    message: { name: "cat.png", bytes: new Uint8Array(20 * 1024).fill(3) },
  },
  chunk: { sequence: 9, type: 12, message: new Uint8Array(1 << 20).fill(5) },
};

function time(run: () => void): number {
  for (let i = 0; i < 20; i++) run();
  let rounds = 0;
  const started = performance.now();
  while (performance.now() - started < 300) {
    run();
    rounds++;
  }
  return (performance.now() - started) * 1000 / rounds;
}

const results: Record<string, unknown> = {};
for (const [name, frame] of Object.entries(frames)) {
  const bin = binaryCodec.encode(frame);
  const pack = encode(frame);
  results[name] = {
    attachmentsBytes: typeof bin === "string"
      ? new TextEncoder().encode(bin).byteLength
      : bin.byteLength,
    msgpackBytes: pack.byteLength,
    jsonBytes: new TextEncoder().encode(JSON.stringify(frame)).byteLength,
    attachmentsMicros: Number(
      time(() => binaryCodec.decode(binaryCodec.encode(frame))).toFixed(1),
    ),
    msgpackMicros: Number(time(() => decode(encode(frame))).toFixed(1)),
  };
}

async function bundled(source: string): Promise<number> {
  const dir = await Deno.makeTempDir();
  const entry = `${dir}/entry.ts`;
  await Deno.writeTextFile(entry, source);
  const out = `${dir}/out.js`;
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform",
      "browser",
      "--minify",
      "--output",
      out,
      entry,
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (code !== 0) throw new Error("Cannot bundle");
  const size = (await gzip(await Deno.readFile(out))).byteLength;
  await Deno.remove(dir, { recursive: true });
  return size;
}

const root = new URL("../", import.meta.url).pathname;
results.bundleGzipBytes = {
  attachments: await bundled(
    `export { binaryCodec } from "${root}src/wire/binary_codec.ts";`,
  ),
  msgpack: await bundled(
    `export { decode, encode } from "npm:@msgpack/msgpack@3.1.3";`,
  ),
};
console.log(JSON.stringify(results, null, 2));
