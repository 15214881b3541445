/**
 * Write coalescing: the frames a connection is sent in one turn of the event
 * loop (pipelined responses, a burst of pushes) leave as one WebSocket
 * message, a batch frame (type 11, PROTOCOL.md "Batches"), for clients that
 * offered `duplex.batch`. {@linkcode CoalescingSocket} queues a connection's
 * frames; {@linkcode Coalescer} flushes every queue once the turn's work is
 * done, never on a timer: Deno dispatches the messages that are already
 * buffered one microtask apart within the same turn, so a chain of
 * microtasks that sees no new frame for {@linkcode IDLE_HOPS} hops in a row
 * knows the burst ended. A frame alone in its turn leaves as it is, before
 * the turn ends (`setImmediate`, measured, cost a round trip 3–8 µs more);
 * and once a connection's last burst was a single frame (a client waiting
 * for each answer), its next first frame is sent at once, without the hops,
 * as fast as without coalescing; frames that follow it in the same turn are
 * queued and batched as before.
 *
 * @module
 */

import type { SocketLike } from "../peer/peer.ts";
import { encodeBatch } from "../wire/batch.ts";

/** A queue this long (in UTF-16 units) is sent at once. */
const MAX_BATCH = 65_536;

/**
 * Microtask hops without a new frame after which a burst is over. Deno
 * 2.9 dispatches buffered messages one hop apart: 2 already batch as well
 * as `setImmediate` does (bench/profile.ts); 4 leaves a margin.
 */
export const IDLE_HOPS = 4;

/** Flushes the queued sockets of one server when a burst of frames ends. */
export class Coalescer {
  /** Frames queued so far (any socket): a change means the burst goes on. */
  frames = 0;
  #queued: CoalescingSocket[] = [];
  #scheduled = false;
  #seen = 0;
  #idle = 0;
  readonly #hop = (): void => {
    if (this.frames !== this.#seen) {
      this.#seen = this.frames;
      this.#idle = 0;
    } else if (++this.#idle >= IDLE_HOPS) {
      this.#flush();
      return;
    }
    queueMicrotask(this.#hop);
  };

  /** Flushes `socket` when the current burst ends. */
  schedule(socket: CoalescingSocket): void {
    this.#queued.push(socket);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#seen = this.frames;
      this.#idle = 0;
      queueMicrotask(this.#hop);
    }
  }

  #flush(): void {
    this.#scheduled = false;
    const queued = this.#queued;
    this.#queued = [];
    for (const socket of queued) socket.endBurst();
  }
}

/**
 * Frames of a request or a notification (they begin with `{"sequence"`),
 * but no ping or pong: those concern one connection and are written as
 * they are, as are the session frames (`{"type":…`) and binary messages.
 */
function batchable(data: string): boolean {
  return data.charCodeAt(2) === 115 && // s
    !(data.length <= 33 &&
      (data.endsWith('"type":5}') || data.endsWith('"type":6}')));
}

/**
 * A connection's socket that queues text frames until the end of the turn
 * and sends them as one batch frame (a single frame as it is). Anything not
 * batched is sent after what is queued, so the order never changes.
 */
export class CoalescingSocket implements SocketLike {
  #inner: SocketLike;
  #coalescer: Coalescer;
  #queue: string[] = [];
  #length = 0;
  /** Waiting for the end of a burst (scheduled with the coalescer). */
  #inBurst = false;
  /** Frames of the current burst sent already (at once, or flushed). */
  #sent = 0;
  /**
   * The last burst was a single frame: the next burst's first frame is
   * sent at once. A new connection starts by batching.
   */
  #lone = false;
  /** The inner socket's buffer, read once per turn while frames wait. */
  #buffered = -1;

  /**
   * @param inner The socket the batches go to (the budgeted socket).
   * @param coalescer The server's flusher.
   */
  constructor(inner: SocketLike, coalescer: Coalescer) {
    this.#inner = inner;
    this.#coalescer = coalescer;
  }

  /** The inner socket's state. */
  get readyState(): number {
    return this.#inner.readyState;
  }

  /** The inner socket's protocol. */
  get protocol(): string | undefined {
    return this.#inner.protocol;
  }

  /**
   * Bytes waiting: the inner socket's buffer plus the queue (counted in
   * UTF-16 units). While frames wait the inner buffer is read once: nothing
   * is written within a turn, so it cannot grow before the flush.
   */
  get bufferedAmount(): number {
    if (this.#queue.length === 0) return this.#inner.bufferedAmount;
    if (this.#buffered < 0) this.#buffered = this.#inner.bufferedAmount;
    return this.#buffered + this.#length;
  }

  /** Queues a frame, or sends it after the queue when it is not batched. */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    if (typeof data !== "string" || !batchable(data)) {
      this.flush();
      this.#inner.send(data);
      return;
    }
    this.#coalescer.frames++;
    if (!this.#inBurst) {
      this.#inBurst = true;
      this.#coalescer.schedule(this);
      if (this.#lone) {
        // Most likely alone again: no wait.
        this.#sent = 1;
        this.#inner.send(data);
        return;
      }
    }
    const queue = this.#queue;
    queue.push(data);
    this.#length += data.length;
    if (this.#length >= MAX_BATCH) this.flush();
  }

  /** The burst is over: sends what is queued, and learns its size. */
  endBurst(): void {
    const frames = this.#sent + this.#queue.length;
    this.flush();
    this.#inBurst = false;
    this.#sent = 0;
    this.#lone = frames === 1;
  }

  /** Sends what is queued: one frame as it is, several as a batch. */
  flush(): void {
    const queue = this.#queue;
    if (queue.length === 0) return;
    this.#queue = [];
    this.#length = 0;
    this.#buffered = -1;
    this.#sent += queue.length;
    this.#inner.send(queue.length === 1 ? queue[0] : encodeBatch(queue));
  }

  /** Sends what is queued, then starts the closing handshake. */
  close(code?: number, reason?: string): void {
    this.flush();
    this.#inner.close(code, reason);
  }

  /** Listens on the inner socket. */
  addEventListener(type: string, listener: EventListenerObject): void {
    this.#inner.addEventListener(type, listener);
  }

  /** Stops listening on the inner socket. */
  removeEventListener(type: string, listener: EventListenerObject): void {
    this.#inner.removeEventListener(type, listener);
  }
}
