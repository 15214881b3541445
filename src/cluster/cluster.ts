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
import { ConnectionClosedError } from "../wire/errors.ts";
import { NotConnectedError } from "./not_connected_error.ts";
import type { BrokerLogger, PubSub, Unsubscribe } from "./pubsub.ts";
import type {
  ClusterEventMap,
  ClusterOptions,
  ClusterStats,
} from "./cluster_options.ts";
import { BrokerLink } from "./broker_link.ts";
import {
  CLUSTER_PROTOCOL_VERSION,
  decodeEnvelope,
  type Envelope,
} from "./envelope.ts";
import type { LocalNode, Push, UserRequestOptions } from "./local_node.ts";
import { Presence, type PresenceReason } from "./presence.ts";
import { RemoteRequests } from "./remote_requests.ts";
import { pushEnvelope, readPush } from "./routed_push.ts";

// The types of the cluster's API live in their own files; they are
// re-exported here so that `cluster.ts` stays the one import of its users.
export type {
  ClusterEventMap,
  ClusterOptions,
  ClusterStats,
} from "./cluster_options.ts";
export type { LocalNode, Push, UserRequestOptions } from "./local_node.ts";
export type { PresenceDetail, PresenceReason } from "./presence.ts";
export { CLUSTER_PROTOCOL_VERSION } from "./envelope.ts";

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
  #link: BrokerLink;
  #interval: number;
  #ttl: number;
  #logger: BrokerLogger | undefined;
  #presence: Presence;
  #requests: RemoteRequests;
  #unsubscribes: Unsubscribe[] = [];
  #timer: ReturnType<typeof setInterval> | undefined = undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;
  #suspended = false;
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
    this.#interval = heartbeatInterval;
    this.#ttl = presenceTtl;
    this.#logger = options.logger;
    this.#link = new BrokerLink(pubsub, {
      id,
      prefix,
      stats: this.stats,
      logger: this.#logger,
      live: () => this.#live(),
      closed: () => this.#closed,
      onError: (event) => this.dispatchEvent(event),
    });
    this.#presence = new Presence(
      id,
      presenceTtl,
      (type, detail) => this.dispatchEvent(new CustomEvent(type, { detail })),
      this.#logger,
    );
    this.#requests = new RemoteRequests(this.#link, this.stats, {
      timeout,
      maxPending,
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
    for (const channel of [this.#link.allChannel, this.#link.ownChannel]) {
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
      `cluster ${this.id} started on ${this.#pubsub.name} (${this.#presence.localCount} local users)`,
    );
    this.#sendHeartbeat();
    this.#link.sendAll({ kind: "sync" });
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
    const envelope = pushEnvelope(push);
    const user = push.user;
    if (user !== undefined) {
      if (user === push.except) return;
      if (this.#presence.isLocal(user)) this.#deliver(push);
      const instances = this.#presence.remoteInstancesOf(user);
      if (instances.length === 0 || !this.#live()) return;
      envelope.user = user;
      const text = this.#link.encode(envelope);
      for (const instance of instances) {
        this.#link.send(this.#link.channelOf(instance), text);
      }
      return;
    }
    this.#deliver(push);
    if (this.#live()) this.#link.sendAll(envelope);
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
    if (this.#presence.isLocal(user) && node !== undefined) {
      return node.request(user, message, options) as Promise<R>;
    }
    const instances = this.#presence.remoteInstancesOf(user);
    const instance = instances[instances.length - 1];
    if (instance === undefined || !this.#live()) {
      return Promise.reject(new NotConnectedError(user));
    }
    return this.#requests.ask<R>(instance, user, message, options);
  }

  /**
   * Announces that a user connected here (call it on the user's first
   * local connection). Counted: each call needs a `removeLocalUser`.
   *
   * @param user The user.
   */
  addLocalUser(user: string): void {
    if (!this.#presence.addLocal(user)) return;
    if (this.#live()) this.#link.sendAll({ kind: "join", user });
  }

  /**
   * Announces that a user left this instance (its last local connection
   * closed).
   *
   * @param user The user.
   * @returns `false` when the user was not announced here.
   */
  removeLocalUser(user: string): boolean {
    const removed = this.#presence.removeLocal(user);
    if (removed === "absent") return false;
    if (removed === "last" && this.#live()) {
      this.#link.sendAll({ kind: "leave", user });
    }
    return true;
  }

  /**
   * The users online anywhere in the cluster, as this instance knows them.
   *
   * @returns The user ids, in order of first appearance.
   */
  online(): string[] {
    return this.#presence.online();
  }

  /**
   * Tells whether a user is online anywhere in the cluster.
   *
   * @param user The user.
   * @returns `true` when some instance holds the user.
   */
  isOnline(user: string): boolean {
    return this.#presence.isOnline(user);
  }

  /**
   * The instances where a user is connected.
   *
   * @param user The user.
   * @returns Instance ids; this one's included when the user is local.
   */
  locate(user: string): string[] {
    return this.#presence.locate(user);
  }

  /**
   * The instances this one knows to be alive, itself first.
   *
   * @returns Instance ids.
   */
  instances(): string[] {
    return [this.id, ...this.#presence.instances()];
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
      this.#link.sendAll({ kind: "bye" });
    }
    const unsubscribes = this.#unsubscribes.splice(0);
    await Promise.all(unsubscribes.map((unsubscribe) =>
      Promise.resolve()
        .then(unsubscribe)
        .catch(() => {})
    ));
    this.#requests.close();
    await this.#link.settled();
    this.#presence.clear();
    if (wasLive) this.#logger?.info(`cluster ${this.id} closed`);
  }

  #live(): boolean {
    return this.#started && !this.#closed;
  }

  #sendHeartbeat(): void {
    this.#link.sendAll({
      kind: "hb",
      users: this.#presence.localUsers(),
      ttl: this.#ttl,
    });
  }

  #deliver(push: Push): void {
    const node = this.#node;
    if (node === undefined) return;
    try {
      node.deliver(push);
    } catch (error) {
      this.#link.report("local delivery failed", error);
    }
  }

  /** Forgets another instance: its users, and the requests it was part of. */
  #drop(node: string, reason: PresenceReason): void {
    const users = this.#presence.drop(node, reason);
    if (users === undefined) return;
    this.#requests.forget(node);
    const line =
      `cluster ${this.id}: instance ${node} left (${reason}); ${users} users dropped`;
    if (reason === "expired") this.#logger?.warn(line);
    else this.#logger?.info(line);
  }

  #tick(): void {
    this.#sendHeartbeat();
    if (this.#suspended) return;
    for (const node of this.#presence.expired()) {
      this.stats.expired++;
      this.#drop(node, "expired");
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
    this.#presence.refreshAll();
    this.#logger?.info(`cluster ${this.id}: broker back; resyncing presence`);
    this.#sendHeartbeat();
    this.#link.sendAll({ kind: "sync" });
  }

  #invalid(reason: string): void {
    this.stats.invalid++;
    this.#logger?.warn(`cluster ${this.id}: dropped message: ${reason}`);
  }

  #receive(text: string, channel: string): void {
    if (this.#closed) return;
    const decoded = decodeEnvelope(text);
    if ("invalid" in decoded) {
      if (decoded.invalid !== "version") {
        this.#invalid(decoded.invalid);
        return;
      }
      this.stats.invalid++;
      if (!this.#unsupportedLogged) {
        this.#unsupportedLogged = true;
        this.#logger?.warn(
          `cluster ${this.id}: dropped message of version ${
            JSON.stringify(decoded.version)
          } (this instance speaks ${CLUSTER_PROTOCOL_VERSION}; not logged again)`,
        );
      }
      return;
    }
    const { envelope, node } = decoded;
    if (node === this.id) return; // Our own message, echoed by the broker.
    const direct = channel !== this.#link.allChannel;
    try {
      if (this.#handle(envelope, node, direct)) this.stats.received++;
      else this.#invalid(`bad ${JSON.stringify(envelope.kind)} from ${node}`);
    } catch (error) {
      this.#link.report("cannot handle message", error);
    }
  }

  /** Acts on one valid-versioned envelope; `false` when it is malformed. */
  #handle(envelope: Envelope, node: string, direct: boolean): boolean {
    switch (envelope.kind) {
      case "push": {
        const push = readPush(envelope, direct);
        if (push === undefined) return false;
        this.#presence.touch(node);
        this.#deliver(push);
        return true;
      }
      case "join":
        if (typeof envelope.user !== "string") return false;
        this.#presence.join(node, envelope.user);
        return true;
      case "leave":
        if (typeof envelope.user !== "string") return false;
        this.#presence.leave(node, envelope.user);
        return true;
      case "hb": {
        const { users, ttl } = envelope;
        if (
          !Array.isArray(users) || !users.every((u) => typeof u === "string") ||
          !(typeof ttl === "number" && ttl > 0)
        ) {
          return false;
        }
        this.#presence.heartbeat(node, users, ttl);
        return true;
      }
      case "sync":
        this.#presence.seen(node);
        this.#sendHeartbeat();
        return true;
      case "bye":
        this.#drop(node, "goodbye");
        return true;
      case "req": {
        if (!direct) return false;
        const user = envelope.user;
        const local = typeof user === "string" && this.#presence.isLocal(user)
          ? this.#node
          : undefined;
        return this.#requests.serve(envelope, node, local);
      }
      case "res":
        return direct && this.#requests.settle(envelope, node);
      case "cancel":
        return direct && this.#requests.cancel(envelope, node);
      default:
        return true; // A later kind: ignored.
    }
  }
}
