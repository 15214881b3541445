/**
 * The cluster's side of the broker: {@linkcode BrokerLink} names the
 * channels, encodes envelopes, publishes them, and counts, logs (once per
 * outage) and reports the failures. The cluster's parts (presence, requests,
 * pushes) send only through it.
 *
 * Internal: the `Cluster` owns one.
 *
 * @module
 */

import type { BrokerLogger, PubSub } from "./pubsub.ts";
import type { ClusterStats } from "./cluster_options.ts";
import {
  CLUSTER_PROTOCOL_VERSION,
  describe,
  type Envelope,
} from "./envelope.ts";

/** What a {@linkcode BrokerLink} needs from its cluster. */
export interface BrokerLinkOptions {
  /** This instance's id. */
  id: string;
  /** The channel prefix. */
  prefix: string;
  /** The cluster's counters (`published`, `publishFailed`). */
  stats: ClusterStats;
  /** Where log lines go. */
  logger: BrokerLogger | undefined;
  /** Whether the cluster is started and not closed. */
  live: () => boolean;
  /** Whether the cluster is closed. */
  closed: () => boolean;
  /** Dispatches an `error` event on the cluster. */
  onError: (event: ErrorEvent) => void;
}

/** Sends the envelopes of one instance. */
export class BrokerLink {
  /** This instance's id. */
  readonly id: string;
  /** Where log lines go. */
  readonly logger: BrokerLogger | undefined;
  /** The channel of every instance. */
  readonly allChannel: string;
  /** This instance's own channel. */
  readonly ownChannel: string;
  #pubsub: PubSub;
  #prefix: string;
  #options: BrokerLinkOptions;
  #publishing = new Set<Promise<void>>();
  #failing = false;

  /**
   * Creates the link; it sends nothing by itself.
   *
   * @param pubsub The transport.
   * @param options Id, prefix, counters, logger and the cluster's state.
   */
  constructor(pubsub: PubSub, options: BrokerLinkOptions) {
    this.#pubsub = pubsub;
    this.#options = options;
    this.id = options.id;
    this.logger = options.logger;
    this.#prefix = options.prefix;
    this.allChannel = `${options.prefix}all`;
    this.ownChannel = this.channelOf(options.id);
  }

  /** Whether the cluster is started and not closed. */
  live(): boolean {
    return this.#options.live();
  }

  /** Whether the cluster is closed. */
  closed(): boolean {
    return this.#options.closed();
  }

  /**
   * The channel of one instance.
   *
   * @param instance The instance's id.
   * @returns `<prefix>node:<id>`.
   */
  channelOf(instance: string): string {
    return `${this.#prefix}node:${instance}`;
  }

  /**
   * Adds `v` and `node`, and encodes.
   *
   * @param envelope The envelope.
   * @returns The message.
   * @throws {TypeError} What `JSON.stringify` throws (a BigInt, a cycle).
   */
  encode(envelope: Envelope): string {
    return JSON.stringify({
      v: CLUSTER_PROTOCOL_VERSION,
      node: this.id,
      ...envelope,
    });
  }

  /**
   * Encodes and publishes an envelope to every instance.
   *
   * @param envelope The envelope.
   */
  sendAll(envelope: Envelope): void {
    this.send(this.allChannel, this.encode(envelope));
  }

  /**
   * Publishes; failures are counted, logged once per outage and reported.
   *
   * @param channel The channel.
   * @param text The encoded envelope.
   * @param onFailure Called with the error when the broker refused it.
   */
  send(
    channel: string,
    text: string,
    onFailure?: (error: Error) => void,
  ): void {
    const stats = this.#options.stats;
    let sent: Promise<void>;
    try {
      sent = Promise.resolve(this.#pubsub.publish(channel, text));
    } catch (error) {
      sent = Promise.reject(error);
    }
    const settled = sent.then(
      () => {
        stats.published++;
        if (this.#failing) {
          this.#failing = false;
          this.logger?.info(`cluster ${this.id} publishes again`);
        }
      },
      (error: unknown) => {
        stats.publishFailed++;
        const reason = error instanceof Error
          ? error
          : new Error(String(error));
        onFailure?.(reason);
        if (this.#failing) return;
        this.#failing = true;
        const message =
          `cluster ${this.id} cannot publish to ${this.#pubsub.name}: ${
            describe(error)
          }; messages to other instances are dropped until it is back (further failures are only counted)`;
        this.logger?.warn(message);
        this.#options.onError(new ErrorEvent("error", { error, message }));
      },
    );
    this.#publishing.add(settled);
    settled.then(() => this.#publishing.delete(settled));
  }

  /**
   * Logs a failure and reports it as an `error` event.
   *
   * @param what What failed.
   * @param error The error.
   */
  report(what: string, error: unknown): void {
    const message = `cluster ${this.id}: ${what}: ${describe(error)}`;
    this.logger?.error(message, error);
    this.#options.onError(new ErrorEvent("error", { error, message }));
  }

  /**
   * Waits for every publish in flight.
   *
   * @returns Settles once none is in flight.
   */
  async settled(): Promise<void> {
    await Promise.all(this.#publishing);
  }
}
