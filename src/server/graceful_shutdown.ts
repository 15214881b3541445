/**
 * Graceful shutdown of a {@linkcode DuplexServer}: the handlers in flight
 * (measured, and refused once shutting down), and the drain that lets them
 * finish before the sockets close with 1001.
 *
 * @module
 */

import type { Endpoint, RequestContext, RequestHandler } from "../peer/peer.ts";
import { closeQuietly } from "../peer/socket_like.ts";
import { RemoteError } from "../wire/errors.ts";
import { ErrorCode } from "../wire/protocol.ts";
import type { ServerConnection } from "./connection.ts";
import { LATENCY_BUCKETS, type ServerMetrics } from "./metrics.ts";

const OPEN = 1;
/**
 * A fast synchronous handler is timed one call in this many: a timed call
 * costs about 2,400 instructions in Deno 2.9 (two `performance.now()` op
 * calls and the histogram), so one in 16 was 150 per request.
 */
export const SAMPLE_EVERY = 128;
/** The first bucket of the latency histogram: what counts as fast, in s. */
const FAST = LATENCY_BUCKETS[0];

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

/** The error of a request that arrives once the server is shutting down. */
function shuttingDown(): RemoteError {
  return new RemoteError({
    code: ErrorCode.ShuttingDown,
    message: "Cannot handle request: server shutting down",
  });
}

/** `result`, recorded by `done(start)` once it settles. */
function settled<R>(
  result: PromiseLike<R>,
  start: number,
  done: (start: number) => void,
): Promise<R> {
  return Promise.resolve(result).then(
    (value) => {
      done(start);
      return value;
    },
    (error) => {
      done(start);
      throw error;
    },
  );
}

/** Handlers in flight, and the drain of a server's sockets. */
export class GracefulShutdown {
  /** `true` once the drain started. */
  closing = false;
  #metrics: ServerMetrics;
  #timeout: number;
  #inFlight = 0;
  #idle: PromiseWithResolvers<void> | undefined = undefined;

  /**
   * @param metrics Where handler latencies are observed.
   * @param timeout How long each phase of the drain waits, in ms.
   */
  constructor(metrics: ServerMetrics, timeout: number) {
    this.#metrics = metrics;
    this.#timeout = timeout;
  }

  /** Handlers running now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /**
   * Wraps a handler: counted while it runs, its latency observed, refused
   * with `SHUTTING_DOWN` once the server is closing.
   *
   * Timing costs two clock reads (about 0.1 µs each in Deno), more than a
   * fast synchronous handler itself, so the clock is read only when it
   * tells something: every call of a handler that returned a promise or
   * whose last timed call took longer than the histogram's first bucket
   * (0.5 ms) is timed; a handler whose timed calls are all fast is timed one
   * call in {@linkcode SAMPLE_EVERY}, and each call in between is recorded
   * with the duration of its last timed call. The count is exact; the
   * buckets and the sum are exact for slow and asynchronous handlers and an
   * estimate for fast synchronous ones.
   */
  measure<P, R, C extends RequestContext>(
    handler: RequestHandler<P, R, C>,
  ): RequestHandler<P, R> {
    const metrics = this.#metrics;
    // Per handler: calls until the next timed one, the last timed duration,
    // and whether it returned a promise (then every call is timed).
    let untimed = 0;
    let last = 0;
    let async = false;
    // The one place a call is recorded (`start` < 0: it was not timed), so
    // that the compiled wrapper holds the recording once, not on each path.
    const done = (start: number): void => {
      if (start < 0) {
        metrics.observeRequest(last);
      } else {
        const seconds = (performance.now() - start) / 1000;
        metrics.observeRequest(seconds);
        last = seconds;
        untimed = seconds <= FAST ? SAMPLE_EVERY - 1 : 0;
      }
      this.#finished();
    };
    return (params, context) => {
      if (this.closing) throw shuttingDown();
      let start = -1;
      if (async || untimed === 0) start = performance.now();
      else untimed--;
      this.#inFlight++;
      let result: R | Promise<R>;
      try {
        // Every server connection has an identity: `from` is set.
        result = handler(params, context as C);
      } catch (error) {
        done(start);
        throw error;
      }
      if (!isPromiseLike(result)) {
        done(start);
        return result;
      }
      // Untimed until now: from here on (the synchronous part is lost once).
      async = true;
      return settled(result, start < 0 ? performance.now() : start, done);
    };
  }

  /**
   * Lets running handlers finish (up to the timeout), closes every open
   * socket with 1001, and waits for the closing handshakes (up to the
   * timeout again).
   */
  async drain<Local extends Endpoint, Remote extends Endpoint>(
    sockets: Set<ServerConnection<Local, Remote>>,
  ): Promise<void> {
    this.closing = true;
    const ms = this.#timeout;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = (): Promise<void> =>
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
    try {
      if (this.#inFlight > 0) {
        this.#idle ??= Promise.withResolvers<void>();
        await Promise.race([this.#idle.promise, expired()]);
        clearTimeout(timer);
      }
      for (const connection of [...sockets]) {
        // Sockets still opening are closed when they open.
        if (connection.socket.readyState === OPEN) {
          connection.peer.close(1001, "Server shutting down");
          // A socket a resume replaced is not its peer's any more.
          closeQuietly(connection.socket, 1001, "Server shutting down");
        }
      }
      if (sockets.size > 0) {
        await Promise.race([
          Promise.all([...sockets].map((c) => c.socketClosed)),
          expired(),
        ]);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  #finished(): void {
    if (--this.#inFlight === 0 && this.#idle !== undefined) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }
}
