/**
 * Loads the official Node client (`npm:redis`) once, on first use, so that
 * importing the Redis layer downloads nothing until a Redis connection is
 * made. Shared by the pub/sub transport and the session store.
 *
 * @module
 */

/** The `npm:redis` module. */
export type RedisModule = typeof import("npm:redis@^6.3.1");
/** A client of `npm:redis`. */
export type RedisClient = ReturnType<RedisModule["createClient"]>;

let redisModule: Promise<RedisModule> | undefined;

/** Loads `npm:redis` once; a failed load is retried on the next call. */
export function loadRedis(): Promise<RedisModule> {
  redisModule ??= import("npm:redis@^6.3.1").catch((error: unknown) => {
    redisModule = undefined;
    throw error;
  });
  return redisModule;
}
