/**
 * Results encoded once and sent many times: a handler returns an
 * {@linkcode EncodedResult} (JSON text it keeps between calls) and the
 * server's codec splices that text into the response frame instead of
 * encoding the value again. The chat's `users.list` uses it for its pages.
 *
 * @module
 */

import { type Codec, jsonCodec } from "../wire/codec.ts";
import type { Frame } from "../wire/protocol.ts";

/** A handler's result as JSON text, sent as is. */
export class EncodedResult {
  /** The JSON text of the result. */
  readonly json: string;
  /** The size of the text in UTF-16 units. */
  readonly length: number;

  /**
   * Encodes `value` once.
   *
   * @param value Any JSON value.
   * @throws {TypeError} When `value` cannot be encoded.
   */
  constructor(value: unknown) {
    const json = JSON.stringify(value);
    if (json === undefined) {
      throw new TypeError("Cannot encode result: not a JSON value");
    }
    this.json = json;
    this.length = json.length;
  }

  /**
   * The value again, for a codec that encodes with `JSON.stringify` without
   * knowing this class (the binary codec): correct, though not cached.
   *
   * @returns The decoded value.
   */
  toJSON(): unknown {
    return JSON.parse(this.json);
  }
}

/**
 * The JSON codec, except that a response whose `message` is an
 * {@linkcode EncodedResult} carries that text: the bytes are those
 * `JSON.stringify` of the same value would give.
 */
export const resultCodec: Codec = {
  name: jsonCodec.name,
  encode(frame: Frame): string | Uint8Array<ArrayBuffer> {
    const message = (frame as { message?: unknown }).message;
    if (frame.type !== 2 || !(message instanceof EncodedResult)) {
      return jsonCodec.encode(frame);
    }
    const { message: _, ...rest } = frame;
    // `message` comes last in a response frame, as the Peer builds it.
    const head = JSON.stringify(rest);
    return `${head.slice(0, -1)},"message":${message.json}}`;
  },
  decode(data: unknown): Frame {
    return jsonCodec.decode(data);
  },
};
