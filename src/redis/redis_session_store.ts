/**
 * {@linkcode RedisSessionStore}: the sessions of a Duplex server in Redis,
 * shared by every instance, so that a client resumes on any of them with
 * the guarantees it has on one (with the official Node client, `npm:redis`,
 * loaded on first use).
 *
 * Each session is three keys, with one hash tag so that a Redis Cluster
 * keeps them together: `duplex:s:{id}` (a hash: user, SHA-256 of the
 * secret, owner, counts (frames received, of them dispatched, sent and
 * acknowledged), the last server→client request, rooms, version),
 * `duplex:s:{id}:f` (a list of the frames the client has not acknowledged:
 * appended on send, trimmed on acknowledgement) and `duplex:s:{id}:o` (a
 * set of the client requests received whose response is not stored). Every write is one Lua script
 * that checks the owner (fencing) and the version (idempotent retries); a
 * server sends the writes of one event-loop turn together (one round trip).
 * One more key, `duplex:s:generation`, marks Redis's data: a store that
 * finds it changed since it last connected knows that Redis lost its data,
 * and answers "not yet" for a missing session during `recoveryWindow`
 * (its owner writes it again meanwhile).
 *
 * @module
 */

import type {
  SessionRecord,
  SessionStore,
  SessionWrite,
  SessionWriteResult,
  StoredSession,
} from "../cluster/session_store.ts";
import type { SessionLossReason } from "../wire/session_frames.ts";

import { loadRedis, type RedisClient } from "./_load_redis.ts";

/** Applies one {@linkcode SessionWrite}; see the module doc. */
const WRITE = `
local h, f, o = KEYS[1], KEYS[2], KEYS[3]
local owner = redis.call('HGET', h, 'owner')
local snapshot = ARGV[10]
local ttl = tonumber(ARGV[6])
if snapshot ~= '' then
  if owner and owner ~= ARGV[1] then return 'fenced' end
  local record = cjson.decode(snapshot)
  redis.call('DEL', h, f, o)
  redis.call('HSET', h, 'user', record.user, 'secretHash', record.secretHash,
    'owner', ARGV[1], 'version', 0, 'received', 0, 'dispatched', 0, 'sent', 0,
    'acked', 0)
else
  if not owner then return 'missing' end
  if owner ~= ARGV[1] then return 'fenced' end
end
if tonumber(redis.call('HGET', h, 'version')) >= tonumber(ARGV[2]) then
  return 'ok'
end
local sent = tonumber(redis.call('HGET', h, 'sent'))
local newSent = tonumber(ARGV[4])
local acked = math.max(tonumber(redis.call('HGET', h, 'acked')), tonumber(ARGV[5]))
local i = 13
local opened = tonumber(ARGV[i])
for k = 1, opened do redis.call('SADD', o, ARGV[i + k]) end
i = i + opened + 1
local answered = tonumber(ARGV[i])
for k = 1, answered do redis.call('SREM', o, ARGV[i + k]) end
i = i + answered + 1
local frames = #ARGV - i + 1
local first = newSent - frames + 1
if first > sent + 1 then redis.call('DEL', f) end
for k = 0, frames - 1 do
  if first + k > sent then redis.call('RPUSH', f, ARGV[i + k]) end
end
if newSent > sent then sent = newSent end
local keep = sent - acked
if keep <= 0 then redis.call('DEL', f) else redis.call('LTRIM', f, -keep, -1) end
redis.call('HSET', h, 'version', ARGV[2], 'sent', sent, 'acked', acked,
  'received', math.max(tonumber(redis.call('HGET', h, 'received')), tonumber(ARGV[3])),
  'dispatched', math.max(tonumber(redis.call('HGET', h, 'dispatched') or 0), tonumber(ARGV[12])))
if ARGV[9] ~= '' then redis.call('HSET', h, 'rooms', ARGV[9]) end
if ARGV[11] ~= '' then redis.call('HSET', h, 'requested', ARGV[11]) end
if ARGV[8] == '1' then redis.call('HSET', h, 'draining', '1') else redis.call('HDEL', h, 'draining') end
if ARGV[7] ~= '' then
  redis.call('HSET', h, 'ended', ARGV[7])
  redis.call('DEL', f, o)
end
redis.call('PEXPIRE', h, ttl)
redis.call('PEXPIRE', f, ttl)
redis.call('PEXPIRE', o, ttl)
return 'ok'
`;

/** Makes ARGV[1] the owner and returns the whole session. */
const CLAIM = `
local h, f, o = KEYS[1], KEYS[2], KEYS[3]
if redis.call('EXISTS', h) == 0 then return false end
if redis.call('HEXISTS', h, 'ended') == 1 then return false end
if redis.call('HEXISTS', h, 'draining') == 1 then return 'busy' end
redis.call('HSET', h, 'owner', ARGV[1])
return {redis.call('HGETALL', h), redis.call('LRANGE', f, 0, -1), redis.call('SMEMBERS', o)}
`;

/**
 * Marks this Redis's data generation: KEYS[1] holds the id of the
 * generation (made by the first store that finds none); a store that saw
 * another id before (ARGV[2]) learns that Redis lost its data, and notes
 * when (`lost`, Redis time in ms) unless noted already. Returns the id.
 */
const MARK = `
local k = KEYS[1]
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local id = redis.call('HGET', k, 'id')
if not id then
  redis.call('HSET', k, 'id', ARGV[1])
  id = ARGV[1]
end
if ARGV[2] ~= '' and id ~= ARGV[2] then redis.call('HSETNX', k, 'lost', now) end
return id
`;

/** How long ago Redis lost its data (ms), or false. */
const LOST = `
local lost = redis.call('HGET', KEYS[1], 'lost')
if not lost then return false end
local t = redis.call('TIME')
return t[1] * 1000 + math.floor(t[2] / 1000) - tonumber(lost)
`;

/**
 * Options of a {@linkcode RedisSessionStore}.
 *
 * @example Usage
 * ```ts
 * import type { RedisSessionStoreOptions } from "@duplex/ws/redis";
 *
 * const options: RedisSessionStoreOptions = { url: "redis://127.0.0.1:6379" };
 * ```
 */
export interface RedisSessionStoreOptions {
  /**
   * The Redis URL: `redis://[[user]:password@]host[:port][/db]`, or
   * `rediss://` for TLS.
   *
   * @default {"redis://127.0.0.1:6379"}
   */
  url?: string;
  /**
   * The prefix of every key.
   *
   * @default {"duplex:s:"}
   */
  prefix?: string;
  /**
   * How long one command may take before the connection counts as wedged
   * (it is replaced, and the command fails), in ms.
   *
   * @default {2000}
   */
  commandTimeout?: number;
  /**
   * The longest wait between two connection attempts, in ms (the wait
   * starts at 50 ms and doubles).
   *
   * @default {2000}
   */
  maxReconnectDelay?: number;
  /**
   * How long after Redis lost its data (a restart without persistence, a
   * flush) a session it does not have is not yet "unknown": its owner may
   * not have written it again. Until then `get` rejects (the server answers
   * "busy, try again" and the client comes back). Keep it above the
   * servers' refresh interval (a quarter of `grace`, at most 10 s) plus
   * `maxReconnectDelay`.
   *
   * @default {15000}
   */
  recoveryWindow?: number;
}

/**
 * A {@linkcode SessionStore} in Redis that every instance of a server
 * shares: give it as `sessions.store` to each {@linkcode DuplexServer}
 * instance, and a client resumes on any of them (its frames, counts,
 * rooms and open requests are in Redis). Secrets are stored as SHA-256
 * hashes. It connects on first use and reconnects by itself; while Redis
 * is unreachable, its methods reject (a server retries its writes, and
 * holds the frames it received until they are stored).
 *
 * @example Options only (runs anywhere)
 * ```ts
 * import { RedisSessionStore } from "@duplex/ws/redis";
 * import assert from "node:assert/strict";
 *
 * const store = new RedisSessionStore({ url: "redis://127.0.0.1:6379" });
 * assert.equal(typeof store.claim, "function");
 * await store.close();
 * ```
 *
 * @example Sessions that resume on any instance (needs a running Redis)
 * ```ts ignore
 * import { DuplexServer } from "@duplex/ws/server";
 * import { RedisSessionStore } from "@duplex/ws/redis";
 *
 * const store = new RedisSessionStore({ url: Deno.env.get("REDIS_URL") });
 * const server = new DuplexServer({ sessions: { store } });
 * Deno.serve(server.fetch);
 * ```
 */
export class RedisSessionStore implements SessionStore, AsyncDisposable {
  #url: string;
  #prefix: string;
  #timeout: number;
  #maxDelay: number;
  #client: RedisClient | undefined = undefined;
  #connecting: Promise<RedisClient> | undefined = undefined;
  #shas: { write: string; claim: string } | undefined = undefined;
  #recoveryWindow: number;
  /** The data generation this store last saw (see MARK). */
  #generation = "";
  #attempt = 0;
  #retryAt = 0;
  #closed = false;

  /**
   * Creates the store; it connects on first use.
   *
   * @param options URL, key prefix and timeouts.
   * @throws {RangeError} When a timeout is not positive.
   */
  constructor(options: RedisSessionStoreOptions = {}) {
    this.#url = options.url ?? "redis://127.0.0.1:6379";
    this.#prefix = options.prefix ?? "duplex:s:";
    this.#timeout = options.commandTimeout ?? 2_000;
    this.#maxDelay = options.maxReconnectDelay ?? 2_000;
    this.#recoveryWindow = options.recoveryWindow ?? 15_000;
    if (
      !(this.#timeout > 0) || !(this.#maxDelay > 0) ||
      !(this.#recoveryWindow >= 0)
    ) {
      throw new RangeError(
        "Cannot create RedisSessionStore: timeouts must be positive",
      );
    }
  }

  /**
   * Finds a session's record.
   *
   * @param id The session id.
   * @returns The record, or `undefined`.
   * @throws {Error} When Redis lost its data less than `recoveryWindow` ago
   * and has no such session: its owner may not have written it again yet.
   */
  async get(id: string): Promise<SessionRecord | undefined> {
    const reply = await this.#command<(string | null)[]>([
      "HMGET",
      this.#key(id),
      "user",
      "secretHash",
      "owner",
      "ended",
    ]);
    const [user, secretHash, owner, ended] = reply;
    if (user === null || secretHash === null) {
      await this.#recovered();
      return undefined;
    }
    const record: SessionRecord = { id, user, secretHash };
    if (owner !== null) record.owner = owner;
    if (ended !== null) record.ended = ended as SessionLossReason;
    return record;
  }

  /**
   * Creates or replaces a record (without frames).
   *
   * @param record The record.
   * @param ttl How long to keep it, in ms (Infinity: until deleted).
   */
  async set(record: SessionRecord, ttl: number): Promise<void> {
    const key = this.#key(record.id);
    const fields = ["user", record.user, "secretHash", record.secretHash];
    if (record.owner !== undefined) fields.push("owner", record.owner);
    if (record.ended !== undefined) fields.push("ended", record.ended);
    await this.#command(["HSET", key, ...fields]);
    if (ttl !== Infinity) {
      await this.#command(["PEXPIRE", key, String(Math.ceil(ttl))]);
    }
  }

  /**
   * Deletes a session and its frames.
   *
   * @param id The session id.
   */
  async delete(id: string): Promise<void> {
    const key = this.#key(id);
    await this.#command(["DEL", key, `${key}:f`, `${key}:o`]);
  }

  /**
   * Makes `owner` the session's owner and returns its state.
   *
   * @param id The session id.
   * @param owner The claimer's owner token.
   * @returns The state; `undefined` when unknown or ended; `"busy"` while
   * it is handed over.
   */
  async claim(
    id: string,
    owner: string,
  ): Promise<StoredSession | "busy" | undefined> {
    const key = this.#key(id);
    const reply = await this.#script<
      null | "busy" | [string[], string[], string[]]
    >("claim", [key, `${key}:f`, `${key}:o`], [owner]);
    if (reply === null) return undefined;
    if (reply === "busy") return "busy";
    const [pairs, frames, open] = reply;
    const hash: Record<string, string> = {};
    for (let i = 0; i + 1 < pairs.length; i += 2) hash[pairs[i]] = pairs[i + 1];
    let rooms: string[] = [];
    try {
      const parsed = JSON.parse(hash.rooms ?? "[]");
      if (Array.isArray(parsed)) rooms = parsed.map(String);
    } catch {
      // Unreadable rooms: none.
    }
    return {
      record: { id, user: hash.user, secretHash: hash.secretHash, owner },
      received: Number(hash.received ?? 0),
      dispatched: Number(hash.dispatched ?? hash.received ?? 0),
      sent: Number(hash.sent ?? 0),
      frames,
      requested: Number(hash.requested ?? 0),
      open: open.map(Number).sort((a, b) => a - b),
      rooms,
      version: Number(hash.version ?? 0),
    };
  }

  /**
   * Applies a batch of writes in one round trip (one script call each,
   * pipelined).
   *
   * @param batch The writes.
   * @returns One result per write.
   */
  async write(batch: readonly SessionWrite[]): Promise<SessionWriteResult[]> {
    const client = await this.#connected();
    const shas = this.#shas!;
    const calls = batch.map((write) => {
      const key = this.#key(write.id);
      const args = [
        write.owner,
        String(write.version),
        String(write.received),
        String(write.sent),
        String(write.acked),
        String(Math.ceil(write.ttl)),
        write.ended ?? "",
        write.handover ? "1" : "0",
        write.snapshot !== undefined
          ? JSON.stringify(write.snapshot.rooms)
          : write.rooms !== undefined
          ? JSON.stringify(write.rooms)
          : "",
        write.snapshot !== undefined
          ? JSON.stringify({
            user: write.snapshot.record.user,
            secretHash: write.snapshot.record.secretHash,
          })
          : "",
        write.requested !== undefined ? String(write.requested) : "",
        String(write.dispatched ?? write.received),
      ];
      const opened = write.snapshot?.open ?? write.opened;
      args.push(String(opened.length), ...opened.map(String));
      args.push(String(write.answered.length), ...write.answered.map(String));
      args.push(...write.frames);
      return client.sendCommand([
        "EVALSHA",
        shas.write,
        "3",
        key,
        `${key}:f`,
        `${key}:o`,
        ...args,
      ]) as Promise<SessionWriteResult>;
    });
    try {
      return await this.#deadline(Promise.all(calls), client);
    } catch (error) {
      if (String(error).includes("NOSCRIPT")) this.#shas = undefined;
      throw error;
    }
  }

  /** Closes the connection. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    client?.destroy();
    await this.#connecting?.catch(() => {});
    // A connection made meanwhile is dropped by #connect (closed).
  }

  /** Same as `close()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #key(id: string): string {
    return `${this.#prefix}{${id}}`;
  }

  /** Rejects while Redis lost its data less than the window ago. */
  async #recovered(): Promise<void> {
    if (this.#recoveryWindow === 0) return;
    const ago = await this.#command<number | null>([
      "EVAL",
      LOST,
      "1",
      `${this.#prefix}generation`,
    ]);
    if (ago !== null && ago < this.#recoveryWindow) {
      throw new Error(
        `Cannot find session yet: Redis lost its data ${ago} ms ago and its owner may not have written it again`,
      );
    }
  }

  async #command<T>(args: string[]): Promise<T> {
    const client = await this.#connected();
    return await this.#deadline(client.sendCommand(args) as Promise<T>, client);
  }

  async #script<T>(
    name: "write" | "claim",
    keys: string[],
    args: string[],
  ): Promise<T> {
    const client = await this.#connected();
    try {
      return await this.#deadline(
        client.sendCommand([
          "EVALSHA",
          this.#shas![name],
          String(keys.length),
          ...keys,
          ...args,
        ]) as Promise<T>,
        client,
      );
    } catch (error) {
      if (String(error).includes("NOSCRIPT")) this.#shas = undefined;
      throw error;
    }
  }

  /** Rejects after the command timeout, and replaces a wedged connection. */
  #deadline<T>(promise: Promise<T>, client: RedisClient): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.#drop(client);
        reject(
          new Error(
            `Cannot reach Redis: no answer within ${this.#timeout} ms`,
          ),
        );
      }, this.#timeout);
    });
    return Promise.race([promise, expired]).catch((error: unknown) => {
      // A connection that broke is replaced on the next call.
      if (!client.isReady) this.#drop(client);
      throw error;
    }).finally(() => clearTimeout(timer));
  }

  #drop(client: RedisClient): void {
    if (this.#client !== client) return;
    this.#client = undefined;
    this.#shas = undefined;
    client.destroy();
  }

  async #connected(): Promise<RedisClient> {
    if (this.#closed) throw new Error("Cannot use RedisSessionStore: closed");
    const client = this.#client;
    if (client !== undefined && !client.isReady) this.#drop(client);
    if (this.#client !== undefined && this.#shas !== undefined) {
      return this.#client;
    }
    this.#connecting ??= this.#connect().finally(() => {
      this.#connecting = undefined;
    });
    return await this.#connecting;
  }

  async #connect(): Promise<RedisClient> {
    let client = this.#client;
    if (client === undefined) {
      const wait = this.#retryAt - Date.now();
      if (wait > 0) {
        throw new Error(`Cannot reach Redis: retrying in ${wait} ms`);
      }
      const { createClient } = await loadRedis();
      client = createClient({
        url: this.#url,
        socket: { reconnectStrategy: false, connectTimeout: this.#timeout },
        disableOfflineQueue: true,
      });
      const own = client;
      own.on("error", () => {
        // Handled where the command or the connection fails.
      });
      own.on("end", () => this.#drop(own));
      this.#client = own;
      try {
        await own.connect();
      } catch (error) {
        this.#drop(own);
        const delay = Math.min(this.#maxDelay, 50 * 2 ** this.#attempt++);
        this.#retryAt = Date.now() + delay;
        throw error;
      }
      if (this.#closed) {
        this.#drop(own);
        throw new Error("Cannot use RedisSessionStore: closed");
      }
      this.#attempt = 0;
    }
    const [write, claim, generation] = await this.#deadline(
      Promise.all([
        client.sendCommand(["SCRIPT", "LOAD", WRITE]),
        client.sendCommand(["SCRIPT", "LOAD", CLAIM]),
        client.sendCommand([
          "EVAL",
          MARK,
          "1",
          `${this.#prefix}generation`,
          crypto.randomUUID(),
          this.#generation,
        ]),
      ]) as Promise<unknown> as Promise<string[]>,
      client,
    );
    this.#generation = generation;
    this.#shas = { write, claim };
    return client;
  }
}
