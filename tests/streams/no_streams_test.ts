/**
 * A client created without the `streams` option (an app that does not ship
 * stream support): every stream it is asked to make or take ends in a typed
 * `STREAMS_UNSUPPORTED` error naming the option, the other side's stream is
 * stopped, and the connection goes on.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Client } from "../../client.ts";
import { DuplexError, RemoteError } from "../../mod.ts";
import { setup } from "./_streams.ts";

const WITHOUT = { streams: undefined };

function unsupported(error: unknown): boolean {
  return error instanceof DuplexError &&
    error.code === "STREAMS_UNSUPPORTED" &&
    error.message.includes("streams option");
}

Deno.test("Client without streams: stream() throws and a stream upload rejects with STREAMS_UNSUPPORTED naming the option; the source is never read", async () => {
  await using s = await setup(
    (server) => {
      server.handle("count", async function* () {
        yield 1;
      });
      server.handle("save", () => 0);
      server.handle("echo", (value: unknown) => value);
    },
    {},
    WITHOUT,
  );
  const { client } = s;
  assert.throws(() => client.stream("count"), unsupported);
  let read = false;
  async function* source(): AsyncGenerator<number> {
    read = true;
    yield 1;
  }
  await assert.rejects(client.call("save", source()), unsupported);
  assert.equal(read, false);
  // The connection is unharmed.
  assert.equal(await client.call("echo", "still here"), "still here");
});

Deno.test("Client without streams: a server stream() of a client method gets a RemoteError STREAMS_UNSUPPORTED; the handler does not run", async () => {
  await using s = await setup(() => {}, {}, WITHOUT);
  const { client, server } = s;
  let ran = false;
  client.handle("feed", () => {
    ran = true;
    return 1;
  });
  const peer = server.connectionsOf("alice")[0].peer;
  await assert.rejects(
    async () => {
      for await (const _ of peer.stream("feed")) {
        // never reached
      }
    },
    (error) => error instanceof RemoteError && unsupported(error),
  );
  assert.equal(ran, false);
  assert.equal(await peer.call("feed"), 1);
});

Deno.test("Client without streams: a server upload to the client is refused and the server's source is stopped unread", async () => {
  await using s = await setup(() => {}, {}, WITHOUT);
  const { client, server } = s;
  client.handle("take", () => "taken");
  let read = 0;
  async function* numbers(): AsyncGenerator<number> {
    for (let i = 0; i < 1_000; i++) {
      read++;
      yield i;
    }
  }
  const source = numbers();
  const peer = server.connectionsOf("alice")[0].peer;
  await assert.rejects(
    peer.call("take", source),
    (error) => error instanceof RemoteError && unsupported(error),
  );
  // Stopped (its return() ran): nothing more can be read from it.
  assert.deepEqual(await source.next(), { done: true, value: undefined });
  assert.equal(read, 0);
});

Deno.test("Client without streams: a client handler that returns a stream answers STREAMS_UNSUPPORTED", async () => {
  await using s = await setup(() => {}, {}, WITHOUT);
  const { client, server } = s;
  client.handle("numbers", async function* () {
    yield 1;
  });
  const peer = server.connectionsOf("alice")[0].peer;
  await assert.rejects(
    peer.call("numbers"),
    (error) => error instanceof RemoteError && unsupported(error),
  );
});

Deno.test("Client without streams: stray stream frames (types 12 to 17) are dropped and the call still resolves", async () => {
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol: "duplex.v1",
      });
      socket.onmessage = (event) => {
        const { sequence } = JSON.parse(event.data);
        for (
          const frame of [
            { type: 12, message: 1 },
            { type: 13, credit: 1 },
            { type: 14, message: 2 },
            { type: 15 },
            { type: 16, credit: 1 },
            { type: 17 },
            { type: 2, message: "answer" },
          ]
        ) socket.send(JSON.stringify({ sequence, ...frame }));
      };
      return response;
    },
  );
  const client = new Client(`ws://127.0.0.1:${http.addr.port}`, {
    pingInterval: 0,
  });
  const errors: unknown[] = [];
  client.addEventListener("error", (event) => errors.push(event.error));
  await client.connect();
  assert.equal(await client.call("anything"), "answer");
  assert.deepEqual(errors, []);
  assert.equal(client.state, "open");
  await client.close();
});
