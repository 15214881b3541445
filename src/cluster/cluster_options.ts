/**
 * The option, event and statistics types of a `Cluster`.
 *
 * @module
 */

import type { BrokerLogger } from "./pubsub.ts";
import type { LocalNode } from "./local_node.ts";
import type { PresenceDetail } from "./presence.ts";
import type { RoomDetail } from "./rooms.ts";

/**
 * The events of a {@linkcode Cluster}.
 *
 * @example Usage
 * ```ts
 * import type { ClusterEventMap } from "@duplex/ws/server";
 *
 * const onJoin = (event: ClusterEventMap["join"]) => console.log(event.detail.user);
 * ```
 */
export interface ClusterEventMap {
  /** A user came online somewhere in the cluster (first instance). */
  join: CustomEvent<PresenceDetail>;
  /** A user went offline everywhere in the cluster (last instance). */
  leave: CustomEvent<PresenceDetail>;
  /** A user's presence metadata changed (`detail.meta`, absent: removed). */
  update: CustomEvent<PresenceDetail>;
  /** A user entered or left a room, cluster-wide. */
  room: CustomEvent<RoomDetail>;
  /** The broker refused a message, or a node function threw. */
  error: ErrorEvent;
}

/**
 * Options of a {@linkcode Cluster}. Every duration is in milliseconds.
 *
 * @example Usage
 * ```ts
 * import type { ClusterOptions } from "@duplex/ws/server";
 *
 * const options: ClusterOptions = { heartbeatInterval: 2_000, presenceTtl: 6_000 };
 * ```
 */
export interface ClusterOptions {
  /**
   * This instance's id, unique in the cluster.
   *
   * @default {crypto.randomUUID()}
   */
  id?: string;
  /**
   * Prepended to every channel name, to keep apps on one broker apart.
   *
   * @default {"duplex:"}
   */
  prefix?: string;
  /**
   * The local server; can also be set later with `attach()`.
   *
   * @default {undefined}
   */
  node?: LocalNode;
  /**
   * How often this instance publishes its users (and their rooms and
   * metadata).
   *
   * @default {2000}
   */
  heartbeatInterval?: number;
  /**
   * How long another instance's users stay listed without a heartbeat.
   * Must exceed `heartbeatInterval`. The users of an instance that died
   * are gone everywhere within `presenceTtl + heartbeatInterval`.
   *
   * @default {6000}
   */
  presenceTtl?: number;
  /**
   * Default timeout of a request to a user; 0 disables it.
   *
   * @default {30000}
   */
  timeout?: number;
  /**
   * The most remote requests pending at once.
   *
   * @default {10000}
   */
  maxPending?: number;
  /**
   * The most remote requests pending at once for one asker (the request's
   * `from`), so that one client cannot take the whole `maxPending`. Requests
   * without `from` (the application's own) count only against `maxPending`.
   *
   * @default {100}
   */
  maxPendingPerAsker?: number;
  /**
   * A secret shared by every instance: when set, every envelope is signed
   * (HMAC-SHA-256), and messages without a valid signature, replayed, or
   * outside `replayWindow` are dropped. At least 16 characters; use a random
   * one (e.g. `openssl rand -base64 32`). `server.ts` reads it from
   * `DUPLEX_CLUSTER_SECRET`.
   *
   * @default {undefined}
   */
  secret?: string;
  /**
   * With a `secret`: how far an envelope's `seq` (its sender's clock) may be
   * from this instance's clock. It bounds clock skew and how long a captured
   * message could be replayed.
   *
   * @default {30000}
   */
  replayWindow?: number;
  /**
   * The largest message accepted from the broker, in UTF-8 bytes; larger
   * ones are dropped before they are parsed, and this instance never
   * publishes one (a push is then reported as an `error`, a request rejects
   * with `RangeError`).
   *
   * @default {4194304}
   */
  maxEnvelopeSize?: number;
  /**
   * The most users one other instance may announce; a heartbeat or join
   * beyond it is dropped (counted as invalid).
   *
   * @default {10000}
   */
  maxUsersPerInstance?: number;
  /**
   * The most room memberships (user in room) one other instance may
   * announce; a heartbeat or room change beyond it is dropped (counted as
   * invalid).
   *
   * @default {100000}
   */
  maxMembershipsPerInstance?: number;
  /**
   * The most other instances known at once; messages of further instances
   * are dropped until one leaves or expires.
   *
   * @default {256}
   */
  maxInstances?: number;
  /**
   * The longest TTL another instance may ask for in its heartbeat; longer
   * ones are cut to it. At least `presenceTtl`.
   *
   * @default {60000, or presenceTtl when longer}
   */
  maxPresenceTtl?: number;
  /**
   * Receives one line per instance joining or leaving, broker trouble and
   * invalid messages. Silent when absent.
   *
   * @default {undefined}
   */
  logger?: BrokerLogger;
}

/**
 * Counters of a {@linkcode Cluster}, for metrics.
 *
 * @example Usage
 * ```ts
 * import type { ClusterStats } from "@duplex/ws/server";
 *
 * const failureRate = (stats: ClusterStats) => stats.publishFailed / Math.max(1, stats.published);
 * ```
 */
export interface ClusterStats {
  /** Messages the broker took. */
  published: number;
  /** Messages the broker refused (dropped: at-most-once). */
  publishFailed: number;
  /** Valid messages received from other instances. */
  received: number;
  /** Requests sent to other instances. */
  requestsSent: number;
  /** Requests from other instances answered here. */
  requestsServed: number;
  /** Instances dropped because their heartbeats stopped. */
  expired: number;
  /**
   * Messages received and dropped by a check (any reason: malformed, other
   * version, over a limit, and the four reasons below).
   */
  invalid: number;
  /** Of `invalid`: over `maxEnvelopeSize`. */
  oversized: number;
  /** Of `invalid`: without a valid signature (with a `secret`). */
  unauthenticated: number;
  /** Of `invalid`: seen before, or outside the replay window. */
  replayed: number;
  /** Of `invalid`: a push `from` a user its sender did not announce. */
  forged: number;
  /** Requests from other instances dropped because their deadline passed. */
  late: number;
  /**
   * Requests whose publish timed out or broke off: they rejected with
   * `BrokerOutcomeUnknownError` (they may still run).
   */
  outcomeUnknown: number;
}

/**
 * Counters at zero. Internal.
 *
 * @returns A fresh {@linkcode ClusterStats}.
 */
export function emptyClusterStats(): ClusterStats {
  return {
    published: 0,
    publishFailed: 0,
    received: 0,
    invalid: 0,
    requestsSent: 0,
    requestsServed: 0,
    expired: 0,
    oversized: 0,
    unauthenticated: 0,
    replayed: 0,
    forged: 0,
    late: 0,
    outcomeUnknown: 0,
  };
}

/** Every option of a cluster with its default applied. Internal. */
export type ResolvedClusterOptions =
  & Required<
    Omit<ClusterOptions, "node" | "logger" | "secret">
  >
  & Pick<ClusterOptions, "node" | "logger" | "secret">;

/**
 * Applies the defaults of {@linkcode ClusterOptions} and checks the values.
 * Internal.
 *
 * @param options The options given.
 * @returns Every option.
 * @throws {RangeError} When a value is out of range.
 */
export function resolveClusterOptions(
  options: ClusterOptions,
): ResolvedClusterOptions {
  const {
    id = crypto.randomUUID(),
    prefix = "duplex:",
    heartbeatInterval = 2_000,
    presenceTtl = 6_000,
    timeout = 30_000,
    maxPending = 10_000,
    maxPendingPerAsker = 100,
    replayWindow = 30_000,
    maxEnvelopeSize = 4 * 1024 * 1024,
    maxUsersPerInstance = 10_000,
    maxMembershipsPerInstance = 100_000,
    maxInstances = 256,
  } = options;
  const maxPresenceTtl = options.maxPresenceTtl ??
    Math.max(60_000, presenceTtl);
  if (id === "") {
    throw new RangeError("Cannot create cluster: the id is empty");
  }
  if (!(heartbeatInterval > 0 && heartbeatInterval !== Infinity)) {
    throw new RangeError(
      `Cannot create cluster: heartbeatInterval must be a positive number, got ${heartbeatInterval}`,
    );
  }
  if (!(presenceTtl > heartbeatInterval)) {
    throw new RangeError(
      `Cannot create cluster: presenceTtl ${presenceTtl} must exceed heartbeatInterval ${heartbeatInterval}`,
    );
  }
  if (!(maxPresenceTtl >= presenceTtl)) {
    throw new RangeError(
      `Cannot create cluster: maxPresenceTtl ${maxPresenceTtl} is below presenceTtl ${presenceTtl}`,
    );
  }
  for (
    const [name, value] of Object.entries({
      maxPendingPerAsker,
      replayWindow,
      maxEnvelopeSize,
      maxUsersPerInstance,
      maxMembershipsPerInstance,
      maxInstances,
    })
  ) {
    if (!(value > 0)) {
      throw new RangeError(
        `Cannot create cluster: ${name} must be positive, got ${value}`,
      );
    }
  }
  return {
    ...options,
    id,
    prefix,
    heartbeatInterval,
    presenceTtl,
    timeout,
    maxPending,
    maxPendingPerAsker,
    replayWindow,
    maxEnvelopeSize,
    maxUsersPerInstance,
    maxMembershipsPerInstance,
    maxInstances,
    maxPresenceTtl,
  };
}
