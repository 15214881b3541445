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
 * queued and batched as before. Such a burst ends after {@linkcode LONE_HOPS}
 * idle hops rather than {@linkcode IDLE_HOPS} unless more frames come: the
 * hops run before Deno writes the frame (its socket writes wait for the
 * turn's microtasks). A `duplex.nagle` client's burst keeps the full wait,
 * which gives an async handler time to answer before a pong would.
 *
 * The same end of a burst serves clients that offered `duplex.nagle`
 * (PROTOCOL.md "Nagle answers"): a burst in which such a client's frames
 * arrived and nothing was written back to it ends with a pong, so that
 * the client's next write, which Nagle's algorithm holds until its earlier
 * ones are acknowledged, does not wait for TCP's delayed acknowledgement.
 *
 * @module
 */

import type { SocketLike } from "../peer/peer.ts";
import { encodeBatch } from "../wire/batch.ts";
import { sessionFrameType } from "../wire/session_frames.ts";

/** A queue this long (in UTF-16 units) is sent at once. */
const MAX_BATCH = 65_536;

/** The answer to a burst that nothing else answered (a pong, PROTOCOL.md). */
export const NAGLE_ANSWER = '{"sequence":0,"type":6}';

/**
 * Microtask hops without a new frame after which a burst is over. Deno
 * 2.9 dispatches buffered messages one hop apart: 2 already batch as well
 * as `setImmediate` does (bench/profile.ts); 4 leaves a margin.
 */
export const IDLE_HOPS = 4;

/**
 * The idle hops after which a burst that began with a frame sent at once
 * (a lone frame: a client waiting for each answer) ends: the 2 that still
 * catch Deno's dispatch of a buffered message (1 does not: pipelined
 * requests after sequential ones then never batch). Each hop saved is
 * ~1,200 instructions per round trip in Deno 2.9
 * (bench/client_instructions.ts, modes `lean,leanbatch`); once a second
 * frame comes, the burst gets the full {@linkcode IDLE_HOPS}.
 */
export const LONE_HOPS = 2;

/** Flushes the queued sockets of one server when a burst of frames ends. */
export class Coalescer {
  /** Frames queued so far (any socket): a change means the burst goes on. */
  frames = 0;
  #queued: CoalescingSocket[] = [];
  #scheduled = false;
  #seen = 0;
  #idle = 0;
  /** Idle hops that end the current burst. */
  #hops = IDLE_HOPS;
  readonly #hop = (): void => {
    if (this.frames !== this.#seen) {
      this.#seen = this.frames;
      this.#idle = 0;
      this.#hops = IDLE_HOPS;
    } else if (++this.#idle >= this.#hops) {
      this.#flush();
      return;
    }
    queueMicrotask(this.#hop);
  };

  /**
   * Flushes `socket` when the current burst ends.
   *
   * @param socket The socket with frames queued, or in a burst.
   * @param lone Its burst began with a frame sent at once: a shorter wait
   *   ({@linkcode LONE_HOPS}) unless more frames come.
   */
  schedule(socket: CoalescingSocket, lone = false): void {
    this.#queued.push(socket);
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#seen = this.frames;
      this.#idle = 0;
      this.#hops = lone ? LONE_HOPS : IDLE_HOPS;
      queueMicrotask(this.#hop);
    } else if (!lone) this.#hops = IDLE_HOPS;
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

/** What a {@linkcode CoalescingSocket} does for its client. */
export interface CoalescingOptions {
  /** Frames of a burst leave as one batch (the client offered it). */
  batches: boolean;
  /** A burst of the client's frames that nothing answered gets a pong. */
  nagle: boolean;
}

/**
 * A connection's socket that queues text frames until the end of the turn
 * and sends them as one batch frame (a single frame as it is). Anything not
 * batched is sent after what is queued, so the order never changes. For a
 * client that offered `duplex.nagle` it also listens to what the client
 * sends, and answers a burst of it with a pong when nothing else did.
 */
export class CoalescingSocket implements SocketLike {
  #inner: SocketLike;
  #coalescer: Coalescer;
  #batches: boolean;
  #queue: string[] = [];
  #length = 0;
  /** Registered with the coalescer, to be told when the burst ends. */
  #scheduled = false;
  /** Frames were written or queued in this burst. */
  #inBurst = false;
  /** Whether it answers bursts (the client offered `duplex.nagle`). */
  #nagle: boolean;
  /** The message listener it stands in front of (`duplex.nagle` only). */
  #reader: EventListenerObject | undefined = undefined;
  /** A frame came in and nothing went out since (duplex.nagle only). */
  #unanswered = false;
  /** The counts by frame type where its Nagle answers (pongs) are added. */
  framesOut: number[] | undefined = undefined;
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
   * @param options Batches, Nagle answers, or both.
   */
  constructor(
    inner: SocketLike,
    coalescer: Coalescer,
    options: CoalescingOptions = { batches: true, nagle: false },
  ) {
    this.#inner = inner;
    this.#coalescer = coalescer;
    this.#batches = options.batches;
    this.#nagle = options.nagle;
  }

  /**
   * A frame came in from a `duplex.nagle` client: noted before the message
   * listener (the peer, or the session socket) reads it, and so before
   * anything it answers.
   */
  handleEvent(event: Event): void {
    // A session ack has its own answer (the session layer's, which waits a
    // little for a frame that would carry TCP's acknowledgement anyway).
    const data = (event as MessageEvent).data;
    if (sessionFrameType(data) !== 10) this.#unanswered = true;
    this.#coalescer.frames++;
    this.#schedule();
    this.#reader!.handleEvent(event);
  }

  #schedule(lone = false): void {
    if (!this.#scheduled) {
      this.#scheduled = true;
      this.#coalescer.schedule(this, lone);
    }
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
    this.#unanswered = false;
    if (typeof data !== "string" || !this.#batches || !batchable(data)) {
      this.flush();
      this.#inner.send(data);
      return;
    }
    this.#coalescer.frames++;
    if (!this.#inBurst) {
      this.#inBurst = true;
      this.#schedule(this.#lone);
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

  /**
   * The burst is over: sends what is queued, and learns its size; answers
   * a `duplex.nagle` client whose frames nothing answered.
   */
  endBurst(): void {
    this.#scheduled = false;
    if (this.#inBurst) {
      const frames = this.#sent + this.#queue.length;
      this.flush();
      this.#inBurst = false;
      this.#sent = 0;
      this.#lone = frames === 1;
    }
    if (this.#unanswered) {
      this.#unanswered = false;
      if (this.#inner.readyState === 1) {
        this.#inner.send(NAGLE_ANSWER);
        if (this.framesOut) this.framesOut[6]++;
      }
    }
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

  /**
   * Listens on the inner socket. For a `duplex.nagle` client the (one)
   * message listener is called through {@linkcode handleEvent}: one
   * listener on the socket, one dispatch per message, as without it.
   */
  addEventListener(type: string, listener: EventListenerObject): void {
    if (this.#nagle && type === "message" && this.#reader === undefined) {
      this.#reader = listener;
      listener = this;
    }
    this.#inner.addEventListener(type, listener);
  }

  /** Stops listening on the inner socket. */
  removeEventListener(type: string, listener: EventListenerObject): void {
    if (type === "message" && listener === this.#reader) {
      this.#reader = undefined;
      listener = this;
    }
    this.#inner.removeEventListener(type, listener);
  }
}
