/**
 * The option, event and statistics types of a `Cluster`.
 *
 * @module
 */

import type { BrokerLogger } from "./pubsub.ts";
import type { LocalNode } from "./local_node.ts";
import type { PresenceDetail } from "./presence.ts";

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
   * How often this instance publishes its users.
   *
   * @default {5000}
   */
  heartbeatInterval?: number;
  /**
   * How long another instance's users stay listed without a heartbeat.
   * Must exceed `heartbeatInterval`.
   *
   * @default {15000}
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
  /** Messages that were not valid envelopes, or of another version. */
  invalid: number;
  /** Requests sent to other instances. */
  requestsSent: number;
  /** Requests from other instances answered here. */
  requestsServed: number;
  /** Instances dropped because their heartbeats stopped. */
  expired: number;
}
