/**
 * The per-connection limits a {@linkcode PeerGuard} enforces on what the
 * other side sends (message size, rate, requests in flight) and on what it is
 * sent (backpressure). Runtime-neutral, so it lives with the Peer; the server
 * gives each connection one, and the browser client never imports it.
 *
 * @module
 */

import type { BackpressurePolicy, Endpoint, Peer, PeerGuard } from "./peer.ts";
import type { ErrorPayload } from "../wire/protocol.ts";
import { frameBytes } from "../wire/frame_bytes.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limiter.ts";

export type { BackpressurePolicy };

/**
 * Options of {@linkcode PeerLimits}.
 *
 * @example Usage
 * ```ts
 * import type { PeerLimitsOptions } from "@duplex/ws";
 *
 * const options: PeerLimitsOptions = { maxInFlight: 64, rateLimit: { rate: 50 } };
 * ```
 */
export interface PeerLimitsOptions {
  /**
   * The most incoming requests whose handlers are running at once; beyond
   * it requests get a `TOO_MANY_REQUESTS` error response.
   *
   * @default {Infinity}
   */
  maxInFlight?: number;
  /**
   * The largest incoming message in bytes; a larger one closes the
   * connection with 1009.
   *
   * @default {Infinity}
   */
  maxMessageSize?: number;
  /**
   * Token bucket for incoming frames, and optionally a second one for their
   * bytes. A frame over either is refused (requests get a `RATE_LIMITED`
   * error response, notifications and pings are dropped); `maxViolations`
   * refusals in a row close the connection with 1008.
   *
   * @default {undefined}
   */
  rateLimit?: RateLimitOptions & {
    /**
     * Refusals in a row before the connection is closed.
     *
     * @default {50}
     */
    maxViolations?: number;
    /**
     * Incoming bytes per second (binary bytes, or UTF-16 units of a text
     * message: its UTF-8 size for ASCII, at least a third of it otherwise);
     * unlimited when not set.
     *
     * @default {undefined}
     */
    bytesPerSecond?: number;
    /**
     * Bytes that may arrive at once; a larger message is always refused.
     *
     * @default {bytesPerSecond}
     */
    burstBytes?: number;
  };
  /**
   * Send-buffer size in bytes above which notifications are subject to
   * `backpressure`.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
  /**
   * What to do with notifications above the high-water mark.
   *
   * @default {"drop"}
   */
  backpressure?: BackpressurePolicy;
}

const RATE_LIMITED: ErrorPayload = {
  code: "RATE_LIMITED",
  message: "Too many messages: slow down",
};

/**
 * The limits of one connection, as a {@linkcode PeerGuard}: give each
 * server-side {@linkcode Peer} its own (the rate limit's bucket is per
 * connection). Refusals are counted in the peer's `stats` (`rateLimited`,
 * `dropped`).
 *
 * @example A peer whose handlers run at most 8 at a time
 * ```ts
 * import { Peer, PeerLimits, type SocketLike } from "@duplex/ws";
 *
 * const accept = (socket: SocketLike) =>
 *   new Peer(socket, { guard: new PeerLimits({ maxInFlight: 8, maxMessageSize: 65_536 }) });
 * ```
 */
export class PeerLimits implements PeerGuard {
  #maxInFlight: number;
  #maxMessageSize: number;
  #limiter: RateLimiter | undefined;
  #bytes: RateLimiter | undefined;
  #maxViolations: number;
  #violations = 0;
  #highWaterMark: number;
  #closeOnBackpressure: boolean;

  /**
   * Creates the limits of one connection.
   *
   * @param options The limits; none by default.
   * @throws {RangeError} When the rate limit is invalid.
   */
  constructor(options: PeerLimitsOptions = {}) {
    const rateLimit = options.rateLimit;
    this.#maxInFlight = options.maxInFlight ?? Infinity;
    this.#maxMessageSize = options.maxMessageSize ?? Infinity;
    this.#limiter = rateLimit ? new RateLimiter(rateLimit) : undefined;
    const bytesPerSecond = rateLimit?.bytesPerSecond;
    this.#bytes = bytesPerSecond === undefined ? undefined : new RateLimiter({
      rate: bytesPerSecond,
      burst: rateLimit?.burstBytes ?? bytesPerSecond,
    });
    this.#maxViolations = rateLimit?.maxViolations ?? 50;
    this.#highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.#closeOnBackpressure = options.backpressure === "close";
  }

  /**
   * Closes the peer with 1009 for a message over `maxMessageSize`, refuses
   * a message over the rate limit (frames or bytes), and closes with 1008 after
   * `maxViolations` refusals in a row. A message this side asked for (a
   * stream chunk within the credit it granted: `asked`) is subject to the
   * size limit only.
   *
   * @param peer The peer that received the message.
   * @param data The message as received.
   * @param asked `true` to check only the size (see {@linkcode PeerGuard}).
   * @returns `false` when the peer was closed, `RATE_LIMITED` when refused.
   */
  inbound(
    peer: Peer<Endpoint, Endpoint>,
    data: unknown,
    asked: boolean = false,
  ): ErrorPayload | false | undefined {
    const size = this.#size(data);
    if (size < 0) return this.#close(peer, 1009, "Message too big");
    if (asked) return undefined;
    const limiter = this.#limiter;
    const bytes = this.#bytes;
    if (
      (limiter === undefined || limiter.take()) &&
      (bytes === undefined || bytes.take(size))
    ) {
      this.#violations = 0;
      return undefined;
    }
    peer.stats.rateLimited++;
    if (++this.#violations > this.#maxViolations) {
      return this.#close(peer, 1008, "Rate limit exceeded");
    }
    return RATE_LIMITED;
  }

  /** The size a message counts for, or -1 when over `maxMessageSize`. */
  #size(data: unknown): number {
    const max = this.#maxMessageSize;
    let size: number;
    if (typeof data === "string") {
      size = data.length;
      // Up to three UTF-8 bytes per UTF-16 unit: count exactly only when
      // the length alone does not decide.
      if (
        data.length > max ||
        data.length > max / 3 &&
          new TextEncoder().encode(data).byteLength > max
      ) {
        return -1;
      }
    } else if ((size = frameBytes.size(data as object)) > max) {
      return -1;
    }
    return size;
  }

  /**
   * Refuses a request when `maxInFlight` handlers are running.
   *
   * @param peer The peer that received the request.
   * @returns `TOO_MANY_REQUESTS`, or `undefined` to handle it.
   */
  admit(peer: Peer<Endpoint, Endpoint>): ErrorPayload | undefined {
    const max = this.#maxInFlight;
    if (peer.inFlight < max) return undefined;
    return {
      code: "TOO_MANY_REQUESTS",
      message: `Cannot handle request: ${max} already in flight`,
    };
  }

  /**
   * Applies the backpressure policy when the send buffer is over the
   * high-water mark: drops the notification (counted), and with `"close"`
   * closes the peer with 1013.
   *
   * @param peer The peer about to send a notification.
   * @returns `true` to send it.
   */
  outbound(peer: Peer<Endpoint, Endpoint>): boolean {
    if (peer.socket.bufferedAmount <= this.#highWaterMark) return true;
    peer.stats.dropped++;
    if (this.#closeOnBackpressure) {
      peer.close(1013, "Too slow: send buffer full");
    }
    return false;
  }

  #close(
    peer: Peer<Endpoint, Endpoint>,
    code: number,
    reason: string,
  ): false {
    peer.closeWithReason(code, reason);
    return false;
  }
}
