/**
 * Type-level tests: ordinary code type-checks without `as const` or
 * `undefined` arguments, and wrong code does not (`@ts-expect-error` fails
 * the type check when the line has no error). Nothing connects: the
 * functions below are only type-checked, and run only for their shape.
 */

import assert from "node:assert/strict";
import type { Endpoint, Peer } from "../../mod.ts";
import type { Client } from "../../client.ts";
import type { DuplexServer, ServerRequestContext } from "../../server.ts";

interface ServerApi extends Endpoint {
  requests: {
    status: () => "ok" | "busy";
    pick: (n: number) => 1 | 2;
    "users.list": () => string[];
    sum: (numbers: number[]) => number;
    maybe: (text?: string) => string;
  };
  notifications: { typing: { room: string }; ready: void };
}
interface ClientApi extends Endpoint {
  requests: { confirm: (question: string) => boolean };
  notifications: { news: { id: number }; tick: number };
}

/** Handlers: literal and union results need no `as const`. */
function handlers(server: DuplexServer<ServerApi, ClientApi>): void {
  server.handle("status", () => "ok");
  server.handle(
    "status",
    (_params, { signal }) => signal.aborted ? "busy" : "ok",
  );
  server.handle("users.list", () => []);
  // An async handler's literal still needs `as const` (TypeScript widens
  // the literals of an async function's result before inference).
  server.handle("status", () => Promise.resolve("busy" as const));
  server.handle("pick", (n) => n > 0 ? 1 : 2);
  server.handle("users.list", () => server.users());
  // @ts-expect-error: "nope" is not "ok" | "busy"
  server.handle("status", () => "nope");
  // @ts-expect-error: a number is not a string[]
  server.handle("users.list", () => 3);
  // @ts-expect-error: not a method of the API
  server.handle("unknown", () => 1);
  // On the server, `from` is a string and `data` is there.
  server.handle("sum", (numbers, { from, data }) => {
    const upper: string = from.toUpperCase();
    assert.ok(upper !== undefined || data);
    return numbers.length;
  });
  server.onRequest((_message, context: ServerRequestContext) => context.from);
}

/** Calls: no params, no `undefined`; typed results. */
async function calls(client: Client<ClientApi, ServerApi>): Promise<void> {
  const users: string[] = await client.call("users.list");
  const status: "ok" | "busy" = await client.call("status");
  const text: string = await client.call("maybe");
  const sum: number = await client.call("sum", [1, 2], { timeout: 100 });
  // @ts-expect-error: sum needs its params
  await client.call("sum");
  // @ts-expect-error: wrong params
  await client.call("sum", ["1"]);
  // @ts-expect-error: not a method of the API
  await client.call("unknown");
  await client.emit("ready");
  await client.emit("typing", { room: "lobby" });
  // @ts-expect-error: typing needs its payload
  await client.emit("typing");
  assert.ok(users && status && text && sum);
}

/** notifications(): typed by method, and only the API's methods. */
async function stream(client: Client<ClientApi, ServerApi>): Promise<void> {
  for await (const frame of client.notifications({ method: "news" })) {
    const id: number = frame.message.id;
    const method: "news" = frame.method;
    assert.ok(id && method);
  }
  for await (const frame of client.notifications({ method: "tick" })) {
    // @ts-expect-error: a tick is a number
    const wrong: string = frame.message;
    assert.ok(wrong);
  }
  // @ts-expect-error: not a notification of the API
  client.notifications({ method: "unknown" });
  for await (const frame of client.notifications()) {
    const anything: unknown = frame.message;
    assert.ok(anything);
  }
}

/** The peer: the same inference both ways. */
async function peers(peer: Peer<ClientApi, ServerApi>): Promise<void> {
  peer.handle("confirm", (question) => question.endsWith("?"));
  const status: "ok" | "busy" = await peer.call("status");
  peer.emit("ready");
  // @ts-expect-error: sum needs its params
  await peer.call("sum");
  assert.ok(status);
  // A typed peer is still a Peer<Endpoint, Endpoint> where one is expected.
  const plain: Peer<Endpoint, Endpoint> = peer;
  assert.ok(plain);
}

/** Untyped endpoints: handlers declare their params; anything is allowed. */
async function untyped(server: DuplexServer, client: Client): Promise<void> {
  server.handle("sum", (numbers: number[]) => numbers.length);
  server.handle("echo", (text: string) => text);
  const anything: unknown = await client.call("whatever");
  await client.call("whatever", { any: "params" });
  assert.ok(anything);
}

Deno.test("types: ordinary code type-checks and wrong code does not (checked by deno check)", () => {
  // The functions exist for the type checker; referencing them keeps them
  // checked and shows they compiled.
  for (const fn of [handlers, calls, stream, peers, untyped]) {
    assert.equal(typeof fn, "function");
  }
});
