/**
 * The byte-level parts of the guarded listener: finding the end of a request
 * head, rewriting it to one request per connection, and copying bytes
 * between two connections.
 *
 * @module
 */

const HEAD_END = [13, 10, 13, 10];
/** Read size of an idle connection, and of one that is moving data. */
export const SMALL_READ = 2048;
const LARGE_READ = 65536;

/**
 * The index just past the blank line that ends a head, or -1.
 *
 * @param bytes The bytes read so far.
 * @param from Where to start looking.
 */
export function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from - 3); i + 3 < bytes.length; i++) {
    if (
      bytes[i] === HEAD_END[0] && bytes[i + 1] === HEAD_END[1] &&
      bytes[i + 2] === HEAD_END[2] && bytes[i + 3] === HEAD_END[3]
    ) return i + 4;
  }
  return -1;
}

/**
 * The head to hand on: unchanged, except that it asks the server to close
 * the connection after its response (`Connection: close`, kept beside
 * `Upgrade` for a WebSocket handshake), so that no second head passes
 * unguarded. Header bytes are Latin-1.
 */
export function rewriteHead(head: Uint8Array): Uint8Array {
  const text = new TextDecoder("latin1").decode(head);
  const lines = text.slice(0, -4).split("\r\n");
  let upgrade = false;
  const kept = [lines[0]];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i];
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).trim().toLowerCase();
    if (name === "connection") {
      if (/(^|,)\s*upgrade\s*(,|$)/i.test(line.slice(colon + 1))) {
        upgrade = true;
      }
      continue;
    }
    if (name === "keep-alive") continue;
    kept.push(line);
  }
  kept.push(upgrade ? "Connection: Upgrade, close" : "Connection: close");
  const out = kept.join("\r\n") + "\r\n\r\n";
  const bytes = new Uint8Array(out.length);
  for (let i = 0; i < out.length; i++) bytes[i] = out.charCodeAt(i) & 0xff;
  return bytes;
}

export async function writeAll(
  conn: Deno.Conn,
  bytes: Uint8Array,
): Promise<void> {
  let written = 0;
  while (written < bytes.length) {
    written += await conn.write(bytes.subarray(written));
  }
}

/**
 * Copies `from` to `to` until `from` ends. An idle connection waits with a
 * small buffer; one that fills it reads in large ones until it slows.
 */
export async function pump(from: Deno.Conn, to: Deno.Conn): Promise<void> {
  let buffer = new Uint8Array(SMALL_READ);
  while (true) {
    const n = await from.read(buffer);
    if (n === null) return;
    await writeAll(to, buffer.subarray(0, n));
    if (n === buffer.length) {
      if (buffer.length < LARGE_READ) buffer = new Uint8Array(LARGE_READ);
    } else if (n < SMALL_READ && buffer.length > SMALL_READ) {
      buffer = new Uint8Array(SMALL_READ);
    }
  }
}

export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed.
  }
}

const encoder = new TextEncoder();

export function plainResponse(status: string): Uint8Array {
  return encoder.encode(
    `HTTP/1.1 ${status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n`,
  );
}
