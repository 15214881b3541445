import assert from "node:assert/strict";
import { BINARY_SUBPROTOCOL, binaryCodec } from "../../binary.ts";
import { DuplexServer } from "../../server.ts";
import { Peer } from "../../mod.ts";
import { closeAndWait, listen, open, wsUrl } from "../_server_helpers.ts";
import { MessageQueue, once } from "../_helpers.ts";
import { setup, signal } from "./_streams.ts";

const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0, 255]);

Deno.test("Client with binaryCodec negotiates duplex.v1.bin and sends bytes in requests, responses and notifications both ways", async () => {
  const seen = signal<unknown>();
  await using s = await setup(
    (server) => {
      server.handle("reverse", (bytes: Uint8Array) => bytes.slice().reverse());
      server.handle("describe", (value: { buffer: ArrayBuffer }) => ({
        isBuffer: value.buffer instanceof ArrayBuffer,
        size: value.buffer.byteLength,
        back: value.buffer,
      }));
      server.on("upload", (payload: unknown) => seen.resolve(payload));
    },
    { codecs: [binaryCodec] },
    { codec: binaryCodec },
  );
  const { server, client } = s;
  assert.equal(client.protocol, BINARY_SUBPROTOCOL);
  assert.equal(server.connectionsOf("alice")[0].protocol, BINARY_SUBPROTOCOL);

  // Request and response.
  const reversed = await client.call("reverse", PNG);
  assert.ok(reversed instanceof Uint8Array);
  assert.deepEqual(reversed, PNG.slice().reverse());
  const described = await client.call("describe", {
    buffer: PNG.slice().buffer,
  }) as { isBuffer: boolean; size: number; back: ArrayBuffer };
  assert.equal(described.isBuffer, true);
  assert.equal(described.size, PNG.byteLength);
  assert.ok(described.back instanceof ArrayBuffer);

  // Client → server notification.
  await client.emit("upload", { name: "a.png", bytes: PNG });
  assert.deepEqual(await seen.promise, { name: "a.png", bytes: PNG });

  // Server → client notification (a push) and request.
  const pushed = signal<unknown>();
  client.on("image", (payload: unknown) => pushed.resolve(payload));
  client.handle(
    "checksum",
    (bytes: Uint8Array) => bytes.reduce((a, b) => a + b, 0),
  );
  server.notify({ bytes: PNG }, { to: "alice", method: "image" });
  assert.deepEqual(await pushed.promise, { bytes: PNG });
  assert.equal(
    await server.call("checksum", PNG, { to: "alice" }),
    PNG.reduce((a, b) => a + b, 0),
  );
});

Deno.test("DuplexServer without codecs refuses duplex.v1.bin: the client stays on JSON", async () => {
  await using s = await setup(
    (server) => {
      server.handle("echo", (value: unknown) => value);
    },
    {},
    { codec: binaryCodec },
  );
  assert.equal(s.client.protocol, "duplex.v1");
  assert.equal(s.server.connectionsOf("alice")[0].protocol, "duplex.v1");
  // Plain JSON still works; the frames are text.
  assert.deepEqual(await s.client.call("echo", { a: 1 }), { a: 1 });
});

Deno.test("DuplexServer with codecs answers original-protocol clients byte for byte as before", async () => {
  const server = new DuplexServer({ codecs: [binaryCodec] });
  server.onRequest(() => "ok");
  await using http = listen(server);
  const socket = await open(wsUrl(http, "old"));
  assert.equal(socket.protocol, "");
  const queue = new MessageQueue(socket);
  const raw = new Promise<unknown>((resolve) =>
    socket.addEventListener("message", (event) => resolve(event.data), {
      once: true,
    })
  );
  socket.send(JSON.stringify({ sequence: 1, type: 1, message: "hi" }));
  assert.equal(await raw, '{"sequence":1,"type":2,"message":"ok"}');
  await queue.next();
  await closeAndWait(socket);
  await server.shutdown();
});

Deno.test("DuplexServer pushes bytes only to binary connections and counts the others as dropped", async () => {
  await using s = await setup(() => {}, { codecs: [binaryCodec] }, {
    codec: binaryCodec,
  });
  const { server, http } = s;
  const plainSocket = await open(wsUrl(http, "bob"), "duplex.v1");
  const plain = new Peer(plainSocket);
  const text = signal<unknown>();
  plain.on("note", (payload: unknown) => text.resolve(payload));
  const got = signal<unknown>();
  s.client.on("note", (payload: unknown) => got.resolve(payload));
  await new Promise<void>((resolve) => {
    const check = () => server.connections === 2 && resolve();
    server.addEventListener("connect", check);
    check();
  });
  server.notify({ bytes: PNG }, { method: "note" });
  assert.deepEqual(await got.promise, { bytes: PNG });
  const bob = server.connectionsOf("bob")[0];
  assert.equal(bob.peer.stats.dropped, 1);
  // Text pushes still reach both.
  server.notify("plain", { to: "bob", method: "note" });
  assert.equal(await text.promise, "plain");
  await closeAndWait(plainSocket);
});

Deno.test("Peer with binaryCodec over a raw socket reads bytes (binaryType set to arraybuffer)", async () => {
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      new Peer(socket, { codec: binaryCodec }).handle(
        "double",
        (bytes: Uint8Array) => Uint8Array.from(bytes, (b) => b * 2),
      );
      return response;
    },
  );
  const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await once(socket, "open");
  const peer = new Peer(socket, { codec: binaryCodec });
  assert.equal(socket.binaryType, "arraybuffer");
  assert.deepEqual(
    await peer.call("double", new Uint8Array([1, 2, 3])),
    new Uint8Array([2, 4, 6]),
  );
  await closeAndWait(socket);
});
