/**
 * The bounded queue that holds requests and notifications while the client
 * is disconnected.
 *
 * @module
 */

import { QueueFullError, QueueTimeoutError } from "./errors.ts";

/**
 * Options of an {@linkcode OfflineQueue}.
 *
 * @example Usage
 * ```ts
 * import type { OfflineQueueOptions } from "@duplex/ws/client";
 *
 * const options: OfflineQueueOptions = { maxSize: 10, maxWait: 5_000 };
 * ```
 */
export interface OfflineQueueOptions {
  /**
   * The most items waiting at once; `push()` beyond it throws
   * {@linkcode QueueFullError}.
   *
   * @default {100}
   */
  maxSize?: number;
  /**
   * How long an item may wait, in milliseconds, before it expires with
   * {@linkcode QueueTimeoutError}; 0 (or `Infinity`) disables expiry.
   *
   * @default {10000}
   */
  maxWait?: number;
}

/**
 * A first-in first-out queue with a size bound and a maximum wait. Items
 * that wait too long are removed and handed to the `onExpire` callback with
 * a {@linkcode QueueTimeoutError}. One timer follows the oldest item
 * (deadlines grow in insertion order), and deadlines are timestamps, so a
 * late timer expires everything that is due at once.
 *
 * @typeParam T The item type.
 *
 * @example Queue, expire and drain
 * ```ts
 * import { OfflineQueue, QueueFullError } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const expired: string[] = [];
 * using queue = new OfflineQueue<string>((item) => expired.push(item), {
 *   maxSize: 2,
 *   maxWait: 1_000,
 * });
 * queue.push("a");
 * queue.push("b");
 * assert.throws(() => queue.push("c"), QueueFullError);
 * assert.deepEqual(queue.drain(), ["a", "b"]);
 * assert.equal(queue.size, 0);
 * ```
 */
export class OfflineQueue<T> implements Disposable {
  /** The items, oldest first. */
  #items: T[] = [];
  /** When each item expires, in the same order (growing). */
  #deadlines: number[] = [];
  #onExpire: (item: T, error: QueueTimeoutError) => void;
  #maxSize: number;
  #maxWait: number;
  #timer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Creates an empty queue.
   *
   * @param onExpire Receives each item that waited longer than `maxWait`.
   * @param options The size bound and the maximum wait.
   */
  constructor(
    onExpire: (item: T, error: QueueTimeoutError) => void,
    options: OfflineQueueOptions = {},
  ) {
    this.#onExpire = onExpire;
    this.#maxSize = options.maxSize ?? 100;
    this.#maxWait = options.maxWait ?? 10_000;
  }

  /** The number of items waiting. */
  get size(): number {
    return this.#items.length;
  }

  /**
   * Appends an item.
   *
   * @param item The item.
   * @throws {QueueFullError} When `maxSize` items already wait.
   */
  push(item: T): void {
    if (this.#items.length >= this.#maxSize) {
      throw new QueueFullError(this.#maxSize);
    }
    this.#items.push(item);
    this.#deadlines.push(Date.now() + this.#maxWait);
    if (this.#items.length === 1) this.#arm();
  }

  /**
   * Removes an item, e.g. when its caller gave up.
   *
   * @param item The item.
   * @returns `true` when it was waiting.
   */
  delete(item: T): boolean {
    const index = this.#items.indexOf(item);
    if (index < 0) return false;
    this.#splice(index, 1);
    return true;
  }

  /**
   * Removes every item and returns them in insertion order.
   *
   * @returns The items.
   */
  drain(): T[] {
    return this.#splice(0, Infinity);
  }

  /** Stops the timer and forgets every item (without calling `onExpire`). */
  [Symbol.dispose](): void {
    this.drain();
  }

  /** Removes items and re-arms the timer for the new oldest one. */
  #splice(start: number, count: number): T[] {
    const items = this.#items.splice(start, count);
    this.#deadlines.splice(start, count);
    this.#arm();
    return items;
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const deadline = this.#deadlines[0];
    if (deadline !== undefined && this.#maxWait > 0) {
      // Clamped: timers overflow above 2^31 - 1 ms (e.g. maxWait Infinity).
      this.#timer = setTimeout(() => {
        const now = Date.now();
        let count = 0;
        while (this.#deadlines[count] <= now) count++;
        for (const item of this.#splice(0, count)) {
          this.#onExpire(item, new QueueTimeoutError(this.#maxWait));
        }
      }, Math.min(0x7fffffff, deadline - Date.now()));
    }
  }
}
