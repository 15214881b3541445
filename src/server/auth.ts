/**
 * Credentials of a WebSocket upgrade request. Browsers cannot set headers on
 * a WebSocket handshake, so besides cookies and the query string a client may
 * carry a bearer token as an extra offered subprotocol `duplex.auth.<token>`;
 * the server reads it and never echoes it back.
 *
 * @module
 */

/** The prefix of the subprotocol that carries a bearer token. */
export const AUTH_PROTOCOL_PREFIX: string = "duplex.auth.";

/**
 * The subprotocols a request offers, in order, from its
 * `Sec-WebSocket-Protocol` headers.
 *
 * @param request The upgrade request.
 * @returns The offered protocols; empty when none.
 *
 * @example Usage
 * ```ts
 * import { offeredProtocols } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://localhost/", {
 *   headers: { "sec-websocket-protocol": "duplex.v1, duplex.auth.abc" },
 * });
 * assert.deepEqual(offeredProtocols(request), ["duplex.v1", "duplex.auth.abc"]);
 * ```
 */
export function offeredProtocols(request: Request): string[] {
  return [...offeredList(request.headers.get("sec-websocket-protocol"))];
}

const NONE: readonly string[] = Object.freeze([]);

/**
 * The offered subprotocols of a `Sec-WebSocket-Protocol` header (internal:
 * one array, shared and empty when none).
 */
export function offeredList(header: string | null): readonly string[] {
  if (header === null) return NONE;
  const offered: string[] = [];
  for (const part of header.split(",")) {
    const protocol = part.trim();
    if (protocol !== "") offered.push(protocol);
  }
  return offered;
}

/**
 * The bearer token of an upgrade request: from an offered subprotocol
 * `duplex.auth.<token>` (what browsers can send), else from an
 * `Authorization: Bearer <token>` header (other clients).
 *
 * @param request The upgrade request.
 * @returns The token, or `undefined` when the request carries none.
 *
 * @example From the subprotocol
 * ```ts
 * import { bearerToken } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://localhost/", {
 *   headers: { "sec-websocket-protocol": "duplex.v1, duplex.auth.s3cr3t" },
 * });
 * assert.equal(bearerToken(request), "s3cr3t");
 * ```
 *
 * @example From the Authorization header
 * ```ts
 * import { bearerToken } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://localhost/", {
 *   headers: { authorization: "Bearer s3cr3t" },
 * });
 * assert.equal(bearerToken(request), "s3cr3t");
 * assert.equal(bearerToken(new Request("http://localhost/")), undefined);
 * ```
 */
export function bearerToken(request: Request): string | undefined {
  return tokenOf(request.headers.get("sec-websocket-protocol"), request);
}

/**
 * Whether a `Sec-WebSocket-Protocol` header offers `name` (internal): as
 * `offeredProtocols` would list it, without making the list.
 */
export function offers(header: string | null, name: string): boolean {
  if (header === null) return false;
  for (
    let at = header.indexOf(name);
    at !== -1;
    at = header.indexOf(name, at + 1)
  ) {
    if (
      delimited(header, at - 1, -1) && delimited(header, at + name.length, 1)
    ) {
      return true;
    }
  }
  return false;
}

/** Whether only whitespace lies between `from` and a comma or the end. */
function delimited(header: string, from: number, step: 1 | -1): boolean {
  for (let i = from; i >= 0 && i < header.length; i += step) {
    const char = header[i];
    if (char === ",") return true;
    if (char.trim() !== "") return false;
  }
  return true;
}

/**
 * Whether Deno's own check in `Deno.upgradeWebSocket` finds `name` in a
 * protocol header: split on ", " (no trimming), it has `name` (internal).
 */
export function denoOffers(header: string, name: string): boolean {
  for (
    let at = header.indexOf(name);
    at !== -1;
    at = header.indexOf(name, at + 1)
  ) {
    const end = at + name.length;
    if (
      (at === 0 || header.startsWith(", ", at - 2)) &&
      (end === header.length || header.startsWith(", ", end))
    ) return true;
  }
  return false;
}

/** {@linkcode bearerToken} of a request's protocol header (internal). */
export function tokenOf(
  header: string | null,
  request: Request,
): string | undefined {
  // The list is made only when a token may be in it.
  const offered = header?.includes(AUTH_PROTOCOL_PREFIX)
    ? offeredList(header)
    : NONE;
  for (const protocol of offered) {
    if (
      protocol.startsWith(AUTH_PROTOCOL_PREFIX) &&
      protocol.length > AUTH_PROTOCOL_PREFIX.length
    ) {
      return protocol.slice(AUTH_PROTOCOL_PREFIX.length);
    }
  }
  const authorization = request.headers.get("authorization");
  if (authorization !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (match !== null) return match[1];
  }
  return undefined;
}

/**
 * The value of cookie `name` of a request.
 *
 * @param request The request.
 * @param name The cookie name.
 * @returns The cookie's value, or `undefined` when absent.
 *
 * @example Usage
 * ```ts
 * import { getCookie } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://localhost/", {
 *   headers: { cookie: "theme=dark; session=abc123" },
 * });
 * assert.equal(getCookie(request, "session"), "abc123");
 * assert.equal(getCookie(request, "missing"), undefined);
 * ```
 */
export function getCookie(request: Request, name: string): string | undefined {
  const header = request.headers.get("cookie");
  if (header === null) return undefined;
  for (const part of header.split(";")) {
    const equals = part.indexOf("=");
    if (equals < 0) continue;
    if (part.slice(0, equals).trim() === name) {
      const value = part.slice(equals + 1).trim();
      try {
        return decodeURIComponent(value);
      } catch {
        return value;
      }
    }
  }
  return undefined;
}
