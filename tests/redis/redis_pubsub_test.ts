import assert from "node:assert/strict";
import {
  type BrokerLogger,
  BrokerOutcomeUnknownError,
  BrokerUnavailableError,
} from "../../src/cluster/pubsub.ts";
import { RedisPubSub, type RedisPubSubOptions } from "../../redis.ts";
import { deadline, once } from "../_helpers.ts";
import { RedisServer, redisTest } from "../_redis.ts";

/** A logger that keeps its lines, for assertions. */
function recorder(): BrokerLogger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(`info ${message}`),
    warn: (message) => lines.push(`warn ${message}`),
    error: (message) => lines.push(`error ${message}`),
  };
}

/** Fast delays, so that reconnects take milliseconds. */
function fast(url: string, logger?: BrokerLogger): RedisPubSubOptions {
  return {
    url,
    logger,
    reconnectDelay: 10,
    maxReconnectDelay: 40,
    minUptime: 0,
    connectTimeout: 1_000,
    publishTimeout: 1_000,
  };
}

/** Resolves with the next message of `channel`. */
async function nextMessage(
  pubsub: RedisPubSub,
  channel: string,
): Promise<{ message: Promise<string>; unsubscribe: () => Promise<void> }> {
  const { promise, resolve } = Promise.withResolvers<string>();
  const unsubscribe = await pubsub.subscribe(channel, resolve);
  return {
    message: deadline(promise, 5_000, `a message on ${channel}`),
    unsubscribe,
  };
}

redisTest(
  "RedisPubSub.publish() reaches a subscriber of another instance",
  async (redis) => {
    await using a = new RedisPubSub(fast(redis.url));
    await using b = new RedisPubSub(fast(redis.url));
    await deadline(Promise.all([a.ready(), b.ready()]), 5_000, "ready");
    assert.ok(a.connected && b.connected);
    const received: string[] = [];
    const done = Promise.withResolvers<void>();
    await b.subscribe("chat", (data) => {
      received.push(data);
      if (received.length === 3) done.resolve();
    });
    for (const text of ["one", "two", "three"]) await a.publish("chat", text);
    await deadline(done.promise, 5_000, "three messages");
    assert.deepEqual(received, ["one", "two", "three"]);
    assert.equal(a.stats.published, 3);
    assert.equal(b.stats.received, 3);
  },
);

redisTest(
  "RedisPubSub.subscribe() returns an unsubscribe that stops delivery",
  async (redis) => {
    await using a = new RedisPubSub(fast(redis.url));
    await deadline(a.ready(), 5_000, "ready");
    const stale: string[] = [];
    const unsubscribeStale = await a.subscribe(
      "news",
      (data) => stale.push(data),
    );
    await unsubscribeStale();
    await unsubscribeStale();
    const { message } = await nextMessage(a, "news");
    await a.publish("news", "fresh");
    assert.equal(await message, "fresh");
    assert.deepEqual(stale, []);
  },
);

redisTest(
  "RedisPubSub survives a Redis restart and resubscribes",
  async (redis) => {
    const logger = recorder();
    await using a = new RedisPubSub(fast(redis.url, logger));
    await using b = new RedisPubSub(fast(redis.url));
    await deadline(Promise.all([a.ready(), b.ready()]), 5_000, "ready");
    const first = await nextMessage(b, "chat");
    await a.publish("chat", "before");
    assert.equal(await first.message, "before");
    await first.unsubscribe();

    const downs = Promise.all([once(a, "down"), once(b, "down")]);
    await redis.stop();
    await downs;
    assert.equal(a.connected, false);
    // Nothing is delivered. "down" fires when either of a's two connections
    // drops: if its publishing connection has not seen the close yet, the
    // command is written and fails, and the honest answer is "outcome
    // unknown" rather than "not sent".
    await assert.rejects(
      a.publish("chat", "lost"),
      (error: unknown) =>
        error instanceof BrokerUnavailableError ||
        error instanceof BrokerOutcomeUnknownError,
    );
    assert.equal(a.stats.publishFailed, 1);
    // A subscription made while Redis is down becomes active on reconnect.
    const second = await nextMessage(b, "later");

    const ups = Promise.all([once(a, "up"), once(b, "up")]);
    await redis.restart();
    await ups;
    await a.publish("later", "after");
    assert.equal(await second.message, "after");
    assert.ok(a.stats.reconnects >= 2, `reconnects ${a.stats.reconnects}`);
    assert.ok(
      logger.lines.some((line) => line.includes("connection lost")),
      logger.lines.join("\n"),
    );
    assert.ok(logger.lines.some((line) => line.startsWith("warn redis down")));
    assert.ok(logger.lines.some((line) => line.startsWith("info redis up")));
  },
);

redisTest(
  "RedisPubSub starts while Redis is unreachable and connects when it comes up",
  async (running) => {
    // Not the running server: a port with nothing on it yet.
    await running.stop();
    await using redis = RedisServer.reserve(running.port);
    const logger = recorder();
    await using a = new RedisPubSub(fast(redis.url, logger));
    await assert.rejects(a.publish("x", "dropped"), BrokerUnavailableError);
    const pending = await nextMessage(a, "x");
    const up = once(a, "up");
    await redis.restart();
    await up;
    await a.publish("x", "delivered");
    assert.equal(await pending.message, "delivered");
    assert.ok(logger.lines.some((line) => line.includes("retry")));
  },
);

redisTest(
  "RedisPubSub.close() stops reconnecting and is idempotent",
  async (redis) => {
    const a = new RedisPubSub(fast(redis.url));
    await deadline(a.ready(), 5_000, "ready");
    const down = once(a, "down");
    await redis.stop();
    await down;
    // Now a reconnect timer or attempt is pending: close() must clear it.
    await a.close();
    await a.close();
    await assert.rejects(a.publish("x", "y"), BrokerUnavailableError);
    await assert.rejects(a.subscribe("x", () => {}), BrokerUnavailableError);
    await assert.rejects(a.ready(), BrokerUnavailableError);
  },
);

Deno.test("RedisPubSub() rejects invalid delays", () => {
  assert.throws(() => new RedisPubSub({ reconnectDelay: -1 }), RangeError);
  assert.throws(
    () => new RedisPubSub({ reconnectDelay: 100, maxReconnectDelay: 10 }),
    RangeError,
  );
});

redisTest(
  "RedisPubSub.publish() rejects after publishTimeout when Redis does not answer, and replaces the wedged connection",
  async (redis) => {
    const logger = recorder();
    await using a = new RedisPubSub({
      ...fast(redis.url, logger),
      publishTimeout: 100,
      connectTimeout: 200,
    });
    await deadline(a.ready(), 5_000, "ready");
    const down = once(a, "down");
    redis.pause(true);
    await assert.rejects(
      a.publish("chat", "lost"),
      (error: Error) =>
        error instanceof BrokerOutcomeUnknownError &&
        /no answer within 100 ms/.test(error.message),
    );
    await down;
    assert.equal(a.connected, false);
    assert.ok(
      logger.lines.some((l) => /publisher connection lost/.test(l)),
      logger.lines.join("\n"),
    );
    const up = once(a, "up", 10_000);
    redis.pause(false);
    await up;
    await a.publish("chat", "back");
    assert.equal(a.stats.publishFailed, 1);
  },
);
