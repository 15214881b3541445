/**
 * Contracts with real Standard Schema libraries (Zod 3 and Valibot 1 from
 * npm, test-only) on a real server and client: validation on both sides,
 * typed issues, inferred types.
 */

import assert from "node:assert/strict";
import { z } from "npm:zod@3";
import * as v from "npm:valibot@1";
import {
  bind,
  type ContractEndpoint,
  defineContract,
  implement,
  listen,
  RemoteError,
  ValidationError,
} from "../../mod.ts";
import { Client } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { listen as serve } from "../_server_helpers.ts";

// The server's API, in Zod.
const serverApi = defineContract({
  requests: {
    add: {
      params: z.object({ a: z.number(), b: z.number() }),
      result: z.number(),
    },
    // Transforms: the handler gets the output, the caller sends the input.
    length: { params: z.string().transform((text) => text.length) },
    lie: { result: z.number() },
    ping: {},
  },
  notifications: {
    typing: z.object({ room: z.string().min(1) }),
  },
});

// The client's API, in Valibot.
const clientApi = defineContract({
  requests: {
    confirm: {
      params: v.object({ question: v.string() }),
      result: v.boolean(),
    },
  },
  notifications: {
    news: v.object({ id: v.number(), text: v.string() }),
  },
});

type ServerApi = ContractEndpoint<typeof serverApi>;
type ClientApi = ContractEndpoint<typeof clientApi>;

async function setup() {
  const server = new DuplexServer<ServerApi, ClientApi>();
  let ran = 0;
  implement(server, serverApi, {
    add: ({ a, b }) => {
      ran++;
      return a + b;
    },
    length: (count) => count * 10,
    // deno-lint-ignore no-explicit-any
    lie: () => "not a number" as any,
    ping: () => "pong",
  });
  const http = serve(server);
  const client = new Client<ClientApi, ServerApi>(
    `ws://127.0.0.1:${http.addr.port}/?user=ada`,
  );
  await client.connect();
  return {
    server,
    client,
    ran: () => ran,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.shutdown();
      await http.shutdown();
    },
  };
}

Deno.test("implement() with Zod: valid params reach the handler, invalid get INVALID_PARAMS with issues and the handler never runs", async () => {
  await using s = await setup();
  assert.equal(await s.client.call("add", { a: 1, b: 2 }), 3);
  assert.equal(s.ran(), 1);
  // The original complaint: strings added as strings.
  const error = await s.client.call(
    "add",
    // @ts-expect-error: strings are not numbers
    { a: "1", b: "2" },
  ).then(() => undefined, (e) => e);
  assert.ok(error instanceof RemoteError);
  assert.equal(error.code, "INVALID_PARAMS");
  assert.match(error.message, /^Cannot validate params of add: .* at a/);
  const { issues } = error.data as { issues: unknown[] };
  assert.deepEqual(
    issues.map((issue) => (issue as { path: unknown }).path),
    [["a"], ["b"]],
  );
  for (const issue of issues) {
    assert.equal(typeof (issue as { message: unknown }).message, "string");
  }
  assert.equal(s.ran(), 1, "the handler did not run");
});

Deno.test("implement(): transforms apply, results are checked, methods without params are called without arguments", async () => {
  await using s = await setup();
  assert.equal(await s.client.call("length", "hello"), 50);
  await assert.rejects(
    s.client.call("lie"),
    (error: RemoteError) => error.code === "INVALID_RESULT",
  );
  const pong: unknown = await s.client.call("ping");
  assert.equal(pong, "pong");
});

Deno.test("listen() with Zod: valid payloads reach the listener, invalid ones are reported as INVALID_PAYLOAD errors", async () => {
  await using s = await setup();
  const rooms: string[] = [];
  const got = Promise.withResolvers<void>();
  listen(s.server, serverApi, {
    typing: ({ room }) => {
      rooms.push(room);
      got.resolve();
    },
  });
  const errors: unknown[] = [];
  const reported = Promise.withResolvers<void>();
  s.server.addEventListener("error", (event) => {
    errors.push(event.error);
    reported.resolve();
  });
  await s.client.notify({ room: "" }, { method: "typing" });
  await deadline(reported.promise);
  assert.ok(errors[0] instanceof ValidationError);
  assert.equal((errors[0] as ValidationError).code, "INVALID_PAYLOAD");
  assert.deepEqual((errors[0] as ValidationError).issues[0].path, ["room"]);
  await s.client.emit("typing", { room: "lobby" });
  await deadline(got.promise);
  assert.deepEqual(rooms, ["lobby"]);
});

Deno.test("the client side with Valibot: the server's requests and pushes are validated too", async () => {
  await using s = await setup();
  let asked = 0;
  implement(s.client, clientApi, {
    confirm: ({ question }) => {
      asked++;
      return question.endsWith("?");
    },
  });
  const news: number[] = [];
  const got = Promise.withResolvers<void>();
  listen(s.client, clientApi, {
    news: ({ id }) => {
      news.push(id);
      got.resolve();
    },
  });
  assert.equal(
    await s.server.call("confirm", { question: "Ready?" }, { to: "ada" }),
    true,
  );
  await assert.rejects(
    // deno-lint-ignore no-explicit-any
    s.server.call("confirm", { question: 42 } as any, { to: "ada" }),
    (error: RemoteError) => {
      assert.equal(error.code, "INVALID_PARAMS");
      assert.deepEqual(
        (error.data as { issues: { path: unknown }[] }).issues[0].path,
        ["question"],
      );
      return true;
    },
  );
  assert.equal(asked, 1);
  const failed = once<ErrorEvent>(s.client, "error");
  // deno-lint-ignore no-explicit-any
  s.server.emit("news", { id: "1" } as any, { to: "ada" });
  assert.equal(
    ((await failed).error as ValidationError).code,
    "INVALID_PAYLOAD",
  );
  s.server.emit("news", { id: 2, text: "hi" }, { to: "ada" });
  await deadline(got.promise);
  assert.deepEqual(news, [2]);
});

Deno.test("bind(): the caller checks params before sending and results after", async () => {
  await using s = await setup();
  const api = bind(s.client, serverApi);
  assert.equal(await api.call("add", { a: 2, b: 3 }), 5);
  assert.equal(await api.call("ping"), "pong");
  // @ts-expect-error: b is missing
  await assert.rejects(api.call("add", { a: 2 }), (error: ValidationError) => {
    assert.ok(error instanceof ValidationError);
    assert.equal(error.code, "INVALID_PARAMS");
    assert.deepEqual(error.issues.map((issue) => issue.path), [["b"]]);
    return true;
  });
  assert.equal(s.ran(), 1, "the invalid call never left the client");
  await assert.rejects(
    api.emit("typing", { room: "" }),
    (error: ValidationError) => error.code === "INVALID_PAYLOAD",
  );
  // The server calls the client through its own bound contract, with `to`.
  implement(s.client, clientApi, { confirm: () => true });
  const toClient = bind(s.server, clientApi);
  assert.equal(
    await toClient.call("confirm", { question: "?" }, { to: "ada" }),
    true,
  );
});

Deno.test("implement() refuses a method the contract does not have", () => {
  const server = new DuplexServer();
  assert.throws(
    // @ts-expect-error: not in the contract
    () => implement(server, serverApi, { nope: () => 1 }),
    TypeError,
  );
});

Deno.test("ContractEndpoint types: inferred from the schemas", () => {
  type Add = ServerApi["requests"]["add"];
  const add: Add = ({ a, b }) => a + b;
  assert.equal(add({ a: 1, b: 1 }), 2);
  type Typing = ServerApi["notifications"]["typing"];
  const typing: Typing = { room: "x" };
  // @ts-expect-error: room must be a string
  const wrong: Typing = { room: 1 };
  assert.ok(typing && wrong);
});
