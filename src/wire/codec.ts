/**
 * Codecs turn frames into WebSocket messages and back. The JSON codec is the
 * protocol's wire format; the {@linkcode Codec} interface lets a binary codec
 * be added later without touching the Peer, the client or the server.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";
import { type Frame, MAX_SEQUENCE } from "./protocol.ts";
import { streamFieldProblem } from "./stream_frames.ts";

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
   * The WebSocket subprotocol that selects it (absent for the JSON codec,
   * which `duplex.v1` and the original protocol use).
   */
  readonly protocol?: string;
  /**
   * Encodes one frame.
   *
   * @param frame The frame.
   * @returns The WebSocket message.
   * @throws {TypeError} When the payload cannot be encoded.
   */
  encode(frame: Frame): string | Uint8Array<ArrayBuffer>;
  /**
   * Encodes a response `{ sequence, type: 2, message }` exactly as
   * `encode` would, faster. Optional: without it the peer calls `encode`.
   *
   * @param sequence The request's sequence.
   * @param message The result.
   * @returns The WebSocket message.
   * @throws {TypeError} When the payload cannot be encoded.
   */
  encodeResponse?(
    sequence: number,
    message: unknown,
  ): string | Uint8Array<ArrayBuffer>;
  /**
   * Decodes and validates one WebSocket message.
   *
   * @param data The message as received.
   * @returns The frame.
   * @throws {ProtocolError} When the message is not a valid frame.
   */
  decode(data: unknown): Frame;
  /**
   * Optional: readies a WebSocket for this codec's messages, before anything
   * else listens to it (the binary codec sends large attachments as
   * messages of their own and gathers them back into one message event).
   *
   * @param socket The WebSocket, open, without listeners yet.
   * @param maxBytes The most bytes one received frame may hold.
   */
  prepare?(socket: WebSocket, maxBytes?: number): void;
  /**
   * Optional: carries a session's acknowledgement counts in this codec's
   * large frames (PROTOCOL.md "Carried acknowledgements"); a session asks
   * for it only when its codec has one. The binary codec's carries them in
   * the heads of detached frames.
   */
  readonly carrier?: AckCarrier;
}

/**
 * How a codec's frames carry a session's acknowledgement count
 * ({@linkcode Codec.carrier}).
 *
 * @example A carrier that carries nothing
 * ```ts
 * import type { AckCarrier } from "@duplex/ws";
 *
 * const none: AckCarrier = { carry: () => undefined, uncarry: () => undefined };
 * ```
 */
export interface AckCarrier {
  /**
   * The frame carrying `count`, to send in place of `data`.
   *
   * @param data An encoded frame as it travels.
   * @param count The count.
   * @returns The carrying frame, or `undefined` when this frame cannot carry.
   */
  carry(data: object, count: number): Uint8Array<ArrayBuffer> | undefined;
  /**
   * The count a received message carries, and the message without it.
   *
   * @param data A received binary message.
   * @returns The count and the frame, or `undefined` when it carries none.
   */
  uncarry(data: object): [number, Uint8Array<ArrayBuffer>] | undefined;
}

/** The longest method name a frame may carry. */
const MAX_METHOD_LENGTH = 256;
/** The longest close reason a closing frame may carry (as WebSocket). */
const MAX_REASON_LENGTH = 123;

function fail(
  reason: string,
  sequence?: number,
  type?: unknown,
  options?: ErrorOptions,
): never {
  throw new ProtocolError(
    `Cannot decode frame: ${reason}`,
    sequence,
    type,
    options,
  );
}

/** What is wrong with optional text field `field`, if anything. */
function textProblem(
  value: Record<string, unknown>,
  field: string,
  max: number,
): string | undefined {
  const text = value[field];
  if (text !== undefined && !(typeof text === "string" && text.length <= max)) {
    return `"${field}" must be a string of at most ${max} characters`;
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
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
  if (!isRecord(value)) fail("a frame must be a JSON object");
  const type = value.type;
  // The original server leaves out a sequence of 0 (notifications, and the
  // answer to a request that had none): read as 0, which matches no request.
  if (value.sequence === undefined && (type === 3 || type === 2)) {
    value.sequence = 0;
  }
  const sequence = value.sequence as number;
  if (
    !(Number.isInteger(sequence) && sequence >= 0 && sequence <= MAX_SEQUENCE)
  ) {
    fail(
      `"sequence" must be an integer from 0 to ${MAX_SEQUENCE}`,
      undefined,
      type,
    );
  }
  let problem: string | undefined;
  if (type === 1 || type === 3) {
    // The last bad field is named, as when they were checked in turn.
    problem = textProblem(value, "from", MAX_METHOD_LENGTH) ??
      textProblem(value, "method", MAX_METHOD_LENGTH);
  } else if (type === 2 || type === 15) {
    const error = value.error;
    if (
      error !== undefined &&
      !(isRecord(error) && typeof error.code === "string" &&
        typeof error.message === "string")
    ) {
      problem = `"error" must be an object with string "code" and "message"`;
    }
  } else if (type === 7) {
    const code = value.code as number;
    problem = Number.isInteger(code) && code >= 1000 && code <= 4999
      ? textProblem(value, "reason", MAX_REASON_LENGTH)
      : `"code" must be an integer from 1000 to 4999`;
  } else if (
    type !== 4 && type !== 5 && type !== 6 &&
    !((type as number) >= 12 && (type as number) <= 17)
  ) {
    problem = `unknown type ${JSON.stringify(type)}`;
  }
  if (type === 1 || (type as number) >= 12) {
    problem ??= streamFieldProblem(value);
  }
  if (problem) fail(problem, sequence, type);
  return value as unknown as Frame;
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
      fail("not valid JSON", undefined, undefined, { cause: error });
    }
    return validateFrame(value);
  },
};
