/**
 * What a request handler registered on a `DuplexServer` gets: the peer's
 * {@linkcode RequestContext} with `from` always set (every connection is
 * authenticated) and `data` (what `authenticate` returned).
 *
 * @module
 */

import type { RequestContext } from "../peer/handler.ts";

/**
 * The context of a request handled by a `DuplexServer`: `from` is the
 * authenticated user id, `data` what `authenticate` returned with it.
 *
 * @example Usage
 * ```ts
 * import { DuplexServer, type ServerRequestContext } from "@duplex/ws/server";
 *
 * function whoami(_params: unknown, { from, data }: ServerRequestContext) {
 *   return { user: from.toUpperCase(), data };
 * }
 * new DuplexServer().handle("whoami", whoami);
 * ```
 */
export interface ServerRequestContext extends RequestContext {
  /** The authenticated user id of the connection the request came in on. */
  readonly from: string;
}
