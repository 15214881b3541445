/**
 * The binary codec: JSON frames whose `Uint8Array` and `ArrayBuffer` values
 * travel as raw bytes beside a JSON header, in one binary WebSocket message.
 * A frame without binary values is the very JSON text the JSON codec sends.
 * Negotiated by the subprotocol {@linkcode BINARY_SUBPROTOCOL}; see
 * PROTOCOL.md, "Binary".
 *
 * @module
 */

import { type Codec, jsonCodec, validateFrame } from "./codec.ts";
import { lend } from "./buffer_pool.ts";
import { ProtocolError } from "./errors.ts";
import type { Frame } from "./protocol.ts";

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
 * Encodes a frame: JSON text when it holds no binary value, else one binary
 * message `u32 headerLength | header JSON | (u32 length | bytes)*`.
 */
function encode(frame: Frame): string | Uint8Array<ArrayBuffer> {
  const parts: Uint8Array[] = [];
  let escaped = false;
  const text = JSON.stringify(frame, (_key, value: unknown) => {
    if (typeof value === "string") {
      if (value[0] !== MARK) return value;
      escaped = true;
      return MARK + value;
    }
    if (value instanceof ArrayBuffer) {
      parts.push(new Uint8Array(value));
      return MARK + BUFFER + (parts.length - 1);
    }
    if (ArrayBuffer.isView(value)) {
      parts.push(
        new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
      );
      return MARK + VIEW + (parts.length - 1);
    }
    return value;
  });
  // No binary value: the JSON codec's text (the escapes apply only inside
  // binary messages).
  if (parts.length === 0) {
    return escaped ? jsonCodec.encode(frame) as string : text;
  }
  const header = encoder.encode(text);
  let size = 4 + header.byteLength;
  for (const part of parts) size += 4 + part.byteLength;
  // A lent buffer, reused by the next encode unless a session's outbox keeps
  // it: a fresh megabyte costs page faults that cost more than the copy
  // (WebSocket.send copies what it is given at once).
  const out = size <= MAX_LENT ? lend(size) : new Uint8Array(size);
  const view = new DataView(out.buffer, out.byteOffset, size);
  view.setUint32(0, header.byteLength);
  out.set(header, 4);
  let offset = 4 + header.byteLength;
  for (const part of parts) {
    view.setUint32(offset, part.byteLength);
    out.set(part, offset + 4);
    offset += 4 + part.byteLength;
  }
  return out;
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
  const end = 4 + new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0);
  return end > bytes.byteLength ? -1 : end;
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
  const parts: Uint8Array[] = [];
  for (let offset = headerEnd; offset < end;) {
    const length = offset + 4 <= end ? view.getUint32(offset) : Infinity;
    if (offset + 4 + length > end) fail("truncated attachment");
    parts.push(bytes.subarray(offset + 4, offset + 4 + length));
    offset += 4 + length;
  }
  let text: string;
  try {
    text = decoder.decode(bytes.subarray(4, headerEnd));
  } catch (error) {
    fail("the header is not UTF-8", error);
  }
  let value: unknown;
  try {
    value = JSON.parse(text, (_key, value: unknown) => {
      if (typeof value !== "string" || value[0] !== MARK) return value;
      if (value[1] === MARK) return value.slice(1);
      const part = parts[Number(value.slice(2))];
      if (part === undefined || !(value[1] === VIEW || value[1] === BUFFER)) {
        throw new RangeError(`no attachment for ${JSON.stringify(value)}`);
      }
      return value[1] === VIEW ? part : part.slice().buffer;
    });
  } catch (error) {
    fail(
      error instanceof RangeError ? error.message : "the header is not JSON",
      error,
    );
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
 * session keeps that buffer itself until acknowledged, instead of a copy). Frames
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
};
