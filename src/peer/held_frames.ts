/**
 * {@linkcode HeldFrames}: the frames a session's transport received and has
 * not handed to its peer yet while a shared store holds them (stored before
 * handled), and how far its acknowledgements may go. Only the server makes
 * one (`ServerSessionSocket.hold`), so the browser client does not carry it.
 *
 * @module
 */

import type { SessionSocket } from "./session_socket.ts";

/**
 * The transport whose frames are held: a session socket that paces its
 * acknowledgements by what is confirmed (the server's,
 * `ServerSessionSocket`).
 */
export interface HoldingSocket extends SessionSocket {
  /** More frames may be acknowledged (`confirmed`): now, or within the delay. */
  paced(): void;
}

/**
 * Holding for one {@linkcode SessionSocket}: its received frames wait here
 * until `release`, and its acknowledgements cover only what `confirm`
 * allows.
 */
export class HeldFrames {
  /** Frames received and released to the peer. */
  released: number;
  /**
   * Frames released whose release is stored (a shared store's
   * "dispatched"), the count acknowledgements carry. The other side keeps
   * the frames after it, so that a new instance can report them in doubt.
   */
  confirmed: number;
  /** The delayed acknowledgement of confirmed frames (the socket's `paced`). */
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  #socket: HoldingSocket;
  #frames: [Event, number][] = [];

  /** @param socket The transport whose frames are held (from its count). */
  constructor(socket: HoldingSocket) {
    this.#socket = socket;
    this.released = this.confirmed = socket.received;
  }

  /** Holds frame number `count`, just received. */
  push(event: Event, count: number): void {
    this.#frames.push([event, count]);
  }

  /** Hands the held frames up to number `count` to the peer. */
  release(count: number): void {
    if (count <= this.released) return;
    const held = this.#frames;
    let n = 0;
    while (n < held.length && held[n][1] <= count) n++;
    const events = held.splice(0, n);
    this.released = count;
    const socket = this.#socket;
    for (const [event] of events) if (!socket.ended) socket.deliver(event);
  }

  /**
   * Lets the acknowledgements cover the frames up to number `count`,
   * released and known released by the store (so the other side drops them
   * from its outbox).
   *
   * @param count Frames released and stored as such, in all.
   */
  confirm(count: number): void {
    count = Math.min(count, this.released);
    if (count <= this.confirmed) return;
    this.confirmed = count;
    this.#socket.paced();
  }
}
