/**
 * The seam of session storage: the {@linkcode SessionStore} interface that
 * a server keeps its session records in, and what a store that several
 * instances share (`claim`, `write`) reads and writes. It lives in the
 * cluster layer because a shared store is how sessions cross instances;
 * the in-memory store of one process is `MemorySessionStore` in the server
 * layer, the Redis one `RedisSessionStore` in `@duplex/ws/redis`.
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
 * const record: SessionRecord = { id: "k2J…", user: "alice", secretHash: "9f86…" };
 * ```
 */
export interface SessionRecord {
  /** The session id (random, 22 characters). */
  id: string;
  /** The user it belongs to, as authenticated. */
  user: string;
  /**
   * The SHA-256 (hex) of the secret a resume must present; the secret
   * itself is never stored.
   */
  secretHash: string;
  /** Set once the session ended: why. */
  ended?: SessionLossReason;
  /** Shared stores: who runs the session now (an owner token). */
  owner?: string;
}

/**
 * A session as a shared store returns it to the instance that claims it:
 * everything needed to go on where its previous instance stopped.
 *
 * @example Usage
 * ```ts
 * import type { StoredSession } from "@duplex/ws/server";
 *
 * const stored: StoredSession = {
 *   record: { id: "k2J…", user: "alice", secretHash: "9f86…" },
 *   received: 12, sent: 40, frames: ['{"sequence":0,"type":3,"message":1}'],
 *   requested: 3, open: [7], rooms: ["lobby"], version: 9,
 * };
 * ```
 */
export interface StoredSession {
  /** The record (its `owner` is the claimer's token now). */
  record: SessionRecord;
  /**
   * Client frames the previous instances received and stored, in all.
   * Handlers ran only for frames within this count.
   */
  received: number;
  /**
   * Of `received`, how many are stored as handed to the handlers and
   * listeners (absent: all of them). The frames after it may or may not
   * have run when their instance died: the new owner reports them in
   * doubt to the client.
   */
  dispatched?: number;
  /** Server frames sent, in all, as stored. */
  sent: number;
  /** The stored frames not acknowledged by the client: the last of `sent`. */
  frames: string[];
  /**
   * The sequence of the last server→client request stored (0: none). A
   * new owner numbers its requests past it, so that a late answer to an
   * earlier owner's request never settles one of its own.
   */
  requested: number;
  /** Sequences of client requests received with no response stored. */
  open: number[];
  /** The rooms of the session's user, as stored. */
  rooms: string[];
  /** The version of the last write. */
  version: number;
}

/**
 * One session's changes since the store's last write, as a server sends
 * them to a shared store (one batch per event-loop turn). Writes are
 * idempotent: a retried write carries everything of the failed one, and
 * the store ignores a write whose `version` is not above the stored one.
 *
 * @example Usage
 * ```ts
 * import type { SessionWrite } from "@duplex/ws/server";
 *
 * const write: SessionWrite = {
 *   id: "k2J…", owner: "a1:7", version: 3, received: 5, sent: 9, acked: 4,
 *   frames: ['{"sequence":2,"type":2,"message":"ok"}'], opened: [3],
 *   answered: [2], ttl: 240_000,
 * };
 * ```
 */
export interface SessionWrite {
  /** The session id. */
  id: string;
  /** The writer's owner token: the write is refused when it is not the owner. */
  owner: string;
  /** Increases with each write of this owner. */
  version: number;
  /** Client frames received, in all (stored before their handlers run). */
  received: number;
  /**
   * Of `received`, how many were handed to the handlers and listeners (a
   * received frame is handed over once its `received` is stored, and this
   * count follows with the next write). Absent: all of them. The store
   * keeps the highest written.
   */
  dispatched?: number;
  /** Server frames sent, in all. */
  sent: number;
  /** Server frames the client acknowledged, in all (the store trims them). */
  acked: number;
  /** The server frames numbered `sent - frames.length + 1` to `sent`. */
  frames: string[];
  /**
   * The sequence of the last server→client request among the frames sent
   * (when there was one).
   */
  requested?: number;
  /** Client requests received since the last write. */
  opened: number[];
  /** Requests answered since the last write. */
  answered: number[];
  /** The rooms, when they changed. */
  rooms?: string[];
  /**
   * A full copy (a new session, or one the store lost): the record, every
   * unacknowledged frame and every open request. Applied when the store has
   * no such session, or an older owner's.
   */
  snapshot?: { record: SessionRecord; open: number[]; rooms: string[] };
  /** Set once the session ended: the store keeps a tombstone. */
  ended?: SessionLossReason;
  /**
   * Set while the owner hands the session over (a rolling restart): a
   * claim answers `"busy"` until a write without it.
   */
  handover?: boolean;
  /** How long the store keeps the session without a write, in ms. */
  ttl: number;
}

/**
 * What a shared store answers for one {@linkcode SessionWrite}: `"ok"`;
 * `"fenced"`, another instance claimed the session (the writer gives it
 * up); `"missing"`, the store has no such session any more (the writer
 * sends a snapshot).
 *
 * @example Usage
 * ```ts
 * import type { SessionWriteResult } from "@duplex/ws/server";
 *
 * const result: SessionWriteResult = "fenced";
 * ```
 */
export type SessionWriteResult = "ok" | "fenced" | "missing";

/**
 * The storage of session records. Every method may answer at once or with
 * a promise (a store over the network). Keep it small: a store for one
 * process implements three methods; a store that several instances share
 * adds `claim` and `write`, and then holds each session's frames and counts
 * as well (a client resumes on any instance).
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
  /**
   * Shared stores: makes `owner` the session's owner (the previous owner's
   * writes are refused from now on) and returns its state.
   *
   * @param id The session id.
   * @param owner The claimer's owner token.
   * @returns The state; `undefined` when unknown or ended; `"busy"` while
   * its owner hands it over (try again shortly).
   */
  claim?(
    id: string,
    owner: string,
  ): Promise<StoredSession | "busy" | undefined>;
  /**
   * Shared stores: applies one batch of changes (one round trip).
   *
   * @param batch The changes, one per session.
   * @returns One result per change, in order.
   */
  write?(batch: readonly SessionWrite[]): Promise<SessionWriteResult[]>;
}

/**
 * The SHA-256 of a session secret, in hex: what a {@linkcode SessionStore}
 * keeps instead of the secret.
 *
 * @param secret The secret.
 * @returns The hash.
 *
 * @example Usage
 * ```ts
 * import { hashSecret } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal((await hashSecret("s")).length, 64);
 * ```
 */
export async function hashSecret(secret: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(secret),
  );
  // One flat string (joined, not 32 concatenations): a live session keeps
  // its hash, and a concatenation tree costs it about 1.2 KB of heap.
  return Array.from(new Uint8Array(digest), hexOf).join("");
}

function hexOf(byte: number): string {
  return byte.toString(16).padStart(2, "0");
}
