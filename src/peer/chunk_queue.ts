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
 * The most chunks an adaptive window grows to (small chunks): what a sender
 * can make the reader hold is this many chunks of the largest size allowed
 * (granted credit cannot be taken back when larger chunks follow).
 */
const MAX_WINDOW = 32;
/** The fewest chunks an adaptive window shrinks to (large chunks). */
const MIN_WINDOW = 4;
/**
 * The largest credit batch, in chunks (a window's half up to here): credit
 * in small batches keeps the window nearly full, so an uploader on a loaded
 * machine stalls less (16 cost the client a fifth more CPU per GiB:
 * docs/performance.md, "Upload, eighth round").
 */
const MAX_BATCH = 4;

/** Bytes of a chunk when they are plain to see (bytes or text), else -1. */
function sizeOf(chunk: unknown): number {
  if (typeof chunk === "string") return chunk.length;
  const size = (chunk as { byteLength?: unknown } | null)?.byteLength;
  return typeof size === "number" ? size : -1;
}

/**
 * The receiving end of one stream: buffers what arrives (never more than
 * granted), hands it to `for await`, and grants credit back as it is read,
 * so that granted-but-unread chunks make up the window again, in batches of
 * half the window (at most {@linkcode MAX_BATCH} chunks). A window with a
 * byte budget (an upload's) adapts to the chunks' size: as many chunks as the
 * budget holds at the largest size seen, from {@linkcode MIN_WINDOW} to
 * {@linkcode MAX_WINDOW}; chunks of no plain size keep the first window.
 * It is its own iterator, written by hand (not an async generator): one
 * promise per chunk, and a chunk that finds the reader waiting goes straight
 * to it.
 */
export class ChunkQueue<T = unknown> implements AsyncIterableIterator<T> {
  #chunks: unknown[] = [];
  /** The waiting reader's `next()`, while nothing is buffered. */
  #resolve: ((result: IteratorResult<T, undefined>) => void) | undefined;
  #reject: ((error: unknown) => void) | undefined;
  #waiting: Promise<IteratorResult<T, undefined>> | undefined;
  #done = false;
  #error: unknown;
  /** Granted-but-unread chunks the reader keeps up (in flight or buffered). */
  #window: number;
  /** The smallest grant worth a frame. */
  #batch: number;
  /** Bytes the window may hold (0: a fixed window). */
  #budget: number;
  /** The largest chunk seen, in bytes. */
  #largest = 0;
  /** Granted and not arrived yet. */
  #credit: number;
  #grant: (credit: number) => void = () => {};
  #stop: (reason: unknown) => void;
  /** Whether the sender was let pack chunks into one frame. */
  packs = false;

  /**
   * @param window The chunks granted at first, and the window.
   * @param stop Tells the producer to stop (the reader left early).
   * @param budget Bytes the window may hold: the window then adapts to the
   * chunks' size; 0 (the default) keeps it fixed.
   */
  constructor(window: number, stop: (reason: unknown) => void, budget = 0) {
    this.#window = this.#credit = window;
    this.#batch = Math.max(1, Math.min(window >> 1, MAX_BATCH));
    this.#budget = budget;
    this.#stop = stop;
  }

  /** Sets how credit is granted, once the stream has a sequence. */
  bind(grant: (credit: number) => void): void {
    this.#grant = grant;
  }

  /**
   * Whether the next chunks were asked for: credit for them is outstanding.
   *
   * @param chunks How many arrive in one frame (packed: 2 or more).
   * @returns `true` while that many granted chunks have not arrived.
   */
  asked(chunks = 1): boolean {
    return !this.#done && this.#credit >= chunks;
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
    if (this.#budget > 0) this.#fit(chunk);
    this.#chunks.push(chunk);
    this.#wake();
  }

  /** Sets an adaptive window from the largest chunk seen so far. */
  #fit(chunk: unknown): void {
    const size = sizeOf(chunk);
    if (size <= this.#largest) return;
    this.#largest = size;
    const window = Math.max(
      MIN_WINDOW,
      Math.min(MAX_WINDOW, Math.floor(this.#budget / Math.max(size, 1))),
    );
    this.#window = window;
    this.#batch = Math.max(1, Math.min(window >> 1, MAX_BATCH));
  }

  /**
   * A chunk (types 12, 14), packed chunks, or the end of an upload (type 15)
   * arrived. Packed chunks the sender was not let pack fail the stream.
   */
  take(
    frame: {
      type: number;
      message?: unknown;
      chunks?: number;
      error?: ErrorPayload;
    },
  ): void {
    if (frame.type === 15) {
      return this.end(frame.error && new RemoteError(frame.error));
    }
    if (frame.chunks === undefined) return this.push(frame.message);
    if (!this.packs) {
      const error = new DuplexError(
        "INVALID_FRAME",
        "Cannot read stream: chunks packed without leave",
      );
      this.#stop(error);
      return this.end(error);
    }
    for (const chunk of frame.message as unknown[]) this.push(chunk);
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
      const value = chunks.shift() as T;
      if (!this.#done) {
        // Make the window up again: granted-but-unread chunks are the
        // credit outstanding and the chunks buffered.
        const grant = this.#window - this.#credit - chunks.length;
        if (grant >= this.#batch) {
          this.#credit += grant;
          this.#grant(grant);
        }
      }
      return { value, done: false };
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
