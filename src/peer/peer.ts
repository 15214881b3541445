/**
 * {@linkcode Peer}: one end of a full-duplex connection over a WebSocket-like
 * object, used by both the client and each server-side connection. It
 * encodes and dispatches frames: requests in both directions, notifications,
 * cancellation, pings, the guard's limits and backpressure.
 *
 * @module
 */

import { Receiver } from "./receiver.ts";
import { type Codec, jsonCodec } from "../wire/codec.ts";
import {
  ConnectionClosedError,
  DuplexError,
  errorEvent,
  ProtocolError,
  RemoteError,
} from "../wire/errors.ts";
import type {
  ErrorPayload,
  Frame,
  NotifyFrame,
  RequestFrame,
} from "../wire/protocol.ts";
import { PendingRequests } from "./pending_requests.ts";
import { IncomingRequests } from "./incoming_requests.ts";
import type {
  AnyEndpoint,
  Endpoint,
  NotificationMethod,
  ParamsOf,
  PayloadOf,
  RequestMethod,
  ResultOf,
} from "./endpoint.ts";
import type { NotificationListener, RequestHandler } from "./handler.ts";
import type {
  PeerEventMap,
  PeerOptions,
  PeerStats,
  RequestOptions,
} from "./peer_options.ts";
import type { SocketLike } from "./socket_like.ts";
import { isStream, type StreamOptions, Streams } from "./streams.ts";

// The types of the peer's signatures, for the modules that import them from
// here (the server, the cluster and the chat).
export type * from "./endpoint.ts";
export type * from "./handler.ts";
export type * from "./peer_guard.ts";
export type * from "./peer_options.ts";
export type * from "./socket_like.ts";

const OPEN = 1;

/**
 * One end of a full-duplex connection over a WebSocket-like object. It sends
 * requests and notifications, answers requests through handlers, delivers
 * notifications to listeners, propagates cancellation and answers pings.
 * When the socket closes, every pending request rejects with
 * {@linkcode ConnectionClosedError} and every running handler's signal aborts.
 *
 * Events: `close` (a `CloseEvent`), `error` (an `ErrorEvent` for a handler
 * that threw an unexpected error or a frame that broke the protocol).
 *
 * @typeParam Local What this side answers and receives.
 * @typeParam Remote What the other side answers and receives.
 *
 * @example Two peers over a real WebSocket
 * ```ts
 * import { Peer } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req);
 *   const peer = new Peer(socket);
 *   peer.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 *   return response;
 * });
 * const socket = new WebSocket(`ws://127.0.0.1:${server.addr.port}`);
 * await new Promise((resolve) => socket.onopen = resolve);
 * const client = new Peer(socket);
 * assert.equal(await client.call("sum", [1, 2, 3]), 6);
 * const closed = new Promise((resolve) => socket.onclose = resolve);
 * client.close();
 * await closed;
 * ```
 */
export class Peer<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> extends Receiver<Local, PeerEventMap> {
  /** Counters of this connection. */
  readonly stats: PeerStats = {
    framesIn: new Array(18).fill(0),
    framesOut: new Array(18).fill(0),
    malformed: 0,
    dropped: 0,
    rateLimited: 0,
    unexpected: 0,
  };
  /** The remote side's identity, when known (see {@linkcode PeerOptions}). */
  declare readonly identity: string | undefined;
  /** Free for the application: e.g. the user record of this connection. */
  data: unknown;

  #socket: SocketLike;
  #codec: Codec;
  // Created on first use: a server holds one peer per idle connection, and
  // most of them never send a request or run an asynchronous handler.
  #tracker: PendingRequests | undefined = undefined;
  #incoming: IncomingRequests | undefined = undefined;
  #streams: Streams | undefined = undefined;
  #options: PeerOptions;
  #pingSequence = 0;
  #closed = false;
  #closeCode = 0;
  #closeReason = "";

  /**
   * Wraps an open (or opening) socket.
   *
   * @param socket The WebSocket.
   * @param options Codec, timeout, limits, identity and registry.
   */
  constructor(socket: SocketLike, options: PeerOptions = {}) {
    super(options.registry);
    this.#socket = socket;
    this.#options = options;
    this.#codec = options.codec ?? jsonCodec;
    this.identity = options.identity;
    // Binary codecs need bytes, not Blobs (a Deno client socket's default).
    if (options.codec) {
      (socket as { binaryType?: string }).binaryType = "arraybuffer";
    }
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
    if (socket.readyState > OPEN) this.#onClose(1006, "");
  }

  #requests(): PendingRequests {
    return this.#tracker ??= new PendingRequests({
      ...this.#options,
      onAbandon: (sequence) => this.#sendFrame({ sequence, type: 4 }),
      onUnexpected: () => this.stats.unexpected++,
    });
  }

  /** The socket this peer runs over. */
  get socket(): SocketLike {
    return this.#socket;
  }

  /** `true` once the socket closed or `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Outgoing requests waiting for their response. */
  get pending(): number {
    return this.#tracker?.size ?? 0;
  }

  /**
   * Incoming requests whose (asynchronous) handlers are still running, or
   * whose streamed results are still being sent.
   */
  get inFlight(): number {
    return (this.#incoming?.size ?? 0) + (this.#streams?.producers.size ?? 0);
  }

  #streamsOf(): Streams {
    return this.#streams ??= new Streams(
      (frame) => this.#sendFrame(frame),
      (sequence, error) => this.#handlerFailed(sequence, error),
    );
  }

  /**
   * Sends a request without a method (handled by the other side's default
   * handler, as in the original protocol) or with `options.method`.
   *
   * @param message The payload: any JSON value.
   * @param options Method, timeout and abort signal.
   * @returns The response payload.
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {ConnectionClosedError} When the connection is or gets closed.
   * @throws {RemoteError} When the other side answered with an error.
   * @throws {TooManyPendingError} When too many requests are pending.
   */
  request<R = unknown>(
    message: unknown,
    options: RequestOptions & { method?: string } = {},
  ): Promise<R> {
    try {
      return this.#request<R>(message, options, undefined)[1];
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #request<R>(
    message: unknown,
    options: RequestOptions & { method?: string },
    credit: number | undefined,
  ): [number, Promise<R>] {
    if (this.#closed) throw this.#closedError();
    const { sequence, promise } = this.#requests().track<R>(options);
    const method = options.method;
    try {
      if (isStream(message)) {
        // Streamed params: chunks follow once the responder grants credit.
        this.#sendFrame({ sequence, type: 1, method, credit, upload: true });
        this.#streamsOf().upload(
          sequence,
          message,
          promise,
          (error) => this.#reportError(error),
        );
      } else {
        // An absent method is left out of the JSON: the original frame.
        this.#sendFrame({ sequence, type: 1, message, method, credit });
      }
    } catch (error) {
      this.#tracker!.reject(sequence, error as Error);
    }
    return [sequence, promise];
  }

  /**
   * Calls `method` (`undefined`: the default handler) and consumes its
   * result, an async iterable or `ReadableStream`, as a stream: at most
   * `credit` chunks in flight or buffered. Leaving the loop early or
   * aborting `signal` stops the producer. A plain result is the only chunk
   * (none for `undefined`). `params` may be a stream (an upload).
   *
   * @typeParam T The chunk type.
   * @param method The method name, or `undefined` for the default handler.
   * @param params The params: any value, or an async iterable or
   * `ReadableStream` to upload.
   * @param options Credit, abort signal and timeout.
   * @returns An async iterator of the chunks.
   * @throws {RemoteError} (from the iterator) When the handler or its
   * stream failed, e.g. mid-stream.
   * @throws {ConnectionClosedError} (from the iterator) When the
   * connection is or gets closed.
   * @throws {RequestTimeoutError} (from the iterator) When the stream did
   * not end within `timeout`.
   */
  stream<T = unknown>(
    method: string | undefined,
    params?: unknown,
    options: StreamOptions = {},
  ): AsyncIterableIterator<T> {
    return this.#streamsOf().consume<T>(
      options,
      (credit, signal) =>
        this.#request(
          params,
          { method, signal, timeout: options.timeout ?? 0 },
          credit,
        ),
    );
  }

  /**
   * Sends a typed request to method `method` of the other side.
   *
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
    options: RequestOptions = {},
  ): Promise<ResultOf<Remote, M>> {
    return this.request(params, { ...options, method });
  }

  /**
   * Sends a notification without a method, or with `options.method`. The
   * guard may drop it (backpressure) or close the connection.
   *
   * @param message The payload: any JSON value.
   * @param options The method.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  notify(message: unknown, options: { method?: string } = {}): boolean {
    return this.sendNotification(
      this.#codec.encode({
        sequence: 0,
        type: 3,
        message,
        method: options.method,
      }),
    );
  }

  /**
   * Sends a typed notification to the other side.
   *
   * @param method The method name.
   * @param payload The payload.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  emit<M extends NotificationMethod<Remote>>(
    method: M,
    payload: PayloadOf<Remote, M>,
  ): boolean {
    return this.notify(payload, { method });
  }

  /**
   * Sends an already encoded notification, subject to the guard's
   * backpressure policy. Broadcasts encode once and call this for every
   * receiver.
   *
   * @param data The encoded notify frame.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  sendNotification(data: string | Uint8Array<ArrayBuffer>): boolean {
    if (this.#closed || this.#socket.readyState !== OPEN) {
      throw this.#closedError();
    }
    if (this.#options.guard?.outbound(this) === false) return false;
    this.#sendData(data, 3);
    return true;
  }

  /**
   * Sends an application-level ping; the other side answers with a pong.
   * Any incoming frame counts as a sign of life (see `stats.framesIn`).
   */
  ping(): void {
    this.#sendFrame({
      sequence: this.#pingSequence = (this.#pingSequence + 1) & 0x7fffffff,
      type: 5,
    });
  }

  /**
   * Closes the connection. Pending requests reject at once with
   * {@linkcode ConnectionClosedError}; running handlers see their signal
   * abort. Idempotent.
   *
   * @param code The close code.
   * @param reason The close reason (at most 123 bytes).
   */
  close(code = 1000, reason = ""): void {
    if (!this.#closed) {
      try {
        this.#socket.close(code, reason);
      } catch {
        this.#socket.close();
      }
    }
    this.#onClose(code, reason);
  }

  /** Closes with 1001 (going away). */
  [Symbol.dispose](): void {
    this.close(1001, "Going away");
  }

  /**
   * Receives the socket's events. Public only because the peer is its own
   * listener object (no closures); not meant to be called.
   *
   * @param event A `message` or `close` event.
   */
  handleEvent(event: Event): void {
    if (event.type === "message") {
      this.receive((event as MessageEvent).data);
    } else {
      this.#onClose((event as CloseEvent).code, (event as CloseEvent).reason);
    }
  }

  /**
   * Processes one incoming WebSocket message: guard, decoding, dispatch.
   *
   * @param data The message data.
   */
  receive(data: unknown): void {
    if (this.#closed) return;
    const guard = this.#options.guard;
    const refusal = guard?.inbound(this, data);
    if (refusal === false) return;
    let frame: Frame;
    try {
      frame = this.#codec.decode(data);
    } catch (error) {
      this.#onMalformed(error);
      return;
    }
    const sequence = frame.sequence;
    this.stats.framesIn[frame.type]++;
    switch (frame.type) {
      case 1: {
        const error = refusal ?? guard?.admit(this);
        if (error) this.#respondError(sequence, error);
        else this.#onRequest(frame);
        return;
      }
      case 2:
        if (frame.error) {
          this.#requests().reject(sequence, new RemoteError(frame.error));
        } else {
          this.#requests().resolve(sequence, frame.message);
        }
        return;
      case 3:
        if (!refusal) this.#onNotification(frame);
        return;
      case 4:
        this.#incoming?.cancel(sequence);
        this.#streams?.cancel(sequence, cancelled());
        return;
      case 5:
        if (!refusal) this.#sendFrame({ sequence, type: 6 });
        return;
      default:
        // Types 12 to 17: chunks, credit, end and cancel of streams.
        this.#streams?.dispatch(frame);
    }
  }

  #onMalformed(error: unknown): void {
    const protocolError = error instanceof ProtocolError
      ? error
      : new ProtocolError(
        "Cannot decode frame: codec failed",
        undefined,
        undefined,
        { cause: error },
      );
    this.#reportError(protocolError);
    if (++this.stats.malformed > (this.#options.maxMalformed ?? 10)) {
      this.close(1002, "Too many malformed frames");
      return;
    }
    const { sequence, frameType } = protocolError;
    // Answer when the sender may be waiting; never answer a response, which
    // could settle an unrelated request of ours with the same sequence.
    if (sequence !== undefined && frameType !== 2 && frameType !== 4) {
      this.#respondError(sequence, {
        code: "INVALID_FRAME",
        message: protocolError.message,
      });
    }
  }

  #onRequest(frame: RequestFrame): void {
    const { sequence, method } = frame;
    const handler = this.registry.handlers.get(method);
    if (!handler) {
      this.#respondError(sequence, {
        code: "METHOD_NOT_FOUND",
        message: `Cannot handle request: ${
          method === undefined
            ? "no default handler"
            : `unknown method ${JSON.stringify(method)}`
        }`,
      });
      return;
    }
    const incoming = this.#incoming ??= new IncomingRequests(
      this as Peer<Endpoint, Endpoint>,
      (sequence, ok, value, context) => {
        // Streamed results, and the end of streamed params.
        const streams = this.#streams ??
          (ok && isStream(value) ? this.#streamsOf() : undefined);
        if (streams?.settle(sequence, ok, value, context)) return;
        if (ok) this.#respond(sequence, value);
        else this.#handlerFailed(sequence, value);
      },
    );
    if (incoming.has(sequence)) {
      this.#respondError(sequence, {
        code: "INVALID_FRAME",
        message:
          `Cannot handle request: sequence ${sequence} is already in flight`,
      });
      return;
    }
    if (frame.credit || frame.upload) this.#streamsOf().accept(frame);
    incoming.run(
      handler as RequestHandler<unknown, unknown>,
      frame,
      this.identity ?? frame.from,
    );
  }

  #handlerFailed(sequence: number, error: unknown): void {
    if (!(error instanceof RemoteError)) {
      this.#reportError(error);
    }
    this.#respondError(
      sequence,
      error instanceof RemoteError
        ? { code: error.code, message: error.message, data: error.data }
        : { code: "INTERNAL_ERROR", message: "Internal error" },
    );
  }

  #respond(sequence: number, message: unknown): void {
    try {
      this.#sendFrame({ sequence, type: 2, message });
    } catch (error) {
      this.#handlerFailed(sequence, error);
    }
  }

  #respondError(sequence: number, error: ErrorPayload): void {
    this.#sendFrame({ sequence, type: 2, error });
  }

  #onNotification(frame: NotifyFrame): void {
    if (this.identity !== undefined) frame.from = this.identity;
    const listeners = this.registry.listeners;
    this.#deliver(listeners.get(frame.method ?? ""), frame);
    this.#deliver(listeners.get(undefined), frame);
  }

  #deliver(
    set: Set<NotificationListener<never>> | undefined,
    frame: NotifyFrame,
  ): void {
    // No iterator when nobody listens (the common case of `undefined`).
    if (!set?.size) return;
    for (const listener of set) {
      try {
        (listener as NotificationListener<unknown>)(frame.message, frame);
      } catch (error) {
        this.#reportError(error);
      }
    }
  }

  #sendFrame(frame: Frame): void {
    this.#sendData(this.#codec.encode(frame), frame.type);
  }

  #sendData(data: string | Uint8Array<ArrayBuffer>, type: number): void {
    if (this.#closed || this.#socket.readyState !== OPEN) return;
    this.#socket.send(data);
    this.stats.framesOut[type]++;
  }

  #closedError(): ConnectionClosedError {
    return new ConnectionClosedError(
      this.#closeCode || 1006,
      this.#closeReason,
    );
  }

  #reportError(error: unknown): void {
    this.#options.onError?.(error);
    this.dispatchEvent(errorEvent(error));
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#socket.removeEventListener("message", this);
    this.#socket.removeEventListener("close", this);
    const error = new ConnectionClosedError(code, reason);
    this.#tracker?.rejectAll(error);
    this.#incoming?.abortAll(error);
    this.#streams?.closeAll(error);
    this.#options.onClose?.(code, reason);
    this.dispatchEvent(
      new CloseEvent("close", { code, reason, wasClean: code !== 1006 }),
    );
  }
}

function cancelled(): DuplexError {
  return new DuplexError("CANCELLED", "Request cancelled by the caller");
}
