/**
 * The connections of a {@linkcode DuplexServer}: every upgraded socket until
 * its closing handshake completes, the open connections by user, the rooms,
 * and the stats of connections that closed.
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import { ForbiddenError } from "../peer/middleware.ts";
import { listed } from "../cluster/broker.ts";
import type { ServerConnection } from "./connection.ts";
import type { MetricsSnapshot } from "./metrics.ts";
import type { KeepAlive } from "./keep_alive.ts";

/** A user's connections: the one, or a set once there were several. */
export type Own<Local extends Endpoint, Remote extends Endpoint> =
  | ServerConnection<Local, Remote>
  | Set<ServerConnection<Local, Remote>>;

/** Users, rooms and sockets of one server. */
export class ConnectionRegistry<
  Local extends Endpoint,
  Remote extends Endpoint,
> {
  /** Every upgraded socket whose closing handshake has not completed. */
  readonly sockets: Set<ServerConnection<Local, Remote>> = new Set();
  /** Open, registered connections. */
  readonly connections: Set<ServerConnection<Local, Remote>> = new Set();
  /** Pings quiet connections while there are any (set by the server). */
  keepAlive: KeepAlive<Local, Remote> | undefined = undefined;
  /**
   * Each user's connections: the one, or a set of them (oldest first) once
   * there were several; most users have one, so an idle connection costs
   * no set.
   */
  #users = new Map<string, Own<Local, Remote>>();
  /**
   * The user while exactly one is connected: a push to everyone but that
   * user (the chat relay of a lone user) finds no audience without a lookup.
   */
  #sole: string | undefined = undefined;
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

  /** The number of users with an open connection. */
  get userCount(): number {
    return this.#users.size;
  }

  /**
   * Registers an open connection under its user.
   *
   * @returns The user's connections (the new one last) and whether it is
   * the user's first.
   */
  add(connection: ServerConnection<Local, Remote>): boolean {
    connection.registered = true;
    this.connections.add(connection);
    this.keepAlive?.start(this.connections);
    const { user } = connection;
    const own = this.#users.get(user);
    if (own === undefined) this.#users.set(user, connection);
    else if (own instanceof Set) own.add(connection);
    else this.#users.set(user, new Set([own, connection]));
    this.#sole = this.#users.size === 1 ? user : undefined;
    return own === undefined;
  }

  /**
   * Closes the user's connections other than `newer` with `code`: a newer
   * connection replaced them (`duplicateUser: "replace"`).
   */
  closeOlder(
    newer: ServerConnection<Local, Remote>,
    code: number,
    reason: string,
  ): void {
    for (const older of [...this.connectionsOf(newer.user) ?? []]) {
      if (older !== newer) older.peer.closeWithReason(code, reason);
    }
  }

  /**
   * Unregisters a connection that closed, adds its stats to the totals and,
   * after a user's last connection, takes the user out of every room.
   *
   * @returns `true` when it was the user's last connection.
   */
  remove(connection: ServerConnection<Local, Remote>): boolean {
    connection.registered = false;
    const { user } = connection;
    this.connections.delete(connection);
    if (this.connections.size === 0) this.keepAlive?.stop();
    this.#addStats(connection);
    const own = this.#users.get(user);
    if (own instanceof Set) own.delete(connection);
    const last = own === connection || (own instanceof Set && own.size === 0);
    if (last) {
      this.#users.delete(user);
      const users = this.#users;
      this.#sole = users.size === 1 ? users.keys().next().value : undefined;
      for (const room of this.roomsOf(user)) this.leave(room, user);
    }
    return last;
  }

  /** Adds a closed connection's stats to the totals. */
  #addStats(connection: ServerConnection<Local, Remote>): void {
    const stats = connection.peer.stats;
    const totals = this.#closedStats;
    for (let type = 0; type < totals.framesIn.length; type++) {
      totals.framesIn[type] += stats.framesIn[type];
      totals.framesOut[type] += stats.framesOut[type];
    }
    totals.dropped += stats.dropped;
    totals.malformed += stats.malformed;
    totals.rateLimited += stats.rateLimited;
  }

  /**
   * Puts `fresh` in the place of `old` (a session resumed on a new
   * connection): same user, same rooms, no presence change.
   */
  replace(
    old: ServerConnection<Local, Remote>,
    fresh: ServerConnection<Local, Remote>,
  ): void {
    if (!old.registered) return;
    old.registered = false;
    fresh.registered = true;
    this.connections.delete(old);
    this.connections.add(fresh);
    const own = this.#users.get(old.user);
    if (own === old) this.#users.set(old.user, fresh);
    else if (own instanceof Set) {
      own.delete(old);
      own.add(fresh);
    } else if (own !== undefined) {
      this.#users.set(old.user, new Set([own, fresh]));
    }
    // The two share the session's peer: its stats count once, at the end.
  }

  /** The users, in order of their first connection. */
  users(): string[] {
    return [...this.#users.keys()];
  }

  /** Whether a user has an open connection. */
  isOnline(user: string): boolean {
    return this.#users.has(user);
  }

  /** A user's open connections, oldest first; `undefined` when offline. */
  connectionsOf(
    user: string,
  ): Iterable<ServerConnection<Local, Remote>> | undefined {
    const own = this.#users.get(user);
    return own === undefined || own instanceof Set ? own : [own];
  }

  /**
   * A user's open connections as kept: the one, or a set (oldest first);
   * `undefined` when offline. For the fan-out, which makes no array.
   */
  own(user: string): Own<Local, Remote> | undefined {
    return this.#users.get(user);
  }

  /** The members of a room; `undefined` for an unknown room. */
  roomMembers(room: string): Set<string> | undefined {
    return this.#rooms.get(room);
  }

  /** Told when a user's rooms change (sessions store them). */
  onRooms: ((user: string) => void) | undefined = undefined;

  /** Decides joins (the server's `authorizeJoin` option). */
  authorizeJoin:
    | ((room: string, user: string, data: unknown) => boolean)
    | undefined = undefined;

  /**
   * Adds a connected user to a room; `false` when not connected.
   *
   * @throws {ForbiddenError} When `authorizeJoin` refuses.
   */
  join(room: string, user: string): boolean {
    const own = this.#users.get(user);
    if (own === undefined) return false;
    const data = own instanceof Set
      ? own.values().next().value?.data
      : own.data;
    if (this.authorizeJoin?.(room, user, data) === false) {
      throw new ForbiddenError(
        `Cannot join ${JSON.stringify(room)}: not allowed for this user`,
      );
    }
    let members = this.#rooms.get(room);
    if (members === undefined) this.#rooms.set(room, members = new Set());
    members.add(user);
    let rooms = this.#userRooms.get(user);
    if (rooms === undefined) this.#userRooms.set(user, rooms = new Set());
    rooms.add(room);
    this.onRooms?.(user);
    return true;
  }

  /** Removes a user from a room; `true` when the user was a member. */
  leave(room: string, user: string): boolean {
    const members = this.#rooms.get(room);
    if (members === undefined || !members.delete(user)) return false;
    if (members.size === 0) this.#rooms.delete(room);
    const rooms = this.#userRooms.get(user);
    rooms?.delete(room);
    if (rooms?.size === 0) this.#userRooms.delete(user);
    this.onRooms?.(user);
    return true;
  }

  /** The members of a room; empty for an unknown room. */
  members(room: string): string[] {
    return [...(this.#rooms.get(room) ?? [])];
  }

  /** The rooms of a user. */
  roomsOf(user: string): string[] {
    return [...(this.#userRooms.get(user) ?? [])];
  }

  /** Whether a local push to this audience could reach any connection. */
  hasAudience(
    to: string | undefined,
    room: string | readonly string[] | undefined,
    except: string | readonly string[] | undefined,
  ): boolean {
    const users = this.#users;
    if (to !== undefined) return !listed(except, to) && users.has(to);
    if (typeof room === "string") return this.#rooms.has(room);
    if (room !== undefined) return room.some((name) => this.#rooms.has(name));
    if (typeof except !== "object") {
      const size = users.size;
      return size > 1 || size === 1 && this.#sole !== except;
    }
    return [...users.keys()].some((user) => !except.includes(user));
  }

  /** The figures behind `/metrics`: closed and open connections summed. */
  snapshot(requestsInFlight: number): MetricsSnapshot {
    const totals = this.#closedStats;
    const framesIn = [...totals.framesIn];
    const framesOut = [...totals.framesOut];
    let { dropped, malformed, rateLimited } = totals;
    for (const { peer } of this.connections) {
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
      connections: this.connections.size,
      users: this.#users.size,
      requestsInFlight,
      framesIn,
      framesOut,
      dropped,
      malformed,
      rateLimited,
    };
  }
}
