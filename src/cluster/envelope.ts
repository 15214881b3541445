/**
 * The broker envelope: the JSON object every cluster message is, its version,
 * and the checks a received one passes before any part of the cluster acts
 * on it.
 *
 * Internal apart from {@linkcode CLUSTER_PROTOCOL_VERSION}, which `server.ts`
 * exports.
 *
 * @module
 */

import type { ErrorPayload } from "../wire/protocol.ts";

/**
 * The version of the broker envelope, the `v` field of every message. A
 * receiver drops (and counts) messages of any other version, except that it
 * still reads version 1 (from instances not yet upgraded) when no `secret`
 * is configured.
 *
 * Every message is one JSON object (a string on the broker) that starts with
 * `v` (2) and `node` (the sending instance's id), in that order, then has
 * `kind`. Channels are `<prefix>all` (every instance) and
 * `<prefix>node:<id>` (one instance).
 *
 * | kind     | channel   | fields                                                                                          |
 * | -------- | --------- | ----------------------------------------------------------------------------------------------- |
 * | `push`   | all       | `data` (encoded notify frame), `extended`?, `room`?, `except`?                                  |
 * | `push`   | node:<id> | `data`, `extended`?, `user`, `except`?                                                          |
 * | `req`    | node:<id> | `id` (sender's number), `user`, `message`?, `method`?, `from`?, `timeout` (ms), `deadline`? (2) |
 * | `res`    | node:<id> | `id`, then `message` or `error` (`{code, message, data?}`)                                      |
 * | `cancel` | node:<id> | `id`                                                                                            |
 * | `join`   | all       | `user`                                                                                          |
 * | `leave`  | all       | `user`                                                                                          |
 * | `hb`     | all       | `users` (every local user), `ttl` (ms), `rooms`? (`{room: [user]}`), `meta`? (`{user: meta}`)     |
 * | `sync`   | all       | (asks every instance to send `hb` now)                                                          |
 * | `bye`    | all       | (the sender leaves: drop its users now)                                                         |
 * | `room`   | all       | `user`, `room`, `in` (the sender's user entered or left a room)                                  |
 * | `roomreq`| node:<id> | `user`, `room`, `in` (asks the user's instance to change it)                                    |
 * | `meta`   | all       | `user`, `meta`? (presence metadata of the sender's user)                                        |
 * | `replace`| all       | `user`, `at` (close that user's connections opened before `at`)                                 |
 *
 * Version 2 adds:
 * - `deadline` on `req`: the asker's clock (ms since the epoch) when it gives
 *   up; a request that arrives later is dropped unanswered;
 * - with a shared secret, `seq` (after `node`: strictly increasing per
 *   sender, about its clock in microseconds) and `sig` (last: HMAC-SHA-256 of
 *   the channel and the envelope without `sig`, base64url); a receiver with
 *   the secret drops messages without a valid `sig`, with a `seq` not above
 *   the last one from that sender on that channel, or older than the replay
 *   window;
 * - limits every receiver enforces: the size of a message, the users of one
 *   instance, the instances, a heartbeat's `ttl`; a `push`'s `data` must be
 *   a notify frame (`extended` exactly when it has a `method`), and its
 *   `from`, when present, a user that the sending instance announced.
 *
 * Unknown kinds and extra fields are ignored, so later versions can add them.
 *
 * @example Usage
 * ```ts
 * import { CLUSTER_PROTOCOL_VERSION } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLUSTER_PROTOCOL_VERSION, 2);
 * const push = { v: 2, node: "a1", kind: "push", data: '{"sequence":0,"type":3,"message":"hi"}' };
 * assert.equal(push.v, CLUSTER_PROTOCOL_VERSION);
 * ```
 */
export const CLUSTER_PROTOCOL_VERSION: number = 2;

/** A decoded envelope whose fields are not yet checked. */
export type Envelope = Record<string, unknown>;

/** Checks that a value is a plain JSON object. */
export function isRecord(value: unknown): value is Envelope {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks that a field is absent or a string. */
export function optionalString(value: unknown): value is string | undefined {
  return value === undefined || typeof value === "string";
}

/** Checks that a value is a request number. */
export function isId(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

/** Checks that a value is a wire error payload. */
export function isErrorPayload(value: unknown): value is ErrorPayload {
  return isRecord(value) && typeof value.code === "string" &&
    typeof value.message === "string";
}

/** The message of an error, for log lines. */
export function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

/**
 * The length of a string in UTF-8 bytes, without encoding it.
 *
 * @param text The string.
 * @returns Its UTF-8 length.
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) bytes += 1;
    else if (code >= 0xd800 && code < 0xdc00) {
      bytes += 2; // A surrogate pair: 4 bytes for 2 code units.
      i++;
    } else bytes += 2;
  }
  return bytes;
}

/** A received message: an envelope with a sender, or why it was dropped. */
export type Decoded =
  | { envelope: Envelope; node: string }
  | { invalid: string; version?: unknown };

/**
 * Parses one received message and checks what every envelope has: a JSON
 * object of this version (or of version 1 when `acceptV1`) with a non-empty
 * sender.
 *
 * @param text The message from the broker.
 * @param acceptV1 Whether version 1 envelopes are read.
 * @returns The envelope and its sender, or the reason it is dropped
 * (`version` set when only the version is wrong).
 */
export function decodeEnvelope(text: string, acceptV1: boolean): Decoded {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return { invalid: "not JSON" };
  }
  if (!isRecord(envelope)) return { invalid: "not an object" };
  const v = envelope.v;
  if (v !== CLUSTER_PROTOCOL_VERSION && !(acceptV1 && v === 1)) {
    return { invalid: "version", version: v };
  }
  const node = envelope.node;
  if (typeof node !== "string" || node === "") return { invalid: "no sender" };
  return { envelope, node };
}
