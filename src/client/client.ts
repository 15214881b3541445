/**
 * The reconnecting client: one {@linkcode Peer} per connection, a shared
 * registry of handlers, an offline queue, backoff and a heartbeat.
 *
 * @module
 */

import { Sender } from "../peer/sender.ts";
import { backoffDelay } from "./backoff.ts";
import { isFinalCloseCode } from "../wire/close_codes.ts";
import {
  ConnectError,
  ConnectionClosedError,
  errorEvent,
  QueueFullError,
  QueueTimeoutError,
} from "../wire/errors.ts";
import { Heartbeat } from "./heartbeat.ts";
import { PendingRequests } from "../peer/pending_requests.ts";
import { Peer } from "../peer/peer.ts";
import type {
  AnyEndpoint,
  Endpoint,
  NotificationMethod,
  TypedNotifyFrame,
} from "../peer/endpoint.ts";
import type { RequestOptions } from "../peer/peer_options.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import { offer, selection } from "./negotiation.ts";
import type { SocketLike } from "../peer/socket_like.ts";
import { ClientSession, type SessionOutcome } from "./client_session.ts";
import type {
  ClientOptions,
  NotificationsOptions,
  NotifyOptions,
  UrlSource,
} from "./client_options.ts";
import {
  type ClientEventMap,
  type ClientState,
  ReconnectingEvent,
} from "./client_events.ts";
import { notificationStream } from "./notification_stream.ts";

/** What the sends waiting in the queue get when the client closes. */
type Closed = (action?: string) => ConnectionClosedError;

/** The value, or what the function returns (awaited). */
async function evaluate<T>(source: T | (() => T | Promise<T>)): Promise<T> {
  return typeof source === "function" ? await (source as () => T)() : source;
}

/**
 * A reconnecting, full-duplex client for browsers and Deno. It sends
 * requests and notifications, answers the server's requests through
 * handlers, and receives notifications through listeners or an async
 * iterator. Handlers and listeners survive reconnections.
 *
 * Delivery: requests and notifications issued while disconnected wait in a
 * bounded queue and are sent once, in order, after the next connection
 * opens. Anything already handed to a socket that then drops is never
 * re-sent: pending requests reject with {@linkcode ConnectionClosedError}.
 *
 * @typeParam Local What this client answers and receives.
 * @typeParam Remote What the server answers and receives.
 *
 * @example Connect, request, close
 * ```ts
 * import { Peer } from "@duplex/ws";
 * import { Client } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "duplex.v1" });
 *   new Peer(socket).handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 *   return response;
 * });
 * const client = new Client(`ws://127.0.0.1:${server.addr.port}`);
 * await client.connect();
 * assert.equal(await client.call("sum", [1, 2, 3]), 6);
 * await client.close();
 * ```
 */
export class Client<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> extends Sender<Local, Remote, ClientEventMap, Promise<boolean>>
  implements AsyncDisposable, Disposable {
  #url: UrlSource;
  /** The URL of the last attempt, for error messages. */
  #href: string;
  #options: ClientOptions;
  #state: ClientState = "closed";
  #peer: Peer<Local, Remote> | undefined;
  /** Every socket not closed yet, including abandoned dead ones. */
  #sockets = new Set<WebSocket>();
  /** Resolves the `close()` calls waiting for the sockets. */
  #drained: Array<() => void> = [];
  /** Sends waiting for a connection: each resolves with it once open. */
  #queue: PendingRequests;
  #heartbeat: Heartbeat | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #generation = 0;
  #attempts = 0;
  #openedAt = 0;
  #closeCode = 1006;
  #closeReason = "";
  #protocol = "";
  #ready: PromiseWithResolvers<void> | undefined;
  /** Ends the open iterators. */
  #ends = new Set<() => void>();
  /** The session across connections; `undefined` with `session: false`. */
  #session: ClientSession<Peer<Local, Remote>> | undefined;
  #onGlobal = (event: Event): void => {
    if (event.type === "pagehide") {
      this.#session?.suspend();
      this.#stop(1000, "Page hidden");
    } else this.#heartbeat?.wake();
  };

  /**
   * Creates a client; nothing happens before {@linkcode Client.connect}.
   *
   * @param url The server URL, or a function returning it before every
   * attempt.
   * @param options Reconnection, queue, heartbeat and connection options.
   */
  constructor(url: UrlSource, options: ClientOptions = {}) {
    super(options.registry, options.streams);
    this.#url = url;
    this.#href = typeof url === "function" ? "(URL function)" : String(url);
    this.#options = { ...options, registry: this.registry };
    this.#queue = new PendingRequests({
      timeout: options.maxQueueWait ?? 10_000,
      maxPending: options.maxQueue ?? 100,
      timeoutError: (_, wait) => new QueueTimeoutError(wait),
      fullError: (limit) => new QueueFullError(limit),
    });
    const session = options.session ?? true;
    this.#session = session === false ? undefined : new ClientSession<
      Peer<Local, Remote>
    >(
      session === true ? {} : session,
      {
        onDetach: (code, reason) => this.#dropped(code, reason),
        onError: (error) => this.#error(error),
      },
    );
  }

  /** Where the client is in its life. */
  get state(): ClientState {
    return this.#state;
  }

  /**
   * The protocol the server speaks, as negotiated by the last connection:
   * `"duplex.v1"`, or `""` for a server of the original protocol (see
   * {@linkcode PeerOptions.original}: what the client then refuses to send).
   * `""` before the first connection.
   */
  get protocol(): string {
    return this.#protocol;
  }

  /** The connection while open, e.g. for its `stats`; else `undefined`. */
  get peer(): Peer<Local, Remote> | undefined {
    return this.#peer;
  }

  /**
   * Opens the connection. Resolves at once when open; while the client
   * (re)connects, resolves with the next connection. The first attempt is
   * made once: on failure the client is closed again (no background
   * retries). Reconnection applies to connections that opened and then
   * dropped.
   *
   * @returns Resolves when the connection is open.
   * @throws {ConnectError} When the attempt fails or times out, the client
   * gives up reconnecting, or `close()` is called first.
   */
  connect(): Promise<void> {
    if (this.#state === "open") return Promise.resolve();
    if (this.#state === "closed") {
      this.#state = "connecting";
      this.#attempts = 0;
      this.#listen("addEventListener");
      this.#attempt();
    }
    return (this.#ready ??= Promise.withResolvers()).promise;
  }

  /**
   * Same as {@linkcode Client.connect} (the original design's name).
   *
   * @returns Resolves when the connection is open.
   * @throws {ConnectError} When the connection cannot be opened.
   */
  login(): Promise<void> {
    return this.connect();
  }

  /**
   * Sends a request to the server's default handler (the original
   * protocol), or to `options.method`. While disconnected it waits in the
   * offline queue; its `timeout` starts when it is sent.
   *
   * @typeParam R The result type.
   * @param message The payload: any JSON value.
   * @param options Method, timeout and abort signal.
   * @returns The response payload.
   * @throws {ConnectionClosedError} When the connection drops before the
   * response, or the client is closed.
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {RemoteError} When the server answered with an error.
   * @throws {QueueFullError} When too many messages wait for a connection.
   * @throws {QueueTimeoutError} When no connection came within
   * `maxQueueWait`.
   */
  request<R = unknown>(
    message: unknown,
    options: RequestOptions & { method?: string } = {},
  ): Promise<R> {
    return this.#send((peer) => peer.request<R>(message, options), options);
  }

  /**
   * Sends a notification to the server's default listener, or to
   * `options.method`. While disconnected it waits in the offline queue.
   *
   * Safe to fire and forget: a failure is always reported by the `error`
   * event, and the returned promise, which rejects with the same error, is
   * already handled, so ignoring it never causes an unhandled rejection.
   *
   * @param message The payload: any JSON value.
   * @param options Method and abort signal.
   * @returns `true` once handed to the socket, `false` when dropped by the
   * peer's guard (see `PeerOptions.guard`).
   * @throws {ConnectionClosedError} When the client is closed.
   * @throws {QueueFullError} When too many messages wait for a connection.
   * @throws {QueueTimeoutError} When no connection came in time.
   * @throws {OriginalProtocolError} When the server speaks the original
   * protocol, which takes every frame for a chat request.
   */
  notify(message: unknown, options: NotifyOptions = {}): Promise<boolean> {
    const sent = this.#send(
      (peer) => peer.notify(message, options),
      options,
      "send notification",
    );
    sent.catch((error: unknown) => this.#error(error));
    return sent;
  }

  /**
   * Iterates over incoming notifications (all, or those of one method),
   * across reconnections. The iteration ends when the client closes, or
   * throws a `BUFFER_FULL` {@linkcode DuplexError} when the consumer falls
   * `bufferSize` notifications behind.
   *
   * @typeParam M The method; its frames' `message` has its payload type.
   * @param options The method and the buffer size.
   * @returns An async iterator of notify frames (`message`, `method`,
   * `from`).
   */
  notifications<
    M extends NotificationMethod<Local> | undefined = undefined,
  >(
    options: NotificationsOptions<M> = {},
  ): AsyncIterableIterator<TypedNotifyFrame<Local, M>> {
    return notificationStream(
      this.registry,
      this.#ends,
      options,
    ) as AsyncIterableIterator<TypedNotifyFrame<Local, M>>;
  }

  /**
   * Iterates over every incoming notification: `for await (const frame of
   * client)`. Same as {@linkcode Client.notifications} without options.
   *
   * @returns An async iterator of notify frames.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<NotifyFrame> {
    return this.notifications();
  }

  /**
   * Closes the connection and stops reconnecting. Pending and queued
   * requests reject with {@linkcode ConnectionClosedError}; a `connect()`
   * in progress rejects with {@linkcode ConnectError}; iterators end.
   * Idempotent.
   *
   * @param code The close code: 1000 or 3000 to 4999.
   * @param reason The close reason (at most 123 bytes).
   * @returns Resolves when every socket of the client has closed, or after
   * `closeTimeout`. In Deno, a socket whose server never answers the close
   * frame (an original-protocol server) stays CLOSING and keeps the process
   * alive until the server drops the connection: Deno's client WebSocket
   * cannot be terminated (denoland/deno#36337). Calling `close()` again
   * waits for such sockets again.
   */
  close(code = 1000, reason = ""): Promise<void> {
    this.#stop(code, reason);
    return new Promise((resolve) => {
      if (!this.#sockets.size) return resolve();
      const timer = setTimeout(resolve, this.#options.closeTimeout ?? 5_000);
      this.#drained.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /**
   * Same as {@linkcode Client.close} (the original design's name).
   *
   * @param code The close code.
   * @param reason The close reason.
   * @returns Resolves when every socket of the client has closed.
   */
  logout(code = 1000, reason = ""): Promise<void> {
    return this.close(code, reason);
  }

  /** Closes with 1000 and waits for the sockets, as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** Closes with 1000 without waiting for the sockets. */
  [Symbol.dispose](): void {
    this.#stop(1000, "");
  }

  #send<T>(
    run: (peer: Peer<Local, Remote>) => T | Promise<T>,
    { signal }: { signal?: AbortSignal },
    action?: string,
  ): Promise<T> {
    try {
      const peer = this.#peer;
      if (peer?.socket.readyState === 1 && this.#state === "open") {
        return Promise.resolve(run(peer));
      }
      if (
        this.#state === "closed" ||
        this.#options.queueWhileDisconnected === false
      ) {
        throw new ConnectionClosedError(this.#closeCode, this.#closeReason, {
          action,
        });
      }
      // Waits, in order, for the connection; or rejects on overflow, expiry
      // or abort. The close resolves it with what to throw, worded for it.
      return this.#queue.track<Peer<Local, Remote> | Closed>({ signal })
        .promise.then((to) => {
          if (typeof to === "function") throw to(action);
          return run(to);
        });
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #attempt(): void {
    let generation = ++this.#generation;
    const options = this.#options;
    const timeout = options.connectTimeout ?? 10_000;
    let ws: WebSocket | undefined;
    let reason = "connection failed";
    let status: number | undefined;
    const fail = (why: string, code?: number, cause?: unknown): void => {
      if (generation !== this.#generation) return;
      this.#generation++;
      clearTimeout(this.#timer);
      ws?.close();
      const error = new ConnectError(this.#href, why, code, { cause, status });
      this.#ended(
        new CloseEvent("close", { code: code ?? 1006, reason: error.message }),
        error,
        status === 401 || status === 403,
      );
    };
    this.#timer = setTimeout(
      () => fail(`no connection after ${timeout} ms`),
      timeout,
    );
    (async () => {
      const target = await evaluate(this.#url);
      const extra = await evaluate(options.protocols ?? []);
      if (generation !== this.#generation) return;
      this.#href = String(target);
      const session = this.#session;
      const codec = options.codec?.protocol;
      const protocols = offer(codec, !!session, extra, options.nagle);
      const socket = ws = new WebSocket(target, protocols);
      this.#sockets.add(socket);
      socket.binaryType = "arraybuffer";
      socket.onerror = (event) => {
        // Deno reports the HTTP status of a refused handshake; browsers
        // report nothing (the close code is 1006).
        reason = (event as ErrorEvent).message || reason;
        status ??= Number(/status code:? (\d{3})\b/i.exec(reason)?.[1]) ||
          undefined;
      };
      socket.onclose = (event) => {
        this.#sockets.delete(socket);
        if (!this.#sockets.size) {
          for (const resolve of this.#drained.splice(0)) resolve();
        }
        // A no-op once open: the peer reports that close.
        fail(reason, event.code || 1006);
      };
      socket.onopen = () => {
        if (generation !== this.#generation) return;
        // The server grants a session (or a codec) by selecting its protocol.
        const chosen = selection(socket.protocol, codec, !!session);
        const coded = chosen.coded ? options.codec : undefined;
        coded?.prepare?.(socket);
        // batches: it offered duplex.batch (see offer()).
        const createPeer = (
          over: SocketLike,
          add: object,
        ): Peer<Local, Remote> =>
          new Peer(over, { ...options, codec: coded, batches: true, ...add });
        this.#protocol = chosen.protocol;
        if (session === undefined || !chosen.session) {
          generation = -1;
          // Without duplex.v1 the server speaks the original protocol: only
          // original frames may go out.
          this.#opened(
            createPeer(socket, { original: chosen.original }),
          );
          return;
        }
        // createPeer: the session's `sequences` reach its pending requests.
        session.handshake(
          socket,
          createPeer,
          coded,
          () => generation === this.#generation,
          (outcome, error) => {
            if (!outcome) return fail("session handshake failed", 1002, error);
            generation = -1;
            this.#opened(outcome.peer, outcome);
          },
        );
      };
    })().catch((error) => fail(String(error?.message ?? error), 1006, error));
  }

  /** A connection opened (after its session handshake, if any). */
  #opened(
    peer: Peer<Local, Remote>,
    outcome?: SessionOutcome<Peer<Local, Remote>>,
  ): void {
    const options = this.#options;
    clearTimeout(this.#timer);
    this.#peer = peer;
    this.#state = "open";
    this.#openedAt = Date.now();
    if (outcome === undefined || outcome.fresh) {
      // A session's peer outlives its connections: its close is the
      // session's end, which matters only while it is the open one.
      peer.addEventListener("close", (event) => {
        if (peer === this.#peer) this.#connectionEnded(event);
      });
      peer.addEventListener("error", (event) => this.#error(event.error));
    }
    const transport = outcome?.socket;
    // An original server would relay pings as chat: no heartbeat.
    this.#heartbeat = peer.original ? undefined : new Heartbeat(
      peer,
      transport === undefined
        ? () => peer.close(4000, "Ping timeout")
        : () => transport.drop(4000, "Ping timeout"), // CloseCode.PingTimeout
      { interval: options.pingInterval, timeout: options.pingTimeout },
    );
    // Queued sends go out in order, each once, on this connection: in
    // the microtasks queued here, before `open` and `connect()`.
    this.#queue.resolveAll(peer);
    const event = outcome?.event;
    queueMicrotask(() => {
      this.#ready?.resolve();
      this.#ready = undefined;
      if (event !== undefined) this.dispatchEvent(event);
      this.dispatchEvent(new Event("open"));
    });
  }

  /** The open connection ended: reconnect or close. */
  #connectionEnded(event: CloseEvent): void {
    this.#peer = undefined;
    this.#heartbeat?.stop();
    this.#closeCode = event.code;
    this.#closeReason = event.reason;
    if (Date.now() - this.#openedAt >= (this.#options.resetAfter ?? 5_000)) {
      this.#attempts = 0;
    }
    this.#ended(event);
  }

  /** The session's WebSocket dropped; the session waits for a resume. */
  #dropped(code: number, reason: string): void {
    if (this.#peer === undefined) return;
    this.#connectionEnded(
      new CloseEvent("close", { code, reason, wasClean: code !== 1006 }),
    );
  }

  /**
   * An open connection closed (no `error`), or an attempt failed: decides
   * between reconnecting and closing, and tells the listeners.
   */
  #ended(event: CloseEvent, error?: ConnectError, refused = false): void {
    const retry = this.#state === (error ? "reconnecting" : "open") &&
      this.#mayRetry(event, refused);
    if (retry) {
      this.#state = "reconnecting";
    } else if (this.#state !== "closed") {
      this.#shutdown(event.code, error ? "" : event.reason, error);
    }
    if (error) this.#error(error);
    // A failed attempt that will be retried is no news.
    if (!(retry && error)) this.dispatchEvent(new CloseEvent("close", event));
    if (this.#state === "reconnecting") this.#schedule();
  }

  #mayRetry(event: CloseEvent, refused: boolean): boolean {
    const options = this.#options;
    try {
      return !refused && !isFinalCloseCode(event.code) &&
        this.#attempts < (options.maxAttempts ?? Infinity) &&
        (options.shouldReconnect?.(event) ?? true);
    } catch (error) {
      this.#error(error);
      return false;
    }
  }

  #schedule(): void {
    const attempt = ++this.#attempts;
    const delay = backoffDelay(attempt - 1, this.#options);
    this.#timer = setTimeout(() => this.#attempt(), delay);
    this.dispatchEvent(new ReconnectingEvent(attempt, delay));
  }

  #stop(code: number, reason: string): void {
    if (this.#state === "closed") return;
    const peer = this.#peer;
    this.#shutdown(code, reason);
    if (peer) {
      peer.close(code, reason);
    } else {
      // The attempt in progress (the others are closing already).
      for (const socket of this.#sockets) socket.close();
      this.dispatchEvent(
        new CloseEvent("close", { code, reason, wasClean: true }),
      );
    }
  }

  /** Enters the closed state: rejects what waits, stops every timer. */
  #shutdown(code: number, reason: string, error?: ConnectError): void {
    this.#state = "closed";
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#generation++;
    clearTimeout(this.#timer);
    this.#heartbeat?.stop();
    this.#listen("removeEventListener");
    // The session ends with the client (the server is told when connected).
    this.#session?.close(code, reason);
    this.#queue.resolveAll(
      ((action) =>
        new ConnectionClosedError(code, reason, {
          action,
          cause: error,
        })) as Closed,
    );
    this.#ready?.reject(
      error ?? new ConnectError(this.#href, "the client was closed", code),
    );
    this.#ready = undefined;
    for (const end of this.#ends) end();
  }

  #listen(method: "addEventListener" | "removeEventListener"): void {
    for (const type of ["pagehide", "online", "visibilitychange"]) {
      // Not every runtime is an EventTarget.
      globalThis[method]?.(type, this.#onGlobal);
    }
  }

  #error(error: unknown): void {
    this.dispatchEvent(errorEvent(error));
  }
}
