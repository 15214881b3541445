import assert from "node:assert/strict";
import {
  type Client,
  OutcomeUnknownError,
  RequestTimeoutError,
  type SessionEvent,
  type SessionStorageLike,
} from "../../client.ts";
import { deadline, once } from "../_helpers.ts";
import type { Fault } from "../_fault_proxy.ts";
import { setup } from "./_session_helpers.ts";

for (const fault of ["rst", "fin", "midframe", "blackhole"] as Fault[]) {
  Deno.test(`Session: a response cut off by a drop (${fault}) arrives after the resume; the handler ran once`, async () => {
    await using t = setup();
    let runs = 0;
    const started = Promise.withResolvers<void>();
    const release = Promise.withResolvers<void>();
    t.server.handle("work", async (n: number) => {
      runs++;
      started.resolve();
      await release.promise;
      return n * 2;
    });
    const client = t.client("alice");
    await client.connect();
    const answer = client.call("work", 21);
    await deadline(started.promise);
    const resumed = once<SessionEvent>(client, "resumed");
    const serverResumed = once(t.server, "resume");
    // The response is written while the connection is cut.
    const closed = once(client, "close");
    t.proxy.cutAll(fault);
    await closed;
    release.resolve();
    await resumed;
    await serverResumed;
    assert.equal(await answer, 42);
    assert.equal(runs, 1);
    assert.equal(t.server.sessionMetrics.resumed, 1);
  });
}

Deno.test("Session: notifications and room pushes missed during a drop arrive once, in order; rooms kept, presence never flaps", async () => {
  await using t = setup();
  const alice = t.client("alice");
  const bob = t.client("bob");
  const presence: string[] = [];
  bob.on(
    "presence.left",
    (m: { user: string }) => presence.push(`left ${m.user}`),
  );
  bob.on(
    "presence.joined",
    (m: { user: string }) => presence.push(`joined ${m.user}`),
  );
  t.server.addEventListener("online", (event) => {
    const user = (event as CustomEvent<{ user: string }>).detail.user;
    t.server.notify({ user }, { method: "presence.joined", except: user });
  });
  t.server.addEventListener("offline", (event) => {
    const user = (event as CustomEvent<{ user: string }>).detail.user;
    t.server.notify({ user }, { method: "presence.left", except: user });
  });
  await bob.connect();
  await alice.connect();
  assert.ok(t.server.join("room", "alice"));
  const received: number[] = [];
  alice.on("tick", (n: number) => received.push(n));
  for (let n = 0; n < 10; n++) {
    t.server.notify(n, { to: "alice", method: "tick" });
  }
  // Away: the proxy refuses new connections until the pushes are made.
  t.proxy.refusing = true;
  const disconnected = once(t.server, "disconnect");
  t.proxy.cutAll("rst");
  await disconnected;
  assert.deepEqual(t.server.roomsOf("alice"), ["room"]);
  assert.ok(t.server.isOnline("alice"));
  for (let n = 10; n < 500; n++) {
    if (n % 2) t.server.notify(n, { to: "alice", method: "tick" });
    else t.server.notify(n, { room: "room", method: "tick" });
  }
  const resumed = once<SessionEvent>(alice, "resumed");
  t.proxy.refusing = false;
  const event = await resumed;
  assert.ok(event.replayed >= 490);
  // One more round trip: every replayed frame was delivered before it.
  await alice.call("users.list", undefined).catch(() => {});
  assert.deepEqual(received, Array.from({ length: 500 }, (_, n) => n));
  assert.deepEqual(t.server.roomsOf("alice"), ["room"]);
  assert.deepEqual(presence, ["joined alice"]);
});

Deno.test("Session: a server request whose answer was cut off resolves once after the resume", async () => {
  await using t = setup();
  const alice = t.client("alice");
  let runs = 0;
  const started = Promise.withResolvers<void>();
  const release = Promise.withResolvers<void>();
  alice.handle("confirm", async (n: number) => {
    runs++;
    started.resolve();
    await release.promise;
    return n + 1;
  });
  await alice.connect();
  const answer = t.server.request(1, { to: "alice", method: "confirm" });
  await deadline(started.promise);
  const resumed = once(alice, "resumed");
  const closed = once(alice, "close");
  t.proxy.cutAll("rst");
  await closed;
  release.resolve();
  await resumed;
  assert.equal(await answer, 2);
  assert.equal(runs, 1);
});

Deno.test("Session: requests queued while away go out once after the resume", async () => {
  await using t = setup();
  const seen: number[] = [];
  t.server.handle("add", (n: number) => {
    seen.push(n);
    return n;
  });
  const alice = t.client("alice");
  await alice.connect();
  t.proxy.refusing = true;
  const closed = once(alice, "close");
  t.proxy.cutAll("rst");
  await closed;
  const answers = [1, 2, 3].map((n) => alice.call("add", n));
  const resumed = once(alice, "resumed");
  t.proxy.refusing = false;
  await resumed;
  assert.deepEqual(await Promise.all(answers), [1, 2, 3]);
  assert.deepEqual(seen, [1, 2, 3]);
});

Deno.test("Session: away longer than the grace period, the client is told (expired), its pending request rejects with OutcomeUnknownError, rooms are left", async () => {
  await using t = setup({ sessions: { grace: 50 } });
  const started = Promise.withResolvers<void>();
  t.server.handle("hang", (_, context) => {
    started.resolve();
    // Runs until the session ends (which aborts it).
    return new Promise((_, reject) =>
      context.signal.addEventListener(
        "abort",
        () => reject(context.signal.reason),
      )
    );
  });
  const alice = t.client("alice");
  await alice.connect();
  t.server.join("room", "alice");
  const oldSession = t.server.connectionsOf("alice")[0].peer;
  const pending = alice.call("hang", undefined);
  await deadline(started.promise);
  t.proxy.refusing = true;
  const expired = once<CustomEvent<{ user: string; reason: string }>>(
    t.server,
    "expire",
  );
  const offline = once(t.server, "offline");
  t.proxy.cutAll("rst");
  assert.equal((await expired).detail.reason, "expired");
  await offline;
  assert.deepEqual(t.server.roomsOf("alice"), []);
  const notResumed = once<SessionEvent>(alice, "not-resumed");
  t.proxy.refusing = false;
  assert.equal((await notResumed).reason, "expired");
  const error = await pending.then(() => undefined, (error) => error);
  assert.ok(error instanceof OutcomeUnknownError);
  assert.equal(error.sessionReason, "expired");
  // Nothing of the old session is reused: a new peer, new state.
  assert.notEqual(t.server.connectionsOf("alice")[0].peer, oldSession);
  assert.equal(t.server.sessionMetrics.expired, 1);
  assert.equal(t.server.sessionMetrics.notResumed.expired, 1);
});

Deno.test("Session: more missed frames than the buffer holds end the session at once (overflow), memory bounded, the client is told", async () => {
  await using t = setup({ sessions: { maxBufferedFrames: 20 } });
  const alice = t.client("alice");
  await alice.connect();
  t.proxy.refusing = true;
  const disconnected = once(t.server, "disconnect");
  t.proxy.cutAll("rst");
  await disconnected;
  const expired = once<CustomEvent<{ reason: string }>>(t.server, "expire");
  for (let n = 0; n < 1_000; n++) {
    t.server.notify("x".repeat(100), { to: "alice", method: "tick" });
  }
  assert.equal((await expired).detail.reason, "overflow");
  assert.equal(t.server.sessionMetrics.overflows, 1);
  assert.equal(t.server.isOnline("alice"), false);
  const notResumed = once<SessionEvent>(alice, "not-resumed");
  t.proxy.refusing = false;
  assert.equal((await notResumed).reason, "overflow");
});

Deno.test("Session: a deliberate close ends the session at once (presence left without waiting for the grace period)", async () => {
  await using t = setup({ sessions: { grace: 60_000 } });
  const alice = t.client("alice");
  await alice.connect();
  const offline = once(t.server, "offline");
  await alice.close();
  await offline;
  assert.equal(t.server.isOnline("alice"), false);
});

/** A `sessionStorage` double over a Map (what a page keeps across a reload). */
function memoryStorage(): {
  memory: Map<string, string>;
  storage: SessionStorageLike;
} {
  const memory = new Map<string, string>();
  const storage: SessionStorageLike = {
    getItem: (key) => memory.get(key) ?? null,
    setItem: (key, value) => void memory.set(key, value),
    removeItem: (key) => void memory.delete(key),
  };
  return { memory, storage };
}

Deno.test("Session: a page reload with sessionStorage resumes and delivers what the page missed", async () => {
  await using t = setup();
  const { memory, storage } = memoryStorage();
  const first = t.client("alice", { session: { storage } });
  const before: number[] = [];
  first.on("tick", (n: number) => before.push(n));
  await first.connect();
  t.server.notify(1, { to: "alice", method: "tick" });
  await alice_round_trip(first);
  const disconnected = once(t.server, "disconnect");
  globalThis.dispatchEvent(new Event("pagehide"));
  await disconnected;
  assert.ok(memory.has("duplex.session"));
  t.server.notify(2, { to: "alice", method: "tick" });
  t.server.notify(3, { to: "alice", method: "tick" });
  const second = t.client("alice", { session: { storage } });
  const after: number[] = [];
  second.on("tick", (n: number) => after.push(n));
  const resumed = once<SessionEvent>(second, "resumed");
  await second.connect();
  assert.equal((await resumed).replayed, 2);
  await alice_round_trip(second);
  assert.deepEqual(before, [1]);
  assert.deepEqual(after, [2, 3]);
});

Deno.test("Session: after a page reload, the new page cancels the old page's pending requests and never reuses their sequences; the stored session is taken once", async () => {
  await using t = setup();
  const { memory, storage } = memoryStorage();
  const release = Promise.withResolvers<void>();
  const started = Promise.withResolvers<void>();
  const aborted = Promise.withResolvers<void>();
  t.server.handle("slow", async (_: unknown, { signal }) => {
    started.resolve();
    signal.addEventListener("abort", () => aborted.resolve());
    await release.promise;
    return "old";
  });
  t.server.handle("echo", (text: string) => text);
  const first = t.client("alice", { session: { storage } });
  await first.connect();
  const old = first.call("slow", null).catch((error) => error);
  await started.promise;
  const disconnected = once(t.server, "disconnect");
  globalThis.dispatchEvent(new Event("pagehide"));
  await disconnected;
  assert.ok((await old) instanceof Error);
  const second = t.client("alice", { session: { storage } });
  // Taken out of the storage: a copy of this tab's storage starts afresh.
  assert.equal(memory.has("duplex.session"), false);
  const resumed = once<SessionEvent>(second, "resumed");
  await second.connect();
  await resumed;
  // Sequence 1 of the old page: cancelled before the new page's first
  // request (sequence 2, not 1).
  assert.equal(await second.call("echo", "new"), "new");
  await aborted.promise;
  release.resolve();
  // Cancelled: its response is never sent.
  assert.equal(await second.call("echo", "after"), "after");
  assert.equal(second.peer?.stats.unexpected, 0);
});

Deno.test("Session: after a page reload, a server request the old page had received but not answered times out on the server; one sent during the reload is answered by the new page", async () => {
  await using t = setup();
  const { storage } = memoryStorage();
  const first = t.client("alice", { session: { storage } });
  const asked = Promise.withResolvers<void>();
  first.handle("confirm", () => {
    asked.resolve();
    return new Promise(() => {}); // the page goes before it answers
  });
  await first.connect();
  const unanswered = t.server.call("confirm", null, {
    to: "alice",
    timeout: 300,
  }).catch((error) => error);
  await asked.promise;
  const disconnected = once(t.server, "disconnect");
  globalThis.dispatchEvent(new Event("pagehide"));
  await disconnected;
  const duringReload = t.server.call("confirm", "again", { to: "alice" });
  const second = t.client("alice", { session: { storage } });
  second.handle("confirm", (question) => `new page: ${question}`);
  await second.connect();
  assert.equal(await duringReload, "new page: again");
  const error = await unanswered;
  assert.ok(error instanceof RequestTimeoutError, String(error));
});

Deno.test("Session: a page back from the back/forward cache (pagehide, then connect() again) resumes its session and gets what it missed", async () => {
  await using t = setup();
  const { memory, storage } = memoryStorage();
  t.server.handle("echo", (text: string) => text);
  const page = t.client("alice", { session: { storage } });
  const ticks: number[] = [];
  page.on("tick", (n: number) => ticks.push(n));
  await page.connect();
  assert.equal(await page.call("echo", "before"), "before");
  const disconnected = once(t.server, "disconnect");
  globalThis.dispatchEvent(new Event("pagehide"));
  await disconnected;
  assert.equal(page.state, "closed");
  t.server.notify(1, { to: "alice", method: "tick" });
  t.server.notify(2, { to: "alice", method: "tick" });
  // pageshow with event.persisted: the page connects again.
  const resumed = once<SessionEvent>(page, "resumed");
  await page.connect();
  assert.equal((await resumed).replayed, 2);
  assert.equal(await page.call("echo", "after"), "after");
  assert.deepEqual(ticks, [1, 2]);
  assert.equal(memory.has("duplex.session"), false, "taken once");
  assert.equal(t.server.sessionMetrics.started, 1);
  assert.equal(t.server.sessionMetrics.resumed, 1);
});

Deno.test("Session: a page reloaded after the grace period gets not-resumed (expired) and a new session", async () => {
  await using t = setup({ sessions: { grace: 50 } });
  const { storage } = memoryStorage();
  const first = t.client("alice", { session: { storage } });
  await first.connect();
  const expired = once(t.server, "expire");
  globalThis.dispatchEvent(new Event("pagehide"));
  await expired;
  const second = t.client("alice", { session: { storage } });
  const notResumed = once<SessionEvent>(second, "not-resumed");
  await second.connect();
  assert.equal((await notResumed).reason, "expired");
  assert.equal(t.server.sessionMetrics.started, 2);
  assert.equal(t.server.sessionMetrics.resumed, 0);
});

/** A request round trip: everything the server sent before has arrived. */
async function alice_round_trip(client: Client): Promise<void> {
  await client.request(null, { method: "nothing" }).catch(() => {});
}

Deno.test("Session: clients that do not ask, and servers with sessions off, see no session frames", async () => {
  await using t = setup({ sessions: false });
  const alice = t.client("alice");
  await alice.connect();
  assert.equal((alice.peer?.socket as WebSocket).protocol, "duplex.v1");
  assert.equal(t.server.sessionMetrics.started, 0);
  await using u = setup();
  const bob = u.client("bob", { session: false });
  await bob.connect();
  assert.equal(u.server.sessionMetrics.started, 0);
  assert.equal((bob.peer?.socket as WebSocket).protocol, "duplex.v1");
});
