/**
 * The binary codec: JSON frames whose `Uint8Array` and `ArrayBuffer` values
 * travel as raw bytes beside a JSON header, in one binary WebSocket message,
 * or (256 KiB or more) as a head followed by the bytes as messages of their
 * own (`src/wire/attachments.ts`). A frame without binary values is the very
 * JSON text the JSON codec sends.
 * Negotiated by the subprotocol {@linkcode BINARY_SUBPROTOCOL}; see
 * PROTOCOL.md, "Binary".
 *
 * @module
 */

import { type Codec, jsonCodec, validateFrame } from "./codec.ts";
import { keep, lend, recycle } from "./buffer_pool.ts";
import { frameBytes } from "./frame_bytes.ts";
import {
  carry,
  detach,
  DETACHED,
  gatherAttachments,
  MAX_PARTS,
  MIN_DETACHED,
  MIN_DETACHED_PART,
  partsOf,
  sizeOf,
  uncarry,
} from "./attachments.ts";
import { ProtocolError } from "./errors.ts";
import { type Frame, MAX_SEQUENCE } from "./protocol.ts";

// A session's outbox keeps the frames this codec encodes in its lent
// buffers as they are, and recycles them (src/wire/frame_bytes.ts); a
// detached frame's head is copied (it is small) and keeps its attachments.
frameBytes.keep = (data) => {
  const parts = partsOf(data);
  return parts === undefined ? keep(data) : detach(data.slice(), parts);
};
frameBytes.recycle = recycle;
frameBytes.size = sizeOf;

/**
 * The subprotocol a client offers (before `duplex.v1`) to use the
 * {@linkcode binaryCodec}. A server that supports it echoes it back, and it
 * implies every `duplex.v1` extension.
 *
 * @example Usage
 * ```ts
 * import { BINARY_SUBPROTOCOL } from "@duplex/ws/binary";
 * import assert from "node:assert/strict";
 *
 * assert.equal(BINARY_SUBPROTOCOL, "duplex.v1.bin");
 * ```
 */
export const BINARY_SUBPROTOCOL: string = "duplex.v1.bin";

/** Starts a placeholder (and, doubled, a user string that starts with it). */
const MARK = "\u0000";
const VIEW = "u";
const BUFFER = "a";
const encoder = new TextEncoder();
/** The largest message encoded into a lent buffer. */
const MAX_LENT = 16 * 1024 * 1024;
const decoder = new TextDecoder("utf-8", { fatal: true });

function fail(reason: string, cause?: unknown): never {
  throw new ProtocolError(
    `Cannot decode frame: ${reason}`,
    undefined,
    undefined,
    { cause },
  );
}

/**
 * The placeholder of a binary value that becomes attachment `index` (the
 * value's bytes pushed to `parts`), or undefined for any other value.
 */
function attach(
  value: unknown,
  index: number,
  parts: Uint8Array[],
): string | undefined {
  if (value instanceof ArrayBuffer) {
    parts.push(new Uint8Array(value));
    return MARK + BUFFER + index;
  }
  if (!ArrayBuffer.isView(value)) return undefined;
  parts.push(
    value instanceof Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
  );
  return MARK + VIEW + index;
}

/**
 * The header of a frame whose message is itself binary (a chunk, an echo,
 * a file) or packed binary chunks (an array of them, with `chunks`), and
 * whose other fields are plain values that need no escape, written without a
 * replacer (which keeps JSON.stringify off its fast path); undefined for any
 * other frame.
 */
function plainHeader(frame: Frame, parts: Uint8Array[]): string | undefined {
  const fields = frame as unknown as Record<string, unknown>;
  const message = fields.message;
  const packed = Array.isArray(message) && fields.chunks === message.length;
  if (
    !packed && !(message instanceof ArrayBuffer || ArrayBuffer.isView(message))
  ) {
    return undefined;
  }
  for (const key in fields) {
    const value = fields[key];
    if (key === "message") continue;
    if (
      typeof value === "object" && value !== null ||
      typeof value === "string" && value[0] === MARK
    ) {
      return undefined;
    }
  }
  let placeholder: string | string[] | undefined;
  if (packed) {
    placeholder = [];
    for (let i = 0; i < message.length; i++) {
      const one = attach(message[i], i, parts);
      if (one === undefined) {
        parts.length = 0;
        return undefined;
      }
      placeholder.push(one);
    }
  } else placeholder = attach(message, 0, parts);
  return JSON.stringify({ ...frame, message: placeholder });
}

/**
 * Encodes a frame: JSON text when it holds no binary value, else one binary
 * message `u32 headerLength | header JSON | (u32 length | bytes)*`, or, when
 * the bytes are large, the head of a detached frame (the header length's top
 * bit set, the lengths without the bytes; `src/wire/attachments.ts`).
 */
function encode(frame: Frame): string | Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  let text = plainHeader(frame, parts);
  if (text === undefined) {
    let escaped = false;
    text = JSON.stringify(frame, (_key, value: unknown) => {
      if (typeof value === "string") {
        if (value[0] !== MARK) return value;
        escaped = true;
        return MARK + value;
      }
      return attach(value, parts.length, parts) ?? value;
    });
    // No binary value: the JSON codec's text (the escapes apply only
    // inside binary messages).
    if (parts.length === 0) {
      return escaped ? jsonCodec.encode(frame) as string : text;
    }
  }
  // An ASCII header (the usual one) is written straight into the message;
  // any other is encoded first.
  const ascii = isAscii(text);
  const header = ascii ? undefined : encoder.encode(text);
  const headerLength = header === undefined ? text.length : header.byteLength;
  let bytes = 0;
  let smallest = Infinity;
  let shared = false;
  for (const part of parts) {
    bytes += part.byteLength;
    if (part.byteLength < smallest) smallest = part.byteLength;
    // WebSocket send() refuses a view of a SharedArrayBuffer.
    if (!(part.buffer instanceof ArrayBuffer)) shared = true;
  }
  // Large attachments go as messages of their own, after a head that lists
  // their lengths (src/wire/attachments.ts): none is copied. So do several
  // that are each large enough (packed upload chunks). Else (shared memory,
  // more than a head may list) inline, copied.
  const detached = (bytes >= MIN_DETACHED ||
    parts.length > 1 && smallest >= MIN_DETACHED_PART) &&
    parts.length <= MAX_PARTS && !shared;
  const size = 4 + headerLength + 4 * parts.length + (detached ? 0 : bytes);
  // Else a lent buffer, reused by the next encode unless a session's outbox
  // keeps it: a fresh megabyte costs page faults that cost more than the
  // copy (WebSocket.send copies what it is given at once).
  const out = detached || size > MAX_LENT ? new Uint8Array(size) : lend(size);
  const view = new DataView(out.buffer, out.byteOffset, size);
  view.setUint32(0, (detached ? DETACHED : 0) + headerLength);
  if (header === undefined) {
    for (let i = 0; i < headerLength; i++) out[4 + i] = text.charCodeAt(i);
  } else out.set(header, 4);
  let offset = 4 + headerLength;
  for (const part of parts) {
    view.setUint32(offset, part.byteLength);
    offset += 4;
    if (detached) continue;
    out.set(part, offset);
    offset += part.byteLength;
  }
  return detached ? detach(out, parts) : out;
}

/** Whether `text` is ASCII only (its UTF-8 bytes are its char codes). */
function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) > 0x7f) return false;
  }
  return true;
}

/** The bytes of a binary message (an ArrayBuffer or a view), else none. */
export function messageBytes(data: unknown): Uint8Array | undefined {
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) {
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  }
  return undefined;
}

/** Where the JSON header of a binary message ends, or -1 if truncated. */
export function headerEndOf(bytes: Uint8Array): number {
  if (bytes.byteLength < 4) return -1;
  const word = new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  // A detached frame's head (src/wire/attachments.ts) has the top bit set.
  const end = 4 + (word >= DETACHED ? word - DETACHED : word);
  return end > bytes.byteLength ? -1 : end;
}

/** Headers up to this many bytes are read as ASCII without a decoder. */
const MAX_ASCII_HEADER = 1024;

/** The text of ASCII bytes (each byte its char code), without a decoder. */
export function asciiText(bytes: Uint8Array): string {
  return String.fromCharCode.apply(null, bytes as unknown as number[]);
}

/** The header's text: ASCII read directly, anything else as strict UTF-8. */
function headerText(bytes: Uint8Array, end: number): string {
  if (end - 4 <= MAX_ASCII_HEADER) {
    let i = 4;
    while (i < end && bytes[i] < 0x80) i++;
    if (i === end) return asciiText(bytes.subarray(4, end));
  }
  return decoder.decode(bytes.subarray(4, end));
}

/**
 * Puts the attachments in place of their placeholders in a parsed header
 * (in place; what JSON.parse's reviver would do, without its cost), and
 * unescapes user strings that start with U+0000.
 */
function revive(value: unknown, parts: Uint8Array[]): unknown {
  if (typeof value === "string") {
    if (value[0] !== MARK) return value;
    if (value[1] === MARK) return value.slice(1);
    const part = parts[Number(value.slice(2))];
    if (part === undefined || !(value[1] === VIEW || value[1] === BUFFER)) {
      throw new RangeError(`no attachment for ${JSON.stringify(value)}`);
    }
    return value[1] === VIEW ? part : bufferOf(part);
  }
  if (typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item = value[i];
      const revived = revive(item, parts);
      if (revived !== item) value[i] = revived;
    }
    return value;
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    const item = record[key];
    const revived = revive(item, parts);
    // Defined, not assigned: a "__proto__" key stays a plain property.
    if (revived !== item) {
      Object.defineProperty(record, key, {
        value: revived,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    }
  }
  return record;
}

/**
 * An attachment as an `ArrayBuffer`: a detached one is a whole message of
 * its own, handed out as it is; one inside a message is copied out.
 */
function bufferOf(part: Uint8Array): ArrayBuffer {
  const buffer = part.buffer;
  return part.byteOffset === 0 && part.byteLength === buffer.byteLength &&
      buffer instanceof ArrayBuffer
    ? buffer
    : part.slice().buffer;
}

/** The ASCII bytes of `text`. */
function ascii(text: string): Uint8Array {
  return Uint8Array.from(text, (char) => char.charCodeAt(0));
}

const SEQUENCE = ascii('{"sequence":');
const TYPE = ascii(',"type":');
const MESSAGE = ascii(',"message":"\\u0000');
const PACKED = ascii(',"message":[');
const PLACEHOLDER = ascii('"\\u0000');
const CHUNKS = ascii('],"chunks":');
const METHOD = ascii(',"method":"');
/** The longest method name (validateFrame's bound). */
const MAX_METHOD = 256;

/** Whether `bytes` holds `literal` at `at`, before `end`. */
function holds(
  bytes: Uint8Array,
  at: number,
  end: number,
  literal: Uint8Array,
): boolean {
  if (at + literal.length > end) return false;
  for (let i = 0; i < literal.length; i++) {
    if (bytes[at + i] !== literal[i]) return false;
  }
  return true;
}

/** Where the digits {@linkcode integerAt} read last end. */
let integerEnd = 0;

/**
 * The decimal integer at `at` (at most `digits` digits, no leading zero,
 * before `end`), its end in {@linkcode integerEnd}; -1 when there is none.
 */
function integerAt(
  bytes: Uint8Array,
  at: number,
  end: number,
  digits: number,
): number {
  let value = 0;
  let i = at;
  for (; i < end && bytes[i] >= 48 && bytes[i] <= 57 && i - at < digits; i++) {
    value = value * 10 + bytes[i] - 48;
  }
  integerEnd = i;
  return i === at || (bytes[at] === 48 && i > at + 1) ? -1 : value;
}

/**
 * The frame of a header in the shape {@linkcode plainHeader} writes for
 * the frames peers send most (`{"sequence":N,"type":T,"message":"<0>"}`,
 * with or without a plain `"method"` after the message), read without
 * JSON.parse; undefined for any other header, which then takes the
 * general path (the result is the same).
 */
function plainFrame(
  bytes: Uint8Array,
  end: number,
  parts: Uint8Array[],
): object | undefined {
  if (parts.length === 0 || !holds(bytes, 4, end, SEQUENCE)) return undefined;
  const sequence = integerAt(bytes, 4 + SEQUENCE.length, end, 10);
  let i = integerEnd;
  if (
    !(sequence >= 0 && sequence <= MAX_SEQUENCE) || !holds(bytes, i, end, TYPE)
  ) {
    return undefined;
  }
  const type = integerAt(bytes, i + TYPE.length, end, 3);
  i = integerEnd;
  if (type < 0) return undefined;
  if (parts.length > 1) {
    return packedFrame(bytes, i, end, parts, sequence, type);
  }
  if (!holds(bytes, i, end, MESSAGE)) return undefined;
  i += MESSAGE.length;
  // The placeholder's kind, its index (0) and the closing quote.
  const kind = bytes[i];
  if (
    i + 3 > end || !(kind === 117 || kind === 97) || bytes[i + 1] !== 48 ||
    bytes[i + 2] !== 34
  ) {
    return undefined;
  }
  i += 3;
  const message = kind === 117 ? parts[0] : bufferOf(parts[0]);
  if (i === end - 1 && bytes[i] === 125) return { sequence, type, message };
  if (!holds(bytes, i, end, METHOD)) return undefined;
  i += METHOD.length;
  const methodStart = i;
  // Printable ASCII without quote or backslash: the name as it is.
  for (; i < end && bytes[i] >= 32 && bytes[i] < 127; i++) {
    if (bytes[i] === 34 || bytes[i] === 92) break;
  }
  if (
    i - methodStart > MAX_METHOD || i !== end - 2 || bytes[i] !== 34 ||
    bytes[i + 1] !== 125
  ) {
    return undefined;
  }
  const method = asciiText(bytes.subarray(methodStart, i));
  return { sequence, type, message, method };
}

/**
 * The rest of a header of packed chunks, from `i` on, in the shape
 * {@linkcode plainHeader} writes (`,"message":["<0>","<1>",…],"chunks":N}`,
 * the placeholders in order, one for each attachment), read without
 * JSON.parse; undefined for any other.
 */
function packedFrame(
  bytes: Uint8Array,
  i: number,
  end: number,
  parts: Uint8Array[],
  sequence: number,
  type: number,
): object | undefined {
  if (!holds(bytes, i, end, PACKED)) return undefined;
  i += PACKED.length;
  const message: unknown[] = [];
  for (let n = 0; n < parts.length; n++) {
    if (n > 0 && bytes[i++] !== 44) return undefined;
    if (!holds(bytes, i, end, PLACEHOLDER)) return undefined;
    i += PLACEHOLDER.length;
    const kind = bytes[i];
    if (
      !(kind === 117 || kind === 97) ||
      integerAt(bytes, i + 1, end, 5) !== n || bytes[integerEnd] !== 34
    ) {
      return undefined;
    }
    i = integerEnd + 1;
    message.push(kind === 117 ? parts[n] : bufferOf(parts[n]));
  }
  if (!holds(bytes, i, end, CHUNKS)) return undefined;
  const chunks = integerAt(bytes, i + CHUNKS.length, end, 10);
  i = integerEnd;
  if (chunks !== parts.length || i !== end - 1 || bytes[i] !== 125) {
    return undefined;
  }
  return { sequence, type, message, chunks };
}

/**
 * The attachments of a detached frame's head, which its socket gathered
 * (src/wire/attachments.ts), checked against the lengths the head lists.
 */
function detachedParts(
  data: unknown,
  view: DataView,
  headerEnd: number,
): Uint8Array[] {
  const parts = partsOf(data);
  if (parts === undefined) fail("detached attachments missing");
  let offset = headerEnd;
  for (const part of parts) {
    if (
      offset + 4 > view.byteLength || view.getUint32(offset) !== part.length
    ) {
      fail("detached attachments do not match the head");
    }
    offset += 4;
  }
  if (offset !== view.byteLength) fail("detached attachments missing");
  return parts;
}

/** Decodes a text message as JSON, a binary one as header and attachments. */
function decode(data: unknown): Frame {
  if (typeof data === "string") return jsonCodec.decode(data);
  const bytes = messageBytes(data) ??
    fail("a message must be text or an ArrayBuffer (set binaryType)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const end = bytes.byteLength;
  const headerEnd = headerEndOf(bytes);
  if (headerEnd < 0) fail("truncated header");
  let parts: Uint8Array[] = [];
  if (view.getUint32(0) >= DETACHED) {
    parts = detachedParts(data, view, headerEnd);
  } else {
    for (let offset = headerEnd; offset < end;) {
      const length = offset + 4 <= end ? view.getUint32(offset) : Infinity;
      if (offset + 4 + length > end) fail("truncated attachment");
      parts.push(bytes.subarray(offset + 4, offset + 4 + length));
      offset += 4 + length;
    }
  }
  const plain = plainFrame(bytes, headerEnd, parts);
  if (plain !== undefined) return validateFrame(plain);
  let text: string;
  try {
    text = headerText(bytes, headerEnd);
  } catch (error) {
    fail("the header is not UTF-8", error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    fail("the header is not JSON", error);
  }
  // Placeholders are strings that start with U+0000, which JSON text
  // escapes: without the escape there is nothing to replace.
  if (text.includes("\\u0000")) {
    try {
      value = revive(value, parts);
    } catch (error) {
      fail(error instanceof Error ? error.message : String(error), error);
    }
  }
  return validateFrame(value);
}

/**
 * The binary codec. A frame whose payload holds `Uint8Array` or
 * `ArrayBuffer` values (at any depth) is sent as one binary message: the
 * frame's JSON with each binary value replaced by a placeholder, followed by
 * the raw bytes; the receiver gets the same types back (other typed arrays
 * and `DataView`s arrive as `Uint8Array` of their bytes). A received
 * `Uint8Array` is a view into the message's buffer, never a copy. An
 * encoded binary message is a view of a buffer that the next `encode`
 * reuses: send it (WebSocket `send()` copies) before encoding again (a
 * session keeps that buffer itself until acknowledged, instead of a copy).
 * A frame whose binary values hold 256 KiB or more is encoded as a small
 * head instead, and its `prepare`d socket sends the values themselves after
 * it as messages of their own, uncopied (PROTOCOL.md, "Binary"). Frames
 * without binary values are JSON text, exactly as with the JSON codec, so a
 * peer can switch codec without changing what plain frames look like.
 *
 * Import it from `@duplex/ws/binary` and pass it as the client's (or a
 * peer's) `codec`, and in the server's `codecs`; the JSON-only client does
 * not carry it.
 *
 * @example Binary values keep their type
 * ```ts
 * import { binaryCodec } from "@duplex/ws/binary";
 * import assert from "node:assert/strict";
 *
 * const bytes = new Uint8Array([1, 2, 3]);
 * const data = binaryCodec.encode({ sequence: 1, type: 1, message: { name: "a.bin", bytes } });
 * assert.ok(data instanceof Uint8Array);
 * const frame = binaryCodec.decode(data);
 * assert.deepEqual(frame, { sequence: 1, type: 1, message: { name: "a.bin", bytes } });
 * assert.equal(binaryCodec.encode({ sequence: 1, type: 2, message: "ok" }), '{"sequence":1,"type":2,"message":"ok"}');
 * ```
 */
export const binaryCodec: Codec = {
  name: "binary",
  protocol: BINARY_SUBPROTOCOL,
  encode,
  decode,
  prepare: gatherAttachments,
  carrier: { carry, uncarry },
};
