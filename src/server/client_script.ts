/**
 * The browser client as a served file: the bundle of `client.ts` (an ES
 * module exporting `Client` and the typed errors) with an `ETag`, so that
 * browsers revalidate it cheaply and fetch it again only when it changed.
 * A `DuplexServer` serves it at its `clientPath` option.
 *
 * @module
 */

import {
  CLIENT_BUNDLE,
  CLIENT_BUNDLE_DENO_VERSION,
  CLIENT_BUNDLE_SOURCE_HASH,
} from "./client_bundle.ts";

/**
 * The strong `ETag` of the served client: the bundle's bytes follow from
 * its sources and the Deno version that built it, and both are in the tag.
 *
 * @example Usage
 * ```ts
 * import { CLIENT_SCRIPT_ETAG } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.match(CLIENT_SCRIPT_ETAG, /^"[0-9a-f]{16}-[0-9.]+"$/);
 * ```
 */
export const CLIENT_SCRIPT_ETAG: string = `"${
  CLIENT_BUNDLE_SOURCE_HASH.slice(0, 16)
}-${CLIENT_BUNDLE_DENO_VERSION}"`;

const HEADERS: Record<string, string> = {
  "content-type": "text/javascript; charset=utf-8",
  // Cached, but revalidated before each use: a new version is picked up at
  // once, an unchanged one costs a 304.
  "cache-control": "no-cache",
  "etag": CLIENT_SCRIPT_ETAG,
  "x-content-type-options": "nosniff",
  "access-control-allow-origin": "*",
};

/** Whether an `If-None-Match` header names the current tag. */
function matches(ifNoneMatch: string | null): boolean {
  if (ifNoneMatch === null) return false;
  return ifNoneMatch.split(",").some((tag) => {
    const trimmed = tag.trim();
    return trimmed === "*" ||
      trimmed.replace(/^W\//, "") === CLIENT_SCRIPT_ETAG;
  });
}

/**
 * Answers a request for the browser client: 200 with the ES module (an
 * empty body for `HEAD`), 304 when `If-None-Match` names the current
 * `ETag`, 405 for other methods.
 *
 * @param request The request (its method and `If-None-Match`).
 * @returns A new response.
 *
 * @example Serve it yourself
 * ```ts
 * import { clientScript } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const first = clientScript(new Request("http://localhost/duplex.js"));
 * assert.equal(first.status, 200);
 * assert.match(await first.text(), /\bas Client\b/);
 * const etag = first.headers.get("etag")!;
 * const again = clientScript(
 *   new Request("http://localhost/duplex.js", { headers: { "if-none-match": etag } }),
 * );
 * assert.equal(again.status, 304);
 * ```
 */
export function clientScript(request: Request): Response {
  if (request.method !== "GET" && request.method !== "HEAD") {
    return new Response("Method not allowed\n", {
      status: 405,
      headers: { allow: "GET, HEAD" },
    });
  }
  if (matches(request.headers.get("if-none-match"))) {
    return new Response(null, { status: 304, headers: HEADERS });
  }
  return new Response(request.method === "HEAD" ? null : CLIENT_BUNDLE, {
    headers: HEADERS,
  });
}
