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

/** A received message: an envelope with a sender, or why it was dropped. */
export type Decoded =
  | { envelope: Envelope; node: string }
  | { invalid: string; version?: unknown };

/**
 * Parses one received message and checks what every envelope has: a JSON
 * object of this version with a non-empty sender.
 *
 * @param text The message from the broker.
 * @returns The envelope and its sender, or the reason it is dropped
 * (`version` set when only the version is wrong).
 */
export function decodeEnvelope(text: string): Decoded {
  let envelope: unknown;
  try {
    envelope = JSON.parse(text);
  } catch {
    return { invalid: "not JSON" };
  }
  if (!isRecord(envelope)) return { invalid: "not an object" };
  if (envelope.v !== CLUSTER_PROTOCOL_VERSION) {
    return { invalid: "version", version: envelope.v };
  }
  const node = envelope.node;
  if (typeof node !== "string" || node === "") return { invalid: "no sender" };
  return { envelope, node };
}
