/**
 * How a {@linkcode Peer} is configured ({@linkcode PeerOptions}), how one
 * outgoing request is ({@linkcode RequestOptions}), and what a peer reports:
 * its events ({@linkcode PeerEventMap}) and counters ({@linkcode PeerStats}).
 *
 * @module
 */

import type { Codec } from "../wire/codec.ts";
import type { PeerGuard } from "./peer_guard.ts";
import type { Registry } from "./receiver.ts";
import type { StreamSupport } from "./stream_support.ts";
import type { TimeoutsFactory } from "./pending_requests.ts";

/**
 * Options of one outgoing request.
 *
 * @example Usage
 * ```ts
 * import type { RequestOptions } from "@duplex/ws";
 *
 * const options: RequestOptions = { timeout: 2_000, signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface RequestOptions {
  /**
   * Timeout in milliseconds; 0 disables it.
   *
   * @default {the peer's timeout}
   */
  timeout?: number;
  /**
   * Aborting it rejects the request with `signal.reason` and sends a cancel
   * frame, which aborts the handler's signal on the other side.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options of a {@linkcode Peer}.
 *
 * @example Usage
 * ```ts
 * import type { PeerOptions } from "@duplex/ws";
 *
 * const options: PeerOptions = { timeout: 10_000, maxPending: 1_000 };
 * ```
 */
export interface PeerOptions {
  /**
   * Called once when the connection closes, before the `close` event. A
   * cheaper alternative to a `close` listener for code that owns many peers
   * (the server): it costs no listener registration per connection.
   *
   * @default {undefined}
   */
  onClose?: (code: number, reason: string) => void;
  /**
   * Called with every error that the `error` event reports (a handler or
   * listener that threw, or a frame that broke the protocol).
   *
   * @default {undefined}
   */
  onError?: (error: unknown) => void;
  /**
   * Encodes and decodes frames.
   *
   * @default {jsonCodec}
   */
  codec?: Codec;
  /**
   * Default timeout of outgoing requests, in milliseconds; 0 disables it.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * The most outgoing requests pending at once.
   *
   * @default {100000}
   */
  maxPending?: number;
  /**
   * Malformed frames tolerated within `malformedWindow`: one more closes the
   * connection with 1002. Only recent ones count, so that a long-lived
   * connection is not closed for rare mistakes spread over hours.
   *
   * @default {10}
   */
  maxMalformed?: number;
  /**
   * The window, in milliseconds, in which `maxMalformed` counts malformed
   * frames.
   *
   * @default {60000}
   */
  malformedWindow?: number;
  /**
   * The subprotocol the handshake selected, for sockets that do not report
   * it: a socket of `Deno.upgradeWebSocket` reports `""` whatever the
   * server selected. Extensions of this side that need the other side's
   * consent (the closing frame) are sent only with `"duplex.v1"`.
   *
   * @default {socket.protocol}
   */
  protocol?: string;
  /**
   * The other side speaks only the original protocol (it did not select
   * `duplex.v1`; the {@linkcode Client} sets this from the handshake). Then
   * this side sends only original frames: no cancels and no pings;
   * requests with a method or a non-string message, notifications and
   * `ping()` throw an {@linkcode OriginalProtocolError}; a missing
   * `message` of a response or notification reads as `""`.
   *
   * @default {false}
   */
  original?: boolean;
  /**
   * Read batch frames (type 11: several frames in one message, see
   * PROTOCOL.md "Batches"). Set by the {@linkcode Client}, which offers
   * the capability; a peer that did not offer it takes a batch for a
   * malformed frame.
   *
   * @default {false}
   */
  batches?: boolean;
  /**
   * Limits on incoming and outgoing traffic, e.g. a
   * {@linkcode PeerLimits} (message size, rate, requests in flight,
   * backpressure).
   *
   * @default {undefined}
   */
  guard?: PeerGuard;
  /**
   * The remote side's identity as this side knows it (the server's user id).
   * When set it is the `from` of every incoming request and notification,
   * whatever the frame says.
   *
   * @default {undefined}
   */
  identity?: string;
  /**
   * Shared handler registry; several peers may share one (the client keeps
   * its handlers across reconnects, the server across connections).
   *
   * @default {a new registry}
   */
  registry?: Registry;
  /**
   * Stream support: {@linkcode streams}, imported from `@duplex/ws` or
   * `@duplex/ws/client`. It makes `stream()`, stream uploads and streamed
   * results work; without it they are refused with a `STREAMS_UNSUPPORTED`
   * error (an app that never streams ships less code). The server's peers
   * always have it.
   *
   * @default {undefined}
   */
  streams?: StreamSupport;
  /**
   * How the timeouts of pending requests are kept: by default one timer for
   * all, set for the earliest deadline, which sweeps them when it fires;
   * {@linkcode timeoutLists} does it in O(1) per request, for a peer with
   * very many pending requests (the server's peers use it).
   *
   * @default {one timer, swept when it fires}
   */
  timeouts?: TimeoutsFactory;
}

/**
 * The events of a {@linkcode Peer}.
 *
 * @example Usage
 * ```ts
 * import type { PeerEventMap } from "@duplex/ws";
 *
 * const onClose = (event: PeerEventMap["close"]) => console.log(event.code);
 * ```
 */
export interface PeerEventMap {
  /** The connection closed; `code` and `reason` say why. */
  close: CloseEvent;
  /** A handler or listener threw, or a frame broke the protocol. */
  error: ErrorEvent;
}

/**
 * Per-peer counters, for metrics.
 *
 * @example Usage
 * ```ts
 * import type { PeerStats } from "@duplex/ws";
 *
 * const received = (stats: PeerStats) => stats.framesIn.reduce((a, b) => a + b, 0);
 * ```
 */
export interface PeerStats {
  /** Frames received, by type (index = type). */
  readonly framesIn: number[];
  /** Frames sent, by type (index = type). */
  readonly framesOut: number[];
  /** Malformed frames received. */
  malformed: number;
  /** Notifications dropped by backpressure (counted by the guard). */
  dropped: number;
  /** Frames refused by the rate limit (counted by the guard). */
  rateLimited: number;
  /** Responses that matched no pending request. */
  unexpected: number;
}

/** Zeroed counters of a new peer. Internal. */
export function peerStats(): PeerStats {
  return {
    framesIn: new Array(18).fill(0),
    framesOut: new Array(18).fill(0),
    malformed: 0,
    dropped: 0,
    rateLimited: 0,
    unexpected: 0,
  };
}
