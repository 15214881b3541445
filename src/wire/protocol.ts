/**
 * The Duplex wire protocol: frame types and their constants.
 *
 * Every frame is one JSON object. The first three types are the original
 * design and stay byte-compatible with clients written for it; the others are
 * optional extensions that an original peer never sends and never receives
 * unless it asked for them.
 *
 * @module
 */

import type { StreamFrame } from "./stream_frames.ts";

/**
 * Numeric frame types as they appear in the `type` field.
 *
 * @example Usage
 * ```ts
 * import { FrameType } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(FrameType.Request, 1);
 * assert.equal(FrameType.Response, 2);
 * assert.equal(FrameType.Notify, 3);
 * ```
 */
export const FrameType: {
  /** A request: the receiver must answer with a response of the same sequence. */
  readonly Request: 1;
  /** A response to the request with the same sequence. */
  readonly Response: 2;
  /** A notification: no answer. */
  readonly Notify: 3;
  /** Extension: the sender abandons its request with this sequence. */
  readonly Cancel: 4;
  /** Extension: application-level ping; the receiver answers with a pong. */
  readonly Ping: 5;
  /** Extension: the answer to a ping, with the ping's sequence. */
  readonly Pong: 6;
  /**
   * Extension: the sender is closing the connection with this close code
   * and reason (sent before the close frame, which may be lost).
   */
  readonly Closing: 7;
  /** Extension: a chunk of a request's streamed result (responder → caller). */
  readonly StreamChunk: 12;
  /** Extension: credit for more result chunks (caller → responder). */
  readonly StreamCredit: 13;
  /** Extension: a chunk of a request's streamed params (caller → responder). */
  readonly UploadChunk: 14;
  /** Extension: the end of a request's streamed params (caller → responder). */
  readonly UploadEnd: 15;
  /** Extension: credit for more upload chunks (responder → caller). */
  readonly UploadCredit: 16;
  /** Extension: the responder stopped reading the upload. */
  readonly UploadCancel: 17;
} = {
  Request: 1,
  Response: 2,
  Notify: 3,
  Cancel: 4,
  Ping: 5,
  Pong: 6,
  Closing: 7,
  StreamChunk: 12,
  StreamCredit: 13,
  UploadChunk: 14,
  UploadEnd: 15,
  UploadCredit: 16,
  UploadCancel: 17,
} as const;

/**
 * The largest sequence number. Sequences are integers from 0 to this value;
 * request sequences start at 1 and wrap around before 2^31.
 *
 * @example Usage
 * ```ts
 * import { MAX_SEQUENCE } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(MAX_SEQUENCE, 2 ** 31 - 1);
 * ```
 */
export const MAX_SEQUENCE: number = 0x7fff_ffff;

/**
 * The WebSocket subprotocol that Duplex clients offer. A server that sees it
 * knows the client understands every extension (method names, presence
 * notifications, pings); a client that does not offer it gets only the frames
 * of the original design.
 *
 * @example Usage
 * ```ts
 * import { SUBPROTOCOL } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SUBPROTOCOL, "duplex.v1");
 * ```
 */
export const SUBPROTOCOL: string = "duplex.v1";

/**
 * The subprotocol token by which a client says that its writes wait for
 * TCP acknowledgements (Nagle's algorithm, which Deno's WebSocket client
 * leaves on): the server then answers every burst of its frames that
 * nothing else answered with a pong (PROTOCOL.md "Nagle answers"). Offered
 * after `duplex.v1`, never selected: the offer alone is the capability.
 */
export const NAGLE_CAPABILITY = "duplex.nagle";

/**
 * The error carried by a response whose request failed.
 *
 * @example Usage
 * ```ts
 * import type { ErrorPayload } from "@duplex/ws";
 *
 * const error: ErrorPayload = { code: "METHOD_NOT_FOUND", message: "Unknown method" };
 * ```
 */
export interface ErrorPayload {
  /** Stable machine-readable code, e.g. `"METHOD_NOT_FOUND"`. */
  code: string;
  /** Human-readable description. */
  message: string;
  /** Optional structured details. */
  data?: unknown;
}

/**
 * Type 1: a request. `message` is the payload; `method` names the handler
 * (absent: the default handler); `from` is set by a server that relays it.
 *
 * @example Usage
 * ```ts
 * import type { RequestFrame } from "@duplex/ws";
 *
 * const frame: RequestFrame = { sequence: 1, type: 1, message: "hello" };
 * ```
 */
export interface RequestFrame {
  /** The sender's number for this request, 1 to {@linkcode MAX_SEQUENCE}. */
  sequence: number;
  /** Always 1. */
  type: 1;
  /** The payload: any JSON value. */
  message?: unknown;
  /** Which handler answers it; absent means the default handler. */
  method?: string;
  /** The sender's identity, as the server knows it. */
  from?: string;
  /**
   * Extension: the caller consumes a streamed result and grants this many
   * chunks (type-12 frames).
   */
  credit?: number;
  /**
   * Extension: the params are a stream, sent as upload chunks once the
   * responder grants credit; `message` is absent.
   */
  upload?: true;
  /**
   * Extension, with `upload`: the caller can pack several chunks into one
   * upload chunk frame, if the responder's first credit frame lets it
   * (PROTOCOL.md, "Packed chunks").
   */
  pack?: true;
}

/**
 * Type 2: a response to the request with the same sequence. It carries either
 * `message` (success) or `error` (failure).
 *
 * @example Usage
 * ```ts
 * import type { ResponseFrame } from "@duplex/ws";
 *
 * const ok: ResponseFrame = { sequence: 1, type: 2, message: "ok" };
 * ```
 */
export interface ResponseFrame {
  /** The sequence of the request it answers. */
  sequence: number;
  /** Always 2. */
  type: 2;
  /** The result: any JSON value. */
  message?: unknown;
  /** Present when the request failed. */
  error?: ErrorPayload;
}

/**
 * Type 3: a notification. No response is sent.
 *
 * @example Usage
 * ```ts
 * import type { NotifyFrame } from "@duplex/ws";
 *
 * const chat: NotifyFrame = { sequence: 7, type: 3, message: "hi", from: "alice" };
 * ```
 */
export interface NotifyFrame {
  /** A number for the notification; receivers do not correlate it. */
  sequence: number;
  /** Always 3. */
  type: 3;
  /** The payload: any JSON value. */
  message?: unknown;
  /** Which listener receives it; absent means the default listener. */
  method?: string;
  /** The sender's identity, as the server knows it. */
  from?: string;
}

/**
 * Type 4 (extension): the sender abandons its request `sequence`. The
 * receiver aborts the handler's signal and sends no response.
 *
 * @example Usage
 * ```ts
 * import type { CancelFrame } from "@duplex/ws";
 *
 * const cancel: CancelFrame = { sequence: 1, type: 4 };
 * ```
 */
export interface CancelFrame {
  /** The sequence of the abandoned request. */
  sequence: number;
  /** Always 4. */
  type: 4;
}

/**
 * Type 5 (extension): an application-level ping, answered by a pong of the
 * same sequence. Browsers cannot see WebSocket pings, so clients use these to
 * detect a dead server.
 *
 * @example Usage
 * ```ts
 * import type { PingFrame } from "@duplex/ws";
 *
 * const ping: PingFrame = { sequence: 1, type: 5 };
 * ```
 */
export interface PingFrame {
  /** Any number; the pong echoes it. */
  sequence: number;
  /** Always 5. */
  type: 5;
}

/**
 * Type 6 (extension): the answer to a ping.
 *
 * @example Usage
 * ```ts
 * import type { PongFrame } from "@duplex/ws";
 *
 * const pong: PongFrame = { sequence: 1, type: 6 };
 * ```
 */
export interface PongFrame {
  /** The sequence of the ping it answers. */
  sequence: number;
  /** Always 6. */
  type: 6;
}

/**
 * Type 7 (extension, `duplex.v1` only): the sender closes the connection
 * with `code` and `reason`. It precedes the close frame because a Deno
 * server's close frame can be lost (the client then sees 1006): the receiver
 * reports this code and reason whatever code its socket reports.
 *
 * @example Usage
 * ```ts
 * import type { ClosingFrame } from "@duplex/ws";
 *
 * const closing: ClosingFrame = { sequence: 0, type: 7, code: 1008, reason: "Rate limit exceeded" };
 * ```
 */
export interface ClosingFrame {
  /** Always 0. */
  sequence: number;
  /** Always 7. */
  type: 7;
  /** The close code, 1000 to 4999. */
  code: number;
  /** The close reason, at most 123 characters. */
  reason?: string;
}

/**
 * Any frame of the protocol.
 *
 * @example Usage
 * ```ts
 * import type { Frame } from "@duplex/ws";
 *
 * const frames: Frame[] = [
 *   { sequence: 1, type: 1, message: "hello" },
 *   { sequence: 1, type: 2, message: "ok" },
 * ];
 * ```
 */
export type Frame =
  | RequestFrame
  | ResponseFrame
  | NotifyFrame
  | CancelFrame
  | PingFrame
  | PongFrame
  | ClosingFrame
  | StreamFrame;

/**
 * The `code` values that Duplex itself puts in error responses. Handlers may
 * use any other string for their own errors.
 *
 * @example Usage
 * ```ts
 * import { ErrorCode } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(ErrorCode.MethodNotFound, "METHOD_NOT_FOUND");
 * ```
 */
export const ErrorCode: {
  /** No handler for the request's method (or no default handler). */
  readonly MethodNotFound: "METHOD_NOT_FOUND";
  /** The handler failed; details are logged on the answering side only. */
  readonly InternalError: "INTERNAL_ERROR";
  /** The frame broke the protocol; the message says how. */
  readonly InvalidFrame: "INVALID_FRAME";
  /** The sender exceeded its rate limit. */
  readonly RateLimited: "RATE_LIMITED";
  /** The sender has too many requests in flight. */
  readonly TooManyRequests: "TOO_MANY_REQUESTS";
  /** The caller cancelled the request (the handler's signal reason). */
  readonly Cancelled: "CANCELLED";
  /** The target user is not connected. */
  readonly NotConnected: "NOT_CONNECTED";
  /** The server is shutting down and takes no new requests. */
  readonly ShuttingDown: "SHUTTING_DOWN";
  /** The request is not allowed for this user. */
  readonly Forbidden: "FORBIDDEN";
} = {
  MethodNotFound: "METHOD_NOT_FOUND",
  InternalError: "INTERNAL_ERROR",
  InvalidFrame: "INVALID_FRAME",
  RateLimited: "RATE_LIMITED",
  TooManyRequests: "TOO_MANY_REQUESTS",
  Cancelled: "CANCELLED",
  NotConnected: "NOT_CONNECTED",
  ShuttingDown: "SHUTTING_DOWN",
  Forbidden: "FORBIDDEN",
} as const;
