/**
 * The client's side of the subprotocol negotiation: what it offers
 * ({@linkcode offer}) and what the server's choice means
 * ({@linkcode selection}): `duplex.v1`, a session (`duplex.session`), a
 * codec (`duplex.v1.bin`), or both (`duplex.session.bin`).
 *
 * @module
 */

import { NAGLE_CAPABILITY, SUBPROTOCOL } from "../wire/protocol.ts";
import { SESSION_PROTOCOL } from "../wire/session_frames.ts";
import { BATCH_CAPABILITY } from "../wire/batch.ts";

/** What the server selected. */
export interface Selection {
  /** The client's codec is in use (else JSON). */
  coded: boolean;
  /** A session was granted. */
  session: boolean;
  /** The server speaks only the original protocol. */
  original: boolean;
  /** The protocol to report: `duplex.v1`, the codec's, or `""`. */
  protocol: string;
}

/** The session protocol of a codec: `duplex.session` plus its suffix. */
function sessionOf(codec: string | undefined): string {
  return SESSION_PROTOCOL + (codec?.slice(SUBPROTOCOL.length) ?? "");
}

/**
 * The subprotocols to offer, most wanted first.
 *
 * @param codec The codec's subprotocol (`duplex.v1.bin`), if any.
 * @param session Whether to ask for a session.
 * @param extra The application's (e.g. `duplex.auth.<token>`).
 * @param nagle Whether to offer `duplex.nagle` (default: in Deno, whose
 *   WebSocket client leaves Nagle's algorithm on).
 * @returns The list for the WebSocket constructor.
 */
export function offer(
  codec: string | undefined,
  session: boolean,
  extra: string[],
  nagle: boolean = typeof (globalThis as { Deno?: unknown }).Deno === "object",
): string[] {
  const offered = session ? [SUBPROTOCOL, SESSION_PROTOCOL] : [SUBPROTOCOL];
  if (codec) offered.unshift(codec, ...(session ? [sessionOf(codec)] : []));
  // Capabilities, never selected. duplex.batch: this client reads batch
  // frames; duplex.nagle: its writes wait for TCP acknowledgements, so the
  // server answers every burst of its frames (PROTOCOL.md "Nagle answers").
  offered.push(BATCH_CAPABILITY);
  if (nagle) offered.push(NAGLE_CAPABILITY);
  return [...offered, ...extra];
}

/**
 * What the server's selection means.
 *
 * @param chosen The socket's `protocol`.
 * @param codec The codec's subprotocol the client offered, if any.
 * @param session Whether the client asked for a session.
 * @returns The selection.
 */
export function selection(
  chosen: string,
  codec: string | undefined,
  session: boolean,
): Selection {
  const codedSession = !!codec && session && chosen === sessionOf(codec);
  const coded = codedSession || (!!codec && chosen === codec);
  const granted = session && (chosen === SESSION_PROTOCOL || codedSession);
  return {
    coded,
    session: granted,
    original: !granted && !coded && chosen !== SUBPROTOCOL,
    protocol: coded ? codec! : granted ? SUBPROTOCOL : chosen,
  };
}
