/**
 * {@linkcode Sender}: the typed calls every sending side shares (the
 * `Peer` and the `Client`): `call` and `emit`, typed by the other side's
 * {@linkcode Endpoint}, on top of the side's own `request` and `notify`.
 *
 * @module
 */

import type {
  Endpoint,
  MethodWithoutParams,
  NotificationMethod,
  NotificationWithoutPayload,
  ParamsOf,
  PayloadOf,
  RequestMethod,
  ResultOf,
} from "./endpoint.ts";
import type { RequestOptions } from "./peer_options.ts";
import { Receiver, type Registry } from "./receiver.ts";
import type { StreamOptions } from "./streams.ts";
import type { StreamSupport } from "./stream_support.ts";
import { DuplexError } from "../wire/errors.ts";
import type { ErrorPayload } from "../wire/protocol.ts";

/**
 * The answer of a side without stream support to a stream it cannot take
 * (a streamed result or upload asked of it), and the error of its own
 * `stream()` and stream uploads. Internal.
 */
export const STREAMS_UNSUPPORTED: ErrorPayload = {
  code: "STREAMS_UNSUPPORTED",
  message:
    "Cannot stream: no stream support (pass the streams option: import { streams })",
};

/** Whether a value is a stream: an async iterable or a ReadableStream. */
export function isStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null &&
    (Symbol.asyncIterator in value || "getReader" in value);
}

/** The error of a stream call on a side without stream support. Internal. */
export function noStreams(): DuplexError {
  return new DuplexError(
    STREAMS_UNSUPPORTED.code,
    STREAMS_UNSUPPORTED.message,
  );
}

/**
 * A receiver that also sends: `request` and `notify` are the side's own,
 * `call` and `emit` their typed forms. Methods without params are called as
 * `call("users.list")`, notifications without payload sent as
 * `emit("ready")`.
 *
 * @typeParam Local What this side answers and receives.
 * @typeParam Remote What the other side answers and receives.
 * @typeParam EventMap Event name → event type.
 * @typeParam Sent What `notify` returns.
 *
 * @example Every Peer and Client is a Sender
 * ```ts
 * import { Peer, Sender } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.ok(Peer.prototype instanceof Sender);
 * ```
 */
export abstract class Sender<
  Local extends Endpoint,
  Remote extends Endpoint,
  EventMap,
  Sent,
> extends Receiver<Local, EventMap> {
  #streams: StreamSupport | undefined;

  /**
   * Creates the sending side.
   *
   * @param registry The handler registry (shared, or a new one).
   * @param streams Stream support (see `streams`), for `stream()`.
   */
  constructor(registry?: Registry, streams?: StreamSupport) {
    super(registry);
    this.#streams = streams;
  }

  /**
   * Sends a request to the default handler, or to `options.method`.
   *
   * @typeParam R The result type.
   * @param message The payload: any JSON value.
   * @param options Method, timeout and abort signal.
   * @returns The response payload.
   */
  abstract request<R = unknown>(
    message: unknown,
    options?: RequestOptions & { method?: string },
  ): Promise<R>;

  /**
   * Sends a notification without a method, or with `options.method`.
   *
   * @param message The payload: any JSON value.
   * @param options The method.
   * @returns Whether it was handed to the socket.
   */
  abstract notify(message: unknown, options?: { method?: string }): Sent;

  /**
   * Sends a typed request to a method that takes no params:
   * `call("users.list")`.
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @returns The method's result.
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {ConnectionClosedError} When the connection is or gets closed.
   * @throws {RemoteError} When the other side answered with an error.
   */
  call<M extends MethodWithoutParams<Remote>>(
    method: M,
  ): Promise<ResultOf<Remote, M>>;
  /**
   * Sends a typed request to method `method` of the other side (the
   * client's offline queue may also reject it: see `request`).
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @param params The params.
   * @param options Timeout and abort signal.
   * @returns The method's result.
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {ConnectionClosedError} When the connection is or gets closed.
   * @throws {RemoteError} When the other side answered with an error.
   */
  call<M extends RequestMethod<Remote>>(
    method: M,
    params: ParamsOf<Remote, M>,
    options?: RequestOptions,
  ): Promise<ResultOf<Remote, M>>;
  call(
    method: string,
    params?: unknown,
    options: RequestOptions = {},
  ): Promise<unknown> {
    return this.request(params, { ...options, method });
  }

  /**
   * Sends a typed notification that carries no payload: `emit("ready")`.
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @returns What `notify` returns.
   */
  emit<M extends NotificationWithoutPayload<Remote>>(method: M): Sent;
  /**
   * Sends a typed notification to the other side.
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @param payload The payload.
   * @returns What `notify` returns.
   */
  emit<M extends NotificationMethod<Remote>>(
    method: M,
    payload: PayloadOf<Remote, M>,
  ): Sent;
  emit(method: string, payload?: unknown): Sent {
    return this.notify(payload, { method });
  }

  /**
   * Calls `method` (`undefined`: the default handler) and reads its result,
   * an async iterable or `ReadableStream` on the other side, chunk by chunk:
   * at most `credit` chunks in flight. Leaving the loop early or aborting
   * `signal` stops the producer. A plain result is the only chunk (none for
   * `undefined`). `params` may be a stream too (an upload). Needs stream
   * support: the `streams` option of the client or peer.
   *
   * @typeParam T The chunk type.
   * @param method The method name.
   * @param params The params: any value, or a stream to upload.
   * @param options Credit, abort signal and timeout.
   * @returns The chunks, for `for await`.
   * @throws {RemoteError} (from the loop) When the producer failed.
   * @throws {ConnectionClosedError} (from the loop) When the connection
   * closed first.
   * @throws {DuplexError} With code `STREAMS_UNSUPPORTED` when this side
   * was created without the `streams` option.
   */
  stream<T = unknown>(
    method: string | undefined,
    params?: unknown,
    options: StreamOptions = {},
  ): AsyncIterableIterator<T> {
    if (!this.#streams) throw noStreams();
    return this.#streams.consume<T>(
      options,
      (call) => this.request(params, { ...call, method }),
    );
  }
}
