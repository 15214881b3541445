/**
 * A transport over Redis pub/sub, with the official Node client (`npm:redis`,
 * loaded on first use, so that apps without Redis never download it).
 *
 * It holds two connections, because a connection in subscribe mode cannot
 * publish. Either may drop at any time: the transport logs it, dispatches
 * `down`, and reconnects with exponential backoff and jitter; once both are
 * back it resubscribes every channel and dispatches `up`. It never throws from
 * a background task and never leaves a rejection unhandled. While Redis is
 * down, `publish` rejects at once with {@linkcode BrokerUnavailableError}
 * (the message is dropped: delivery is at-most-once) and messages published
 * by other instances in the meantime are not received.
 *
 * @module
 */

import {
  _dispatch,
  type BrokerLogger,
  BrokerOutcomeUnknownError,
  BrokerUnavailableError,
  type PubSub,
  type PubSubListener,
  PubSubTarget,
  type Unsubscribe,
} from "../cluster/pubsub.ts";

import { loadRedis, type RedisClient } from "./_load_redis.ts";

/**
 * Options of a {@linkcode RedisPubSub}. Every delay is in milliseconds.
 *
 * @example Usage
 * ```ts
 * import type { RedisPubSubOptions } from "@duplex/ws/redis";
 *
 * const options: RedisPubSubOptions = {
 *   url: "redis://127.0.0.1:6379",
 *   logger: console,
 *   maxReconnectDelay: 2_000,
 * };
 * ```
 */
export interface RedisPubSubOptions {
  /**
   * The Redis URL: `redis://[[user]:password@]host[:port][/db]`, or
   * `rediss://` for TLS.
   *
   * @default {"redis://127.0.0.1:6379"}
   */
  url?: string;
  /**
   * Receives one line per connect, loss and reconnect attempt. Silent when
   * absent.
   *
   * @default {undefined}
   */
  logger?: BrokerLogger;
  /**
   * The first reconnect delay; it doubles on each failed attempt, with
   * jitter (a random half of it), up to `maxReconnectDelay`.
   *
   * @default {100}
   */
  reconnectDelay?: number;
  /**
   * The longest reconnect delay.
   *
   * @default {5000}
   */
  maxReconnectDelay?: number;
  /**
   * How long a connection must stay up before the delay starts over from
   * `reconnectDelay` when it drops (so a flapping Redis is not hammered).
   *
   * @default {5000}
   */
  minUptime?: number;
  /**
   * How long one connection attempt may take.
   *
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * How long `publish` waits for Redis to take a message before it rejects
   * with {@linkcode BrokerOutcomeUnknownError} (a half-open connection).
   *
   * @default {5000}
   */
  publishTimeout?: number;
}

/**
 * Counters of a {@linkcode RedisPubSub}, for metrics.
 *
 * @example Usage
 * ```ts
 * import type { RedisPubSubStats } from "@duplex/ws/redis";
 *
 * const stats: RedisPubSubStats = { published: 0, publishFailed: 0, received: 0, reconnects: 0 };
 * ```
 */
export interface RedisPubSubStats {
  /** Messages Redis took. */
  published: number;
  /** Messages dropped because Redis was down, slow, or refused them. */
  publishFailed: number;
  /** Messages received on subscribed channels. */
  received: number;
  /** Connections re-established after a loss. */
  reconnects: number;
}

/** One of the two connections and its reconnect state. */
class Link {
  client: RedisClient | undefined = undefined;
  ready = false;
  /** Failed attempts since the last connection that stayed up long enough. */
  attempt = 0;
  upSince = 0;
  everUp = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** The attempt in flight; it never rejects. */
  connecting: Promise<void> | undefined = undefined;
  constructor(readonly role: "publisher" | "subscriber") {}
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message || error.name : String(error);
}

function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.href;
  } catch {
    return "(invalid URL)";
  }
}

/**
 * A {@linkcode PubSub} over Redis pub/sub. It starts connecting at once, in
 * the background; `ready()` waits for the first connection. Every failure is
 * survivable and logged through `logger`; see the module doc for the
 * semantics while Redis is down.
 *
 * @example Connect, publish, subscribe (needs a running Redis)
 * ```ts ignore
 * import { RedisPubSub } from "@duplex/ws/redis";
 *
 * await using pubsub = new RedisPubSub({
 *   url: Deno.env.get("REDIS_URL"),
 *   logger: console,
 * });
 * await pubsub.ready();
 * await pubsub.subscribe("news", (data) => console.log(data));
 * await pubsub.publish("news", "hello");
 * ```
 *
 * @example Options only (runs anywhere)
 * ```ts
 * import { RedisPubSub } from "@duplex/ws/redis";
 * import assert from "node:assert/strict";
 *
 * const make = () => new RedisPubSub({ url: "redis://127.0.0.1:6379" });
 * assert.equal(typeof make, "function");
 * ```
 */
export class RedisPubSub extends PubSubTarget implements PubSub {
  /** Always `"redis"`. */
  readonly name: string = "redis";
  /** Counters, for metrics. */
  readonly stats: RedisPubSubStats = {
    published: 0,
    publishFailed: 0,
    received: 0,
    reconnects: 0,
  };
  #url: string;
  #shownUrl: string;
  #logger: BrokerLogger | undefined;
  #reconnectDelay: number;
  #maxReconnectDelay: number;
  #minUptime: number;
  #connectTimeout: number;
  #publishTimeout: number;
  #publisher = new Link("publisher");
  #subscriber = new Link("subscriber");
  #channels = new Map<string, Set<PubSubListener>>();
  #up = false;
  #closed = false;
  #closing: Promise<void> | undefined = undefined;
  readonly #onMessage = (message: string, channel: string): void => {
    const listeners = this.#channels.get(channel);
    if (listeners === undefined) return;
    this.stats.received++;
    _dispatch(this, [...listeners], channel, message);
  };

  /**
   * Creates the transport and starts connecting in the background.
   *
   * @param options URL, logger and delays.
   * @throws {RangeError} When a delay is negative or `maxReconnectDelay` is
   * below `reconnectDelay`.
   */
  constructor(options: RedisPubSubOptions = {}) {
    super();
    const {
      url = "redis://127.0.0.1:6379",
      reconnectDelay = 100,
      maxReconnectDelay = 5_000,
      minUptime = 5_000,
      connectTimeout = 5_000,
      publishTimeout = 5_000,
    } = options;
    for (
      const [name, value] of Object.entries({
        reconnectDelay,
        maxReconnectDelay,
        minUptime,
        connectTimeout,
        publishTimeout,
      })
    ) {
      if (!(value >= 0)) {
        throw new RangeError(
          `Cannot create RedisPubSub: ${name} must be at least 0, got ${value}`,
        );
      }
    }
    if (maxReconnectDelay < reconnectDelay) {
      throw new RangeError(
        `Cannot create RedisPubSub: maxReconnectDelay ${maxReconnectDelay} is below reconnectDelay ${reconnectDelay}`,
      );
    }
    this.#url = url;
    this.#shownUrl = redact(url);
    this.#logger = options.logger;
    this.#reconnectDelay = reconnectDelay;
    this.#maxReconnectDelay = maxReconnectDelay;
    this.#minUptime = minUptime;
    this.#connectTimeout = connectTimeout;
    this.#publishTimeout = publishTimeout;
    this.#start(this.#publisher);
    this.#start(this.#subscriber);
  }

  /** Whether both connections are up and every channel is subscribed. */
  get connected(): boolean {
    return this.#up;
  }

  /**
   * Waits until both connections are up (at once if they are).
   *
   * @param options An abort signal.
   * @returns Settles when connected.
   * @throws {BrokerUnavailableError} When the transport closes first.
   * @throws {unknown} `signal.reason` when the signal aborts first.
   */
  ready(options: { signal?: AbortSignal } = {}): Promise<void> {
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) {
      return Promise.reject(new BrokerUnavailableError(this.name, "closed"));
    }
    if (this.#up) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        this.removeEventListener("up", onUp);
        this.removeEventListener("down", onDown);
        signal?.removeEventListener("abort", onAbort);
      };
      const onUp = () => {
        cleanup();
        resolve();
      };
      const onDown = () => {
        if (!this.#closed) return;
        cleanup();
        reject(new BrokerUnavailableError(this.name, "closed"));
      };
      const onAbort = () => {
        cleanup();
        reject(signal!.reason);
      };
      this.addEventListener("up", onUp);
      this.addEventListener("down", onDown);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Publishes one message with `PUBLISH`.
   *
   * @param channel The channel.
   * @param data The message.
   * @returns Settles once Redis took it.
   * @throws {BrokerUnavailableError} At once while Redis is down or after
   * `close()` (nothing was sent).
   * @throws {BrokerOutcomeUnknownError} After `publishTimeout` when Redis
   * does not answer, or when the connection breaks before it answers (the
   * message may still be delivered).
   */
  publish(channel: string, data: string): Promise<void> {
    const client = this.#publisher.client;
    if (this.#closed || !this.#publisher.ready || client === undefined) {
      this.stats.publishFailed++;
      return Promise.reject(
        new BrokerUnavailableError(
          this.name,
          this.#closed ? "closed" : "not connected",
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let timedOut = false;
    const timer = this.#publishTimeout > 0
      ? setTimeout(() => {
        timedOut = true;
        this.stats.publishFailed++;
        const error = new BrokerOutcomeUnknownError(
          this.name,
          `no answer within ${this.#publishTimeout} ms`,
        );
        reject(error);
        // A connection that does not answer is half-open or wedged (e.g.
        // writes stuck): replace it rather than queue behind it forever.
        this.#lost(this.#publisher, client, error);
      }, this.#publishTimeout)
      : undefined;
    client.publish(channel, data).then(
      () => {
        clearTimeout(timer);
        if (timedOut) return;
        this.stats.published++;
        resolve();
      },
      (error: unknown) => {
        clearTimeout(timer);
        if (timedOut) return;
        this.stats.publishFailed++;
        // The command was written on a connection that was up: Redis may
        // have taken it before the connection broke.
        reject(
          new BrokerOutcomeUnknownError(this.name, describe(error), {
            cause: error,
          }),
        );
      },
    );
    return promise;
  }

  /**
   * Subscribes `listener` to `channel`. The subscription survives
   * reconnects. While Redis is down it is registered and becomes active on
   * reconnect.
   *
   * @param channel The channel.
   * @param listener The listener.
   * @returns The function that removes this subscription.
   * @throws {BrokerUnavailableError} After `close()`.
   */
  async subscribe(
    channel: string,
    listener: PubSubListener,
  ): Promise<Unsubscribe> {
    if (this.#closed) {
      throw new BrokerUnavailableError(this.name, "closed");
    }
    let listeners = this.#channels.get(channel);
    const first = listeners === undefined;
    if (listeners === undefined) {
      this.#channels.set(channel, listeners = new Set());
    }
    const wrapper: PubSubListener = (data) => listener(data);
    listeners.add(wrapper);
    const link = this.#subscriber;
    if (first && link.ready && link.client !== undefined) {
      try {
        await link.client.subscribe(channel, this.#onMessage);
      } catch (error) {
        // The connection is dropping; the channel is subscribed again on
        // reconnect.
        this.#logger?.warn(
          `redis cannot subscribe to ${channel} now (${
            describe(error)
          }); it will be subscribed on reconnect`,
        );
      }
    }
    let done = false;
    return async () => {
      if (done) return;
      done = true;
      const set = this.#channels.get(channel);
      if (set === undefined || !set.delete(wrapper) || set.size > 0) return;
      this.#channels.delete(channel);
      const client = link.client;
      if (link.ready && client !== undefined) {
        await client.unsubscribe(channel, this.#onMessage).catch(() => {});
      }
    };
  }

  /**
   * Closes both connections and stops reconnecting. Idempotent.
   *
   * @returns Settles once every connection and timer is gone.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /**
   * Same as `close()`, for `await using`.
   *
   * @returns Settles once closed.
   */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    this.#closed = true;
    for (const link of [this.#publisher, this.#subscriber]) {
      clearTimeout(link.timer);
      link.timer = undefined;
      link.ready = false;
      link.client?.destroy();
      link.client = undefined;
    }
    await Promise.all([
      this.#publisher.connecting,
      this.#subscriber.connecting,
    ]);
    this.#channels.clear();
    this.#up = false;
    this.#logger?.info(`redis closed ${this.#shownUrl}`);
    this.dispatchEvent(new Event("down"));
  }

  #start(link: Link): void {
    link.timer = undefined;
    if (this.#closed) return;
    const attempt = this.#connect(link);
    link.connecting = attempt;
    attempt.then(() => {
      if (link.connecting === attempt) link.connecting = undefined;
    });
  }

  /** One connection attempt; handles every failure itself. */
  async #connect(link: Link): Promise<void> {
    let client: RedisClient | undefined;
    try {
      const { createClient } = await loadRedis();
      if (this.#closed) return;
      client = createClient({
        url: this.#url,
        // Reconnecting is ours: node-redis waits between attempts with a timer
        // that destroy() cannot cancel.
        socket: {
          reconnectStrategy: false,
          connectTimeout: this.#connectTimeout,
        },
        disableOfflineQueue: true,
      });
      link.client = client;
      const own = client;
      own.on("error", () => {
        // Every failure also ends a connect() or emits "terminated", which
        // is where it is handled; without this listener it would crash.
      });
      own.on("terminated", (cause: unknown) => this.#lost(link, own, cause));
      await own.connect();
      if (this.#closed || link.client !== own) return;
      if (link.role === "subscriber" && this.#channels.size > 0) {
        await own.subscribe([...this.#channels.keys()], this.#onMessage);
      }
      if (this.#closed || link.client !== own) return;
      link.ready = true;
      link.upSince = performance.now();
      if (link.everUp) this.stats.reconnects++;
      link.everUp = true;
      this.#logger?.info(
        `redis ${link.role} connected to ${this.#shownUrl}${
          link.role === "subscriber"
            ? ` (${this.#channels.size} channels subscribed)`
            : ""
        }`,
      );
      this.#update();
    } catch (error) {
      if (this.#closed) return;
      if (client !== undefined && link.client === client) {
        link.client = undefined;
        client.destroy();
      }
      if (link.ready) return;
      this.#retry(link, error);
    }
  }

  /** A connection that was up dropped. */
  #lost(link: Link, client: RedisClient, cause: unknown): void {
    if (this.#closed || link.client !== client) return;
    const wasReady = link.ready;
    link.ready = false;
    link.client = undefined;
    client.destroy();
    if (!wasReady) return; // A failed connect: #connect retries.
    if (performance.now() - link.upSince >= this.#minUptime) link.attempt = 0;
    this.#logger?.warn(
      `redis ${link.role} connection lost: ${describe(cause)}`,
    );
    this.#update();
    this.#retry(link, cause);
  }

  #retry(link: Link, cause: unknown): void {
    if (this.#closed || link.timer !== undefined) return;
    const ceiling = Math.min(
      this.#maxReconnectDelay,
      this.#reconnectDelay * 2 ** Math.min(link.attempt, 30),
    );
    const delay = Math.round(ceiling / 2 + Math.random() * ceiling / 2);
    link.attempt++;
    this.#logger?.warn(
      `redis ${link.role} cannot connect to ${this.#shownUrl}: ${
        describe(cause)
      }; retry ${link.attempt} in ${delay} ms`,
    );
    link.timer = setTimeout(() => this.#start(link), delay);
  }

  /** Dispatches `up` or `down` when the pair changes state. */
  #update(): void {
    const up = this.#publisher.ready && this.#subscriber.ready;
    if (up === this.#up) return;
    this.#up = up;
    if (up) {
      this.#logger?.info(`redis up ${this.#shownUrl}`);
    } else {
      this.#logger?.warn(
        `redis down ${this.#shownUrl}: messages are dropped until it is back`,
      );
    }
    this.dispatchEvent(new Event(up ? "up" : "down"));
  }
}
