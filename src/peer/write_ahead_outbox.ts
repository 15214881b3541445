/**
 * {@linkcode WriteAheadOutbox}: the server's session outbox, which can hold
 * sent frames back until a shared store has written them (write-ahead) and
 * load the state another instance stored. Only the server imports it (a
 * `SessionSocket` makes one through its hooks' `outbox`), so the browser
 * client does not carry it.
 *
 * @module
 */

import {
  type OutboxLimits,
  SessionOutbox,
  type WriteAhead,
} from "./session_outbox.ts";

type Data = string | Uint8Array<ArrayBuffer>;

/**
 * A {@linkcode SessionOutbox} with write-ahead: after `holdSent`, a frame
 * leaves for the socket only once `releaseSent` counts it stored; held
 * frames wait here, in order, and a replay sends only stored ones. It
 * tells a shared store's journal of each frame it keeps (`kept`), and its
 * owner when it overflows.
 */
export class WriteAheadOutbox extends SessionOutbox implements WriteAhead {
  override stored: number | undefined = undefined;
  /** Write-ahead: the last frame number written to the socket. */
  left = 0;
  #kept: ((data: Data) => void) | undefined;
  #overflowed: (() => void) | undefined;

  /**
   * @param limits Its limits.
   * @param kept Told of each frame kept (within the limits), for the
   * journal of a shared store; not of the frames `load` puts back.
   * @param overflowed Told when a frame goes over a limit (the session can
   * no longer be resumed: its socket stops keeping frames).
   */
  constructor(
    limits: OutboxLimits,
    kept?: (data: Data) => void,
    overflowed?: () => void,
  ) {
    super(limits);
    this.#kept = kept;
    this.#overflowed = overflowed;
  }

  /**
   * Keeps a frame just sent (see `SessionOutbox.push`), and tells `kept`,
   * or `overflowed`.
   *
   * @param data The frame.
   * @param now The clock.
   * @returns `false` when a limit is exceeded.
   */
  override push(data: Data, now: () => number): boolean {
    const fits = super.push(data, now);
    if (fits) this.#kept?.(data);
    else this.#overflowed?.();
    return fits;
  }

  /** Write-ahead from now on: the frames sent so far count as stored. */
  holdSent(): void {
    this.stored ??= this.left = this.sent;
  }

  /**
   * Whether the frame just pushed leaves for the socket now: always
   * without write-ahead; else when it is stored and every earlier one left.
   *
   * @param attached Whether a socket is attached.
   * @returns `true` when it leaves now.
   */
  leaves(attached: boolean): boolean {
    const stored = this.stored;
    if (stored === undefined) return true;
    const sent = this.sent;
    if (!attached || sent > stored || this.left !== sent - 1) return false;
    this.left = sent;
    return true;
  }

  /**
   * Write-ahead: the frames up to number `count` are stored; the held ones
   * among them leave for `socket`, in order.
   *
   * @param count Frames stored, in all.
   * @param socket The attached socket, if any.
   */
  releaseSent(
    count: number,
    socket: { send(data: Data): void } | undefined,
  ): void {
    const stored = this.stored;
    if (stored === undefined || count <= stored) return;
    this.stored = count;
    const upTo = Math.min(count, this.sent);
    if (socket === undefined || upTo <= this.left) return;
    const frames = this.pending(Math.max(this.left, this.acked), upTo);
    this.left = upTo;
    for (const frame of frames) socket.send(frame);
  }

  /**
   * The frames a replay sends: every kept one, or (write-ahead) the stored
   * ones; the rest leave when stored.
   *
   * @returns A copy of the list, oldest first.
   */
  override replay(): Data[] {
    const stored = this.stored;
    if (stored === undefined) return this.pending();
    const upTo = Math.max(this.acked, Math.min(stored, this.sent));
    this.left = upTo;
    return this.pending(this.acked, upTo);
  }

  /**
   * Loads the state another instance stored: `sent` frames, the last of
   * them kept. When the other side received `theirs` ≥ `sent` (the previous
   * instance sent frames it had not stored), its count is adopted.
   *
   * @param sent Frames the other instance sent, in all.
   * @param frames The last of them, kept for a replay.
   * @param theirs The other side's count.
   */
  load(sent: number, frames: readonly Data[], theirs: number): void {
    if (theirs >= sent) {
      this.sent = this.acked = theirs;
      return;
    }
    this.sent = this.acked = sent - frames.length;
    for (const frame of frames) super.push(frame, Date.now);
  }
}
