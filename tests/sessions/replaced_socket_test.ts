import assert from "node:assert/strict";
import { deadline, once } from "../_helpers.ts";
import { setup } from "./_session_helpers.ts";

// A resume replaces a connection its client found dead, often behind a
// black hole. Deno keeps a WebSocket it sent a close frame on until the
// answer comes or TCP gives up (many minutes), so that socket would hold
// its address's connection slot all that time; left open, Deno's idle
// timeout closes it.
Deno.test("Session: a socket replaced by a resume behind a black hole is closed by the idle timeout and frees its address's slot", async () => {
  await using t = setup({ maxConnectionsPerAddress: 2, idleTimeout: 1 });
  t.server.handle("echo", (n: number) => n);
  const alice = t.client("alice");
  await alice.connect();
  const resumed = once(t.server, "resume");
  t.proxy.cutAll("blackhole");
  await resumed;
  assert.equal(await alice.call("echo", 1), 1);
  await deadline(
    t.proxy.blackholesEndedByServer(),
    5_000,
    "the server to close the replaced socket",
  );
  // Every connection comes from the proxy (127.0.0.1): alice's new one and
  // the replaced one held both slots until the replaced one closed.
  const bob = t.client("bob");
  await bob.connect();
  assert.equal(await bob.call("echo", 2), 2);
  assert.equal(await alice.call("echo", 3), 3);
});
