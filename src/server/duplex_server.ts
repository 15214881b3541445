/**
 * The Duplex server: WebSocket upgrades with origin and authentication
 * checks, one {@linkcode Peer} per connection sharing one handler registry,
 * pushes to users, rooms and everyone, limits, metrics and graceful shutdown.
 * This file composes them; each has its own file in this folder.
 *
 * @module
 */

import { type Broker, type Envelope, LocalBroker } from "../cluster/broker.ts";
import type { Cluster } from "../cluster/cluster.ts";
import { ServerMetrics } from "./metrics.ts";
import type {
  AnyEndpoint,
  AnyResult,
  Endpoint,
  NotificationMethod,
  ParamsOf,
  PayloadOf,
  RequestHandler,
  RequestMethod,
  ResultOf,
} from "../peer/peer.ts";
import { Receiver, ServerRegistry } from "./server_registry.ts";
import { defaultAuthenticate } from "./authenticate.ts";
import {
  acceptConnection,
  type AcceptOptions,
  type Connection,
  type ServerConnection,
} from "./connection.ts";
import { SendBudget } from "./send_budget.ts";
import { ConnectionSlots } from "./connection_slots.ts";
import { ConnectionRegistry } from "./connection_registry.ts";
import { FanOut, type NotifyOptions, type PushOptions } from "./fan_out.ts";
import { GracefulShutdown } from "./graceful_shutdown.ts";
import { KeepAlive } from "./keep_alive.ts";
import { isUpgrade, text } from "./_http.ts";
import { StatusRoutes } from "./status_routes.ts";
import {
  dispatchDisconnect,
  type DuplexServerEventMap,
  listenedEvents,
} from "./server_events.ts";
import {
  checkLimits,
  CLOSE_REPLACED,
  type DuplexServerOptions,
  type DuplicateUserPolicy,
  type PeerOptions,
  peerOptions,
  type ServerLogger,
} from "./server_options.ts";
import { requestLocal, type ServerRequestOptions } from "./server_request.ts";
import { clusterNode, type ServerNode } from "./cluster_node.ts";
import type { ServerRequestContext } from "./server_context.ts";
import { type Upgraded, UpgradePath } from "./upgrade.ts";
import { ServerSessions } from "./server_sessions.ts";
import type { SessionMetrics } from "./session_metrics.ts";

export type { AuthContext, Authenticate, AuthResult } from "./authenticate.ts";
export type { Connection } from "./connection.ts";
export type { NotifyOptions, PushOptions } from "./fan_out.ts";
export type {
  DisconnectDetail,
  DuplexServerEventMap,
} from "./server_events.ts";
export {
  CLOSE_REPLACED,
  type DuplexServerOptions,
  type DuplicateUserPolicy,
  type ServerLogger,
  type ServerRateLimit,
} from "./server_options.ts";
export type { ServerRequestOptions } from "./server_request.ts";
export type { ServerRequestContext } from "./server_context.ts";
export type { StatusAuthorize } from "./status_routes.ts";

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

  #paths: readonly string[];
  #status: StatusRoutes;
  #fallback: DuplexServerOptions["fallback"];
  #peerOptions: PeerOptions;
  #duplicateUser: DuplicateUserPolicy;
  #logger: ServerLogger | undefined;
  #broker: Broker;
  #cluster: Cluster | undefined;
  #node: ServerNode<Local, Remote> | undefined;
  #upgradePath: UpgradePath;
  #registry: ConnectionRegistry<Local, Remote> = new ConnectionRegistry();
  #fanOut: FanOut<Local, Remote>;
  #graceful: GracefulShutdown;
  #sendBudget: SendBudget;
  #slots: ConnectionSlots;
  #sessions: ServerSessions<Local, Remote>;
  #nextId = 1;
  readonly #emit = listenedEvents(this);
  #hooks: AcceptOptions<Local, Remote> | undefined; // shared: no closures
  #shutdown: Promise<void> | undefined = undefined;

  /**
   * Creates a server. It listens nowhere by itself: pass `fetch` to
   * `Deno.serve`.
   *
   * @param options Authentication, origins, limits, logger.
   * @throws {RangeError} When a limit is not a positive number.
   */
  constructor(options: DuplexServerOptions = {}) {
    super(options.registry ?? new ServerRegistry());
    this.#paths = options.paths ?? ["/", "/ws"];
    this.#fallback = options.fallback;
    this.#peerOptions = peerOptions(options);
    const maxConnections = options.maxConnections ?? 10_000;
    const perAddress = options.maxConnectionsPerAddress ?? 256;
    checkLimits({
      maxMessageSize: this.#peerOptions.maxMessageSize,
      maxInFlight: this.#peerOptions.maxInFlight,
      maxConnections,
      maxConnectionsPerAddress: perAddress,
    });
    this.#slots = new ConnectionSlots(maxConnections, perAddress);
    this.#duplicateUser = options.duplicateUser ?? "allow";
    const { sendBudget, totalSendBudget } = options; // defaults: SendBudget
    this.#sendBudget = new SendBudget(sendBudget, totalSendBudget);
    this.#logger = options.logger;
    const idleTimeout = options.idleTimeout ?? 30; // the keep-alive's too
    this.#registry.keepAlive = new KeepAlive(idleTimeout);
    const shutdownTimeout = options.shutdownTimeout ?? 5_000;
    this.#graceful = new GracefulShutdown(this.metrics, shutdownTimeout);
    this.#upgradePath = new UpgradePath({
      authenticate: options.authenticate ?? defaultAuthenticate,
      origins: options.origins,
      hosts: options.hosts,
      idleTimeout,
      slots: this.#slots,
      trustProxy: options.trustProxy ?? false,
      sessions: options.sessions !== false,
      metrics: this.metrics,
      logger: this.#logger,
      closing: () => this.#graceful.closing,
      accept: (upgraded) => this.#accept(upgraded),
      codecs: options.codecs ?? [],
      maxMessageSize: this.#peerOptions.maxMessageSize,
      refusals: options.refusals ?? "status",
    });
    this.#registry.authorizeJoin = options.authorizeJoin;
    this.#status = new StatusRoutes({
      healthPath: options.healthPath ?? "/healthz",
      metricsPath: options.metricsPath ?? "/metrics",
      clientPath: options.clientPath ?? false,
      closing: () => this.#graceful.closing,
      authorize: options.authorizeStatus,
      render: () =>
        this.metrics.render({
          ...this.#registry.snapshot(this.#graceful.inFlight),
          cluster: this.#cluster?.stats,
        }) + this.#sessions.render(),
    });
    this.#sessions = new ServerSessions<Local, Remote>(options.sessions || {}, {
      registry: this.#registry,
      metrics: this.metrics,
      logger: this.#logger,
      events: this,
      peer: { peerOptions: this.#peerOptions, registry: this.registry },
      budget: this.#sendBudget,
      nextId: () => this.#nextId++,
      forgetSocket: this.#forgetSocket,
      onError: this.#handlerFailed,
      abandoned: (upgraded) => this.#slots.release(upgraded.address),
      opened: (connection) => this.#onOpen(connection),
      ended: (...args) => this.#onClose(...args),
      join: (room, user) => this.join(room, user),
    });
    this.#fanOut = new FanOut(
      this.#registry,
      ({ user }, error) =>
        this.#reportError(`send failed user=${JSON.stringify(user)}`, error),
    );
    this.#fanOut.codec = options.codecs?.find((codec) => codec.protocol);
    this.#broker = new LocalBroker();
    this.#broker.subscribe((envelope) => this.#fanOut.deliver(envelope));
    this.#cluster = options.cluster;
    if (this.#cluster !== undefined) {
      this.#node = clusterNode(this.#cluster.id, this.#registry, this.#fanOut);
      this.#cluster.attach(this.#node);
    }
    this.fetch = (request, info) => this.#route(request, info);
  }

  /** Open connections. */
  get connections(): number {
    return this.#registry.connections.size;
  }

  /** Session figures since the start (also in `/metrics`). */
  get sessionMetrics(): SessionMetrics {
    return this.#sessions.metrics;
  }
  /** `true` once `shutdown()` was called. */
  get closing(): boolean {
    return this.#graceful.closing;
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
    return this.#registry.users();
  }

  /**
   * Tells whether a user has an open connection.
   *
   * @param user The user id.
   * @returns `true` when connected.
   */
  isOnline(user: string): boolean {
    return this.#registry.isOnline(user);
  }

  /**
   * The open connections of a user, oldest first.
   *
   * @param user The user id.
   * @returns The connections; empty when the user is not connected.
   */
  connectionsOf(user: string): Connection<Local, Remote>[] {
    return [...(this.#registry.connectionsOf(user) ?? [])];
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
    R extends ResultOf<Local, M> & AnyResult = ResultOf<Local, M> & AnyResult,
  >(
    method: M,
    handler: RequestHandler<P, R, ServerRequestContext>,
  ): () => void {
    return super.handle(method, this.#graceful.measure(handler));
  }

  /**
   * Sets the handler of requests without a method (the original protocol)
   * for every connection.
   *
   * @param handler The handler; `context.from` is the sender's user id.
   * @returns A function that removes the handler.
   */
  override onRequest(
    handler: RequestHandler<unknown, unknown, ServerRequestContext>,
  ): () => void {
    return super.onRequest(this.#graceful.measure(handler));
  }

  /**
   * Pushes a notification to one user (`to`), a room (`room`) or everyone,
   * minus `except`, encoded once for all. With a `method` it reaches only
   * `duplex.v1` clients, with bytes only clients on the binary codec. Those
   * over the high-water mark get the backpressure policy; closed ones are
   * skipped. With a cluster, other instances get it through the broker (at
   * most once; trouble is logged by the cluster), unless `local` is set.
   * @param message The payload: any JSON value.
   * @param options The audience, method, `from`, `sequence` and `local`.
   * @throws {TypeError} With both `to` and `room`, or a message it cannot send.
   */
  notify(message: unknown, options: NotifyOptions = {}): void {
    const spans = !options.local && this.#cluster !== undefined;
    this.#fanOut.push(message, options, spans, this.#routeEnvelope);
  }
  /** Where a push's envelope goes: one function, not a closure per push. */
  #routeEnvelope = (envelope: Envelope, local: boolean): void =>
    local
      ? this.#fanOut.deliver(envelope)
      : (this.#cluster ?? this.#broker).publish(envelope);

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
      return requestLocal(this.#registry, to, message, options) as Promise<R>;
    }
    return this.#cluster.request<R>(to, message, {
      method,
      timeout: timeout ?? this.#peerOptions.timeout,
      signal,
    });
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
   * With a cluster it acts wherever the user is connected.
   *
   * @param room The room name.
   * @param user The user id.
   * @returns `false` when the user is not connected.
   */
  join(room: string, user: string): boolean {
    return this.#cluster?.join(room, user) ?? this.#registry.join(room, user);
  }

  /**
   * Removes a user from a room.
   *
   * @param room The room name.
   * @param user The user id.
   * @returns `true` when the user was a member.
   */
  leave(room: string, user: string): boolean {
    return this.#cluster?.leave(room, user) ?? this.#registry.leave(room, user);
  }

  /**
   * The members of a room (with a cluster: on every instance).
   *
   * @param room The room name.
   * @returns The user ids; empty for an unknown room.
   */
  members(room: string): string[] {
    return this.#cluster?.members(room) ?? this.#registry.members(room);
  }

  /**
   * The rooms of a user (with a cluster: on every instance).
   *
   * @param user The user id.
   * @returns The room names.
   */
  roomsOf(user: string): string[] {
    return this.#cluster?.roomsOf(user) ?? this.#registry.roomsOf(user);
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
  upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    return this.#upgradePath.upgrade(request, info);
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
    if (!this.#sessions.shared) this.#graceful.closing = true; // see handOver
    const drain = () => this.#graceful.drain(this.#registry.sockets);
    this.#shutdown ??= this.#sessions.handOver(drain).then(drain)
      .finally(() => this.#sessions.closeAll(1001, "Server shutting down"))
      .finally(() => this.#broker.close());
    return this.#shutdown;
  }

  /** Same as {@linkcode DuplexServer.shutdown}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  #route(request: Request, info?: Deno.ServeHandlerInfo): Promise<Response> {
    const url = new URL(request.url), path = url.pathname;
    if (isUpgrade(request) && this.#paths.includes(path)) {
      return this.#upgradePath.upgrade(request, info, url); // parsed once
    }
    const status = this.#status.answer(request, path, info);
    if (status !== undefined) return status;
    if (this.#fallback !== undefined) {
      return Promise.resolve(this.#fallback(request, info));
    }
    return Promise.resolve(text(404, "Not found\n"));
  }

  #accept(upgraded: Upgraded): void {
    if (upgraded.session) {
      this.#sessions.accept(upgraded);
      return;
    }
    const hooks = this.#hooks ??= {
      peerOptions: this.#peerOptions,
      registry: this.registry,
      budget: this.#sendBudget,
      onClose: (connection, ...why) => this.#onClose(connection, ...why),
      onHandlerError: this.#handlerFailed,
      onSocketClosed: this.#forgetSocket,
      onOpen: (connection) => this.#onOpen(connection),
    };
    const connection = acceptConnection(upgraded, this.#nextId++, hooks);
    this.#registry.sockets.add(connection);
  }

  readonly #handlerFailed = (user: string, error: unknown): void =>
    this.#reportError(`handler failed user=${JSON.stringify(user)}`, error);
  readonly #forgetSocket = (connection: ServerConnection<Local, Remote>) => {
    this.#registry.sockets.delete(connection);
    this.#sendBudget.forget(connection.budgeted);
    this.#slots.release(connection.address);
  };

  #onOpen(connection: ServerConnection<Local, Remote>): void {
    if (connection.peer.closed) return;
    if (this.#graceful.closing) {
      connection.peer.close(1001, "Server shutting down");
      return;
    }
    const { user } = connection;
    const first = this.#registry.add(connection);
    this.metrics.connectionsTotal++;
    this.#logger?.info(
      `connect user=${JSON.stringify(user)} id=${connection.id} protocol=${
        connection.protocol || "original"
      }`,
    );
    this.#emit("connect", connection); // no event object without listeners
    this.#node?.opened(connection);
    if (first) {
      this.#cluster?.addLocalUser(user);
      this.#emit("online", { user });
    }
    if (this.#duplicateUser === "replace") {
      this.#cluster?.replace(user);
      const reason = "Replaced by a newer connection";
      this.#registry.closeOlder(connection, CLOSE_REPLACED, reason);
    }
  }

  #onClose(
    connection: ServerConnection<Local, Remote> | undefined,
    code: number,
    reason: string,
    disconnected = false,
  ): void {
    if (!connection?.registered) return;
    const { user } = connection, host = this.#sessions.host;
    const last = this.#registry.remove(connection);
    if (!disconnected) dispatchDisconnect(host, connection, code, reason);
    if (last) {
      this.#cluster?.removeLocalUser(user);
      this.dispatchEvent(new CustomEvent("offline", { detail: { user } }));
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
}
