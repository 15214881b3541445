/**
 * Middleware on a real server and client: it sees the method, the user,
 * the authentication data and the frame; it can refuse with FORBIDDEN (the
 * handler never runs), time and log; it runs in order, around requests and
 * notifications, on both sides.
 */

import assert from "node:assert/strict";
import {
  ForbiddenError,
  type MiddlewareContext,
  RemoteError,
} from "../../mod.ts";
import { Client } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { listen } from "../_server_helpers.ts";

interface Session {
  role: "admin" | "guest";
}

function setup() {
  const sessions: Record<string, Session> = {
    ada: { role: "admin" },
    bob: { role: "guest" },
  };
  const server = new DuplexServer({
    authenticate: (_request, { url }) => {
      const user = url.searchParams.get("user") ?? "";
      return user in sessions ? { user, data: sessions[user] } : undefined;
    },
  });
  const http = listen(server);
  const clients: Client[] = [];
  return {
    server,
    client(user: string) {
      const client = new Client(
        `ws://127.0.0.1:${http.addr.port}/?user=${user}`,
      );
      clients.push(client);
      return client;
    },
    async [Symbol.asyncDispose]() {
      for (const client of clients) await client.close();
      await server.shutdown();
      await http.shutdown();
    },
  };
}

Deno.test("DuplexServer.use() sees method, user, auth data and frame, and refuses with FORBIDDEN before the handler", async () => {
  await using s = setup();
  const seen: MiddlewareContext[] = [];
  let ran = 0;
  s.server.use((context, next) => {
    seen.push(context);
    const { role } = context.data as Session;
    if (context.method?.startsWith("admin.") && role !== "admin") {
      throw new ForbiddenError(`Cannot call ${context.method}: admins only`);
    }
    return next();
  });
  s.server.handle("admin.reset", (_params: unknown, { from, data }) => {
    ran++;
    return `${from} (${(data as Session).role}) reset`;
  });
  const ada = s.client("ada");
  const bob = s.client("bob");
  await ada.connect();
  await bob.connect();
  assert.equal(
    await ada.call("admin.reset", { hard: true }),
    "ada (admin) reset",
  );
  await assert.rejects(bob.call("admin.reset"), (error: RemoteError) => {
    assert.ok(error instanceof RemoteError);
    assert.equal(error.code, "FORBIDDEN");
    assert.equal(error.message, "Cannot call admin.reset: admins only");
    return true;
  });
  assert.equal(ran, 1, "the refused request's handler never ran");
  assert.equal(seen[0].kind, "request");
  assert.equal(seen[0].method, "admin.reset");
  assert.equal(seen[0].from, "ada");
  assert.deepEqual(seen[0].data, { role: "admin" });
  assert.deepEqual(seen[0].frame.message, { hard: true });
  assert.equal(seen[1].from, "bob");
});

Deno.test("middleware run in order, can time and replace the result, and errors inside next() reach them", async () => {
  await using s = setup();
  const log: string[] = [];
  s.server.use(async (context, next) => {
    const start = performance.now();
    try {
      return await next();
    } catch (error) {
      log.push(`failed ${(error as RemoteError).code}`);
      throw error;
    } finally {
      const ms = performance.now() - start;
      log.push(
        `${context.method} by ${context.from} in ${ms >= 0 ? "t" : "?"}`,
      );
    }
  });
  s.server.use(async (_context, next) => {
    log.push("second");
    return `[${await next()}]`;
  });
  s.server.handle("hello", (name: string) => `hello ${name}`);
  s.server.handle("fail", () => {
    throw new RemoteError({ code: "NOPE", message: "No" });
  });
  const ada = s.client("ada");
  await ada.connect();
  assert.equal(await ada.call("hello", "you"), "[hello you]");
  await assert.rejects(ada.call("fail"), (e: RemoteError) => e.code === "NOPE");
  assert.deepEqual(log, [
    "second",
    "hello by ada in t",
    "second",
    "failed NOPE",
    "fail by ada in t",
  ]);
});

Deno.test("notification middleware: a refused notification reaches no listener and is reported", async () => {
  await using s = setup();
  s.server.use((context, next) => {
    if (context.kind === "notification" && context.method === "shout") {
      const { role } = context.data as Session;
      if (role !== "admin") throw new ForbiddenError("Cannot shout: guests");
    }
    return next();
  });
  const heard: string[] = [];
  const got = Promise.withResolvers<void>();
  s.server.on("shout", (text: string, frame) => {
    heard.push(`${frame.from}: ${text}`);
    got.resolve();
  });
  const reported = once<ErrorEvent>(s.server, "error");
  const bob = s.client("bob");
  const ada = s.client("ada");
  await bob.connect();
  await ada.connect();
  await bob.emit("shout", "hi");
  assert.equal((await reported).error.code, "FORBIDDEN");
  await ada.emit("shout", "hello");
  await deadline(got.promise);
  assert.deepEqual(heard, ["ada: hello"]);
});

Deno.test("Client.use() wraps the server's requests and pushes on the client side", async () => {
  await using s = setup();
  const ada = s.client("ada");
  const kinds: string[] = [];
  ada.use((context, next) => {
    kinds.push(`${context.kind} ${context.method}`);
    if (context.method === "secret") throw new ForbiddenError("Cannot tell");
    return next();
  });
  ada.handle("secret", () => "42");
  ada.handle("confirm", () => true);
  const news = ada.notifications({ method: "news" });
  await ada.connect();
  assert.equal(await s.server.call("confirm", "?", { to: "ada" }), true);
  await assert.rejects(
    s.server.call("secret", null, { to: "ada" }),
    (error: RemoteError) => error.code === "FORBIDDEN",
  );
  s.server.emit("news", 1, { to: "ada" });
  assert.equal((await news.next()).value?.message, 1);
  assert.deepEqual(kinds, [
    "request confirm",
    "request secret",
    "notification news",
  ]);
});

Deno.test("Registry.use() returns a remover", async () => {
  await using s = setup();
  const off = s.server.use(() => {
    throw new ForbiddenError();
  });
  s.server.handle("ping", () => "pong");
  const ada = s.client("ada");
  await ada.connect();
  await assert.rejects(ada.call("ping"), RemoteError);
  off();
  assert.equal(await ada.call("ping"), "pong");
});
