/**
 * Refusing an upgrade in a way a browser can see: the WebSocket API hides
 * the HTTP status of a refused handshake (it looks like a network failure,
 * close code 1006), so with the server's `refusals: "close"` option the
 * upgrade is accepted and the socket closed at once with a code and reason
 * that say why.
 *
 * @module
 */

import { SUBPROTOCOL } from "../wire/protocol.ts";
import { offeredProtocols } from "./auth.ts";

/** Close reasons are at most 123 bytes of UTF-8. */
const MAX_REASON_BYTES = 123;

/**
 * The close code that reports an HTTP refusal: 4001 for 401, 4003 for 403
 * (both stop the client's reconnection), otherwise 4000 + the status
 * (4400, 4429, 4503...).
 *
 * @param status The HTTP status of the refusal.
 * @returns The close code.
 *
 * @example Usage
 * ```ts
 * import { refusalCloseCode } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(refusalCloseCode(401), 4001);
 * assert.equal(refusalCloseCode(503), 4503);
 * ```
 */
export function refusalCloseCode(status: number): number {
  if (status === 401 || status === 403) return 4000 + status - 400;
  return status >= 400 && status <= 999 ? 4000 + status : 4000;
}

function shorten(reason: string): string {
  const encoder = new TextEncoder();
  let text = reason.replace(/\s+/g, " ").trim();
  while (encoder.encode(text).byteLength > MAX_REASON_BYTES) {
    text = text.slice(0, -1);
  }
  return text;
}

/**
 * Turns a refusal into an accepted WebSocket that closes at once with
 * {@linkcode refusalCloseCode} and the refusal's text as the reason.
 *
 * @param request The upgrade request.
 * @param refusal The refusal the checks produced.
 * @returns The 101 response, or the refusal when the request cannot be
 * upgraded.
 */
export async function refuseByClosing(
  request: Request,
  refusal: Response,
): Promise<Response> {
  const reason = shorten(await refusal.text());
  // Read before the upgrade, after which the request's headers are gone.
  const extended = offeredProtocols(request).includes(SUBPROTOCOL);
  let upgraded: { socket: WebSocket; response: Response };
  try {
    // The subprotocol is answered here (as in the upgrade path): Deno's own
    // check refuses "duplex.v1,duplex.auth.x".
    upgraded = Deno.upgradeWebSocket(request);
    if (extended) {
      upgraded.response.headers.set("sec-websocket-protocol", SUBPROTOCOL);
    }
  } catch {
    return new Response(reason, {
      status: refusal.status,
      headers: refusal.headers,
    });
  }
  const { socket, response } = upgraded;
  socket.addEventListener(
    "open",
    () => socket.close(refusalCloseCode(refusal.status), reason),
    { once: true },
  );
  return response;
}
