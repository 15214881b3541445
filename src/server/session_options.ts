/**
 * The session options of a {@linkcode DuplexServer} and the details of its
 * session events (`resume`, `expire`).
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import type { SessionLossReason } from "../wire/session_frames.ts";
import type { Connection } from "./connection.ts";
import type { SessionStore } from "./session_store.ts";

/**
 * Options of the server's sessions (`DuplexServerOptions.sessions`). A
 * session outlives its connection for `grace` ms: a client that resumes in
 * time gets every frame it missed, once, in order; its requests are neither
 * lost nor run twice; its rooms are kept and its presence does not flap.
 *
 * @example Usage
 * ```ts
 * import type { SessionOptions } from "@duplex/ws/server";
 *
 * const options: SessionOptions = { grace: 30_000, maxBufferedFrames: 1_000 };
 * ```
 */
export interface SessionOptions {
  /**
   * How long a session waits for its client after the connection dropped,
   * in ms. Then it expires: its rooms are left, `presence.left` is sent and
   * the client's resume gets "not resumed" (`expired`).
   *
   * @default {120000}
   */
  grace?: number;
  /**
   * The most frames kept per session for a replay (sent, not acknowledged).
   * Beyond it the session cannot be resumed (`overflow`). Clients are asked
   * (the state's `ackEvery`) to acknowledge every 1/16 of it, 1 to 1,024.
   *
   * @default {10000}
   */
  maxBufferedFrames?: number;
  /**
   * The most bytes kept per session for a replay. Clients are asked (the
   * state's `ackBytes`) to acknowledge every eighth of it.
   *
   * @default {8388608}
   */
  maxBufferedBytes?: number;
  /**
   * The oldest a frame kept for a replay may get, in ms (a client that
   * stays connected but does not acknowledge).
   *
   * @default {the grace period}
   */
  maxBufferedAge?: number;
  /**
   * Acknowledge the client's frames after this many.
   *
   * @default {the client's hello's `ackEvery` (its frame bound / 16), else 64}
   */
  ackEvery?: number;
  /**
   * Acknowledge the client's frames after this many bytes (binary bytes, or
   * UTF-16 units of text).
   *
   * @default {the client's hello's `ackBytes` (an eighth of its byte bound), else 1048576}
   */
  ackBytes?: number;
  /**
   * Acknowledge at most this long after a frame arrived, in ms.
   *
   * @default {1000}
   */
  ackDelay?: number;
  /**
   * How long a client that asked for a session may take to send its hello
   * after the upgrade, in ms.
   *
   * @default {10000}
   */
  helloTimeout?: number;
  /**
   * Where session records are kept. A store that several instances share
   * (`RedisSessionStore` of `@duplex/ws/redis`) keeps each session's
   * frames, counts, open requests and rooms too: a client resumes on any
   * instance.
   *
   * @default {a new MemorySessionStore}
   */
  store?: SessionStore;
  /**
   * Shared store: how long one write to it may take before it is retried,
   * in ms (received frames wait for it).
   *
   * @default {2000}
   */
  storeTimeout?: number;
  /**
   * Shared store: a frame leaves for the client only once the store has
   * it (write-ahead). Then a frame the client received is always stored,
   * and one an instance had not stored when it died never left: a push is
   * replayed by the instance that takes the session over, once, in order,
   * or was never sent (docs/scaling-out.md, "Pushes across an instance's
   * death"). Off: frames leave at once and are stored with the next write;
   * those an instance dies with before storing, and its client did not
   * receive, are lost without a signal. Off by default: a request's round
   * trip costs the same and pushes spread over turns leave faster (in
   * bigger batches), but a burst of pushes made in one turn waits for its
   * write before it leaves (such a burst's fan-out about halves). Ignored by
   * a memory store (one instance: nothing is held).
   *
   * @default {false}
   */
  writeAhead?: boolean;
  /**
   * Shared store: how long a shutdown waits for its sessions to be resumed
   * on other instances, in ms.
   *
   * @default {10000}
   */
  handoverTimeout?: number;
}

/**
 * The detail of a server's `resume` event: a client resumed its session on
 * a new connection (after that connection's `connect` event).
 *
 * @example Usage
 * ```ts
 * import type { ResumeDetail } from "@duplex/ws/server";
 *
 * const line = (detail: ResumeDetail) =>
 *   `${detail.connection.user} resumed, ${detail.replayed} frames replayed`;
 * ```
 */
export interface ResumeDetail {
  /** The new connection. */
  readonly connection: Connection<Endpoint, Endpoint>;
  /** The frames sent again, which the client had missed. */
  readonly replayed: number;
}

/**
 * The detail of a server's `expire` event: a session ended without a
 * deliberate close (its rooms were left, after this event `offline` may
 * follow).
 *
 * @example Usage
 * ```ts
 * import type { ExpireDetail } from "@duplex/ws/server";
 *
 * const line = (detail: ExpireDetail) => `${detail.user}: ${detail.reason}`;
 * ```
 */
export interface ExpireDetail {
  /** The session's user. */
  readonly user: string;
  /** Why: `"expired"` (grace period over) or `"overflow"` (buffer full). */
  readonly reason: SessionLossReason;
}
