/**
 * The Redis transport of a Duplex {@linkcode Cluster}: {@linkcode RedisPubSub}
 * carries the cluster's envelopes over Redis pub/sub with the official Node
 * client (`npm:redis`), and {@linkcode RedisSessionStore} keeps the
 * sessions that every instance shares (a client resumes on any instance). It has its own entry point so that a server that does
 * not use Redis (`@duplex/ws/server` alone) downloads no npm package.
 *
 * @example Join a cluster on Redis (options only; connects on start)
 * ```ts
 * import { Cluster, createChatServer } from "@duplex/ws/server";
 * import { RedisPubSub } from "@duplex/ws/redis";
 * import assert from "node:assert/strict";
 *
 * const pubsub = new RedisPubSub({ url: "redis://127.0.0.1:6379" });
 * const cluster = new Cluster(pubsub);
 * const chat = createChatServer({ cluster });
 * assert.equal(chat.cluster, cluster);
 * await cluster.close();
 * await pubsub.close();
 * ```
 *
 * @module
 */

import type { Cluster } from "./src/cluster/cluster.ts";

export {
  RedisPubSub,
  type RedisPubSubOptions,
  type RedisPubSubStats,
} from "./src/redis/redis_pubsub.ts";
export {
  RedisSessionStore,
  type RedisSessionStoreOptions,
} from "./src/redis/redis_session_store.ts";
export type { Cluster };
