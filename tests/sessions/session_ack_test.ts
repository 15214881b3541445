import assert from "node:assert/strict";
import { sessionLimits, SessionSocket } from "../../src/peer/session_socket.ts";
import type { SocketLike } from "../../src/peer/socket_like.ts";

/** A transport that records what the session writes and how it closes. */
class FakeTransport implements SocketLike {
  readyState = 1;
  bufferedAmount = 0;
  sent: (string | Uint8Array)[] = [];
  closedWith: number | undefined = undefined;
  #listeners: EventListenerObject[] = [];
  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.sent.push(data);
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  addEventListener(type: string, listener: EventListenerObject): void {
    if (type === "message") this.#listeners.push(listener);
  }
  removeEventListener(_type: string, listener: EventListenerObject): void {
    this.#listeners = this.#listeners.filter((l) => l !== listener);
  }
  receive(data: string): void {
    const event = new MessageEvent("message", { data });
    for (const listener of [...this.#listeners]) listener.handleEvent(event);
  }
}

/** A session with 5 frames sent, and what its hooks heard. */
function sessionWithFive() {
  const heard = { errors: 0, detached: 0, remoteEnd: 0 };
  const session = new SessionSocket(sessionLimits({}), {
    onError: () => heard.errors++,
    onDetach: () => heard.detached++,
    onRemoteEnd: () => heard.remoteEnd++,
  });
  const transport = new FakeTransport();
  session.attach(transport, 0);
  for (let i = 1; i <= 5; i++) {
    session.send(`{"sequence":0,"type":3,"message":${i}}`);
  }
  return { session, transport, heard };
}

Deno.test("SessionSocket: plain acks trim the outbox, one with end is told to the owner", () => {
  const { session, transport, heard } = sessionWithFive();
  assert.equal(session.buffered, 5);
  transport.receive(`{"type":10,"sequence":2}`);
  assert.equal(session.buffered, 3);
  transport.receive(`{"type":10,"sequence":2}`);
  assert.equal(session.buffered, 3);
  // Another order of the fields goes through JSON.parse, to the same effect.
  transport.receive(`{"type":10,"sequence":4 }`);
  assert.equal(session.buffered, 1);
  transport.receive(`{"type":10,"sequence":5,"end":true}`);
  assert.equal(session.buffered, 0);
  assert.equal(heard.remoteEnd, 1);
  assert.equal(heard.errors, 0);
});

for (
  const [name, ack] of [
    ["leading zeros", `{"type":10,"sequence":02}`],
    ["more than were sent", `{"type":10,"sequence":6}`],
    ["past 2^53 - 1", `{"type":10,"sequence":9007199254740993}`],
    ["not a number", `{"type":10,"sequence":1x}`],
    ["no count", `{"type":10,"sequence":}`],
  ]
) {
  Deno.test(`SessionSocket: an ack with ${name} closes the socket with 1002`, () => {
    const { session, transport, heard } = sessionWithFive();
    transport.receive(`{"type":10,"sequence":1}`);
    transport.receive(ack);
    assert.equal(transport.closedWith, 1002);
    assert.equal(heard.errors, 1);
    assert.equal(heard.detached, 1);
    // Nothing was trimmed by the bad ack: the session can still replay.
    assert.equal(session.buffered, 4);
    assert.equal(session.ended, false);
    session.end("expired");
  });
}

Deno.test("SessionSocket: a due ack goes out after the frames its delivery makes this side send, not alone ahead of them (Nagle)", async () => {
  const session = new SessionSocket(sessionLimits({ ackEvery: 2 }));
  const transport = new FakeTransport();
  session.attach(transport, 0);
  // Each frame received is answered a few promise hops later (as a
  // client's next request is).
  session.addEventListener("message", {
    handleEvent() {
      Promise.resolve().then(() => Promise.resolve()).then(() =>
        session.send(`{"sequence":1,"type":1,"message":"next"}`)
      );
    },
  });
  transport.receive(`{"sequence":0,"type":3,"message":1}`);
  transport.receive(`{"sequence":0,"type":3,"message":2}`);
  assert.deepEqual(transport.sent, []);
  // The next macrotask: the answers went first, then the ack of both.
  await new Promise((resolve) => setTimeout(resolve, 0));
  assert.deepEqual(
    transport.sent.map((frame) => JSON.parse(frame as string).type),
    [1, 1, 10],
  );
  assert.equal(JSON.parse(transport.sent[2] as string).sequence, 2);
  session.close();
});
