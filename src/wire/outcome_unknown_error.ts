/**
 * {@linkcode OutcomeUnknownError}: a request was sent, but its session was
 * lost before the answer, so nobody can say whether it ran.
 *
 * @module
 */

import { ConnectionClosedError } from "./errors.ts";
import type { SessionLossReason } from "./session_frames.ts";

/**
 * A request was handed to the connection, but its session ended before the
 * response came and could not be resumed (`reason`: `"expired"`,
 * `"overflow"`, `"unknown"`, `"forbidden"`): the other side may or may not
 * have run it. Retry only what is safe to run twice. A request that was
 * never sent does not get this error (it waits for the next session, or
 * rejects with a queue error).
 *
 * It extends {@linkcode ConnectionClosedError}, so code written before
 * sessions still catches it.
 *
 * @example Usage
 * ```ts
 * import { ConnectionClosedError, OutcomeUnknownError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new OutcomeUnknownError("expired");
 * assert.equal(error.code, "OUTCOME_UNKNOWN");
 * assert.equal(error.sessionReason, "expired");
 * assert.ok(error instanceof ConnectionClosedError);
 * ```
 */
export class OutcomeUnknownError extends ConnectionClosedError {
  /** Why the session was lost. */
  declare readonly sessionReason: SessionLossReason;

  /**
   * Creates the error for a session lost for `reason`.
   *
   * @param reason Why the session was lost.
   * @param options The standard error options (`cause`).
   */
  constructor(reason: SessionLossReason, options?: ErrorOptions) {
    super(1006, `session ${reason}`, options);
    this.message =
      `Cannot know the outcome of the request: its session was lost (${reason})`;
    this.name = "OutcomeUnknownError";
    (this as { code: string }).code = "OUTCOME_UNKNOWN";
    this.sessionReason = reason;
  }
}
