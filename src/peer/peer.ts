/**
 * {@linkcode Peer}: one end of a full-duplex connection over a WebSocket-like
 * object, used by both the client and each server-side connection. It
 * encodes and dispatches frames: requests in both directions, notifications,
 * cancellation, pings, the guard's limits and backpressure.
 *
 * @module
 */

import { isStream, noStreams, Sender } from "./sender.ts";
import { STREAMS_UNSUPPORTED } from "./sender.ts";
import { type Codec, jsonCodec } from "../wire/codec.ts";
import { isBatch, readBatch } from "../wire/batch.ts";
import {
  ConnectionClosedError,
  DuplexError,
  errorEvent,
  RemoteError,
} from "../wire/errors.ts";
import { chatOnly, checkOriginalRequest } from "./original_protocol.ts";
import {
  asProtocolError,
  invalidFrame,
  MalformedFrames,
} from "./malformed_frames.ts";
import {
  type ErrorPayload,
  type Frame,
  type NotifyFrame,
  type RequestFrame,
  SUBPROTOCOL,
} from "../wire/protocol.ts";
import { reportedCloseCode } from "../wire/close_codes.ts";
import { PendingRequests } from "./pending_requests.ts";
import {
  alreadyInFlight,
  handlerError,
  IncomingRequests,
  methodNotFound,
} from "./incoming_requests.ts";
import { notifyThroughMiddleware, throughMiddleware } from "./middleware.ts";
import type { AnyEndpoint, Endpoint } from "./endpoint.ts";
import type { RequestHandler } from "./handler.ts";
import { deliver } from "./receiver.ts";
import {
  type PeerEventMap,
  type PeerOptions,
  type PeerStats,
  peerStats,
  type RequestOptions,
} from "./peer_options.ts";
import { closeQuietly, readyForCodec, type SocketLike } from "./socket_like.ts";
import type { PeerStreams } from "./stream_support.ts";

// The types of its signatures, for the server, the cluster and the chat.
export type * from "./endpoint.ts";
export type * from "./handler.ts";
export type * from "./peer_guard.ts";
export type * from "./peer_options.ts";
export type * from "./socket_like.ts";

const OPEN = 1;
type OtherFrame = Exclude<Frame, RequestFrame>;

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
> extends Sender<Local, Remote, PeerEventMap, boolean> {
  /** Counters of this connection. */
  readonly stats: PeerStats = peerStats();
  /** The remote side's identity, when known (see {@linkcode PeerOptions}). */
  declare readonly identity: string | undefined;
  /** Free for the application: e.g. the user record of this connection. */
  data: unknown;

  #socket: SocketLike;
  #codec: Codec;
  // Created on first use: most of a server's idle peers never need them.
  #tracker: PendingRequests | undefined;
  #incoming: IncomingRequests | undefined;
  #streams: PeerStreams | undefined;
  #options: PeerOptions;
  #original: boolean;
  #closed = false;
  #closeCode = 0;
  #closeReason = "";
  /** Allocated on the first malformed frame. */
  #malformed: MalformedFrames | undefined;
  /**
   * The code and reason of a close under way: announced by the other side
   * (a closing frame) or by this side (`closeWithReason()`).
   */
  #closing: { code: number; reason: string } | undefined;
  #closingTimer: ReturnType<typeof setTimeout> | undefined;

  /**
   * Wraps an open (or opening) socket.
   *
   * @param socket The WebSocket.
   * @param options Codec, timeout, limits, identity and registry.
   */
  constructor(socket: SocketLike, options: PeerOptions = {}) {
    super(options.registry, options.streams);
    this.#socket = socket;
    this.#options = options;
    this.#codec = options.codec ?? jsonCodec;
    this.identity = options.identity;
    this.#original = options.original ?? false;
    if (options.codec) readyForCodec(socket, options.codec);
    socket.addEventListener("message", this);
    socket.addEventListener("close", this);
    if (socket.readyState > OPEN) this.#onClose(1006, "");
  }

  #requests(): PendingRequests {
    return this.#tracker ??= new PendingRequests({
      ...this.#options,
      onAbandon: this.#original // It would take a cancel for a request.
        ? undefined
        : (sequence) => this.#sendFrame({ sequence, type: 4 }),
      onUnexpected: () => this.stats.unexpected++,
    });
  }

  /** The socket this peer runs over. */
  get socket(): SocketLike {
    return this.#socket;
  }

  /**
   * The subprotocol the handshake selected (`"duplex.v1"`), or `""` (the
   * original protocol, or a socket that does not say): the `protocol`
   * option, else the socket's.
   */
  get protocol(): string {
    return this.#options.protocol ?? this.#socket.protocol ?? "";
  }

  /** `true` when the other side speaks only the original protocol. */
  get original(): boolean {
    return this.#original;
  }

  /** `true` once the socket closed or `close()` was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Rejects pending request `sequence` (a session's in-doubt request). */
  failRequest(sequence: number, error: Error): boolean {
    return this.#tracker?.reject(sequence, error) ?? false;
  }

  /** Outgoing requests waiting for their response. */
  get pending(): number {
    return this.#tracker?.size ?? 0;
  }

  /** Incoming requests whose handlers or streamed results still run. */
  get inFlight(): number {
    return (this.#incoming?.size ?? 0) + (this.#streams?.producing ?? 0);
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
   * @throws {OriginalProtocolError} With a method or a non-string message
   * when the other side speaks the original protocol.
   */
  request<R = unknown>(
    message: unknown,
    options: RequestOptions & { method?: string } = {},
  ): Promise<R> {
    try {
      if (this.#closed || this.#closing) throw this.#closedError();
      if (this.#original) checkOriginalRequest(message, options.method);
      const { sequence, promise } = this.#requests().track<R>(options);
      try {
        // An absent method is left out of the JSON: the original frame.
        if (!("credit" in options) && !isStream(message)) {
          this.#sendFrame({
            sequence,
            type: 1,
            message,
            method: options.method,
          });
        } else this.#streamsOf().request(sequence, options, message, promise);
      } catch (error) {
        this.#tracker!.reject(sequence, error as Error);
      }
      return promise;
    } catch (error) {
      return Promise.reject(error);
    }
  }

  #streamsOf(): PeerStreams {
    const support = this.#options.streams;
    if (!support) throw noStreams();
    return this.#streams ??= support.ends(
      (frame) => this.#sendFrame(frame),
      (sequence, error) => this.#handlerFailed(sequence, error),
    );
  }

  /**
   * Sends a notification without a method, or with `options.method`. The
   * guard may drop it (backpressure) or close the connection.
   *
   * @param message The payload: any JSON value.
   * @param options The method.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   * @throws {OriginalProtocolError} When the other side speaks the original
   * protocol, which takes every frame for a chat request.
   */
  notify(message: unknown, options: { method?: string } = {}): boolean {
    if (this.#original && !this.#closed) throw chatOnly("send a notification");
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
   * Sends an already encoded notification, subject to the guard's
   * backpressure policy. Broadcasts encode once and call this for every
   * receiver.
   *
   * @param data The encoded notify frame.
   * @returns `true` when it was handed to the socket.
   * @throws {ConnectionClosedError} When the connection is closed.
   */
  sendNotification(data: string | Uint8Array<ArrayBuffer>): boolean {
    if (this.#closed || this.#closing || this.#socket.readyState !== OPEN) {
      throw this.#closedError("send notification");
    }
    if (this.#options.guard?.outbound(this) === false) return false;
    this.#sendData(data, 3);
    return true;
  }

  /**
   * Sends an application-level ping; the other side answers with a pong.
   * Any incoming frame counts as a sign of life (see `stats.framesIn`).
   * Pings carry sequence 0, which no request has: a peer that answered one
   * with a response could not settle a request.
   *
   * @throws {OriginalProtocolError} When the other side speaks the original
   * protocol, which would relay the ping as a chat message.
   */
  ping(): void {
    if (this.#original) throw chatOnly("ping");
    this.#sendFrame({ sequence: 0, type: 5 });
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
    if (!this.#closed) closeQuietly(this.#socket, code, reason);
    this.#onClose(code, reason);
  }

  /**
   * Closes the connection for a reason the other side must learn even if
   * the close frame is lost (a Deno server's close frame is, when the other
   * side is still sending). With a `duplex.v1` peer it stops taking
   * requests and notifications, lets the running handlers deliver their
   * responses, then sends a closing frame (type 7) with `code` and `reason`
   * and waits for the other side to close (a Duplex client does at once),
   * each wait bounded by `grace` ms. With any other peer it is
   * {@linkcode Peer.close}. Idempotent.
   *
   * @param code The close code.
   * @param reason The close reason (at most 123 bytes).
   * @param options How long each wait may last, in ms (default 1000).
   */
  closeWithReason(
    code: number,
    reason = "",
    options: { grace?: number } = {},
  ): void {
    if (this.#closed || this.#closing) return;
    if (this.protocol !== SUBPROTOCOL || this.#socket.readyState !== OPEN) {
      this.close(code, reason);
      return;
    }
    this.#closing = { code, reason };
    this.#tracker?.rejectAll(new ConnectionClosedError(code, reason));
    const grace = options.grace ?? 1_000;
    const announce = (): void => {
      clearTimeout(this.#closingTimer);
      if (this.#closed) return;
      this.#sendFrame({ sequence: 0, type: 7, code, reason });
      this.#closingTimer = setTimeout(() => this.close(code, reason), grace);
    };
    const incoming = this.#incoming;
    if (incoming === undefined || incoming.size === 0) {
      announce();
    } else {
      incoming.onIdle = announce;
      this.#closingTimer = setTimeout(announce, grace);
    }
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
      // Reported as a closing frame announced it (its close frame may be lost).
      const closing = this.#closing;
      this.#onClose(
        closing?.code ?? reportedCloseCode((event as CloseEvent).code),
        closing?.reason ?? (event as CloseEvent).reason,
      );
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
    const streams = guard && this.#streams?.open ? this.#streams : undefined;
    let refusal = guard?.inbound(this, data, streams !== undefined);
    if (refusal === false) return;
    if (this.#options.batches && isBatch(data)) {
      const admitted = refusal;
      readBatch(
        data,
        (frame) => this.#closed || this.#onFrame(frame, admitted),
        (error) => this.#onMalformed(error),
      );
      return;
    }
    let frame: Frame;
    try {
      frame = this.#codec.decode(data);
    } catch (error) {
      this.#onMalformed(error);
      return;
    }
    if (streams?.asked(frame) === false) refusal = guard!.inbound(this, data);
    if (refusal === false) return;
    this.#onFrame(frame, refusal);
  }

  #onFrame(frame: Frame, refusal: ErrorPayload | undefined): void {
    this.stats.framesIn[frame.type]++;
    // Other types apart: this stays small enough for V8 to inline it.
    if (frame.type !== 1) this.#onOtherFrame(frame, refusal);
    else if (!this.#closing) {
      const error = refusal ?? this.#options.guard?.admit(this);
      if (error) this.#respondError(frame.sequence, error);
      else this.#onRequest(frame);
    }
  }

  #onOtherFrame(frame: OtherFrame, refusal?: ErrorPayload): void {
    const sequence = frame.sequence;
    if (this.#original && (frame.type === 2 || frame.type === 3)) {
      // The original server leaves out empty strings.
      frame.message ??= "";
    }
    switch (frame.type) {
      case 2:
        if (frame.error) {
          this.#requests().reject(sequence, new RemoteError(frame.error));
        } else {
          this.#requests().resolve(sequence, frame.message);
        }
        return;
      case 3:
        if (!refusal && !this.#closing) this.#onNotification(frame);
        return;
      case 7:
        this.#onClosing(frame.code, frame.reason ?? "");
        return;
      case 4:
        this.#incoming?.cancel(sequence);
        this.#streams?.cancel(sequence);
        return;
      case 5:
        if (!refusal) this.#sendFrame({ sequence, type: 6 });
        return;
      case 6: // A pong (or a Nagle answer): its arrival was the sign of life.
        return;
      default: // 12 to 17: streams
        this.#streams?.dispatch(frame);
    }
  }

  /**
   * The other side announced its close after its last response: what is
   * still pending will not be answered; this side closes at once with the
   * announced code.
   */
  #onClosing(code: number, reason: string): void {
    if (this.#closing || this.#original) return;
    this.#closing = { code, reason };
    this.close(code, reason);
  }

  #onMalformed(error: unknown): void {
    const protocolError = asProtocolError(error);
    this.#reportError(protocolError);
    this.stats.malformed++;
    if ((this.#malformed ??= new MalformedFrames(this.#options)).add()) {
      return this.close(1002, "Too many malformed frames");
    }
    const answer = invalidFrame(protocolError);
    if (answer) this.#respondError(protocolError.sequence!, answer);
  }

  #onRequest(frame: RequestFrame): void {
    const { sequence, method } = frame;
    const handler = this.registry.handlers.get(method);
    if (!handler) return this.#respondError(sequence, methodNotFound(method));
    const incoming = this.#incoming ??= new IncomingRequests(
      this as Peer<Endpoint, Endpoint>,
      (sequence, ok, value, context) => {
        const stream = ok && isStream(value); // No support: no ends.
        if (stream && !this.#options.streams) {
          return this.#handlerFailed(sequence, noStreams());
        }
        const streams = stream ? this.#streamsOf() : this.#streams;
        if (streams?.settle(sequence, ok, value, context)) return;
        if (ok) this.#respond(sequence, value);
        else this.#handlerFailed(sequence, value);
      },
    );
    if (incoming.has(sequence)) {
      return this.#respondError(sequence, alreadyInFlight(sequence));
    }
    // No stream support: refused (an upload stops when its sender reads it).
    if (frame.credit || frame.upload) {
      if (!this.#options.streams) {
        return this.#respondError(sequence, STREAMS_UNSUPPORTED);
      }
      this.#streamsOf().accept(frame);
    }
    const chain = this.registry.middleware;
    incoming.run(
      chain.length
        ? throughMiddleware(chain, handler as RequestHandler, frame)
        : handler as RequestHandler<unknown, unknown>,
      frame,
      this.identity ?? frame.from,
    );
  }

  #handlerFailed(sequence: number, error: unknown): void {
    // A DuplexError passes with its code; anything else is the handler's own.
    if (!(error instanceof DuplexError)) this.#reportError(error);
    this.#respondError(sequence, handlerError(error));
  }

  #respond(sequence: number, message: unknown): void {
    try {
      const data = this.#codec.encodeResponse?.(sequence, message) ??
        this.#codec.encode({ sequence, type: 2, message });
      this.#sendData(data, 2);
    } catch (error) {
      this.#handlerFailed(sequence, error);
    }
  }

  #respondError(sequence: number, error: ErrorPayload): void {
    this.#sendFrame({ sequence, type: 2, error });
  }

  #onNotification(frame: NotifyFrame): void {
    if (this.identity !== undefined) frame.from = this.identity;
    const chain = this.registry.middleware;
    if (!chain.length) return this.#dispatch(frame);
    const peer = this as Peer<Endpoint, Endpoint>;
    notifyThroughMiddleware(chain, peer, frame, () => this.#dispatch(frame), (
      error,
    ) => this.#reportError(error));
  }

  #dispatch(frame: NotifyFrame): void {
    const failed = deliver(this.registry.listeners, frame);
    for (const error of failed) this.#reportError(error);
  }

  #sendFrame(frame: Frame, data = this.#codec.encode(frame)): void {
    this.#sendData(data, frame.type);
  }

  #sendData(data: string | Uint8Array<ArrayBuffer>, type: number): void {
    if (this.#closed || this.#socket.readyState !== OPEN) return;
    this.#socket.send(data);
    this.stats.framesOut[type]++;
  }

  #closedError(action?: string): ConnectionClosedError {
    const closing = this.#closed ? undefined : this.#closing;
    return new ConnectionClosedError(
      closing?.code ?? this.#closeCode,
      closing?.reason ?? this.#closeReason,
      { action },
    );
  }

  #reportError(error: unknown): void {
    this.#options.onError?.(error);
    this.dispatchEvent(errorEvent(error));
  }

  #onClose(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#closingTimer);
    this.#closeCode = code;
    this.#closeReason = reason;
    this.#socket.removeEventListener("message", this);
    this.#socket.removeEventListener("close", this);
    const error = this.#socket.closeError?.(code, reason) ??
      new ConnectionClosedError(code, reason);
    this.#tracker?.rejectAll(error);
    this.#incoming?.abortAll(error);
    this.#streams?.closeAll(error);
    this.#options.onClose?.(code, reason);
    this.dispatchEvent(
      new CloseEvent("close", { code, reason, wasClean: code !== 1006 }),
    );
  }
}
