/**
 * How the session journal reads and keeps frames: the type and sequence
 * of a frame as it travels (`frameHead`), and a frame as a store keeps it
 * (`storedFrame`, `loadedFrame`).
 *
 * @module
 */

import { asciiText, headerEndOf, messageBytes } from "../wire/binary_codec.ts";
import { wholeOf } from "../wire/attachments.ts";

type Data = string | Uint8Array<ArrayBuffer>;

/**
 * The type and sequence of a frame as it travels: a JSON text frame, or a
 * binary-codec frame (`u32 header length | header JSON | attachments`).
 * Our own encoders write `{"sequence":n,"type":t` first, which is read
 * without parsing; any other key order (another client's encoder) is
 * parsed, so that every request is known to the store.
 */
export function frameHead(data: unknown): [number, number] | undefined {
  if (typeof data === "string") {
    const match = HEAD.exec(data);
    if (match !== null) return [Number(match[2]), Number(match[1])];
    return parsedHead(data);
  }
  const header = binaryHeader(data);
  if (header === undefined) return undefined;
  // Our encoder's head is ASCII, within the header's first 64 bytes.
  const match = HEAD.exec(asciiText(header.subarray(0, 64)));
  if (match !== null) return [Number(match[2]), Number(match[1])];
  return parsedHead(utf8.decode(header));
}
const HEAD = /^\{"sequence":(\d+),"type":(\d+)/;
const utf8 = new TextDecoder();

/** The JSON header of a binary-codec frame (bytes), or `undefined`. */
function binaryHeader(data: unknown): Uint8Array | undefined {
  const bytes = messageBytes(data);
  const end = bytes === undefined ? -1 : headerEndOf(bytes);
  return end < 0 ? undefined : bytes!.subarray(4, end);
}

/** Reads `type` and `sequence` of a frame in another key order. */
function parsedHead(text: string): [number, number] | undefined {
  let frame: unknown;
  try {
    frame = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof frame !== "object" || frame === null) return undefined;
  const { type, sequence } = frame as { type?: unknown; sequence?: unknown };
  if (!Number.isSafeInteger(type) || !Number.isSafeInteger(sequence)) {
    return undefined;
  }
  return [type as number, sequence as number];
}

/**
 * A frame as a store keeps it: text as is, binary (a detached frame with its
 * attachments inline) as `\0` + base64.
 */
export function storedFrame(data: Data): string {
  if (typeof data === "string") return data;
  let binary = "";
  for (const byte of wholeOf(data)) binary += String.fromCharCode(byte);
  return "\0" + btoa(binary);
}

/** The frame a store kept. */
export function loadedFrame(stored: string): Data {
  if (stored.charCodeAt(0) !== 0) return stored;
  const binary = atob(stored.slice(1));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
