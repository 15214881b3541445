/**
 * The stream frames (types 12 to 17): the chunks, credits, end and cancel of
 * a request's streamed result (a download) and of its streamed params (an
 * upload). A stream belongs to one request and is named by that request's
 * sequence, in the caller's numbering; the frame type says which side sent
 * it. See PROTOCOL.md, "Streams".
 *
 * @module
 */

import type { ErrorPayload } from "./protocol.ts";

/**
 * Type 12 (extension): responder → caller, one chunk of the streamed result
 * of the receiver's request `sequence`. Sent only while the caller's credit
 * lasts; the stream ends with the request's response (type 2).
 *
 * @example Usage
 * ```ts
 * import type { StreamChunkFrame } from "@duplex/ws";
 *
 * const chunk: StreamChunkFrame = { sequence: 1, type: 12, message: "line 1" };
 * ```
 */
export interface StreamChunkFrame {
  /** The sequence of the request whose result it belongs to. */
  sequence: number;
  /** Always 12. */
  type: 12;
  /** The chunk: any value the codec carries (with `chunks`, an array of them). */
  message?: unknown;
  /** Packed chunks: `message` is an array of this many chunks (2 or more). */
  chunks?: number;
}

/**
 * Type 13 (extension): caller → responder, grants `credit` more result
 * chunks of the caller's request `sequence`.
 *
 * @example Usage
 * ```ts
 * import type { StreamCreditFrame } from "@duplex/ws";
 *
 * const credit: StreamCreditFrame = { sequence: 1, type: 13, credit: 8 };
 * ```
 */
export interface StreamCreditFrame {
  /** The sequence of the request whose result it is for. */
  sequence: number;
  /** Always 13. */
  type: 13;
  /** How many more chunks the responder may send, 1 to 2^31 − 1. */
  credit: number;
}

/**
 * Type 14 (extension): caller → responder, one chunk of the streamed params
 * of the caller's request `sequence` (sent only while the responder's
 * credit lasts).
 *
 * @example Usage
 * ```ts
 * import type { UploadChunkFrame } from "@duplex/ws";
 *
 * const chunk: UploadChunkFrame = { sequence: 1, type: 14, message: "part 1" };
 * ```
 */
export interface UploadChunkFrame {
  /** The sequence of the request whose params it belongs to. */
  sequence: number;
  /** Always 14. */
  type: 14;
  /** The chunk: any value the codec carries (with `chunks`, an array of them). */
  message?: unknown;
  /**
   * Packed chunks: `message` is an array of this many chunks (2 or more),
   * each counted against the credit; only after a credit frame with `pack`.
   */
  chunks?: number;
}

/**
 * Type 15 (extension): caller → responder, the end of the streamed params
 * of request `sequence`; with `error` when the caller's source failed.
 *
 * @example Usage
 * ```ts
 * import type { UploadEndFrame } from "@duplex/ws";
 *
 * const end: UploadEndFrame = { sequence: 1, type: 15 };
 * ```
 */
export interface UploadEndFrame {
  /** The sequence of the request whose params end. */
  sequence: number;
  /** Always 15. */
  type: 15;
  /** Present when the upload failed. */
  error?: ErrorPayload;
}

/**
 * Type 16 (extension): responder → caller, grants `credit` more upload
 * chunks of the receiver's request `sequence`.
 *
 * @example Usage
 * ```ts
 * import type { UploadCreditFrame } from "@duplex/ws";
 *
 * const credit: UploadCreditFrame = { sequence: 1, type: 16, credit: 16 };
 * ```
 */
export interface UploadCreditFrame {
  /** The sequence of the request whose params it is for. */
  sequence: number;
  /** Always 16. */
  type: 16;
  /** How many more chunks the caller may send, 1 to 2^31 − 1. */
  credit: number;
  /**
   * In the first credit frame, to a request that offered `pack`: the caller
   * may pack chunks of this many bytes in all into one upload chunk frame.
   */
  pack?: number;
}

/**
 * Type 17 (extension): responder → caller, the handler stopped reading the
 * streamed params of the receiver's request `sequence`: the caller stops its
 * source and sends no more chunks.
 *
 * @example Usage
 * ```ts
 * import type { UploadCancelFrame } from "@duplex/ws";
 *
 * const stop: UploadCancelFrame = { sequence: 1, type: 17 };
 * ```
 */
export interface UploadCancelFrame {
  /** The sequence of the request whose upload stops. */
  sequence: number;
  /** Always 17. */
  type: 17;
}

/**
 * Any stream frame.
 *
 * @example Usage
 * ```ts
 * import type { StreamFrame } from "@duplex/ws";
 *
 * const frames: StreamFrame[] = [
 *   { sequence: 1, type: 13, credit: 4 },
 *   { sequence: 1, type: 12, message: "a" },
 * ];
 * ```
 */
export type StreamFrame =
  | StreamChunkFrame
  | StreamCreditFrame
  | UploadChunkFrame
  | UploadEndFrame
  | UploadCreditFrame
  | UploadCancelFrame;

/**
 * What is wrong with the stream fields of a parsed frame: `credit` of types
 * 1 (optional), 13 and 16, `upload` and `pack` of type 1, `pack` of type 16,
 * `chunks` of types 12 and 14 (type 15's `error` is checked as a
 * response's). Internal: the codec's `validateFrame` calls it.
 *
 * @param value The parsed frame.
 * @returns The problem, or `undefined` when the fields are valid.
 */
export function streamFieldProblem(
  value: Record<string, unknown>,
): string | undefined {
  const { type, credit, upload, pack, chunks } = value;
  if (
    (credit !== undefined || type === 13 || type === 16) && !positive(credit)
  ) return `"credit" must be a positive integer`;
  if (upload !== undefined && upload !== true) return `"upload" must be true`;
  if (pack !== undefined && !(type === 1 ? pack === true : positive(pack))) {
    return type === 1
      ? `"pack" must be true`
      : `"pack" must be a positive integer`;
  }
  if (
    chunks !== undefined &&
    !(positive(chunks) && (chunks as number) >= 2 &&
      Array.isArray(value.message) && value.message.length === chunks)
  ) {
    return `"chunks" must count the chunks of "message" (2 or more)`;
  }
}

/** Whether `value` is an integer from 1 to 2^31 − 1. */
function positive(value: unknown): boolean {
  return Number.isInteger(value) && (value as number) > 0 &&
    (value as number) <= 0x7fff_ffff;
}
