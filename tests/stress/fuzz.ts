/**
 * The fuzz run: random and mutated input against a live stress server (in
 * its own process) for a bounded time, from a seeded PRNG. Valid frames with
 * corrupted fields, deep nesting, huge numbers, unicode edge cases (lone
 * surrogates, invalid UTF-8), oversized payloads, binary garbage, broken
 * WebSocket framing and rapid open/close, over raw TCP. A witness client
 * makes well-formed requests throughout; every one must be answered, and
 * the server must neither crash nor report an unhandled error.
 *
 * @module
 */

import { Client } from "../../client.ts";
import { encodeClientFrame, RawWebSocket } from "../_raw_ws.ts";
import { ServerProcess } from "./_harness.ts";
import type { ScenarioResult } from "./scenarios.ts";
import { Random } from "../_random.ts";

/** Options of {@linkcode fuzz}. */
export interface FuzzOptions {
  durationMs: number;
  seed: number;
  /** Raw connections fuzzing at once. */
  concurrency?: number;
  verbose?: boolean;
}

export { Random };

const encoder = new TextEncoder();

const METHODS = [
  "echo",
  "join",
  "leave",
  "say",
  "nope",
  "",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "valueOf",
  "users.list",
  "x".repeat(5000),
];

const WEIRD_STRINGS = [
  "\ud800",
  "\udfff",
  "\udc00\ud800",
  "a\ud83d",
  "\u0000",
  "\ufeff",
  "\u202e",
  "\u2028\u2029",
  "😀".repeat(100),
  "<script>alert(1)</script>",
  "%00",
  "\\",
  '"',
  "null",
  "𝟘\u200d",
  "e\u0301",
  "\uffff",
  "\ufffe",
];

const WEIRD_NUMBERS = [
  -1,
  0,
  1.5,
  -0,
  2 ** 31,
  2 ** 31 - 1,
  2 ** 53,
  2 ** 53 + 2,
  1e308,
  -1e308,
  Number.MIN_VALUE,
  4294967296,
];

/** A random JSON value, as text (may contain literals JSON.stringify cannot make). */
function randomJson(random: Random, depth = 0): string {
  const roll = random.int(depth > 4 ? 5 : 8);
  switch (roll) {
    case 0:
      return "null";
    case 1:
      return random.pick(["true", "false"]);
    case 2:
      return random.pick([
        "1e400",
        "-1e400",
        "123456789012345678901234567890",
        "0.0000000000000000000000001",
        "-0",
        "1E-400",
        String(random.pick(WEIRD_NUMBERS)),
      ]);
    case 3:
      return JSON.stringify(random.pick(WEIRD_STRINGS));
    case 4:
      return random.pick([
        '"\\ud800"',
        '"\\udfff\\ud800"',
        '"\\u0000"',
        '"\\uDBFF"',
      ]);
    case 5:
      return `[${
        Array.from(
          { length: random.int(4) },
          () => randomJson(random, depth + 1),
        ).join(",")
      }]`;
    case 6:
      return `{${
        Array.from({ length: random.int(4) }, () =>
          `${
            JSON.stringify(
              random.pick([
                ...METHODS,
                "sequence",
                "type",
                "message",
                "from",
                "error",
              ]),
            )
          }:${randomJson(random, depth + 1)}`).join(",")
      }}`;
    default:
      return JSON.stringify(random.pick(WEIRD_STRINGS) + random.int(1000));
  }
}

/** A text that is a valid frame with one field corrupted, or worse. */
function mutatedFrame(random: Random): string {
  const fields: Record<string, string> = {
    sequence: String(1 + random.int(1000)),
    type: String(random.pick([1, 1, 3, 4, 5, 6, 2])),
    method: JSON.stringify(random.pick(METHODS)),
    message: randomJson(random),
  };
  const field = random.pick([
    "sequence",
    "type",
    "method",
    "message",
    "from",
    "error",
    "extra",
  ]);
  switch (field) {
    case "sequence":
      fields.sequence = random.pick([
        "-1",
        "0",
        "2147483648",
        "9007199254740993",
        "1e400",
        "1.5",
        '"1"',
        "null",
        "[]",
        "{}",
      ]);
      break;
    case "type":
      fields.type = random.pick([
        "0",
        "7",
        "99",
        "-1",
        '"1"',
        "null",
        "1.5",
        "1e400",
      ]);
      break;
    case "method":
      fields.method = random.pick([
        "123",
        "{}",
        "null",
        "[]",
        JSON.stringify(random.pick(WEIRD_STRINGS)),
        '"\\ud800"',
      ]);
      break;
    case "from":
      fields.from = JSON.stringify(
        random.pick(["alice", "server", "", "\ud800"]),
      );
      break;
    case "error":
      fields.error = random.pick([
        '{"code":1}',
        "null",
        '"x"',
        '{"code":"X","message":{}}',
      ]);
      break;
    case "extra":
      fields[random.pick(["__proto__", "constructor", "prototype"])] =
        randomJson(random);
      break;
  }
  if (random.int(5) === 0) delete fields[random.pick(Object.keys(fields))];
  return `{${
    Object.entries(fields).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(
      ",",
    )
  }}`;
}

function deepNesting(random: Random): string {
  const depth = random.pick([100, 1_000, 10_000, 100_000]);
  const open = random.pick(["[", '{"a":']);
  const close = open === "[" ? "]" : "}";
  const value = open.repeat(depth) + "1" + close.repeat(depth);
  return random.int(2)
    ? value
    : `{"sequence":${
      1 + random.int(100)
    },"type":1,"method":"echo","message":${value}}`;
}

/** Raw WebSocket frames that break the framing rules. */
function brokenFraming(random: Random): Uint8Array {
  const payload = random.bytes(random.int(64));
  switch (random.int(8)) {
    case 0: { // reserved bits set
      const frame = encodeClientFrame(1, encoder.encode("{}"));
      frame[0] |= 0x70;
      return frame;
    }
    case 1: { // unmasked client frame
      return new Uint8Array([0x81, payload.length, ...payload]);
    }
    case 2: // unknown opcode
      return encodeClientFrame(
        random.pick([3, 4, 5, 6, 7, 11, 12, 15]),
        payload,
      );
    case 3: // fragmented control frame
      return encodeClientFrame(9, payload, false);
    case 4: // continuation without a start
      return encodeClientFrame(0, payload);
    case 5: // control frame too long
      return encodeClientFrame(9, random.bytes(200));
    case 6: { // text frame with invalid UTF-8 (a lone surrogate, encoded raw)
      return encodeClientFrame(
        1,
        new Uint8Array([0x22, 0xed, 0xa0, 0x80, 0x22]),
      );
    }
    default: // raw garbage
      return random.bytes(1 + random.int(512));
  }
}

/** One input on a raw connection; returns a label. */
async function sendInput(
  raw: RawWebSocket,
  random: Random,
  allowHuge: boolean,
): Promise<string> {
  const roll = random.int(100);
  if (roll < 35) {
    await raw.sendText(mutatedFrame(random));
    return "mutated";
  }
  if (roll < 50) {
    await raw.sendText(randomJson(random));
    return "random-json";
  }
  if (roll < 58) {
    await raw.sendText(deepNesting(random));
    return "deep";
  }
  if (roll < 68) {
    const text = `{"sequence":${
      1 + random.int(99)
    },"type":1,"method":"echo","message":${
      JSON.stringify(random.pick(WEIRD_STRINGS))
    }}`;
    await raw.sendText(
      random.int(2)
        ? text
        : text.replace(/"message":".*"/, '"message":"\\ud800x"'),
    );
    return "unicode";
  }
  if (roll < 78) {
    await raw.sendBinary(random.bytes(random.int(2048)));
    return "binary";
  }
  if (roll < 95 || !allowHuge) {
    await raw.writeBytes(brokenFraming(random));
    return "framing";
  }
  const size = random.pick([1024 * 1024 + 1, 2 * 1024 * 1024]);
  await raw.sendText(
    `{"sequence":1,"type":1,"method":"echo","message":"${"a".repeat(size)}"}`,
  );
  return "oversized";
}

/** Runs the fuzzer against a fresh stress server. */
export async function fuzz(options: FuzzOptions): Promise<ScenarioResult> {
  const failures: string[] = [];
  const figures: Record<string, number | string> = { seed: options.seed };
  console.log(
    `  · fuzz seed ${options.seed} (rerun with FUZZ_SEED=${options.seed})`,
  );
  const random = new Random(options.seed);
  const server = await ServerProcess.start();
  const kinds: Record<string, number> = {};
  let inputs = 0;
  let connections = 0;
  let answered = 0;
  let witnessFailures = 0;
  let firstWitnessFailure = "";
  let running = true;
  const witness = new Client(`ws://127.0.0.1:${server.port}/?user=witness`, {
    pingInterval: 0,
  });
  let witnessLoop: Promise<void> | undefined;
  const open = new Set<RawWebSocket>();
  try {
    await witness.connect();
    witnessLoop = (async () => {
      let i = 0;
      while (running) {
        try {
          const answer = await witness.request(`w${i}`, {
            method: "echo",
            timeout: 15_000,
          });
          if (answer !== `w${i}`) throw new Error(`Wrong answer ${answer}`);
          answered++;
        } catch (error) {
          witnessFailures++;
          firstWitnessFailure ||= String(error);
        }
        i++;
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const end = performance.now() + options.durationMs;
    const worker = async (): Promise<void> => {
      while (performance.now() < end) {
        const path = random.pick([
          "/?user=f",
          "/ws?user=f",
          "/?user=",
          "/nope",
          "/?user=" + "u".repeat(200),
        ]);
        const protocol = random.pick([
          "duplex.v1",
          "",
          "duplex.v2, duplex.v1",
          "x",
        ]);
        let raw: RawWebSocket;
        try {
          raw = await RawWebSocket.connect(server.port, {
            path: path.replace("user=f", `user=f${random.int(20)}`),
            headers: protocol ? { "Sec-WebSocket-Protocol": protocol } : {},
          });
        } catch {
          kinds.refused = (kinds.refused ?? 0) + 1;
          inputs++;
          continue;
        }
        connections++;
        open.add(raw);
        // Drain whatever the server sends, so it never blocks on us.
        const reading = (async () => {
          while ((await raw.readFrame()) !== null) { /* discard */ }
        })();
        const count = random.int(4) === 0 ? 0 : 1 + random.int(20);
        try {
          for (let i = 0; i < count; i++) {
            const kind = await sendInput(raw, random, true);
            kinds[kind] = (kinds[kind] ?? 0) + 1;
            inputs++;
          }
        } catch {
          // The server closed the connection: expected for most garbage.
        }
        if (count === 0) kinds["open-close"] = (kinds["open-close"] ?? 0) + 1;
        if (random.int(2)) raw.drop();
        else {await raw.close(
            random.pick([1000, 1001, 4000, 1005, 0, 999, 65535]),
          );}
        open.delete(raw);
        await reading;
      }
    };
    await Promise.all(
      Array.from({ length: options.concurrency ?? 4 }, () => worker()),
    );
    running = false;
    await witnessLoop;
    const stats = await server.stats();
    Object.assign(figures, {
      inputs,
      connections,
      answered,
      serverMalformed: stats.malformed,
      handlerErrors: stats.errors,
      unhandled: stats.unhandled,
      kinds: JSON.stringify(kinds),
    });
    if (options.verbose) console.log(`  · ${JSON.stringify(figures)}`);
    if (stats.unhandled) {
      failures.push(
        `${stats.unhandled} unhandled errors in the server: ${
          server.stderr.slice(0, 500)
        }`,
      );
    }
    if (witnessFailures) {
      failures.push(
        `${witnessFailures} well-formed requests failed: ${firstWitnessFailure}`,
      );
    }
    if (!answered) failures.push("the witness got no answer");
    await server.waitFor(
      (s) => s.connections === 1,
      30_000,
      "the fuzz connections to close",
    );
  } catch (error) {
    failures.push(`${error} (seed ${options.seed})`);
  } finally {
    running = false;
    for (const raw of open) raw.drop();
    await witnessLoop?.catch(() => {});
    await witness.close();
    const status = await server.stop();
    if (status.signal !== "SIGTERM" && status.code !== 0) {
      failures.push(
        `the server exited on its own: ${JSON.stringify(status)}; ${
          server.stderr.slice(-1000)
        }`,
      );
    }
  }
  return { name: "fuzz", failures, figures };
}
