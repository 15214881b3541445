import assert from "node:assert/strict";
import { Client, ConnectError } from "../../client.ts";
import { deadline, once } from "../_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A server that completes the WebSocket handshake by hand and then ignores
 * everything: no pong, no close frame, like a server that vanished behind a
 * half-open TCP connection.
 */
class SilentServer implements AsyncDisposable {
  readonly #listener: Deno.TcpListener;
  readonly #conns: Deno.Conn[] = [];
  readonly #accepting: Promise<void>;
  /** Handshakes completed so far. */
  handshakes = 0;
  #handshaken: Array<() => void> = [];
  #closed = false;

  constructor() {
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#accepting = this.#accept();
  }

  get url(): string {
    return `ws://127.0.0.1:${this.#listener.addr.port}`;
  }

  /** Resolves after the next completed handshake. */
  nextHandshake(): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#handshaken.push(resolve);
    return deadline(promise, undefined, "a handshake");
  }

  async #accept(): Promise<void> {
    for await (const conn of this.#listener) {
      this.#conns.push(conn);
      this.#handshake(conn).catch(() => conn.close());
    }
  }

  async #handshake(conn: Deno.Conn): Promise<void> {
    let head = "";
    const buffer = new Uint8Array(4096);
    while (!head.includes("\r\n\r\n")) {
      const n = await conn.read(buffer);
      if (n === null) return;
      head += decoder.decode(buffer.subarray(0, n));
    }
    const key = /sec-websocket-key:\s*(\S+)/i.exec(head)?.[1] ?? "";
    const digest = await crypto.subtle.digest(
      "SHA-1",
      encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
    );
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        "Connection: Upgrade\r\nSec-WebSocket-Protocol: duplex.v1\r\n" +
        `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ));
    this.handshakes++;
    for (const resolve of this.#handshaken.splice(0)) resolve();
    // From here on: never read, never write.
  }

  /** Drops every connection and stops listening. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) {
      try {
        conn.close();
      } catch {
        // Already closed after a failed handshake.
      }
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

Deno.test("Client detects a server that stops answering without closing, closes with 4000 and reconnects", async () => {
  await using server = new SilentServer();
  const client = new Client(server.url, {
    minDelay: 1,
    maxDelay: 5,
    pingInterval: 10,
    pingTimeout: 20,
  });
  const first = server.nextHandshake();
  await client.connect();
  await first;
  const pinged = client.peer!.stats.framesOut;
  const closed = once<CloseEvent>(client, "close");
  const reconnecting = once(client, "reconnecting");
  const second = server.nextHandshake();
  const started = Date.now();
  const event = await closed;
  assert.equal(event.code, 4000);
  assert.equal(event.reason, "Ping timeout");
  assert.equal(pinged[5], 1); // exactly one ping before the verdict
  // Within pingInterval + pingTimeout (plus scheduling slack).
  assert.ok(Date.now() - started < 1_000);
  await reconnecting;
  await second;
  assert.equal(server.handshakes, 2);
  // The dead sockets finish closing when the server drops them.
  const closing = client.close();
  await server.close();
  await closing;
});

Deno.test("Client rejects pending requests when the heartbeat declares the server dead", async () => {
  await using server = new SilentServer();
  const client = new Client(server.url, {
    minDelay: 1,
    maxDelay: 5,
    pingInterval: 5,
    pingTimeout: 10,
    maxAttempts: 0,
  });
  await client.connect();
  const request = client.request("anyone?", { timeout: 0 });
  const gaveUp = once<CloseEvent>(client, "close");
  await assert.rejects(request, { name: "ConnectionClosedError" });
  assert.equal((await gaveUp).code, 4000);
  assert.equal(client.state, "closed"); // maxAttempts 0: no reconnection
  const closing = client.close();
  await server.close();
  await closing;
  assert.equal(server.handshakes, 1);
});

Deno.test("Client.connect() times out when the URL function never settles", async () => {
  const client = new Client(() => new Promise<string>(() => {}), {
    connectTimeout: 10,
  });
  await assert.rejects(client.connect(), ConnectError);
  await client.close();
});
