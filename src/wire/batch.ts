/**
 * Batch frames (type 11, write coalescing): several frames for one connection
 * sent as one WebSocket message, `{"type":11,"sequence":n,"message":[f1,…,fn]}`
 * with `sequence` the number of frames inside. Sent only from a server to a
 * client that offered the {@linkcode BATCH_CAPABILITY} subprotocol token; see
 * PROTOCOL.md, "Batches".
 *
 * @module
 */

import { validateFrame } from "./codec.ts";
import { ProtocolError } from "./errors.ts";
import type { Frame } from "./protocol.ts";

/**
 * The subprotocol token by which a client says it reads batch frames. It is
 * offered after `duplex.v1` and never selected by the server: the offer
 * alone is the capability.
 */
export const BATCH_CAPABILITY = "duplex.batch";

/** How every batch frame begins (its canonical form: `type` first). */
export const BATCH_PREFIX = '{"type":11,';

/**
 * Joins encoded frames into one batch frame.
 *
 * @param frames Two or more encoded JSON frames.
 * @returns The batch frame.
 */
export function encodeBatch(frames: readonly string[]): string {
  return `{"type":11,"sequence":${frames.length},"message":[${
    frames.join(",")
  }]}`;
}

/**
 * Whether a message is a batch frame (begins with {@linkcode BATCH_PREFIX}).
 *
 * @param data A received message.
 * @returns `true` for a batch.
 */
export function isBatch(data: unknown): data is string {
  // `startsWith` costs a call into the runtime: most frames are told apart
  // by their third character (`{"sequence"…`, a batch `{"type":11,…`).
  return typeof data === "string" && data.charCodeAt(2) === 116 &&
    data.startsWith(BATCH_PREFIX);
}

/**
 * Reads a batch frame: each frame inside, validated, in order.
 *
 * @param data A batch frame (see {@linkcode isBatch}).
 * @param onFrame Receives each valid frame.
 * @param onMalformed Receives a {@linkcode ProtocolError} for a batch that
 * is not one (no JSON, or `sequence` does not count its frames: then none of
 * its frames is read) and for each invalid frame inside.
 */
export function readBatch(
  data: string,
  onFrame: (frame: Frame) => void,
  onMalformed: (error: unknown) => void,
): void {
  let batch: { sequence?: unknown; message?: unknown } | undefined;
  let cause: unknown;
  try {
    batch = JSON.parse(data);
  } catch (error) {
    cause = error;
  }
  const frames = batch?.message;
  if (!Array.isArray(frames) || batch!.sequence !== frames.length) {
    onMalformed(
      new ProtocolError(
        `Cannot decode batch: "message" must be an array of "sequence" frames`,
        undefined,
        11,
        { cause },
      ),
    );
    return;
  }
  for (const value of frames) {
    let frame: Frame;
    try {
      frame = validateFrame(value);
    } catch (error) {
      onMalformed(error);
      continue;
    }
    onFrame(frame);
  }
}

/**
 * How many frames a WebSocket message carries: the count of a batch, 1 for
 * any other frame. For a layer that counts frames without decoding them (a
 * session counts each frame inside a batch).
 *
 * @param data A received message.
 * @returns The number of frames.
 */
export function batchSize(data: unknown): number {
  if (!isBatch(data)) return 1;
  // `{"type":11,"sequence":` is 22 characters.
  return parseInt(data.slice(22, data.indexOf(",", 22)), 10) || 1;
}
