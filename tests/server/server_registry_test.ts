import assert from "node:assert/strict";
import { ServerRegistry } from "../../src/server/server_registry.ts";
import { DuplexServer } from "../../src/server/duplex_server.ts";
import { Registry } from "../../src/peer/receiver.ts";

Deno.test("ServerRegistry: the default handler is kept as a Map keeps it", () => {
  const registry = new ServerRegistry();
  const handlers = registry.handlers;
  const first = () => 1;
  const second = () => 2;
  const named = () => 3;
  assert.equal(handlers.get(undefined), undefined);
  const remove = registry.handle(undefined, first);
  registry.handle("sum", named);
  assert.equal(handlers.get(undefined), first);
  assert.equal(handlers.get("sum"), named);
  assert.equal(handlers.size, 2);
  registry.handle(undefined, second);
  assert.equal(handlers.get(undefined), second);
  // The remover of a replaced handler leaves the current one.
  remove();
  assert.equal(handlers.get(undefined), second);
  assert.equal(handlers.delete(undefined), true);
  assert.equal(handlers.get(undefined), undefined);
  assert.equal(handlers.has(undefined), false);
  handlers.set(undefined, first);
  assert.deepEqual([...handlers.keys()], ["sum", undefined]);
  handlers.clear();
  assert.equal(handlers.get(undefined), undefined);
  assert.equal(handlers.size, 0);
  assert.ok(handlers instanceof Map);
});

Deno.test("DuplexServer: its own registry is a ServerRegistry, a given one is kept", () => {
  assert.ok(new DuplexServer().registry instanceof ServerRegistry);
  const shared = new Registry();
  assert.equal(new DuplexServer({ registry: shared }).registry, shared);
});
