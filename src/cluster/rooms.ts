/**
 * Cluster-wide rooms: {@linkcode ClusterRooms} knows the room memberships of
 * every instance's users and changes those of a user wherever the user is
 * connected.
 *
 * Each instance is the only authority on the memberships of its own users
 * (they live in its server's registry). It announces every change (`room`
 * envelope on the all channel) and lists all of them in its heartbeat
 * (`rooms`), so every other instance keeps a replica keyed by instance: when
 * an instance is dropped (goodbye or expiry) its memberships go with it, and
 * when a user leaves an instance the user's memberships there go too. A
 * join or leave of a user connected elsewhere is sent (`roomreq`) to the
 * instances holding the user, which apply it and announce it.
 *
 * Membership belongs to the user: a user's new connection on an instance
 * where the user had none takes the rooms the cluster knows for the user.
 *
 * Internal: the `Cluster` owns one.
 *
 * @module
 */

import type { BrokerLink } from "./broker_link.ts";
import { type Envelope, isRecord } from "./envelope.ts";
import type { LocalNode } from "./local_node.ts";

/** The longest room name that crosses instances, in UTF-16 code units. */
export const MAX_ROOM_NAME: number = 256;

/**
 * The detail of a cluster's `room` event: a user entered (`joined: true`) or
 * left a room, cluster-wide (first or last instance listing it).
 *
 * @example Usage
 * ```ts
 * import type { RoomDetail } from "@duplex/ws/server";
 *
 * const detail: RoomDetail = { room: "lobby", user: "ada", joined: true };
 * ```
 */
export interface RoomDetail {
  /** The room. */
  room: string;
  /** The user. */
  user: string;
  /** Whether the user entered (`true`) or left the room. */
  joined: boolean;
}

/** What the rooms need of the cluster. */
export interface ClusterRoomsOptions {
  /** This instance's id. */
  id: string;
  /** The link to the other instances. */
  link: BrokerLink;
  /** The local server. */
  node: () => LocalNode | undefined;
  /** Whether a user is connected here. */
  isLocal: (user: string) => boolean;
  /** Whether an instance announced a user. */
  holds: (instance: string, user: string) => boolean;
  /** The other instances holding a user. */
  remoteInstancesOf: (user: string) => string[];
  /** The most memberships one other instance may announce. */
  maxMemberships: number;
  /** Told of every cluster-wide change. */
  onChange: (detail: RoomDetail) => void;
}

/** Adds one to a nested counter. */
function increment(
  index: Map<string, Map<string, number>>,
  outer: string,
  inner: string,
): void {
  let counts = index.get(outer);
  if (counts === undefined) index.set(outer, counts = new Map());
  counts.set(inner, (counts.get(inner) ?? 0) + 1);
}

/** Takes one from a nested counter. */
function decrement(
  index: Map<string, Map<string, number>>,
  outer: string,
  inner: string,
): void {
  const counts = index.get(outer);
  const count = counts?.get(inner);
  if (counts === undefined || count === undefined) return;
  if (count > 1) counts.set(inner, count - 1);
  else {
    counts.delete(inner);
    if (counts.size === 0) index.delete(outer);
  }
}

/** Checks a room name that crosses instances. */
export function checkRoomName(room: unknown): room is string {
  return typeof room === "string" && room.length <= MAX_ROOM_NAME;
}

/** The room memberships of every instance, as this one knows them. */
export class ClusterRooms {
  #options: ClusterRoomsOptions;
  /** Instance → user → rooms (this instance included). */
  #byInstance = new Map<string, Map<string, Set<string>>>();
  /** Room → user → the number of instances listing the membership. */
  #members = new Map<string, Map<string, number>>();
  /** User → room → the number of instances listing the membership. */
  #rooms = new Map<string, Map<string, number>>();
  /** Instance → its number of memberships. */
  #counts = new Map<string, number>();

  /**
   * Creates an empty table.
   *
   * @param options The cluster's parts it needs.
   */
  constructor(options: ClusterRoomsOptions) {
    this.#options = options;
  }

  /** The members of a room, anywhere. */
  members(room: string): string[] {
    return [...(this.#members.get(room)?.keys() ?? [])];
  }

  /** The rooms of a user, anywhere. */
  roomsOf(user: string): string[] {
    return [...(this.#rooms.get(user)?.keys() ?? [])];
  }

  /**
   * Adds a user to a room (`true`) or removes the user (`false`) wherever
   * the user is connected: here at once, elsewhere through the instances
   * holding the user.
   *
   * @returns Whether the user is connected somewhere (for a join), or was a
   * member somewhere (for a leave).
   * @throws {RangeError} When the room name is over {@linkcode MAX_ROOM_NAME}.
   */
  change(room: string, user: string, join: boolean): boolean {
    if (!checkRoomName(room)) {
      throw new RangeError(
        `Cannot ${
          join ? "join" : "leave"
        } room: names crossing instances have at most ${MAX_ROOM_NAME} characters`,
      );
    }
    const { isLocal, remoteInstancesOf, link } = this.#options;
    const wasMember = this.#rooms.get(user)?.has(room) ?? false;
    let found = false;
    if (isLocal(user)) found = this.#applyLocal(room, user, join) || found;
    const remote = remoteInstancesOf(user);
    if (remote.length > 0 && link.live()) {
      const text = link.encode({ kind: "roomreq", user, room, in: join });
      for (const instance of remote) {
        link.send(link.channelOf(instance), text);
      }
      found = true;
    }
    return join ? found : wasMember;
  }

  /**
   * A user's first connection here: the user takes the rooms the cluster
   * knows for the user on other instances.
   */
  adopt(user: string): void {
    const rooms = this.#rooms.get(user);
    if (rooms === undefined) return;
    for (const room of [...rooms.keys()]) this.#applyLocal(room, user, true);
  }

  /** A user's last connection here closed: the memberships here go. */
  forgetLocal(user: string): void {
    this.#removeUser(this.#options.id, user);
  }

  /** The memberships of this instance's users, for the heartbeat. */
  localTable(): Record<string, string[]> | undefined {
    const own = this.#byInstance.get(this.#options.id);
    if (own === undefined || own.size === 0) return undefined;
    const table: Record<string, string[]> = {};
    for (const [user, rooms] of own) {
      for (const room of rooms) (table[room] ??= []).push(user);
    }
    return table;
  }

  /**
   * Acts on a `room` envelope (an instance announces a change of one of its
   * users) or a `roomreq` (another instance asks this one to change one of
   * its users).
   *
   * @returns `true`, or why it is dropped.
   */
  handle(envelope: Envelope, node: string, direct: boolean): true | string {
    const { user, room } = envelope;
    const join = envelope.in;
    if (
      typeof user !== "string" || !checkRoomName(room) ||
      typeof join !== "boolean"
    ) {
      return "bad user, room or in";
    }
    if (envelope.kind === "roomreq") {
      if (!direct) return "not on a node channel";
      // The user may have left since: nothing to do then. A join the local
      // server refuses (its authorizeJoin) is not reported back.
      if (!this.#options.isLocal(user)) return true;
      try {
        this.#applyLocal(room, user, join);
      } catch {
        // Refused here: the asker's join() had returned true already.
      }
      return true;
    }
    if (!this.#options.holds(node, user)) {
      return `room change of ${
        JSON.stringify(user)
      }, a user ${node} did not announce`;
    }
    if (join) {
      if (this.#count(node) >= this.#options.maxMemberships) {
        return `over maxMembershipsPerInstance ${this.#options.maxMemberships}`;
      }
      this.#add(node, user, room);
    } else this.#remove(node, user, room);
    return true;
  }

  /**
   * Replaces what is known of another instance with its heartbeat's table
   * (only users it announced count).
   *
   * @returns `true`, or why the table is refused.
   */
  heartbeat(node: string, table: unknown): true | string {
    if (table === undefined) {
      this.drop(node);
      return true;
    }
    if (!isRecord(table)) return "rooms is not an object";
    const next = new Map<string, Set<string>>();
    let count = 0;
    for (const room in table) {
      const users = table[room];
      if (!checkRoomName(room) || !Array.isArray(users)) return "bad rooms";
      count += users.length;
      if (count > this.#options.maxMemberships) {
        return `over maxMembershipsPerInstance ${this.#options.maxMemberships}`;
      }
      for (const user of users) {
        if (typeof user !== "string") return "bad rooms";
        if (!this.#options.holds(node, user)) continue;
        let rooms = next.get(user);
        if (rooms === undefined) next.set(user, rooms = new Set());
        rooms.add(room);
      }
    }
    const current = this.#byInstance.get(node);
    for (const [user, rooms] of current ?? []) {
      const kept = next.get(user);
      for (const room of [...rooms]) {
        if (!kept?.has(room)) this.#remove(node, user, room);
      }
    }
    for (const [user, rooms] of next) {
      for (const room of rooms) this.#add(node, user, room);
    }
    return true;
  }

  /** A user left another instance: its memberships there go. */
  userLeft(node: string, user: string): void {
    this.#removeUser(node, user);
  }

  /** Forgets an instance's memberships (dropped or expired). */
  drop(node: string): void {
    const users = this.#byInstance.get(node);
    if (users === undefined) return;
    for (const user of [...users.keys()]) this.#removeUser(node, user);
    this.#byInstance.delete(node);
    this.#counts.delete(node);
  }

  /** Forgets everything (on close). */
  clear(): void {
    this.#byInstance.clear();
    this.#members.clear();
    this.#rooms.clear();
    this.#counts.clear();
  }

  /** Applies a change to a local user and announces it. */
  #applyLocal(room: string, user: string, join: boolean): boolean {
    const { id, link } = this.#options;
    const node = this.#options.node();
    const done = join
      ? node?.join?.(room, user) ?? false
      : node?.leave?.(room, user) ?? false;
    const own = this.#byInstance.get(id)?.get(user);
    const known = own?.has(room) ?? false;
    if (join && !known) this.#add(id, user, room);
    else if (!join && known) this.#remove(id, user, room);
    else return done || known;
    if (link.live()) link.sendAll({ kind: "room", user, room, in: join });
    return true;
  }

  #count(node: string): number {
    return this.#counts.get(node) ?? 0;
  }

  #add(node: string, user: string, room: string): void {
    let users = this.#byInstance.get(node);
    if (users === undefined) this.#byInstance.set(node, users = new Map());
    let rooms = users.get(user);
    if (rooms === undefined) users.set(user, rooms = new Set());
    if (rooms.has(room)) return;
    rooms.add(room);
    this.#counts.set(node, this.#count(node) + 1);
    increment(this.#members, room, user);
    increment(this.#rooms, user, room);
    if (this.#members.get(room)!.get(user) === 1) {
      this.#options.onChange({ room, user, joined: true });
    }
  }

  #remove(node: string, user: string, room: string): void {
    const users = this.#byInstance.get(node);
    const rooms = users?.get(user);
    if (rooms === undefined || !rooms.delete(room)) return;
    if (rooms.size === 0) users!.delete(user);
    this.#counts.set(node, this.#count(node) - 1);
    decrement(this.#members, room, user);
    decrement(this.#rooms, user, room);
    if (!this.#members.get(room)?.has(user)) {
      this.#options.onChange({ room, user, joined: false });
    }
  }

  #removeUser(node: string, user: string): void {
    const rooms = this.#byInstance.get(node)?.get(user);
    if (rooms === undefined) return;
    for (const room of [...rooms]) this.#remove(node, user, room);
  }
}
