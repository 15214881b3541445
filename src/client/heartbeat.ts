/**
 * Liveness of a connection through application-level pings, robust to the
 * timer throttling of background browser tabs.
 *
 * @module
 */

/**
 * What a {@linkcode Heartbeat} watches: a {@linkcode Peer} fits.
 *
 * @example Usage
 * ```ts
 * import type { Pingable } from "@duplex/ws/client";
 * import type { Peer } from "@duplex/ws";
 *
 * const watch = (peer: Peer): Pingable => peer;
 * ```
 */
export interface Pingable {
  /** Sends a ping that the other side answers. */
  ping(): void;
  /**
   * Counts of frames received (by type): any change proves that the other
   * side lives. Read only when a check runs, so that the heartbeat costs
   * nothing per message.
   */
  readonly stats: { readonly framesIn: readonly number[] };
}

/**
 * Options of a {@linkcode Heartbeat}.
 *
 * @example Usage
 * ```ts
 * import type { HeartbeatOptions } from "@duplex/ws/client";
 *
 * const options: HeartbeatOptions = { interval: 25_000, timeout: 10_000 };
 * ```
 */
export interface HeartbeatOptions {
  /**
   * Quiet time in milliseconds after which a ping is sent; 0 disables the
   * heartbeat.
   *
   * @default {25000}
   */
  interval?: number;
  /**
   * How long to wait for any message after a ping, in milliseconds, before
   * the connection is declared dead.
   *
   * @default {10000}
   */
  timeout?: number;
}

/**
 * Declares a connection dead when nothing at all arrived within `timeout`
 * after a ping. Any incoming message is a sign of life, so a busy connection
 * is never pinged: a check every `interval` looks at the frame counters, and
 * only a check that finds nothing new sends a ping. A dead connection is
 * detected at most `2 × interval + timeout` after its last message (frames
 * are counted when a check runs, not as they arrive, so that the heartbeat
 * costs nothing per message).
 *
 * The timer's lateness is measured, never assumed away. A check that runs
 * later than planned by more than `timeout` (a throttled or frozen
 * background tab) sends a fresh ping instead of declaring the connection
 * dead; {@linkcode Heartbeat.wake} does the same when the page becomes
 * visible again or the network comes back.
 *
 * @example Detect a silent peer
 * ```ts
 * import { Heartbeat } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const silent = { ping() {}, stats: { framesIn: [0] } };
 * const dead = Promise.withResolvers<void>();
 * using _heartbeat = new Heartbeat(silent, dead.resolve, { interval: 5, timeout: 5 });
 * await dead.promise;
 * assert.ok(true);
 * ```
 */
export class Heartbeat implements Disposable {
  #peer: Pingable;
  #onDead: () => void;
  #interval: number;
  #timeout: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** When the running timer was meant to fire. */
  #due = 0;
  /** Frames received, as counted at the last check. */
  #seen: number;
  /** Whether a ping is waiting for a sign of life. */
  #pinged = false;

  /**
   * Starts watching `peer`.
   *
   * @param peer The connection: a ping method and its frame counters.
   * @param onDead Called once when the connection is declared dead.
   * @param options The interval and the timeout.
   */
  constructor(
    peer: Pingable,
    onDead: () => void,
    options: HeartbeatOptions = {},
  ) {
    this.#peer = peer;
    this.#onDead = onDead;
    this.#interval = options.interval ?? 25_000;
    this.#timeout = options.timeout ?? 10_000;
    this.#seen = this.#count();
    if (this.#interval > 0) this.#schedule(this.#interval);
  }

  /**
   * Sends a ping now and gives the other side a full `timeout` to answer.
   * Call it when timers may have been throttled: the page became visible,
   * the device came back online.
   */
  wake(): void {
    if (this.#interval > 0) this.#ping();
  }

  /** Stops the timer. Idempotent. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#interval = 0;
  }

  /** Same as {@linkcode Heartbeat.stop}. */
  [Symbol.dispose](): void {
    this.stop();
  }

  #count(): number {
    let total = 0;
    for (const n of this.#peer.stats.framesIn) total += n;
    return total;
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#due = Date.now() + ms;
    this.#timer = setTimeout(this.#check, ms);
  }

  #ping(): void {
    this.#pinged = true;
    this.#peer.ping();
    this.#schedule(this.#timeout);
  }

  #check = (): void => {
    const count = this.#count();
    if (count !== this.#seen) {
      // Frames arrived since the last check (the pong, or anything else).
      this.#seen = count;
      this.#pinged = false;
      this.#schedule(this.#interval);
    } else if (!this.#pinged || Date.now() - this.#due > this.#timeout) {
      // Quiet for an interval, or the check ran far too late (a throttled
      // or frozen tab): ask, rather than blame the other side.
      this.#ping();
    } else {
      this.stop();
      this.#onDead();
    }
  };
}
