/**
 * {@linkcode SessionOutbox}: the frames one side of a session sent and the
 * other has not acknowledged yet, bounded in frames, bytes and age.
 *
 * @module
 */

/** The limits of a {@linkcode SessionOutbox}. */
export interface OutboxLimits {
  /** The most unacknowledged frames. */
  maxFrames: number;
  /** The most unacknowledged bytes (string length for text frames). */
  maxBytes: number;
  /** The oldest an unacknowledged frame may get, in ms (checked every 64). */
  maxAge: number;
}

import { frameBytes, messageSize } from "../wire/frame_bytes.ts";

type Data = string | Uint8Array<ArrayBuffer>;

/**
 * What a `SessionSocket` asks of a write-ahead outbox (the server's
 * `WriteAheadOutbox`), and only when its `stored` is set.
 */
export interface WriteAhead extends SessionOutbox {
  /** Whether the frame just pushed leaves for the socket now. */
  leaves(attached: boolean): boolean;
}

/**
 * A queue of sent frames numbered from 1 in send order: `acked` frames were
 * acknowledged and dropped, the ones after it are kept for a replay. Its
 * arrays are allocated on the first frame, so an idle session costs a few
 * fields.
 */
export class SessionOutbox {
  /** Frames acknowledged (and dropped) so far. */
  acked = 0;
  /** Frames sent so far. */
  sent = 0;
  /**
   * Write-ahead (a `WriteAheadOutbox`, the server's): the frames numbered
   * up to this count are stored by a shared store and may leave for the
   * socket; those after it wait here. `undefined`: every frame leaves at
   * once (always so here).
   */
  declare stored?: number;
  #frames: Data[] | undefined;
  /**
   * When the oldest kept frame was sent, at most: set when the outbox
   * becomes non-empty and after each trim that leaves frames (so an age
   * errs low by at most one acknowledgement interval).
   */
  #oldestAt = 0;
  #head = 0;
  #bytes = 0;
  /** Binary frames kept (a trim looks for them only while there are). */
  #binary = 0;
  #limits: OutboxLimits;

  /** @param limits The bounds; beyond one `push` returns `false`. */
  constructor(limits: OutboxLimits) {
    this.#limits = limits;
  }

  /** Frames kept (sent and not acknowledged). */
  get size(): number {
    return this.sent - this.acked;
  }

  /** Bytes kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * Keeps one more sent frame.
   *
   * @param data The frame as sent.
   * @param now Reads the clock, in ms.
   * @returns `false` when a limit is exceeded (the frame is counted as sent
   * but the outbox can no longer replay: the caller gives the session up).
   */
  push(data: Data, now: () => number): boolean {
    const sent = ++this.sent;
    let frames = this.#frames;
    if (frames === undefined) {
      frames = this.#frames = [];
      this.#oldestAt = now();
    }
    const bytes = this.#bytes += messageSize(data);
    // Bytes are kept as they are when they are the binary codec's lent
    // buffer (it then encodes the next frame elsewhere), else as a copy.
    if (typeof data === "string") frames.push(data);
    else {
      frames.push(frameBytes.keep(data));
      this.#binary++;
    }
    const limits = this.#limits;
    return sent - this.acked <= limits.maxFrames &&
      bytes <= limits.maxBytes &&
      // The clock is read once every 64 frames.
      ((sent & 63) !== 0 || now() - this.#oldestAt <= limits.maxAge);
  }

  /**
   * Drops the frames up to number `count`, which the other side received.
   *
   * @param count The other side's cumulative count.
   * @returns `false` when `count` is impossible (beyond what was sent, or
   * below what was already dropped).
   */
  trim(count: number): boolean {
    if (count > this.sent || count < this.acked) return false;
    const frames = this.#frames;
    if (frames === undefined) {
      this.acked = count;
      return true;
    }
    const first = this.#head;
    const head = first + count - this.acked;
    const kept = frames.length - head;
    // The bytes left: the kept frames' or, when fewer, the dropped ones'
    // taken off.
    this.#bytes = kept < head - first
      ? bytesOf(frames, head, frames.length)
      : this.#bytes - bytesOf(frames, first, head);
    // The buffer of an acknowledged binary frame goes back to the pool.
    for (let n = first; this.#binary > 0 && n < head; n++) {
      const data = frames[n];
      if (typeof data !== "string") {
        frameBytes.recycle(data);
        this.#binary--;
      }
    }
    this.acked = count;
    if (kept <= head) {
      // Kept in a new array (no more copied than dropped), or none kept (an
      // idle session keeps no array): a young array takes young frames
      // without the write barrier's slow path, which an old one pays for
      // each frame pushed (an old-to-young pointer).
      this.#frames = kept === 0 ? undefined : frames.slice(head);
      this.#head = 0;
      // Emptied (at once): an old array, dead but not yet collected, would
      // keep the frames it held alive through every scavenge.
      frames.length = 0;
    } else {
      frames.fill("", first, head);
      this.#head = head;
    }
    if (kept > 0) this.#oldestAt = Date.now();
    return true;
  }

  /**
   * The kept frames numbered `after + 1` (≥ `acked`) to `upTo`, oldest
   * first: by default every kept one.
   *
   * @param after The last frame number not wanted.
   * @param upTo The last frame number wanted.
   * @returns A copy of the list.
   */
  pending(after: number = this.acked, upTo: number = this.sent): Data[] {
    const frames = this.#frames;
    if (frames === undefined || upTo <= after) return [];
    const head = this.#head - this.acked;
    return frames.slice(head + after, head + upTo);
  }

  /**
   * The frames a replay sends: every kept one (a `WriteAheadOutbox`: the
   * stored ones).
   *
   * @returns A copy of the list, oldest first.
   */
  replay(): Data[] {
    return this.pending();
  }

  /** Drops every kept frame; the counts stay. */
  clear(): void {
    this.trim(this.sent);
  }
}

/** The bytes of the frames from index `from` to `to` (excluded). */
function bytesOf(frames: Data[], from: number, to: number): number {
  let bytes = 0;
  for (let n = from; n < to; n++) {
    bytes += messageSize(frames[n]);
  }
  return bytes;
}
