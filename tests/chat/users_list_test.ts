/**
 * `users.list` against amplification: one answer holds at most
 * USERS_PAGE_SIZE users, and a cursor pages through the rest.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createChatServer, USERS_PAGE_SIZE } from "../../server.ts";
import {
  closeAndWait,
  duplexClient,
  listen,
  until,
} from "../_server_helpers.ts";

Deno.test("chat users.list answers one page at a time, with a cursor", async () => {
  const server = createChatServer();
  await using http = listen(server);
  const names = ["carol", "alice", "dave", "bob"];
  const clients = [];
  for (const name of names) {
    clients.push(await duplexClient(server, http, name));
  }
  await until(server, () => server.users().length === 4, "4 users");
  const { peer } = clients[0];
  assert.deepEqual(await peer.call("users.list", undefined), [
    "alice",
    "bob",
    "carol",
    "dave",
  ]);
  assert.deepEqual(await peer.call("users.list", { limit: 2 }), [
    "alice",
    "bob",
  ]);
  assert.deepEqual(
    await peer.call("users.list", { after: "bob", limit: 2 }),
    ["carol", "dave"],
  );
  assert.deepEqual(await peer.call("users.list", { after: "dave" }), []);
  assert.deepEqual(
    await peer.call("users.list", { limit: 10 * USERS_PAGE_SIZE }),
    ["alice", "bob", "carol", "dave"],
  );
  // The kept list follows presence.
  await closeAndWait(clients[1].socket);
  await until(server, () => !server.isOnline("alice"), "alice offline");
  assert.deepEqual(await peer.call("users.list", { limit: 1 }), ["bob"]);
  for (const client of [clients[0], ...clients.slice(2)]) {
    await closeAndWait(client.socket);
  }
  await server.shutdown();
});
