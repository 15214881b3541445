/**
 * {@linkcode ChunkQueue}: the receiving end of one stream (an async iterator
 * that grants credit as it is read). See `streams.ts`.
 *
 * @module
 */

import { DuplexError, RemoteError } from "../wire/errors.ts";
import type { ErrorPayload } from "../wire/protocol.ts";

/** The error a stream's other end sees when one end leaves it. */
export function cancelled(): DuplexError {
  return new DuplexError("CANCELLED", "Stream cancelled");
}

/**
 * The receiving end of one stream: buffers what arrives (never more than
 * granted), hands it to `for await`, and grants credit back as it is read,
 * in batches of half the window. It is its own iterator, written by hand
 * (not an async generator): one promise per chunk, and a chunk that finds
 * the reader waiting goes straight to it.
 */
export class ChunkQueue<T = unknown> implements AsyncIterableIterator<T> {
  #chunks: unknown[] = [];
  /** The waiting reader's `next()`, while nothing is buffered. */
  #resolve: ((result: IteratorResult<T, undefined>) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  #waiting: Promise<IteratorResult<T, undefined>> | undefined;
  #done = false;
  #error: unknown;
  #window: number;
  /** Granted and not arrived yet. */
  #credit: number;
  /** Read since the last grant. */
  #owed = 0;
  #grant: (credit: number) => void = () => {};
  #stop: (reason: unknown) => void;

  /**
   * @param window The chunks granted at first, and at most outstanding.
   * @param stop Tells the producer to stop (the reader left early).
   */
  constructor(window: number, stop: (reason: unknown) => void) {
    this.#window = this.#credit = window;
    this.#stop = stop;
  }

  /** Sets how credit is granted, once the stream has a sequence. */
  bind(grant: (credit: number) => void): void {
    this.#grant = grant;
  }

  /**
   * Whether the next chunk was asked for: credit for it is outstanding.
   *
   * @returns `true` while granted chunks have not all arrived.
   */
  asked(): boolean {
    return !this.#done && this.#credit > 0;
  }

  /** A chunk arrived; one beyond the credit fails the stream. */
  push(chunk: unknown): void {
    if (this.#done) return;
    if (--this.#credit < 0) {
      const error = new DuplexError(
        "INVALID_FRAME",
        "Cannot read stream: more chunks than granted",
      );
      this.#stop(error);
      return this.end(error);
    }
    this.#chunks.push(chunk);
    this.#wake();
  }

  /** A chunk (types 12, 14) or the end of an upload (type 15) arrived. */
  take(frame: { type: number; message?: unknown; error?: ErrorPayload }): void {
    if (frame.type !== 15) this.push(frame.message);
    else this.end(frame.error && new RemoteError(frame.error));
  }

  /**
   * Ends the stream, with an error or not, after a `last` chunk unless it is
   * `undefined` (a plain result). Idempotent.
   */
  end(error?: unknown, last?: unknown): void {
    if (this.#done) return;
    if (last !== undefined && error === undefined) this.#chunks.push(last);
    this.#done = true;
    this.#error = error;
    this.#wake();
  }

  /**
   * The next chunk, once it arrived; the stream's error once it ends with
   * one, after the chunks before it.
   *
   * @returns The next result.
   */
  next(): Promise<IteratorResult<T, undefined>> {
    if (this.#waiting !== undefined) {
      // Two reads at once (not a `for await`): one after the other.
      const next = () => this.next();
      return this.#waiting.then(next, next);
    }
    if (this.#chunks.length === 0 && !this.#done) {
      return this.#waiting = new Promise((resolve, reject) => {
        this.#resolve = resolve;
        this.#reject = reject;
      });
    }
    try {
      return Promise.resolve(this.#read());
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Leaves the stream (`break` in the loop): the producer stops.
   *
   * @returns The end of the iteration.
   */
  return(): Promise<IteratorResult<T, undefined>> {
    this.#leave();
    this.#wake();
    return Promise.resolve({ value: undefined, done: true });
  }

  /**
   * The chunks as they arrive; leaving the loop early stops the producer.
   *
   * @returns The queue itself.
   */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** Hands the next result to a waiting reader. */
  #wake(): void {
    const resolve = this.#resolve;
    if (resolve === undefined) return;
    const reject = this.#reject!;
    this.#resolve = this.#reject = this.#waiting = undefined;
    try {
      resolve(this.#read());
    } catch (error) {
      reject(error);
    }
  }

  /** The next chunk (granting credit as it goes), or the end: it throws. */
  #read(): IteratorResult<T, undefined> {
    const chunks = this.#chunks;
    if (chunks.length) {
      if (!this.#done && ++this.#owed * 2 >= this.#window) {
        this.#credit += this.#owed;
        this.#grant(this.#owed);
        this.#owed = 0;
      }
      return { value: chunks.shift() as T, done: false };
    }
    const error = this.#error;
    this.#error = undefined;
    this.#leave();
    if (error !== undefined) throw error;
    return { value: undefined, done: true };
  }

  /** The reader is gone: nothing more is kept, the producer stops. */
  #leave(): void {
    this.#chunks.length = 0;
    if (this.#done) return;
    this.#done = true;
    this.#stop(cancelled());
  }
}
