/**
 * {@linkcode MalformedFrames}: counts the malformed frames a peer received
 * recently and tells when there are too many (the peer then closes with
 * 1002). Only recent ones count, so that rare mistakes spread over a
 * long-lived connection never close it.
 *
 * @module
 */

import { ProtocolError } from "../wire/errors.ts";
import type { ErrorPayload } from "../wire/protocol.ts";

/**
 * The answer to a malformed frame whose sender may be waiting for one (an
 * `INVALID_FRAME` error for its sequence), else `undefined`: a response is
 * never answered, which could settle an unrelated request of the other
 * side with the same sequence, nor a cancel.
 *
 * @param error The frame's decoding error.
 * @returns The error payload to answer `error.sequence` with.
 */
export function invalidFrame(error: ProtocolError): ErrorPayload | undefined {
  const { sequence, frameType } = error;
  return sequence !== undefined && frameType !== 2 && frameType !== 4
    ? { code: "INVALID_FRAME", message: error.message }
    : undefined;
}

/**
 * The error a malformed frame is reported with: the codec's
 * `ProtocolError`, or one that wraps what a custom codec threw.
 *
 * @param error What the codec threw.
 * @returns The protocol error.
 */
export function asProtocolError(error: unknown): ProtocolError {
  return error instanceof ProtocolError ? error : new ProtocolError(
    "Cannot decode frame: codec failed",
    undefined,
    undefined,
    { cause: error },
  );
}

/** The times of the last malformed frames of one peer. Internal. */
export class MalformedFrames {
  #max: number;
  #window: number;
  #times: number[] = [];

  /**
   * @param options `maxMalformed` frames (default 10) tolerated within
   * `malformedWindow` ms (default 60,000).
   */
  constructor(options: { maxMalformed?: number; malformedWindow?: number }) {
    this.#max = options.maxMalformed ?? 10;
    this.#window = options.malformedWindow ?? 60_000;
  }

  /**
   * Records one malformed frame.
   *
   * @returns `true` when more than `max` came within `window`.
   */
  add(): boolean {
    const max = this.#max;
    if (!(max < Infinity)) return false;
    const now = Date.now();
    const times = this.#times;
    times.push(now);
    if (times.length > max + 1) times.shift();
    return times.length > max && now - times[0] <= this.#window;
  }
}
