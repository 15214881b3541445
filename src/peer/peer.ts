/**
 * The full-duplex endpoint used by both the client and each server-side
 * connection: requests in both directions, notifications, cancellation,
 * pings, limits and backpressure over any WebSocket-like object.
 *
 * @module
 */

import { Receiver, type Registry } from "./receiver.ts";
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
import { PendingRequests } from "./request_tracker.ts";

/**
 * The part of the WHATWG `WebSocket` that a {@linkcode Peer} uses. Browser,
 * Deno client and `Deno.upgradeWebSocket` sockets all fit.
 *
 * @example Usage
 * ```ts
 * import type { SocketLike } from "@duplex/ws";
 *
 * function accepts(socket: SocketLike): number {
 *   return socket.readyState;
 * }
 * ```
 */
export interface SocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** Bytes queued by `send()` and not yet written. */
  readonly bufferedAmount: number;
  /** Queues one message. */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Listens for `message`, `close` and `error`. */
  addEventListener(type: string, listener: EventListenerObject): void;
  /** Stops listening. */
  removeEventListener(type: string, listener: EventListenerObject): void;
}

/**
 * What one side of a connection accepts: the requests it answers
 * (method → handler signature) and the notifications it receives
 * (method → payload). Used only for types; nothing is generated.
 *
 * @example Describe a server and a client
 * ```ts
 * import type { Endpoint } from "@duplex/ws";
 *
 * interface ChatServer extends Endpoint {
 *   requests: { "users.list": (params: void) => string[] };
 *   notifications: { typing: { room: string } };
 * }
 * interface ChatClient extends Endpoint {
 *   requests: { confirm: (params: { question: string }) => boolean };
 *   notifications: { "presence.joined": { user: string } };
 * }
 * ```
 */
export interface Endpoint {
  /** Method name → `(params) => result` of each request it answers. */
  requests: object;
  /** Method name → payload of each notification it receives. */
  notifications: object;
}

/**
 * The untyped endpoint: any method, any payload.
 *
 * @example Usage
 * ```ts
 * import { Peer, type AnyEndpoint } from "@duplex/ws";
 *
 * type Untyped = Peer<AnyEndpoint, AnyEndpoint>;
 * ```
 */
export interface AnyEndpoint extends Endpoint {
  /** Any method, any params, any result. */
  requests: Record<string, (params: unknown) => unknown>;
  /** Any method, any payload. */
  notifications: Record<string, unknown>;
}

/**
 * The request method names of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { RequestMethod } from "@duplex/ws";
 *
 * type Names = RequestMethod<{ requests: { sum: (p: number[]) => number }; notifications: {} }>;
 * const name: Names = "sum";
 * ```
 */
export type RequestMethod<E extends Endpoint> = keyof E["requests"] & string;

/**
 * The notification method names of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { NotificationMethod } from "@duplex/ws";
 *
 * type Names = NotificationMethod<{ requests: {}; notifications: { tick: number } }>;
 * const name: Names = "tick";
 * ```
 */
export type NotificationMethod<E extends Endpoint> =
  & keyof E["notifications"]
  & string;

/**
 * The params of request method `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { ParamsOf } from "@duplex/ws";
 *
 * type Api = { requests: { sum: (p: number[]) => number }; notifications: {} };
 * const params: ParamsOf<Api, "sum"> = [1, 2];
 * ```
 */
export type ParamsOf<E extends Endpoint, M extends RequestMethod<E>> =
  E["requests"][M] extends (params: infer P) => unknown ? P : never;

/**
 * The result of request method `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { ResultOf } from "@duplex/ws";
 *
 * type Api = { requests: { sum: (p: number[]) => number }; notifications: {} };
 * const result: ResultOf<Api, "sum"> = 3;
 * ```
 */
export type ResultOf<E extends Endpoint, M extends RequestMethod<E>> =
  E["requests"][M] extends (params: never) => infer R ? Awaited<R> : never;

/**
 * The payload of notification `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { PayloadOf } from "@duplex/ws";
 *
 * type Api = { requests: {}; notifications: { tick: number } };
 * const payload: PayloadOf<Api, "tick"> = 1;
 * ```
 */
export type PayloadOf<E extends Endpoint, M extends NotificationMethod<E>> =
  E["notifications"][M];

/**
 * What a request handler knows about the request it answers.
 *
 * @example Usage
 * ```ts
 * import { Peer, type RequestContext } from "@duplex/ws";
 *
 * function log(context: RequestContext): string {
 *   return `${context.from ?? "anonymous"} asked ${context.method ?? "default"}`;
 * }
 * ```
 */
export interface RequestContext {
  /** The connection the request came in on. */
  readonly peer: Peer<Endpoint, Endpoint>;
  /** The request's sequence. */
  readonly sequence: number;
  /** The request's method; `undefined` for the default handler. */
  readonly method: string | undefined;
  /**
   * Who sent it: the peer's `identity` (the server's idea of the user), or
   * for a peer with no identity the frame's `from`.
   */
  readonly from: string | undefined;
  /** Aborts when the caller cancels or the connection closes. */
  readonly signal: AbortSignal;
}

/**
 * Answers one request. Its return value (or the value of its promise)
 * becomes the response; a thrown {@linkcode RemoteError} is sent as is; any
 * other throw becomes a generic `INTERNAL_ERROR`.
 *
 * @example Usage
 * ```ts
 * import type { RequestHandler } from "@duplex/ws";
 *
 * const sum: RequestHandler<number[], number> = (numbers) =>
 *   numbers.reduce((a, b) => a + b, 0);
 * ```
 */
export type RequestHandler<P = unknown, R = unknown> = (
  params: P,
  context: RequestContext,
) => R | Promise<R>;

/**
 * Receives one notification. The frame gives `from` (trusted as described
 * for {@linkcode RequestContext.from}), `method` and `sequence`.
 *
 * @example Usage
 * ```ts
 * import type { NotificationListener } from "@duplex/ws";
 *
 * const show: NotificationListener<string> = (text, frame) =>
 *   console.log(`${frame.from}: ${text}`);
 * ```
 */
export type NotificationListener<T = unknown> = (
  payload: T,
  frame: NotifyFrame,
) => void;

/**
 * Options of one outgoing request.
 *
 * @example Usage
 * ```ts
 * import type { RequestOptions } from "@duplex/ws";
 *
 * const options: RequestOptions = { timeout: 2_000, signal: AbortSignal.timeout(5_000) };
 * ```
 */
export interface RequestOptions {
  /**
   * Timeout in milliseconds; 0 disables it.
   *
   * @default {the peer's timeout}
   */
  timeout?: number;
  /**
   * Aborting it rejects the request with `signal.reason` and sends a cancel
   * frame, which aborts the handler's signal on the other side.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * What a peer does with notifications when the socket's send buffer is over
 * its high-water mark: `"drop"` them (counted) or `"close"` the connection
 * with 1013. Responses and requests are never dropped.
 *
 * @example Usage
 * ```ts
 * import type { BackpressurePolicy } from "@duplex/ws";
 *
 * const policy: BackpressurePolicy = "drop";
 * ```
 */
export type BackpressurePolicy = "drop" | "close";

/**
 * A policy for the traffic of one connection, consulted by its
 * {@linkcode Peer}: the server gives each connection a
 * {@linkcode PeerLimits} (size, rate, in-flight and backpressure limits);
 * a peer without a guard accepts everything.
 *
 * @example A guard that refuses every request
 * ```ts
 * import type { PeerGuard } from "@duplex/ws";
 *
 * const readOnly: PeerGuard = {
 *   inbound: () => undefined,
 *   admit: () => ({ code: "FORBIDDEN", message: "Cannot handle request: read-only" }),
 *   outbound: () => true,
 * };
 * ```
 */
export interface PeerGuard {
  /**
   * Screens one incoming message before it is decoded. It may close the
   * peer.
   *
   * @param peer The peer that received it.
   * @param data The message as received.
   * @returns `undefined` to accept the message; `false` to ignore it; an
   * error to refuse it: a request gets it as its error response,
   * notifications and pings are dropped, responses and cancels are still
   * processed.
   */
  inbound(
    peer: Peer<Endpoint, Endpoint>,
    data: unknown,
  ): ErrorPayload | false | undefined;
  /**
   * Decides whether an incoming request may start its handler now.
   *
   * @param peer The peer that received it.
   * @returns `undefined` to handle it, or the error to answer with.
   */
  admit(peer: Peer<Endpoint, Endpoint>): ErrorPayload | undefined;
  /**
   * Decides whether a notification may be sent now. It may close the peer.
   *
   * @param peer The peer about to send it.
   * @returns `false` to drop it.
   */
  outbound(peer: Peer<Endpoint, Endpoint>): boolean;
}

/**
 * Options of a {@linkcode Peer}.
 *
 * @example Usage
 * ```ts
 * import type { PeerOptions } from "@duplex/ws";
 *
 * const options: PeerOptions = { timeout: 10_000, maxPending: 1_000 };
 * ```
 */
export interface PeerOptions {
  /**
   * Called once when the connection closes, before the `close` event. A
   * cheaper alternative to a `close` listener for code that owns many peers
   * (the server): it costs no listener registration per connection.
   *
   * @default {undefined}
   */
  onClose?: (code: number, reason: string) => void;
  /**
   * Called with every error that the `error` event reports (a handler or
   * listener that threw, or a frame that broke the protocol).
   *
   * @default {undefined}
   */
  onError?: (error: unknown) => void;
  /**
   * Encodes and decodes frames.
   *
   * @default {jsonCodec}
   */
  codec?: Codec;
  /**
   * Default timeout of outgoing requests, in milliseconds; 0 disables it.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * The most outgoing requests pending at once.
   *
   * @default {100000}
   */
  maxPending?: number;
  /**
   * Malformed frames tolerated before the connection is closed with 1002.
   *
   * @default {10}
   */
  maxMalformed?: number;
  /**
   * Limits on incoming and outgoing traffic, e.g. a
   * {@linkcode PeerLimits} (message size, rate, requests in flight,
   * backpressure).
   *
   * @default {undefined}
   */
  guard?: PeerGuard;
  /**
   * The remote side's identity as this side knows it (the server's user id).
   * When set it is the `from` of every incoming request and notification,
   * whatever the frame says.
   *
   * @default {undefined}
   */
  identity?: string;
  /**
   * Shared handler registry; several peers may share one (the client keeps
   * its handlers across reconnects, the server across connections).
   *
   * @default {a new registry}
   */
  registry?: Registry;
}

/**
 * The events of a {@linkcode Peer}.
 *
 * @example Usage
 * ```ts
 * import type { PeerEventMap } from "@duplex/ws";
 *
 * const onClose = (event: PeerEventMap["close"]) => console.log(event.code);
 * ```
 */
export interface PeerEventMap {
  /** The connection closed; `code` and `reason` say why. */
  close: CloseEvent;
  /** A handler or listener threw, or a frame broke the protocol. */
  error: ErrorEvent;
}

/**
 * Per-peer counters, for metrics.
 *
 * @example Usage
 * ```ts
 * import type { PeerStats } from "@duplex/ws";
 *
 * const received = (stats: PeerStats) => stats.framesIn.reduce((a, b) => a + b, 0);
 * ```
 */
export interface PeerStats {
  /** Frames received, by type (index = type). */
  readonly framesIn: number[];
  /** Frames sent, by type (index = type). */
  readonly framesOut: number[];
  /** Malformed frames received. */
  malformed: number;
  /** Notifications dropped by backpressure (counted by the guard). */
  dropped: number;
  /** Frames refused by the rate limit (counted by the guard). */
  rateLimited: number;
  /** Responses that matched no pending request. */
  unexpected: number;
}

/** A request being handled; its signal is created only when asked for. */
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
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }
  abort(reason: unknown): void {
    this.#controller?.abort(reason);
  }
}

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
    framesIn: [0, 0, 0, 0, 0, 0, 0],
    framesOut: [0, 0, 0, 0, 0, 0, 0],
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
  #inFlight: Map<number, Context> | undefined = undefined;
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

  /** Incoming requests whose (asynchronous) handlers are still running. */
  get inFlight(): number {
    return this.#inFlight?.size ?? 0;
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
      if (this.#closed) throw this.#closedError();
      const { sequence, promise } = this.#requests().track<R>(options);
      try {
        // An absent method is left out of the JSON: the original frame.
        this.#sendFrame({ sequence, type: 1, message, method: options.method });
      } catch (error) {
        this.#tracker!.reject(sequence, error as Error);
      }
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
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
      case 4: {
        const context = this.#inFlight?.get(sequence);
        if (context) {
          this.#inFlight!.delete(sequence);
          context.abort(
            new DuplexError("CANCELLED", "Request cancelled by the caller"),
          );
        }
        return;
      }
      case 5:
        if (!refusal) this.#sendFrame({ sequence, type: 6 });
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
    const registry = this.registry;
    const inFlight = this.#inFlight;
    const handler = registry.handlers.get(method);
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
    if (inFlight?.has(sequence)) {
      this.#respondError(sequence, {
        code: "INVALID_FRAME",
        message:
          `Cannot handle request: sequence ${sequence} is already in flight`,
      });
      return;
    }
    const context = new Context(
      this as Peer<Endpoint, Endpoint>,
      sequence,
      method,
      this.identity ?? frame.from,
    );
    let result: unknown;
    try {
      result = (handler as RequestHandler<unknown, unknown>)(
        frame.message,
        context,
      );
    } catch (error) {
      this.#handlerFailed(sequence, error);
      return;
    }
    if (typeof (result as PromiseLike<unknown>)?.then !== "function") {
      this.#respond(sequence, result);
      return;
    }
    const running = inFlight ?? (this.#inFlight = new Map());
    running.set(sequence, context);
    const settle = (ok: boolean, value: unknown): void => {
      if (running.get(sequence) !== context) return;
      running.delete(sequence);
      if (ok) this.#respond(sequence, value);
      else this.#handlerFailed(sequence, value);
    };
    (result as PromiseLike<unknown>).then(
      (value) => settle(true, value),
      (error) => settle(false, error),
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
    const inFlight = this.#inFlight;
    if (inFlight !== undefined) {
      const contexts = [...inFlight.values()];
      inFlight.clear();
      for (const context of contexts) context.abort(error);
    }
    this.#options.onClose?.(code, reason);
    this.dispatchEvent(
      new CloseEvent("close", { code, reason, wasClean: code !== 1006 }),
    );
  }
}
