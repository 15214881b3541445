/**
 * Reconnection delays: exponential backoff with full jitter and a cap.
 *
 * @module
 */

/**
 * Options of {@linkcode backoffDelay}.
 *
 * @example Usage
 * ```ts
 * import type { BackoffOptions } from "@duplex/ws/client";
 *
 * const options: BackoffOptions = { minDelay: 500, maxDelay: 10_000, factor: 2 };
 * ```
 */
export interface BackoffOptions {
  /**
   * The ceiling of the first delay, in milliseconds.
   *
   * @default {1000}
   */
  minDelay?: number;
  /**
   * The cap: no delay is longer, in milliseconds.
   *
   * @default {30000}
   */
  maxDelay?: number;
  /**
   * How much the ceiling grows with each attempt.
   *
   * @default {2}
   */
  factor?: number;
  /**
   * The source of randomness, returning a number in [0, 1). Inject a fixed
   * function for deterministic tests.
   *
   * @default {Math.random}
   */
  random?: () => number;
}

/**
 * Returns the delay before a reconnection attempt, with full jitter: a
 * random value between 0 and `min(maxDelay, minDelay * factor ** attempt)`.
 * Full jitter spreads the clients of a restarted server over the whole
 * window instead of bringing them back in waves.
 *
 * @param attempt How many attempts were made since the last reset: 0 for
 * the first retry.
 * @param options The delays and the source of randomness.
 * @returns The delay in milliseconds.
 * @throws {RangeError} When `attempt` is negative.
 *
 * @example Bounds of each attempt
 * ```ts
 * import { backoffDelay } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const highest = { minDelay: 100, maxDelay: 1_000, random: () => 0.999 };
 * assert.ok(backoffDelay(0, highest) < 100);
 * assert.ok(backoffDelay(3, highest) < 800);
 * assert.ok(backoffDelay(10, highest) < 1_000);
 * assert.equal(backoffDelay(10, { random: () => 0 }), 0);
 * ```
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
): number {
  if (!(attempt >= 0)) {
    throw new RangeError(
      `Cannot compute backoff: invalid attempt ${attempt}`,
    );
  }
  const { minDelay = 1_000, maxDelay = 30_000, factor = 2 } = options;
  return (options.random ?? Math.random)() *
    Math.min(maxDelay, minDelay * factor ** attempt);
}
