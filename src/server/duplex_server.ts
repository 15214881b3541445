/**
 * The Duplex server: WebSocket upgrades with origin and authentication
 * checks, one {@linkcode Peer} per connection sharing one handler registry,
 * pushes to users, rooms and everyone, limits, metrics and graceful shutdown.
 *
 * @module
 */

import { bearerToken, offeredProtocols } from "./auth.ts";
import { type Broker, type Envelope, LocalBroker } from "../cluster/broker.ts";
import type { Cluster, UserRequestOptions } from "../cluster/cluster.ts";
import { jsonCodec } from "../wire/codec.ts";
import {
  ConnectionClosedError,
  ProtocolError,
  RemoteError,
} from "../wire/errors.ts";
import { PeerLimits } from "./limits.ts";
import { type MetricsSnapshot, ServerMetrics } from "./metrics.ts";
import { isOriginAllowed, type OriginPolicy } from "./origin.ts";
import {
  type AnyEndpoint,
  type BackpressurePolicy,
  type Endpoint,
  type NotificationMethod,
  type ParamsOf,
  type PayloadOf,
  Peer,
  type RequestHandler,
  type RequestMethod,
  type RequestOptions,
  type ResultOf,
} from "../peer/peer.ts";
import { ErrorCode, type NotifyFrame, SUBPROTOCOL } from "../wire/protocol.ts";
import { Receiver, type Registry } from "../peer/receiver.ts";
import type { RateLimitOptions } from "./rate_limiter.ts";
import { NotConnectedError } from "../cluster/not_connected_error.ts";

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
 * Who a connection belongs to, as returned by an {@linkcode Authenticate}
 * hook: the user id, or the user id with data kept on the
 * {@linkcode Connection}.
 *
 * @example Usage
 * ```ts
 * import type { AuthResult } from "@duplex/ws/server";
 *
 * const plain: AuthResult = "alice";
 * const rich: AuthResult = { user: "alice", data: { role: "admin" } };
 * ```
 */
export type AuthResult = string | { user: string; data?: unknown };

/**
 * What an {@linkcode Authenticate} hook gets besides the request.
 *
 * @example Usage
 * ```ts
 * import type { AuthContext } from "@duplex/ws/server";
 *
 * const tokenOf = (context: AuthContext) => context.token ?? context.url.searchParams.get("token");
 * ```
 */
export interface AuthContext {
  /** The request URL, parsed. */
  readonly url: URL;
  /**
   * The bearer token from an offered `duplex.auth.<token>` subprotocol or
   * an `Authorization: Bearer` header (see `bearerToken`).
   */
  readonly token: string | undefined;
  /** The connection info `Deno.serve` passed, when given. */
  readonly info: Deno.ServeHandlerInfo | undefined;
}

/**
 * Decides who opens a connection, before the upgrade. Return the user (or
 * `{ user, data }`) to accept, `undefined`/`null` to refuse with 401, or a
 * `Response` (e.g. 403) to refuse with it. A hook that throws refuses with
 * 500 and the error is logged.
 *
 * @example Token in the subprotocol or a cookie
 * ```ts
 * import type { Authenticate } from "@duplex/ws/server";
 * import { getCookie } from "@duplex/ws/server";
 *
 * const sessions = new Map([["t0k3n", "alice"]]);
 * const authenticate: Authenticate = (request, { token }) => {
 *   const key = token ?? getCookie(request, "session");
 *   if (key === undefined) return undefined; // 401
 *   return sessions.get(key) ?? new Response("Forbidden", { status: 403 });
 * };
 * ```
 */
export type Authenticate = (
  request: Request,
  context: AuthContext,
) =>
  | AuthResult
  | Response
  | null
  | undefined
  | Promise<AuthResult | Response | null | undefined>;

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
 * The per-connection rate limit: a token bucket of incoming frames, and how
 * many refused frames in a row close the connection with 1008.
 *
 * @example Usage
 * ```ts
 * import type { ServerRateLimit } from "@duplex/ws/server";
 *
 * const limit: ServerRateLimit = { rate: 50, burst: 100, maxViolations: 20 };
 * ```
 */
export interface ServerRateLimit extends RateLimitOptions {
  /**
   * Refusals in a row before the connection is closed with 1008.
   *
   * @default {50}
   */
  maxViolations?: number;
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
   * Answers requests `fetch` does not route (e.g. the demo page).
   *
   * @default {404}
   */
  fallback?: (
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Response | Promise<Response>;
  /**
   * Seconds without any traffic after which the server pings a client, and
   * drops it when the pong does not come (`Deno.upgradeWebSocket`'s
   * `idleTimeout`); 0 disables it.
   *
   * @default {30}
   */
  idleTimeout?: number;
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
   * Per-connection token bucket of incoming frames, or `false` for none.
   * Frames over it get `RATE_LIMITED` error responses; `maxViolations`
   * refusals in a row close the connection with 1008.
   *
   * @default {{ rate: 500, burst: 1000, maxViolations: 50 }}
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
   * The most open connections; beyond it upgrades get 503.
   *
   * @default {Infinity}
   */
  maxConnections?: number;
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
}

/**
 * One open connection.
 *
 * @typeParam Local What the server answers and receives.
 * @typeParam Remote What the client answers and receives.
 *
 * @example Usage
 * ```ts
 * import type { Connection } from "@duplex/ws/server";
 *
 * const describe = (connection: Connection) =>
 *   `${connection.user}#${connection.id} (${connection.protocol || "original"})`;
 * ```
 */
export interface Connection<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> {
  /** A number unique within this server. */
  readonly id: number;
  /** The user, as authenticated. */
  readonly user: string;
  /** The negotiated subprotocol: `"duplex.v1"`, or `""` for the original. */
  readonly protocol: string;
  /** The `data` the authenticate hook returned. */
  readonly data: unknown;
  /** The connection's peer: requests, notifications, stats. */
  readonly peer: Peer<Local, Remote>;
}

/**
 * The detail of a `disconnect` event.
 *
 * @example Usage
 * ```ts
 * import type { DisconnectDetail } from "@duplex/ws/server";
 *
 * const line = (detail: DisconnectDetail) =>
 *   `${detail.connection.user} left with ${detail.code}`;
 * ```
 */
export interface DisconnectDetail {
  /** The connection that closed. */
  readonly connection: Connection<Endpoint, Endpoint>;
  /** The close code. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
}

/**
 * The events of a {@linkcode DuplexServer}.
 *
 * @example Usage
 * ```ts
 * import type { DuplexServerEventMap } from "@duplex/ws/server";
 *
 * const onOnline = (event: DuplexServerEventMap["online"]) => console.log(event.detail.user);
 * ```
 */
export interface DuplexServerEventMap {
  /** A connection opened. */
  connect: CustomEvent<Connection<Endpoint, Endpoint>>;
  /** A connection closed. */
  disconnect: CustomEvent<DisconnectDetail>;
  /** A user's first connection opened. */
  online: CustomEvent<{ user: string }>;
  /** A user's last connection closed. */
  offline: CustomEvent<{ user: string }>;
  /** A handler or listener threw an unexpected error. */
  error: ErrorEvent;
}

/**
 * Who a push goes to: one user (`to`), the members of a room (`room`), or
 * everyone (neither); in each case minus every connection of `except`.
 *
 * @example Usage
 * ```ts
 * import type { PushOptions } from "@duplex/ws/server";
 *
 * const toRoom: PushOptions = { room: "lobby", except: "alice" };
 * ```
 */
export interface PushOptions {
  /**
   * The user to push to (all of that user's connections).
   *
   * @default {undefined}
   */
  to?: string;
  /**
   * The room to push to.
   *
   * @default {undefined}
   */
  room?: string;
  /**
   * A user none of whose connections receive it.
   *
   * @default {undefined}
   */
  except?: string;
  /**
   * The frame's `from`: who the message is from. Absent for messages from
   * the server itself.
   *
   * @default {undefined}
   */
  from?: string;
  /**
   * The frame's `sequence` (the chat relays the request's).
   *
   * @default {0}
   */
  sequence?: number;
  /**
   * Deliver only to this instance's connections, never through the
   * cluster's broker (e.g. for events that every instance sees anyway).
   *
   * @default {false}
   */
  local?: boolean;
}

/**
 * Options of {@linkcode DuplexServer.notify}: the audience and the method.
 * A notification with a method reaches only clients that negotiated
 * `duplex.v1`; one without reaches every client.
 *
 * @example Usage
 * ```ts
 * import type { NotifyOptions } from "@duplex/ws/server";
 *
 * const options: NotifyOptions = { to: "alice", method: "alert" };
 * ```
 */
export interface NotifyOptions extends PushOptions {
  /**
   * The notification's method.
   *
   * @default {undefined}
   */
  method?: string;
}

/**
 * Options of a server-to-client request: the user, timeout and signal. The
 * request goes to the user's most recent `duplex.v1` connection.
 *
 * @example Usage
 * ```ts
 * import type { ServerRequestOptions } from "@duplex/ws/server";
 *
 * const options: ServerRequestOptions = { to: "alice", timeout: 2_000 };
 * ```
 */
export interface ServerRequestOptions extends RequestOptions {
  /** The user to ask. */
  to: string;
}

const DEFAULT_RATE_LIMIT: ServerRateLimit = {
  rate: 500,
  burst: 1000,
  maxViolations: 50,
};
const MAX_USER_LENGTH = 128;
const OPEN = 1;

/** One connection's state, including what only the server sees. */
class ServerConnection<Local extends Endpoint, Remote extends Endpoint>
  implements Connection<Local, Remote> {
  registered = false;
  socketIsClosed = false;
  #closed: PromiseWithResolvers<void> | undefined = undefined;
  readonly extended: boolean;
  constructor(
    readonly id: number,
    readonly user: string,
    readonly protocol: string,
    readonly data: unknown,
    readonly peer: Peer<Local, Remote>,
    readonly socket: WebSocket,
  ) {
    this.extended = protocol === SUBPROTOCOL;
  }

  /** Settles when the socket has closed; made only when someone waits. */
  get socketClosed(): Promise<void> {
    if (this.socketIsClosed) return Promise.resolve();
    return (this.#closed ??= Promise.withResolvers<void>()).promise;
  }

  /** The socket's close event (or "open", when the server registers it). */
  handleEvent(event: Event): void {
    if (event.type === "close") {
      this.socketIsClosed = true;
      this.#closed?.resolve();
      this.onSocketClosed?.(this);
    } else if (event.type === "open") {
      this.onOpen?.(this);
    }
  }

  onSocketClosed: ((connection: this) => void) | undefined = undefined;
  onOpen: ((connection: this) => void) | undefined = undefined;
}

function isUpgrade(request: Request): boolean {
  return request.headers.get("upgrade")?.toLowerCase() === "websocket";
}

function text(status: number, body: string): Response {
  return new Response(body, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return value !== null && typeof value === "object" &&
    typeof (value as PromiseLike<unknown>).then === "function";
}

function defaultAuthenticate(
  _request: Request,
  context: AuthContext,
): AuthResult | Response {
  const user = context.url.searchParams.get("user");
  if (user === null || user === "") {
    return text(400, "Cannot connect: missing user query parameter");
  }
  return user;
}

/**
 * A Duplex server. Give its `fetch` to `Deno.serve` (or call `upgrade` from
 * your own route), register handlers and listeners once for every
 * connection, and push to users, rooms and everyone. In handlers
 * `context.from`, and in notification listeners `frame.from`, is the
 * sender's user id as authenticated, never what the client claims.
 *
 * Same user twice: by default (`duplicateUser: "allow"`) every connection of
 * a user counts (several tabs): `online` fires on the first, `offline` after
 * the last; a push to the user reaches all of its connections, a request goes
 * to the most recent `duplex.v1` one. With `"replace"` the newer connection
 * closes the older ones with {@linkcode CLOSE_REPLACED} (4009).
 *
 * Events: `connect` and `disconnect` (each connection), `online` and
 * `offline` (each user), `error` (a handler threw an unexpected error).
 *
 * @typeParam Local What the server answers and receives.
 * @typeParam Remote What the clients answer and receive.
 *
 * @example Handlers and pushes
 * ```ts
 * import { DuplexServer } from "@duplex/ws/server";
 * import { Peer } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const duplex = new DuplexServer();
 * duplex.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   duplex.fetch,
 * );
 * const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}/?user=alice`, "duplex.v1");
 * const client = new Peer(socket);
 * const online = new Promise((resolve) => duplex.addEventListener("online", resolve));
 * await new Promise((resolve) => socket.onopen = resolve);
 * await online;
 * assert.equal(await client.call("sum", [1, 2, 3]), 6);
 *
 * const pushed = new Promise((resolve) => client.on("news", resolve));
 * duplex.notify("hello", { to: "alice", method: "news" });
 * assert.equal(await pushed, "hello");
 * const closed = new Promise((resolve) => client.addEventListener("close", resolve));
 * await duplex.shutdown(); // closes every connection with 1001
 * await closed;
 * ```
 */
export class DuplexServer<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> extends Receiver<Local, DuplexServerEventMap> implements AsyncDisposable {
  /** Counters and the latency histogram behind `/metrics`. */
  readonly metrics: ServerMetrics = new ServerMetrics();
  /**
   * The `Deno.serve` handler: upgrades on the configured paths, health and
   * metrics, and the fallback for the rest. Bound, so it can be passed as is.
   */
  readonly fetch: (
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ) => Promise<Response>;

  #authenticate: Authenticate;
  #origins: OriginPolicy | undefined;
  #paths: readonly string[];
  #healthPath: string | false;
  #metricsPath: string | false;
  #fallback: DuplexServerOptions["fallback"];
  #idleTimeout: number;
  #peerOptions: {
    maxMessageSize: number;
    maxInFlight: number;
    rateLimit: ServerRateLimit | undefined;
    maxMalformed: number;
    highWaterMark: number;
    backpressure: BackpressurePolicy;
    timeout: number;
  };
  #duplicateUser: DuplicateUserPolicy;
  #maxConnections: number;
  #shutdownTimeout: number;
  #logger: ServerLogger | undefined;
  #broker: Broker;
  #cluster: Cluster | undefined;

  #nextId = 1;
  /** Every upgraded socket whose closing handshake has not completed. */
  #sockets = new Set<ServerConnection<Local, Remote>>();
  /** Open, registered connections. */
  #connections = new Set<ServerConnection<Local, Remote>>();
  /** User → connections, oldest first. */
  #users = new Map<string, Set<ServerConnection<Local, Remote>>>();
  #rooms = new Map<string, Set<string>>();
  #userRooms = new Map<string, Set<string>>();
  /** Stats of closed connections, summed. */
  #closedStats = {
    framesIn: [0, 0, 0, 0, 0, 0, 0],
    framesOut: [0, 0, 0, 0, 0, 0, 0],
    dropped: 0,
    malformed: 0,
    rateLimited: 0,
  };
  #inFlight = 0;
  #idle: PromiseWithResolvers<void> | undefined = undefined;
  #closing = false;
  #shutdown: Promise<void> | undefined = undefined;

  /**
   * Creates a server. It listens nowhere by itself: pass `fetch` to
   * `Deno.serve`.
   *
   * @param options Authentication, origins, limits, logger.
   * @throws {RangeError} When a limit is not a positive number.
   */
  constructor(options: DuplexServerOptions = {}) {
    super(options.registry);
    this.#authenticate = options.authenticate ?? defaultAuthenticate;
    this.#origins = options.origins;
    this.#paths = options.paths ?? ["/", "/ws"];
    this.#healthPath = options.healthPath ?? "/healthz";
    this.#metricsPath = options.metricsPath ?? "/metrics";
    this.#fallback = options.fallback;
    this.#idleTimeout = options.idleTimeout ?? 30;
    const rateLimit = options.rateLimit === undefined
      ? DEFAULT_RATE_LIMIT
      : options.rateLimit || undefined;
    this.#peerOptions = {
      maxMessageSize: options.maxMessageSize ?? 1024 * 1024,
      maxInFlight: options.maxInFlight ?? 128,
      rateLimit,
      maxMalformed: options.maxMalformed ?? 10,
      highWaterMark: options.highWaterMark ?? 4 * 1024 * 1024,
      backpressure: options.backpressure ?? "drop",
      timeout: options.timeout ?? 30_000,
    };
    for (
      const [name, value] of Object.entries({
        maxMessageSize: this.#peerOptions.maxMessageSize,
        maxInFlight: this.#peerOptions.maxInFlight,
        maxConnections: options.maxConnections ?? Infinity,
      })
    ) {
      if (!(value > 0)) {
        throw new RangeError(
          `Cannot create server: ${name} must be positive, got ${value}`,
        );
      }
    }
    this.#duplicateUser = options.duplicateUser ?? "allow";
    this.#maxConnections = options.maxConnections ?? Infinity;
    this.#shutdownTimeout = options.shutdownTimeout ?? 5_000;
    this.#logger = options.logger;
    this.#broker = new LocalBroker();
    this.#broker.subscribe((envelope) => this.#deliver(envelope));
    this.#cluster = options.cluster;
    this.#cluster?.attach({
      deliver: (envelope) => this.#deliver(envelope),
      request: (user, message, options) =>
        this.#requestLocal(user, message, options),
    });
    this.fetch = (request, info) => this.#route(request, info);
  }

  /** Open connections. */
  get connections(): number {
    return this.#connections.size;
  }

  /** `true` once `shutdown()` was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** The cluster given in the options, if any. */
  get cluster(): Cluster | undefined {
    return this.#cluster;
  }

  /**
   * The users connected to this server, in order of their first connection.
   * With a cluster, `cluster.online()` lists the users of every instance.
   *
   * @returns The user ids.
   */
  users(): string[] {
    return [...this.#users.keys()];
  }

  /**
   * Tells whether a user has an open connection.
   *
   * @param user The user id.
   * @returns `true` when connected.
   */
  isOnline(user: string): boolean {
    return this.#users.has(user);
  }

  /**
   * The open connections of a user, oldest first.
   *
   * @param user The user id.
   * @returns The connections; empty when the user is not connected.
   */
  connectionsOf(user: string): Connection<Local, Remote>[] {
    return [...(this.#users.get(user) ?? [])];
  }

  /**
   * Sets the handler of request method `method` for every connection.
   *
   * @typeParam M The method name.
   * @typeParam P The params type.
   * @param method The method name.
   * @param handler The handler; `context.from` is the sender's user id.
   * @returns A function that removes the handler.
   */
  override handle<
    M extends RequestMethod<Local>,
    P extends ParamsOf<Local, M> = ParamsOf<Local, M>,
  >(
    method: M,
    handler: RequestHandler<P, ResultOf<Local, M>>,
  ): () => void {
    return super.handle(method, this.#measure(handler));
  }

  /**
   * Sets the handler of requests without a method (the original protocol)
   * for every connection.
   *
   * @param handler The handler; `context.from` is the sender's user id.
   * @returns A function that removes the handler.
   */
  override onRequest(handler: RequestHandler<unknown, unknown>): () => void {
    return super.onRequest(this.#measure(handler));
  }

  /**
   * Pushes a notification to one user (`to`), a room (`room`) or everyone,
   * minus `except`. It is encoded once for all receivers. A notification with
   * a `method` reaches only `duplex.v1` clients. Receivers whose send buffer
   * is over the high-water mark get the backpressure policy; closed ones are
   * skipped. With a cluster, local receivers get it at once and the other
   * instances through the broker (at most once; broker trouble is logged by
   * the cluster, never thrown here), unless `local` is set.
   *
   * @param message The payload: any JSON value.
   * @param options The audience, method, `from`, `sequence` and `local`.
   * @throws {TypeError} When both `to` and `room` are given, or the message
   * cannot be encoded.
   */
  notify(message: unknown, options: NotifyOptions = {}): void {
    const { to, room, except, method, from, sequence = 0, local } = options;
    if (to !== undefined && room !== undefined) {
      throw new TypeError(
        "Cannot push notification: give either to or room, not both",
      );
    }
    if (
      (local || this.#cluster === undefined) &&
      !this.#hasAudience(to, room, except)
    ) {
      // Nobody here could receive it and nothing spans instances: skip the
      // encoding (the chat relay of a lone user, on every request).
      return;
    }
    const frame: NotifyFrame = { sequence, type: 3, message };
    if (method !== undefined) frame.method = method;
    if (from !== undefined) frame.from = from;
    const envelope: Envelope = {
      data: jsonCodec.encode(frame) as string,
      extended: method !== undefined,
    };
    if (to !== undefined) envelope.user = to;
    if (room !== undefined) envelope.room = room;
    if (except !== undefined) envelope.except = except;
    if (local) this.#deliver(envelope);
    else if (this.#cluster !== undefined) this.#cluster.publish(envelope);
    else this.#broker.publish(envelope);
  }

  /**
   * Pushes a typed notification (only `duplex.v1` clients receive it).
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @param payload The payload.
   * @param options The audience.
   * @throws {TypeError} When both `to` and `room` are given.
   */
  emit<M extends NotificationMethod<Remote>>(
    method: M,
    payload: PayloadOf<Remote, M>,
    options: PushOptions = {},
  ): void {
    this.notify(payload, { ...options, method });
  }

  /**
   * Sends a request to a user's most recent `duplex.v1` connection and
   * resolves with the response. With a cluster, a user connected to another
   * instance is asked there and the response routed back here.
   *
   * @param message The payload.
   * @param options The user (`to`), `method`, `timeout` and `signal`.
   * @returns The response payload.
   * @throws {NotConnectedError} When the user has no `duplex.v1` connection
   * (anywhere in the cluster).
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {ConnectionClosedError} When the connection closed first.
   * @throws {RemoteError} When the client answered with an error.
   * @throws {BrokerUnavailableError} When the cluster's broker refused the
   * request to another instance.
   */
  request<R = unknown>(
    message: unknown,
    options: ServerRequestOptions & { method?: string },
  ): Promise<R> {
    const { to, method, timeout, signal } = options;
    if (this.#cluster === undefined) {
      return this.#requestLocal(to, message, options) as Promise<R>;
    }
    return this.#cluster.request<R>(to, message, {
      method,
      timeout: timeout ?? this.#peerOptions.timeout,
      signal,
    });
  }

  /** A request to a user connected here: its latest `duplex.v1` connection. */
  #requestLocal(
    to: string,
    message: unknown,
    options: UserRequestOptions,
  ): Promise<unknown> {
    const { method, timeout, signal } = options;
    const rest: RequestOptions & { method?: string } = {};
    if (method !== undefined) rest.method = method;
    if (timeout !== undefined) rest.timeout = timeout;
    if (signal !== undefined) rest.signal = signal;
    const connections = this.#users.get(to);
    let latest: ServerConnection<Local, Remote> | undefined;
    for (const connection of connections ?? []) {
      if (connection.extended) latest = connection;
    }
    if (latest === undefined) {
      return Promise.reject(
        new NotConnectedError(
          to,
          connections === undefined
            ? "not connected"
            : `no ${SUBPROTOCOL} connection`,
        ),
      );
    }
    return latest.peer.request(message, rest);
  }

  /**
   * Calls a typed method of a user's client (its most recent `duplex.v1`
   * connection).
   *
   * @typeParam M The method name.
   * @param method The method name.
   * @param params The params.
   * @param options The user (`to`), `timeout` and `signal`.
   * @returns The method's result.
   * @throws {NotConnectedError} When the user has no `duplex.v1` connection.
   * @throws {RequestTimeoutError} When no response came in time.
   * @throws {ConnectionClosedError} When the connection closed first.
   * @throws {RemoteError} When the client answered with an error.
   */
  call<M extends RequestMethod<Remote>>(
    method: M,
    params: ParamsOf<Remote, M>,
    options: ServerRequestOptions,
  ): Promise<ResultOf<Remote, M>> {
    return this.request<ResultOf<Remote, M>>(params, { ...options, method });
  }

  /**
   * Adds a connected user to a room. Membership is per user (all of the
   * user's connections) and ends when the user's last connection closes.
   *
   * @param room The room name.
   * @param user The user id.
   * @returns `false` when the user is not connected.
   */
  join(room: string, user: string): boolean {
    if (!this.#users.has(user)) return false;
    let members = this.#rooms.get(room);
    if (members === undefined) this.#rooms.set(room, members = new Set());
    members.add(user);
    let rooms = this.#userRooms.get(user);
    if (rooms === undefined) this.#userRooms.set(user, rooms = new Set());
    rooms.add(room);
    return true;
  }

  /**
   * Removes a user from a room.
   *
   * @param room The room name.
   * @param user The user id.
   * @returns `true` when the user was a member.
   */
  leave(room: string, user: string): boolean {
    const members = this.#rooms.get(room);
    if (members === undefined || !members.delete(user)) return false;
    if (members.size === 0) this.#rooms.delete(room);
    const rooms = this.#userRooms.get(user);
    rooms?.delete(room);
    if (rooms?.size === 0) this.#userRooms.delete(user);
    return true;
  }

  /**
   * The members of a room.
   *
   * @param room The room name.
   * @returns The user ids; empty for an unknown room.
   */
  members(room: string): string[] {
    return [...(this.#rooms.get(room) ?? [])];
  }

  /**
   * The rooms of a user.
   *
   * @param user The user id.
   * @returns The room names.
   */
  roomsOf(user: string): string[] {
    return [...(this.#userRooms.get(user) ?? [])];
  }

  /**
   * Upgrades a request to a Duplex WebSocket after the checks, in order:
   * shutting down → 503, not an upgrade → 426, foreign origin → 403, too
   * many connections → 503, authentication → 401/403/400 (or the hook's
   * response). Use it to mount the server on your own route.
   *
   * @param request The upgrade request.
   * @param info The connection info from `Deno.serve`.
   * @returns The 101 response, or the refusal.
   */
  async upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    if (this.#closing) {
      return this.#refuse(503, "Cannot connect: server shutting down");
    }
    if (!isUpgrade(request)) {
      return this.#refuse(426, "Cannot connect: WebSocket upgrade required");
    }
    if (!isOriginAllowed(request, this.#origins)) {
      return this.#refuse(
        403,
        "Cannot connect: origin not allowed",
        `origin=${JSON.stringify(request.headers.get("origin"))}`,
      );
    }
    if (this.#sockets.size >= this.#maxConnections) {
      return this.#refuse(503, "Cannot connect: too many connections");
    }
    const context: AuthContext = {
      url: new URL(request.url),
      token: bearerToken(request),
      info,
    };
    let result: AuthResult | Response | null | undefined;
    try {
      result = await this.#authenticate(request, context);
    } catch (error) {
      this.#logger?.error("authenticate failed", error);
      return this.#refuse(500, "Cannot connect: authentication failed");
    }
    if (result instanceof Response) {
      this.metrics.countRefused(result.status);
      this.#logger?.warn(`refused status=${result.status}`);
      return result;
    }
    if (result === null || result === undefined) {
      return this.#refuse(401, "Cannot connect: not authenticated");
    }
    const user = typeof result === "string" ? result : result.user;
    const data = typeof result === "string" ? undefined : result.data;
    if (
      typeof user !== "string" || user.length === 0 ||
      user.length > MAX_USER_LENGTH
    ) {
      return this.#refuse(
        400,
        `Cannot connect: user id must be 1 to ${MAX_USER_LENGTH} characters`,
      );
    }
    if (this.#closing) {
      return this.#refuse(503, "Cannot connect: server shutting down");
    }
    const protocol = offeredProtocols(request).includes(SUBPROTOCOL)
      ? SUBPROTOCOL
      : "";
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(request, {
        protocol: protocol || undefined,
        idleTimeout: this.#idleTimeout,
      });
    } catch (error) {
      return this.#refuse(
        400,
        `Cannot connect: ${error instanceof Error ? error.message : error}`,
      );
    }
    this.#accept(upgraded.socket, user, protocol, data);
    return upgraded.response;
  }

  /**
   * Shuts down gracefully: new upgrades get 503 and new requests on open
   * connections a `SHUTTING_DOWN` error; running handlers get up to
   * `shutdownTimeout` to finish (their responses are delivered); then every
   * socket is closed with 1001 and the closing handshakes get up to
   * `shutdownTimeout` more. Idempotent. It does not stop the HTTP server:
   * call its `shutdown()` after this.
   *
   * @returns A promise that resolves when every socket is closed or the
   * deadline passed.
   */
  shutdown(): Promise<void> {
    this.#closing = true;
    return this.#shutdown ??= this.#drain();
  }

  /** Same as {@linkcode DuplexServer.shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  async #drain(): Promise<void> {
    const ms = this.#shutdownTimeout;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = (): Promise<void> =>
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, ms);
      });
    try {
      if (this.#inFlight > 0) {
        this.#idle ??= Promise.withResolvers<void>();
        await Promise.race([this.#idle.promise, expired()]);
        clearTimeout(timer);
      }
      for (const connection of [...this.#sockets]) {
        // Sockets still opening are closed by #onOpen.
        if (connection.socket.readyState === OPEN) {
          connection.peer.close(1001, "Server shutting down");
        }
      }
      if (this.#sockets.size > 0) {
        await Promise.race([
          Promise.all([...this.#sockets].map((c) => c.socketClosed)),
          expired(),
        ]);
      }
    } finally {
      clearTimeout(timer);
      this.#broker.close();
    }
  }

  #route(request: Request, info?: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    if (isUpgrade(request) && this.#paths.includes(path)) {
      return this.upgrade(request, info);
    }
    if (request.method === "GET" || request.method === "HEAD") {
      if (path === this.#healthPath) {
        return Promise.resolve(
          this.#closing ? text(503, "shutting down\n") : text(200, "ok\n"),
        );
      }
      if (path === this.#metricsPath) {
        return Promise.resolve(
          new Response(this.metrics.render(this.#snapshot()), {
            headers: {
              "content-type": "text/plain; version=0.0.4; charset=utf-8",
            },
          }),
        );
      }
    }
    if (this.#fallback !== undefined) {
      return Promise.resolve(this.#fallback(request, info));
    }
    return Promise.resolve(text(404, "Not found\n"));
  }

  #refuse(status: number, message: string, detail = ""): Response {
    this.metrics.countRefused(status);
    this.#logger?.warn(
      `refused status=${status}${detail ? ` ${detail}` : ""}`,
    );
    return text(status, message);
  }

  #accept(
    socket: WebSocket,
    user: string,
    protocol: string,
    data: unknown,
  ): void {
    const options = this.#peerOptions;
    // Assigned once, after the peer whose onClose hook needs it.
    // deno-lint-ignore prefer-const
    let connection: ServerConnection<Local, Remote> | undefined;
    const peer = new Peer<Local, Remote>(socket, {
      protocol,
      identity: user,
      registry: this.registry,
      maxMalformed: options.maxMalformed,
      timeout: options.timeout,
      // Size, rate, in-flight and backpressure limits, per connection.
      guard: new PeerLimits(options),
      // Hooks rather than event listeners: cheaper per idle connection.
      onClose: (code, reason) => {
        if (connection !== undefined) this.#onClose(connection, code, reason);
      },
      onError: (error) => {
        // Malformed frames are counted in the metrics; only failures of our
        // own code are reported.
        if (error instanceof ProtocolError) return;
        this.#reportError(`handler failed user=${JSON.stringify(user)}`, error);
      },
    });
    connection = new ServerConnection<Local, Remote>(
      this.#nextId++,
      user,
      protocol,
      data,
      peer,
      socket,
    );
    this.#sockets.add(connection);
    // One listener object per connection, for both socket events. Deno does
    // not need an "error" listener: an abrupt drop is followed by "close".
    connection.onSocketClosed = this.#forgetSocket;
    connection.onOpen = this.#openConnection;
    socket.addEventListener("close", connection, { once: true });
    socket.addEventListener("open", connection, { once: true });
  }

  readonly #forgetSocket = (connection: ServerConnection<Local, Remote>) => {
    this.#sockets.delete(connection);
  };
  readonly #openConnection = (connection: ServerConnection<Local, Remote>) => {
    this.#onOpen(connection);
  };

  #onOpen(connection: ServerConnection<Local, Remote>): void {
    if (connection.peer.closed) return;
    if (this.#closing) {
      connection.peer.close(1001, "Server shutting down");
      return;
    }
    const { user } = connection;
    connection.registered = true;
    this.#connections.add(connection);
    let own = this.#users.get(user);
    const first = own === undefined;
    if (own === undefined) this.#users.set(user, own = new Set());
    own.add(connection);
    this.metrics.connectionsTotal++;
    this.#logger?.info(
      `connect user=${JSON.stringify(user)} id=${connection.id} protocol=${
        connection.protocol || "original"
      }`,
    );
    this.dispatchEvent(new CustomEvent("connect", { detail: connection }));
    if (first) {
      this.#cluster?.addLocalUser(user);
      this.dispatchEvent(new CustomEvent("online", { detail: { user } }));
    }
    if (this.#duplicateUser === "replace") {
      for (const older of [...own]) {
        if (older !== connection) {
          older.peer.closeWithReason(
            CLOSE_REPLACED,
            "Replaced by a newer connection",
          );
        }
      }
    }
  }

  #onClose(
    connection: ServerConnection<Local, Remote>,
    code: number,
    reason: string,
  ): void {
    if (!connection.registered) return;
    connection.registered = false;
    const { user, peer } = connection;
    this.#connections.delete(connection);
    const stats = peer.stats;
    const totals = this.#closedStats;
    for (let type = 0; type < totals.framesIn.length; type++) {
      totals.framesIn[type] += stats.framesIn[type];
      totals.framesOut[type] += stats.framesOut[type];
    }
    totals.dropped += stats.dropped;
    totals.malformed += stats.malformed;
    totals.rateLimited += stats.rateLimited;
    this.metrics.countClose(code);
    this.#logger?.info(
      `disconnect user=${
        JSON.stringify(user)
      } id=${connection.id} code=${code} reason=${JSON.stringify(reason)}`,
    );
    const own = this.#users.get(user);
    own?.delete(connection);
    const last = own !== undefined && own.size === 0;
    if (last) {
      this.#users.delete(user);
      for (const room of this.roomsOf(user)) this.leave(room, user);
    }
    this.dispatchEvent(
      new CustomEvent("disconnect", { detail: { connection, code, reason } }),
    );
    if (last) {
      this.#cluster?.removeLocalUser(user);
      this.dispatchEvent(new CustomEvent("offline", { detail: { user } }));
    }
  }

  /** Local delivery: the one path every push takes after the broker. */
  /** Whether a local push to this audience could reach any connection. */
  #hasAudience(
    to: string | undefined,
    room: string | undefined,
    except: string | undefined,
  ): boolean {
    const users = this.#users;
    if (to !== undefined) return to !== except && users.has(to);
    if (room !== undefined) return this.#rooms.has(room);
    return users.size > (except !== undefined && users.has(except) ? 1 : 0);
  }

  #deliver(envelope: Envelope): void {
    const { user, room, except, data, extended } = envelope;
    if (user !== undefined) {
      if (user === except) return;
      const own = this.#users.get(user);
      if (own !== undefined) this.#sendAll(own, data, extended);
      return;
    }
    if (room !== undefined) {
      const members = this.#rooms.get(room);
      if (members === undefined) return;
      for (const member of members) {
        if (member === except) continue;
        const own = this.#users.get(member);
        if (own !== undefined) this.#sendAll(own, data, extended);
      }
      return;
    }
    for (const connection of this.#connections) {
      if (connection.user === except) continue;
      if (extended && !connection.extended) continue;
      this.#send(connection, data);
    }
  }

  #sendAll(
    connections: Iterable<ServerConnection<Local, Remote>>,
    data: string,
    extended: boolean,
  ): void {
    for (const connection of connections) {
      if (extended && !connection.extended) continue;
      this.#send(connection, data);
    }
  }

  #send(connection: ServerConnection<Local, Remote>, data: string): void {
    try {
      connection.peer.sendNotification(data);
    } catch (error) {
      // A receiver that closed since it was listed is skipped.
      if (!(error instanceof ConnectionClosedError)) {
        this.#reportError(
          `send failed user=${JSON.stringify(connection.user)}`,
          error,
        );
      }
    }
  }

  #measure<P, R>(handler: RequestHandler<P, R>): RequestHandler<P, R> {
    return (params, context) => {
      if (this.#closing) {
        throw new RemoteError({
          code: ErrorCode.ShuttingDown,
          message: "Cannot handle request: server shutting down",
        });
      }
      const start = performance.now();
      this.#inFlight++;
      let result: R | Promise<R>;
      try {
        result = handler(params, context);
      } catch (error) {
        this.#finished(start);
        throw error;
      }
      if (!isPromiseLike(result)) {
        this.#finished(start);
        return result;
      }
      return Promise.resolve(result).then(
        (value) => {
          this.#finished(start);
          return value;
        },
        (error) => {
          this.#finished(start);
          throw error;
        },
      );
    };
  }

  #finished(start: number): void {
    this.metrics.observeRequest((performance.now() - start) / 1000);
    if (--this.#inFlight === 0 && this.#idle !== undefined) {
      this.#idle.resolve();
      this.#idle = undefined;
    }
  }

  #reportError(message: string, error: unknown): void {
    this.#logger?.error(message, error);
    this.dispatchEvent(
      new ErrorEvent("error", {
        error,
        message: error instanceof Error ? error.message : String(error),
      }),
    );
  }

  #snapshot(): MetricsSnapshot {
    const totals = this.#closedStats;
    const framesIn = [...totals.framesIn];
    const framesOut = [...totals.framesOut];
    let { dropped, malformed, rateLimited } = totals;
    for (const { peer } of this.#connections) {
      const stats = peer.stats;
      for (let type = 0; type < framesIn.length; type++) {
        framesIn[type] += stats.framesIn[type];
        framesOut[type] += stats.framesOut[type];
      }
      dropped += stats.dropped;
      malformed += stats.malformed;
      rateLimited += stats.rateLimited;
    }
    return {
      connections: this.#connections.size,
      users: this.#users.size,
      requestsInFlight: this.#inFlight,
      framesIn,
      framesOut,
      dropped,
      malformed,
      rateLimited,
    };
  }
}
