/**
 * Presence for clients that ask for it, as batched diffs: a client calls
 * `presence.listen`, gets `presence.state` (everyone online, with their
 * metadata) at once, then `presence.diff` (joins, leaves and metadata
 * changes since the previous one) at most once per interval. Clients that
 * never call it receive nothing from the feed.
 *
 * @module
 */

import type { Cluster } from "../cluster/cluster.ts";
import type { PresenceDetail } from "../cluster/presence.ts";
import type { AnyEndpoint, Endpoint, Peer } from "../peer/peer.ts";
import { RemoteError } from "../wire/errors.ts";
import {
  isPresenceMeta,
  type PresenceDiff,
  type PresenceMeta,
  type PresenceState,
} from "../wire/presence_frames.ts";
import type { DuplexServer } from "./duplex_server.ts";

/**
 * Options of a {@linkcode PresenceFeed}.
 *
 * @example Usage
 * ```ts
 * import type { PresenceFeedOptions } from "@duplex/ws/server";
 *
 * const options: PresenceFeedOptions = { interval: 500 };
 * ```
 */
export interface PresenceFeedOptions {
  /**
   * The shortest time between two diffs, in milliseconds: a listening
   * client gets at most one `presence.diff` per interval.
   *
   * @default {1000}
   */
  interval?: number;
  /**
   * Told when a connection starts listening (the chat stops sending it the
   * per-user `presence.joined` / `presence.left` then).
   *
   * @default {undefined}
   */
  onListen?: (peer: Peer<Endpoint, Endpoint>) => void;
}

/**
 * Counters of a {@linkcode PresenceFeed}.
 *
 * @example Usage
 * ```ts
 * import type { PresenceFeedStats } from "@duplex/ws/server";
 *
 * const perDiff = (stats: PresenceFeedStats) => stats.frames / Math.max(1, stats.diffs);
 * ```
 */
export interface PresenceFeedStats {
  /** Diffs encoded (one per interval with changes). */
  diffs: number;
  /** `presence.diff` frames sent (diffs times listeners). */
  frames: number;
  /** `presence.state` snapshots sent. */
  snapshots: number;
}

type AnyServer = DuplexServer<AnyEndpoint, AnyEndpoint>;

/**
 * The presence feed of a server: installs `presence.listen`,
 * `presence.unlisten` and `presence.set` (the caller's metadata: a
 * {@linkcode PresenceMeta}, or `null` to remove it) and sends the diffs.
 * With a cluster it follows the cluster's presence (every instance), else
 * the server's users.
 *
 * Cost: a change costs O(1) when it happens; each interval with changes
 * encodes one diff and writes it to each listener.
 *
 * @example A client listens
 * ```ts
 * import { DuplexServer, PresenceFeed } from "@duplex/ws/server";
 * import { Client, PresenceView } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const server = new DuplexServer();
 * using feed = new PresenceFeed(server, { interval: 20 });
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   server.fetch,
 * );
 * const url = (user: string) => `ws://127.0.0.1:${http.addr.port}/?user=${user}`;
 * await using ada = new Client(url("ada"));
 * await ada.connect();
 * using view = new PresenceView(ada);
 * await view.listen();
 * assert.deepEqual([...view.users.keys()], ["ada"]);
 *
 * const changed = new Promise((resolve) => view.addEventListener("change", resolve));
 * await using bob = new Client(url("bob"));
 * await bob.connect();
 * await changed;
 * assert.deepEqual([...view.users.keys()].sort(), ["ada", "bob"]);
 * assert.equal(feed.stats.snapshots, 1);
 * await server.shutdown();
 * ```
 */
export class PresenceFeed implements Disposable {
  /** Counters, for metrics and benchmarks. */
  readonly stats: PresenceFeedStats = { diffs: 0, frames: 0, snapshots: 0 };
  #server: AnyServer;
  #cluster: Cluster | undefined;
  #interval: number;
  #onListen: PresenceFeedOptions["onListen"];
  #listeners = new Map<Peer<Endpoint, Endpoint>, () => void>();
  #online = new Map<string, PresenceMeta | undefined>();
  /** User → online at the last diff, for users changed since. */
  #before = new Map<string, boolean>();
  #metaChanged = new Set<string>();
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #lastDiff = -Infinity;
  #removers: Array<() => void> = [];
  #closed = false;

  /**
   * Installs the feed on a server.
   *
   * @param server The server (with its cluster, when it has one).
   * @param options The interval.
   * @throws {RangeError} When `interval` is negative.
   */
  constructor(
    server: DuplexServer<Endpoint, Endpoint>,
    options: PresenceFeedOptions = {},
  ) {
    const interval = options.interval ?? 1_000;
    if (!(interval >= 0 && interval < Infinity)) {
      throw new RangeError(
        `Cannot create presence feed: interval must be a non-negative number, got ${interval}`,
      );
    }
    this.#interval = interval;
    this.#onListen = options.onListen;
    const untyped = server as unknown as AnyServer;
    this.#server = untyped;
    const cluster = this.#cluster = server.cluster;
    for (const user of cluster?.online() ?? server.users()) {
      this.#online.set(user, undefined);
    }
    this.#removers.push(
      untyped.handle("presence.listen", (_params, context) => {
        this.#listen(context.peer);
        return { interval: this.#interval };
      }),
      untyped.handle("presence.unlisten", (_params, context) => {
        const remove = this.#listeners.get(context.peer);
        remove?.();
        return remove !== undefined;
      }),
      untyped.handle("presence.set", (params, context) => {
        if (params !== null && !isPresenceMeta(params)) {
          throw new RemoteError({
            code: "INVALID_PARAMS",
            message:
              "Cannot set presence metadata: a flat object of at most 256 bytes, or null, is needed",
          });
        }
        return this.setMeta(context.from!, params ?? undefined);
      }),
    );
    const joined = (event: CustomEvent<{ user: string }>) =>
      this.#change(event.detail.user, true);
    const left = (event: CustomEvent<{ user: string }>) =>
      this.#change(event.detail.user, false);
    const source: EventTarget = cluster ?? server;
    const [joinType, leaveType] = cluster === undefined
      ? ["online", "offline"]
      : ["join", "leave"];
    source.addEventListener(joinType, joined as EventListener);
    source.addEventListener(leaveType, left as EventListener);
    this.#removers.push(() => {
      source.removeEventListener(joinType, joined as EventListener);
      source.removeEventListener(leaveType, left as EventListener);
    });
    if (cluster !== undefined) {
      const updated = (event: CustomEvent<PresenceDetail>) =>
        this.#setMeta(event.detail.user, event.detail.meta);
      cluster.addEventListener("update", updated);
      this.#removers.push(() => cluster.removeEventListener("update", updated));
    }
  }

  /** The connections listening. */
  get listeners(): number {
    return this.#listeners.size;
  }

  /**
   * Tells whether a connection listens.
   *
   * @param peer The connection's peer.
   * @returns `true` after its `presence.listen`.
   */
  isListening(peer: Peer<Endpoint, Endpoint>): boolean {
    return this.#listeners.has(peer);
  }

  /**
   * The users online, as the feed knows them.
   *
   * @returns The user ids.
   */
  online(): string[] {
    return [...this.#online.keys()];
  }

  /**
   * A user's metadata.
   *
   * @param user The user.
   * @returns The metadata, or `undefined`.
   */
  metaOf(user: string): PresenceMeta | undefined {
    return this.#online.get(user);
  }

  /**
   * Sets (`undefined`: removes) a user's metadata; listeners get it in the
   * next diff. With a cluster the user must be connected to this instance,
   * else to this server.
   *
   * @param user The user.
   * @param meta The metadata, or `undefined`.
   * @returns `false` when the user is not connected here.
   * @throws {TypeError} When `meta` is not valid {@linkcode PresenceMeta}.
   */
  setMeta(user: string, meta: PresenceMeta | undefined): boolean {
    if (meta !== undefined && !isPresenceMeta(meta)) {
      throw new TypeError(
        "Cannot set presence metadata: a flat object of at most 256 bytes is needed",
      );
    }
    if (this.#cluster !== undefined) return this.#cluster.setMeta(user, meta);
    if (!this.#server.isOnline(user)) return false;
    this.#setMeta(user, meta);
    return true;
  }

  /**
   * Stops the feed: removes its handlers and listeners, and sends no more
   * diffs. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const remove of this.#removers.splice(0)) remove();
    for (const remove of [...this.#listeners.values()]) remove();
  }

  /** Same as `close()`, for `using`. */
  [Symbol.dispose](): void {
    this.close();
  }

  #listen(peer: Peer<Endpoint, Endpoint>): void {
    if (!this.#listeners.has(peer)) {
      const onClose = () => remove();
      const remove = () => {
        this.#listeners.delete(peer);
        peer.removeEventListener("close", onClose);
        if (this.#listeners.size === 0) this.#forgetChanges();
      };
      peer.addEventListener("close", onClose, { once: true });
      this.#listeners.set(peer, remove);
      this.#onListen?.(peer);
    }
    const state: PresenceState = { users: [...this.#online.keys()] };
    for (const [user, meta] of this.#online) {
      if (meta !== undefined) (state.meta ??= {})[user] = meta;
    }
    this.stats.snapshots++;
    peer.sendNotification(JSON.stringify({
      sequence: 0,
      type: 3,
      message: state,
      method: "presence.state",
    }));
  }

  #change(user: string, online: boolean): void {
    const was = this.#online.has(user);
    if (was === online) return;
    if (!this.#before.has(user)) this.#before.set(user, was);
    if (online) this.#online.set(user, undefined);
    else this.#online.delete(user);
    this.#metaChanged.delete(user);
    this.#schedule();
  }

  #setMeta(user: string, meta: PresenceMeta | undefined): void {
    if (!this.#online.has(user)) return;
    this.#online.set(user, meta);
    this.#metaChanged.add(user);
    this.#schedule();
  }

  /** Nobody listens: the next listener starts from a snapshot. */
  #forgetChanges(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#before.clear();
    this.#metaChanged.clear();
  }

  #schedule(): void {
    if (this.#listeners.size === 0) return this.#forgetChanges();
    if (this.#timer !== undefined || this.#closed) return;
    const wait = Math.max(
      0,
      this.#lastDiff + this.#interval - performance.now(),
    );
    this.#timer = setTimeout(() => this.#flush(), wait);
  }

  #flush(): void {
    this.#timer = undefined;
    this.#lastDiff = performance.now();
    const diff: PresenceDiff = {};
    const joined: string[] = [];
    const left: string[] = [];
    for (const [user, was] of this.#before) {
      const now = this.#online.has(user);
      if (now === was) {
        // Left and came back within the interval: only its metadata may
        // have changed.
        if (now) this.#metaChanged.add(user);
        continue;
      }
      if (now) {
        joined.push(user);
        if (this.#online.get(user) !== undefined) this.#metaChanged.add(user);
      } else left.push(user);
    }
    this.#before.clear();
    if (joined.length > 0) diff.joined = joined;
    if (left.length > 0) diff.left = left;
    for (const user of this.#metaChanged) {
      if (!this.#online.has(user)) continue;
      (diff.meta ??= {})[user] = this.#online.get(user) ?? null;
    }
    this.#metaChanged.clear();
    if (diff.joined === undefined && diff.left === undefined && !diff.meta) {
      return;
    }
    this.stats.diffs++;
    const data = JSON.stringify({
      sequence: 0,
      type: 3,
      message: diff,
      method: "presence.diff",
    });
    for (const [peer, remove] of this.#listeners) {
      try {
        if (peer.sendNotification(data)) this.stats.frames++;
      } catch {
        // Closed since it listened: its close event removes it too.
        remove();
      }
    }
  }
}
