/**
 * {@linkcode RequestTracker}, the public map of pending requests: the
 * {@linkcode PendingRequests} core plus counters of every outcome, and the
 * classification of responses that match nothing pending.
 *
 * @module
 */

import {
  type PendingRequest,
  PendingRequests,
  type RequestSequences,
  type TrackOptions,
} from "./pending_requests.ts";
import { RequestTimeoutError } from "../wire/errors.ts";
import { timeoutLists } from "./timeout_lists.ts";

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

/**
 * How a request settled: answered (resolved or rejected by an error
 * response), or given up (timed out, aborted, or rejected by
 * `rejectAll()`).
 */
const RESOLVED = 0;
const REJECTED = 1;
const TIMED_OUT = 2;
const ABORTED = 3;
const REJECTED_ALL = 4;

/** The counter of each outcome. */
const COUNTERS = [
  "resolved",
  "rejected",
  "timedOut",
  "aborted",
  "rejected",
] as const;

/** The counters of a tracker, and the recent outcomes that classify strays. */
class Metrics {
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
  /**
   * The last settled sequences: positive when answered, negative when given
   * up; allocated on first use.
   */
  #recent: Int32Array | undefined;
  #index = 0;
  #onUnexpected: RequestTrackerOptions["onUnexpected"];
  #onAbandon: RequestTrackerOptions["onAbandon"];
  /** The error of the request timing out now (its abandon follows). */
  #expired: Error | undefined;

  constructor(options: RequestTrackerOptions) {
    this.#onUnexpected = options.onUnexpected;
    this.#onAbandon = options.onAbandon;
  }

  settled(sequence: number, outcome: number): void {
    this.stats[COUNTERS[outcome]]++;
    const recent = this.#recent ??= new Int32Array(RECENT);
    recent[this.#index] = outcome > REJECTED ? -sequence : sequence;
    this.#index = (this.#index + 1) & (RECENT - 1);
  }

  /** A request timed out: counted, and its error made (its abandon follows). */
  expired = (sequence: number, timeout: number): Error => {
    this.settled(sequence, TIMED_OUT);
    return this.#expired = new RequestTimeoutError(sequence, timeout);
  };

  /** A request was given up: timed out (counted already) or aborted. */
  abandoned = (sequence: number, reason: unknown): void => {
    if (reason !== this.#expired) this.settled(sequence, ABORTED);
    this.#expired = undefined;
    this.#onAbandon?.(sequence, reason);
  };

  stray = (sequence: number): void => {
    // Answered already (a duplicate), given up (late), or neither. No
    // request has sequence 0, which also fills the unused slots.
    const recent = sequence === 0 ? undefined : this.#recent;
    const kind: UnexpectedResponse = recent?.includes(sequence)
      ? "duplicate"
      : recent?.includes(-sequence)
      ? "late"
      : "unknown";
    this.stats[kind]++;
    this.#onUnexpected?.(sequence, kind);
  };
}

/**
 * The map of pending requests keyed by sequence. It allocates sequences,
 * hands out the promise of each response, and settles it when the response
 * arrives, the request times out, its signal aborts, or the connection closes.
 * It has no I/O of its own. It counts every outcome (`stats`) and tells late
 * and duplicate responses from unknown ones.
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
  #core: PendingRequests;
  #metrics: Metrics;
  /** The core's sequences, which list the pending ones. */
  #sequences: RequestSequences = { last: 0 };

  /**
   * Creates an empty tracker.
   *
   * @param options Timeout, bound and callbacks.
   * @throws {RangeError} When `timeout`, `maxPending` or `maxSequence` is
   * out of range.
   */
  constructor(options: RequestTrackerOptions = {}) {
    const metrics = this.#metrics = new Metrics(options);
    this.#core = new PendingRequests({
      timeouts: timeoutLists,
      ...options,
      onUnexpected: metrics.stray,
      timeoutError: metrics.expired,
      onAbandon: metrics.abandoned,
      sequences: this.#sequences,
    });
  }

  /** The number of requests pending now. */
  get size(): number {
    return this.#core.size;
  }

  /** Counters for metrics; `pending` is computed on read. */
  get stats(): TrackerStats {
    return { ...this.#metrics.stats, pending: this.#core.size };
  }

  /**
   * Tells whether the request `sequence` is pending.
   *
   * @param sequence The request's sequence.
   * @returns `true` while it waits for its response.
   */
  has(sequence: number): boolean {
    return this.#core.has(sequence);
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
  track<T = unknown>(options?: TrackOptions): PendingRequest<T> {
    return this.#core.track(options);
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
    const settled = this.#core.resolve(sequence, value);
    if (settled) this.#metrics.settled(sequence, RESOLVED);
    return settled;
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
    const settled = this.#core.reject(sequence, reason);
    if (settled) this.#metrics.settled(sequence, REJECTED);
    return settled;
  }

  /**
   * Rejects every pending request with `reason`, e.g. a
   * {@linkcode ConnectionClosedError} when the connection closes, and stops
   * the timer.
   *
   * @param reason The error to reject with.
   * @returns How many requests were rejected.
   */
  rejectAll(reason: Error): number {
    for (const sequence of this.#sequences.pending!()) {
      this.#metrics.settled(sequence, REJECTED_ALL);
    }
    return this.#core.rejectAll(reason);
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
}
