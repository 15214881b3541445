/**
 * The options, events and drop reasons of {@linkcode serveGuarded} (see
 * `guarded_listener.ts`).
 *
 * @module
 */

import type { ServerLogger } from "./server_options.ts";

/**
 * Why the guard dropped a connection before its head completed:
 * `"timeout"` (not complete within `headerTimeout`), `"too-large"` (over
 * `maxHeadSize`: answered 431), `"address"` (its address already has
 * `maxPendingHeadsPerAddress` unfinished heads), `"evicted"` (the oldest
 * unfinished head, when `maxPendingHeads` were waiting), `"backend"` (the
 * server behind could not be reached: answered 503).
 *
 * @example Usage
 * ```ts
 * import type { GuardDropReason } from "@duplex/ws/server";
 *
 * const reason: GuardDropReason = "timeout";
 * ```
 */
export type GuardDropReason =
  | "timeout"
  | "too-large"
  | "address"
  | "evicted"
  | "backend";

/**
 * The detail of a `"drop"` event of a {@linkcode GuardedServer}.
 *
 * @example Usage
 * ```ts
 * import type { GuardDropDetail } from "@duplex/ws/server";
 *
 * const detail: GuardDropDetail = { reason: "timeout", address: "192.0.2.1" };
 * ```
 */
export interface GuardDropDetail {
  /** Why it was dropped. */
  reason: GuardDropReason;
  /** The client's address. */
  address: string;
}

/**
 * The events of a {@linkcode GuardedServer}.
 *
 * @example Usage
 * ```ts
 * import type { GuardedServerEventMap } from "@duplex/ws/server";
 *
 * const log = (event: GuardedServerEventMap["drop"]) => event.detail.reason;
 * ```
 */
export interface GuardedServerEventMap {
  /** A connection was dropped before its request head completed. */
  drop: CustomEvent<GuardDropDetail>;
}

/**
 * Options of {@linkcode serveGuarded}.
 *
 * @example Usage
 * ```ts
 * import type { GuardedServeOptions } from "@duplex/ws/server";
 *
 * const options: GuardedServeOptions = { port: 8000, headerTimeout: 5_000 };
 * ```
 */
export interface GuardedServeOptions {
  /**
   * The port; 0 picks one.
   *
   * @default {8000}
   */
  port?: number;
  /**
   * The address to listen on.
   *
   * @default {"0.0.0.0"}
   */
  hostname?: string;
  /**
   * Milliseconds a client has, from its connection, to send a complete
   * request head; a slower one is dropped.
   *
   * @default {10000}
   */
  headerTimeout?: number;
  /**
   * The largest request head in bytes; a larger one is answered 431.
   *
   * @default {32768}
   */
  maxHeadSize?: number;
  /**
   * Unfinished heads in all; beyond it the oldest is dropped.
   *
   * @default {1000}
   */
  maxPendingHeads?: number;
  /**
   * Unfinished heads of one client address; beyond it new connections of
   * that address are dropped at once.
   *
   * @default {32}
   */
  maxPendingHeadsPerAddress?: number;
  /**
   * Milliseconds before accepting again after the accept loop failed (out
   * of file descriptors), and before restarting the server behind.
   *
   * @default {1000}
   */
  retryDelay?: number;
  /**
   * Where failures are logged.
   *
   * @default {silent}
   */
  logger?: ServerLogger;
  /**
   * Called once the guard listens.
   *
   * @default {undefined}
   */
  onListen?: (addr: Deno.NetAddr) => void;
}
