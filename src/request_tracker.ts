/**
 * The map of pending requests keyed by sequence, with timeouts, abort signals
 * and a bound.
 *
 * Timeouts cost O(1) per request whatever the number pending: requests that
 * share a timeout value sit in one list ordered by deadline (appending keeps
 * it ordered), unlinking is O(1), and a single timer follows the earliest
 * deadline of the (few) lists.
 *
 * @module
 */

import { RequestTimeoutError, TooManyPendingError } from "./errors.ts";
import { MAX_SEQUENCE } from "./protocol.ts";

/**
 * Why a response matched no pending request.
 * - `"unknown"`: no request with that sequence was recently pending.
 * - `"duplicate"`: the request was already answered.
 * - `"late"`: the request had already timed out, been aborted or rejected.
 *
 * @example Usage
 * ```ts
 * import type { UnexpectedResponse } from "@duplex/ws";
 *
 * const kind: UnexpectedResponse = "late";
 * ```
 */
export type UnexpectedResponse = "unknown" | "duplicate" | "late";

/**
 * Options of a {@linkcode RequestTracker}.
 *
 * @example Usage
 * ```ts
 * import { RequestTracker, type RequestTrackerOptions } from "@duplex/ws";
 *
 * const options: RequestTrackerOptions = { timeout: 5_000, maxPending: 100 };
 * const tracker = new RequestTracker(options);
 * ```
 */
export interface RequestTrackerOptions {
  /**
   * Default timeout of a request in milliseconds; 0 disables it.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * The most requests pending at once; `track()` beyond it throws
   * {@linkcode TooManyPendingError}.
   *
   * @default {100000}
   */
  maxPending?: number;
  /**
   * The largest sequence allocated; after it, sequences wrap around to 1.
   * Lower it for a peer with a smaller sequence space.
   *
   * @default {MAX_SEQUENCE}
   */
  maxSequence?: number;
  /**
   * Called when a pending request is given up locally (timeout or abort), so
   * that the caller can tell the peer (the Peer sends a cancel frame).
   *
   * @default {undefined}
   */
  onAbandon?: (sequence: number, reason: unknown) => void;
  /**
   * Called for each response that matched no pending request.
   *
   * @default {undefined}
   */
  onUnexpected?: (sequence: number, kind: UnexpectedResponse) => void;
}

/**
 * Options of one {@linkcode RequestTracker.track} call.
 *
 * @example Usage
 * ```ts
 * import type { TrackOptions } from "@duplex/ws";
 *
 * const options: TrackOptions = { timeout: 1_000, signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface TrackOptions {
  /**
   * Timeout in milliseconds for this request; 0 disables it.
   *
   * @default {the tracker's timeout}
   */
  timeout?: number;
  /**
   * Aborting it rejects the request with `signal.reason`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * A tracked request: the sequence to send it with, and the promise of its
 * response.
 *
 * @example Usage
 * ```ts
 * import { RequestTracker, type PendingRequest } from "@duplex/ws";
 *
 * using tracker = new RequestTracker();
 * const pending: PendingRequest<string> = tracker.track<string>();
 * tracker.resolve(pending.sequence, "ok");
 * await pending.promise;
 * ```
 */
export interface PendingRequest<T> {
  /** The sequence allocated to the request. */
  readonly sequence: number;
  /** Settles with the response, or rejects with a typed error. */
  readonly promise: Promise<T>;
}

/**
 * Counters of a {@linkcode RequestTracker}, for metrics.
 *
 * @example Usage
 * ```ts
 * import { RequestTracker, type TrackerStats } from "@duplex/ws";
 *
 * const stats: TrackerStats = new RequestTracker().stats;
 * ```
 */
export interface TrackerStats {
  /** Requests pending now. */
  pending: number;
  /** Requests resolved with a response. */
  resolved: number;
  /** Requests rejected by `reject()` or `rejectAll()`. */
  rejected: number;
  /** Requests rejected by their timeout. */
  timedOut: number;
  /** Requests rejected by their abort signal. */
  aborted: number;
  /** Responses that matched nothing recently pending. */
  unknown: number;
  /** Responses to requests already answered. */
  duplicate: number;
  /** Responses to requests already timed out, aborted or rejected. */
  late: number;
}

/**
 * How many recently settled sequences are remembered to classify strays.
 * Small and allocated on first use: a server holds one tracker per idle
 * connection.
 */
const RECENT = 128;
const SETTLED_OK = 1;
const SETTLED_FAILED = 2;

/**
 * Entries sharing one timeout value, in deadline order (appending keeps the
 * order). Settled entries are skipped lazily and compacted away once they
 * outnumber the live ones, so the cost per request stays O(1).
 */
class TimeoutList {
  items: Entry[] = [];
  head = 0;
  live = 0;
  constructor(readonly timeout: number) {}

  push(entry: Entry): void {
    this.items.push(entry);
    this.live++;
  }

  /** Drops settled entries once they are more than half of the list. */
  compact(): void {
    const items = this.items;
    if (items.length - this.head < 2 * this.live + 64) return;
    const kept: Entry[] = [];
    for (let i = this.head; i < items.length; i++) {
      if (items[i].resolve !== undefined) kept.push(items[i]);
    }
    this.items = kept;
    this.head = 0;
  }
}

/**
 * A pending request. Only `resolve` is kept: rejecting resolves with a
 * rejected promise, which lets V8 free the separate reject function.
 */
class Entry {
  resolve: ((value: unknown) => void) | undefined = undefined;
  deadline = 0;
  list: TimeoutList | undefined = undefined;
  abort: AbortListener | undefined = undefined;
  constructor(readonly sequence: number) {}
}

/** Listens for one signal's abort; allocated only for requests with a signal. */
class AbortListener {
  constructor(
    readonly entry: Entry,
    readonly signal: AbortSignal,
    readonly state: State,
  ) {}
  handleEvent(): void {
    const { entry, state } = this;
    if (entry.resolve === undefined) return;
    const reason = this.signal.reason;
    state.stats.aborted++;
    state.fail(entry, reason);
    state.onAbandon?.(entry.sequence, reason);
  }
}

/** Everything the tracker and its listeners share. */
class State {
  readonly pending = new Map<number, Entry>();
  readonly lists = new Map<number, TimeoutList>();
  recentSequence: Int32Array | undefined = undefined;
  recentKind: Uint8Array | undefined = undefined;
  recentIndex = 0;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  timerAt = Infinity;
  readonly stats: TrackerStats = {
    pending: 0,
    resolved: 0,
    rejected: 0,
    timedOut: 0,
    aborted: 0,
    unknown: 0,
    duplicate: 0,
    late: 0,
  };
  constructor(
    readonly onAbandon: RequestTrackerOptions["onAbandon"],
    readonly onUnexpected: RequestTrackerOptions["onUnexpected"],
  ) {}

  /** Removes the entry from every structure and remembers how it ended. */
  settle(entry: Entry, kind: number): (value: unknown) => void {
    const resolve = entry.resolve!;
    entry.resolve = undefined;
    this.pending.delete(entry.sequence);
    const list = entry.list;
    if (list !== undefined) {
      entry.list = undefined;
      list.live--;
      if (list.live === 0) {
        // Nothing live: drop the settled entries at once.
        list.items.length = 0;
        list.head = 0;
      }
    }
    const abort = entry.abort;
    if (abort !== undefined) {
      abort.signal.removeEventListener("abort", abort);
      entry.abort = undefined;
    }
    if (this.recentSequence === undefined) {
      this.recentSequence = new Int32Array(RECENT).fill(-1);
      this.recentKind = new Uint8Array(RECENT);
    }
    const i = this.recentIndex;
    this.recentSequence[i] = entry.sequence;
    this.recentKind![i] = kind;
    this.recentIndex = (i + 1) & (RECENT - 1);
    return resolve;
  }

  fail(entry: Entry, reason: unknown): void {
    const resolve = this.settle(entry, SETTLED_FAILED);
    resolve(Promise.reject(reason));
  }

  stopTimer(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
      this.timerAt = Infinity;
    }
  }

  /** Sets the one timer for `deadline` unless it already fires earlier. */
  schedule(deadline: number): void {
    if (deadline >= this.timerAt) return;
    this.stopTimer();
    this.timerAt = deadline;
    this.timer = setTimeout(
      this.expire,
      Math.max(0, deadline - performance.now()),
    );
  }

  /** Rejects every entry whose deadline passed, then re-arms the timer. */
  readonly expire = (): void => {
    this.timer = undefined;
    this.timerAt = Infinity;
    const now = performance.now();
    let earliest = Infinity;
    for (const list of this.lists.values()) {
      const items = list.items;
      let head = list.head;
      while (head < items.length) {
        const entry = items[head];
        if (entry.resolve !== undefined) {
          if (entry.deadline > now) {
            if (entry.deadline < earliest) earliest = entry.deadline;
            break;
          }
          this.stats.timedOut++;
          const error = new RequestTimeoutError(entry.sequence, list.timeout);
          this.fail(entry, error);
          this.onAbandon?.(entry.sequence, error);
        }
        head++;
      }
      list.head = list.live === 0 ? 0 : head;
      list.compact();
    }
    if (earliest !== Infinity && this.timer === undefined) {
      this.schedule(earliest);
    }
  };

  classify(sequence: number): UnexpectedResponse {
    const sequences = this.recentSequence;
    if (sequences === undefined) return "unknown";
    for (let i = 0; i < RECENT; i++) {
      if (sequences[i] === sequence) {
        return this.recentKind![i] === SETTLED_OK ? "duplicate" : "late";
      }
    }
    return "unknown";
  }
}

/**
 * The map of pending requests keyed by sequence. It allocates sequences,
 * hands out the promise of each response, and settles it when the response
 * arrives, the request times out, its signal aborts, or the connection closes.
 * It has no I/O of its own: the server and the browser client both use it.
 *
 * @example Track a request and resolve it with its response
 * ```ts
 * import { RequestTracker } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * using tracker = new RequestTracker({ timeout: 1_000 });
 * const { sequence, promise } = tracker.track<string>();
 * // ... send {"sequence": sequence, "type": 1, ...}; when the response comes:
 * tracker.resolve(sequence, "ok");
 * assert.equal(await promise, "ok");
 * ```
 */
export class RequestTracker implements Disposable {
  #state: State;
  #timeout: number;
  #maxPending: number;
  #maxSequence: number;
  #last = 0;

  /**
   * Creates an empty tracker.
   *
   * @param options Timeout, bound and callbacks.
   * @throws {RangeError} When `timeout` or `maxPending` is out of range.
   */
  constructor(options: RequestTrackerOptions = {}) {
    const {
      timeout = 30_000,
      maxPending = 100_000,
      maxSequence = MAX_SEQUENCE,
    } = options;
    if (!(timeout >= 0)) {
      throw new RangeError(`Cannot create tracker: invalid timeout ${timeout}`);
    }
    if (
      !(Number.isInteger(maxSequence) && maxSequence >= 1 &&
        maxSequence <= MAX_SEQUENCE)
    ) {
      throw new RangeError(
        `Cannot create tracker: maxSequence must be an integer from 1 to ${MAX_SEQUENCE}, got ${maxSequence}`,
      );
    }
    if (!(maxPending >= 1)) {
      throw new RangeError(
        `Cannot create tracker: maxPending must be at least 1, got ${maxPending}`,
      );
    }
    this.#timeout = timeout;
    // Never more pending than there are sequences: allocation always ends.
    this.#maxPending = Math.min(maxPending, maxSequence);
    this.#maxSequence = maxSequence;
    this.#state = new State(options.onAbandon, options.onUnexpected);
  }

  /** The number of requests pending now. */
  get size(): number {
    return this.#state.pending.size;
  }

  /** Counters for metrics; `pending` is computed on read. */
  get stats(): TrackerStats {
    const stats = this.#state.stats;
    stats.pending = this.#state.pending.size;
    return { ...stats };
  }

  /**
   * Tells whether the request `sequence` is pending.
   *
   * @param sequence The request's sequence.
   * @returns `true` while it waits for its response.
   */
  has(sequence: number): boolean {
    return this.#state.pending.has(sequence);
  }

  /**
   * Allocates the next free sequence and registers a pending request.
   * Sequences run from 1 to `maxSequence` ({@linkcode MAX_SEQUENCE} by
   * default), wrap around, and skip numbers still pending.
   *
   * @typeParam T The type of the response payload.
   * @param options Timeout and abort signal of this request.
   * @returns The sequence to send the request with, and its promise.
   * @throws {TooManyPendingError} When `maxPending` requests are pending.
   * @throws {unknown} `signal.reason` when the signal is already aborted.
   */
  track<T = unknown>(options: TrackOptions = {}): PendingRequest<T> {
    const state = this.#state;
    const pending = state.pending;
    const signal = options.signal;
    if (signal?.aborted) throw signal.reason;
    if (pending.size >= this.#maxPending) {
      throw new TooManyPendingError(this.#maxPending);
    }
    const maxSequence = this.#maxSequence;
    let sequence = this.#last;
    do {
      sequence = sequence >= maxSequence ? 1 : sequence + 1;
    } while (pending.has(sequence));
    this.#last = sequence;

    const entry = new Entry(sequence);
    const promise = new Promise<T>((resolve) => {
      entry.resolve = resolve as (value: unknown) => void;
    });
    pending.set(sequence, entry);

    const timeout = options.timeout ?? this.#timeout;
    if (timeout > 0 && timeout !== Infinity) {
      let list = state.lists.get(timeout);
      if (list === undefined) {
        list = new TimeoutList(timeout);
        state.lists.set(timeout, list);
      }
      entry.deadline = performance.now() + timeout;
      entry.list = list;
      list.push(entry);
      if (entry.deadline < state.timerAt) state.schedule(entry.deadline);
      else if (list.items.length > 2 * list.live + 64) list.compact();
    }
    if (signal !== undefined) {
      const listener = new AbortListener(entry, signal, state);
      entry.abort = listener;
      signal.addEventListener("abort", listener, { once: true });
    }
    return { sequence, promise };
  }

  /**
   * Settles the request `sequence` with its response payload. A response
   * that matches nothing pending is counted and reported through
   * `onUnexpected`, never thrown.
   *
   * @param sequence The response's sequence.
   * @param value The response payload.
   * @returns `true` when a pending request was resolved.
   */
  resolve(sequence: number, value: unknown): boolean {
    const state = this.#state;
    const entry = state.pending.get(sequence);
    if (entry === undefined) {
      this.#unexpected(sequence);
      return false;
    }
    state.stats.resolved++;
    state.settle(entry, SETTLED_OK)(value);
    return true;
  }

  /**
   * Rejects the request `sequence` (an error response, or a failed send).
   * A sequence that matches nothing pending is counted and reported.
   *
   * @param sequence The request's sequence.
   * @param reason The error to reject with.
   * @returns `true` when a pending request was rejected.
   */
  reject(sequence: number, reason: Error): boolean {
    const state = this.#state;
    const entry = state.pending.get(sequence);
    if (entry === undefined) {
      this.#unexpected(sequence);
      return false;
    }
    state.stats.rejected++;
    state.settle(entry, SETTLED_OK)(Promise.reject(reason));
    return true;
  }

  /**
   * Rejects every pending request with `reason`, e.g. a
   * {@linkcode ConnectionClosedError} when the connection closes.
   *
   * @param reason The error to reject with.
   * @returns How many requests were rejected.
   */
  rejectAll(reason: Error): number {
    const state = this.#state;
    const entries = [...state.pending.values()];
    for (const entry of entries) {
      state.stats.rejected++;
      state.fail(entry, reason);
    }
    state.lists.clear();
    state.stopTimer();
    return entries.length;
  }

  /**
   * Rejects every pending request with an `Error` and stops the timer. The
   * timer stays armed while the tracker is in use, even when nothing is
   * pending, so that back-to-back requests cost no timer calls: dispose of
   * the tracker (or call `rejectAll()`) when done with it.
   */
  [Symbol.dispose](): void {
    this.rejectAll(new Error("Cannot complete request: tracker disposed"));
  }

  #unexpected(sequence: number): void {
    const state = this.#state;
    const kind = state.classify(sequence);
    state.stats[kind]++;
    state.onUnexpected?.(sequence, kind);
  }
}
