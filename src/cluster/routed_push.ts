/**
 * Routed pushes: a {@linkcode Push} as it crosses the broker. A push to one
 * user goes to the channels of the instances that announced the user (with
 * `user`); any other push goes to every instance (with `room` and `except`
 * when given). The frame itself (`data`) is encoded once, by the instance
 * that pushes, and crosses as is.
 *
 * A receiver checks that `data` is a notify frame before any client sees it.
 *
 * Internal: the `Cluster` uses these two functions.
 *
 * @module
 */

import { MAX_SEQUENCE, type NotifyFrame } from "../wire/protocol.ts";
import { type Envelope, isRecord, optionalString } from "./envelope.ts";
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

/** A room or `except`: absent, one name, or a list of names. */
function optionalNames(value: unknown): value is string | string[] | undefined {
  return optionalString(value) ||
    (Array.isArray(value) && value.every((name) => typeof name === "string"));
}

/** A received push, and who its frame says it is from. */
export interface ReceivedPush {
  /** The push to deliver, with the frame re-encoded as this server would. */
  push: Push;
  /** The frame's `from`, when it has one. */
  from?: string;
}

const FRAME_FIELDS = new Set(["sequence", "type", "message", "method", "from"]);

/**
 * Reads a received `push` envelope. Its `data` must be a notify frame as a
 * server encodes it: a JSON object with only `sequence`, `type` (3),
 * `message`, `method` and `from`, with `method` exactly when `extended`
 * (so that clients of the original protocol never get an extension). The
 * frame is re-encoded, so what reaches clients is what this server would
 * have written (no duplicate keys, no padding).
 *
 * @param envelope The envelope.
 * @param direct Whether it came on this instance's own channel (then it is
 * for one user, and only then).
 * @returns The push and its `from`, or why it is malformed.
 */
export function readPush(
  envelope: Envelope,
  direct: boolean,
): ReceivedPush | string {
  const { data, extended, user, room, except } = envelope;
  if (
    typeof data !== "string" || !optionalString(user) ||
    !optionalNames(room) || !optionalNames(except) ||
    (extended !== undefined && typeof extended !== "boolean") ||
    (direct ? user === undefined : user !== undefined)
  ) {
    return "bad fields";
  }
  let frame: unknown;
  try {
    frame = JSON.parse(data);
  } catch {
    return "data is not JSON";
  }
  if (!isRecord(frame)) return "data is not a frame";
  for (const key in frame) {
    if (!FRAME_FIELDS.has(key)) return `data has field ${JSON.stringify(key)}`;
  }
  const { sequence, type, message, method, from } = frame;
  if (
    type !== 3 || !(Number.isInteger(sequence) &&
      (sequence as number) >= 0 && (sequence as number) <= MAX_SEQUENCE) ||
    !optionalString(method) || !optionalString(from) ||
    (method !== undefined) !== (extended === true)
  ) {
    return "data is not a notify frame";
  }
  const canonical: NotifyFrame = { sequence: sequence as number, type: 3 };
  if ("message" in frame) canonical.message = message;
  if (method !== undefined) canonical.method = method;
  if (from !== undefined) canonical.from = from;
  const push: Push = {
    data: JSON.stringify(canonical),
    extended: extended === true,
  };
  if (user !== undefined) push.user = user;
  if (room !== undefined) push.room = room;
  if (except !== undefined) push.except = except;
  return from === undefined ? { push } : { push, from };
}
