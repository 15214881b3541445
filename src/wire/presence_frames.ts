/**
 * The presence feed's payloads: what a client that listens to presence
 * receives (`presence.state` once, then `presence.diff` at most once per
 * interval), and the small metadata a user may carry.
 *
 * @module
 */

/**
 * A user's presence metadata: a flat JSON object (e.g. `status`, `device`)
 * of at most {@linkcode MAX_PRESENCE_META_SIZE} bytes encoded.
 *
 * @example Usage
 * ```ts
 * import type { PresenceMeta } from "@duplex/ws";
 *
 * const meta: PresenceMeta = { status: "away", device: "phone" };
 * ```
 */
export type PresenceMeta = Record<string, string | number | boolean | null>;

/**
 * The most bytes a user's {@linkcode PresenceMeta} takes, JSON-encoded.
 *
 * @example Usage
 * ```ts
 * import { MAX_PRESENCE_META_SIZE } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(MAX_PRESENCE_META_SIZE, 256);
 * ```
 */
export const MAX_PRESENCE_META_SIZE: number = 256;

/**
 * The payload of `presence.state`: everyone online when the client started
 * listening, with their metadata (only users that have some).
 *
 * @example Usage
 * ```ts
 * import type { PresenceState } from "@duplex/ws";
 *
 * const state: PresenceState = { users: ["ada", "bob"], meta: { bob: { status: "away" } } };
 * ```
 */
export interface PresenceState {
  /** The users online. */
  users: string[];
  /** Metadata by user, for the users that have some. */
  meta?: Record<string, PresenceMeta>;
}

/**
 * The payload of `presence.diff`: what changed since the previous diff (or
 * around the snapshot). Each field holds final states, so applying a diff
 * twice, or a diff that repeats what the snapshot already had, is harmless:
 * add `joined`, delete `left`, set `meta` (`null`: the user's metadata was
 * removed).
 *
 * @example Usage
 * ```ts
 * import type { PresenceDiff } from "@duplex/ws";
 *
 * const diff: PresenceDiff = { joined: ["cy"], left: ["bob"], meta: { cy: { device: "web" } } };
 * ```
 */
export interface PresenceDiff {
  /** Users now online that were not. */
  joined?: string[];
  /** Users now offline that were online. */
  left?: string[];
  /** New metadata of users online, `null` when removed. */
  meta?: Record<string, PresenceMeta | null>;
}

/**
 * Checks a value as {@linkcode PresenceMeta}: a plain object of strings,
 * numbers, booleans and nulls of at most {@linkcode MAX_PRESENCE_META_SIZE}
 * bytes encoded.
 *
 * @param value The value.
 * @returns `true` when it is valid metadata.
 *
 * @example Usage
 * ```ts
 * import { isPresenceMeta } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isPresenceMeta({ status: "away" }), true);
 * assert.equal(isPresenceMeta({ nested: { no: 1 } }), false);
 * assert.equal(isPresenceMeta({ text: "x".repeat(300) }), false);
 * ```
 */
export function isPresenceMeta(value: unknown): value is PresenceMeta {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return false;
  }
  for (const key in value) {
    const field = (value as Record<string, unknown>)[key];
    if (
      field !== null && typeof field !== "string" &&
      typeof field !== "boolean" &&
      !(typeof field === "number" && Number.isFinite(field))
    ) {
      return false;
    }
  }
  return new TextEncoder().encode(JSON.stringify(value)).length <=
    MAX_PRESENCE_META_SIZE;
}
