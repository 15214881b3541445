/**
 * A token bucket: no timer, refilled lazily from the clock on each take.
 *
 * @module
 */

/**
 * Options of a {@linkcode RateLimiter}.
 *
 * @example Usage
 * ```ts
 * import type { RateLimitOptions } from "@duplex/ws";
 *
 * const limit: RateLimitOptions = { rate: 100, burst: 200 };
 * ```
 */
export interface RateLimitOptions {
  /** Tokens added per second (sustained frames per second). */
  rate: number;
  /**
   * Bucket size: how many frames may arrive at once.
   *
   * @default {rate}
   */
  burst?: number;
}

/**
 * A token bucket refilled from `performance.now()` on each take.
 *
 * @example Usage
 * ```ts
 * import { RateLimiter } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const limiter = new RateLimiter({ rate: 1, burst: 2 });
 * assert.ok(limiter.take());
 * assert.ok(limiter.take());
 * assert.equal(limiter.take(), false);
 * ```
 *
 * @example A byte budget: take a message's size
 * ```ts
 * import { RateLimiter } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const bytes = new RateLimiter({ rate: 1024, burst: 4096 });
 * assert.ok(bytes.take(3000));
 * assert.equal(bytes.take(3000), false);
 * ```
 */
export class RateLimiter {
  #rate: number;
  #burst: number;
  #tokens: number;
  #last: number;

  /**
   * Creates a full bucket.
   *
   * @param options Rate and burst.
   * @throws {RangeError} When `rate` or `burst` is not positive.
   */
  constructor(options: RateLimitOptions) {
    const { rate, burst = rate } = options;
    if (!(rate > 0) || !(burst >= 1)) {
      throw new RangeError(
        `Cannot create rate limiter: rate and burst must be positive, got ${rate} and ${burst}`,
      );
    }
    this.#rate = rate / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = performance.now();
  }

  /**
   * Takes `count` tokens (one frame, or a message's bytes), or none.
   *
   * @param count How many tokens.
   * @returns `true` when that many were available (and taken).
   */
  take(count: number = 1): boolean {
    const now = performance.now();
    const tokens = Math.min(
      this.#burst,
      this.#tokens + (now - this.#last) * this.#rate,
    );
    this.#last = now;
    if (tokens < count) {
      this.#tokens = tokens;
      return false;
    }
    this.#tokens = tokens - count;
    return true;
  }
}
