/**
 * The requests this side answers: {@linkcode IncomingRequests} runs the
 * handler of each one with its {@linkcode RequestContext}, keeps those whose
 * (asynchronous) handlers are still running, aborts one when its caller
 * cancels and all of them when the connection closes; and the error
 * responses of requests that cannot run.
 *
 * @module
 */

import { DuplexError, RemoteError } from "../wire/errors.ts";
import type { ErrorPayload, RequestFrame } from "../wire/protocol.ts";
import type { Endpoint } from "./endpoint.ts";
import type { RequestContext, RequestHandler } from "./handler.ts";
import type { Peer } from "./peer.ts";

/**
 * A request being handled. Its one private slot stays empty unless someone
 * reads `signal` or the request is aborted: the controller is created then.
 */
class Context implements RequestContext {
  declare readonly peer: Peer<Endpoint, Endpoint>;
  declare readonly sequence: number;
  declare readonly method: string | undefined;
  declare readonly from: string | undefined;
  #controller: AbortController | undefined;
  constructor(
    peer: Peer<Endpoint, Endpoint>,
    sequence: number,
    method: string | undefined,
    from: string | undefined,
  ) {
    this.peer = peer;
    this.sequence = sequence;
    this.method = method;
    this.from = from;
  }
  get data(): unknown {
    return this.peer.data;
  }
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }
  abort(reason: unknown): void {
    // Asked for after the abort (e.g. in a finally block): aborted too.
    (this.#controller ??= new AbortController()).abort(reason);
  }
}

/**
 * Called once per request whose handler finished: `ok` with its result, or
 * not with what it threw. Not called for a request aborted by
 * {@linkcode IncomingRequests.abortAll} or cancelled.
 */
export type Settle = (
  sequence: number,
  ok: boolean,
  value: unknown,
  context: { abort(reason: unknown): void },
) => void;

/**
 * The incoming requests of one peer. Internal: the {@linkcode Peer} creates
 * it on the first request it receives.
 */
export class IncomingRequests {
  #peer: Peer<Endpoint, Endpoint>;
  #settle: Settle;
  // Created on first use: most handlers answer synchronously.
  #running: Map<number, Context> | undefined;
  /** Called once when the last running handler finishes. */
  onIdle: (() => void) | undefined;

  /**
   * @param peer The peer the requests came in on (the handlers' context).
   * @param settle Receives each handler's outcome.
   */
  constructor(peer: Peer<Endpoint, Endpoint>, settle: Settle) {
    this.#peer = peer;
    this.#settle = settle;
  }

  /** Requests whose handlers are still running. */
  get size(): number {
    return this.#running?.size ?? 0;
  }

  /**
   * Tells whether the handler of request `sequence` is still running.
   *
   * @param sequence The request's sequence.
   * @returns `true` while it runs.
   */
  has(sequence: number): boolean {
    return this.#running?.has(sequence) ?? false;
  }

  /**
   * Runs `handler` for `frame`; its outcome goes to `settle`, at once for a
   * synchronous handler.
   *
   * @param handler The handler of the request's method.
   * @param frame The request.
   * @param from Who sent it (see {@linkcode RequestContext.from}).
   */
  run(
    handler: RequestHandler<unknown, unknown>,
    frame: RequestFrame,
    from: string | undefined,
  ): void {
    const sequence = frame.sequence;
    const context = new Context(this.#peer, sequence, frame.method, from);
    let result: unknown;
    try {
      result = handler(frame.message, context);
    } catch (error) {
      this.#settle(sequence, false, error, context);
      return;
    }
    if (typeof (result as PromiseLike<unknown>)?.then !== "function") {
      this.#settle(sequence, true, result, context);
      return;
    }
    const running = this.#running ??= new Map();
    running.set(sequence, context);
    const done = (ok: boolean, value: unknown): void => {
      if (running.get(sequence) !== context) return;
      running.delete(sequence);
      this.#settle(sequence, ok, value, context);
      if (running.size === 0) this.#idle();
    };
    (result as PromiseLike<unknown>).then(
      (value) => done(true, value),
      (error) => done(false, error),
    );
  }

  /**
   * Aborts the handler of request `sequence` (its caller cancelled it); its
   * outcome is then ignored.
   *
   * @param sequence The request's sequence.
   */
  cancel(sequence: number): void {
    const context = this.#running?.get(sequence);
    if (context === undefined) return;
    this.#running!.delete(sequence);
    context.abort(
      new DuplexError("CANCELLED", "Request cancelled by the caller"),
    );
    if (this.#running!.size === 0) this.#idle();
  }

  /**
   * Aborts every running handler with `reason`; their outcomes are ignored.
   *
   * @param reason The abort reason (a `ConnectionClosedError`).
   */
  abortAll(reason: unknown): void {
    const running = this.#running;
    if (running === undefined) return;
    const contexts = [...running.values()];
    running.clear();
    for (const context of contexts) context.abort(reason);
    this.onIdle = undefined;
  }

  #idle(): void {
    const onIdle = this.onIdle;
    this.onIdle = undefined;
    onIdle?.();
  }
}

/**
 * The error response to a request that no handler takes.
 *
 * @param method The request's method; `undefined` for the default handler.
 * @returns The `METHOD_NOT_FOUND` error.
 */
export function methodNotFound(method: string | undefined): ErrorPayload {
  return {
    code: "METHOD_NOT_FOUND",
    message: `Cannot handle request: ${
      method === undefined
        ? "no default handler"
        : `unknown method ${JSON.stringify(method)}`
    }`,
  };
}

/**
 * The error response to a request whose sequence is already being handled.
 *
 * @param sequence The sequence.
 * @returns The `INVALID_FRAME` error.
 */
export function alreadyInFlight(sequence: number): ErrorPayload {
  return {
    code: "INVALID_FRAME",
    message: `Cannot handle request: sequence ${sequence} is already in flight`,
  };
}

/**
 * The error response of a handler that threw: a {@linkcode RemoteError} as
 * is; any other `DuplexError` (one that escaped a call the handler made:
 * `RequestTimeoutError`, `NotConnectedError`, `BrokerUnavailableError`...)
 * with its code and message; anything else as a generic `INTERNAL_ERROR`
 * (details stay local).
 *
 * @param error What the handler threw.
 * @returns The error payload.
 */
export function handlerError(error: unknown): ErrorPayload {
  if (error instanceof RemoteError) {
    return { code: error.code, message: error.message, data: error.data };
  }
  return error instanceof DuplexError
    ? { code: error.code, message: error.message }
    : { code: "INTERNAL_ERROR", message: "Internal error" };
}
