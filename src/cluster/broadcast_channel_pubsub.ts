/**
 * A transport over the web `BroadcastChannel`. On Deno Deploy (Classic) a
 * `BroadcastChannel` connects every isolate of the app, in every region; in
 * the Deno CLI it connects only the main thread and the Workers of one
 * process (there is no cross-process `BroadcastChannel`, denoland/deno#10750).
 * No delivery or ordering guarantee is documented by the platform: treat it
 * as best effort and prefer Redis for anything that matters.
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
 * Options of a {@linkcode BroadcastChannelPubSub}.
 *
 * @example Usage
 * ```ts
 * import type { BroadcastChannelPubSubOptions } from "@duplex/ws/server";
 *
 * const options: BroadcastChannelPubSubOptions = { prefix: "my-app:" };
 * ```
 */
export interface BroadcastChannelPubSubOptions {
  /**
   * Prepended to every channel name, to keep apps that share a deployment
   * apart.
   *
   * @default {""}
   */
  prefix?: string;
}

/** The `BroadcastChannel` of one channel name and its listeners here. */
class Channel {
  readonly listeners = new Set<PubSubListener>();
  readonly port: BroadcastChannel;
  constructor(name: string, owner: BroadcastChannelPubSub, channel: string) {
    this.port = new BroadcastChannel(name);
    this.port.onmessage = (event: MessageEvent) => {
      const data: unknown = event.data;
      if (typeof data !== "string" || this.listeners.size === 0) return;
      _dispatch(owner, [...this.listeners], channel, data);
    };
    this.port.onmessageerror = () => {
      owner.dispatchEvent(
        new ErrorEvent("error", {
          message: `Cannot read message of channel ${channel}: not cloneable`,
        }),
      );
    };
  }
}

/**
 * A {@linkcode PubSub} over `BroadcastChannel`: one channel object per
 * channel name, opened on first use and closed by `close()`. A message
 * reaches every other `BroadcastChannel` of the same name (other Workers,
 * other Deploy isolates, other instances in this thread), never the instance
 * that posted it. It is always connected; `publish` rejects only after
 * `close()`. Messages are strings (structured clone).
 *
 * @example Two instances in one thread
 * ```ts
 * import { BroadcastChannelPubSub } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * await using a = new BroadcastChannelPubSub({ prefix: "doc-example:" });
 * await using b = new BroadcastChannelPubSub({ prefix: "doc-example:" });
 * const received = Promise.withResolvers<string>();
 * await b.subscribe("news", received.resolve);
 * await a.publish("news", "hello");
 * assert.equal(await received.promise, "hello");
 * ```
 */
export class BroadcastChannelPubSub extends PubSubTarget implements PubSub {
  /** Always `"broadcast-channel"`. */
  readonly name: string = "broadcast-channel";
  #prefix: string;
  #channels = new Map<string, Channel>();
  #closed = false;

  /**
   * Creates the transport; channels open on first use.
   *
   * @param options The channel name prefix.
   * @throws {TypeError} When the runtime has no `BroadcastChannel`.
   */
  constructor(options: BroadcastChannelPubSubOptions = {}) {
    super();
    if (typeof BroadcastChannel !== "function") {
      throw new TypeError(
        "Cannot create BroadcastChannelPubSub: this runtime has no BroadcastChannel",
      );
    }
    this.#prefix = options.prefix ?? "";
  }

  /** `true` until `close()`. */
  get connected(): boolean {
    return !this.#closed;
  }

  /**
   * Posts one message to every other `BroadcastChannel` of this channel.
   *
   * @param channel The channel.
   * @param data The message.
   * @returns Settles at once.
   * @throws {BrokerUnavailableError} After `close()`, or when posting fails.
   */
  publish(channel: string, data: string): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new BrokerUnavailableError(this.name, "closed"));
    }
    try {
      this.#open(channel).port.postMessage(data);
    } catch (error) {
      return Promise.reject(
        new BrokerUnavailableError(this.name, String(error), { cause: error }),
      );
    }
    return Promise.resolve();
  }

  /**
   * Calls `listener` with each message posted to `channel` from now on by
   * other channel objects.
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
    const open = this.#open(channel);
    // A wrapper, so that the same function subscribed twice is two
    // subscriptions, as in the other transports.
    const wrapper: PubSubListener = (data) => listener(data);
    open.listeners.add(wrapper);
    return Promise.resolve(() => {
      open.listeners.delete(wrapper);
      return Promise.resolve();
    });
  }

  /**
   * Closes every channel object. Idempotent.
   *
   * @returns Settles at once.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const open of this.#channels.values()) open.port.close();
    this.#channels.clear();
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

  #open(channel: string): Channel {
    let open = this.#channels.get(channel);
    if (open === undefined) {
      open = new Channel(this.#prefix + channel, this, channel);
      this.#channels.set(channel, open);
    }
    return open;
  }
}
