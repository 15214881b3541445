/**
 * Server metrics and their rendering in the Prometheus text exposition
 * format (version 0.0.4), without dependencies.
 *
 * @module
 */

import type { ClusterStats } from "../cluster/cluster_options.ts";

/** Frame type names by `type` number, as used in metric labels. */
const TYPE_NAMES = [
  "",
  "request",
  "response",
  "notify",
  "cancel",
  "ping",
  "pong",
] as const;

/**
 * The upper bounds, in seconds, of the request latency histogram buckets.
 *
 * @example Usage
 * ```ts
 * import { LATENCY_BUCKETS } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(LATENCY_BUCKETS[0], 0.0005);
 * ```
 */
export const LATENCY_BUCKETS: readonly number[] = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/**
 * The values that only the server knows at the time of rendering: gauges,
 * and frame counters summed over open and closed connections.
 *
 * @example Usage
 * ```ts
 * import type { MetricsSnapshot } from "@duplex/ws/server";
 *
 * const snapshot: MetricsSnapshot = {
 *   connections: 0,
 *   users: 0,
 *   requestsInFlight: 0,
 *   framesIn: [0, 0, 0, 0, 0, 0, 0],
 *   framesOut: [0, 0, 0, 0, 0, 0, 0],
 *   dropped: 0,
 *   malformed: 0,
 *   rateLimited: 0,
 * };
 * ```
 */
export interface MetricsSnapshot {
  /** Open WebSocket connections. */
  connections: number;
  /** Distinct users connected. */
  users: number;
  /** Requests whose handlers are running. */
  requestsInFlight: number;
  /** Frames received, by type (index = type). */
  framesIn: readonly number[];
  /** Frames sent, by type (index = type). */
  framesOut: readonly number[];
  /** Notifications dropped by backpressure. */
  dropped: number;
  /** Malformed frames received. */
  malformed: number;
  /** Frames refused by the rate limit. */
  rateLimited: number;
  /** The cluster's counters, when the server is part of one. */
  cluster?: ClusterStats;
}

/** The cluster counters, as `duplex_cluster_<name>_total`, with their help. */
const CLUSTER_COUNTERS: ReadonlyArray<[keyof ClusterStats, string, string]> = [
  ["published", "published", "Broker messages published."],
  ["publishFailed", "publish_failed", "Broker messages the broker refused."],
  ["received", "received", "Valid broker messages received."],
  ["invalid", "invalid", "Broker messages dropped by a check."],
  ["oversized", "oversized", "Of invalid: over the size cap."],
  ["unauthenticated", "unauthenticated", "Of invalid: no valid signature."],
  ["replayed", "replayed", "Of invalid: replayed or outside the window."],
  [
    "forged",
    "forged",
    "Of invalid: pushes from a user the sender did not announce.",
  ],
  [
    "late",
    "late_requests",
    "Requests from other instances past their deadline.",
  ],
  [
    "outcomeUnknown",
    "outcome_unknown",
    "Requests whose publish was unconfirmed.",
  ],
  ["requestsSent", "requests_sent", "Requests sent to other instances."],
  ["requestsServed", "requests_served", "Requests served for other instances."],
  ["expired", "expired_instances", "Instances dropped for missed heartbeats."],
];

/**
 * The label of a close code: the codes of RFC 6455 (1000–1015), 4000 (ping
 * timeout) and `CLOSE_REPLACED` (4009) as they are; any other code, which a client
 * chooses freely, in one of three buckets, so that clients cannot make the
 * label set grow without bound.
 */
function closeCodeBucket(code: number): string {
  if ((code >= 1000 && code <= 1015) || code === 4000 || code === 4009) {
    return String(code);
  }
  if (code >= 3000 && code <= 3999) return "3xxx";
  if (code >= 4000 && code <= 4999) return "4xxx";
  return "other";
}

/**
 * The server's counters and request latency histogram. The server updates
 * them; {@linkcode ServerMetrics.render} writes them with a
 * {@linkcode MetricsSnapshot} in the Prometheus text format.
 *
 * @example Usage
 * ```ts
 * import { ServerMetrics } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const metrics = new ServerMetrics();
 * metrics.observeRequest(0.002);
 * metrics.countClose(1000);
 * const text = metrics.render({
 *   connections: 1,
 *   users: 1,
 *   requestsInFlight: 0,
 *   framesIn: [0, 1, 0, 0, 0, 0, 0],
 *   framesOut: [0, 0, 1, 0, 0, 0, 0],
 *   dropped: 0,
 *   malformed: 0,
 *   rateLimited: 0,
 * });
 * assert.match(text, /^duplex_connections 1$/m);
 * assert.match(text, /^duplex_request_duration_seconds_count 1$/m);
 * assert.match(text, /^duplex_closes_total\{code="1000"\} 1$/m);
 * ```
 */
export class ServerMetrics {
  /** Connections accepted (upgraded) since the start. */
  connectionsTotal = 0;
  #closes = new Map<string, number>();
  #refused = new Map<number, number>();
  #buckets: number[] = LATENCY_BUCKETS.map(() => 0);
  #count = 0;
  #sum = 0;

  /**
   * Records the duration of one handled request.
   *
   * @param seconds How long the handler took.
   */
  observeRequest(seconds: number): void {
    this.#count++;
    this.#sum += seconds;
    const buckets = this.#buckets;
    for (let i = 0; i < buckets.length; i++) {
      if (seconds <= LATENCY_BUCKETS[i]) {
        buckets[i]++;
        break;
      }
    }
  }

  /**
   * Counts a closed connection by close code.
   *
   * @param code The close code.
   */
  countClose(code: number): void {
    const bucket = closeCodeBucket(code);
    this.#closes.set(bucket, (this.#closes.get(bucket) ?? 0) + 1);
  }

  /**
   * Counts an upgrade request refused with an HTTP status.
   *
   * @param status The status, e.g. 403.
   */
  countRefused(status: number): void {
    this.#refused.set(status, (this.#refused.get(status) ?? 0) + 1);
  }

  /** Requests observed by the latency histogram. */
  get requestsTotal(): number {
    return this.#count;
  }

  /**
   * Renders every metric in the Prometheus text format.
   *
   * @param snapshot The current gauges and frame counters.
   * @returns The exposition text, ending with a newline.
   */
  render(snapshot: MetricsSnapshot): string {
    const lines: string[] = [];
    const metric = (
      name: string,
      type: string,
      help: string,
      samples: Array<[string, number]>,
    ) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      for (const [labels, value] of samples) {
        lines.push(`${name}${labels} ${value}`);
      }
    };
    const byType = (counts: readonly number[]) =>
      TYPE_NAMES.slice(1).map((name, i): [string, number] => [
        `{type="${name}"}`,
        counts[i + 1] ?? 0,
      ]);
    const byCode = (map: Map<number | string, number>, label: string) =>
      [...map].sort((a, b) => String(a[0]).localeCompare(String(b[0]))).map((
        [code, count],
      ): [string, number] => [`{${label}="${code}"}`, count]);

    metric("duplex_connections", "gauge", "Open WebSocket connections.", [[
      "",
      snapshot.connections,
    ]]);
    metric("duplex_users", "gauge", "Distinct users connected.", [[
      "",
      snapshot.users,
    ]]);
    metric(
      "duplex_connections_total",
      "counter",
      "WebSocket connections accepted.",
      [["", this.connectionsTotal]],
    );
    metric(
      "duplex_upgrades_refused_total",
      "counter",
      "Upgrade requests refused, by HTTP status.",
      byCode(this.#refused, "status"),
    );
    metric(
      "duplex_closes_total",
      "counter",
      "Closed connections, by close code.",
      byCode(this.#closes, "code"),
    );
    metric(
      "duplex_frames_received_total",
      "counter",
      "Frames received, by type.",
      byType(snapshot.framesIn),
    );
    metric(
      "duplex_frames_sent_total",
      "counter",
      "Frames sent, by type.",
      byType(snapshot.framesOut),
    );
    metric(
      "duplex_requests_in_flight",
      "gauge",
      "Requests whose handlers are running.",
      [["", snapshot.requestsInFlight]],
    );
    const buckets: Array<[string, number]> = [];
    let cumulative = 0;
    for (let i = 0; i < LATENCY_BUCKETS.length; i++) {
      cumulative += this.#buckets[i];
      buckets.push([`_bucket{le="${LATENCY_BUCKETS[i]}"}`, cumulative]);
    }
    buckets.push(
      [`_bucket{le="+Inf"}`, this.#count],
      ["_sum", this.#sum],
      ["_count", this.#count],
    );
    metric(
      "duplex_request_duration_seconds",
      "histogram",
      "Time spent in request handlers.",
      buckets,
    );
    metric(
      "duplex_notifications_dropped_total",
      "counter",
      "Notifications dropped by backpressure.",
      [["", snapshot.dropped]],
    );
    metric(
      "duplex_malformed_frames_total",
      "counter",
      "Malformed frames received.",
      [["", snapshot.malformed]],
    );
    metric(
      "duplex_rate_limited_total",
      "counter",
      "Frames refused by the rate limit.",
      [["", snapshot.rateLimited]],
    );
    const cluster = snapshot.cluster;
    for (const [key, name, help] of cluster ? CLUSTER_COUNTERS : []) {
      metric(`duplex_cluster_${name}_total`, "counter", help, [[
        "",
        cluster![key],
      ]]);
    }
    return lines.join("\n") + "\n";
  }
}
