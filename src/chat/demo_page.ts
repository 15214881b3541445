/**
 * The demo chat page served at `GET /` by the chat server; it loads the
 * browser bundle of `client.ts` from `GET /client.js`. The page makes
 * no other request; its content security policy forbids any other origin,
 * and every string that comes from a user is inserted as text, never as
 * HTML.
 *
 * @module
 */

import { demoHtml } from "./demo_html.ts";

/**
 * The demo chat page: pick a name, Open and Close, send with Enter, see who
 * is online, the connection state with a reconnect countdown, and the
 * round-trip time of each of your messages. It runs the real client,
 * loaded from `/client.js`, where the chat server serves the client (its
 * `clientPath` option).
 *
 * @returns A new 200 HTML response with a strict content security policy
 * (a fresh script nonce each time).
 *
 * @example Usage
 * ```ts
 * import { demoPage } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const response = demoPage();
 * assert.equal(response.headers.get("content-type"), "text/html; charset=utf-8");
 * assert.match(await response.text(), /<title>Duplex chat<\/title>/);
 * ```
 */
export function demoPage(): Response {
  const nonce = crypto.randomUUID().replaceAll("-", "");
  return new Response(demoHtml(nonce), {
    headers: {
      "content-type": "text/html; charset=utf-8",
      "cache-control": "no-store",
      "content-security-policy": [
        "default-src 'none'",
        `script-src 'self' 'nonce-${nonce}'`,
        "style-src 'unsafe-inline'",
        "img-src data: blob:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
      ].join("; "),
      "referrer-policy": "no-referrer",
      "x-content-type-options": "nosniff",
    },
  });
}
