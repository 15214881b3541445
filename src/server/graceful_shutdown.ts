/**
 * Graceful shutdown of a {@linkcode DuplexServer}: the handlers in flight
 * (measured, and refused once shutting down), and the drain that lets them
 * finish before the sockets close with 1001.
 *
 * @module
 */

import type { Endpoint, RequestContext, RequestHandler } from "../peer/peer.ts";
import { RemoteError } from "../wire/errors.ts";
import { ErrorCode } from "../wire/protocol.ts";
import type { ServerConnection } from "./connection.ts";
import type { ServerMetrics } from "./metrics.ts";

const OPEN = 1;

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" &&
    typeof (value as PromiseLike<unknown>).then === "function";
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
   */
  measure<P, R, C extends RequestContext>(
    handler: RequestHandler<P, R, C>,
  ): RequestHandler<P, R> {
    return (params, context) => {
      if (this.closing) {
        throw new RemoteError({
          code: ErrorCode.ShuttingDown,
          message: "Cannot handle request: server shutting down",
        });
      }
      const start = performance.now();
      this.#inFlight++;
      let result: R | Promise<R>;
      try {
        // Every server connection has an identity: `from` is set.
        result = handler(params, context as C);
      } catch (error) {
        this.#finished(start);
        throw error;
      }
      if (!isPromiseLike(result)) {
        this.#finished(start);
        return result;
      }
      return Promise.resolve(result).then(
        (value) => {
          this.#finished(start);
          return value;
        },
        (error) => {
          this.#finished(start);
          throw error;
        },
      );
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

  #finished(start: number): void {
    this.#metrics.observeRequest((performance.now() - start) / 1000);
    if (--this.#inFlight === 0 && this.#idle !== undefined) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }
}
