/**
 * The presence feed: snapshot on listen, batched diffs (at most one per
 * interval), metadata, the cost of storms and churn, a killed instance's
 * users announced gone, no zombies; and the old per-user notifications for
 * clients that do not listen.
 */

import assert from "node:assert/strict";
import { Client, type PresenceChange, PresenceView } from "../../client.ts";
import {
  Cluster,
  type ClusterOptions,
  createChatServer,
  DuplexServer,
  type DuplexServerOptions,
  MemoryHub,
  MemoryPubSub,
  PresenceFeed,
  RemoteError,
} from "../../server.ts";
import { deadline } from "../_helpers.ts";
import { listen, open, wsUrl } from "../_server_helpers.ts";

/** Resolves once `view` satisfies `check` after a change. */
function until(
  view: PresenceView,
  check: () => boolean,
  what: string,
  ms = 5_000,
): Promise<void> {
  if (check()) return Promise.resolve();
  const { promise, resolve } = Promise.withResolvers<void>();
  const listener = () => {
    if (check()) resolve();
  };
  view.addEventListener("change", listener);
  return deadline(promise, ms, what).finally(() =>
    view.removeEventListener("change", listener)
  );
}

/** Counts the presence frames a client receives. */
function countFrames(
  client: Client,
): { state: number; diff: number; at: number[] } {
  const counts = { state: 0, diff: 0, at: [] as number[] };
  client.on("presence.state", () => counts.state++);
  client.on("presence.diff", () => {
    counts.diff++;
    counts.at.push(performance.now());
  });
  return counts;
}

/** A server with a cluster on its own hub, serving; and a listening client. */
async function clustered(
  interval: number,
  cluster: ClusterOptions = {},
  options: DuplexServerOptions = {},
) {
  const hub = new MemoryHub();
  const pubsub = new MemoryPubSub({ hub });
  const c = new Cluster(pubsub, { id: "node-a", ...cluster });
  const server = new DuplexServer({ ...options, cluster: c });
  const feed = new PresenceFeed(server, { interval });
  await c.start();
  const http = listen(server);
  return {
    hub,
    cluster: c,
    server,
    feed,
    http,
    async [Symbol.asyncDispose]() {
      feed.close();
      await server.shutdown();
      await c.close();
      await pubsub.close();
      await http.shutdown();
    },
  };
}

Deno.test("PresenceFeed sends presence.state on listen, then diffs at most once per interval", async () => {
  const server = new DuplexServer();
  using feed = new PresenceFeed(server, { interval: 100 });
  await using http = listen(server);
  await using ada = new Client(wsUrl(http, "ada"));
  const frames = countFrames(ada);
  await ada.connect();
  using view = new PresenceView(ada);
  await view.listen();
  assert.deepEqual([...view.users.keys()], ["ada"]);
  assert.equal(frames.state, 1);

  const sockets: WebSocket[] = [];
  for (let i = 0; i < 50; i++) {
    sockets.push(await open(wsUrl(http, `user-${i}`)));
  }
  await until(view, () => view.users.size === 51, "51 users");
  for (let i = 1; i < frames.at.length; i++) {
    const gap = frames.at[i] - frames.at[i - 1];
    assert.ok(gap >= 90, `diffs ${gap} ms apart`);
  }
  assert.ok(frames.diff <= 10, `${frames.diff} diffs`);
  assert.equal(feed.stats.frames, frames.diff);

  const closed = sockets.map((socket) =>
    new Promise((resolve) => socket.onclose = resolve)
  );
  for (const socket of sockets) socket.close();
  await Promise.all(closed);
  await until(view, () => view.users.size === 1, "users gone");
  assert.deepEqual([...view.users.keys()], ["ada"]);
  await server.shutdown();
});

Deno.test("PresenceFeed carries metadata and refuses invalid metadata", async () => {
  const server = new DuplexServer();
  using _feed = new PresenceFeed(server, { interval: 10 });
  await using http = listen(server);
  await using ada = new Client(wsUrl(http, "ada"));
  await using bob = new Client(wsUrl(http, "bob"));
  await ada.connect();
  await bob.connect();
  using view = new PresenceView(ada);
  await view.listen();
  using bobView = new PresenceView(bob);
  const updated = new Promise<PresenceChange>((resolve) =>
    view.addEventListener("change", (event) => {
      if (event.detail.updated.includes("bob")) resolve(event.detail);
    })
  );
  assert.equal(await bobView.set({ status: "away", device: "phone" }), true);
  await deadline(updated, 3_000, "bob's metadata");
  assert.deepEqual(view.users.get("bob"), { status: "away", device: "phone" });
  await assert.rejects(
    bobView.set({ text: "x".repeat(300) }),
    (error: unknown) =>
      error instanceof RemoteError && error.code === "INVALID_PARAMS",
  );
  // A client that starts listening later gets the metadata in its snapshot.
  await bobView.listen();
  assert.deepEqual(bobView.users.get("bob"), {
    status: "away",
    device: "phone",
  });
  await server.shutdown();
});

Deno.test("PresenceFeed delivers 10,000 joins to a listening client in at most 40 frames", async () => {
  await using s = await clustered(50);
  await using ada = new Client(wsUrl(s.http, "ada"));
  const frames = countFrames(ada);
  await ada.connect();
  using view = new PresenceView(ada);
  await view.listen();
  // 10,000 users arrive in 100 bursts, each in its own task.
  for (let burst = 0; burst < 100; burst++) {
    for (let i = 0; i < 100; i++) s.cluster.addLocalUser(`u${burst}-${i}`);
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  await until(view, () => view.users.size === 10_001, "10,001 users");
  assert.ok(frames.diff <= 40, `${frames.diff} presence.diff frames`);
  assert.equal(frames.state, 1);
  for (let burst = 0; burst < 100; burst++) {
    for (let i = 0; i < 100; i++) s.cluster.removeLocalUser(`u${burst}-${i}`);
  }
  await until(view, () => view.users.size === 1, "users gone");
});

Deno.test("PresenceFeed churn by one client costs one diff per interval, and leaves no zombie", async () => {
  await using s = await createChurn();
  const { feed, cluster, view, frames } = s;
  const diffsBefore = feed.stats.diffs;
  const started = performance.now();
  // 200 connections with fresh ids, one at a time.
  for (let i = 0; i < 200; i++) {
    const socket = await open(wsUrl(s.http, `churn-${i}`));
    const closed = new Promise((resolve) => socket.onclose = resolve);
    socket.close();
    await closed;
  }
  const elapsed = performance.now() - started;
  const diffs = feed.stats.diffs - diffsBefore;
  assert.ok(
    diffs <= Math.ceil(elapsed / 50) + 1,
    `${diffs} diffs in ${elapsed} ms`,
  );
  assert.ok(frames.diff <= diffs + 1, `${frames.diff} frames`);
  // No zombie: once settled, the client's list is the cluster's.
  await until(view, () => view.users.size === 1_001, "churn settled");
  assert.deepEqual(
    [...view.users.keys()].sort(),
    cluster.online().sort(),
  );
  assert.deepEqual(feed.online().sort(), cluster.online().sort());
});

async function createChurn() {
  const s = await clustered(50);
  for (let i = 0; i < 1_000; i++) s.cluster.addLocalUser(`online-${i}`);
  const ada = new Client(wsUrl(s.http, "ada"));
  const frames = countFrames(ada);
  await ada.connect();
  const view = new PresenceView(ada);
  await view.listen();
  return {
    ...s,
    view,
    frames,
    async [Symbol.asyncDispose]() {
      view[Symbol.dispose]();
      await ada.close();
      await s[Symbol.asyncDispose]();
    },
  };
}

Deno.test("PresenceFeed announces the users of a killed instance gone within 10 s (default timings)", async () => {
  const hub = new MemoryHub();
  const busA = new MemoryPubSub({ hub });
  const busB = new MemoryPubSub({ hub });
  const a = new Cluster(busA, { id: "node-a" });
  const b = new Cluster(busB, { id: "node-b" });
  const server = new DuplexServer({ cluster: a });
  using _feed = new PresenceFeed(server);
  await a.start();
  await b.start();
  await using http = listen(server);
  await using ada = new Client(wsUrl(http, "ada"));
  await ada.connect();
  using view = new PresenceView(ada);
  await view.listen();
  b.addLocalUser("bob");
  await until(view, () => view.users.has("bob"), "bob");
  const killed = performance.now();
  await busB.close(); // B dies without a goodbye.
  await until(view, () => !view.users.has("bob"), "bob gone", 10_000);
  const elapsed = performance.now() - killed;
  assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
  await server.shutdown();
  await b.close();
  await a.close();
  await busA.close();
});

Deno.test("chat: a duplex.v1 client that does not listen keeps getting presence.joined, one that listens gets diffs only", async () => {
  const server = createChatServer({ presenceInterval: 10 });
  await using http = listen(server);
  const old = await open(wsUrl(http, "old"), "duplex.v1");
  // The raw text of each frame: it must be byte for byte what it was.
  const texts: string[] = [];
  let arrived = () => {};
  old.addEventListener("message", (event) => {
    texts.push(event.data);
    arrived();
  });
  const nextText = async () => {
    while (texts.length === 0) {
      await deadline(new Promise<void>((resolve) => arrived = resolve), 3_000);
    }
    return texts.shift();
  };
  await using fresh = new Client(wsUrl(http, "fresh"));
  const methods: string[] = [];
  for (const method of ["presence.joined", "presence.left", "presence.diff"]) {
    fresh.on(method, () => methods.push(method));
  }
  await fresh.connect();
  using view = new PresenceView(fresh);
  await view.listen();
  const cy = await open(wsUrl(http, "cy"), "duplex.v1");
  assert.equal(
    await nextText(),
    '{"sequence":0,"type":3,"message":{"user":"fresh"},"method":"presence.joined"}',
  );
  assert.equal(
    await nextText(),
    '{"sequence":0,"type":3,"message":{"user":"cy"},"method":"presence.joined"}',
  );
  await until(view, () => view.users.has("cy"), "cy in the view");
  assert.ok(!methods.includes("presence.joined"), methods.join());
  assert.ok(methods.includes("presence.diff"));
  const closed = [old, cy].map((socket) =>
    new Promise((resolve) => socket.onclose = resolve)
  );
  await server.shutdown();
  await Promise.all(closed);
});
