/**
 * Codecs turn frames into WebSocket messages and back. The JSON codec is the
 * protocol's wire format; the {@linkcode Codec} interface lets a binary codec
 * be added later without touching the Peer, the client or the server.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { type Frame, MAX_SEQUENCE } from "./protocol.ts";

/**
 * Encodes frames to WebSocket messages and decodes them back, validating
 * every field.
 *
 * @example A codec that wraps JSON
 * ```ts
 * import { type Codec, jsonCodec } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const codec: Codec = jsonCodec;
 * const frame = codec.decode(codec.encode({ sequence: 1, type: 1, message: "hi" }));
 * assert.deepEqual(frame, { sequence: 1, type: 1, message: "hi" });
 * ```
 */
export interface Codec {
  /** The codec's name, for logs and negotiation. */
  readonly name: string;
  /**
   * Encodes one frame.
   *
   * @param frame The frame.
   * @returns The WebSocket message.
   * @throws {TypeError} When the payload cannot be encoded.
   */
  encode(frame: Frame): string | Uint8Array<ArrayBuffer>;
  /**
   * Decodes and validates one WebSocket message.
   *
   * @param data The message as received.
   * @returns The frame.
   * @throws {ProtocolError} When the message is not a valid frame.
   */
  decode(data: unknown): Frame;
}

/** The longest method name a frame may carry. */
const MAX_METHOD_LENGTH = 256;

function isSequence(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 &&
    value <= MAX_SEQUENCE;
}

function fail(reason: string, sequence?: number, type?: unknown): never {
  throw new ProtocolError(`Cannot decode frame: ${reason}`, sequence, type);
}

function checkString(
  record: Record<string, unknown>,
  field: string,
  sequence: number,
  maxLength: number,
): void {
  const value = record[field];
  if (value === undefined) return;
  if (typeof value !== "string") {
    fail(`"${field}" must be a string`, sequence, record.type);
  }
  if (value.length > maxLength) {
    fail(
      `"${field}" is longer than ${maxLength} characters`,
      sequence,
      record.type,
    );
  }
}

function checkError(value: unknown, sequence: number): void {
  if (
    typeof value !== "object" || value === null || Array.isArray(value) ||
    typeof (value as Record<string, unknown>).code !== "string" ||
    typeof (value as Record<string, unknown>).message !== "string"
  ) {
    fail(
      `"error" must be an object with string "code" and "message"`,
      sequence,
      2,
    );
  }
}

/**
 * Validates a parsed value as a frame.
 *
 * @param value The parsed JSON value.
 * @returns The same value, typed as a frame.
 * @throws {ProtocolError} When a field is missing or of the wrong type.
 *
 * @example Usage
 * ```ts
 * import { validateFrame, ProtocolError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(validateFrame({ sequence: 1, type: 3 }).type, 3);
 * assert.throws(() => validateFrame({ sequence: -1, type: 1 }), ProtocolError);
 * ```
 */
export function validateFrame(value: unknown): Frame {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail("a frame must be a JSON object");
  }
  const record = value as Record<string, unknown>;
  const type = record.type;
  let sequence = record.sequence;
  if (sequence === undefined && type === 3) {
    // A notification's sequence carries no meaning; tolerate its absence.
    sequence = record.sequence = 0;
  } else if (!isSequence(sequence)) {
    fail(
      sequence === undefined
        ? `"sequence" is missing`
        : `"sequence" must be an integer from 0 to ${MAX_SEQUENCE}`,
      undefined,
      type,
    );
  }
  const seq = sequence as number;
  switch (type) {
    case 1:
    case 3:
      checkString(record, "method", seq, MAX_METHOD_LENGTH);
      checkString(record, "from", seq, MAX_METHOD_LENGTH);
      break;
    case 2:
      if (record.error !== undefined) checkError(record.error, seq);
      break;
    case 4:
    case 5:
    case 6:
      break;
    default:
      fail(
        type === undefined
          ? `"type" is missing`
          : `unknown type ${JSON.stringify(type)}`,
        seq,
        type,
      );
  }
  return record as unknown as Frame;
}

/**
 * The JSON codec: one frame per text message. Binary messages are refused
 * with a {@linkcode ProtocolError}.
 *
 * @example Usage
 * ```ts
 * import { jsonCodec } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(
 *   jsonCodec.encode({ sequence: 1, type: 2, message: "ok" }),
 *   '{"sequence":1,"type":2,"message":"ok"}',
 * );
 * assert.throws(() => jsonCodec.decode("not json"));
 * ```
 */
export const jsonCodec: Codec = {
  name: "json",
  encode(frame: Frame): string {
    return JSON.stringify(frame);
  },
  decode(data: unknown): Frame {
    if (typeof data !== "string") {
      fail("binary messages are not supported by the JSON codec");
    }
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch (error) {
      throw new ProtocolError(
        "Cannot decode frame: not valid JSON",
        undefined,
        undefined,
        { cause: error },
      );
    }
    return validateFrame(value);
  },
};
