/**
 * Typed errors. Each has a stable `code` so callers can branch on it without
 * parsing messages.
 *
 * @module
 */

import type { ErrorPayload } from "./protocol.ts";

/**
 * The `error` event that reports `error` (internal: peers and the client).
 *
 * @param error What was thrown.
 * @returns The event.
 */
export function errorEvent(error: unknown): ErrorEvent {
  return new ErrorEvent("error", {
    error,
    message: error instanceof Error ? error.message : String(error),
  });
}

/**
 * The base class of every Duplex error.
 *
 * @example Usage
 * ```ts
 * import { DuplexError, RequestTimeoutError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.ok(new RequestTimeoutError(1, 10) instanceof DuplexError);
 * ```
 */
export class DuplexError extends Error {
  /** A stable machine-readable code, e.g. `"REQUEST_TIMEOUT"`. */
  declare readonly code: string;

  /**
   * Creates an error with a code.
   *
   * @param code The stable code.
   * @param message The human-readable message.
   * @param options The standard error options (`cause`).
   */
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "DuplexError";
    this.code = code;
  }
}

/**
 * A request got no response in time.
 *
 * @example Usage
 * ```ts
 * import { RequestTimeoutError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new RequestTimeoutError(7, 50);
 * assert.equal(error.code, "REQUEST_TIMEOUT");
 * assert.equal(error.sequence, 7);
 * ```
 */
export class RequestTimeoutError extends DuplexError {
  /** Sequence of the request that timed out. */
  declare readonly sequence: number;
  /** The timeout that elapsed, in milliseconds. */
  declare readonly timeout: number;

  /**
   * Creates the error for request `sequence` after `timeout` milliseconds.
   *
   * @param sequence The request's sequence.
   * @param timeout The timeout in milliseconds.
   */
  constructor(sequence: number, timeout: number) {
    super(
      "REQUEST_TIMEOUT",
      `Cannot complete request ${sequence}: no response after ${timeout} ms`,
    );
    this.name = "RequestTimeoutError";
    this.sequence = sequence;
    this.timeout = timeout;
  }
}

/**
 * The connection closed (or was never open) while a request needed it.
 *
 * @example Usage
 * ```ts
 * import { ConnectionClosedError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectionClosedError(1006, "");
 * assert.equal(error.code, "CONNECTION_CLOSED");
 * assert.equal(error.closeCode, 1006);
 * ```
 */
export class ConnectionClosedError extends DuplexError {
  /** The WebSocket close code (1006 when the connection dropped). */
  declare readonly closeCode: number;
  /** The close reason sent by the peer, if any. */
  declare readonly reason: string;

  /**
   * Creates the error for a connection closed with `closeCode` and `reason`.
   *
   * @param closeCode The WebSocket close code; 0 (Deno's abnormal closure)
   * is reported as 1006.
   * @param reason The close reason.
   * @param options The standard error options (`cause`), and what could not
   * be done (`action`, default `"complete request"`; a notification says
   * `"send notification"`).
   */
  constructor(
    closeCode: number,
    reason: string,
    options?: ErrorOptions & { action?: string },
  ) {
    const code = closeCode || 1006;
    super(
      "CONNECTION_CLOSED",
      `Cannot ${
        options?.action ?? "complete request"
      }: connection closed (${code}${reason ? ` ${reason}` : ""})`,
      options,
    );
    this.name = "ConnectionClosedError";
    this.closeCode = code;
    this.reason = reason;
  }
}

/**
 * The server speaks the original protocol (it did not select the
 * `duplex.v1` subprotocol), which has only unnamed requests with a string
 * message, their responses and chat notifications. What it cannot carry
 * (methods, client notifications, non-string messages) is refused at once
 * with this error instead of being sent: such a server would relay it to
 * every user as a chat message.
 *
 * @example Usage
 * ```ts
 * import { OriginalProtocolError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new OriginalProtocolError("call \"users.list\"", "it has no methods");
 * assert.equal(error.code, "ORIGINAL_PROTOCOL");
 * assert.match(error.message, /original protocol/);
 * ```
 */
export class OriginalProtocolError extends DuplexError {
  /**
   * Creates the error.
   *
   * @param action What could not be done, e.g. `call "users.list"`.
   * @param why What the original protocol lacks, e.g. `it has no methods`.
   */
  constructor(action: string, why: string) {
    super(
      "ORIGINAL_PROTOCOL",
      `Cannot ${action}: the server speaks the original protocol (no duplex.v1 subprotocol) and ${why}`,
    );
    this.name = "OriginalProtocolError";
  }
}

/**
 * The peer answered a request with an error. `code`, `message` and `data` are
 * the peer's.
 *
 * @example Usage
 * ```ts
 * import { RemoteError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new RemoteError({ code: "RATE_LIMITED", message: "Slow down" });
 * assert.equal(error.code, "RATE_LIMITED");
 * assert.equal(error.message, "Slow down");
 * ```
 */
export class RemoteError extends DuplexError {
  /** The peer's structured details, if any. */
  declare readonly data: unknown;

  /**
   * Creates the error from the peer's error payload. Thrown by a handler, it
   * is sent to the caller as is.
   *
   * @param payload The peer's code, message and data.
   */
  constructor(payload: ErrorPayload) {
    super(payload.code, payload.message);
    this.name = "RemoteError";
    this.data = payload.data;
  }
}

/**
 * A frame broke the protocol: not JSON, a wrong field type, an unknown type.
 * `sequence` is set when the frame's sequence could still be read.
 *
 * @example Usage
 * ```ts
 * import { ProtocolError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new ProtocolError("Cannot decode frame: unknown type 9", 4);
 * assert.equal(error.code, "PROTOCOL_ERROR");
 * assert.equal(error.sequence, 4);
 * ```
 */
export class ProtocolError extends DuplexError {
  /** The frame's sequence, when it was readable. */
  declare readonly sequence: number | undefined;
  /** The frame's `type` field as received, when it was readable. */
  declare readonly frameType: unknown;

  /**
   * Creates the error.
   *
   * @param message What is wrong, in the form "Cannot X: reason".
   * @param sequence The frame's sequence, when readable.
   * @param frameType The frame's `type` field, when readable.
   * @param options The standard error options (`cause`).
   */
  constructor(
    message: string,
    sequence?: number,
    frameType?: unknown,
    options?: ErrorOptions,
  ) {
    super("PROTOCOL_ERROR", message, options);
    this.name = "ProtocolError";
    this.sequence = sequence;
    this.frameType = frameType;
  }
}

/**
 * Too many requests are pending; the new one was refused at once.
 *
 * @example Usage
 * ```ts
 * import { TooManyPendingError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new TooManyPendingError(100).limit, 100);
 * ```
 */
export class TooManyPendingError extends DuplexError {
  /** The configured bound. */
  declare readonly limit: number;

  /**
   * Creates the error for a full bound of `limit` pending requests.
   *
   * @param limit The bound.
   */
  constructor(limit: number) {
    super(
      "TOO_MANY_PENDING",
      `Cannot send request: ${limit} already pending`,
    );
    this.name = "TooManyPendingError";
    this.limit = limit;
  }
}

/**
 * A connection attempt failed or timed out. `status` is the HTTP status of
 * a refused handshake when the platform reveals it (Deno does; browsers
 * never do: see the server's `refusals: "close"` option).
 *
 * @example Usage
 * ```ts
 * import { ConnectError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new ConnectError("ws://127.0.0.1:1/", "refused", 1006, { status: 401 });
 * assert.equal(error.code, "CONNECT_FAILED");
 * assert.equal(error.status, 401);
 * ```
 */
export class ConnectError extends DuplexError {
  /** The URL that could not be reached. */
  declare readonly url: string;
  /** The close code, when the server closed during the handshake. */
  declare readonly closeCode: number | undefined;
  /** The HTTP status of a refused handshake, when known. */
  declare readonly status: number | undefined;

  /**
   * Creates the error.
   *
   * @param url The URL.
   * @param reason Why it failed.
   * @param closeCode The close code, if any (0 is reported as 1006).
   * @param options The standard error options (`cause`) and the HTTP
   * `status` of a refused handshake.
   */
  constructor(
    url: string,
    reason: string,
    closeCode?: number,
    options?: ErrorOptions & { status?: number },
  ) {
    super("CONNECT_FAILED", `Cannot connect to ${url}: ${reason}`, options);
    this.name = "ConnectError";
    this.url = url;
    // Deno reports an abnormal closure as 0.
    this.closeCode = closeCode === 0 ? 1006 : closeCode;
    this.status = options?.status;
  }
}

/**
 * The offline queue is full: a request or notification issued while
 * disconnected was refused at once.
 *
 * @example Usage
 * ```ts
 * import { QueueFullError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new QueueFullError(100).code, "QUEUE_FULL");
 * ```
 */
export class QueueFullError extends DuplexError {
  /** The queue's size limit. */
  declare readonly limit: number;

  /**
   * Creates the error for a full queue of `limit` items.
   *
   * @param limit The bound.
   */
  constructor(limit: number) {
    super(
      "QUEUE_FULL",
      `Cannot queue message: ${limit} already queued`,
    );
    this.name = "QueueFullError";
    this.limit = limit;
  }
}

/**
 * A queued request or notification waited longer than the queue's maximum
 * wait for a connection.
 *
 * @example Usage
 * ```ts
 * import { QueueTimeoutError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new QueueTimeoutError(5_000).code, "QUEUE_TIMEOUT");
 * ```
 */
export class QueueTimeoutError extends DuplexError {
  /** The maximum wait in milliseconds. */
  declare readonly wait: number;

  /**
   * Creates the error after `wait` milliseconds without a connection.
   *
   * @param wait The maximum wait.
   */
  constructor(wait: number) {
    super(
      "QUEUE_TIMEOUT",
      `Cannot send message: no connection within ${wait} ms`,
    );
    this.name = "QueueTimeoutError";
    this.wait = wait;
  }
}
