/**
 * Measures the browser client, as `deno task size`:
 *
 * - (a) what a typical browser app ships: the bundle of
 *   `scripts/typical_app.ts`, which imports just `Client` and uses it,
 *   tree-shaken and minified (`deno bundle --platform browser --minify`).
 *   The budget ({@linkcode BUDGET_BYTES}, 7 KB min+gzip) is about this
 *   figure; the script exits with 1 above it.
 * - (b) the whole `client.ts` entry (everything it exports).
 * - (c) the typical app with stream support (`{ streams }`), and what is
 *   left of stream support in (a), which does not opt in (at most
 *   {@linkcode STREAMS_BUDGET_BYTES}; the script exits with 1 above it).
 * - What each part of (a) costs ({@linkcode PARTS}). Method: the bundle is
 *   built with a source map, which names the source file and line of every
 *   minified byte. A part's minified bytes are the bytes mapped to its
 *   files (or to its class members, see {@linkcode Part}), exactly; its
 *   gzip bytes are what the gzip size drops by when those bytes are cut out
 *   of the bundle (the part's marginal cost: the parts' gzip figures do not
 *   add up to the total, since what they share compresses once).
 *
 * Run it with `deno task size`; `deno task size --members` also lists the
 * costliest functions and class members. Gzip is `CompressionStream`'s
 * (level 6, as most servers); `gzip -9` saves about 0.1 % more.
 *
 * @module
 */

/** The gzip budget of the typical app's bundle, in bytes (7 KB). */
export const BUDGET_BYTES = 7 * 1024;

/** The entry of the typical app, relative to the repository root. */
export const TYPICAL_APP = "scripts/typical_app.ts";

/**
 * The typical app with stream support (the `streams` option): what opting
 * in costs.
 */
export const TYPICAL_STREAM_APP = "scripts/typical_stream_app.ts";

/**
 * The most stream support may add to a JSON-only client that does not opt
 * in, in gzip bytes (issue 20: 1 KB).
 */
export const STREAMS_BUDGET_BYTES = 1024;

/** The part that is stream support (its files, and the refusals left). */
export const STREAMS = "streams (credit flow control, uploads, downloads)";

const ROOT = new URL("../", import.meta.url);

/** The part that is the entry's own code. */
const APP = "the app's own code";

/**
 * One part of the client: files (paths from the repository root), or class
 * members and functions of a file (`"src/client/client.ts#Client.#send"`).
 * A byte counts for the first part that claims it, members before files.
 */
export interface Part {
  /** The part's name. */
  name: string;
  /** Files or members. */
  code: string[];
}

/** The parts of the client, in the order of the report. */
export const PARTS: Part[] = [
  {
    name: "sessions (resume, replay, acks, storage)",
    code: [
      "src/peer/session_socket.ts",
      "src/peer/listener_lists.ts",
      "src/peer/session_outbox.ts",
      "src/peer/session_limits.ts",
      "src/wire/buffer_pool.ts",
      "src/wire/frame_bytes.ts",
      "src/client/client_session.ts",
      "src/wire/session_frames.ts",
      "src/wire/outcome_unknown_error.ts",
    ],
  },
  {
    name: STREAMS,
    code: [
      "src/peer/streams.ts",
      "src/peer/chunk_queue.ts",
      "src/peer/stream_support.ts",
      "src/wire/stream_frames.ts",
      // What stays without the `streams` option: the refusals.
      "src/peer/sender.ts#Sender.stream",
      "src/peer/sender.ts#Sender.#streams",
      "src/peer/sender.ts#Sender.constructor",
      "src/peer/sender.ts#STREAMS_UNSUPPORTED",
      "src/peer/sender.ts#noStreams",
      "src/peer/sender.ts#isStream",
      "src/peer/peer.ts#Peer.#streamsOf",
    ],
  },
  {
    name: "codec negotiation (subprotocol offer and selection)",
    code: ["src/client/negotiation.ts"],
  },
  {
    name: "offline queue",
    code: ["src/client/client.ts#Client.#send"],
  },
  { name: "heartbeat", code: ["src/client/heartbeat.ts"] },
  {
    name: "reconnect, backoff, close (the rest of Client)",
    code: [
      "src/client/client.ts",
      "src/client/backoff.ts",
      "src/client/client_events.ts",
      "src/client/negotiation.ts",
      "src/wire/close_codes.ts",
    ],
  },
  { name: "notification stream", code: ["src/client/notification_stream.ts"] },
  {
    name: "outgoing requests (sequences, timeouts, aborts)",
    code: ["src/peer/pending_requests.ts"],
  },
  {
    name: "incoming requests (handlers, cancel)",
    code: ["src/peer/incoming_requests.ts"],
  },
  {
    name: "peer: closing frame (closeWithReason)",
    code: ["src/peer/peer.ts#Peer.closeWithReason"],
  },
  {
    name: "peer: frames, dispatch, close (the rest of Peer)",
    code: [
      "src/peer/peer.ts",
      "src/peer/sender.ts",
      "src/peer/peer_options.ts",
      "src/peer/socket_like.ts",
    ],
  },
  {
    name: "codec and frame validation",
    code: ["src/wire/codec.ts", "src/wire/protocol.ts"],
  },
  {
    name: "malformed frames and original protocol",
    code: ["src/peer/malformed_frames.ts", "src/peer/original_protocol.ts"],
  },
  {
    name: "batch frames (reading write-coalesced batches)",
    code: ["src/wire/batch.ts"],
  },
  { name: "error classes and messages", code: ["src/wire/errors.ts"] },
  { name: "middleware", code: ["src/peer/middleware.ts"] },
  {
    name: "handler registry, typed event target",
    code: ["src/peer/receiver.ts", "src/peer/typed_event_target.ts"],
  },
  {
    name: "contracts and validation",
    code: [
      "src/peer/contract.ts",
      "src/peer/contract_caller.ts",
      "src/peer/validation.ts",
      "src/peer/standard_schema.ts",
    ],
  },
];

/**
 * Compresses bytes with gzip.
 *
 * @param bytes The input.
 * @returns The gzip-compressed bytes.
 */
export async function gzip(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function gzipSize(text: string): Promise<number> {
  return (await gzip(new TextEncoder().encode(text))).byteLength;
}

/** Sizes of a browser bundle. */
export interface BundleSize {
  /** Path of the bundle that was built. */
  path: string;
  /** Minified size in bytes. */
  minified: number;
  /** Gzip size in bytes. */
  gzip: number;
}

/** A bundle with its source map, as built. */
interface Built extends BundleSize {
  code: string;
  map: SourceMap;
}

interface SourceMap {
  sources: string[];
  sourcesContent?: (string | null)[];
  mappings: string;
}

async function build(entry: string): Promise<Built> {
  const name = entry.replace(/^.*\//, "").replace(/\.ts$/, "");
  const out = new URL(`dist/${name}.min.js`, ROOT);
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--quiet",
      "--platform",
      "browser",
      "--minify",
      "--sourcemap",
      "external",
      "--output",
      out.pathname,
      new URL(entry, ROOT).pathname,
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    throw new Error(
      `Cannot measure the bundle: deno bundle failed\n${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  const text = await Deno.readTextFile(out);
  const map = JSON.parse(
    await Deno.readTextFile(new URL(`${out.href}.map`)),
  ) as SourceMap;
  // The map's trailing comment is not code.
  const body = text.replace(/\n\/\/# sourceMappingURL=.*\n?$/, "\n");
  return {
    path: out.pathname,
    code: body,
    map,
    minified: new TextEncoder().encode(body).byteLength,
    gzip: await gzipSize(body),
  };
}

/**
 * Builds the browser bundle of `entry` and measures it.
 *
 * @param entry The entry, relative to the repository root: by default the
 * typical app, whose size the budget is about.
 * @returns The sizes.
 * @throws {Error} When `deno bundle` fails.
 */
export async function bundleSize(
  entry: string = TYPICAL_APP,
): Promise<BundleSize> {
  const { path, minified, gzip } = await build(entry);
  return { path, minified, gzip };
}

const BASE64 =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/** Decodes one source map segment (base64 VLQ) into its fields. */
function segment(text: string): number[] {
  const fields: number[] = [];
  let value = 0;
  let shift = 0;
  for (const char of text) {
    const digit = BASE64.indexOf(char);
    value += (digit & 31) * 2 ** shift;
    if (digit & 32) {
      shift += 5;
    } else {
      fields.push(value % 2 ? -(value - 1) / 2 : value / 2);
      value = 0;
      shift = 0;
    }
  }
  return fields;
}

/**
 * The name of the function or class member each line of a source belongs
 * to: `Class.member`, `function`, or the top-level name (a heuristic on the
 * layout `deno fmt` gives: declarations at column 0, members at column 2).
 */
function memberNames(source: string): string[] {
  const names: string[] = [];
  let top = "";
  let member = "";
  let inClass = false;
  const topLevel =
    /^(?:export )?(?:declare )?(?:abstract )?(?:async )?(?:class|function\*?|const|let|var|interface|type|enum) ([\w$]+)/;
  const memberLine =
    /^ {2}(?:(?:static|readonly|declare|async|override|get|set|protected|public) )*(#?[\w$]+|\[Symbol\.\w+\])\s*[(<=:;?!]/;
  for (const line of source.split("\n")) {
    const declared = topLevel.exec(line);
    if (declared) {
      top = declared[1];
      member = "";
      inClass = /\bclass /.test(line);
    } else if (inClass) {
      const named = memberLine.exec(line);
      if (named) member = named[1];
    }
    names.push(member ? `${top}.${member}` : top);
  }
  return names;
}

/** Where the bytes of a bundle come from. */
interface Origin {
  /** The source file, relative to the repository root. */
  file: string;
  /** Its function or class member. */
  member: string;
}

/**
 * The origin of every byte of the bundle's code, from its source map: each
 * mapped segment runs to the next one.
 */
function origins(built: Built): { origin: Origin[]; ranges: Int32Array } {
  const root = decodeURIComponent(ROOT.pathname);
  const outDir = new URL("dist/", ROOT);
  const files = built.map.sources.map((source) =>
    decodeURIComponent(new URL(source, outDir).pathname).replace(root, "")
  );
  const members = built.map.sources.map((_, index) =>
    memberNames(built.map.sourcesContent?.[index] ?? "")
  );
  const origin: Origin[] = [{ file: "(unmapped)", member: "" }];
  const keys = new Map<string, number>();
  const lines = built.code.split("\n");
  // Per byte (UTF-16 unit) of the code: an index into `origin`.
  const ranges = new Int32Array(built.code.length);
  let offset = 0;
  let source = 0;
  let sourceLine = 0;
  built.map.mappings.split(";").forEach((mapped, lineIndex) => {
    const line = lines[lineIndex] ?? "";
    let column = 0;
    let current = 0;
    let start = 0;
    for (const text of mapped ? mapped.split(",") : []) {
      const fields = segment(text);
      column += fields[0];
      ranges.fill(current, offset + start, offset + column);
      start = column;
      if (fields.length < 4) {
        current = 0;
        continue;
      }
      source += fields[1];
      sourceLine += fields[2];
      const file = files[source];
      const member = members[source][sourceLine] ?? "";
      const key = `${file}#${member}`;
      let index = keys.get(key);
      if (index === undefined) {
        keys.set(key, index = origin.length);
        origin.push({ file, member });
      }
      current = index;
    }
    ranges.fill(current, offset + start, offset + line.length + 1);
    offset += line.length + 1;
  });
  return { origin, ranges };
}

/** What one part (or file, or member) costs. */
export interface Cost {
  /** Its name. */
  name: string;
  /** Minified bytes (UTF-16 units: the bundle is ASCII). */
  minified: number;
  /** What the gzip size drops by without it. */
  gzip: number;
}

/** The measurement of one bundle. */
export interface Analysis extends BundleSize {
  /**
   * The parts of {@linkcode PARTS}, then `other` for the rest, then the
   * entry's own code.
   */
  parts: Cost[];
  /** Every source file. */
  files: Cost[];
  /** Every function and class member, costliest first. */
  members: Cost[];
}

async function costs(
  built: Built,
  groups: Map<string, Set<number>>,
): Promise<Cost[]> {
  const { code } = built;
  const { ranges } = origins(built);
  const result: Cost[] = [];
  for (const [name, indices] of groups) {
    let kept = "";
    let minified = 0;
    let from = 0;
    for (let i = 0; i <= code.length; i++) {
      const inside = i < code.length && indices.has(ranges[i]);
      if (inside) minified++;
      if (i === code.length || inside) {
        kept += code.slice(from, i);
        from = i + 1;
      }
    }
    const gzip = minified ? built.gzip - await gzipSize(kept) : 0;
    result.push({ name, minified, gzip });
  }
  return result;
}

/**
 * Builds the bundle of `entry` and measures what each part, file and member
 * costs in it.
 *
 * @param entry The entry, relative to the repository root.
 * @param options `members: true` also measures every function and class
 * member (slower).
 * @returns The sizes and the costs.
 * @throws {Error} When `deno bundle` fails.
 */
export async function analyze(
  entry: string = TYPICAL_APP,
  options: { members?: boolean } = {},
): Promise<Analysis> {
  const built = await build(entry);
  const { origin } = origins(built);
  const byPart = new Map<string, Set<number>>();
  const byFile = new Map<string, Set<number>>();
  const byMember = new Map<string, Set<number>>();
  for (const part of PARTS) byPart.set(part.name, new Set());
  byPart.set("other", new Set());
  byPart.set(APP, new Set());
  origin.forEach(({ file, member }, index) => {
    const claimed = file === entry
      ? { name: APP }
      : PARTS.find((part) =>
        part.code.some((code) => code === `${file}#${member}`)
      ) ?? PARTS.find((part) => part.code.includes(file));
    byPart.get(claimed?.name ?? "other")!.add(index);
    if (!byFile.has(file)) byFile.set(file, new Set());
    byFile.get(file)!.add(index);
    const key = `${file.replace(/^src\//, "")} ${member}`;
    if (!byMember.has(key)) byMember.set(key, new Set());
    byMember.get(key)!.add(index);
  });
  const descending = (a: Cost, b: Cost): number => b.minified - a.minified;
  return {
    path: built.path,
    minified: built.minified,
    gzip: built.gzip,
    parts: await costs(built, byPart),
    files: (await costs(built, byFile)).sort(descending),
    members: options.members
      ? (await costs(built, byMember)).sort(descending)
      : [],
  };
}

function number(value: number): string {
  return value.toLocaleString("en-US");
}

function table(rows: Cost[], title: string): string[] {
  const width = Math.max(title.length, ...rows.map((row) => row.name.length));
  return [
    `  ${title.padEnd(width)}  minified    gzip`,
    ...rows.filter((row) => row.minified > 0).map((row) =>
      `  ${row.name.padEnd(width)}  ${number(row.minified).padStart(8)}  ${
        number(row.gzip).padStart(6)
      }`
    ),
  ];
}

async function main(args: string[]): Promise<number> {
  const members = args.includes("--members");
  const [app, all, streaming] = await Promise.all([
    analyze(TYPICAL_APP, { members }),
    bundleSize("client.ts"),
    bundleSize(TYPICAL_STREAM_APP),
  ]);
  const over = app.gzip - BUDGET_BYTES;
  // Stream support in (a), which does not opt in: its files (none should
  // be left) and the refusals of stream calls.
  const left = app.parts.find((part) => part.name === STREAMS)!;
  const lines = [
    "Browser client, deno bundle --platform browser --minify, gzip level 6 (bytes)",
    `  (a) typical app (${TYPICAL_APP}: imports just Client and uses it)`,
    `      minified ${number(app.minified)}, gzip ${number(app.gzip)} ` +
    `(budget ${number(BUDGET_BYTES)}: ${
      over > 0 ? `✗ over by ${number(over)}` : `✓ ${number(-over)} to spare`
    })`,
    "  (b) the whole client.ts entry",
    `      minified ${number(all.minified)}, gzip ${number(all.gzip)}`,
    `  (c) the typical app with streams (${TYPICAL_STREAM_APP}: { streams })`,
    `      minified ${number(streaming.minified)}, gzip ${
      number(streaming.gzip)
    } (opting in costs ${number(streaming.gzip - app.gzip)})`,
    "  Stream support left in (a), which does not opt in (issue 20: at most",
    `  ${number(STREAMS_BUDGET_BYTES)} B gzip): ${number(left.minified)} B ` +
    `minified, ${number(left.gzip)} B gzip ${
      left.gzip <= STREAMS_BUDGET_BYTES ? "✓" : "✗"
    }`,
    "",
    "What each part of (a) costs: minified bytes from the source map; gzip:",
    "what (a) loses without the part's bytes (shared text compresses once, so",
    "the parts add up to more than the total).",
    ...table(app.parts, "part"),
    "",
    ...table(app.files, "file"),
  ];
  if (members) {
    lines.push("", ...table(app.members.slice(0, 60), "member"));
  }
  console.log(lines.join("\n"));
  if (left.gzip > STREAMS_BUDGET_BYTES) {
    console.error(
      `Over budget: stream support adds ${number(left.gzip)} bytes gzip ` +
        "to a client that does not opt in",
    );
    return 1;
  }
  if (over > 0) {
    console.error(
      `Over budget: (a) is ${number(app.gzip)} bytes gzip, the budget ${
        number(BUDGET_BYTES)
      }`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
