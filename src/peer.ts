/**
 * The full-duplex endpoint used by both the client and each server-side
 * connection: requests in both directions, notifications, cancellation,
 * pings, limits and backpressure over any WebSocket-like object.
 *
 * @module
 */

import { type Codec, jsonCodec } from "./codec.ts";
import {
  ConnectionClosedError,
  DuplexError,
  ProtocolError,
  RemoteError,
} from "./errors.ts";
import type { ErrorPayload, Frame, NotifyFrame } from "./protocol.ts";
import { RateLimiter, type RateLimitOptions } from "./rate_limiter.ts";
import { RequestTracker, type UnexpectedResponse } from "./request_tracker.ts";

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
 * Options of a {@linkcode Peer}.
 *
 * @example Usage
 * ```ts
 * import type { PeerOptions } from "@duplex/ws";
 *
 * const options: PeerOptions = { timeout: 10_000, maxInFlight: 64 };
 * ```
 */
export interface PeerOptions {
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
   * The most incoming requests whose handlers are running at once; beyond
   * it requests get a `TOO_MANY_REQUESTS` error response.
   *
   * @default {Infinity}
   */
  maxInFlight?: number;
  /**
   * The largest incoming message in bytes; a larger one closes the
   * connection with 1009.
   *
   * @default {Infinity}
   */
  maxMessageSize?: number;
  /**
   * Token bucket for incoming frames. A frame over the limit is refused
   * (requests get a `RATE_LIMITED` error response); `maxViolations` refusals
   * in a row close the connection with 1008.
   *
   * @default {undefined}
   */
  rateLimit?: RateLimitOptions & {
    /**
     * Refusals in a row before the connection is closed.
     *
     * @default {50}
     */
    maxViolations?: number;
  };
  /**
   * Malformed frames tolerated before the connection is closed with 1002.
   *
   * @default {10}
   */
  maxMalformed?: number;
  /**
   * Send-buffer size in bytes above which notifications are subject to
   * `backpressure`.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
  /**
   * What to do with notifications above the high-water mark.
   *
   * @default {"drop"}
   */
  backpressure?: BackpressurePolicy;
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
 * Request handlers and notification listeners, by method. A registry can be
 * shared by many peers.
 *
 * @example Usage
 * ```ts
 * import { Registry } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const registry = new Registry();
 * registry.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 * assert.ok(registry.handlers.has("sum"));
 * ```
 */
export class Registry {
  /** Request handlers by method. */
  readonly handlers: Map<string, RequestHandler<never, unknown>> = new Map();
  /** Notification listeners by method; `""` holds those without a method. */
  readonly listeners: Map<string, Set<NotificationListener<never>>> = new Map();
  /** The handler of requests without a method (the original protocol). */
  defaultHandler: RequestHandler<never, unknown> | undefined = undefined;
  /** Listeners of every notification, whatever its method. */
  readonly anyListeners: Set<NotificationListener<never>> = new Set();

  /**
   * Sets the handler of `method`, replacing any previous one.
   *
   * @param method The method name.
   * @param handler The handler.
   * @returns A function that removes the handler.
   */
  handle<P, R>(method: string, handler: RequestHandler<P, R>): () => void {
    this.handlers.set(method, handler as RequestHandler<never, unknown>);
    return () => {
      if (this.handlers.get(method) === handler) this.handlers.delete(method);
    };
  }

  /**
   * Adds a listener for notifications of `method` (`""`: without a method).
   *
   * @param method The method name.
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  on<T>(method: string, listener: NotificationListener<T>): () => void {
    let set = this.listeners.get(method);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(method, set);
    }
    set.add(listener as NotificationListener<never>);
    return () => {
      set.delete(listener as NotificationListener<never>);
    };
  }
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
  /** Notifications dropped by backpressure. */
  dropped: number;
  /** Frames refused by the rate limit. */
  rateLimited: number;
  /** Responses that matched no pending request. */
  unexpected: number;
}

/** A request being handled; its signal is created only when asked for. */
class Context implements RequestContext {
  #controller: AbortController | undefined = undefined;
  constructor(
    readonly peer: Peer<Endpoint, Endpoint>,
    readonly sequence: number,
    readonly method: string | undefined,
    readonly from: string | undefined,
  ) {}
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }
  abort(reason: unknown): void {
    this.#controller?.abort(reason);
  }
}

const OPEN = 1;

function toErrorPayload(error: unknown): ErrorPayload | undefined {
  if (error instanceof RemoteError) {
    return error.data === undefined
      ? { code: error.code, message: error.message }
      : { code: error.code, message: error.message, data: error.data };
  }
  return undefined;
}

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
> extends EventTarget {
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
  readonly identity: string | undefined;
  /** Handlers and listeners; possibly shared with other peers. */
  readonly registry: Registry;
  /** Free for the application: e.g. the user record of this connection. */
  data: unknown = undefined;

  #socket: SocketLike;
  #codec: Codec;
  #tracker: RequestTracker;
  #inFlight = new Map<number, Context>();
  #maxInFlight: number;
  #maxMessageSize: number;
  #limiter: RateLimiter | undefined;
  #maxViolations: number;
  #violations = 0;
  #maxMalformed: number;
  #highWaterMark: number;
  #closeOnBackpressure: boolean;
  #pingSequence = 0;
  #closed = false;
  #closeCode = 0;
  #closeReason = "";

  /**
   * Wraps an open (or opening) socket.
   *
   * @param socket The WebSocket.
   * @param options Limits, codec, identity and registry.
   */
  constructor(socket: SocketLike, options: PeerOptions = {}) {
    super();
    this.#socket = socket;
    this.#codec = options.codec ?? jsonCodec;
    this.identity = options.identity;
    this.registry = options.registry ?? new Registry();
    this.#maxInFlight = options.maxInFlight ?? Infinity;
    this.#maxMessageSize = options.maxMessageSize ?? Infinity;
    this.#maxMalformed = options.maxMalformed ?? 10;
    this.#highWaterMark = options.highWaterMark ?? 4 * 1024 * 1024;
    this.#closeOnBackpressure = options.backpressure === "close";
    const rateLimit = options.rateLimit;
    this.#limiter = rateLimit ? new RateLimiter(rateLimit) : undefined;
    this.#maxViolations = rateLimit?.maxViolations ?? 50;
    this.#tracker = new RequestTracker({
      timeout: options.timeout,
      maxPending: options.maxPending,
      onAbandon: (sequence) => this.#sendCancel(sequence),
      onUnexpected: (sequence, kind) => this.#onUnexpected(sequence, kind),
    });
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
    if (socket.readyState > OPEN) this.#onClose(1006, "");
  }

  /**
   * Listens for `close` (a `CloseEvent`) or `error` (an `ErrorEvent`).
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override addEventListener<K extends keyof PeerEventMap>(
    type: K,
    listener: (event: PeerEventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for an event by name.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  override addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void {
    super.addEventListener(type, listener, options);
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
    return this.#tracker.size;
  }

  /** Incoming requests whose (asynchronous) handlers are still running. */
  get inFlight(): number {
    return this.#inFlight.size;
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
    if (this.#closed) {
      return Promise.reject(
        new ConnectionClosedError(this.#closeCode, this.#closeReason),
      );
    }
    let sequence: number;
    let promise: Promise<R>;
    try {
      ({ sequence, promise } = this.#tracker.track<R>(options));
    } catch (error) {
      return Promise.reject(error);
    }
    const method = options.method;
    try {
      this.#socket.send(
        this.#codec.encode(
          method === undefined
            ? { sequence, type: 1, message }
            : { sequence, type: 1, message, method },
        ),
      );
      this.stats.framesOut[1]++;
    } catch (error) {
      this.#tracker.reject(
        sequence,
        error instanceof Error ? error : new Error(String(error)),
      );
    }
    return promise;
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
    return this.request<ResultOf<Remote, M>>(params, { ...options, method });
  }

  /**
   * Sends a notification without a method, or with `options.method`. Above
   * the high-water mark it is dropped or the connection closed, per the
   * backpressure policy.
   *
   * @param message The payload: any JSON value.
   * @param options The method.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  notify(message: unknown, options: { method?: string } = {}): boolean {
    const method = options.method;
    return this.sendNotification(
      this.#codec.encode(
        method === undefined
          ? { sequence: 0, type: 3, message }
          : { sequence: 0, type: 3, message, method },
      ),
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
   * Sends an already encoded notification, subject to the backpressure
   * policy. Broadcasts encode once and call this for every receiver.
   *
   * @param data The encoded notify frame.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  sendNotification(data: string | Uint8Array<ArrayBuffer>): boolean {
    const socket = this.#socket;
    if (this.#closed || socket.readyState !== OPEN) {
      throw new ConnectionClosedError(
        this.#closeCode || 1006,
        this.#closeReason,
      );
    }
    if (socket.bufferedAmount > this.#highWaterMark) {
      this.stats.dropped++;
      if (this.#closeOnBackpressure) {
        this.close(1013, "Too slow: send buffer full");
      }
      return false;
    }
    socket.send(data);
    this.stats.framesOut[3]++;
    return true;
  }

  /**
   * Sends an application-level ping; the other side answers with a pong.
   * Any incoming frame counts as a sign of life (see `stats.framesIn`).
   *
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  ping(): void {
    this.#sendFrame({
      sequence: this.#pingSequence = (this.#pingSequence + 1) & 0x7fffffff,
      type: 5,
    });
  }

  /**
   * Sets the handler of request method `method`, replacing any previous one.
   *
   * @typeParam M The method name.
   * @typeParam P The params type: the endpoint's, or for an untyped endpoint
   * whatever the handler declares.
   * @param method The method name.
   * @param handler The handler.
   * @returns A function that removes the handler.
   */
  handle<
    M extends RequestMethod<Local>,
    P extends ParamsOf<Local, M> = ParamsOf<Local, M>,
  >(
    method: M,
    handler: RequestHandler<P, ResultOf<Local, M>>,
  ): () => void {
    return this.registry.handle(method, handler);
  }

  /**
   * Sets the handler of requests without a method (the original protocol).
   *
   * @param handler The handler.
   */
  onRequest(handler: RequestHandler<unknown, unknown>): void {
    this.registry.defaultHandler = handler;
  }

  /**
   * Adds a listener for notifications of `method`.
   *
   * @typeParam M The method name.
   * @typeParam P The payload type: the endpoint's, or for an untyped
   * endpoint whatever the listener declares.
   * @param method The method name.
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  on<
    M extends NotificationMethod<Local>,
    P extends PayloadOf<Local, M> = PayloadOf<Local, M>,
  >(
    method: M,
    listener: NotificationListener<P>,
  ): () => void {
    return this.registry.on(method, listener);
  }

  /**
   * Adds a listener for notifications without a method (the original
   * protocol's chat messages).
   *
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  onNotify(listener: NotificationListener<unknown>): () => void {
    return this.registry.on("", listener);
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
    } else if (event.type === "close") {
      const close = event as CloseEvent;
      this.#onClose(close.code, close.reason);
    }
  }

  /**
   * Processes one incoming WebSocket message: limits, decoding, dispatch.
   *
   * @param data The message data.
   */
  receive(data: unknown): void {
    if (this.#closed) return;
    const size = typeof data === "string"
      ? data.length
      : (data as ArrayBufferLike).byteLength ?? 0;
    if (size > this.#maxMessageSize / 3 && this.#tooBig(data, size)) {
      this.close(1009, "Message too big");
      return;
    }
    const limiter = this.#limiter;
    let limited = false;
    if (limiter !== undefined) {
      if (limiter.take()) {
        this.#violations = 0;
      } else {
        limited = true;
        this.stats.rateLimited++;
        if (++this.#violations > this.#maxViolations) {
          this.close(1008, "Rate limit exceeded");
          return;
        }
      }
    }
    let frame: Frame;
    try {
      frame = this.#codec.decode(data);
    } catch (error) {
      this.#onMalformed(error);
      return;
    }
    this.stats.framesIn[frame.type]++;
    switch (frame.type) {
      case 1:
        if (limited) {
          this.#respondError(frame.sequence, {
            code: "RATE_LIMITED",
            message: "Too many messages: slow down",
          });
        } else {
          this.#onRequest(frame.sequence, frame.message, frame.method, frame);
        }
        return;
      case 2:
        if (frame.error === undefined) {
          this.#tracker.resolve(frame.sequence, frame.message);
        } else {
          this.#tracker.reject(frame.sequence, new RemoteError(frame.error));
        }
        return;
      case 3:
        if (!limited) this.#onNotification(frame);
        return;
      case 4: {
        const context = this.#inFlight.get(frame.sequence);
        if (context !== undefined) {
          this.#inFlight.delete(frame.sequence);
          context.abort(
            new DuplexError("CANCELLED", "Request cancelled by the caller"),
          );
        }
        return;
      }
      case 5:
        if (!limited) this.#sendFrame({ sequence: frame.sequence, type: 6 });
        return;
    }
  }

  #tooBig(data: unknown, size: number): boolean {
    if (typeof data !== "string") return size > this.#maxMessageSize;
    if (size > this.#maxMessageSize) return true;
    // Up to three UTF-8 bytes per UTF-16 unit: count exactly.
    return new TextEncoder().encode(data).byteLength > this.#maxMessageSize;
  }

  #onMalformed(error: unknown): void {
    this.stats.malformed++;
    const protocolError = error instanceof ProtocolError
      ? error
      : new ProtocolError(
        "Cannot decode frame: codec failed",
        undefined,
        undefined,
        { cause: error },
      );
    this.dispatchEvent(
      new ErrorEvent("error", {
        error: protocolError,
        message: protocolError.message,
      }),
    );
    if (this.stats.malformed > this.#maxMalformed) {
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

  #onRequest(
    sequence: number,
    message: unknown,
    method: string | undefined,
    frame: { from?: string },
  ): void {
    const registry = this.registry;
    const handler = method === undefined
      ? registry.defaultHandler
      : registry.handlers.get(method);
    if (handler === undefined) {
      this.#respondError(sequence, {
        code: "METHOD_NOT_FOUND",
        message: method === undefined
          ? "Cannot handle request: no default handler"
          : `Cannot handle request: unknown method ${JSON.stringify(method)}`,
      });
      return;
    }
    if (this.#inFlight.has(sequence)) {
      this.#respondError(sequence, {
        code: "INVALID_FRAME",
        message:
          `Cannot handle request: sequence ${sequence} is already in flight`,
      });
      return;
    }
    if (this.#inFlight.size >= this.#maxInFlight) {
      this.#respondError(sequence, {
        code: "TOO_MANY_REQUESTS",
        message:
          `Cannot handle request: ${this.#maxInFlight} already in flight`,
      });
      return;
    }
    const from = this.identity ?? frame.from;
    const context = new Context(
      this as Peer<Endpoint, Endpoint>,
      sequence,
      method,
      from,
    );
    let result: unknown;
    try {
      result = (handler as RequestHandler<unknown, unknown>)(message, context);
    } catch (error) {
      this.#handlerFailed(sequence, error);
      return;
    }
    if (
      result === null || typeof result !== "object" ||
      typeof (result as PromiseLike<unknown>).then !== "function"
    ) {
      this.#respond(sequence, result);
      return;
    }
    this.#inFlight.set(sequence, context);
    (result as PromiseLike<unknown>).then(
      (value) => {
        if (this.#inFlight.get(sequence) !== context) return;
        this.#inFlight.delete(sequence);
        this.#respond(sequence, value);
      },
      (error) => {
        if (this.#inFlight.get(sequence) !== context) return;
        this.#inFlight.delete(sequence);
        this.#handlerFailed(sequence, error);
      },
    );
  }

  #handlerFailed(sequence: number, error: unknown): void {
    const payload = toErrorPayload(error);
    if (payload !== undefined) {
      this.#respondError(sequence, payload);
      return;
    }
    this.dispatchEvent(
      new ErrorEvent("error", {
        error,
        message: error instanceof Error ? error.message : String(error),
      }),
    );
    this.#respondError(sequence, {
      code: "INTERNAL_ERROR",
      message: "Internal error",
    });
  }

  #respond(sequence: number, message: unknown): void {
    let data: string | Uint8Array<ArrayBuffer>;
    try {
      data = this.#codec.encode({ sequence, type: 2, message });
    } catch (error) {
      this.#handlerFailed(sequence, error);
      return;
    }
    this.#sendData(data, 2);
  }

  #respondError(sequence: number, error: ErrorPayload): void {
    this.#sendData(
      this.#codec.encode({ sequence, type: 2, error }),
      2,
    );
  }

  #onNotification(frame: NotifyFrame): void {
    if (this.identity !== undefined) frame.from = this.identity;
    const registry = this.registry;
    const set = registry.listeners.get(frame.method ?? "");
    if (set !== undefined) {
      for (const listener of set) this.#deliver(listener, frame);
    }
    for (const listener of registry.anyListeners) {
      this.#deliver(listener, frame);
    }
  }

  #deliver(listener: NotificationListener<never>, frame: NotifyFrame): void {
    try {
      (listener as NotificationListener<unknown>)(frame.message, frame);
    } catch (error) {
      this.dispatchEvent(
        new ErrorEvent("error", {
          error,
          message: error instanceof Error ? error.message : String(error),
        }),
      );
    }
  }

  #sendCancel(sequence: number): void {
    if (this.#closed || this.#socket.readyState !== OPEN) return;
    this.#sendFrame({ sequence, type: 4 });
  }

  #sendFrame(frame: Frame): void {
    this.#sendData(this.#codec.encode(frame), frame.type);
  }

  /** Sends a response or control frame; silently skipped once closed. */
  #sendData(data: string | Uint8Array<ArrayBuffer>, type: number): void {
    if (this.#closed || this.#socket.readyState !== OPEN) return;
    this.#socket.send(data);
    this.stats.framesOut[type]++;
  }

  #onUnexpected(_sequence: number, _kind: UnexpectedResponse): void {
    this.stats.unexpected++;
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#socket.removeEventListener("message", this);
    this.#socket.removeEventListener("close", this);
    const error = new ConnectionClosedError(code, reason);
    this.#tracker.rejectAll(error);
    const contexts = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const context of contexts) context.abort(error);
    this.dispatchEvent(
      new CloseEvent("close", { code, reason, wasClean: code !== 1006 }),
    );
  }
}
