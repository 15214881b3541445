/**
 * The codec of the server's JSON connections: the JSON codec, with results a
 * handler encoded once ({@linkcode EncodedResult}) spliced into their
 * responses as they are, responses encoded without building the frame in the
 * peer, and the common request frames read by {@linkcode decodeRequest}
 * without `JSON.parse`. The browser client keeps the plain `jsonCodec`, so it does
 * not carry this code.
 *
 * @module
 */

import { type Codec, jsonCodec } from "../wire/codec.ts";
import { type Frame, MAX_SEQUENCE } from "../wire/protocol.ts";
import { EncodedResult, resultCodec } from "./encoded_result.ts";

/** What every request frame the fast path reads starts with. */
const HEAD = '{"sequence":';
/** What follows the sequence of a request with a string message. */
const TYPE_MESSAGE = ',"type":1,"message":"';
/** What follows the message of a request with a method. */
const METHOD = ',"method":"';

/**
 * Longer strings are left to `JSON.parse`, which scans them faster than a
 * loop over their characters. Below the JSON codec's longest method name
 * (256), so a method the fast path reads is never too long.
 */
const MAX_PLAIN = 128;

/**
 * Where the JSON string that starts at `from` (after its opening quote)
 * ends, when it is at most {@linkcode MAX_PLAIN} long and holds no escape
 * and no control character; otherwise -1.
 */
function plainStringEnd(data: string, from: number): number {
  // One pass, no indexOf: reading to the quote costs less than finding it
  // first and reading again.
  const last = Math.min(data.length, from + MAX_PLAIN + 1);
  for (let i = from; i < last; i++) {
    const code = data.charCodeAt(i);
    if (code === 34) return i; // "
    if (code === 92 || code < 32) return -1; // \ or a control character
  }
  return -1;
}

/**
 * Whether `data` holds `text` at `at`: `data.startsWith(text, at)`, written
 * as a slice compared with `===`, which V8 runs in fewer instructions (its
 * string comparison; startsWith compares character by character).
 */
function textAt(data: string, at: number, text: string): boolean {
  return data.slice(at, at + text.length) === text;
}

/**
 * Reads a request frame in the exact form JSON.stringify gives the frames a
 * client sends for a default request, without `JSON.parse`:
 * `{"sequence":N,"type":1,"message":"text"}`, optionally followed by
 * `,"method":"name"` before the closing brace, where N is an integer from 0
 * to {@linkcode MAX_SEQUENCE} without leading zeros, and neither string has
 * an escape or a control character (nor more than 128 characters). The frame equals what `JSON.parse` and
 * `validateFrame` make of the same text (keys in the same order). Anything
 * else (other types, other key orders, whitespace, escapes, numbers written
 * otherwise, non-string messages, too long a method, invalid JSON) gives
 * `undefined`, and the JSON path decides: it accepts or refuses it with its
 * own typed errors.
 *
 * @param data The message as received.
 * @returns The request frame, or `undefined` when the JSON path must decide.
 */
export function decodeRequest(data: string): Frame | undefined {
  if (!textAt(data, 0, HEAD)) return undefined;
  let i = HEAD.length;
  const first = data.charCodeAt(i) - 48;
  if (!(first >= 0 && first <= 9)) return undefined;
  let sequence = first;
  i++;
  // No leading zero: "0" alone, or a first digit from 1 to 9.
  if (first !== 0) {
    const last = i + 9; // at most 10 digits
    for (; i < last; i++) {
      const digit = data.charCodeAt(i) - 48;
      if (!(digit >= 0 && digit <= 9)) break;
      sequence = sequence * 10 + digit;
    }
  }
  if (sequence > MAX_SEQUENCE || !textAt(data, i, TYPE_MESSAGE)) {
    return undefined;
  }
  const start = i + TYPE_MESSAGE.length;
  const end = plainStringEnd(data, start);
  if (end < 0) return undefined;
  const message = data.slice(start, end);
  const length = data.length;
  if (end === length - 2) {
    return data.charCodeAt(length - 1) === 125 // }
      ? { sequence, type: 1, message }
      : undefined;
  }
  if (!textAt(data, end + 1, METHOD)) return undefined;
  const from = end + 1 + METHOD.length;
  const last = plainStringEnd(data, from);
  if (last !== length - 2 || data.charCodeAt(length - 1) !== 125) {
    return undefined;
  }
  return { sequence, type: 1, message, method: data.slice(from, last) };
}

/** `jsonCodec` with the fast paths for requests and results. */
export const serverJsonCodec: Codec = {
  name: jsonCodec.name,
  encode: resultCodec.encode,
  encodeResponse(sequence: number, message: unknown): string {
    // One JSON.stringify of the frame, not a template around the result's
    // JSON: stringify returns a flat string, which Deno's WebSocket send
    // takes on its fast path, while a string joined from parts is a rope
    // that send flattens in a slow call (~1,200 instructions per response
    // under callgrind, more than stringifying the frame costs).
    return message instanceof EncodedResult
      ? `{"sequence":${sequence},"type":2,"message":${message.json}}`
      : JSON.stringify({ sequence, type: 2, message });
  },
  decode(data: unknown): Frame {
    return (typeof data === "string" ? decodeRequest(data) : undefined) ??
      jsonCodec.decode(data);
  },
};
