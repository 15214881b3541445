import assert from "node:assert/strict";
import { DuplexServer } from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { type RawFrame, RawWebSocket } from "../_raw_ws.ts";
import { listen, until } from "../_server_helpers.ts";

// Deno pings a socket that read nothing for idleTimeout / 2 and can close
// one whose pong came (docs/server.md, "`idleTimeout` and Deno's pings"),
// so the server pings its quiet duplex.v1 clients first. Raw clients see
// every frame, control frames included: opcode 9 is Deno's ping.

const WS_PING = 9, TEXT = 1;

/** Opens a raw client of `user` and waits until the server registered it. */
async function rawClient(
  server: DuplexServer,
  http: Deno.HttpServer<Deno.NetAddr>,
  user: string,
  protocol?: string,
): Promise<RawWebSocket> {
  const registered = until(server, () => server.isOnline(user), user);
  const socket = await RawWebSocket.connect(http.addr.port, {
    path: `/?user=${user}`,
    headers: protocol ? { "Sec-WebSocket-Protocol": protocol } : {},
  });
  await registered;
  return socket;
}

/** Reads frames until `done` says so; `null` when the connection ended. */
async function readUntil(
  socket: RawWebSocket,
  done: (frame: RawFrame) => boolean | Promise<boolean>,
): Promise<RawFrame | null> {
  while (true) {
    const frame = await socket.readFrame();
    if (frame === null || await done(frame)) return frame;
  }
}

Deno.test("keep-alive: a quiet duplex.v1 client that answers the server's pings never gets a WebSocket ping from Deno", async () => {
  await using server = new DuplexServer({ idleTimeout: 1 });
  await using http = listen(server);
  const socket = await rawClient(server, http, "quiet", "duplex.v1");
  const started = performance.now();
  let appPings = 0, wsPings = 0;
  const sixPings = readUntil(socket, async (frame) => {
    if (frame.opcode === WS_PING) wsPings++;
    if (frame.opcode === TEXT) {
      assert.deepEqual(JSON.parse(frame.text), { sequence: 0, type: 5 });
      await socket.sendText('{"sequence":0,"type":6}');
      appPings++;
    }
    return appPings === 6;
  });
  assert.ok(await deadline(sixPings, 10_000, "six pings of the server"));
  // Six pings at most idleTimeout / 3 apart: Deno's would come after 0.5 s.
  assert.ok(performance.now() - started > 1_000);
  assert.equal(wsPings, 0, "Deno pinged a client that answered");
  assert.ok(server.isOnline("quiet"));
  const gone = once(server, "disconnect");
  await socket.close();
  await gone; // the keep-alive stops with the last connection (sanitizer)
});

Deno.test("keep-alive: a busy duplex.v1 client is never pinged", async () => {
  // Sweeps every 250 ms: a ping would follow 750 ms without a frame.
  await using server = new DuplexServer({ idleTimeout: 3 });
  server.handle("tick", (n: number) => n);
  await using http = listen(server);
  const socket = await rawClient(server, http, "busy", "duplex.v1");
  const started = performance.now();
  // A request every 100 ms for 2.5 s: never three quiet sweeps in a row.
  for (let sequence = 1; performance.now() - started < 2_500; sequence++) {
    const frame = { sequence, type: 1, method: "tick", message: sequence };
    await socket.sendText(JSON.stringify(frame));
    const answer = await deadline(socket.readFrame(), 5_000, "the answer");
    assert.equal(answer?.opcode, TEXT);
    assert.deepEqual(JSON.parse(answer.text), {
      sequence,
      type: 2,
      message: sequence,
    });
    await new Promise((resolve) => setTimeout(resolve, 100)); // pacing
  }
  assert.equal(server.connectionsOf("busy")[0].peer.stats.framesOut[5], 0);
  const gone = once(server, "disconnect");
  await socket.close();
  await gone;
});

Deno.test("keep-alive: original-protocol clients get no app pings, only Deno's; a duplex.v1 client that answers nothing is dropped", async () => {
  await using server = new DuplexServer({ idleTimeout: 1 });
  await using http = listen(server);
  const legacy = await rawClient(server, http, "legacy");
  const mute = await rawClient(server, http, "mute", "duplex.v1");
  const codes = new Map<string, number>();
  server.addEventListener("disconnect", ({ detail }) => {
    codes.set(detail.connection.user, detail.code);
  });
  const texts: string[] = [];
  const wsPing = readUntil(legacy, (frame) => {
    if (frame.opcode === TEXT) texts.push(frame.text);
    return frame.opcode === WS_PING;
  });
  assert.equal((await deadline(wsPing, 5_000, "Deno's ping"))?.opcode, 9);
  assert.deepEqual(texts, [], "an original-protocol client got text frames");
  // Neither answers Deno's pings (nor mute the server's): both are dropped.
  await until(server, () => codes.size === 2, "both drops", 5_000);
  assert.notEqual(codes.get("mute"), 1000);
  assert.notEqual(codes.get("legacy"), 1000);
  mute.drop();
  legacy.drop();
});
