import assert from "node:assert/strict";
import { ConnectionRegistry } from "../../src/server/connection_registry.ts";
import type { ServerConnection } from "../../src/server/connection.ts";
import { peerStats } from "../../src/peer/peer_options.ts";
import type { AnyEndpoint } from "../../mod.ts";

type Fake = ServerConnection<AnyEndpoint, AnyEndpoint>;

function connection(user: string, data?: unknown): Fake {
  return {
    user,
    data,
    registered: false,
    peer: { stats: peerStats() },
  } as unknown as Fake;
}

Deno.test("ConnectionRegistry keeps a user's one connection without a set, and several oldest first", () => {
  const registry = new ConnectionRegistry<AnyEndpoint, AnyEndpoint>();
  const [a1, a2, a3] = [
    connection("a", 1),
    connection("a", 2),
    connection("a"),
  ];
  assert.equal(registry.add(a1), true);
  assert.equal(registry.own("a"), a1);
  assert.deepEqual([...registry.connectionsOf("a")!], [a1]);
  assert.equal(registry.add(a2), false);
  assert.deepEqual([...registry.connectionsOf("a")!], [a1, a2]);
  // Joins see the oldest connection's data, with one connection or several.
  let seen: unknown;
  registry.authorizeJoin = (_room, _user, data) => (seen = data, true);
  assert.equal(registry.join("room", "a"), true);
  assert.equal(seen, 1);
  assert.equal(registry.remove(a1), false);
  assert.deepEqual([...registry.connectionsOf("a")!], [a2]);
  registry.replace(a2, a3);
  assert.deepEqual([...registry.connectionsOf("a")!], [a3]);
  assert.equal(registry.remove(a3), true);
  assert.equal(registry.isOnline("a"), false);
  assert.equal(registry.connectionsOf("a"), undefined);
  assert.deepEqual(registry.roomsOf("a"), []);

  const [b1, b2] = [connection("b"), connection("b")];
  registry.add(b1);
  registry.replace(b1, b2);
  assert.equal(registry.own("b"), b2);
  assert.equal(b1.registered, false);
  assert.equal(registry.remove(b2), true);
  assert.equal(registry.userCount, 0);
  assert.equal(registry.connections.size, 0);
});

Deno.test("ConnectionRegistry.hasAudience() of everyone but a user follows connects and disconnects, a lone user included", () => {
  const registry = new ConnectionRegistry<AnyEndpoint, AnyEndpoint>();
  const everyoneBut = (user?: string) =>
    registry.hasAudience(undefined, undefined, user);
  assert.equal(everyoneBut(), false);
  assert.equal(everyoneBut("a"), false);
  const [a1, a2, b] = [connection("a"), connection("a"), connection("b")];
  registry.add(a1);
  assert.equal(everyoneBut(), true);
  assert.equal(everyoneBut("a"), false);
  assert.equal(everyoneBut("b"), true);
  registry.add(a2);
  assert.equal(everyoneBut("a"), false);
  registry.add(b);
  assert.equal(everyoneBut("a"), true);
  assert.equal(everyoneBut("b"), true);
  registry.remove(a1);
  assert.equal(everyoneBut("a"), true);
  registry.remove(b); // "a" is alone again (one connection left)
  assert.equal(everyoneBut("a"), false);
  assert.equal(everyoneBut("b"), true);
  registry.add(b);
  registry.remove(a2); // now "b" is the lone user
  assert.equal(everyoneBut("b"), false);
  assert.equal(everyoneBut("a"), true);
  registry.remove(b);
  assert.equal(everyoneBut(), false);
  assert.equal(everyoneBut("b"), false);
});
