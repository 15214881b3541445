/**
 * A test double of the original chat server (the Go program of the original
 * article), written by hand over raw TCP so that it can misbehave exactly as
 * that server does, which `Deno.upgradeWebSocket` would not allow:
 *
 * - it selects no subprotocol, whatever the client offers;
 * - every text frame is a chat request, whatever its `type`: it is relayed
 *   to every other user as `{"sequence":S,"type":3,"message":M,"from":U}`
 *   and answered with `{"sequence":S,"type":2,"message":"ok"}`;
 * - fields are omitted when empty (sequence 0, empty strings);
 * - `message` is a string: any other JSON value is dropped (relayed empty);
 * - it never answers a close frame (the connection stays open, the user
 *   registered);
 * - it ignores binary frames and WebSocket pings (no pong);
 * - with `maxDelay`, it answers pipelined requests out of order;
 * - a second connection of a user already connected closes both (a TCP
 *   close, no close frame).
 *
 * @module
 */

import { random } from "./_random.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Options of {@linkcode OriginalServer.start}. */
export interface OriginalServerOptions {
  /**
   * The longest delay, in ms, before a response is sent; each is drawn from
   * a seeded generator, so pipelined responses come out of order. 0 answers
   * at once, in order.
   */
  maxDelay?: number;
  /** The seed of the delays. */
  seed?: number;
  /** Stop reading frames (a stalled server): nothing is answered. */
  stalled?: boolean;
}

/** One text frame the server received. */
export interface Received {
  /** The sender. */
  user: string;
  /** The frame as sent. */
  text: string;
}

/** Encodes one unmasked server frame. */
function serverFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const header = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(header + length);
  frame[0] = 0x80 | opcode;
  if (length < 126) {
    frame[1] = length;
  } else if (length < 65536) {
    frame[1] = 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  frame.set(payload, header);
  return frame;
}

/** Encodes a frame as the Go server does: empty fields left out. */
export function originalEncode(
  sequence: number,
  type: number,
  message: string,
  from = "",
): string {
  const frame: Record<string, unknown> = {};
  if (sequence !== 0) frame.sequence = sequence;
  frame.type = type;
  if (message !== "") frame.message = message;
  if (from !== "") frame.from = from;
  return JSON.stringify(frame);
}

/** One accepted connection. */
class Connection {
  readonly user: string;
  #conn: Deno.Conn;
  #writing: Promise<unknown> = Promise.resolve();
  closed = false;

  constructor(conn: Deno.Conn, user: string) {
    this.#conn = conn;
    this.user = user;
  }

  send(text: string): void {
    if (this.closed) return;
    const bytes = serverFrame(1, encoder.encode(text));
    this.#writing = this.#writing.then(() => this.#conn.write(bytes)).catch(
      () => {},
    );
  }

  /** Closes the TCP connection without a close frame. */
  drop(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * The original chat server on 127.0.0.1, on a free port.
 */
export class OriginalServer implements AsyncDisposable {
  /** Every text frame received, in order. */
  readonly received: Received[] = [];
  /** Close frames received (never answered). */
  closeFrames = 0;
  /** Connections accepted. */
  connections = 0;
  #listener: Deno.TcpListener;
  #users = new Map<string, Connection>();
  #all = new Set<Connection>();
  #tasks = new Set<Promise<void>>();
  #timers = new Set<ReturnType<typeof setTimeout>>();
  #options: OriginalServerOptions;
  #random: () => number;
  #accepting: Promise<void>;
  #waiters = new Set<() => void>();

  private constructor(
    listener: Deno.TcpListener,
    options: OriginalServerOptions,
  ) {
    this.#listener = listener;
    this.#options = options;
    this.#random = random(options.seed ?? 1);
    this.#accepting = this.#accept();
  }

  /**
   * Starts the server.
   *
   * @param options Delays and stalling.
   * @returns The running server.
   */
  static start(options: OriginalServerOptions = {}): OriginalServer {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new OriginalServer(listener, options);
  }

  /** The port it listens on. */
  get port(): number {
    return this.#listener.addr.port;
  }

  /**
   * The WebSocket URL of user `user`.
   *
   * @param user The user id.
   * @returns The URL.
   */
  url(user: string): string {
    return `ws://127.0.0.1:${this.port}/ws?user=${encodeURIComponent(user)}`;
  }

  /** The users registered now. */
  get users(): string[] {
    return [...this.#users.keys()].sort();
  }

  /**
   * Resolves once `test()` holds (checked after every event of the server).
   *
   * @param test The condition.
   * @returns Resolves when it holds.
   */
  until(test: () => boolean): Promise<void> {
    if (test()) return Promise.resolve();
    return new Promise((resolve) => {
      const check = (): void => {
        if (!test()) return;
        this.#waiters.delete(check);
        resolve();
      };
      this.#waiters.add(check);
    });
  }

  /**
   * Drops the connections of `user` (TCP close, no close frame).
   *
   * @param user The user.
   */
  drop(user: string): void {
    this.#users.get(user)?.drop();
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const connection of this.#all) connection.drop();
    await this.#accepting;
    while (this.#tasks.size) await Promise.all([...this.#tasks]);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #changed(): void {
    for (const check of [...this.#waiters]) check();
  }

  async #accept(): Promise<void> {
    try {
      for await (const conn of this.#listener) {
        const task = this.#serve(conn).catch(() => {}).finally(() => {
          this.#tasks.delete(task);
          this.#changed();
        });
        this.#tasks.add(task);
      }
    } catch {
      // The listener closed.
    }
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    const reader = new Reader(conn);
    const head = await reader.head();
    const user = head === undefined
      ? undefined
      : new URL(head.path, "http://x").searchParams.get("user");
    if (head === undefined || !user || head.key === undefined) {
      try {
        await conn.write(
          encoder.encode(
            "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
          ),
        );
      } finally {
        conn.close();
      }
      return;
    }
    const digest = await crypto.subtle.digest(
      "SHA-1",
      encoder.encode(head.key + GUID),
    );
    const accept = btoa(String.fromCharCode(...new Uint8Array(digest)));
    await conn.write(encoder.encode(
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" +
        `Connection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`,
    ));
    const connection = new Connection(conn, user);
    this.connections++;
    this.#all.add(connection);
    const older = this.#users.get(user);
    if (older !== undefined) {
      // The original server's answer to a duplicate login: both go.
      this.#users.delete(user);
      older.drop();
      connection.drop();
    } else {
      this.#users.set(user, connection);
    }
    this.#changed();
    try {
      let text = "";
      while (!connection.closed) {
        const frame = await reader.frame();
        if (frame === undefined) break;
        if (this.#options.stalled) continue;
        if (frame.opcode === 8) {
          // Never answered: the connection stays open and registered.
          this.closeFrames++;
          this.#changed();
          continue;
        }
        if (frame.opcode === 1 || (frame.opcode === 0 && text !== "")) {
          text += decoder.decode(frame.payload);
          if (!frame.fin) continue;
          const message = text;
          text = "";
          this.#chat(connection, message);
        }
        // Binary frames, pings and pongs are ignored.
      }
    } finally {
      connection.drop();
      this.#all.delete(connection);
      if (this.#users.get(user) === connection) this.#users.delete(user);
      this.#changed();
    }
  }

  #chat(connection: Connection, text: string): void {
    this.received.push({ user: connection.user, text });
    this.#changed();
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof value !== "object" || value === null || Array.isArray(value)) {
      return;
    }
    const fields = value as Record<string, unknown>;
    const sequence = Number.isInteger(fields.sequence)
      ? fields.sequence as number
      : 0;
    const message = typeof fields.message === "string" ? fields.message : "";
    const relay = originalEncode(sequence, 3, message, connection.user);
    for (const [user, other] of this.#users) {
      if (user !== connection.user) other.send(relay);
    }
    const answer = originalEncode(sequence, 2, "ok");
    const maxDelay = this.#options.maxDelay ?? 0;
    if (maxDelay === 0) {
      connection.send(answer);
      return;
    }
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      connection.send(answer);
    }, Math.floor(this.#random() * (maxDelay + 1)));
    this.#timers.add(timer);
  }
}

/** A frame read from a client. */
interface ClientFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** Reads the handshake and the (masked) frames of one connection. */
class Reader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(16 * 1024);
    let n: number | null;
    try {
      n = await this.#conn.read(chunk);
    } catch {
      return false;
    }
    if (n === null) return false;
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
    return true;
  }

  async #take(length: number): Promise<Uint8Array | undefined> {
    while (this.#buffer.length < length) {
      if (!await this.#fill()) return undefined;
    }
    const out = this.#buffer.slice(0, length);
    this.#buffer = this.#buffer.slice(length);
    return out;
  }

  async head(): Promise<{ path: string; key?: string } | undefined> {
    let end: number;
    while ((end = decoder.decode(this.#buffer).indexOf("\r\n\r\n")) < 0) {
      if (!await this.#fill()) return undefined;
    }
    const text = decoder.decode(this.#buffer).slice(0, end);
    this.#buffer = this.#buffer.slice(encoder.encode(text).length + 4);
    const [request, ...lines] = text.split("\r\n");
    const headers = new Headers();
    for (const line of lines) {
      const colon = line.indexOf(":");
      headers.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    return {
      path: request.split(" ")[1] ?? "/",
      key: headers.get("sec-websocket-key") ?? undefined,
    };
  }

  async frame(): Promise<ClientFrame | undefined> {
    const start = await this.#take(2);
    if (start === undefined) return undefined;
    let length = start[1] & 0x7f;
    if (length === 126) {
      const bytes = await this.#take(2);
      if (bytes === undefined) return undefined;
      length = (bytes[0] << 8) | bytes[1];
    } else if (length === 127) {
      const bytes = await this.#take(8);
      if (bytes === undefined) return undefined;
      length = Number(new DataView(bytes.buffer).getBigUint64(0));
    }
    const masked = (start[1] & 0x80) !== 0;
    const mask = masked ? await this.#take(4) : new Uint8Array(4);
    const payload = await this.#take(length);
    if (mask === undefined || payload === undefined) return undefined;
    for (let i = 0; i < length; i++) payload[i] ^= mask[i & 3];
    return { fin: (start[0] & 0x80) !== 0, opcode: start[0] & 0x0f, payload };
  }
}
