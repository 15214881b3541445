/**
 * The error for a user that neither this server nor the cluster can reach.
 *
 * @module
 */

import { RemoteError } from "../wire/errors.ts";

/**
 * A request was addressed to a user who has no suitable connection: not
 * connected at all, or connected only with clients of the original protocol,
 * which cannot answer server requests. Its `code` is `"NOT_CONNECTED"`, the
 * same as the wire error code. It is a {@linkcode RemoteError}, so a handler
 * that relays a request to another user and lets this error escape answers
 * its own caller with `NOT_CONNECTED` rather than a generic internal error.
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
export class NotConnectedError extends RemoteError {
  /** The user the request was for. */
  readonly user: string;

  /**
   * Creates the error for `user`.
   *
   * @param user The user id.
   * @param reason Why no connection fits.
   */
  constructor(user: string, reason = "not connected") {
    super({
      code: "NOT_CONNECTED",
      message: `Cannot reach user ${JSON.stringify(user)}: ${reason}`,
    });
    this.name = "NotConnectedError";
    this.user = user;
  }
}
