/**
 * {@linkcode PeerGuard}: the seam through which a policy (the server's
 * limits) screens the traffic of one peer, and the
 * {@linkcode BackpressurePolicy} such a policy applies.
 *
 * @module
 */

import type { ErrorPayload } from "../wire/protocol.ts";
import type { Endpoint } from "./endpoint.ts";
import type { Peer } from "./peer.ts";

/**
 * What a peer does with notifications when the socket's send buffer is over
 * its high-water mark: `"drop"` them (counted) or `"close"` the connection
 * with 1013. Responses and requests are never dropped.
 *
 * @example Usage
 * ```ts
 * import type { BackpressurePolicy } from "@duplex/ws";
 *
 * const policy: BackpressurePolicy = "drop";
 * ```
 */
export type BackpressurePolicy = "drop" | "close";

/**
 * A policy for the traffic of one connection, consulted by its
 * {@linkcode Peer}: the server gives each connection a
 * {@linkcode PeerLimits} (size, rate, in-flight and backpressure limits);
 * a peer without a guard accepts everything.
 *
 * @example A guard that refuses every request
 * ```ts
 * import type { PeerGuard } from "@duplex/ws";
 *
 * const readOnly: PeerGuard = {
 *   inbound: () => undefined,
 *   admit: () => ({ code: "FORBIDDEN", message: "Cannot handle request: read-only" }),
 *   outbound: () => true,
 * };
 * ```
 */
export interface PeerGuard {
  /**
   * Screens one incoming message before it is decoded. It may close the
   * peer.
   *
   * While streams are open, a message may be one this side asked for: a
   * stream chunk it granted credit for, or credit for chunks it sent. The
   * peer then screens it twice: first with `asked` set, before decoding
   * (apply only what every message is subject to, such as its size), then,
   * unless it was asked for, again without `asked`, after decoding.
   *
   * @param peer The peer that received it.
   * @param data The message as received.
   * @param asked `true` for the first screening of a message that may have
   * been asked for: rate limits do not apply to it.
   * @returns `undefined` to accept the message; `false` to ignore it; an
   * error to refuse it: a request gets it as its error response,
   * notifications and pings are dropped, responses and cancels are still
   * processed.
   */
  inbound(
    peer: Peer<Endpoint, Endpoint>,
    data: unknown,
    asked?: boolean,
  ): ErrorPayload | false | undefined;
  /**
   * Decides whether an incoming request may start its handler now.
   *
   * @param peer The peer that received it.
   * @returns `undefined` to handle it, or the error to answer with.
   */
  admit(peer: Peer<Endpoint, Endpoint>): ErrorPayload | undefined;
  /**
   * Decides whether a notification may be sent now. It may close the peer.
   *
   * @param peer The peer about to send it.
   * @returns `false` to drop it.
   */
  outbound(peer: Peer<Endpoint, Endpoint>): boolean;
}
