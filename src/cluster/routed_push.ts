/**
 * Routed pushes: a {@linkcode Push} as it crosses the broker. A push to one
 * user goes to the channels of the instances that announced the user (with
 * `user`); any other push goes to every instance (with `room` and `except`
 * when given). The frame itself (`data`) is encoded once, by the instance
 * that pushes, and crosses as is.
 *
 * Internal: the `Cluster` uses these two functions.
 *
 * @module
 */

import { type Envelope, optionalString } from "./envelope.ts";
import type { Push } from "./local_node.ts";

/**
 * Checks a push given to `Cluster.publish` and makes its envelope, without
 * `user` (the cluster adds it for the instances it sends it to).
 *
 * @param push The push.
 * @returns The `push` envelope.
 * @throws {TypeError} When `push.data` is not a string, or both `user` and
 * `room` are given.
 */
export function pushEnvelope(push: Push): Envelope {
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
  if (push.room !== undefined) envelope.room = push.room;
  return envelope;
}

/**
 * Reads a received `push` envelope.
 *
 * @param envelope The envelope.
 * @param direct Whether it came on this instance's own channel (then it is
 * for one user, and only then).
 * @returns The push to deliver locally, or `undefined` when malformed.
 */
export function readPush(
  envelope: Envelope,
  direct: boolean,
): Push | undefined {
  const { data, extended, user, room, except } = envelope;
  if (
    typeof data !== "string" || !optionalString(user) ||
    !optionalString(room) || !optionalString(except) ||
    (extended !== undefined && typeof extended !== "boolean") ||
    (direct ? user === undefined : user !== undefined)
  ) {
    return undefined;
  }
  const push: Push = { data, extended: extended === true };
  if (user !== undefined) push.user = user;
  if (room !== undefined) push.room = room;
  if (except !== undefined) push.except = except;
  return push;
}
