/**
 * What the receiving side of a request or notification is given: the
 * {@linkcode RequestHandler} and its {@linkcode RequestContext}, the
 * {@linkcode NotificationListener}.
 *
 * @module
 */

import type { NotifyFrame } from "../wire/protocol.ts";
import type { Endpoint } from "./endpoint.ts";
import type { Peer } from "./peer.ts";

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
  /**
   * The connection's data: on a server, what `authenticate` returned with
   * the user (`{ user, data }`); elsewhere whatever was put in `peer.data`.
   */
  readonly data: unknown;
  /** Aborts when the caller cancels or the connection closes. */
  readonly signal: AbortSignal;
}

/**
 * Answers one request. Its return value (or the value of its promise)
 * becomes the response. A thrown `DuplexError` — a {@linkcode RemoteError}
 * of your own, or one that escaped from a call the handler made
 * (`RequestTimeoutError`, `ConnectionClosedError`, `NotConnectedError`,
 * `BrokerUnavailableError`, `ValidationError`...) — is sent with its `code`,
 * `message` and `data`; any other throw becomes a generic `INTERNAL_ERROR`
 * (and is reported on this side).
 *
 * @example Usage
 * ```ts
 * import type { RequestHandler } from "@duplex/ws";
 *
 * const sum: RequestHandler<number[], number> = (numbers) =>
 *   numbers.reduce((a, b) => a + b, 0);
 * ```
 */
export type RequestHandler<
  P = unknown,
  R = unknown,
  C extends RequestContext = RequestContext,
> = (
  params: P,
  context: C,
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
