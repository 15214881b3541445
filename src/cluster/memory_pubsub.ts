/**
 * The in-process transport: the default, with no setup. Several
 * {@linkcode MemoryPubSub} instances that share one {@linkcode MemoryHub}
 * behave like server instances on one broker, which is how the cluster tests
 * run several instances in one process.
 *
 * @module
 */

import {
  _dispatch,
  BrokerUnavailableError,
  type PubSub,
  type PubSubListener,
  PubSubTarget,
  type Unsubscribe,
} from "./pubsub.ts";

/**
 * The shared "broker" of {@linkcode MemoryPubSub} instances: channel
 * subscriptions of every instance attached to it.
 *
 * @example Two instances on one hub
 * ```ts
 * import { MemoryHub, MemoryPubSub } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const hub = new MemoryHub();
 * await using a = new MemoryPubSub({ hub });
 * await using b = new MemoryPubSub({ hub });
 * const received = Promise.withResolvers<string>();
 * await b.subscribe("news", received.resolve);
 * await a.publish("news", "hello");
 * assert.equal(await received.promise, "hello");
 * ```
 */
export class MemoryHub {
  /** Creates an empty hub. */
  constructor() {
    HUBS.set(this, new Map());
  }

  /** The number of channels with at least one subscriber. */
  get channels(): number {
    return channelsOf(this).size;
  }
}

/** The subscriptions of each hub, kept out of its public surface. */
const HUBS = new WeakMap<MemoryHub, Map<string, Set<Subscription>>>();

function channelsOf(hub: MemoryHub): Map<string, Set<Subscription>> {
  return HUBS.get(hub)!;
}

function addSubscription(hub: MemoryHub, subscription: Subscription): void {
  const channels = channelsOf(hub);
  let set = channels.get(subscription.channel);
  if (set === undefined) channels.set(subscription.channel, set = new Set());
  set.add(subscription);
}

function removeSubscription(hub: MemoryHub, subscription: Subscription): void {
  const channels = channelsOf(hub);
  const set = channels.get(subscription.channel);
  if (set === undefined) return;
  set.delete(subscription);
  if (set.size === 0) channels.delete(subscription.channel);
}

/** One listener of one channel of one instance. */
class Subscription {
  constructor(
    readonly owner: MemoryPubSub,
    readonly channel: string,
    readonly listener: PubSubListener,
  ) {}
}

/**
 * Options of a {@linkcode MemoryPubSub}.
 *
 * @example Usage
 * ```ts
 * import { MemoryHub, type MemoryPubSubOptions } from "@duplex/ws/server";
 *
 * const options: MemoryPubSubOptions = { hub: new MemoryHub() };
 * ```
 */
export interface MemoryPubSubOptions {
  /**
   * The hub shared with the other instances of this process.
   *
   * @default {a new hub of its own}
   */
  hub?: MemoryHub;
}

/**
 * The in-process {@linkcode PubSub}. Messages are delivered asynchronously
 * (in a microtask), in publish order, to every subscriber attached to the
 * same hub at the time of publishing, this instance's own included. It is
 * always connected; `publish` rejects only after `close()`.
 *
 * @example Publish and subscribe
 * ```ts
 * import { MemoryPubSub } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * await using pubsub = new MemoryPubSub();
 * const received = Promise.withResolvers<string>();
 * const unsubscribe = await pubsub.subscribe("news", received.resolve);
 * await pubsub.publish("news", "hello");
 * assert.equal(await received.promise, "hello");
 * await unsubscribe();
 * ```
 */
export class MemoryPubSub extends PubSubTarget implements PubSub {
  /** Always `"memory"`. */
  readonly name: string = "memory";
  #hub: MemoryHub;
  #subscriptions = new Set<Subscription>();
  #closed = false;

  /**
   * Creates an instance attached to `options.hub`.
   *
   * @param options The hub.
   */
  constructor(options: MemoryPubSubOptions = {}) {
    super();
    this.#hub = options.hub ?? new MemoryHub();
  }

  /** `true` until `close()`. */
  get connected(): boolean {
    return !this.#closed;
  }

  /**
   * Publishes one message to every subscriber of `channel` on the hub.
   *
   * @param channel The channel.
   * @param data The message.
   * @returns Settles at once.
   * @throws {BrokerUnavailableError} After `close()`.
   */
  publish(channel: string, data: string): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new BrokerUnavailableError(this.name, "closed"));
    }
    const set = channelsOf(this.#hub).get(channel);
    const subscriptions = set === undefined ? [] : [...set];
    if (subscriptions.length > 0) {
      queueMicrotask(() => {
        for (const subscription of subscriptions) {
          const owner = subscription.owner;
          if (owner.#subscriptions.has(subscription)) {
            _dispatch(owner, [subscription.listener], channel, data);
          }
        }
      });
    }
    return Promise.resolve();
  }

  /**
   * Calls `listener` with each message published to `channel` from now on.
   *
   * @param channel The channel.
   * @param listener The listener.
   * @returns The function that removes this subscription.
   * @throws {BrokerUnavailableError} After `close()`.
   */
  subscribe(channel: string, listener: PubSubListener): Promise<Unsubscribe> {
    if (this.#closed) {
      return Promise.reject(new BrokerUnavailableError(this.name, "closed"));
    }
    const subscription = new Subscription(this, channel, listener);
    this.#subscriptions.add(subscription);
    addSubscription(this.#hub, subscription);
    return Promise.resolve(() => {
      this.#subscriptions.delete(subscription);
      removeSubscription(this.#hub, subscription);
      return Promise.resolve();
    });
  }

  /**
   * Removes every subscription of this instance. Idempotent.
   *
   * @returns Settles at once.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const subscription of this.#subscriptions) {
      removeSubscription(this.#hub, subscription);
    }
    this.#subscriptions.clear();
    this.dispatchEvent(new Event("down"));
    return Promise.resolve();
  }

  /**
   * Same as `close()`, for `await using`.
   *
   * @returns Settles at once.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
