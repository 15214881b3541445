/**
 * Every close code of the table in PROTOCOL.md, as the client sees it: the
 * code reported (never Deno's 0) and whether the client reconnects; policy
 * closes announced by a closing frame; a replaced connection that stays
 * replaced.
 *
 * @module
 */

import assert from "node:assert/strict";
import { CloseCode, Peer, RemoteError } from "../../mod.ts";
import { Client, ConnectionClosedError } from "../../client.ts";
import { DuplexServer } from "../../server.ts";
import { deadline, once } from "../_helpers.ts";
import { listen, wsUrl } from "../_server_helpers.ts";

/** A duplex.v1 server whose handler `close` closes with the given code. */
function closingServer() {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      const { socket, response } = Deno.upgradeWebSocket(req, {
        protocol: "duplex.v1",
      });
      const peer = new Peer(socket, { protocol: "duplex.v1" });
      peer.handle("close", ([code, announce]: [number, boolean]) => {
        // After the response: the client must see the close, not a timeout.
        setTimeout(() => {
          if (announce) peer.closeWithReason(code, `closed with ${code}`);
          else peer.close(code, `closed with ${code}`);
        });
        return "ok";
      });
      return response;
    },
  );
}

const TABLE: Array<[code: number, reconnects: boolean]> = [
  [CloseCode.Normal, true],
  [CloseCode.GoingAway, true],
  [CloseCode.ProtocolError, true],
  [CloseCode.PolicyViolation, false],
  [CloseCode.MessageTooBig, true],
  [CloseCode.TryAgainLater, true],
  [CloseCode.PingTimeout, true],
  [CloseCode.Unauthorized, false],
  [CloseCode.Forbidden, false],
  [CloseCode.Replaced, false],
];

for (const announce of [false, true]) {
  Deno.test(
    `Client reports every close code of the table and reconnects only where it says (${
      announce ? "closeWithReason" : "close"
    })`,
    async () => {
      await using http = closingServer();
      for (const [code, reconnects] of TABLE) {
        const client = new Client(`ws://127.0.0.1:${http.addr.port}`, {
          minDelay: 1,
          maxDelay: 5,
        });
        await client.connect();
        const closed = once<CloseEvent>(client, "close");
        assert.equal(await client.call("close", [code, announce]), "ok");
        const event = await closed;
        assert.equal(event.code, code, `close code ${code}`);
        assert.equal(event.reason, `closed with ${code}`);
        assert.equal(
          client.state,
          reconnects ? "reconnecting" : "closed",
          `after ${code}`,
        );
        if (reconnects) await once(client, "open");
        await client.close();
      }
    },
  );
}

Deno.test("Client does not reconnect after being replaced by a newer connection of its user", async () => {
  const server = new DuplexServer({ duplicateUser: "replace" });
  await using http = listen(server);
  let connects = 0;
  server.addEventListener("connect", () => connects++);
  const options = { minDelay: 1, maxDelay: 2, resetAfter: 0 };
  const first = new Client(wsUrl(http, "alice"), options);
  const second = new Client(wsUrl(http, "alice"), options);
  await first.connect();
  const replaced = once<CloseEvent>(first, "close");
  await second.connect();
  const event = await replaced;
  assert.equal(event.code, CloseCode.Replaced);
  assert.equal(first.state, "closed");
  await assert.rejects(first.request("hi"), (error) => {
    assert.ok(error instanceof ConnectionClosedError);
    assert.equal(error.closeCode, CloseCode.Replaced);
    return true;
  });
  assert.equal(second.state, "open");
  assert.equal(connects, 2);
  await first.close();
  await second.close();
  await server.shutdown();
});

Deno.test("A rate-limit close reaches the client as 1008 with every response of the handlers that ran", async () => {
  let ran = 0;
  const server = new DuplexServer({
    rateLimit: { rate: 1, burst: 20, maxViolations: 5 },
  });
  server.onRequest(async (message: unknown) => {
    ran++;
    await Promise.resolve();
    return message;
  });
  await using http = listen(server);
  const client = new Client(wsUrl(http, "alice"), { minDelay: 1 });
  await client.connect();
  const closed = once<CloseEvent>(client, "close");
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) => client.request(i)),
  );
  const event = await closed;
  assert.equal(event.code, CloseCode.PolicyViolation);
  assert.equal(client.state, "closed");
  const answered = results.filter((r) => r.status === "fulfilled").length;
  const limited =
    results.filter((r) =>
      r.status === "rejected" && r.reason instanceof RemoteError &&
      r.reason.code === "RATE_LIMITED"
    ).length;
  const dropped =
    results.filter((r) =>
      r.status === "rejected" && r.reason instanceof ConnectionClosedError &&
      r.reason.closeCode === CloseCode.PolicyViolation
    ).length;
  // Every handler that ran delivered its response; the rest were refused
  // or never handled, and say so with the policy code.
  assert.equal(answered, ran);
  assert.equal(answered + limited + dropped, 50);
  assert.ok(limited >= 5);
  await client.close();
  await deadline(server.shutdown());
});
