/**
 * Where a {@linkcode DuplexServer} keeps the records of its sessions: the
 * {@linkcode SessionStore} interface and the in-memory
 * {@linkcode MemorySessionStore}. A record says who a session belongs to
 * and proves its secret; a record of an ended session (a tombstone) says
 * why, so that a late resume learns the reason ("expired") rather than
 * "unknown". The frames kept for a replay live with the session's transport.
 *
 * @module
 */

import type { SessionLossReason } from "../wire/session_frames.ts";

/**
 * One session as the store keeps it.
 *
 * @example Usage
 * ```ts
 * import type { SessionRecord } from "@duplex/ws/server";
 *
 * const record: SessionRecord = { id: "k2J…", user: "alice", secret: "…" };
 * ```
 */
export interface SessionRecord {
  /** The session id (random, 22 characters). */
  id: string;
  /** The user it belongs to, as authenticated. */
  user: string;
  /** The secret a resume must present (random, 43 characters). */
  secret: string;
  /** Set once the session ended: why. */
  ended?: SessionLossReason;
}

/**
 * The storage of session records. Every method may answer at once or with
 * a promise (a store over the network). Keep it small: a store implements
 * three methods.
 *
 * @example A store over a Map
 * ```ts
 * import type { SessionRecord, SessionStore } from "@duplex/ws/server";
 *
 * const map = new Map<string, SessionRecord>();
 * const store: SessionStore = {
 *   get: (id) => map.get(id),
 *   set: (record) => void map.set(record.id, record),
 *   delete: (id) => void map.delete(id),
 * };
 * ```
 */
export interface SessionStore {
  /**
   * Finds a record.
   *
   * @param id The session id.
   * @returns The record, or `undefined` when unknown (or expired).
   */
  get(
    id: string,
  ): SessionRecord | undefined | Promise<SessionRecord | undefined>;
  /**
   * Creates or replaces a record, kept for `ttl` ms (Infinity: until
   * replaced or deleted).
   *
   * @param record The record.
   * @param ttl How long to keep it, in ms.
   */
  set(record: SessionRecord, ttl: number): void | Promise<void>;
  /**
   * Deletes a record.
   *
   * @param id The session id.
   */
  delete(id: string): void | Promise<void>;
}

/**
 * The default {@linkcode SessionStore}: a Map in this process, with lazy
 * expiry and at most `maxRecords` tombstones (the oldest go first).
 *
 * @example Usage
 * ```ts
 * import { MemorySessionStore } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const store = new MemorySessionStore();
 * store.set({ id: "a", user: "alice", secret: "s" }, Infinity);
 * assert.equal(store.get("a")?.user, "alice");
 * store.delete("a");
 * assert.equal(store.get("a"), undefined);
 * ```
 */
export class MemorySessionStore implements SessionStore {
  #records = new Map<string, SessionRecord>();
  /** Tombstones by id, oldest first, with their expiry times. */
  #expiring = new Map<string, number>();
  #maxTombstones: number;

  /**
   * Creates an empty store.
   *
   * @param options `maxTombstones`: how many records of ended sessions to
   * keep at most (default 100,000).
   */
  constructor(options: { maxTombstones?: number } = {}) {
    this.#maxTombstones = options.maxTombstones ?? 100_000;
  }

  /** Records held, live and ended. */
  get size(): number {
    return this.#records.size;
  }

  /**
   * Finds a record.
   *
   * @param id The session id.
   * @returns The record, or `undefined`.
   */
  get(id: string): SessionRecord | undefined {
    const expires = this.#expiring.get(id);
    if (expires !== undefined && expires <= Date.now()) {
      this.delete(id);
      return undefined;
    }
    return this.#records.get(id);
  }

  /**
   * Creates or replaces a record.
   *
   * @param record The record.
   * @param ttl How long to keep it, in ms (Infinity: until deleted).
   */
  set(record: SessionRecord, ttl: number): void {
    this.#records.set(record.id, record);
    this.#expiring.delete(record.id);
    if (ttl === Infinity) return;
    this.#expiring.set(record.id, Date.now() + ttl);
    this.#prune();
  }

  /**
   * Deletes a record.
   *
   * @param id The session id.
   */
  delete(id: string): void {
    this.#records.delete(id);
    this.#expiring.delete(id);
  }

  /** Drops expired tombstones from the front, and the oldest beyond the cap. */
  #prune(): void {
    const now = Date.now();
    let excess = this.#expiring.size - this.#maxTombstones;
    for (const [id, expires] of this.#expiring) {
      if (expires > now && excess <= 0) break;
      this.#records.delete(id);
      this.#expiring.delete(id);
      excess--;
    }
  }
}
