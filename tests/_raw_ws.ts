/**
 * A WebSocket client written by hand over a raw TCP connection, for tests that
 * need what a real client cannot do: send malformed or oversized frames at the
 * wire level, stop reading, and vanish without a close frame (a TCP reset).
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options of {@linkcode RawWebSocket.connect}. */
export interface RawConnectOptions {
  /** Path and query, e.g. `/?user=alice`. */
  path?: string;
  /** Extra request headers, e.g. `Origin` or `Sec-WebSocket-Protocol`. */
  headers?: Record<string, string>;
}

/** A frame read from the server. */
export interface RawFrame {
  /** The opcode: 1 text, 2 binary, 8 close, 9 ping, 10 pong. */
  opcode: number;
  /** The payload bytes. */
  payload: Uint8Array;
  /** The payload as text (for text and close frames). */
  text: string;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * Encodes one client frame (masked, as RFC 6455 requires of clients).
 *
 * @param opcode The opcode.
 * @param payload The payload.
 * @param fin Whether this is the last fragment.
 * @returns The frame bytes.
 */
export function encodeClientFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
): Uint8Array {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const frame = new Uint8Array(headerLength + 4 + length);
  frame[0] = (fin ? 0x80 : 0) | opcode;
  if (length < 126) {
    frame[1] = 0x80 | length;
  } else if (length < 65536) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(length));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  frame.set(mask, headerLength);
  for (let i = 0; i < length; i++) {
    frame[headerLength + 4 + i] = payload[i] ^ mask[i & 3];
  }
  return frame;
}

/** A hand-made WebSocket client over `Deno.connect`. */
export class RawWebSocket {
  #conn: Deno.TcpConn;
  #buffer: Uint8Array = new Uint8Array(0);
  #closed = false;
  /** The response headers of the handshake. */
  readonly headers: Headers;

  private constructor(conn: Deno.TcpConn, headers: Headers, rest: Uint8Array) {
    this.#conn = conn;
    this.headers = headers;
    this.#buffer = rest;
  }

  /**
   * Opens a TCP connection and performs the WebSocket handshake.
   *
   * @param port The server port on 127.0.0.1.
   * @param options Path and headers.
   * @returns The client, or throws with the HTTP status when refused.
   */
  static async connect(
    port: number,
    options: RawConnectOptions = {},
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const key = btoa(
      String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))),
    );
    const lines = [
      `GET ${options.path ?? "/"} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...Object.entries(options.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
    ];
    await conn.write(encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    let received: Uint8Array = new Uint8Array(0);
    const chunk = new Uint8Array(4096);
    let end = -1;
    while (end < 0) {
      const n = await conn.read(chunk);
      if (n === null) {
        conn.close();
        throw new Error("Cannot connect: server closed during handshake");
      }
      received = concat(received, chunk.subarray(0, n));
      end = decoder.decode(received).indexOf("\r\n\r\n");
    }
    const head = decoder.decode(received).slice(0, end);
    const [status, ...headerLines] = head.split("\r\n");
    if (!status.includes(" 101 ")) {
      conn.close();
      throw new Error(`Cannot connect: ${status}`);
    }
    const headers = new Headers();
    for (const line of headerLines) {
      const colon = line.indexOf(":");
      headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const headBytes = encoder.encode(head + "\r\n\r\n").length;
    return new RawWebSocket(conn, headers, received.slice(headBytes));
  }

  /**
   * Sends raw bytes as they are (a frame, part of one, or garbage).
   *
   * @param bytes The bytes.
   */
  async writeBytes(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) {
      written += await this.#conn.write(bytes.subarray(written));
    }
  }

  /**
   * Sends one text frame.
   *
   * @param text The text.
   */
  sendText(text: string): Promise<void> {
    return this.writeBytes(encodeClientFrame(1, encoder.encode(text)));
  }

  /**
   * Sends one binary frame.
   *
   * @param bytes The payload.
   */
  sendBinary(bytes: Uint8Array): Promise<void> {
    return this.writeBytes(encodeClientFrame(2, bytes));
  }

  /**
   * Reads the next frame from the server (unfragmented frames only).
   *
   * @returns The frame, or `null` when the connection ended.
   */
  async readFrame(): Promise<RawFrame | null> {
    while (true) {
      const frame = this.#parse();
      if (frame !== undefined) return frame;
      const chunk = new Uint8Array(65536);
      let n: number | null;
      try {
        n = await this.#conn.read(chunk);
      } catch {
        return null;
      }
      if (n === null) return null;
      this.#buffer = concat(this.#buffer, chunk.subarray(0, n));
    }
  }

  /**
   * Reads frames until a text frame arrives.
   *
   * @returns The parsed JSON of the next text frame, or `null` at the end.
   */
  async readJson(): Promise<Record<string, unknown> | null> {
    while (true) {
      const frame = await this.readFrame();
      if (frame === null) return null;
      if (frame.opcode === 1) return JSON.parse(frame.text);
      if (frame.opcode === 8) return null;
    }
  }

  #parse(): RawFrame | undefined {
    const b = this.#buffer;
    if (b.length < 2) return undefined;
    let length = b[1] & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (b.length < 4) return undefined;
      length = (b[2] << 8) | b[3];
      offset = 4;
    } else if (length === 127) {
      if (b.length < 10) return undefined;
      length = Number(new DataView(b.buffer, b.byteOffset).getBigUint64(2));
      offset = 10;
    }
    if (b.length < offset + length) return undefined;
    const payload = b.slice(offset, offset + length);
    this.#buffer = b.slice(offset + length);
    const opcode = b[0] & 0x0f;
    return { opcode, payload, text: decoder.decode(payload) };
  }

  /**
   * Drops the connection without a close frame. When data from the server
   * is still unread in the socket's receive buffer, the kernel answers with
   * a TCP reset (RST) rather than an orderly FIN.
   */
  drop(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed by the other side.
    }
  }

  /** Sends a close frame, then closes the TCP connection. */
  async close(code = 1000): Promise<void> {
    if (this.#closed) return;
    const payload = new Uint8Array([code >> 8, code & 0xff]);
    try {
      await this.writeBytes(encodeClientFrame(8, payload));
    } catch {
      // The server may already be gone.
    }
    this.drop();
  }
}
