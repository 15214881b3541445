/**
 * The authenticate hook of a {@linkcode DuplexServer}: who opens a
 * connection, decided before the upgrade, and the default that takes the
 * `user` query parameter.
 *
 * @module
 */

import { text } from "./_http.ts";

/**
 * Who a connection belongs to, as returned by an {@linkcode Authenticate}
 * hook: the user id, or the user id with data kept on the
 * {@linkcode Connection}.
 *
 * @example Usage
 * ```ts
 * import type { AuthResult } from "@duplex/ws/server";
 *
 * const plain: AuthResult = "alice";
 * const rich: AuthResult = { user: "alice", data: { role: "admin" } };
 * ```
 */
export type AuthResult = string | { user: string; data?: unknown };

/**
 * What an {@linkcode Authenticate} hook gets besides the request.
 *
 * @example Usage
 * ```ts
 * import type { AuthContext } from "@duplex/ws/server";
 *
 * const tokenOf = (context: AuthContext) => context.token ?? context.url.searchParams.get("token");
 * ```
 */
export interface AuthContext {
  /** The request URL, parsed. */
  readonly url: URL;
  /**
   * The bearer token from an offered `duplex.auth.<token>` subprotocol or
   * an `Authorization: Bearer` header (see `bearerToken`).
   */
  readonly token: string | undefined;
  /** The connection info `Deno.serve` passed, when given. */
  readonly info: Deno.ServeHandlerInfo | undefined;
}

/**
 * Decides who opens a connection, before the upgrade. Return the user (or
 * `{ user, data }`) to accept, `undefined`/`null` to refuse with 401, or a
 * `Response` (e.g. 403) to refuse with it. A hook that throws refuses with
 * 500 and the error is logged.
 *
 * @example Token in the subprotocol or a cookie
 * ```ts
 * import type { Authenticate } from "@duplex/ws/server";
 * import { getCookie } from "@duplex/ws/server";
 *
 * const sessions = new Map([["t0k3n", "alice"]]);
 * const authenticate: Authenticate = (request, { token }) => {
 *   const key = token ?? getCookie(request, "session");
 *   if (key === undefined) return undefined; // 401
 *   return sessions.get(key) ?? new Response("Forbidden", { status: 403 });
 * };
 * ```
 */
export type Authenticate = (
  request: Request,
  context: AuthContext,
) =>
  | AuthResult
  | Response
  | null
  | undefined
  | Promise<AuthResult | Response | null | undefined>;

/** The longest user id an authenticate hook may return. */
export const MAX_USER_LENGTH = 128;

/** The default hook: the `user` query parameter, else 400. */
export function defaultAuthenticate(
  _request: Request,
  context: AuthContext,
): AuthResult | Response {
  const user = context.url.searchParams.get("user");
  if (user === null || user === "") {
    return text(400, "Cannot connect: missing user query parameter");
  }
  return user;
}
