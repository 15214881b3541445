/**
 * The receiving side of the broker boundary: {@linkcode Inbox} takes every
 * message of the cluster's channels and lets through only what passed every
 * check, in the order received:
 *
 * 1. this instance's own echo is dropped before it is parsed (its messages
 *    start with `{"v":2,"node":"<its id>",`);
 * 2. a message over `maxEnvelopeSize` bytes is dropped before it is parsed;
 * 3. with a secret, a message without a valid signature is dropped;
 * 4. it must parse as an envelope of this version, from a sender that is not
 *    this instance;
 * 5. with a secret, its `seq` must be within the replay window and above the
 *    last one from the same sender on the same channel;
 * 6. the cluster's handler checks the kind's fields and limits.
 *
 * Every drop is counted in the cluster's stats and logged, at most one line
 * per second (with the number of lines left out).
 *
 * Internal: the `Cluster` owns one.
 *
 * @module
 */

import type { BrokerLogger } from "./pubsub.ts";
import type { ClusterStats } from "./cluster_options.ts";
import {
  CLUSTER_PROTOCOL_VERSION,
  decodeEnvelope,
  type Envelope,
  utf8Length,
} from "./envelope.ts";
import type { EnvelopeSignature } from "./envelope_signature.ts";

/**
 * Acts on one checked envelope.
 *
 * @returns `true` when valid, otherwise why it was dropped.
 */
export type EnvelopeHandler = (
  envelope: Envelope,
  node: string,
  direct: boolean,
) => true | string;

/** What an {@linkcode Inbox} needs. */
export interface InboxOptions {
  /** This instance's id. */
  id: string;
  /** The channel of every instance (messages on any other are direct). */
  allChannel: string;
  /** The largest message accepted, in UTF-8 bytes. */
  maxEnvelopeSize: number;
  /** Checks signatures when the cluster has a secret. */
  signature: EnvelopeSignature | undefined;
  /** How far `seq` may be from this instance's clock, in ms. */
  replayWindow: number;
  /** The cluster's counters. */
  stats: ClusterStats;
  /** Where dropped messages are logged. */
  logger: BrokerLogger | undefined;
  /** Whether the cluster is closed (then everything is ignored). */
  closed: () => boolean;
  /** Acts on valid envelopes. */
  handle: EnvelopeHandler;
  /** Reports a handler that threw. */
  report: (what: string, error: unknown) => void;
}

/** Checks and hands on received messages. */
export class Inbox {
  #options: InboxOptions;
  #ownPrefix: string;
  #tail: Promise<void> = Promise.resolve();
  #last = new Map<string, { seq: number; at: number }>();
  #loggedAt = -Infinity;
  #suppressed = 0;
  #versionLogged = false;

  /**
   * Creates the inbox.
   *
   * @param options Limits, secret, counters and the handler.
   */
  constructor(options: InboxOptions) {
    this.#options = options;
    this.#ownPrefix = `{"v":${CLUSTER_PROTOCOL_VERSION},"node":${
      JSON.stringify(options.id)
    },`;
  }

  /**
   * Takes one message from the broker.
   *
   * @param text The message.
   * @param channel The channel it came on.
   */
  receive(text: string, channel: string): void {
    const options = this.#options;
    if (options.closed()) return;
    if (text.startsWith(this.#ownPrefix)) return; // Our own echo.
    const max = options.maxEnvelopeSize;
    if (
      text.length > max || (text.length * 3 > max && utf8Length(text) > max)
    ) {
      options.stats.oversized++;
      this.drop(
        `over maxEnvelopeSize ${max} bytes (${text.length} characters)`,
      );
      return;
    }
    const signature = options.signature;
    if (signature === undefined) {
      this.#accept(text, channel);
      return;
    }
    // Verification is asynchronous: chain it so that messages are still
    // handled in the order they arrived.
    const verified = signature.verify(channel, text).catch(() => false);
    this.#tail = Promise.all([this.#tail, verified]).then(([, valid]) => {
      if (options.closed()) return;
      if (valid) {
        this.#accept(text, channel);
        return;
      }
      options.stats.unauthenticated++;
      this.drop(`no valid signature on ${channel}`);
    });
  }

  /**
   * Counts and logs one dropped message.
   *
   * @param reason Why it was dropped.
   */
  drop(reason: string): void {
    this.#options.stats.invalid++;
    this.#warn(`dropped message: ${reason}`);
  }

  /**
   * Forgets replay marks older than the replay window.
   */
  prune(): void {
    const oldest = Date.now() - 2 * this.#options.replayWindow;
    for (const [key, mark] of this.#last) {
      if (mark.at < oldest) this.#last.delete(key);
    }
  }

  /**
   * Waits until every message in verification is handled or dropped.
   *
   * @returns Settles then.
   */
  async settled(): Promise<void> {
    await this.#tail;
  }

  #accept(text: string, channel: string): void {
    const options = this.#options;
    const decoded = decodeEnvelope(text, options.signature === undefined);
    if ("invalid" in decoded) {
      if (decoded.invalid !== "version") {
        this.drop(decoded.invalid);
        return;
      }
      options.stats.invalid++;
      if (this.#versionLogged) return;
      this.#versionLogged = true;
      options.logger?.warn(
        `cluster ${options.id}: dropped message of version ${
          JSON.stringify(decoded.version)
        } (this instance speaks ${CLUSTER_PROTOCOL_VERSION}; not logged again)`,
      );
      return;
    }
    const { envelope, node } = decoded;
    if (node === options.id) {
      this.drop(`another sender uses this instance's id on ${channel}`);
      return;
    }
    if (
      options.signature !== undefined && !this.#fresh(envelope, node, channel)
    ) {
      return;
    }
    let result: true | string;
    try {
      result = options.handle(envelope, node, channel !== options.allChannel);
    } catch (error) {
      options.report("cannot handle message", error);
      return;
    }
    if (result === true) options.stats.received++;
    else this.drop(`${result} (${JSON.stringify(envelope.kind)} from ${node})`);
  }

  /** Refuses a signed envelope seen before or outside the window. */
  #fresh(envelope: Envelope, node: string, channel: string): boolean {
    const { seq } = envelope;
    const now = Date.now();
    const window = this.#options.replayWindow;
    if (
      typeof seq !== "number" || !Number.isSafeInteger(seq) ||
      Math.abs(seq / 1000 - now) > window
    ) {
      this.#options.stats.replayed++;
      this.drop(
        `seq ${
          JSON.stringify(seq)
        } from ${node} outside the replay window of ${window} ms`,
      );
      return false;
    }
    const key = `${node}\n${channel}`;
    const last = this.#last.get(key);
    if (last !== undefined && seq <= last.seq) {
      this.#options.stats.replayed++;
      this.drop(`replayed seq ${seq} from ${node} on ${channel}`);
      return false;
    }
    this.#last.set(key, { seq, at: now });
    return true;
  }

  /** Logs at most one line per second, counting the ones left out. */
  #warn(line: string): void {
    const now = performance.now();
    if (now - this.#loggedAt < 1_000) {
      this.#suppressed++;
      return;
    }
    const suppressed = this.#suppressed;
    this.#loggedAt = now;
    this.#suppressed = 0;
    this.#options.logger?.warn(
      `cluster ${this.#options.id}: ${line}${
        suppressed > 0 ? ` (${suppressed} similar lines left out)` : ""
      }`,
    );
  }
}
