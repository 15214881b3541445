/**
 * The options of a {@linkcode DuplexServer}, their defaults, and the few
 * policies they name (logger, duplicate users, rate limit).
 *
 * @module
 */

import { Coalescer } from "./coalescing_socket.ts";
import { Streams } from "../peer/streams.ts";
import { streams, type StreamSupport } from "../peer/stream_support.ts";
import type { Registry } from "../peer/receiver.ts";
import type { Codec } from "../wire/codec.ts";
import type { BackpressurePolicy } from "../peer/peer.ts";
import type { Cluster } from "../cluster/cluster.ts";
import type { Authenticate } from "./authenticate.ts";
import type { OriginPolicy } from "./origin.ts";
import type { StatusAuthorize } from "./status_routes.ts";
import type { SessionOptions } from "./session_options.ts";

/**
 * Where the server writes its log lines: one per connect and disconnect,
 * refused upgrades, and handler failures. `console` fits.
 *
 * @example Usage
 * ```ts
 * import type { ServerLogger } from "@duplex/ws/server";
 *
 * const lines: string[] = [];
 * const logger: ServerLogger = {
 *   info: (message) => lines.push(message),
 *   warn: (message) => lines.push(message),
 *   error: (message) => lines.push(message),
 * };
 * ```
 */
export interface ServerLogger {
  /** Connects and disconnects. */
  info(message: string): void;
  /** Refused upgrades. */
  warn(message: string): void;
  /** Handler and listener failures; `error` is the thrown value. */
  error(message: string, error?: unknown): void;
}

/**
 * What happens when a user connects while already connected: `"allow"`
 * keeps every connection (several tabs), `"replace"` closes the older ones
 * with close code 4009.
 *
 * @example Usage
 * ```ts
 * import type { DuplicateUserPolicy } from "@duplex/ws/server";
 *
 * const policy: DuplicateUserPolicy = "replace";
 * ```
 */
export type DuplicateUserPolicy = "allow" | "replace";

/**
 * The close code sent to an older connection of a user that a newer one
 * replaced (policy `duplicateUser: "replace"`).
 *
 * @example Usage
 * ```ts
 * import { CLOSE_REPLACED } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_REPLACED, 4009);
 * ```
 */
export const CLOSE_REPLACED: number = 4009;

/**
 * The per-connection rate limit: a token bucket of incoming frames, one of
 * their bytes, and how many refused frames in a row close the connection
 * with 1008.
 *
 * @example Usage
 * ```ts
 * import type { ServerRateLimit } from "@duplex/ws/server";
 *
 * const limit: ServerRateLimit = {
 *   rate: 50,
 *   burst: 100,
 *   maxViolations: 20,
 *   bytesPerSecond: 65_536,
 *   burstBytes: 262_144,
 * };
 * ```
 */
export interface ServerRateLimit {
  /**
   * Incoming frames per second of one connection.
   *
   * @default {500}
   */
  rate?: number;
  /**
   * Frames that may arrive at once.
   *
   * @default {rate, or 1000 when rate is not set}
   */
  burst?: number;
  /**
   * Refusals in a row before the connection is closed with 1008.
   *
   * @default {50}
   */
  maxViolations?: number;
  /**
   * Incoming bytes per second of one connection: what it may make the
   * server relay. Binary messages count their bytes, text messages their
   * UTF-16 units (the UTF-8 size for ASCII).
   *
   * @default {1048576}
   */
  bytesPerSecond?: number;
  /**
   * Bytes one connection may send at once; keep it at least
   * `maxMessageSize`, or larger messages are always refused.
   *
   * @default {4194304}
   */
  burstBytes?: number;
}

/**
 * Options of a {@linkcode DuplexServer}.
 *
 * @example Usage
 * ```ts
 * import type { DuplexServerOptions } from "@duplex/ws/server";
 *
 * const options: DuplexServerOptions = {
 *   origins: ["https://chat.example.com"],
 *   maxMessageSize: 64 * 1024,
 *   rateLimit: { rate: 20, burst: 40 },
 * };
 * ```
 */
export interface DuplexServerOptions {
  /**
   * Decides who connects. The default takes the user id from the `user`
   * query parameter (`ws://host/?user=alice`) and refuses a request without
   * one with 400. User ids are 1 to 128 characters.
   *
   * @default {the `user` query parameter}
   */
  authenticate?: Authenticate;
  /**
   * Origins allowed to connect; others get 403 before the upgrade.
   *
   * @default {the request's own host, plus clients that send no Origin}
   */
  origins?: OriginPolicy;
  /**
   * Hosts (as in the `Host` header, with the port when not the default)
   * that upgrades may name; others get 403. Set it on a public server: it
   * defeats DNS rebinding, where a hostile name resolving to this server
   * passes the default origin policy.
   *
   * @default {every host}
   */
  hosts?: readonly string[];
  /**
   * Paths on which `fetch` accepts upgrades.
   *
   * @default {["/", "/ws"]}
   */
  paths?: readonly string[];
  /**
   * Path of the health check (200 `ok`, 503 while shutting down), or
   * `false` for none.
   *
   * @default {"/healthz"}
   */
  healthPath?: string | false;
  /**
   * Path of the Prometheus metrics, or `false` for none.
   *
   * @default {"/metrics"}
   */
  metricsPath?: string | false;
  /**
   * Path at which `fetch` serves the browser client: the bundle of
   * `client.ts`, an ES module exporting `Client` and the typed errors
   * (`import { Client } from "/duplex.js"`), with an `ETag`; `false` for
   * none.
   *
   * @default {false}
   */
  clientPath?: string | false;
  /**
   * How an upgrade is refused (bad origin, authentication, limits):
   * `"status"` answers with the HTTP status (401, 403, 503...), which a
   * browser cannot read; `"close"` accepts the WebSocket and closes it at
   * once with code 4000 + status (4001, 4003, 4503...) and the refusal's
   * message as the reason, so a browser learns why (4001 and 4003 also
   * stop the client's reconnection).
   *
   * @default {"status"}
   */
  refusals?: "status" | "close";
  /**
   * Decides whether a user may join a room, with the data `authenticate`
   * returned for the user's connection; `server.join()` throws a
   * `ForbiddenError` (`FORBIDDEN`) when it returns `false`.
   *
   * @default {undefined} (every join is allowed)
   */
  authorizeJoin?: (room: string, user: string, data: unknown) => boolean;
  /**
   * Who may read the health check and the metrics; others get 403. Without
   * it they answer anyone: set it (or set the paths to `false`) when the
   * server is public.
   *
   * @default {everyone}
   */
  authorizeStatus?: StatusAuthorize;
  /**
   * Answers requests `fetch` does not route (e.g. the demo page).
   *
   * @default {404}
   */
  fallback?: (
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Response | Promise<Response>;
  /**
   * Liveness of clients, in seconds: Deno pings a client that sent nothing
   * for half of it and drops it when the pong does not come
   * (`Deno.upgradeWebSocket`'s `idleTimeout`). `duplex.v1` clients quiet for
   * a third of it are pinged by the server first, with a type-5 frame, so
   * that Deno's pings, which can drop a client whose pong came, never reach
   * them (docs/server.md). 0 disables both.
   *
   * @default {30}
   */
  idleTimeout?: number;
  /**
   * Write coalescing: the frames a connection is sent in one turn of the
   * event loop leave as one WebSocket message (a batch frame), for clients
   * that offered `duplex.batch` (the Duplex `Client` does). A frame alone in
   * its turn leaves as it is, without waiting. `false` sends every frame as
   * its own message.
   *
   * @default {true}
   */
  coalesce?: boolean;
  /**
   * The largest incoming message in bytes; a larger one closes that
   * connection with 1009.
   *
   * @default {1048576}
   */
  maxMessageSize?: number;
  /**
   * The most requests of one connection whose (asynchronous) handlers run at
   * once; beyond it requests get a `TOO_MANY_REQUESTS` error response.
   *
   * @default {128}
   */
  maxInFlight?: number;
  /**
   * Per-connection token buckets of incoming frames and bytes, or `false`
   * for none. Frames over either get `RATE_LIMITED` error responses;
   * `maxViolations` refusals in a row close the connection with 1008.
   * Fields left out take their defaults.
   *
   * @default {{ rate: 500, burst: 1000, maxViolations: 50, bytesPerSecond: 1048576, burstBytes: 4194304 }}
   */
  rateLimit?: ServerRateLimit | false;
  /**
   * Malformed frames tolerated per connection before it is closed with
   * 1002.
   *
   * @default {10}
   */
  maxMalformed?: number;
  /**
   * Send-buffer size in bytes above which notifications to a connection are
   * subject to `backpressure`.
   *
   * @default {4194304}
   */
  highWaterMark?: number;
  /**
   * What to do with notifications to a connection above the high-water
   * mark: `"drop"` them (counted) or `"close"` the connection with 1013.
   * Responses are never dropped.
   *
   * @default {"drop"}
   */
  backpressure?: BackpressurePolicy;
  /**
   * Bytes a connection may have waiting in its send buffer (every frame:
   * responses, error answers, pongs, notifications). A frame is sent while
   * the buffer is within the budget; beyond it the connection is closed
   * with 1013, so a client that never reads costs at most this much.
   *
   * @default {16777216}
   */
  sendBudget?: number;
  /**
   * Bytes all connections together may have waiting in their send buffers.
   * Beyond it, a connection that sends while holding more than the average
   * is closed with 1013.
   *
   * @default {268435456}
   */
  totalSendBudget?: number;
  /**
   * Default timeout of server-to-client requests, in milliseconds.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * What happens when a user connects while already connected.
   *
   * @default {"allow"}
   */
  duplicateUser?: DuplicateUserPolicy;
  /**
   * The most connections (open, opening, closing, and upgrades whose
   * `authenticate` hook is running); beyond it upgrades get 503. Keep it
   * below the process's open-files limit (`ulimit -n`).
   *
   * @default {10000}
   */
  maxConnections?: number;
  /**
   * The most connections from one client address (counted like
   * `maxConnections`); beyond it upgrades get 429. Behind a proxy every
   * client has the proxy's address: set `trustProxy`, or raise this.
   *
   * @default {256}
   */
  maxConnectionsPerAddress?: number;
  /**
   * Take the client address from the last entry of `X-Forwarded-For` (the
   * one the proxy in front of Deno appended) instead of the TCP peer. Set
   * it only when every request comes through such a proxy: otherwise a
   * client writes its own address.
   *
   * @default {false}
   */
  trustProxy?: boolean;
  /**
   * How long `shutdown()` lets running handlers finish, and then lets the
   * closing handshakes complete, in milliseconds.
   *
   * @default {5000}
   */
  shutdownTimeout?: number;
  /**
   * The handler registry shared by every connection.
   *
   * @default {a new registry}
   */
  registry?: Registry;
  /**
   * Where log lines go.
   *
   * @default {silent}
   */
  logger?: ServerLogger;
  /**
   * The cluster this server is an instance of (see `Cluster`): pushes to
   * everyone, a room or a user, requests to users and presence then span
   * every instance on the cluster's broker. The server attaches itself to
   * it and announces its users; the caller starts it (`await
   * cluster.start()`) and closes it after `shutdown()`. Without one, the
   * server is on its own and pushes never leave the process.
   *
   * @default {undefined}
   */
  cluster?: Cluster;
  /**
   * Sessions for clients that ask for one (`duplex.v1` clients offering
   * `duplex.session`, which the Duplex client does by default): a dropped
   * connection loses nothing within the grace period. `false` turns them
   * off (such clients are told, and run without). Original-protocol clients
   * never have one.
   *
   * @default {{ grace: 120000, maxBufferedFrames: 10000, maxBufferedBytes: 8388608 }}
   */
  sessions?: SessionOptions | false;
  /**
   * Codecs offered besides JSON, each selected by a client that offers its
   * subprotocol (e.g. `binaryCodec` from `@duplex/ws/binary`, for
   * `duplex.v1.bin`). Clients that offer none of them stay on JSON.
   *
   * @default {[]}
   */
  codecs?: readonly Codec[];
}

/** A rate limit with every field set. */
export type ResolvedRateLimit = Required<ServerRateLimit>;

const DEFAULT_RATE_LIMIT: ResolvedRateLimit = {
  rate: 500,
  burst: 1000,
  maxViolations: 50,
  bytesPerSecond: 1024 * 1024,
  burstBytes: 4 * 1024 * 1024,
};

/** The per-connection options every server-side peer gets. */
export interface PeerOptions {
  maxMessageSize: number;
  maxInFlight: number;
  rateLimit: ResolvedRateLimit | undefined;
  maxMalformed: number;
  highWaterMark: number;
  backpressure: BackpressurePolicy;
  timeout: number;
  /** Write coalescing (one per server), unless `coalesce` is `false`. */
  coalescer: Coalescer | undefined;
  /** Stream support whose uploads may pack chunks (one per server). */
  streams: StreamSupport;
}

/**
 * The most bytes of chunks an uploader may pack into one frame: two 64 KiB
 * chunks, which then travel as messages of their own after a small head, or
 * smaller ones copied into one message of at most this size. Messages over
 * glibc's 128 KiB `mmap` threshold raised the server's RSS high-water mark
 * during an upload (the allocator's, not what V8 keeps), and four 64 KiB
 * chunks a frame went no faster than two (docs/performance.md, "Upload,
 * seventh round" and "eighth round").
 */
const PACK_BYTES = 132_096;

/** Stream support whose uploads may pack up to half the largest message. */
function packingStreams(maxMessageSize: number): StreamSupport {
  const pack = Math.min(PACK_BYTES, Math.floor(maxMessageSize / 2));
  return { ...streams, ends: (send, fail) => new Streams(send, fail, pack) };
}

/** The per-connection options with their defaults applied. */
export function peerOptions(options: DuplexServerOptions): PeerOptions {
  const given = options.rateLimit;
  const rateLimit = given === undefined
    ? DEFAULT_RATE_LIMIT
    : given === false
    ? undefined
    : {
      rate: given.rate ?? DEFAULT_RATE_LIMIT.rate,
      burst: given.burst ?? given.rate ?? DEFAULT_RATE_LIMIT.burst,
      maxViolations: given.maxViolations ?? DEFAULT_RATE_LIMIT.maxViolations,
      bytesPerSecond: given.bytesPerSecond ??
        DEFAULT_RATE_LIMIT.bytesPerSecond,
      burstBytes: given.burstBytes ?? given.bytesPerSecond ??
        DEFAULT_RATE_LIMIT.burstBytes,
    };
  const maxMessageSize = options.maxMessageSize ?? 1024 * 1024;
  return {
    maxMessageSize,
    maxInFlight: options.maxInFlight ?? 128,
    rateLimit,
    maxMalformed: options.maxMalformed ?? 10,
    highWaterMark: options.highWaterMark ?? 4 * 1024 * 1024,
    backpressure: options.backpressure ?? "drop",
    timeout: options.timeout ?? 30_000,
    coalescer: options.coalesce === false ? undefined : new Coalescer(),
    streams: packingStreams(maxMessageSize),
  };
}

/**
 * Checks that the limits are positive numbers.
 *
 * @throws {RangeError} When one is not.
 */
export function checkLimits(limits: Record<string, number>): void {
  for (const [name, value] of Object.entries(limits)) {
    if (!(value > 0)) {
      throw new RangeError(
        `Cannot create server: ${name} must be positive, got ${value}`,
      );
    }
  }
}
