/**
 * What a {@linkcode Client} reports: its {@linkcode ClientState}, its events
 * ({@linkcode ClientEventMap}) and the {@linkcode ReconnectingEvent}.
 *
 * @module
 */

import type { SessionEvent } from "./client_session.ts";

/**
 * Where the client is in its life:
 * - `"closed"`: not started, closed by `close()`, or given up;
 * - `"connecting"`: the first connection attempt of `connect()`;
 * - `"open"`: connected;
 * - `"reconnecting"`: the connection dropped; waiting for the next attempt
 *   or making it.
 *
 * @example Usage
 * ```ts
 * import type { ClientState } from "@duplex/ws/client";
 *
 * const state: ClientState = "reconnecting";
 * ```
 */
export type ClientState = "closed" | "connecting" | "open" | "reconnecting";

/**
 * The `reconnecting` event: the client will make attempt `attempt` after
 * `delay` milliseconds.
 *
 * @example Usage
 * ```ts
 * import { ReconnectingEvent } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const event = new ReconnectingEvent(1, 250);
 * assert.equal(event.type, "reconnecting");
 * assert.equal(event.delay, 250);
 * ```
 */
export class ReconnectingEvent extends Event {
  /** The number of the coming attempt since the counter was reset, from 1. */
  declare readonly attempt: number;
  /** The delay before it, in milliseconds. */
  declare readonly delay: number;

  /**
   * Creates the event.
   *
   * @param attempt The attempt number, from 1.
   * @param delay The delay in milliseconds.
   */
  constructor(attempt: number, delay: number) {
    super("reconnecting");
    this.attempt = attempt;
    this.delay = delay;
  }
}

/**
 * The events of a {@linkcode Client}.
 *
 * @example Usage
 * ```ts
 * import type { ClientEventMap } from "@duplex/ws/client";
 *
 * const log = (event: ClientEventMap["reconnecting"]) =>
 *   console.log(`attempt ${event.attempt} in ${event.delay} ms`);
 * ```
 */
export interface ClientEventMap {
  /** A connection opened (first or after a reconnection). */
  open: Event;
  /**
   * A connection closed, or the client stopped: `client.state` tells
   * whether it will reconnect (`"reconnecting"`) or not (`"closed"`).
   */
  close: CloseEvent;
  /** The client waits `delay` ms before attempt number `attempt`. */
  reconnecting: ReconnectingEvent;
  /**
   * The session resumed on the new connection (before its `open`): nothing
   * was lost.
   */
  resumed: SessionEvent;
  /**
   * The session was lost (`reason`) and a new one started (before `open`):
   * resynchronise.
   */
  "not-resumed": SessionEvent;
  /**
   * A connection attempt failed (`error` is a `ConnectError`), or a handler
   * or listener threw, or a frame broke the protocol.
   */
  error: ErrorEvent;
}
