/**
 * What issue 17 added to the server: the browser client at `clientPath`,
 * refusals a browser can read (`refusals: "close"`), `ConnectError.status`,
 * per-room join authorization, pushes to lists of users and rooms minus a
 * list, and the consistent mapping of errors that escape handlers.
 */

import assert from "node:assert/strict";
import {
  ConnectError,
  ConnectionClosedError,
  RemoteError,
  RequestTimeoutError,
} from "../../mod.ts";
import { Client } from "../../client.ts";
import {
  CLIENT_SCRIPT_ETAG,
  Cluster,
  DuplexServer,
  ForbiddenError,
  MemoryHub,
  MemoryPubSub,
  NotConnectedError,
} from "../../server.ts";
import { CLIENT_BUNDLE } from "../../src/server/client_bundle.ts";
import { deadline, once } from "../_helpers.ts";
import {
  duplexClient,
  legacyClient,
  listen,
  wsUrl,
} from "../_server_helpers.ts";

Deno.test("DuplexServer({ clientPath }) serves the browser client with an ETag; without it, nothing", async () => {
  const server = new DuplexServer({ clientPath: "/duplex.js" });
  await using http = listen(server);
  const base = `http://127.0.0.1:${http.addr.port}`;
  const script = await fetch(`${base}/duplex.js`);
  assert.equal(script.status, 200);
  assert.equal(
    script.headers.get("content-type"),
    "text/javascript; charset=utf-8",
  );
  assert.equal(script.headers.get("etag"), CLIENT_SCRIPT_ETAG);
  const source = await script.text();
  assert.equal(source, CLIENT_BUNDLE);
  const module = await import(
    `data:text/javascript,${encodeURIComponent(source)}`
  );
  assert.equal(typeof module.Client, "function");
  const again = await fetch(`${base}/duplex.js`, {
    headers: { "if-none-match": CLIENT_SCRIPT_ETAG },
  });
  assert.equal(again.status, 304);
  await again.body?.cancel();

  const plain = new DuplexServer();
  await using http2 = listen(plain);
  const none = await fetch(`http://127.0.0.1:${http2.addr.port}/duplex.js`);
  assert.equal(none.status, 404);
  await none.body?.cancel();
  await server.shutdown();
  await plain.shutdown();
});

Deno.test("ConnectError carries the HTTP status of a refused handshake, and 401 is not retried", async () => {
  const server = new DuplexServer({ authenticate: () => undefined });
  await using http = listen(server);
  const client = new Client(`ws://127.0.0.1:${http.addr.port}/`);
  const error = await client.connect().then(() => undefined, (e) => e);
  assert.ok(error instanceof ConnectError);
  assert.equal(error.status, 401);
  assert.equal(client.state, "closed");
  await client.close();
  await server.shutdown();
});

Deno.test('refusals: "close" accepts and closes with 4000 + status and the reason, so a browser learns why', async () => {
  const server = new DuplexServer({
    refusals: "close",
    authenticate: (request) =>
      new URL(request.url).searchParams.get("token") === "ok"
        ? "ada"
        : undefined,
  });
  await using http = listen(server);
  // A raw WebSocket, as a browser sees it: it opens, then closes with why.
  const socket = new WebSocket(
    `ws://127.0.0.1:${http.addr.port}/`,
    "duplex.v1",
  );
  const closed = once<CloseEvent>(socket, "close");
  const event = await closed;
  assert.equal(event.code, 4001);
  assert.equal(event.reason, "Cannot connect: not authenticated");
  assert.equal(server.connections, 0, "no connection was registered");

  // The Client stops on 4001 (no reconnection) and says why.
  const client = new Client(`ws://127.0.0.1:${http.addr.port}/`);
  const gone = once<CloseEvent>(client, "close");
  await client.connect().catch(() => {});
  const final = await gone;
  assert.equal(final.code, 4001);
  assert.equal(client.state, "closed");
  await client.close();
  // Accepted connections are unaffected.
  const ok = new Client(`ws://127.0.0.1:${http.addr.port}/?token=ok`);
  await ok.connect();
  assert.equal(ok.state, "open");
  await ok.close();
  await server.shutdown();
});

Deno.test("authorizeJoin: join() throws ForbiddenError, which a handler passes to the caller as FORBIDDEN", async () => {
  const server = new DuplexServer({
    authenticate: (request) => {
      const user = new URL(request.url).searchParams.get("user")!;
      return { user, data: { staff: user === "ada" } };
    },
    authorizeJoin: (room, _user, data) =>
      !room.startsWith("staff:") || (data as { staff: boolean }).staff,
  });
  server.handle("join", (room: string, { from }) => server.join(room, from));
  await using http = listen(server);
  await using ada = new Client(wsUrl(http, "ada"));
  await using bob = new Client(wsUrl(http, "bob"));
  await ada.connect();
  await bob.connect();
  assert.equal(await ada.call("join", "staff:ops"), true);
  assert.equal(await bob.call("join", "lobby"), true);
  await assert.rejects(bob.call("join", "staff:ops"), (error: RemoteError) => {
    assert.equal(error.code, "FORBIDDEN");
    assert.match(error.message, /^Cannot join "staff:ops"/);
    return true;
  });
  assert.throws(() => server.join("staff:ops", "bob"), ForbiddenError);
  assert.deepEqual(server.members("staff:ops"), ["ada"]);
  await server.shutdown();
});

Deno.test("pushes: to, room and except take lists; a member of two rooms gets it once", async () => {
  const server = new DuplexServer();
  await using http = listen(server);
  const users = ["ada", "bob", "cy", "dee"];
  const clients = await Promise.all(
    users.map((user) => legacyClient(server, http, user)),
  );
  try {
    server.join("a", "ada");
    server.join("a", "bob");
    server.join("b", "bob");
    server.join("b", "cy");
    // Who got `message`: each client reads up to a marker pushed to
    // everyone after it (pushes reach a connection in order).
    let markers = 0;
    const got = async (message: string) => {
      const marker = `marker ${++markers}`;
      server.notify(marker);
      const seen: string[] = [];
      await Promise.all(clients.map(async (client, i) => {
        for (;;) {
          const frame = await client.queue.next();
          if (frame.message === message) seen.push(users[i]);
          if (frame.message === marker) return;
        }
      }));
      return seen.sort();
    };
    server.notify("to-list", { to: ["ada", "cy", "ada"], except: "cy" });
    assert.deepEqual(await got("to-list"), ["ada"]);
    server.notify("rooms", { room: ["a", "b"], except: ["ada"] });
    assert.deepEqual(await got("rooms"), ["bob", "cy"]);
    server.notify("all-but", { except: ["bob", "dee"] });
    assert.deepEqual(await got("all-but"), ["ada", "cy"]);
    // Exactly once: bob is in both rooms (a second copy would be counted).
    server.notify("once", { room: ["a", "b"] });
    server.notify("once", { to: ["bob", "bob"] });
    assert.deepEqual(await got("once"), ["ada", "bob", "bob", "cy"]);
    assert.throws(
      () => server.notify("x", { to: ["ada"], room: "a" }),
      TypeError,
    );
  } finally {
    for (const client of clients) await client[Symbol.asyncDispose]();
    await server.shutdown();
  }
});

Deno.test("pushes with lists cross a cluster", async () => {
  const hub = new MemoryHub();
  const instances = await Promise.all([0, 1].map(async () => {
    const pubsub = new MemoryPubSub({ hub });
    const cluster = new Cluster(pubsub);
    const server = new DuplexServer({ cluster });
    await cluster.start();
    return { pubsub, cluster, server, http: listen(server) };
  }));
  const [a, b] = instances;
  try {
    const seen = new Promise<void>((resolve) => {
      let users = 0;
      a.cluster.addEventListener("join", () => ++users === 3 && resolve());
    });
    const ada = await legacyClient(a.server, a.http, "ada");
    const bob = await legacyClient(b.server, b.http, "bob");
    const cy = await legacyClient(b.server, b.http, "cy");
    await deadline(seen);
    b.server.join("r1", "bob");
    b.server.join("r2", "bob");
    b.server.join("r2", "cy");
    a.server.join("r1", "ada");
    a.server.notify("rooms", { room: ["r1", "r2"], except: ["cy"] });
    a.server.notify("users", { to: ["bob", "cy"] });
    assert.equal((await ada.queue.next()).message, "rooms");
    assert.equal((await bob.queue.next()).message, "rooms");
    assert.equal((await bob.queue.next()).message, "users");
    assert.equal((await cy.queue.next()).message, "users");
    for (const client of [ada, bob, cy]) await client[Symbol.asyncDispose]();
  } finally {
    for (const { server, cluster, pubsub, http } of instances) {
      await server.shutdown();
      await cluster.close();
      await pubsub.close();
      await http.shutdown();
    }
  }
});

Deno.test("errors escaping a handler: typed ones keep their code, others become INTERNAL_ERROR", async () => {
  const server = new DuplexServer();
  server.handle(
    "ask",
    (_params: unknown) =>
      server.call("confirm", null, { to: "bob", timeout: 20 }),
  );
  server.handle(
    "ask nobody",
    () => server.call("confirm", null, { to: "nobody" }),
  );
  server.handle("crash", () => {
    throw new Error("secret detail");
  });
  const reported = once<ErrorEvent>(server, "error");
  await using http = listen(server);
  await using ada = await duplexClient(server, http, "ada");
  await using bob = await duplexClient(server, http, "bob");
  bob.peer.handle("confirm", () => new Promise(() => {}));
  await assert.rejects(ada.peer.call("ask"), (error: RemoteError) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.code, new RequestTimeoutError(1, 1).code);
    return true;
  });
  await assert.rejects(ada.peer.call("ask nobody"), (error: RemoteError) => {
    assert.equal(error.code, new NotConnectedError("nobody").code);
    return true;
  });
  await assert.rejects(ada.peer.call("crash"), (error: RemoteError) => {
    assert.equal(error.code, "INTERNAL_ERROR");
    assert.equal(error.message, "Internal error");
    return true;
  });
  assert.equal((await reported).error.message, "secret detail");
  assert.equal(new ConnectionClosedError(1006, "").code, "CONNECTION_CLOSED");
  await server.shutdown();
});
