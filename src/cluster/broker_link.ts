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
  utf8Length,
} from "./envelope.ts";
import type { EnvelopeSignature } from "./envelope_signature.ts";

/** What a {@linkcode BrokerLink} needs from its cluster. */
export interface BrokerLinkOptions {
  /** This instance's id. */
  id: string;
  /** The channel prefix. */
  prefix: string;
  /** The cluster's counters (`published`, `publishFailed`). */
  stats: ClusterStats;
  /** Signs every envelope when the cluster has a secret. */
  signature: EnvelopeSignature | undefined;
  /** The largest envelope published, in UTF-8 bytes. */
  maxEnvelopeSize: number;
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
  #seq = 0;
  #tail: Promise<void> = Promise.resolve();

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
    if (this.#options.signature === undefined) {
      return JSON.stringify({
        v: CLUSTER_PROTOCOL_VERSION,
        node: this.id,
        ...envelope,
      });
    }
    // Strictly increasing, and about the clock in microseconds, so that it
    // keeps increasing across a restart with the same id.
    this.#seq = Math.max(Date.now() * 1000, this.#seq + 1);
    return JSON.stringify({
      v: CLUSTER_PROTOCOL_VERSION,
      node: this.id,
      seq: this.#seq,
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
   * Publishes (signed when the cluster has a secret); failures are counted,
   * logged once per outage and reported. An envelope over `maxEnvelopeSize`
   * is not published: `onFailure` gets a `RangeError`, or without it the
   * error is reported.
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
    const max = this.#options.maxEnvelopeSize;
    if (text.length * 3 > max && utf8Length(text) > max) {
      const error = new RangeError(
        `Cannot publish envelope: ${
          utf8Length(text)
        } bytes exceed maxEnvelopeSize ${max}`,
      );
      if (onFailure !== undefined) onFailure(error);
      else this.report("message to other instances dropped", error);
      return;
    }
    const signature = this.#options.signature;
    let sent: Promise<void>;
    if (signature === undefined) {
      sent = this.#publish(channel, text);
    } else {
      // Signing is asynchronous: sign at once, publish in order.
      const signed = signature.sign(channel, text);
      const published = Promise.all([this.#tail, signed]).then(
        ([, signedText]) => ({ sent: this.#publish(channel, signedText) }),
      );
      this.#tail = published.then(() => {}, () => {});
      sent = published.then((result) => result.sent);
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

  #publish(channel: string, text: string): Promise<void> {
    try {
      return Promise.resolve(this.#pubsub.publish(channel, text));
    } catch (error) {
      return Promise.reject(error);
    }
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
