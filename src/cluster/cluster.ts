/**
 * The cross-instance layer: several server instances behind any load
 * balancer (no sticky sessions) share users, rooms, broadcasts, requests and
 * presence through a {@linkcode PubSub} broker.
 *
 * Each instance owns one {@linkcode Cluster} and attaches its local server as
 * a {@linkcode LocalNode}: a function that delivers an already-encoded frame
 * to local connections, and one that sends a request to a local user. The
 * cluster does the rest:
 *
 * - {@linkcode Cluster.publish} delivers a push locally at once and sends it,
 *   encoded once, to the other instances: everyone, a room, everyone but one
 *   user (`except`), or one user (only to the instances where the user is);
 * - {@linkcode Cluster.request} asks a user connected to any instance and
 *   routes the response back, with a timeout and typed errors;
 * - presence: {@linkcode Cluster.addLocalUser} / `removeLocalUser` announce
 *   local users; every instance re-announces its users each
 *   `heartbeatInterval`; an instance not heard from within `presenceTtl` is
 *   dropped with its users. `join` and `leave` events report cluster-wide
 *   changes; {@linkcode Cluster.online} lists the users.
 *
 * Guarantees: messages from one instance are delivered to another in the
 * order they were published (per channel on transports without a total
 * order); the broker delivers at most once (nothing is retried or replayed);
 * users of an instance that dies disappear from every other instance within
 * `presenceTtl + heartbeatInterval`. The envelope format is documented on
 * {@linkcode CLUSTER_PROTOCOL_VERSION}.
 *
 * @module
 */

import { TypedEventTarget } from "../peer/typed_event_target.ts";
import {
  ConnectionClosedError,
  DuplexError,
  RemoteError,
  RequestTimeoutError,
} from "../wire/errors.ts";
import type { ErrorPayload } from "../wire/protocol.ts";
import { RequestTracker } from "../peer/request_tracker.ts";
import { NotConnectedError } from "./not_connected_error.ts";
import type { BrokerLogger, PubSub, Unsubscribe } from "./pubsub.ts";

/**
 * The version of the broker envelope, the `v` field of every message. A
 * receiver drops (and counts) messages of any other version.
 *
 * Every message is one JSON object (a string on the broker) with
 * `v` (1), `kind`, and `node` (the sending instance's id). Channels are
 * `<prefix>all` (every instance) and `<prefix>node:<id>` (one instance).
 *
 * | kind     | channel   | fields                                                                          |
 * | -------- | --------- | ------------------------------------------------------------------------------- |
 * | `push`   | all       | `data` (encoded frame), `extended`?, `room`?, `except`?                         |
 * | `push`   | node:<id> | `data`, `extended`?, `user`, `except`?                                          |
 * | `req`    | node:<id> | `id` (sender's number), `user`, `message`?, `method`?, `from`?, `timeout` (ms)  |
 * | `res`    | node:<id> | `id`, then `message` or `error` (`{code, message, data?}`)                      |
 * | `cancel` | node:<id> | `id`                                                                            |
 * | `join`   | all       | `user`                                                                          |
 * | `leave`  | all       | `user`                                                                          |
 * | `hb`     | all       | `users` (every local user), `ttl` (ms)                                          |
 * | `sync`   | all       | (asks every instance to send `hb` now)                                          |
 * | `bye`    | all       | (the sender leaves: drop its users now)                                         |
 *
 * Unknown kinds and extra fields are ignored, so later versions can add them.
 *
 * @example Usage
 * ```ts
 * import { CLUSTER_PROTOCOL_VERSION } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLUSTER_PROTOCOL_VERSION, 1);
 * const push = { v: 1, kind: "push", node: "a1", data: '{"sequence":0,"type":3,"message":"hi"}' };
 * assert.equal(push.v, CLUSTER_PROTOCOL_VERSION);
 * ```
 */
export const CLUSTER_PROTOCOL_VERSION: number = 1;

/**
 * One push to local connections: an encoded notify frame and its audience.
 * Without `user` and `room` it is for everyone; `except` excludes every
 * connection of one user. Same shape as the server's delivery envelope.
 *
 * @example Usage
 * ```ts
 * import type { Push } from "@duplex/ws/server";
 *
 * const push: Push = {
 *   data: '{"sequence":0,"type":3,"message":"hi","from":"alice"}',
 *   extended: false,
 *   room: "lobby",
 *   except: "alice",
 * };
 * ```
 */
export interface Push {
  /** The encoded frame, sent as is to every receiving connection. */
  data: string;
  /** Only clients that negotiated `duplex.v1` receive it. */
  extended: boolean;
  /** One user: all of that user's connections. */
  user?: string;
  /** The members of one room. */
  room?: string;
  /** A user none of whose connections receive it. */
  except?: string;
}

/**
 * Options of a request to a user, local or remote.
 *
 * @example Usage
 * ```ts
 * import type { UserRequestOptions } from "@duplex/ws/server";
 *
 * const options: UserRequestOptions = { method: "confirm", timeout: 2_000 };
 * ```
 */
export interface UserRequestOptions {
  /**
   * The request's method.
   *
   * @default {undefined}
   */
  method?: string;
  /**
   * Who asks, when a user relays a request (the frame's `from`).
   *
   * @default {undefined}
   */
  from?: string;
  /**
   * Timeout in milliseconds; 0 disables it.
   *
   * @default {the cluster's timeout}
   */
  timeout?: number;
  /**
   * Aborting it rejects the request with `signal.reason` and cancels it on
   * the answering instance.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * What the cluster needs from the local server. Both functions are called
 * for pushes and requests that arrive from other instances (and for local
 * ones made through the cluster).
 *
 * @example A node that records deliveries
 * ```ts
 * import type { LocalNode, Push } from "@duplex/ws/server";
 *
 * const delivered: Push[] = [];
 * const node: LocalNode = {
 *   deliver: (push) => void delivered.push(push),
 *   request: (user, message) => Promise.resolve(`${user} got ${message}`),
 * };
 * ```
 */
export interface LocalNode {
  /**
   * Writes `push.data` to the local connections of its audience. Must not
   * throw; unknown users and rooms are no-ops.
   *
   * @param push The push.
   */
  deliver(push: Push): void;
  /**
   * Sends a request to a user connected here and resolves with the response.
   *
   * @param user The user.
   * @param message The payload.
   * @param options `method`, `from`, `timeout` and `signal`.
   * @returns The response payload.
   * @throws {NotConnectedError} When the user has no suitable connection.
   * @throws {RemoteError} When the client answered with an error.
   * @throws {RequestTimeoutError} When the client did not answer in time.
   */
  request(
    user: string,
    message: unknown,
    options: UserRequestOptions,
  ): Promise<unknown>;
}

/**
 * Why a `join` or `leave` event fired:
 * - `"join"` / `"leave"`: an instance announced a user (or this instance's
 *   `addLocalUser` / `removeLocalUser`);
 * - `"heartbeat"`: an instance's periodic list added or lacked a user;
 * - `"expired"`: the instance holding the user was not heard from in time;
 * - `"goodbye"`: the instance holding the user closed.
 *
 * @example Usage
 * ```ts
 * import type { PresenceReason } from "@duplex/ws/server";
 *
 * const reason: PresenceReason = "expired";
 * ```
 */
export type PresenceReason =
  | "join"
  | "leave"
  | "heartbeat"
  | "expired"
  | "goodbye";

/**
 * The detail of `join` and `leave` events.
 *
 * @example Usage
 * ```ts
 * import type { PresenceDetail } from "@duplex/ws/server";
 *
 * const detail: PresenceDetail = { user: "alice", instance: "a1", reason: "join" };
 * ```
 */
export interface PresenceDetail {
  /** The user. */
  user: string;
  /** The instance whose change caused the event. */
  instance: string;
  /** Why it changed. */
  reason: PresenceReason;
}

/**
 * The events of a {@linkcode Cluster}.
 *
 * @example Usage
 * ```ts
 * import type { ClusterEventMap } from "@duplex/ws/server";
 *
 * const onJoin = (event: ClusterEventMap["join"]) => console.log(event.detail.user);
 * ```
 */
export interface ClusterEventMap {
  /** A user came online somewhere in the cluster (first instance). */
  join: CustomEvent<PresenceDetail>;
  /** A user went offline everywhere in the cluster (last instance). */
  leave: CustomEvent<PresenceDetail>;
  /** The broker refused a message, or a node function threw. */
  error: ErrorEvent;
}

/**
 * Options of a {@linkcode Cluster}. Every duration is in milliseconds.
 *
 * @example Usage
 * ```ts
 * import type { ClusterOptions } from "@duplex/ws/server";
 *
 * const options: ClusterOptions = { heartbeatInterval: 2_000, presenceTtl: 6_000 };
 * ```
 */
export interface ClusterOptions {
  /**
   * This instance's id, unique in the cluster.
   *
   * @default {crypto.randomUUID()}
   */
  id?: string;
  /**
   * Prepended to every channel name, to keep apps on one broker apart.
   *
   * @default {"duplex:"}
   */
  prefix?: string;
  /**
   * The local server; can also be set later with `attach()`.
   *
   * @default {undefined}
   */
  node?: LocalNode;
  /**
   * How often this instance publishes its users.
   *
   * @default {5000}
   */
  heartbeatInterval?: number;
  /**
   * How long another instance's users stay listed without a heartbeat.
   * Must exceed `heartbeatInterval`.
   *
   * @default {15000}
   */
  presenceTtl?: number;
  /**
   * Default timeout of a request to a user; 0 disables it.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * The most remote requests pending at once.
   *
   * @default {10000}
   */
  maxPending?: number;
  /**
   * Receives one line per instance joining or leaving, broker trouble and
   * invalid messages. Silent when absent.
   *
   * @default {undefined}
   */
  logger?: BrokerLogger;
}

/**
 * Counters of a {@linkcode Cluster}, for metrics.
 *
 * @example Usage
 * ```ts
 * import type { ClusterStats } from "@duplex/ws/server";
 *
 * const failureRate = (stats: ClusterStats) => stats.publishFailed / Math.max(1, stats.published);
 * ```
 */
export interface ClusterStats {
  /** Messages the broker took. */
  published: number;
  /** Messages the broker refused (dropped: at-most-once). */
  publishFailed: number;
  /** Valid messages received from other instances. */
  received: number;
  /** Messages that were not valid envelopes, or of another version. */
  invalid: number;
  /** Requests sent to other instances. */
  requestsSent: number;
  /** Requests from other instances answered here. */
  requestsServed: number;
  /** Instances dropped because their heartbeats stopped. */
  expired: number;
}

/** What this instance knows of another one. */
class Instance {
  users = new Set<string>();
  seen = performance.now();
  constructor(public ttl: number) {}
}

type Envelope = Record<string, unknown>;

function isRecord(value: unknown): value is Envelope {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function optionalString(value: unknown): value is string | undefined {
  return value === undefined || typeof value === "string";
}

function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function isErrorPayload(value: unknown): value is ErrorPayload {
  return isRecord(value) && typeof value.code === "string" &&
    typeof value.message === "string";
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

/**
 * One instance's membership in a cluster of server instances. See the module
 * doc for what it does and guarantees.
 *
 * Events: `join` and `leave` (cluster-wide presence, with a
 * {@linkcode PresenceDetail}), `error` (broker trouble, a failing node).
 *
 * The cluster does not own its {@linkcode PubSub}: close the cluster first
 * (it says goodbye), then the transport.
 *
 * @example Two instances on one in-memory hub
 * ```ts
 * import { Cluster, type Push } from "@duplex/ws/server";
 * import { MemoryHub, MemoryPubSub } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryHub();
 * await using busA = new MemoryPubSub({ hub });
 * await using busB = new MemoryPubSub({ hub });
 * const received = Promise.withResolvers<Push>();
 * await using a = new Cluster(busA, {
 *   node: { deliver() {}, request: () => Promise.resolve("unused") },
 * });
 * await using b = new Cluster(busB, {
 *   node: {
 *     deliver: (push) => received.resolve(push),
 *     request: (user, message) => Promise.resolve(`${user} says hi to ${message}`),
 *   },
 * });
 * await a.start();
 * const seen = new Promise((resolve) => a.addEventListener("join", resolve, { once: true }));
 * await b.start();
 * b.addLocalUser("bob");
 * await seen;
 * assert.deepEqual(a.online(), ["bob"]);
 *
 * a.publish({ data: '{"sequence":0,"type":3,"message":"hi"}', extended: false });
 * assert.equal((await received.promise).data, '{"sequence":0,"type":3,"message":"hi"}');
 * assert.equal(await a.request("bob", "alice"), "bob says hi to alice");
 * ```
 */
export class Cluster extends TypedEventTarget<ClusterEventMap>
  implements AsyncDisposable {
  /** This instance's id. */
  readonly id: string;
  /** Counters, for metrics. */
  readonly stats: ClusterStats = {
    published: 0,
    publishFailed: 0,
    received: 0,
    invalid: 0,
    requestsSent: 0,
    requestsServed: 0,
    expired: 0,
  };
  #pubsub: PubSub;
  #node: LocalNode | undefined;
  #allChannel: string;
  #prefix: string;
  #interval: number;
  #ttl: number;
  #timeout: number;
  #logger: BrokerLogger | undefined;
  #tracker: RequestTracker;
  #outgoing = new Map<
    number,
    { instance: string; user: string; timeout: number }
  >();
  #serving = new Map<string, AbortController>();
  #local = new Map<string, number>();
  #remote = new Map<string, Instance>();
  #where = new Map<string, Set<string>>();
  #unsubscribes: Unsubscribe[] = [];
  #publishing = new Set<Promise<void>>();
  #timer: ReturnType<typeof setInterval> | undefined = undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;
  #suspended = false;
  #failing = false;
  #unsupportedLogged = false;
  readonly #onUp = (): void => this.#brokerUp();
  readonly #onDown = (): void => this.#brokerDown();

  /**
   * Creates the instance's cluster membership; nothing is sent before
   * `start()`.
   *
   * @param pubsub The transport shared with the other instances.
   * @param options Id, node, intervals, timeouts and logger.
   * @throws {RangeError} When an interval is not positive, `presenceTtl`
   * does not exceed `heartbeatInterval`, or `id` is empty.
   */
  constructor(pubsub: PubSub, options: ClusterOptions = {}) {
    super();
    const {
      id = crypto.randomUUID(),
      prefix = "duplex:",
      heartbeatInterval = 5_000,
      presenceTtl = 15_000,
      timeout = 30_000,
      maxPending = 10_000,
    } = options;
    if (id === "") {
      throw new RangeError("Cannot create cluster: the id is empty");
    }
    if (!(heartbeatInterval > 0 && heartbeatInterval !== Infinity)) {
      throw new RangeError(
        `Cannot create cluster: heartbeatInterval must be a positive number, got ${heartbeatInterval}`,
      );
    }
    if (!(presenceTtl > heartbeatInterval)) {
      throw new RangeError(
        `Cannot create cluster: presenceTtl ${presenceTtl} must exceed heartbeatInterval ${heartbeatInterval}`,
      );
    }
    this.id = id;
    this.#pubsub = pubsub;
    this.#node = options.node;
    this.#prefix = prefix;
    this.#allChannel = `${prefix}all`;
    this.#interval = heartbeatInterval;
    this.#ttl = presenceTtl;
    this.#timeout = timeout;
    this.#logger = options.logger;
    this.#tracker = new RequestTracker({
      timeout,
      maxPending,
      onAbandon: (sequence) => this.#abandon(sequence),
    });
  }

  /**
   * Sets the local server that receives pushes and requests.
   *
   * @param node The local node.
   */
  attach(node: LocalNode): void {
    this.#node = node;
  }

  /**
   * Subscribes to the cluster's channels, announces this instance and its
   * local users, asks the others for theirs, and starts the heartbeat.
   * Idempotent.
   *
   * @returns Settles once subscribed.
   * @throws {TypeError} After `close()`.
   * @throws {BrokerUnavailableError} When the transport is closed.
   */
  async start(): Promise<void> {
    if (this.#closed) {
      throw new TypeError("Cannot start cluster: it is closed");
    }
    if (this.#started) return;
    this.#started = true;
    this.#pubsub.addEventListener("up", this.#onUp);
    this.#pubsub.addEventListener("down", this.#onDown);
    this.#suspended = !this.#pubsub.connected;
    for (const channel of [this.#allChannel, this.#channelOf(this.id)]) {
      this.#unsubscribes.push(
        await this.#pubsub.subscribe(
          channel,
          (data) => this.#receive(data, channel),
        ),
      );
    }
    if (this.#closed) return;
    this.#timer = setInterval(() => this.#tick(), this.#interval);
    this.#logger?.info(
      `cluster ${this.id} started on ${this.#pubsub.name} (${this.#local.size} local users)`,
    );
    this.#sendHeartbeat();
    this.#sendAll({ kind: "sync" });
  }

  /**
   * Delivers a push locally at once and sends it to the other instances:
   * a user's push only to the instances where the user is, any other push
   * to every instance. The envelope is encoded once. Broker trouble never
   * throws here: it is counted, logged and reported as an `error` event.
   *
   * @param push The encoded frame and its audience.
   * @throws {TypeError} When `push.data` is not a string, or both `user` and
   * `room` are given.
   */
  publish(push: Push): void {
    if (typeof push.data !== "string") {
      throw new TypeError("Cannot publish push: data must be a string");
    }
    if (push.user !== undefined && push.room !== undefined) {
      throw new TypeError(
        "Cannot publish push: give either user or room, not both",
      );
    }
    const envelope: Envelope = { kind: "push", data: push.data };
    if (push.extended) envelope.extended = true;
    if (push.except !== undefined) envelope.except = push.except;
    const user = push.user;
    if (user !== undefined) {
      if (user === push.except) return;
      if (this.#local.has(user)) this.#deliver(push);
      const instances = this.#remoteInstancesOf(user);
      if (instances.length === 0 || !this.#live()) return;
      envelope.user = user;
      const text = this.#encode(envelope);
      for (const instance of instances) {
        this.#send(this.#channelOf(instance), text);
      }
      return;
    }
    if (push.room !== undefined) envelope.room = push.room;
    this.#deliver(push);
    if (this.#live()) this.#send(this.#allChannel, this.#encode(envelope));
  }

  /**
   * Sends a request to a user connected to any instance: this one's node
   * when the user is here, otherwise the instance that announced the user,
   * whose answer is routed back here.
   *
   * @typeParam R The response type.
   * @param user The user.
   * @param message The payload.
   * @param options `method`, `from`, `timeout` and `signal`.
   * @returns The response payload.
   * @throws {NotConnectedError} When the user is not connected anywhere
   * (code `NOT_CONNECTED`), or left before answering.
   * @throws {RequestTimeoutError} When no answer came in time.
   * @throws {RemoteError} When the client answered with an error.
   * @throws {BrokerUnavailableError} When the broker refused the request.
   * @throws {ConnectionClosedError} When the cluster closed first.
   * @throws {TooManyPendingError} When `maxPending` requests are pending.
   */
  request<R = unknown>(
    user: string,
    message: unknown,
    options: UserRequestOptions = {},
  ): Promise<R> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) {
      return Promise.reject(new ConnectionClosedError(1001, "cluster closed"));
    }
    const node = this.#node;
    if (this.#local.has(user) && node !== undefined) {
      return node.request(user, message, options) as Promise<R>;
    }
    const instances = this.#remoteInstancesOf(user);
    const instance = instances[instances.length - 1];
    if (instance === undefined || !this.#live()) {
      return Promise.reject(new NotConnectedError(user));
    }
    const timeout = options.timeout ?? this.#timeout;
    let pending;
    try {
      pending = this.#tracker.track<R>({ timeout, signal });
    } catch (error) {
      return Promise.reject(error);
    }
    const { sequence, promise } = pending;
    this.#outgoing.set(sequence, { instance, user, timeout });
    const envelope: Envelope = {
      kind: "req",
      id: sequence,
      user,
      message,
      timeout,
    };
    if (options.method !== undefined) envelope.method = options.method;
    if (options.from !== undefined) envelope.from = options.from;
    let text: string;
    try {
      text = this.#encode(envelope);
    } catch (error) {
      this.#outgoing.delete(sequence);
      this.#tracker.reject(
        sequence,
        new TypeError(`Cannot send request: ${describe(error)}`),
      );
      return promise;
    }
    this.stats.requestsSent++;
    this.#send(this.#channelOf(instance), text, (error) => {
      if (this.#outgoing.delete(sequence)) {
        this.#tracker.reject(sequence, error);
      }
    });
    return promise.finally(() => this.#outgoing.delete(sequence));
  }

  /**
   * Announces that a user connected here (call it on the user's first
   * local connection). Counted: each call needs a `removeLocalUser`.
   *
   * @param user The user.
   */
  addLocalUser(user: string): void {
    const count = this.#local.get(user) ?? 0;
    this.#local.set(user, count + 1);
    if (count > 0) return;
    this.#add(this.id, user, "join");
    if (this.#live()) this.#sendAll({ kind: "join", user });
  }

  /**
   * Announces that a user left this instance (its last local connection
   * closed).
   *
   * @param user The user.
   * @returns `false` when the user was not announced here.
   */
  removeLocalUser(user: string): boolean {
    const count = this.#local.get(user);
    if (count === undefined) return false;
    if (count > 1) {
      this.#local.set(user, count - 1);
      return true;
    }
    this.#local.delete(user);
    this.#remove(this.id, user, "leave");
    if (this.#live()) this.#sendAll({ kind: "leave", user });
    return true;
  }

  /**
   * The users online anywhere in the cluster, as this instance knows them.
   *
   * @returns The user ids, in order of first appearance.
   */
  online(): string[] {
    return [...this.#where.keys()];
  }

  /**
   * Tells whether a user is online anywhere in the cluster.
   *
   * @param user The user.
   * @returns `true` when some instance holds the user.
   */
  isOnline(user: string): boolean {
    return this.#where.has(user);
  }

  /**
   * The instances where a user is connected.
   *
   * @param user The user.
   * @returns Instance ids; this one's included when the user is local.
   */
  locate(user: string): string[] {
    return [...(this.#where.get(user) ?? [])];
  }

  /**
   * The instances this one knows to be alive, itself first.
   *
   * @returns Instance ids.
   */
  instances(): string[] {
    return [this.id, ...this.#remote.keys()];
  }

  /**
   * Leaves the cluster: says goodbye (the others drop this instance's users
   * at once), unsubscribes, stops the heartbeat, rejects pending requests
   * with {@linkcode ConnectionClosedError} and cancels the requests being
   * served for others. It does not close the transport. Idempotent.
   *
   * @returns Settles once everything is stopped.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * Same as `close()`, for `await using`.
   *
   * @returns Settles once closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const wasLive = this.#live();
    this.#closed = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#pubsub.removeEventListener("up", this.#onUp);
    this.#pubsub.removeEventListener("down", this.#onDown);
    if (wasLive) {
      this.#send(this.#allChannel, this.#encode({ kind: "bye" }));
    }
    const unsubscribes = this.#unsubscribes.splice(0);
    await Promise.all(unsubscribes.map((unsubscribe) =>
      Promise.resolve()
        .then(unsubscribe)
        .catch(() => {})
    ));
    this.#tracker.rejectAll(new ConnectionClosedError(1001, "cluster closed"));
    this.#outgoing.clear();
    for (const controller of this.#serving.values()) {
      controller.abort(new ConnectionClosedError(1001, "cluster closed"));
    }
    this.#serving.clear();
    await Promise.all(this.#publishing);
    this.#remote.clear();
    this.#where.clear();
    if (wasLive) this.#logger?.info(`cluster ${this.id} closed`);
  }

  #live(): boolean {
    return this.#started && !this.#closed;
  }

  #channelOf(instance: string): string {
    return `${this.#prefix}node:${instance}`;
  }

  #encode(envelope: Envelope): string {
    return JSON.stringify({
      v: CLUSTER_PROTOCOL_VERSION,
      node: this.id,
      ...envelope,
    });
  }

  #sendAll(envelope: Envelope): void {
    this.#send(this.#allChannel, this.#encode(envelope));
  }

  #sendHeartbeat(): void {
    this.#sendAll({
      kind: "hb",
      users: [...this.#local.keys()],
      ttl: this.#ttl,
    });
  }

  /** Publishes; failures are counted, logged once per outage, reported. */
  #send(
    channel: string,
    text: string,
    onFailure?: (error: Error) => void,
  ): void {
    let sent: Promise<void>;
    try {
      sent = Promise.resolve(this.#pubsub.publish(channel, text));
    } catch (error) {
      sent = Promise.reject(error);
    }
    const settled = sent.then(
      () => {
        this.stats.published++;
        if (this.#failing) {
          this.#failing = false;
          this.#logger?.info(`cluster ${this.id} publishes again`);
        }
      },
      (error: unknown) => {
        this.stats.publishFailed++;
        const reason = error instanceof Error
          ? error
          : new Error(String(error));
        onFailure?.(reason);
        if (this.#failing) return;
        this.#failing = true;
        const message =
          `cluster ${this.id} cannot publish to ${this.#pubsub.name}: ${
            describe(error)
          }; messages to other instances are dropped until it is back (further failures are only counted)`;
        this.#logger?.warn(message);
        this.dispatchEvent(new ErrorEvent("error", { error, message }));
      },
    );
    this.#publishing.add(settled);
    settled.then(() => this.#publishing.delete(settled));
  }

  #deliver(push: Push): void {
    const node = this.#node;
    if (node === undefined) return;
    try {
      node.deliver(push);
    } catch (error) {
      this.#report("local delivery failed", error);
    }
  }

  #report(what: string, error: unknown): void {
    const message = `cluster ${this.id}: ${what}: ${describe(error)}`;
    this.#logger?.error(message, error);
    this.dispatchEvent(new ErrorEvent("error", { error, message }));
  }

  #remoteInstancesOf(user: string): string[] {
    const where = this.#where.get(user);
    if (where === undefined) return [];
    const instances: string[] = [];
    for (const instance of where) {
      if (instance !== this.id) instances.push(instance);
    }
    return instances;
  }

  #add(instance: string, user: string, reason: PresenceReason): void {
    let where = this.#where.get(user);
    if (where === undefined) this.#where.set(user, where = new Set());
    if (where.has(instance)) return;
    where.add(instance);
    if (where.size === 1) {
      this.dispatchEvent(
        new CustomEvent("join", { detail: { user, instance, reason } }),
      );
    }
  }

  #remove(instance: string, user: string, reason: PresenceReason): void {
    const where = this.#where.get(user);
    if (where === undefined || !where.delete(instance)) return;
    if (where.size > 0) return;
    this.#where.delete(user);
    this.dispatchEvent(
      new CustomEvent("leave", { detail: { user, instance, reason } }),
    );
  }

  /** Finds or creates what is known of another instance, and refreshes it. */
  #seen(node: string, ttl: number = this.#ttl): Instance {
    let instance = this.#remote.get(node);
    if (instance === undefined) {
      instance = new Instance(ttl);
      this.#remote.set(node, instance);
      this.#logger?.info(`cluster ${this.id}: instance ${node} joined`);
    }
    instance.seen = performance.now();
    instance.ttl = ttl;
    return instance;
  }

  #drop(node: string, reason: PresenceReason): void {
    const instance = this.#remote.get(node);
    if (instance === undefined) return;
    this.#remote.delete(node);
    for (const user of instance.users) this.#remove(node, user, reason);
    for (const [sequence, target] of this.#outgoing) {
      if (target.instance !== node) continue;
      this.#outgoing.delete(sequence);
      this.#tracker.reject(
        sequence,
        new NotConnectedError(target.user, `instance ${node} left`),
      );
    }
    const prefix = `${node}\n`;
    for (const [key, controller] of this.#serving) {
      if (!key.startsWith(prefix)) continue;
      this.#serving.delete(key);
      controller.abort(new ConnectionClosedError(1006, "requester left"));
    }
    const line =
      `cluster ${this.id}: instance ${node} left (${reason}); ${instance.users.size} users dropped`;
    if (reason === "expired") this.#logger?.warn(line);
    else this.#logger?.info(line);
  }

  #tick(): void {
    this.#sendHeartbeat();
    if (this.#suspended) return;
    const now = performance.now();
    for (const [node, instance] of this.#remote) {
      if (now - instance.seen > instance.ttl) {
        this.stats.expired++;
        this.#drop(node, "expired");
      }
    }
  }

  #brokerDown(): void {
    if (this.#suspended || this.#closed) return;
    this.#suspended = true;
    this.#logger?.warn(
      `cluster ${this.id}: broker down; remote presence kept as is until it is back`,
    );
  }

  #brokerUp(): void {
    if (!this.#suspended || this.#closed) return;
    this.#suspended = false;
    // Heartbeats were not heard while down: give every instance a fresh TTL
    // to announce itself again, and announce this one.
    const now = performance.now();
    for (const instance of this.#remote.values()) instance.seen = now;
    this.#logger?.info(`cluster ${this.id}: broker back; resyncing presence`);
    this.#sendHeartbeat();
    this.#sendAll({ kind: "sync" });
  }

  #invalid(reason: string): void {
    this.stats.invalid++;
    this.#logger?.warn(`cluster ${this.id}: dropped message: ${reason}`);
  }

  #receive(text: string, channel: string): void {
    if (this.#closed) return;
    let envelope: unknown;
    try {
      envelope = JSON.parse(text);
    } catch {
      this.#invalid("not JSON");
      return;
    }
    if (!isRecord(envelope)) {
      this.#invalid("not an object");
      return;
    }
    if (envelope.v !== CLUSTER_PROTOCOL_VERSION) {
      this.stats.invalid++;
      if (!this.#unsupportedLogged) {
        this.#unsupportedLogged = true;
        this.#logger?.warn(
          `cluster ${this.id}: dropped message of version ${
            JSON.stringify(envelope.v)
          } (this instance speaks ${CLUSTER_PROTOCOL_VERSION}; not logged again)`,
        );
      }
      return;
    }
    const node = envelope.node;
    if (typeof node !== "string" || node === "") {
      this.#invalid("no sender");
      return;
    }
    if (node === this.id) return; // Our own message, echoed by the broker.
    const direct = channel !== this.#allChannel;
    try {
      if (this.#handle(envelope, node, direct)) this.stats.received++;
      else this.#invalid(`bad ${JSON.stringify(envelope.kind)} from ${node}`);
    } catch (error) {
      this.#report("cannot handle message", error);
    }
  }

  /** Acts on one valid-versioned envelope; `false` when it is malformed. */
  #handle(envelope: Envelope, node: string, direct: boolean): boolean {
    switch (envelope.kind) {
      case "push":
        return this.#onPush(envelope, node, direct);
      case "join":
        if (typeof envelope.user !== "string") return false;
        this.#seen(node).users.add(envelope.user);
        this.#add(node, envelope.user, "join");
        return true;
      case "leave": {
        if (typeof envelope.user !== "string") return false;
        const instance = this.#remote.get(node);
        if (instance !== undefined) {
          instance.seen = performance.now();
          instance.users.delete(envelope.user);
        }
        this.#remove(node, envelope.user, "leave");
        return true;
      }
      case "hb":
        return this.#onHeartbeat(envelope, node);
      case "sync":
        this.#seen(node);
        this.#sendHeartbeat();
        return true;
      case "bye":
        this.#drop(node, "goodbye");
        return true;
      case "req":
        return direct && this.#onRequest(envelope, node);
      case "res":
        return direct && this.#onResponse(envelope, node);
      case "cancel":
        if (!direct || !isId(envelope.id)) return false;
        this.#serving.get(`${node}\n${envelope.id}`)?.abort(
          new DuplexError("CANCELLED", "Cannot complete request: cancelled"),
        );
        return true;
      default:
        return true; // A later kind: ignored.
    }
  }

  #onPush(envelope: Envelope, node: string, direct: boolean): boolean {
    const { data, extended, user, room, except } = envelope;
    if (
      typeof data !== "string" || !optionalString(user) ||
      !optionalString(room) || !optionalString(except) ||
      (extended !== undefined && typeof extended !== "boolean") ||
      (direct ? user === undefined : user !== undefined)
    ) {
      return false;
    }
    const instance = this.#remote.get(node);
    if (instance !== undefined) instance.seen = performance.now();
    const push: Push = { data, extended: extended === true };
    if (user !== undefined) push.user = user;
    if (room !== undefined) push.room = room;
    if (except !== undefined) push.except = except;
    this.#deliver(push);
    return true;
  }

  #onHeartbeat(envelope: Envelope, node: string): boolean {
    const { users, ttl } = envelope;
    if (
      !Array.isArray(users) || !users.every((u) => typeof u === "string") ||
      !(typeof ttl === "number" && ttl > 0)
    ) {
      return false;
    }
    const instance = this.#seen(node, ttl);
    const next = new Set<string>(users as string[]);
    for (const user of instance.users) {
      if (!next.has(user)) this.#remove(node, user, "heartbeat");
    }
    for (const user of next) {
      if (!instance.users.has(user)) this.#add(node, user, "heartbeat");
    }
    instance.users = next;
    return true;
  }

  #onRequest(envelope: Envelope, node: string): boolean {
    const { id, user, message, method, from, timeout } = envelope;
    if (
      !isId(id) || typeof user !== "string" || !optionalString(method) ||
      !optionalString(from) || !(typeof timeout === "number" && timeout >= 0)
    ) {
      return false;
    }
    const channel = this.#channelOf(node);
    const respond = (reply: Envelope) => {
      if (this.#closed) return;
      this.#send(channel, this.#encode({ kind: "res", id, ...reply }));
    };
    const local = this.#node;
    if (!this.#local.has(user) || local === undefined) {
      respond({
        error: {
          code: "NOT_CONNECTED",
          message: new NotConnectedError(user, `not on instance ${this.id}`)
            .message,
        },
      });
      return true;
    }
    const key = `${node}\n${id}`;
    const controller = new AbortController();
    this.#serving.set(key, controller);
    this.stats.requestsServed++;
    const options: UserRequestOptions = { timeout, signal: controller.signal };
    if (method !== undefined) options.method = method;
    if (from !== undefined) options.from = from;
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(local.request(user, message, options));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (result) => {
        if (this.#serving.get(key) !== controller) return;
        this.#serving.delete(key);
        respond({ message: result });
      },
      (error: unknown) => {
        if (this.#serving.get(key) !== controller) return; // Cancelled.
        this.#serving.delete(key);
        respond({ error: this.#toPayload(error) });
      },
    );
    return true;
  }

  #toPayload(error: unknown): ErrorPayload {
    if (error instanceof RemoteError && error.data !== undefined) {
      return { code: error.code, message: error.message, data: error.data };
    }
    if (error instanceof DuplexError) {
      return { code: error.code, message: error.message };
    }
    this.#report("request to a local user failed", error);
    return {
      code: "INTERNAL_ERROR",
      message: "Cannot complete request: internal error",
    };
  }

  #onResponse(envelope: Envelope, node: string): boolean {
    const { id, error } = envelope;
    if (!isId(id) || (error !== undefined && !isErrorPayload(error))) {
      return false;
    }
    const target = this.#outgoing.get(id);
    if (target === undefined || target.instance !== node) return true; // Late.
    this.#outgoing.delete(id);
    if (error === undefined) {
      this.#tracker.resolve(id, envelope.message);
    } else if (error.code === "NOT_CONNECTED") {
      this.#tracker.reject(id, new NotConnectedError(target.user));
    } else if (error.code === "REQUEST_TIMEOUT") {
      this.#tracker.reject(id, new RequestTimeoutError(id, target.timeout));
    } else {
      this.#tracker.reject(id, new RemoteError(error));
    }
    return true;
  }

  /** The tracker gave up on a request (timeout or abort): cancel it there. */
  #abandon(sequence: number): void {
    const target = this.#outgoing.get(sequence);
    if (target === undefined) return;
    this.#outgoing.delete(sequence);
    if (this.#live()) {
      this.#send(
        this.#channelOf(target.instance),
        this.#encode({ kind: "cancel", id: sequence }),
      );
    }
  }
}
