import assert from "node:assert/strict";
import type { NotifyFrame } from "../../mod.ts";
import {
  type ChatClientEndpoint,
  type ChatServerEndpoint,
  createChatServer,
} from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { RawWebSocket } from "../_raw_ws.ts";
import {
  closeAndWait,
  duplexClient,
  legacyClient,
  listen,
  until,
} from "../_server_helpers.ts";

Deno.test("chat relays a request to every other user, then answers ok, byte for byte", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  const raw: string[] = [];
  alice.socket.addEventListener("message", (e) => raw.push(e.data));
  const bobRaw = once<MessageEvent>(bob.socket, "message");
  const carolRaw = once<MessageEvent>(carol.socket, "message");

  alice.send({ sequence: 41, type: 1, message: "hello" });

  const relayed = '{"sequence":41,"type":3,"message":"hello","from":"alice"}';
  assert.equal((await bobRaw).data, relayed);
  assert.equal((await carolRaw).data, relayed);
  assert.deepEqual(await alice.queue.next(), {
    sequence: 41,
    type: 2,
    message: "ok",
  });
  assert.deepEqual(raw, ['{"sequence":41,"type":2,"message":"ok"}']);
});

Deno.test("chat sends the notify to the others before the sender's ok", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  // Record the server's sends, in order, across the three sockets.
  const sent: string[] = [];
  for (const user of ["alice", "bob", "carol"]) {
    const socket = server.connectionsOf(user)[0].peer.socket as WebSocket;
    const send = socket.send.bind(socket);
    socket.send = (data: string) => {
      sent.push(`${user} ${data}`);
      send(data);
    };
  }
  alice.send({ sequence: 5, type: 1, message: "x" });
  await Promise.all([bob.queue.next(), carol.queue.next(), alice.queue.next()]);
  const notify = '{"sequence":5,"type":3,"message":"x","from":"alice"}';
  assert.deepEqual(sent, [
    `bob ${notify}`,
    `carol ${notify}`,
    'alice {"sequence":5,"type":2,"message":"ok"}',
  ]);
});

Deno.test("chat excludes every connection of the sender and reaches every connection of the others", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using tab1 = await legacyClient(server, http, "alice");
  await using tab2 = await legacyClient(server, http, "alice");
  await using bob1 = await legacyClient(server, http, "bob");
  await using bob2 = await legacyClient(server, http, "bob");

  tab1.send({ sequence: 1, type: 1, message: "from tab 1" });
  const expected = {
    sequence: 1,
    type: 3,
    message: "from tab 1",
    from: "alice",
  };
  assert.deepEqual(await bob1.queue.next(), expected);
  assert.deepEqual(await bob2.queue.next(), expected);
  assert.deepEqual(await tab1.queue.next(), {
    sequence: 1,
    type: 2,
    message: "ok",
  });
  // tab2 got nothing from its own user: its next message is bob's.
  bob1.send({ sequence: 7, type: 1, message: "from bob" });
  assert.deepEqual(await tab2.queue.next(), {
    sequence: 7,
    type: 3,
    message: "from bob",
    from: "bob",
  });
});

Deno.test("chat ignores the from a client claims", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using mallory = await legacyClient(server, http, "mallory");
  await using bob = await legacyClient(server, http, "bob");
  mallory.send({ sequence: 3, type: 1, message: "trust me", from: "bob" });
  assert.equal((await bob.queue.next()).from, "mallory");
});

Deno.test("chat matches 200 pipelined requests per client over three interleaved clients", async () => {
  const server = createChatServer();
  await using http = listen(server);
  const users = ["alice", "bob", "carol"];
  await using alice = await legacyClient(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await legacyClient(server, http, "carol");
  const clients = [alice, bob, carol];
  const COUNT = 200;
  const received = clients.map(() => ({
    responses: [] as number[],
    notifies: new Map<string, number[]>(),
  }));
  const done = clients.map((client, i) =>
    new Promise<void>((resolve) => {
      const expected = COUNT + 2 * COUNT;
      let seen = 0;
      client.socket.addEventListener("message", (event) => {
        const frame = JSON.parse(event.data);
        const mine = received[i];
        if (frame.type === 2) {
          assert.equal(frame.message, "ok");
          mine.responses.push(frame.sequence);
        } else {
          assert.equal(frame.type, 3);
          assert.equal(frame.message, `${frame.from}:${frame.sequence}`);
          const list = mine.notifies.get(frame.from) ?? [];
          list.push(frame.sequence);
          mine.notifies.set(frame.from, list);
        }
        if (++seen === expected) resolve();
      });
    })
  );
  // Interleave: request i of every client before request i + 1 of any.
  for (let sequence = 1; sequence <= COUNT; sequence++) {
    clients.forEach((client, i) =>
      client.send({
        sequence,
        type: 1,
        message: `${users[i]}:${sequence}`,
      })
    );
  }
  await deadline(Promise.all(done), 10_000, "every response and notify");
  const all = Array.from({ length: COUNT }, (_, i) => i + 1);
  received.forEach((mine, i) => {
    assert.deepEqual(mine.responses, all, `${users[i]}'s responses`);
    assert.deepEqual(
      [...mine.notifies.keys()].sort(),
      users.filter((u) => u !== users[i]),
    );
    for (const list of mine.notifies.values()) assert.deepEqual(list, all);
  });
});

Deno.test("chat works the same for duplex.v1 peers, mixed with original clients", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await duplexClient<
    ChatClientEndpoint,
    ChatServerEndpoint
  >(server, http, "alice");
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await duplexClient(server, http, "carol");

  const carolGot = new Promise<[unknown, NotifyFrame]>((resolve) =>
    carol.peer.onNotify((message, frame) => resolve([message, frame]))
  );
  assert.equal(await alice.peer.request({ text: "hi" }), "ok");
  assert.deepEqual(await bob.queue.next(), {
    sequence: 1,
    type: 3,
    message: { text: "hi" },
    from: "alice",
  });
  const [message, frame] = await deadline(carolGot);
  assert.deepEqual(message, { text: "hi" });
  assert.equal(frame.from, "alice");
  assert.equal(frame.method, undefined);

  // An original client's message reaches the peers the same way.
  const aliceGot = new Promise<NotifyFrame>((resolve) =>
    alice.peer.onNotify((_, frame) => resolve(frame))
  );
  bob.send({ sequence: 9, type: 1, message: "yo" });
  assert.deepEqual(await bob.queue.next(), {
    sequence: 9,
    type: 2,
    message: "ok",
  });
  assert.deepEqual(await deadline(aliceGot), {
    sequence: 9,
    type: 3,
    message: "yo",
    from: "bob",
  });
});

Deno.test("chat sends presence to duplex.v1 clients only, and users.list answers who is online", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using alice = await duplexClient<
    ChatClientEndpoint,
    ChatServerEndpoint
  >(server, http, "alice");
  const joined: string[] = [];
  const left: string[] = [];
  const bobJoined = new Promise<NotifyFrame>((resolve) =>
    alice.peer.on("presence.joined", ({ user }, frame) => {
      joined.push(user);
      if (user === "bob") resolve(frame);
    })
  );
  const bobLeft = new Promise<void>((resolve) =>
    alice.peer.on("presence.left", ({ user }) => {
      left.push(user);
      if (user === "bob") resolve();
    })
  );

  await using legacy = await legacyClient(server, http, "legacy");
  const bob = await duplexClient(server, http, "bob");
  const frame = await deadline(bobJoined);
  assert.equal(frame.from, undefined, "presence has no from");
  assert.deepEqual(
    await alice.peer.call("users.list", undefined),
    ["alice", "bob", "legacy"],
  );
  // A second tab of bob is no news.
  const bobTab = await duplexClient(server, http, "bob");
  await closeAndWait(bobTab.socket);
  await closeAndWait(bob.socket);
  await deadline(bobLeft);
  assert.deepEqual(joined, ["legacy", "bob"]);
  assert.deepEqual(left, ["bob"]);
  assert.deepEqual(await alice.peer.call("users.list", undefined), [
    "alice",
    "legacy",
  ]);

  // The original client saw none of it: its next message is a chat message.
  alice.peer.request("after").catch(() => {});
  assert.deepEqual(await legacy.queue.next(), {
    sequence: 3,
    type: 3,
    message: "after",
    from: "alice",
  });
});

Deno.test("chat keeps going when a sender vanishes without a close frame mid-request", async () => {
  const server = createChatServer();
  await using http = listen(server);
  await using bob = await legacyClient(server, http, "bob");
  await using carol = await duplexClient(server, http, "carol");
  const aliceLeft = new Promise<void>((resolve) =>
    carol.peer.on("presence.left", ({ user }: { user: string }) => {
      if (user === "alice") resolve();
    })
  );

  const online = until(server, () => server.isOnline("alice"), "alice");
  const alice = await RawWebSocket.connect(http.addr.port, {
    path: "/?user=alice",
  });
  await online;
  for (let sequence = 1; sequence <= 50; sequence++) {
    await alice.sendText(
      JSON.stringify({ sequence, type: 1, message: `m${sequence}` }),
    );
  }
  // Vanish without a close frame while the responses are still unread.
  alice.drop();
  await deadline(aliceLeft, 5_000, "alice's presence.left");
  assert.equal(server.isOnline("alice"), false);

  // Bob got every relayed message that arrived, in order.
  const first = await bob.queue.next();
  assert.equal(first.from, "alice");
  // The others keep chatting.
  bob.send({ sequence: 100, type: 1, message: "still here?" });
  const reply = await bob.queue.next((f) => f.type === 2);
  assert.deepEqual(reply, { sequence: 100, type: 2, message: "ok" });
  assert.equal(await carol.peer.request("yes"), "ok");
  assert.equal(
    (await bob.queue.next((f) => f.from === "carol")).message,
    "yes",
  );
});

Deno.test("createChatServer() serves the demo page at GET / and 404 elsewhere", async () => {
  const server = createChatServer();
  await using http = listen(server);
  const base = `http://127.0.0.1:${http.addr.port}`;
  const page = await fetch(`${base}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
  assert.match(await page.text(), /Duplex chat/);
  const missing = await fetch(`${base}/nope`);
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  const health = await fetch(`${base}/healthz`);
  assert.equal(await health.text(), "ok\n");
});
