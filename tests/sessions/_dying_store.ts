/**
 * Deaths of an instance injected at exact journal writes (no sleeps): a
 * shared store wrapper that "kills" its instance at one write, and two
 * instances (a dies on demand, b takes over) behind a fault proxy.
 *
 * @module
 */

import type { SessionEvent } from "../../client.ts";
import { binaryCodec } from "../../binary.ts";
import {
  DuplexServer,
  type SessionOptions,
  type SessionRecord,
  type SessionStore,
  type SessionWrite,
  type SessionWriteResult,
  type StoredSession,
} from "../../server.ts";
import { RedisSessionStore } from "../../redis.ts";
import { listen } from "../_server_helpers.ts";
import type { RedisServer } from "../_redis.ts";
import { deadline, once } from "../_helpers.ts";
import { behindProxy } from "./_session_helpers.ts";

/** Where the instance dies, relative to the write that carries the note. */
export type Death =
  /** The store kept "received"; the instance never heard the answer. */
  | "after-received"
  /** The listener ran; the write that says so never reached the store. */
  | "before-dispatched"
  /** The write that counts the note never reached the store. */
  | "before-received"
  /** The write that counts server frame `frame` never reached the store. */
  | "before-sent"
  /** It was stored; the instance never heard the answer. */
  | "after-sent";

/**
 * A shared store that "kills" its instance at one write: from then on
 * every write fails (the instance can no longer reach the store), and the
 * write that kills either is applied (its answer lost) or is not.
 */
export class DyingStore implements SessionStore {
  readonly inner: RedisSessionStore;
  /** Resolved when the instance died. */
  readonly died: PromiseWithResolvers<void> = Promise.withResolvers();
  dead = false;
  /** The most client frames stored as received so far. */
  received = 0;
  #death: { kind: Death; frame: number } | undefined = undefined;
  #lost: PromiseWithResolvers<SessionWriteResult[]>[] = [];

  constructor(url: string) {
    this.inner = new RedisSessionStore({ url });
  }

  /** Dies at the write that concerns client frame number `frame`. */
  arm(kind: Death, frame: number): void {
    this.#death = { kind, frame };
  }

  get(id: string): Promise<SessionRecord | undefined> {
    return this.inner.get(id);
  }
  set(record: SessionRecord, ttl: number): Promise<void> {
    return this.inner.set(record, ttl);
  }
  delete(id: string): Promise<void> {
    return this.inner.delete(id);
  }
  claim(
    id: string,
    owner: string,
  ): Promise<StoredSession | "busy" | undefined> {
    return this.inner.claim(id, owner);
  }

  async write(batch: readonly SessionWrite[]): Promise<SessionWriteResult[]> {
    if (this.dead) throw new Error("Cannot write sessions: instance dead");
    const death = this.#death;
    const fatal = death !== undefined &&
      batch.some((write) =>
        death.kind === "before-dispatched"
          ? (write.dispatched ?? 0) >= death.frame
          : death.kind.endsWith("-sent")
          ? write.sent >= death.frame
          : write.received >= death.frame
      );
    if (fatal && !death.kind.startsWith("after-")) return this.#die();
    const results = await this.inner.write(batch);
    if (fatal) {
      // Applied in Redis; the answer never reaches the instance.
      this.#die().catch(() => {});
      const lost = Promise.withResolvers<SessionWriteResult[]>();
      this.#lost.push(lost);
      return lost.promise;
    }
    for (const write of batch) {
      this.received = Math.max(this.received, write.received);
    }
    return results;
  }

  #die(): Promise<never> {
    this.dead = true;
    this.died.resolve();
    return Promise.reject(new Error("Cannot write sessions: instance dead"));
  }

  async close(): Promise<void> {
    for (const lost of this.#lost.splice(0)) {
      lost.reject(new Error("Cannot write sessions: instance dead"));
    }
    await this.inner.close();
  }
}

/** Instance a (its store dies on demand) and b, behind a balancer. */
export function pair(
  redis: RedisServer,
  sessions: SessionOptions = {},
) {
  const ran = { a: [] as unknown[], b: [] as unknown[] };
  const dying = new DyingStore(redis.url);
  const instances = (["a", "b"] as const).map((name) => {
    const store = name === "a"
      ? dying
      : new RedisSessionStore({ url: redis.url });
    const server = new DuplexServer({
      codecs: [binaryCodec],
      sessions: { store, grace: 30_000, handoverTimeout: 500, ...sessions },
    });
    server.on("note", (message: unknown, context) => {
      ran[name].push(message);
      // Told back at once, after any acknowledgement the release sent.
      server.notify(message, { to: context.from, method: "ran" });
    });
    server.handle("work", (n: number) => `${name}:${n}`);
    const http = listen(server);
    return { name, server, http, store };
  });
  const cluster = behindProxy(instances);
  const { proxy, clients } = cluster;
  return {
    ...cluster,
    dying,
    ran,
    /** a is dead: every connection goes to b from now on. */
    async failOver(): Promise<SessionEvent> {
      await deadline(dying.died.promise, 5_000, "instance a to die");
      proxy.targets = [instances[1].http.addr.port];
      const back = deadline(
        once(clients[0], "resumed") as Promise<SessionEvent>,
        10_000,
        "resumed on b",
      );
      proxy.cutAll("rst");
      return await back;
    },
  };
}
