/**
 * Middleware: functions that run around every incoming request and
 * notification of a receiver (a `Peer`, a `Client`, a `DuplexServer`),
 * in the order they were added, for cross-cutting code — authorization,
 * timing, logging. Each sees the method, the sender, the connection's data
 * and the frame, and calls `next()` to go on; throwing (e.g. a
 * {@linkcode ForbiddenError}) refuses: a request is answered with that
 * error and its handler never runs, a notification reaches no listener.
 *
 * @module
 */

import { RemoteError } from "../wire/errors.ts";
import type { NotifyFrame, RequestFrame } from "../wire/protocol.ts";
import type { Endpoint } from "./endpoint.ts";
import type { RequestContext, RequestHandler } from "./handler.ts";
import type { Peer } from "./peer.ts";

/**
 * What a middleware sees of one incoming request or notification.
 *
 * @example Usage
 * ```ts
 * import type { MiddlewareContext } from "@duplex/ws";
 *
 * function describe(context: MiddlewareContext): string {
 *   return `${context.kind} ${context.method ?? "(default)"} from ${context.from}`;
 * }
 * ```
 */
export interface MiddlewareContext {
  /** `"request"` or `"notification"`. */
  readonly kind: "request" | "notification";
  /** The method; `undefined` for the default handler / listener. */
  readonly method: string | undefined;
  /** Who sent it (on a server: the authenticated user). */
  readonly from: string | undefined;
  /** The connection's data (on a server: what `authenticate` returned). */
  readonly data: unknown;
  /** The frame as received (its `message` is the params or payload). */
  readonly frame: RequestFrame | NotifyFrame;
  /** The connection it came in on. */
  readonly peer: Peer<Endpoint, Endpoint>;
  /**
   * For a request, aborts when the caller cancels or the connection
   * closes; `undefined` for a notification.
   */
  readonly signal: AbortSignal | undefined;
}

/**
 * One middleware. Call `next()` once to go on (its promise resolves with
 * the handler's result, which you may return as is or replace); throw to
 * refuse. Keep notification middleware synchronous to keep their order.
 *
 * @example Time every request
 * ```ts
 * import type { Middleware } from "@duplex/ws";
 *
 * const timing: Middleware = async (context, next) => {
 *   const start = performance.now();
 *   try {
 *     return await next();
 *   } finally {
 *     console.log(`${context.method}: ${(performance.now() - start).toFixed(1)} ms`);
 *   }
 * };
 * ```
 */
export type Middleware = (
  context: MiddlewareContext,
  next: () => Promise<unknown>,
) => unknown;

/**
 * A typed refusal: code `FORBIDDEN`. Thrown by a middleware or a handler,
 * it is sent to the caller as is (a `RemoteError` with that code).
 *
 * @example Usage
 * ```ts
 * import { ForbiddenError, RemoteError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new ForbiddenError("Cannot join staff: not a member");
 * assert.ok(error instanceof RemoteError);
 * assert.equal(error.code, "FORBIDDEN");
 * ```
 */
export class ForbiddenError extends RemoteError {
  /**
   * Creates the error.
   *
   * @param message Why, in the form "Cannot X: reason".
   * @param data Optional details for the caller.
   */
  constructor(message = "Cannot do that: forbidden", data?: unknown) {
    super({ code: "FORBIDDEN", message, data });
    this.name = "ForbiddenError";
  }
}

/** Runs `chain` from `index`, then `last`. */
function run(
  chain: readonly Middleware[],
  index: number,
  context: MiddlewareContext,
  last: () => unknown,
): Promise<unknown> {
  try {
    return Promise.resolve(
      index < chain.length
        ? chain[index](context, () => run(chain, index + 1, context, last))
        : last(),
    );
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Wraps a request handler so that `chain` runs first. Internal: the peer
 * calls it when its registry has middleware.
 *
 * @param chain The middleware, in order.
 * @param handler The method's handler.
 * @param frame The request.
 * @returns The handler to run instead.
 */
export function throughMiddleware(
  chain: readonly Middleware[],
  handler: RequestHandler<unknown, unknown>,
  frame: RequestFrame,
): RequestHandler<unknown, unknown> {
  return (params: unknown, request: RequestContext) =>
    run(chain, 0, {
      kind: "request",
      method: frame.method,
      from: request.from,
      data: request.data,
      frame,
      peer: request.peer,
      get signal() {
        return request.signal;
      },
    }, () => handler(params, request));
}

/**
 * Runs `chain` for a notification, then `deliver`; a refusal or failure
 * goes to `report`. Internal: the peer calls it when its registry has
 * middleware.
 *
 * @param chain The middleware, in order.
 * @param peer The connection.
 * @param frame The notification.
 * @param deliver Hands it to the listeners.
 * @param report Receives what a middleware threw.
 */
export function notifyThroughMiddleware(
  chain: readonly Middleware[],
  peer: Peer<Endpoint, Endpoint>,
  frame: NotifyFrame,
  deliver: () => void,
  report: (error: unknown) => void,
): void {
  run(chain, 0, {
    kind: "notification",
    method: frame.method,
    from: frame.from,
    data: peer.data,
    frame,
    peer,
    signal: undefined,
  }, deliver).catch(report);
}
