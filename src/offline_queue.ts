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

interface Entry<T> {
  item: T;
  deadline: number;
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
  #entries: Entry<T>[] = [];
  #onExpire: (item: T, error: QueueTimeoutError) => void;
  #maxSize: number;
  #maxWait: number;
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;

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
    return this.#entries.length;
  }

  /**
   * Appends an item.
   *
   * @param item The item.
   * @throws {QueueFullError} When `maxSize` items already wait.
   */
  push(item: T): void {
    if (this.#entries.length >= this.#maxSize) {
      throw new QueueFullError(this.#maxSize);
    }
    this.#entries.push({ item, deadline: Date.now() + this.#maxWait });
    if (this.#entries.length === 1) this.#arm();
  }

  /**
   * Removes an item, e.g. when its caller gave up.
   *
   * @param item The item.
   * @returns `true` when it was waiting.
   */
  delete(item: T): boolean {
    const index = this.#entries.findIndex((entry) => entry.item === item);
    if (index < 0) return false;
    this.#entries.splice(index, 1);
    if (index === 0) this.#arm();
    return true;
  }

  /**
   * Removes every item and returns them in insertion order.
   *
   * @returns The items.
   */
  drain(): T[] {
    const entries = this.#entries;
    this.#entries = [];
    this.#arm();
    return entries.map((entry) => entry.item);
  }

  /** Stops the timer and forgets every item (without calling `onExpire`). */
  [Symbol.dispose](): void {
    this.drain();
  }

  #arm(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const head = this.#entries[0];
    if (head !== undefined && this.#maxWait > 0) {
      this.#timer = setTimeout(
        () => this.#expire(),
        // Clamped: timers overflow above 2^31 - 1 ms (e.g. maxWait Infinity).
        Math.min(0x7fffffff, Math.max(0, head.deadline - Date.now())),
      );
    }
  }

  #expire(): void {
    const now = Date.now();
    const entries = this.#entries;
    let count = 0;
    while (count < entries.length && entries[count].deadline <= now) count++;
    const expired = entries.splice(0, count);
    this.#arm();
    for (const entry of expired) {
      this.#onExpire(entry.item, new QueueTimeoutError(this.#maxWait));
    }
  }
}
