import assert from "node:assert/strict";
import { RedisSessionStore } from "../../redis.ts";
import type { SessionWrite } from "../../server.ts";
import { redisTest } from "../_redis.ts";

function snapshot(id: string, owner: string): SessionWrite {
  return {
    id,
    owner,
    version: 1,
    received: 3,
    sent: 2,
    acked: 0,
    frames: ['{"sequence":7,"type":1,"method":"ask"}', "\0AAECAw=="],
    requested: 7,
    opened: [],
    answered: [],
    ttl: 60_000,
    snapshot: {
      record: { id, user: "ann", secretHash: "h", owner },
      open: [2],
      rooms: ["lobby"],
    },
  };
}

redisTest(
  "RedisSessionStore: a claim returns what was written, with the last server→client request",
  async (redis) => {
    await using store = new RedisSessionStore({ url: redis.url });
    assert.deepEqual(await store.write([snapshot("s1", "a.1")]), ["ok"]);
    const stored = await store.claim("s1", "b.1");
    assert.ok(stored !== undefined && stored !== "busy");
    assert.equal(stored.requested, 7);
    assert.equal(stored.received, 3);
    assert.deepEqual(stored.open, [2]);
    assert.deepEqual(stored.rooms, ["lobby"]);
    assert.equal(stored.frames.length, 2);
    // The old owner is fenced.
    const next = { ...snapshot("s1", "a.1"), version: 2, snapshot: undefined };
    assert.deepEqual(await store.write([next]), ["fenced"]);
  },
);

redisTest(
  "RedisSessionStore: after Redis lost its data a missing session is 'not yet' within recoveryWindow, unknown otherwise",
  async (redis) => {
    await using knew = new RedisSessionStore({ url: redis.url });
    await using impatient = new RedisSessionStore({
      url: redis.url,
      recoveryWindow: 0,
    });
    await using short = new RedisSessionStore({
      url: redis.url,
      recoveryWindow: 300,
    });
    // Before any loss: unknown is unknown.
    assert.equal(await knew.get("nope"), undefined);
    assert.equal(await impatient.get("nope"), undefined);
    assert.equal(await short.get("nope"), undefined);
    await redis.restart();
    // The first call after the restart reconnects and sees the new
    // generation (the store's first call may fail on the broken connection).
    await knew.get("nope").catch(() => {});
    await assert.rejects(knew.get("nope"), /Cannot find session yet/);
    await impatient.get("nope").catch(() => {});
    assert.equal(await impatient.get("nope"), undefined);
    // A store that never saw Redis before the loss is told by the mark.
    await using fresh = new RedisSessionStore({ url: redis.url });
    await assert.rejects(fresh.get("nope"), /Cannot find session yet/);
    // Once the window is over, unknown again.
    await short.get("nope").catch(() => {});
    const deadline = Date.now() + 5_000;
    let answer: unknown = "pending";
    while (answer === "pending" && Date.now() < deadline) {
      answer = await short.get("nope").catch(() => "pending");
      if (answer === "pending") await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(answer, undefined);
    // A session written again is found at once.
    assert.deepEqual(await knew.write([snapshot("s2", "a.2")]), ["ok"]);
    assert.equal((await knew.get("s2"))?.user, "ann");
  },
);
