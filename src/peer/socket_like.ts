/**
 * {@linkcode SocketLike}: the part of the WHATWG `WebSocket` a peer runs over.
 *
 * @module
 */

import type { Codec } from "../wire/codec.ts";

/**
 * The part of the WHATWG `WebSocket` that a {@linkcode Peer} uses. Browser,
 * Deno client and `Deno.upgradeWebSocket` sockets all fit.
 *
 * @example Usage
 * ```ts
 * import type { SocketLike } from "@duplex/ws";
 *
 * function accepts(socket: SocketLike): number {
 *   return socket.readyState;
 * }
 * ```
 */
export interface SocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  /** The negotiated subprotocol, when the socket knows it. */
  readonly protocol?: string;
  /** Bytes queued by `send()` and not yet written. */
  readonly bufferedAmount: number;
  /** Queues one message. */
  send(data: string | Uint8Array<ArrayBuffer>): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /** Listens for `message`, `close` and `error`. */
  addEventListener(type: string, listener: EventListenerObject): void;
  /** Stops listening. */
  removeEventListener(type: string, listener: EventListenerObject): void;
  /**
   * Optional: the error pending requests reject with when the socket
   * closes (a session's transport says when the outcome is unknown).
   */
  closeError?(code: number, reason: string): Error | undefined;
}

/**
 * Readies a socket for a codec other than JSON: binary messages as
 * `ArrayBuffer`s (a Deno client's default is `Blob`s), and the codec's
 * `prepare` when the socket is a WebSocket (the binary codec's detached
 * attachments). Another `SocketLike` over a WebSocket needs
 * `codec.prepare(webSocket)` called on that WebSocket first (docs/binary.md).
 */
export function readyForCodec(socket: SocketLike, codec: Codec): void {
  (socket as { binaryType?: string }).binaryType = "arraybuffer";
  if (
    codec.prepare && typeof WebSocket === "function" &&
    socket instanceof WebSocket
  ) {
    codec.prepare(socket);
  }
}

/** Closes a socket, falling back to no code when the code is refused. */
export function closeQuietly(
  socket: SocketLike,
  code: number,
  reason: string,
): void {
  try {
    socket.close(code, reason);
  } catch {
    socket.close();
  }
}
