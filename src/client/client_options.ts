/**
 * How a {@linkcode Client} is configured: where it connects
 * ({@linkcode UrlSource}), its {@linkcode ClientOptions}, and the options of
 * its notifications ({@linkcode NotifyOptions}, {@linkcode NotificationsOptions}).
 *
 * @module
 */

import type { PeerOptions } from "../peer/peer_options.ts";
import type { BackoffOptions } from "./backoff.ts";
import type { ClientSessionOptions } from "./client_session.ts";

/**
 * The server URL, or a function called before every attempt that returns it
 * (e.g. with a fresh token in the query).
 *
 * @example Usage
 * ```ts
 * import type { UrlSource } from "@duplex/ws/client";
 *
 * const fixed: UrlSource = "wss://chat.example.com/ws";
 * const fresh: UrlSource = async () => `wss://chat.example.com/ws?t=${Date.now()}`;
 * ```
 */
export type UrlSource =
  | string
  | URL
  | (() => string | URL | Promise<string | URL>);

/**
 * Options of a {@linkcode Client}. The {@linkcode PeerOptions} (request
 * `timeout`, limits, codec, registry) apply to every connection.
 *
 * @example Usage
 * ```ts
 * import type { ClientOptions } from "@duplex/ws/client";
 *
 * const options: ClientOptions = {
 *   protocols: ["duplex.auth.secret-token"],
 *   maxAttempts: 10,
 *   pingInterval: 15_000,
 * };
 * ```
 */
export interface ClientOptions extends PeerOptions, BackoffOptions {
  /**
   * Subprotocols offered after `"duplex.v1"` (which is always offered
   * first), or a function called before every attempt that returns them.
   * Browsers cannot set headers on a WebSocket, so this is where a token
   * goes, e.g. `duplex.auth.<token>` (the token must be a valid protocol
   * token: letters, digits and `!#$%&'*+-.^_|~` only).
   *
   * @default {[]}
   */
  protocols?: string[] | (() => string[] | Promise<string[]>);
  /**
   * Sessions: the client asks the server for one (offering
   * `duplex.session`), and a dropped connection then loses nothing within
   * the server's grace period: the client resumes, receives what it missed
   * once and in order, and its requests are neither lost nor run twice
   * (events `resumed`, `not-resumed`). `false`: no session (a dropped
   * connection rejects pending requests with `ConnectionClosedError`).
   *
   * @default {true}
   */
  session?: boolean | ClientSessionOptions;
  /**
   * Whether this client's writes wait for TCP acknowledgements (Nagle's
   * algorithm). Deno's `WebSocket` leaves it on with no way to turn it off,
   * so a frame that nothing answers (a notification, a response to the
   * server) held the client's next frame until the server's delayed TCP
   * acknowledgement, about 40 ms. `true` offers `duplex.nagle`: a Duplex
   * server then answers each burst of this client's frames that nothing
   * else answered with a small pong, and the next frame leaves at once.
   * Browsers turn Nagle off themselves.
   *
   * @default {true in Deno, false elsewhere}
   */
  nagle?: boolean;
  /**
   * Time allowed to one connection attempt (URL function, protocols
   * function and handshake), in milliseconds.
   *
   * @default {10000}
   */
  connectTimeout?: number;
  /**
   * The longest that `close()` waits for the sockets' closing handshakes,
   * in milliseconds (a vanished server never completes it).
   *
   * @default {5000}
   */
  closeTimeout?: number;
  /**
   * Reconnection attempts in a row before the client gives up and closes.
   *
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * How long a connection must stay open, in milliseconds, for the attempt
   * counter (and so the backoff) to start again from zero.
   *
   * @default {5000}
   */
  resetAfter?: number;
  /**
   * Decides whether to reconnect after a close (also called with a close
   * code 1006 event for each failed attempt). It is not consulted after
   * `close()`, the final close codes 1008 (policy), 4001 (unauthorized),
   * 4003 (forbidden) and 4009 (replaced by a newer connection), an HTTP 401
   * or 403 handshake response (where the platform reveals it) or
   * `maxAttempts`: those never reconnect.
   *
   * @default {undefined}
   */
  shouldReconnect?: (event: CloseEvent) => boolean;
  /**
   * Whether requests and notifications issued while disconnected wait for
   * the next connection; `false` rejects them at once with
   * {@linkcode ConnectionClosedError}.
   *
   * @default {true}
   */
  queueWhileDisconnected?: boolean;
  /**
   * The most requests and notifications waiting for a connection; beyond it
   * they reject at once with `QueueFullError`.
   *
   * @default {100}
   */
  maxQueue?: number;
  /**
   * How long a request or notification may wait for a connection, in
   * milliseconds, before it rejects with `QueueTimeoutError`; 0 waits
   * without limit.
   *
   * @default {10000}
   */
  maxQueueWait?: number;
  /**
   * Quiet time in milliseconds after which the client pings the server;
   * 0 disables the heartbeat. Against a server of the original protocol
   * the heartbeat is always off: such a server would relay each ping to
   * every user as a chat message, and it offers nothing else to ping.
   *
   * @default {25000}
   */
  pingInterval?: number;
  /**
   * How long the client waits for any frame after a ping, in milliseconds,
   * before it closes the connection with 4000 (ping timeout) and
   * reconnects.
   *
   * @default {10000}
   */
  pingTimeout?: number;
}

/**
 * Options of {@linkcode Client.notify}.
 *
 * @example Usage
 * ```ts
 * import type { NotifyOptions } from "@duplex/ws/client";
 *
 * const options: NotifyOptions = { method: "typing", signal: AbortSignal.timeout(1_000) };
 * ```
 */
export interface NotifyOptions {
  /**
   * The listener on the other side; none for the default listener.
   *
   * @default {undefined}
   */
  method?: string;
  /**
   * Aborting it while the notification waits for a connection removes it
   * from the queue and rejects with `signal.reason`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * Options of {@linkcode Client.notifications}.
 *
 * @example Usage
 * ```ts
 * import type { NotificationsOptions } from "@duplex/ws/client";
 *
 * const options: NotificationsOptions = { method: "presence.joined", bufferSize: 50 };
 * ```
 */
export interface NotificationsOptions<
  M extends string | undefined = string | undefined,
> {
  /**
   * Only notifications of this method; none for every notification.
   *
   * @default {undefined}
   */
  method?: M;
  /**
   * The most notifications buffered for a slow consumer. One more ends the
   * iteration with a `BUFFER_FULL` {@linkcode DuplexError} once the
   * buffered ones are consumed: nothing is dropped silently.
   *
   * @default {1000}
   */
  bufferSize?: number;
}
