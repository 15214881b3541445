/**
 * The cross-instance layer: several server instances behind any load
 * balancer (no sticky sessions) share users, rooms, broadcasts, requests and
 * presence through a {@linkcode PubSub} broker. Each instance owns one
 * {@linkcode Cluster} and attaches its local server as a
 * {@linkcode LocalNode}; the cluster does the rest:
 *
 * - pushes ({@linkcode Cluster.publish}): delivered locally at once and sent,
 *   encoded once, to the other instances (a user's push only where the user
 *   is);
 * - requests to a user on any instance ({@linkcode Cluster.request});
 * - presence: local users announced and re-announced every
 *   `heartbeatInterval`, an instance not heard from within `presenceTtl`
 *   dropped with its users, `join` / `leave` / `update` events, the online
 *   list and small per-user metadata;
 * - rooms ({@linkcode Cluster.join}, `leave`, `members`, `roomsOf`) for the
 *   whole cluster; a dead instance's memberships go with its users.
 *
 * Messages from one instance reach another in order, at most once. Every
 * received envelope is checked before anything reaches a client, and with a
 * `secret` signed (SECURITY.md, "Broker"). The envelope format is documented
 * on {@linkcode CLUSTER_PROTOCOL_VERSION}; docs/scaling-out.md has the
 * guarantees.
 *
 * @module
 */

import { TypedEventTarget } from "../peer/typed_event_target.ts";
import { ConnectionClosedError } from "../wire/errors.ts";
import { NotConnectedError } from "./not_connected_error.ts";
import type { BrokerLogger, PubSub, Unsubscribe } from "./pubsub.ts";
import {
  type ClusterEventMap,
  type ClusterOptions,
  type ClusterStats,
  emptyClusterStats,
  resolveClusterOptions,
} from "./cluster_options.ts";
import { BrokerLink } from "./broker_link.ts";
import { EnvelopeSignature } from "./envelope_signature.ts";
import { Inbox } from "./inbox.ts";
import type { LocalNode, Push, UserRequestOptions } from "./local_node.ts";
import { Presence, type PresenceReason } from "./presence.ts";
import { RemoteRequests } from "./remote_requests.ts";
import { ClusterRooms } from "./rooms.ts";
import { isPresenceMeta, type PresenceMeta } from "../wire/presence_frames.ts";
import { type ReceiveContext, receiveEnvelope } from "./receive.ts";
import { pushEnvelope } from "./routed_push.ts";

// The types of the cluster's API live in their own files; they are
// re-exported here so that `cluster.ts` stays the one import of its users.
export type {
  ClusterEventMap,
  ClusterOptions,
  ClusterStats,
} from "./cluster_options.ts";
export type { LocalNode, Push, UserRequestOptions } from "./local_node.ts";
export type { PresenceDetail, PresenceReason } from "./presence.ts";
export type { RoomDetail } from "./rooms.ts";
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
  readonly stats: ClusterStats = emptyClusterStats();
  #pubsub: PubSub;
  #node: LocalNode | undefined;
  #link: BrokerLink;
  #interval: number;
  #ttl: number;
  #logger: BrokerLogger | undefined;
  #presence: Presence;
  #requests: RemoteRequests;
  #rooms: ClusterRooms;
  #context: ReceiveContext;
  #inbox: Inbox;
  #unsubscribes: Unsubscribe[] = [];
  #timer: ReturnType<typeof setInterval> | undefined = undefined;
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;
  #suspended = false;
  #announced = false;
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
    const resolved = resolveClusterOptions(options);
    const { id, presenceTtl } = resolved;
    const signature = resolved.secret === undefined
      ? undefined
      : new EnvelopeSignature(resolved.secret);
    this.id = id;
    this.#pubsub = pubsub;
    this.#node = options.node;
    this.#interval = resolved.heartbeatInterval;
    this.#ttl = presenceTtl;
    this.#logger = options.logger;
    this.#link = new BrokerLink(pubsub, {
      id,
      prefix: resolved.prefix,
      stats: this.stats,
      signature,
      maxEnvelopeSize: resolved.maxEnvelopeSize,
      logger: this.#logger,
      live: () => this.#live(),
      closed: () => this.#closed,
      onError: (event) => this.dispatchEvent(event),
    });
    this.#inbox = new Inbox({
      id,
      allChannel: this.#link.allChannel,
      maxEnvelopeSize: resolved.maxEnvelopeSize,
      signature,
      replayWindow: resolved.replayWindow,
      stats: this.stats,
      logger: this.#logger,
      closed: () => this.#closed,
      handle: (envelope, node, direct) =>
        receiveEnvelope(this.#context, envelope, node, direct),
      report: (what, error) => this.#link.report(what, error),
    });
    this.#presence = new Presence(
      id,
      presenceTtl,
      (type, detail) => this.dispatchEvent(new CustomEvent(type, { detail })),
      this.#logger,
      {
        maxUsersPerInstance: resolved.maxUsersPerInstance,
        maxInstances: resolved.maxInstances,
        maxTtl: resolved.maxPresenceTtl,
      },
    );
    this.#requests = new RemoteRequests(this.#link, this.stats, resolved);
    const presence = this.#presence;
    this.#rooms = new ClusterRooms({
      id,
      link: this.#link,
      node: () => this.#node,
      isLocal: (user) => presence.isLocal(user),
      holds: (instance, user) => presence.holds(instance, user),
      remoteInstancesOf: (user) => presence.remoteInstancesOf(user),
      maxMemberships: resolved.maxMembershipsPerInstance,
      onChange: (detail) =>
        this.dispatchEvent(new CustomEvent("room", { detail })),
    });
    this.#context = {
      presence,
      rooms: this.#rooms,
      requests: this.#requests,
      stats: this.stats,
      node: () => this.#node,
      deliver: (push) => this.#deliver(push),
      goodbye: (node) => this.#drop(node, "goodbye"),
      sendHeartbeat: () => this.#sendHeartbeat(),
    };
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
          (data) => this.#inbox.receive(data, channel),
        ),
      );
    }
    if (this.#closed) return;
    this.#timer = setInterval(() => this.#tick(), this.#interval);
    this.#logger?.info(
      `cluster ${this.id} started on ${this.#pubsub.name} (${this.#presence.localCount} local users)${
        this.#suspended ? "; it announces itself once the broker is up" : ""
      }`,
    );
    // A transport still connecting (Redis on a clean start) would refuse
    // these: the "up" event sends them instead.
    if (this.#suspended) return;
    this.#announced = true;
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
    this.#rooms.adopt(user);
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
    if (removed !== "last") return true;
    this.#rooms.forgetLocal(user);
    if (this.#live()) this.#link.sendAll({ kind: "leave", user });
    return true;
  }

  /**
   * Closes the user's connections opened earlier on the other instances
   * (`duplicateUser: "replace"` across the cluster): call it when a user's
   * connection opens here.
   *
   * @param user The user.
   */
  replace(user: string): void {
    const at = Date.now();
    if (this.#live()) this.#link.sendAll({ kind: "replace", user, at });
  }

  /**
   * Adds a user to a room wherever the user is connected: here at once,
   * elsewhere through the broker (`members()` shows it once announced).
   * It ends with the user's last connection anywhere.
   *
   * @param room The room (at most 256 characters).
   * @param user The user.
   * @returns `false` when the user is connected nowhere.
   * @throws {RangeError} When the room name is longer than 256 characters.
   */
  join(room: string, user: string): boolean {
    return this.#rooms.change(room, user, true);
  }

  /**
   * Removes a user from a room wherever the user is connected.
   *
   * @param room The room.
   * @param user The user.
   * @returns Whether the user was a member, as this instance knew it.
   * @throws {RangeError} When the room name is longer than 256 characters.
   */
  leave(room: string, user: string): boolean {
    return this.#rooms.change(room, user, false);
  }

  /**
   * The members of a room on every instance.
   *
   * @param room The room.
   * @returns The user ids.
   */
  members(room: string): string[] {
    return this.#rooms.members(room);
  }

  /**
   * The rooms of a user on every instance.
   *
   * @param user The user.
   * @returns The room names.
   */
  roomsOf(user: string): string[] {
    return this.#rooms.roomsOf(user);
  }

  /**
   * Sets (`undefined`: removes) the presence metadata of a user connected
   * here; an `update` event follows on every instance.
   *
   * @param user The user, connected here.
   * @param meta The metadata (at most 256 bytes), or `undefined`.
   * @returns `false` when the user is not connected here.
   * @throws {TypeError} When `meta` is not valid {@linkcode PresenceMeta}.
   */
  setMeta(user: string, meta: PresenceMeta | undefined): boolean {
    if (meta !== undefined && !isPresenceMeta(meta)) {
      throw new TypeError(
        "Cannot set presence metadata: a flat object of at most 256 bytes is needed",
      );
    }
    if (!this.#presence.isLocal(user)) return false;
    this.#presence.setMeta(this.id, user, meta);
    if (this.#live()) this.#link.sendAll({ kind: "meta", user, meta });
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
    await Promise.all([this.#link.settled(), this.#inbox.settled()]);
    this.#presence.clear();
    this.#rooms.clear();
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
      rooms: this.#rooms.localTable(),
      meta: this.#presence.localMeta(),
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
    this.#rooms.drop(node);
    const users = this.#presence.drop(node, reason);
    if (users === undefined) return;
    this.#requests.forget(node);
    const line =
      `cluster ${this.id}: instance ${node} left (${reason}); ${users} users dropped`;
    if (reason === "expired") this.#logger?.warn(line);
    else this.#logger?.info(line);
  }

  #tick(): void {
    this.#inbox.prune();
    // While the broker is down a heartbeat would only be refused.
    if (this.#suspended) return;
    this.#sendHeartbeat();
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
    this.#logger?.info(
      this.#announced
        ? `cluster ${this.id}: broker back; resyncing presence`
        : `cluster ${this.id}: broker up; announcing this instance`,
    );
    this.#announced = true;
    this.#sendHeartbeat();
    this.#link.sendAll({ kind: "sync" });
  }
}
