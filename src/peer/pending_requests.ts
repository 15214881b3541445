/**
 * The map of pending requests keyed by sequence, with timeouts, abort signals
 * and a bound.
 *
 * Timeouts are kept by a {@linkcode Timeouts}: by default one timer for
 * all the pending requests, set for the earliest deadline, whose firing
 * sweeps them (what a client needs: a few pending requests, and no timer
 * per request); a server's peers and the `RequestTracker` use
 * `timeoutLists` (`timeout_lists.ts`), O(1) per request whatever the number
 * pending.
 *
 * @module
 */

import { RequestTimeoutError, TooManyPendingError } from "../wire/errors.ts";
import { MAX_SEQUENCE } from "../wire/protocol.ts";
import type { RequestTrackerOptions } from "./request_tracker.ts";

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
 * A pending request as a {@linkcode Timeouts} sees it: its sequence, and
 * fields for the timeouts' own bookkeeping (the ring of `timeoutLists`, a
 * timer of its own).
 *
 * @example Usage
 * ```ts
 * import type { TimedRequest } from "@duplex/ws";
 *
 * const seen = (request: TimedRequest) => request.sequence;
 * ```
 */
export interface TimedRequest {
  /** The request's sequence. */
  readonly sequence: number;
  /** `performance.now()` deadline (`timeoutLists` rounds it up), or 0. */
  deadline: number;
  /** The previous request in a ring of requests. */
  prev: TimedRequest;
  /** The next request in a ring of requests. */
  next: TimedRequest;
  /** The request's own timer, if any (set by a {@linkcode Timeouts}). */
  timer?: ReturnType<typeof setTimeout>;
}

/**
 * How the timeouts of one peer's (or tracker's) pending requests are kept.
 * Made by a {@linkcode TimeoutsFactory} given the function to call when a
 * request's timeout passes.
 *
 * @example Usage
 * ```ts
 * import { timeoutLists, type Timeouts } from "@duplex/ws";
 *
 * const timeouts: Timeouts = timeoutLists(() => {});
 * ```
 */
export interface Timeouts {
  /**
   * Starts the timeout of a request just tracked.
   *
   * @param request The request.
   * @param timeout Its timeout in milliseconds (finite, above 0).
   */
  start(request: TimedRequest, timeout: number): void;
  /**
   * Stops it: the request settled (called for every request, with a
   * timeout or not).
   *
   * @param request The request.
   */
  stop(request: TimedRequest): void;
}

/**
 * Makes the {@linkcode Timeouts} of one set of pending requests:
 * `timeoutLists`, or the default (one timer, swept when it fires).
 *
 * @example Usage
 * ```ts
 * import { timeoutLists, type TimeoutsFactory } from "@duplex/ws";
 *
 * const factory: TimeoutsFactory = timeoutLists;
 * ```
 */
export type TimeoutsFactory = (
  expire: (request: TimedRequest, timeout: number) => void,
) => Timeouts;

/**
 * A pending request. Only `resolve` is kept: rejecting resolves with a
 * rejected promise, which lets V8 free the separate reject function.
 */
interface Entry extends TimedRequest {
  /** `undefined` once settled. */
  resolve: ((value: unknown) => void) | undefined;
  /** The abort listener, for requests with a signal. */
  abort: AbortListener | undefined;
}

/** Listens for one signal's abort; allocated only for requests with a signal. */
interface AbortListener {
  readonly signal: AbortSignal;
  handleEvent(): void;
}

function entry(sequence: number, resolve: (value: unknown) => void): Entry {
  return {
    sequence,
    resolve,
    deadline: 0,
    prev: undefined!,
    next: undefined!,
    abort: undefined,
  };
}

/**
 * The default timeouts: one timer for all the requests, set for the
 * earliest deadline; when it fires, a sweep expires what is due and sets it
 * for the next. A timer per request cost more than the request's own work
 * (Deno 2.9: some 17,000 instructions to set and clear one, more with many
 * set). O(n) per firing: for a client's few pending requests.
 */
function timers(
  expire: (request: TimedRequest, timeout: number) => void,
): Timeouts {
  /** The requests with a timeout, and their timeouts. */
  const timed = new Map<TimedRequest, number>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** The deadline the timer is set for (Infinity: none). */
  let at = Infinity;
  const sweep = (): void => {
    const now = performance.now();
    at = Infinity;
    for (const [request, timeout] of timed) {
      if (request.deadline <= now) expire(request, timeout);
      else at = Math.min(at, request.deadline);
    }
    // Cleared here, not before the loop: a request started by an expiry
    // sweeps (and sets a timer) on its own, which this one replaces.
    clearTimeout(timer);
    // At most 2^31 - 1 ms, as timers take (the sweep sets it again).
    timer = at < Infinity
      ? setTimeout(sweep, Math.min(at - now, 2e9))
      : undefined;
  };
  return {
    start(request, timeout) {
      timed.set(request, timeout);
      if ((request.deadline = performance.now() + timeout) < at) sweep();
    },
    stop(request) {
      // The timer goes with the last request (it would keep a process up),
      // unless another starts within two microtask hops (the next of a
      // caller awaiting each answer): no timer per request then either.
      if (timed.delete(request) && !timed.size) {
        queueMicrotask(() => queueMicrotask(() => timed.size || sweep()));
      }
    },
  };
}

/**
 * Options of {@linkcode PendingRequests}: those of a
 * {@linkcode RequestTracker} with lower-level callbacks.
 */
export interface PendingRequestsOptions
  extends Omit<RequestTrackerOptions, "onUnexpected"> {
  /** Called for each response that matched no pending request. */
  onUnexpected?: (sequence: number) => void;
  /** The error of a request whose timeout passed (default: {@linkcode RequestTimeoutError}). */
  timeoutError?: (sequence: number, timeout: number) => Error;
  /** The error of a request refused at `maxPending` (default: {@linkcode TooManyPendingError}). */
  fullError?: (limit: number) => Error;
  /** How timeouts are kept (default: one timer, swept when it fires). */
  timeouts?: TimeoutsFactory;
  /**
   * Where the last sequence allocated is kept (default: a new one from 0),
   * and through which the pending ones can be listed. The peers of a
   * session's successive pages share theirs, so that a new page never
   * reuses a sequence the old one sent, and cancels the old one's requests
   * (see `ClientSession`).
   */
  sequences?: RequestSequences;
}

/** The request sequences of {@linkcode PendingRequestsOptions.sequences}. */
export interface RequestSequences {
  /** The last sequence allocated (0: none yet). */
  last: number;
  /** Lists the pending sequences, oldest first (set by the tracker). */
  pending?: () => Iterable<number>;
}

/**
 * The core of {@linkcode RequestTracker} without its counters: what a
 * `Peer` needs (it counts strays itself), so that the browser client carries
 * no metrics code. Internal: not exported from `mod.ts`.
 */
export class PendingRequests {
  #pending = new Map<number, Entry>();
  #timeouts: Timeouts;
  #options: PendingRequestsOptions;
  #timeout: number;
  #maxPending: number;
  #maxSequence: number;
  #sequences: RequestSequences;

  /**
   * Creates an empty set of pending requests.
   *
   * @param options Timeout, bound and callbacks.
   * @throws {RangeError} When `timeout`, `maxPending` or `maxSequence` is
   * out of range.
   */
  constructor(options: PendingRequestsOptions = {}) {
    const {
      timeout = 30_000,
      maxPending = 100_000,
      maxSequence = MAX_SEQUENCE,
    } = this.#options = options;
    if (
      !(timeout >= 0 && maxPending >= 0 && Number.isInteger(maxSequence) &&
        maxSequence >= 1 && maxSequence <= MAX_SEQUENCE)
    ) {
      throw new RangeError(
        `Cannot create tracker: invalid timeout ${timeout}, maxPending ${maxPending} or maxSequence ${maxSequence}`,
      );
    }
    this.#timeout = timeout;
    // Never more pending than there are sequences: allocation always ends.
    this.#maxPending = Math.min(maxPending, maxSequence);
    this.#maxSequence = maxSequence;
    this.#timeouts = (options.timeouts ?? timers)(this.#expire);
    const sequences = this.#sequences = options.sequences ?? { last: 0 };
    sequences.pending = () => this.#pending.keys();
  }

  /** The number of requests pending now. */
  get size(): number {
    return this.#pending.size;
  }

  /**
   * Tells whether the request `sequence` is pending.
   *
   * @param sequence The request's sequence.
   * @returns `true` while it waits for its response.
   */
  has(sequence: number): boolean {
    return this.#pending.has(sequence);
  }

  /**
   * Allocates the next free sequence and registers a pending request.
   * Sequences run from 1 to `maxSequence` ({@linkcode MAX_SEQUENCE} by
   * default), wrap around, and skip numbers still pending.
   *
   * @typeParam T The type of the response payload.
   * @param options Timeout and abort signal of this request.
   * @returns The sequence to send the request with, and its promise.
   * @throws {TooManyPendingError} When `maxPending` requests are pending
   * (or the error of the `fullError` option).
   * @throws {unknown} `signal.reason` when the signal is already aborted.
   */
  track<T = unknown>(options: TrackOptions = {}): PendingRequest<T> {
    const pending = this.#pending;
    const signal = options.signal;
    const max = this.#maxPending;
    if (signal?.aborted) throw signal.reason;
    if (pending.size >= max) {
      throw this.#options.fullError?.(max) ?? new TooManyPendingError(max);
    }
    const sequences = this.#sequences;
    let sequence = sequences.last;
    do {
      sequence = sequence >= this.#maxSequence ? 1 : sequence + 1;
    } while (pending.has(sequence));
    sequences.last = sequence;

    let resolve!: (value: unknown) => void;
    const promise = new Promise<T>((r) => resolve = r as typeof resolve);
    const request = entry(sequence, resolve);
    pending.set(sequence, request);

    const timeout = options.timeout ?? this.#timeout;
    if (timeout > 0 && timeout < Infinity) {
      this.#timeouts.start(request, timeout);
    }
    if (signal) {
      const abort: AbortListener = request.abort = {
        signal,
        handleEvent: () => {
          if (request.resolve) this.#give(request, signal.reason);
        },
      };
      signal.addEventListener("abort", abort, { once: true });
    }
    return { sequence, promise };
  }

  /**
   * Settles the request `sequence` with its response payload. A response
   * that matches nothing pending is reported through `onUnexpected`, never
   * thrown.
   *
   * @param sequence The response's sequence.
   * @param value The response payload.
   * @returns `true` when a pending request matched.
   */
  resolve(sequence: number, value: unknown): boolean {
    return this.#answer(sequence, value, false);
  }

  /**
   * Rejects the request `sequence`, e.g. with a {@linkcode RemoteError} for
   * an error response. Unmatched sequences are reported as by `resolve()`.
   *
   * @param sequence The response's sequence.
   * @param reason The error to reject with.
   * @returns `true` when a pending request matched.
   */
  reject(sequence: number, reason: Error): boolean {
    return this.#answer(sequence, reason, true);
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
    // One rejected promise, adopted by every request (none: no promise, so
    // that nothing is left unhandled).
    return this.resolveAll(this.#pending.size && Promise.reject(reason));
  }

  /**
   * Settles every pending request with `value`, oldest first, and stops the
   * timer: e.g. the connection that queued sends were waiting for.
   *
   * @param value The value to resolve with.
   * @returns How many requests were settled.
   */
  resolveAll(value: unknown): number {
    const entries = [...this.#pending.values()];
    for (const request of entries) this.#settle(request)(value);
    return entries.length;
  }

  /** Settles the request `sequence` as answered, or reports a stray. */
  #answer(sequence: number, value: unknown, rejected: boolean): boolean {
    const request = this.#pending.get(sequence);
    if (request) {
      this.#settle(request)(rejected ? Promise.reject(value) : value);
    } else {
      this.#options.onUnexpected?.(sequence);
    }
    return !!request;
  }

  /** Gives a request up: rejects it and reports it as abandoned. */
  #give(request: Entry, reason: unknown): void {
    this.#settle(request)(Promise.reject(reason));
    this.#options.onAbandon?.(request.sequence, reason);
  }

  /** Removes the request from every structure; returns its resolve. */
  #settle(request: Entry): (value: unknown) => void {
    const { resolve, abort } = request;
    request.resolve = undefined;
    this.#pending.delete(request.sequence);
    this.#timeouts.stop(request);
    if (abort) {
      abort.signal.removeEventListener("abort", abort);
      request.abort = undefined;
    }
    return resolve!;
  }

  /** Rejects a request whose timeout passed. */
  #expire = (request: TimedRequest, timeout: number): void => {
    const { sequence } = request;
    this.#give(
      request as Entry,
      this.#options.timeoutError?.(sequence, timeout) ??
        new RequestTimeoutError(sequence, timeout),
    );
  };
}
