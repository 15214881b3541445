/**
 * Errors that only the server raises.
 *
 * @module
 */

import { DuplexError } from "./errors.ts";

/**
 * A request was addressed to a user who has no suitable connection: not
 * connected at all, or connected only with clients of the original protocol,
 * which cannot answer server requests. Its `code` is `"NOT_CONNECTED"`, the
 * same as the wire error code.
 *
 * @example Usage
 * ```ts
 * import { NotConnectedError } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const error = new NotConnectedError("alice");
 * assert.equal(error.code, "NOT_CONNECTED");
 * assert.equal(error.user, "alice");
 * ```
 */
export class NotConnectedError extends DuplexError {
  /** The user the request was for. */
  readonly user: string;

  /**
   * Creates the error for `user`.
   *
   * @param user The user id.
   * @param reason Why no connection fits.
   */
  constructor(user: string, reason = "not connected") {
    super(
      "NOT_CONNECTED",
      `Cannot reach user ${JSON.stringify(user)}: ${reason}`,
    );
    this.name = "NotConnectedError";
    this.user = user;
  }
}
