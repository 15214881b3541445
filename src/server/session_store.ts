/**
 * Where a {@linkcode DuplexServer} keeps the records of its sessions: the
 * {@linkcode SessionStore} interface and the in-memory
 * {@linkcode MemorySessionStore}. A record says who a session belongs to
 * and holds the SHA-256 of its secret (never the secret); a record of an
 * ended session (a tombstone) says why, so that a late resume learns the
 * reason ("expired") rather than "unknown".
 *
 * With the three basic methods the frames kept for a replay live with the
 * session's transport, in this process. A store that several instances
 * share also implements `claim` and `write` (see `RedisSessionStore` in
 * `@duplex/ws/redis`): then a session's counts, unacknowledged frames, open
 * requests and rooms live in the store too, and a client resumes on any
 * instance.
 *
 * @module
 */

import type { SessionRecord, SessionStore } from "../cluster/session_store.ts";

export {
  hashSecret,
  type SessionRecord,
  type SessionStore,
  type SessionWrite,
  type SessionWriteResult,
  type StoredSession,
} from "../cluster/session_store.ts";

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
 * store.set({ id: "a", user: "alice", secretHash: "9f86" }, Infinity);
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
