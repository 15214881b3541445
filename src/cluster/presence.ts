/**
 * Presence: which users are online on which instance. This instance's users
 * are counted per connection; other instances' users are learned from their
 * `join`, `leave` and heartbeat envelopes, and forgotten with the instance
 * when its heartbeats stop (`expired`) or it says goodbye.
 *
 * {@linkcode Presence} is internal: the `Cluster` drives it and exposes its
 * queries; its two types are exported from `server.ts`.
 *
 * @module
 */

import type { BrokerLogger } from "./pubsub.ts";
import { isPresenceMeta, type PresenceMeta } from "../wire/presence_frames.ts";

/**
 * Why a `join` or `leave` event fired:
 * - `"join"` / `"leave"`: an instance announced a user (or this instance's
 *   `addLocalUser` / `removeLocalUser`);
 * - `"heartbeat"`: an instance's periodic list added or lacked a user;
 * - `"expired"`: the instance holding the user was not heard from in time;
 * - `"goodbye"`: the instance holding the user closed;
 * - `"meta"`: the user's metadata changed (`update` events).
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
  | "goodbye"
  | "meta";

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
  /** The user's metadata (`update` events; absent when removed). */
  meta?: PresenceMeta;
}

/** What this instance knows of another one. */
class Instance {
  users = new Set<string>();
  seen: number = performance.now();
  constructor(public ttl: number) {}
}

/** Called when a user comes online or goes offline cluster-wide. */
export type PresenceListener = (
  type: "join" | "leave" | "update",
  detail: PresenceDetail,
) => void;

/** The limits on what other instances may announce. */
export interface PresenceLimits {
  /** The most users of one other instance. */
  maxUsersPerInstance: number;
  /** The most other instances. */
  maxInstances: number;
  /** The longest TTL another instance may ask for (longer ones are cut). */
  maxTtl: number;
}

/** Presence as one instance knows it. */
export class Presence {
  #id: string;
  #ttl: number;
  #limits: PresenceLimits;
  #onChange: PresenceListener;
  #logger: BrokerLogger | undefined;
  #local = new Map<string, number>();
  #remote = new Map<string, Instance>();
  #where = new Map<string, Set<string>>();
  /** User → the metadata last announced, and by which instance. */
  #meta = new Map<string, { instance: string; meta: PresenceMeta }>();

  /**
   * Creates an empty presence.
   *
   * @param id This instance's id.
   * @param ttl The TTL of an instance not heard from that did not say.
   * @param onChange Called for every cluster-wide join and leave.
   * @param logger Where instance joins are logged.
   * @param limits What other instances may announce.
   */
  constructor(
    id: string,
    ttl: number,
    onChange: PresenceListener,
    logger: BrokerLogger | undefined,
    limits: PresenceLimits,
  ) {
    this.#id = id;
    this.#ttl = ttl;
    this.#limits = limits;
    this.#onChange = onChange;
    this.#logger = logger;
  }

  /** The number of users connected here. */
  get localCount(): number {
    return this.#local.size;
  }

  /** The users connected here. */
  localUsers(): string[] {
    return [...this.#local.keys()];
  }

  /** Whether a user is connected here. */
  isLocal(user: string): boolean {
    return this.#local.has(user);
  }

  /** Counts one more local connection; `true` for the user's first. */
  addLocal(user: string): boolean {
    const count = this.#local.get(user) ?? 0;
    this.#local.set(user, count + 1);
    if (count > 0) return false;
    this.#add(this.#id, user, "join");
    return true;
  }

  /** Counts one local connection less: whether it was there, and the last. */
  removeLocal(user: string): "absent" | "counted" | "last" {
    const count = this.#local.get(user);
    if (count === undefined) return "absent";
    if (count > 1) {
      this.#local.set(user, count - 1);
      return "counted";
    }
    this.#local.delete(user);
    this.#remove(this.#id, user, "leave");
    return "last";
  }

  /** Users online anywhere, in order of first appearance. */
  online(): string[] {
    return [...this.#where.keys()];
  }

  /** Whether some instance holds the user. */
  isOnline(user: string): boolean {
    return this.#where.has(user);
  }

  /** The instances holding the user, this one included. */
  locate(user: string): string[] {
    return [...(this.#where.get(user) ?? [])];
  }

  /** The other instances known to be alive. */
  instances(): string[] {
    return [...this.#remote.keys()];
  }

  /** The other instances holding the user. */
  remoteInstancesOf(user: string): string[] {
    const where = this.#where.get(user);
    if (where === undefined) return [];
    const instances: string[] = [];
    for (const instance of where) {
      if (instance !== this.#id) instances.push(instance);
    }
    return instances;
  }

  /** Whether a user was announced by an instance (this one included). */
  holds(node: string, user: string): boolean {
    return this.#where.get(user)?.has(node) ?? false;
  }

  /**
   * Finds or creates what is known of another instance, and refreshes it.
   *
   * @returns `true`, or why not when the instance is new and `maxInstances`
   * are known.
   */
  seen(node: string, ttl: number = this.#ttl): true | string {
    ttl = Math.min(ttl, this.#limits.maxTtl);
    let instance = this.#remote.get(node);
    if (instance === undefined) {
      if (this.#remote.size >= this.#limits.maxInstances) {
        return `over maxInstances ${this.#limits.maxInstances}`;
      }
      instance = new Instance(ttl);
      this.#remote.set(node, instance);
      this.#logger?.info(`cluster ${this.#id}: instance ${node} joined`);
    }
    instance.seen = performance.now();
    instance.ttl = ttl;
    return true;
  }

  /** Refreshes a known instance (any message from it proves it alive). */
  touch(node: string): void {
    const instance = this.#remote.get(node);
    if (instance !== undefined) instance.seen = performance.now();
  }

  /** An instance announced a user; `true`, or why it was refused. */
  join(node: string, user: string): true | string {
    const seen = this.seen(node);
    if (seen !== true) return seen;
    const users = this.#remote.get(node)!.users;
    if (!users.has(user) && users.size >= this.#limits.maxUsersPerInstance) {
      return `over maxUsersPerInstance ${this.#limits.maxUsersPerInstance}`;
    }
    users.add(user);
    this.#add(node, user, "join");
    return true;
  }

  /** An instance announced that a user left it. */
  leave(node: string, user: string): void {
    const instance = this.#remote.get(node);
    if (instance !== undefined) {
      instance.seen = performance.now();
      instance.users.delete(user);
    }
    this.#remove(node, user, "leave");
  }

  /** An instance listed all its users; `true`, or why it was refused. */
  heartbeat(
    node: string,
    users: readonly string[],
    ttl: number,
  ): true | string {
    if (users.length > this.#limits.maxUsersPerInstance) {
      return `${users.length} users, over maxUsersPerInstance ${this.#limits.maxUsersPerInstance}`;
    }
    const seen = this.seen(node, ttl);
    if (seen !== true) return seen;
    const instance = this.#remote.get(node)!;
    const next = new Set<string>(users);
    for (const user of instance.users) {
      if (!next.has(user)) this.#remove(node, user, "heartbeat");
    }
    for (const user of next) {
      if (!instance.users.has(user)) this.#add(node, user, "heartbeat");
    }
    instance.users = next;
    return true;
  }

  /** A user's metadata, as last announced. */
  metaOf(user: string): PresenceMeta | undefined {
    return this.#meta.get(user)?.meta;
  }

  /** The metadata of this instance's users, for the heartbeat. */
  localMeta(): Record<string, PresenceMeta> | undefined {
    let table: Record<string, PresenceMeta> | undefined;
    for (const [user, { instance, meta }] of this.#meta) {
      if (instance === this.#id) (table ??= {})[user] = meta;
    }
    return table;
  }

  /**
   * Sets (or with `undefined` removes) the metadata of a user that an
   * instance holds (this one included); the last one announced wins.
   *
   * @returns `true`, or why it is refused.
   */
  setMeta(
    instance: string,
    user: string,
    meta: PresenceMeta | undefined,
  ): true | string {
    if (!this.holds(instance, user)) {
      return `metadata of ${
        JSON.stringify(user)
      }, a user ${instance} did not announce`;
    }
    const current = this.#meta.get(user);
    if (meta === undefined) {
      if (current === undefined) return true;
      this.#meta.delete(user);
    } else {
      if (
        current !== undefined &&
        JSON.stringify(current.meta) === JSON.stringify(meta)
      ) {
        current.instance = instance;
        return true;
      }
      this.#meta.set(user, { instance, meta });
    }
    const detail: PresenceDetail = { user, instance, reason: "meta" };
    if (meta !== undefined) detail.meta = meta;
    this.#onChange("update", detail);
    return true;
  }

  /**
   * An instance's heartbeat listed the metadata of its users: metadata last
   * announced by it follows the list; others' stays.
   *
   * @returns `true`, or why the list is refused.
   */
  heartbeatMeta(node: string, table: unknown): true | string {
    if (
      table !== undefined &&
      (typeof table !== "object" || table === null || Array.isArray(table))
    ) {
      return "meta is not an object";
    }
    const listed = (table ?? {}) as Record<string, unknown>;
    for (const user in listed) {
      if (!isPresenceMeta(listed[user])) return "bad meta";
    }
    for (const [user, { instance }] of [...this.#meta]) {
      if (instance === node && !(user in listed)) {
        this.setMeta(node, user, undefined);
      }
    }
    for (const user in listed) {
      const current = this.#meta.get(user);
      if (current === undefined || current.instance === node) {
        if (this.holds(node, user)) {
          this.setMeta(node, user, listed[user] as PresenceMeta);
        }
      }
    }
    return true;
  }

  /**
   * Forgets an instance and its users.
   *
   * @returns How many users it held, or `undefined` when it was unknown.
   */
  drop(node: string, reason: PresenceReason): number | undefined {
    const instance = this.#remote.get(node);
    if (instance === undefined) return undefined;
    this.#remote.delete(node);
    for (const user of instance.users) this.#remove(node, user, reason);
    return instance.users.size;
  }

  /** The instances not heard from within their TTL. */
  expired(): string[] {
    const now = performance.now();
    const nodes: string[] = [];
    for (const [node, instance] of this.#remote) {
      if (now - instance.seen > instance.ttl) nodes.push(node);
    }
    return nodes;
  }

  /** Gives every known instance a fresh TTL (after a broker outage). */
  refreshAll(): void {
    const now = performance.now();
    for (const instance of this.#remote.values()) instance.seen = now;
  }

  /** Forgets every instance and user (on close). */
  clear(): void {
    this.#remote.clear();
    this.#where.clear();
    this.#meta.clear();
  }

  #add(instance: string, user: string, reason: PresenceReason): void {
    let where = this.#where.get(user);
    if (where === undefined) this.#where.set(user, where = new Set());
    if (where.has(instance)) return;
    where.add(instance);
    if (where.size === 1) this.#onChange("join", { user, instance, reason });
  }

  #remove(instance: string, user: string, reason: PresenceReason): void {
    const where = this.#where.get(user);
    if (where === undefined || !where.delete(instance)) return;
    if (where.size > 0) return;
    this.#where.delete(user);
    this.#meta.delete(user);
    this.#onChange("leave", { user, instance, reason });
  }
}
