/**
 * The broker seam of scale-out: a minimal publish/subscribe transport that
 * the {@linkcode Cluster} runs over. Three implementations ship:
 * `MemoryPubSub` (in-process, the default), `RedisPubSub` (Redis pub/sub) and
 * `BroadcastChannelPubSub` (the web `BroadcastChannel`, which spans instances
 * on Deno Deploy). Anything with the same shape (NATS, Postgres `LISTEN`)
 * can be added without touching the cluster.
 *
 * Delivery is at-most-once: a message published while the broker is down, or
 * while a subscriber is disconnected from it, is lost. Messages from one
 * publisher arrive in the order they were published.
 *
 * @module
 */

import { TypedEventTarget } from "../peer/typed_event_target.ts";
import { DuplexError } from "../wire/errors.ts";

/**
 * Receives the messages of one channel.
 *
 * @example Usage
 * ```ts
 * import type { PubSubListener } from "@duplex/ws/server";
 *
 * const received: string[] = [];
 * const listener: PubSubListener = (data) => received.push(data);
 * ```
 */
export type PubSubListener = (data: string) => void;

/**
 * Removes a subscription. Idempotent; it never rejects.
 *
 * @example Usage
 * ```ts
 * import type { Unsubscribe } from "@duplex/ws/server";
 *
 * const unsubscribe: Unsubscribe = () => Promise.resolve();
 * await unsubscribe();
 * ```
 */
export type Unsubscribe = () => Promise<void>;

/**
 * Where broker code writes its log lines. It has the shape of the server's
 * logger, so one logger (or `console`) serves both. Silent when absent.
 *
 * @example Usage
 * ```ts
 * import type { BrokerLogger } from "@duplex/ws/server";
 *
 * const lines: string[] = [];
 * const logger: BrokerLogger = {
 *   info: (message) => lines.push(message),
 *   warn: (message) => lines.push(message),
 *   error: (message) => lines.push(message),
 * };
 * ```
 */
export interface BrokerLogger {
  /** Connected, reconnected, instances joining and leaving. */
  info(message: string): void;
  /** Connection lost, reconnect attempts, dropped or invalid messages. */
  warn(message: string): void;
  /** Failures; `error` is the underlying error. */
  error(message: string, error?: unknown): void;
}

/**
 * The events of a {@linkcode PubSub}:
 * - `up`: the transport (re)connected and every subscription is active again;
 * - `down`: the transport lost its broker; messages are not delivered until
 *   `up` (at-most-once);
 * - `error`: a listener threw, or a background operation failed.
 *
 * @example Usage
 * ```ts
 * import type { PubSubEventMap } from "@duplex/ws/server";
 *
 * const onError = (event: PubSubEventMap["error"]) => console.log(event.error);
 * ```
 */
export interface PubSubEventMap {
  /** The broker is reachable and every subscription is active. */
  up: Event;
  /** The broker became unreachable. */
  down: Event;
  /** A listener threw or a background operation failed. */
  error: ErrorEvent;
}

/**
 * A publish/subscribe transport between server instances. Channels are plain
 * strings, messages are strings. Implementations never throw from a listener
 * into the broker: a listener that throws is reported with an `error` event.
 *
 * @example Publish and subscribe in memory
 * ```ts
 * import { MemoryPubSub } from "@duplex/ws/server";
 * import type { PubSub } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * await using pubsub: PubSub = new MemoryPubSub();
 * const received = Promise.withResolvers<string>();
 * await pubsub.subscribe("news", received.resolve);
 * await pubsub.publish("news", "hello");
 * assert.equal(await received.promise, "hello");
 * ```
 */
export interface PubSub extends EventTarget, AsyncDisposable {
  /** A short name for logs, e.g. `"redis"`. */
  readonly name: string;
  /** Whether the broker is reachable now (`up` seen, no `down` since). */
  readonly connected: boolean;
  /**
   * Publishes one message to every subscriber of `channel` (possibly this
   * instance's own subscribers too).
   *
   * @param channel The channel.
   * @param data The message.
   * @returns Settles once the broker took the message.
   * @throws {BrokerUnavailableError} When the broker is unreachable or the
   * transport is closed; the message was not sent.
   * @throws {BrokerOutcomeUnknownError} When the message was handed to the
   * broker but no answer came (timeout, connection lost): it may still be
   * delivered.
   */
  publish(channel: string, data: string): Promise<void>;
  /**
   * Calls `listener` with each message published to `channel` from now on.
   * While the broker is down the subscription is kept and becomes active
   * again on reconnect.
   *
   * @param channel The channel.
   * @param listener The listener.
   * @returns The function that removes this subscription.
   * @throws {BrokerUnavailableError} When the transport is closed.
   */
  subscribe(channel: string, listener: PubSubListener): Promise<Unsubscribe>;
  /**
   * Closes the transport and its connections. Idempotent.
   *
   * @returns Settles once everything it opened is closed.
   */
  close(): Promise<void>;
}

/**
 * The broker could not take a message: it is unreachable, too slow, or the
 * transport was closed. The message was dropped (delivery is at-most-once).
 *
 * @example Usage
 * ```ts
 * import { BrokerUnavailableError } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const error = new BrokerUnavailableError("redis", "not connected");
 * assert.equal(error.code, "BROKER_UNAVAILABLE");
 * assert.equal(error.message, "Cannot publish to redis: not connected");
 * ```
 */
export class BrokerUnavailableError extends DuplexError {
  /** The transport's name, e.g. `"redis"`. */
  readonly broker: string;

  /**
   * Creates the error.
   *
   * @param broker The transport's name.
   * @param reason Why the message could not be published.
   * @param options The standard error options (`cause`).
   */
  constructor(broker: string, reason: string, options?: ErrorOptions) {
    super(
      "BROKER_UNAVAILABLE",
      `Cannot publish to ${broker}: ${reason}`,
      options,
    );
    this.name = "BrokerUnavailableError";
    this.broker = broker;
  }
}

/**
 * The broker was handed a message but did not confirm it (no answer within
 * the publish timeout, or the connection broke off): the message may or may
 * not be delivered, now or later. A cross-instance request that fails this
 * way rejects with this error: its handler may still run. Distinct from
 * {@linkcode BrokerUnavailableError}, which means nothing was sent.
 *
 * @example Usage
 * ```ts
 * import { BrokerOutcomeUnknownError } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const error = new BrokerOutcomeUnknownError("redis", "no answer within 5000 ms");
 * assert.equal(error.code, "OUTCOME_UNKNOWN");
 * assert.equal(
 *   error.message,
 *   "Cannot confirm publish to redis: no answer within 5000 ms; the message may still be delivered",
 * );
 * ```
 */
export class BrokerOutcomeUnknownError extends DuplexError {
  /** The transport's name, e.g. `"redis"`. */
  readonly broker: string;

  /**
   * Creates the error.
   *
   * @param broker The transport's name.
   * @param reason Why the publish is unconfirmed.
   * @param options The standard error options (`cause`).
   */
  constructor(broker: string, reason: string, options?: ErrorOptions) {
    super(
      "OUTCOME_UNKNOWN",
      `Cannot confirm publish to ${broker}: ${reason}; the message may still be delivered`,
      options,
    );
    this.name = "BrokerOutcomeUnknownError";
    this.broker = broker;
  }
}

/**
 * The base of the shipped transports: an `EventTarget` with typed listeners
 * for {@linkcode PubSubEventMap}.
 *
 * @example Usage
 * ```ts
 * import { PubSubTarget } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const target = new PubSubTarget();
 * let ups = 0;
 * target.addEventListener("up", () => ups++);
 * target.dispatchEvent(new Event("up"));
 * assert.equal(ups, 1);
 * ```
 */
export class PubSubTarget extends TypedEventTarget<PubSubEventMap> {
}

/**
 * Calls every listener of a channel with one message; a listener that throws
 * is reported as an `error` event on `target` and does not stop the others.
 * Internal to the transports.
 */
export function _dispatch(
  target: EventTarget,
  listeners: Iterable<PubSubListener>,
  channel: string,
  data: string,
): void {
  for (const listener of listeners) {
    try {
      listener(data);
    } catch (error) {
      target.dispatchEvent(
        new ErrorEvent("error", {
          error,
          message: `Cannot deliver message of channel ${channel}: ${
            error instanceof Error ? error.message : String(error)
          }`,
        }),
      );
    }
  }
}
