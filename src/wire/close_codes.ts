/**
 * The WebSocket close codes of the Duplex protocol, one meaning each (the
 * table in PROTOCOL.md), and how a client reads them: which are final (no
 * reconnection) and how an abnormal closure is reported.
 *
 * @module
 */

/**
 * The close codes Duplex sends or reports. Each means one thing.
 *
 * @example Usage
 * ```ts
 * import { CloseCode } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CloseCode.Replaced, 4009);
 * assert.notEqual(CloseCode.Replaced, CloseCode.PingTimeout);
 * ```
 */
export const CloseCode: {
  /** A normal close (`close()` without a code). */
  readonly Normal: 1000;
  /** The server shuts down; the client reconnects. */
  readonly GoingAway: 1001;
  /** Too many malformed frames. */
  readonly ProtocolError: 1002;
  /** No close frame: the connection dropped (Deno reports 0). */
  readonly Abnormal: 1006;
  /** Policy: the rate limit was exceeded; the client does not reconnect. */
  readonly PolicyViolation: 1008;
  /** A message exceeded the receiver's size limit. */
  readonly MessageTooBig: 1009;
  /** Try again later: the client did not read fast enough (backpressure). */
  readonly TryAgainLater: 1013;
  /** The client's heartbeat got no sign of life in time. */
  readonly PingTimeout: 4000;
  /** Unauthorized; the client does not reconnect. */
  readonly Unauthorized: 4001;
  /** Forbidden; the client does not reconnect. */
  readonly Forbidden: 4003;
  /**
   * Replaced by a newer connection of the same user; the client does not
   * reconnect (two tabs would otherwise replace each other forever).
   */
  readonly Replaced: 4009;
} = {
  Normal: 1000,
  GoingAway: 1001,
  ProtocolError: 1002,
  Abnormal: 1006,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  TryAgainLater: 1013,
  PingTimeout: 4000,
  Unauthorized: 4001,
  Forbidden: 4003,
  Replaced: 4009,
} as const;

/**
 * The close code as Duplex reports it: Deno reports an abnormal closure
 * (no close frame) as 0, browsers as 1006; both become 1006.
 *
 * @param code The code of a `CloseEvent`.
 * @returns The code, or 1006 for 0.
 *
 * @example Usage
 * ```ts
 * import { reportedCloseCode } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(reportedCloseCode(0), 1006);
 * assert.equal(reportedCloseCode(1000), 1000);
 * ```
 */
export function reportedCloseCode(code: number): number {
  // Literals, not `CloseCode`: the browser bundle then leaves the object out.
  return code || 1006;
}

/**
 * Tells whether a close code is final: the server refused the client
 * (policy, unauthorized, forbidden) or replaced it with a newer connection.
 * The client never reconnects after one.
 *
 * @param code The close code.
 * @returns `true` for 1008, 4001, 4003 and 4009.
 *
 * @example Usage
 * ```ts
 * import { CloseCode, isFinalCloseCode } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isFinalCloseCode(CloseCode.Replaced));
 * assert.ok(!isFinalCloseCode(CloseCode.GoingAway));
 * ```
 */
export function isFinalCloseCode(code: number): boolean {
  // PolicyViolation, Unauthorized, Forbidden, Replaced (literals, as above).
  return code === 1008 || code === 4001 || code === 4003 || code === 4009;
}
