/**
 * The `Origin` check made before a WebSocket upgrade, the defence against
 * cross-site WebSocket hijacking: a page on another site can open a socket
 * to your server with the user's cookies, but it cannot hide its `Origin`.
 *
 * @module
 */

/**
 * Which origins may open a WebSocket: a list of origins
 * (`"https://chat.example.com"`, or `"*"` for any), or a function that
 * decides. Requests without an `Origin` header (non-browser clients) are
 * always allowed: the header is what browsers send, and the hijacking it
 * prevents needs a browser.
 *
 * @example Usage
 * ```ts
 * import type { OriginPolicy } from "@duplex/ws/server";
 *
 * const list: OriginPolicy = ["https://chat.example.com"];
 * const custom: OriginPolicy = (origin) => origin.endsWith(".example.com");
 * ```
 */
export type OriginPolicy =
  | readonly string[]
  | ((origin: string, request: Request) => boolean);

function normalize(origin: string): string | undefined {
  try {
    const url = new URL(origin);
    return url.origin === "null" ? undefined : url.origin;
  } catch {
    return undefined;
  }
}

function requestHost(request: Request): string {
  const host = request.headers.get("host");
  if (host !== null && host !== "") return host.toLowerCase();
  return new URL(request.url).host;
}

/**
 * Tells whether the `Origin` of an upgrade request is allowed.
 *
 * Without a policy, an origin is allowed when its host (name and port) is
 * the request's `Host`: the page was served by this server. The scheme is
 * not compared, so a TLS-terminating proxy in front does not break it.
 * A request without `Origin` is always allowed; the opaque origin `"null"`
 * (sandboxed frames, `file:` pages) only by a policy function or `"*"`.
 *
 * @param request The upgrade request.
 * @param policy The allowed origins; `undefined` means the same host.
 * @returns `true` when the request may be upgraded.
 *
 * @example Same host by default
 * ```ts
 * import { isOriginAllowed } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = (origin: string) =>
 *   new Request("http://chat.example.com/", { headers: { origin } });
 * assert.ok(isOriginAllowed(request("https://chat.example.com")));
 * assert.equal(isOriginAllowed(request("https://evil.example")), false);
 * assert.ok(isOriginAllowed(new Request("http://chat.example.com/")));
 * ```
 *
 * @example An allowlist
 * ```ts
 * import { isOriginAllowed } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://api.example.com/ws", {
 *   headers: { origin: "https://app.example.com" },
 * });
 * assert.ok(isOriginAllowed(request, ["https://app.example.com"]));
 * assert.equal(isOriginAllowed(request), false);
 * ```
 */
export function isOriginAllowed(
  request: Request,
  policy?: OriginPolicy,
): boolean {
  const origin = request.headers.get("origin");
  if (origin === null) return true;
  if (typeof policy === "function") return policy(origin, request);
  if (policy !== undefined) {
    if (policy.includes("*")) return true;
    const normalized = normalize(origin);
    if (normalized === undefined) return false;
    return policy.some((allowed) => normalize(allowed) === normalized);
  }
  const normalized = normalize(origin);
  if (normalized === undefined) return false;
  return new URL(normalized).host === requestHost(request);
}

/**
 * Tells whether a request's `Host` header names one of the allowed hosts: the
 * defence against DNS rebinding, where a hostile name resolves to the
 * server's address and the default origin policy (same host as the request)
 * would accept the page's own origin.
 *
 * @param request The upgrade request.
 * @param hosts Allowed hosts, as in the `Host` header (`"chat.example.com"`,
 * `"localhost:8000"`); `undefined` allows every host.
 * @returns `true` when allowed.
 *
 * @example Usage
 * ```ts
 * import { isHostAllowed } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const request = new Request("http://rebind.attacker.example/", {
 *   headers: { host: "rebind.attacker.example" },
 * });
 * assert.equal(isHostAllowed(request, ["chat.example.com"]), false);
 * assert.equal(isHostAllowed(request, undefined), true);
 * ```
 */
export function isHostAllowed(
  request: Request,
  hosts: readonly string[] | undefined,
): boolean {
  if (hosts === undefined) return true;
  const host = requestHost(request);
  return hosts.some((allowed) => allowed.toLowerCase() === host);
}
