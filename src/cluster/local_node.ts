/**
 * What the cluster needs from the local server ({@linkcode LocalNode}), and
 * the two things it hands it: a {@linkcode Push} to deliver to local
 * connections, and a request to a local user with its
 * {@linkcode UserRequestOptions}.
 *
 * @module
 */

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
  /** The members of a room, or of several (each member once). */
  room?: string | string[];
  /** A user (or users) none of whose connections receive it. */
  except?: string | string[];
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
  /**
   * Adds a user connected here to a room (cluster-wide rooms). Without it,
   * this instance keeps no rooms.
   *
   * @param room The room.
   * @param user The user.
   * @returns `false` when the user is not connected here.
   */
  join?(room: string, user: string): boolean;
  /**
   * Removes a user connected here from a room.
   *
   * @param room The room.
   * @param user The user.
   * @returns `true` when the user was a member.
   */
  leave?(room: string, user: string): boolean;
  /**
   * Another instance opened a connection of a user under
   * `duplicateUser: "replace"`: closes this instance's connections of the
   * user opened before it (4009).
   *
   * @param user The user.
   * @param at When the newer connection opened (ms since the epoch).
   * @param instance The instance where it opened.
   */
  replace?(user: string, at: number, instance: string): void;
}
