/**
 * The server codec's request fast path against the JSON path it stands in
 * for: a seeded differential fuzz (canonical requests, their mutations, and
 * the awkward cases by name) shows that every text decodes to the same
 * frame, keys in the same order, or fails with the same typed error. Rerun
 * a failure with `CODEC_SEED=<seed> deno test -A tests/server/server_codec_test.ts`.
 */

import assert from "node:assert/strict";
import { jsonCodec } from "../../src/wire/codec.ts";
import { MAX_SEQUENCE } from "../../src/wire/protocol.ts";
import {
  decodeRequest,
  serverJsonCodec,
} from "../../src/server/server_codec.ts";
import { Random } from "../_random.ts";

/** The outcome of decoding `text`, as comparable JSON. */
function outcome(decode: (data: unknown) => unknown, text: unknown): string {
  try {
    const frame = decode(text);
    // JSON.stringify keeps the key order; the prototype must match too.
    return JSON.stringify({
      frame,
      keys: Object.keys(frame as object),
      plain: Object.getPrototypeOf(frame) === Object.prototype,
    });
  } catch (error) {
    const e = error as Record<string, unknown>;
    return JSON.stringify({
      error: (error as Error).constructor.name,
      message: e.message,
      code: e.code,
      sequence: e.sequence,
      frameType: e.frameType,
    });
  }
}

function assertSame(text: unknown): void {
  assert.equal(
    outcome(serverJsonCodec.decode, text),
    outcome(jsonCodec.decode, text),
    `decoding ${JSON.stringify(text)}`,
  );
}

const PIECES = [
  "a",
  "hello",
  " ",
  '"',
  "\\",
  '\\"',
  "\\n",
  "\\u00e9",
  "\\ud83d\\ude00",
  "\\x",
  "\\u12",
  "é",
  "😀",
  "\ud800",
  "\udc00",
  "\u0000",
  "\u001f",
  "\t",
  "\n",
  "\u007f",
  "\u2028",
  "}",
  "{",
  ",",
  ":",
  "1",
];

function text(random: Random, most: number): string {
  const length = random.int(most + 1);
  let out = "";
  while (out.length < length) {
    out += random.next() < 0.7
      ? String.fromCharCode(97 + random.int(26))
      : random.pick(PIECES);
  }
  return out;
}

const SEQUENCES = [
  "0",
  "1",
  "7",
  "42",
  String(MAX_SEQUENCE),
  String(MAX_SEQUENCE + 1),
  "9999999999",
  "10000000000",
  "99999999999999999999999",
  "-0",
  "-1",
  "00",
  "01",
  "1e3",
  "1E3",
  "1.0",
  "1.5",
  "0.0",
  "1e-3",
  "2147483647.0",
  '"1"',
  "null",
  "true",
  "",
];

function sequence(random: Random): string {
  return random.next() < 0.5
    ? String(random.int(2 ** random.int(32)))
    : random.pick(SEQUENCES);
}

/** A request in (or near) the form JSON.stringify gives it. */
function request(random: Random): string {
  const message = random.next() < 0.8
    ? `"${text(random, random.next() < 0.9 ? 12 : 200)}"`
    : random.pick(['{"a":1}', "[1,2]", "1", "null", '{"m":"x"}', "true"]);
  const method = random.next() < 0.5
    ? ""
    : `,"method":"${
      random.next() < 0.1
        ? "m".repeat(254 + random.int(4))
        : text(random, random.next() < 0.9 ? 12 : 300)
    }"`;
  return `{"sequence":${
    sequence(random)
  },"type":1,"message":${message}${method}}`;
}

const INSERTS = [
  " ",
  "\n",
  ",",
  "-",
  "0",
  "e3",
  ".0",
  '"',
  "\\",
  "}",
  "{",
  ":",
  '"type":1,',
  ',"sequence":5',
  ',"type":2',
  ',"type":3',
  ',"message":{"a":1}',
  ',"method":"x"',
  ',"method":"y"',
  ',"credit":16',
  ',"upload":true',
  ',"from":"z"',
];

function mutate(random: Random, original: string): string {
  let out = original;
  for (let n = 1 + random.int(3); n > 0; n--) {
    const at = random.int(out.length + 1);
    switch (random.int(4)) {
      case 0:
        out = out.slice(0, at) + random.pick(INSERTS) + out.slice(at);
        break;
      case 1:
        out = out.slice(0, at) + out.slice(at + 1 + random.int(3));
        break;
      case 2:
        out = out.slice(0, at) + random.pick(PIECES) + out.slice(at + 1);
        break;
      default:
        out = out.slice(0, at) + out.slice(random.int(at + 1));
    }
  }
  return out;
}

Deno.test("server codec: the fast path decodes canonical requests without JSON.parse", () => {
  assert.deepEqual(decodeRequest('{"sequence":1,"type":1,"message":"hello"}'), {
    sequence: 1,
    type: 1,
    message: "hello",
  });
  assert.deepEqual(
    decodeRequest('{"sequence":0,"type":1,"message":"","method":"sum"}'),
    { sequence: 0, type: 1, message: "", method: "sum" },
  );
  // Left to the JSON path: it accepts these, or refuses them.
  for (
    const other of [
      '{"sequence":1,"type":1,"message":"a\\"b"}',
      '{"sequence":1,"type":1,"message":{"a":1}}',
      '{"sequence":1, "type":1,"message":"a"}',
      '{"sequence":1,"type":1,"message":"a"} ',
      '{"sequence":1e3,"type":1,"message":"a"}',
      '{"sequence":01,"type":1,"message":"a"}',
      '{"sequence":-0,"type":1,"message":"a"}',
      `{"sequence":${MAX_SEQUENCE + 1},"type":1,"message":"a"}`,
      '{"sequence":1,"type":1,"message":"a","method":"b","method":"c"}',
      '{"sequence":1,"type":1,"message":"a","message":"b"}',
      '{"sequence":1,"type":1,"message":"\u0001"}',
      `{"sequence":1,"type":1,"message":"a","method":"${"m".repeat(257)}"}`,
      '{"sequence":1,"type":2,"message":"a"}',
      '{"sequence":1,"type":1,"message":"a"',
    ]
  ) {
    assert.equal(decodeRequest(other), undefined, other);
    assertSame(other);
  }
  assertSame(new Uint8Array([123, 125]));
});

Deno.test("server codec: seeded differential fuzz against the JSON path", () => {
  const seed = Number(Deno.env.get("CODEC_SEED") ?? 19_2026);
  const random = new Random(seed);
  let fast = 0;
  let slow = 0;
  for (let i = 0; i < 30_000; i++) {
    const canonical = request(random);
    const input = random.next() < 0.5 ? canonical : mutate(random, canonical);
    if (decodeRequest(input) === undefined) slow++;
    else fast++;
    assertSame(input);
  }
  // Both paths were exercised many times over.
  assert.ok(fast > 1_000 && slow > 1_000, `seed ${seed}: ${fast} / ${slow}`);
});

Deno.test("server codec: responses are byte for byte what stringifying the frame gives", () => {
  const random = new Random(7);
  const values: unknown[] = [
    "ok",
    "ok",
    "",
    'a"b',
    "line\nbreak",
    "\ud800",
    "é😀",
    "x".repeat(64),
    "x".repeat(65),
    "x".repeat(65),
    0,
    -0,
    1e21,
    NaN,
    null,
    true,
    undefined,
    [1, "a"],
    { a: 1, b: [null] },
    { toJSON: () => "mine" },
  ];
  for (let i = 0; i < 2_000; i++) values.push(text(random, 80));
  for (const [i, message] of values.entries()) {
    assert.equal(
      serverJsonCodec.encodeResponse!(i, message),
      jsonCodec.encode({ sequence: i, type: 2, message }),
      `encoding ${String(message)}`,
    );
  }
});

Deno.test("serverJsonCodec.encodeResponse() writes the bytes of jsonCodec.encode() for every kind of result", () => {
  const dated = new Date(0);
  const keyed = { toJSON: (key: string) => `key=${key}` };
  const results: unknown[] = [
    "ok",
    "",
    'quote " and \\ and \n and \u2028 and é',
    0,
    -0,
    1.5,
    NaN,
    Infinity,
    true,
    false,
    null,
    undefined,
    Symbol("s"),
    () => 1,
    [],
    [1, "two", null, undefined, { three: 3 }],
    { a: 1, b: undefined, c: [true], d: { e: "f" } },
    dated,
    keyed,
    { nested: keyed },
    Object.create(null),
  ];
  for (const sequence of [0, 1, 4096, MAX_SEQUENCE]) {
    for (const [index, message] of results.entries()) {
      assert.equal(
        serverJsonCodec.encodeResponse!(sequence, message),
        jsonCodec.encode({ sequence, type: 2, message }),
        `result ${index}`,
      );
    }
  }
  assert.throws(() => serverJsonCodec.encodeResponse!(1, 10n), TypeError);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(() => serverJsonCodec.encodeResponse!(1, cyclic), TypeError);
});
