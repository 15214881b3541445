import assert from "node:assert/strict";
import { Heartbeat, type Pingable } from "../../client.ts";
import { deadline } from "../_helpers.ts";

/** A fake connection: counts pings and can answer them with a message. */
class FakePeer implements Pingable {
  pings = 0;
  onPing: () => void = () => {};
  readonly stats = { framesIn: [0, 0, 0, 0, 0, 0, 0] };
  ping(): void {
    this.pings++;
    this.onPing();
  }
  answer(): void {
    this.stats.framesIn[6]++;
  }
}

Deno.test("Heartbeat declares a silent connection dead after a ping and the timeout", async () => {
  const peer = new FakePeer();
  const dead = Promise.withResolvers<void>();
  using _heartbeat = new Heartbeat(peer, dead.resolve, {
    interval: 5,
    timeout: 10,
  });
  await deadline(dead.promise);
  // At least one ping went unanswered. Under CPU load a timer may fire late,
  // and the heartbeat then pings afresh instead of judging (see the throttled
  // tab test below), so more than one ping is allowed here.
  assert.ok(peer.pings >= 1, `${peer.pings} pings`);
});

Deno.test("Heartbeat keeps an answering connection alive, scheduling each ping from the reply", async () => {
  const peer = new FakePeer();
  const enough = Promise.withResolvers<void>();
  peer.onPing = () => {
    // Answer on a later turn, as a network reply would.
    setTimeout(() => {
      peer.answer();
      if (peer.pings === 5) enough.resolve();
    }, 0);
  };
  const heartbeat = new Heartbeat(peer, () => {
    enough.reject(new Error("declared dead"));
  }, { interval: 2, timeout: 10 });
  await deadline(enough.promise);
  heartbeat.stop();
  heartbeat.stop(); // idempotent
});

Deno.test("Heartbeat sends a fresh ping instead of a dead verdict when its timer ran late (throttled tab)", async () => {
  const peer = new FakePeer();
  const dead = Promise.withResolvers<void>();
  peer.onPing = () => {
    if (peer.pings !== 1) return;
    // Simulate a throttled or frozen tab: the event loop stalls for longer
    // than the timeout right after the first ping.
    setTimeout(() => {
      const until = Date.now() + 150;
      while (Date.now() < until) { /* stall */ }
    }, 0);
  };
  // A 50 ms timeout: the second ping's timer would have to run 50 ms late
  // too (a loaded machine) to be taken for another stall.
  using _heartbeat = new Heartbeat(peer, dead.resolve, {
    interval: 1,
    timeout: 50,
  });
  await deadline(dead.promise);
  assert.equal(peer.pings, 2);
});

Deno.test("Heartbeat.wake() pings at once and any message counts as the reply", () => {
  const peer = new FakePeer();
  using heartbeat = new Heartbeat(peer, () => {
    throw new Error("declared dead");
  }, { interval: 60_000, timeout: 60_000 });
  assert.equal(peer.pings, 0);
  heartbeat.wake();
  assert.equal(peer.pings, 1);
  peer.answer();
});

Deno.test("Heartbeat with interval 0 does nothing", () => {
  const peer = new FakePeer();
  using heartbeat = new Heartbeat(peer, () => {
    throw new Error("declared dead");
  }, { interval: 0 });
  heartbeat.wake();
  assert.equal(peer.pings, 0);
});
