/**
 * {@linkcode SessionSocket}: the resumable transport of a session. It sits
 * between a {@linkcode Peer} and the WebSocket of the moment: the peer sees
 * one socket for the whole session, while the WebSockets under it come and
 * go. It counts the frames each way, keeps what the other side has not
 * acknowledged, acknowledges cumulatively, and replays on a resume.
 * Runtime-neutral: the browser client uses it as well as the server.
 *
 * @module
 */

import { nextTurn } from "./next_turn.ts";
import {
  decodeAck,
  encodeAck,
  isLiveness,
  sessionFrameType,
  type SessionLossReason,
} from "../wire/session_frames.ts";
import { OutcomeUnknownError } from "../wire/outcome_unknown_error.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import { batchSize } from "../wire/batch.ts";
import { messageSize } from "../wire/frame_bytes.ts";
import type { AckCarrier } from "../wire/codec.ts";
import { SessionOutbox, type WriteAhead } from "./session_outbox.ts";
import { closeQuietly, type SocketLike } from "./socket_like.ts";
import { ListenerLists } from "./listener_lists.ts";
import type { SessionLimits } from "./session_limits.ts";
import type { SessionHooks } from "./session_hooks.ts";

export { type SessionLimits, sessionLimits } from "./session_limits.ts";
export type { SessionHooks } from "./session_hooks.ts";

const OPEN = 1;

type Data = string | Uint8Array<ArrayBuffer>;

/**
 * One session's transport, as a {@linkcode SocketLike} for the peer: open
 * (readyState 1) for the whole session, attached to a WebSocket or waiting
 * for the next one. Sends go to the attached socket and into the outbox;
 * while detached they only go into the outbox (and are replayed on the next
 * `attach`). Internal: the server and the client create it.
 */
export class SessionSocket extends ListenerLists implements SocketLike {
  #outbox: SessionOutbox | undefined;
  #limits: SessionLimits;
  #hooks: SessionHooks;
  #received = 0;
  /** The count our last acknowledgement carried. */
  #acknowledged = 0;
  /** Bytes received since our last acknowledgement. */
  #unacknowledgedBytes = 0;
  #ackTimer: ReturnType<typeof setTimeout> | undefined;
  #ackSoon = false; // due: at the next frame sent, else the next turn
  #ackTurn = false; // the next turn's check is scheduled
  #transport: SocketLike | undefined;
  /** Acknowledgements ride on large frames, both ways (negotiated). */
  #carrier: AckCarrier | undefined;
  #ended = false;
  #remoteEnded = false;
  /** Set when the outbox overflowed: no replay is possible any more. */
  #lost: SessionLossReason | undefined;
  /** Set when the session ended because it was lost (not on purpose). */
  #endReason: SessionLossReason | undefined;
  /** The counts were restored from storage: adopt the other side's count. */
  #restored = false;
  /**
   * Holding (a shared store's, `ServerSessionSocket`): takes a received
   * frame (`count` in all) to release later; `true` when it did. Internal.
   */
  protected keep?(event: Event, data: unknown, count: number): boolean;
  /** Holding: the frames that may be acknowledged (confirmed). Internal. */
  protected confirmed?(): number | undefined;

  /**
   * @param limits Limits and acknowledgement pacing (shared).
   * @param hooks Who hears of drops, overflows and errors.
   */
  constructor(limits: SessionLimits, hooks: SessionHooks = {}) {
    super();
    this.#limits = limits;
    this.#hooks = hooks;
  }

  /** Always `duplex.v1`: sessions exist only there. */
  get protocol(): string {
    return SUBPROTOCOL;
  }

  /** 1 (open) for the whole session, 3 (closed) once it ended. */
  get readyState(): number {
    return this.#ended ? 3 : OPEN;
  }

  /** The attached socket's send buffer; 0 while detached. */
  get bufferedAmount(): number {
    return this.#transport?.bufferedAmount ?? 0;
  }

  /** Session frames received from the other side. */
  get received(): number {
    return this.#received;
  }

  /** Frames received and handed to the peer (all of them unless holding). */
  get released(): number {
    return this.#received;
  }

  /** Session frames sent to the other side. */
  get sent(): number {
    return this.#outbox?.sent ?? 0;
  }

  /** The kept frames, oldest first (a copy). */
  pendingFrames(): (string | Uint8Array<ArrayBuffer>)[] {
    return this.#outbox?.pending() ?? [];
  }

  /** The attached WebSocket, if any. */
  get transport(): SocketLike | undefined {
    return this.#transport;
  }

  /** `true` once the session ended. */
  get ended(): boolean {
    return this.#ended;
  }

  /** Set once the buffer overflowed (the session cannot be resumed). */
  get lost(): SessionLossReason | undefined {
    return this.#lost;
  }

  /**
   * Whether a resume by a side that received `count` frames can replay
   * everything after it.
   *
   * @param count The other side's count.
   * @returns `true` when `attach` would succeed.
   */
  canResume(count: number): boolean {
    if (this.#ended || this.#lost !== undefined) return false;
    if (this.#restored) return true;
    const outbox = this.#outbox;
    if (outbox === undefined) return count === 0;
    return count >= outbox.acked && count <= outbox.sent;
  }

  /**
   * Restores the count of received frames (a browser page reload): the
   * frames the old page sent but the other side did not get are gone, so
   * the next `attach` adopts the other side's count as this side's.
   *
   * @param received The count saved by the old page.
   * @param adopt `false`: keep this side's count (a session another
   * instance ran, whose outbox its owner loads: `WriteAheadOutbox.load`).
   */
  restore(received: number, adopt = true): void {
    this.#received = this.#acknowledged = received;
    this.#restored = adopt;
  }

  /**
   * Attaches a WebSocket after the session handshake and replays every
   * kept frame after `count`, the other side's count.
   *
   * @param transport The open WebSocket.
   * @param count How many of this side's frames the other side received.
   * @param carrier Both sides agreed to carry acknowledgements in frames:
   * the codec's way.
   * @returns The number of frames replayed, or -1 when the replay is
   * impossible (nothing is attached then).
   */
  attach(transport: SocketLike, count: number, carrier?: AckCarrier): number {
    if (!this.canResume(count)) return -1;
    this.detach();
    if (this.#restored) {
      const outbox = this.outbox();
      outbox.sent = outbox.acked = count;
      this.#restored = false;
    } else {
      this.#outbox?.trim(count);
    }
    this.#transport = transport;
    this.#carrier = carrier;
    // The handshake told the other side our count (all we released).
    this.#acknowledged = this.released;
    this.#unacknowledgedBytes = 0;
    transport.addEventListener("message", this);
    transport.addEventListener("close", this);
    const frames = this.#outbox?.replay() ?? [];
    for (const frame of frames) transport.send(frame);
    return frames.length;
  }

  /**
   * Detaches the WebSocket without closing it or telling anyone (a newer
   * one takes over).
   *
   * @returns The socket that was attached.
   */
  detach(): SocketLike | undefined {
    const transport = this.#transport;
    if (transport === undefined) return undefined;
    this.#transport = undefined;
    clearTimeout(this.#ackTimer);
    this.#ackTimer = undefined;
    this.#ackSoon = false;
    transport.removeEventListener("message", this);
    transport.removeEventListener("close", this);
    return transport;
  }

  /**
   * Closes the attached WebSocket but keeps the session for a resume (a
   * heartbeat found it dead, or a resume takes over); `onDetach` is told at
   * once, without waiting for the closing handshake.
   *
   * @param code The close code.
   * @param reason The close reason.
   */
  drop(code: number, reason: string): void {
    const transport = this.detach();
    if (transport === undefined) return;
    closeQuietly(transport, code, reason);
    this.#hooks.onDetach?.(code, reason);
  }

  /**
   * Sends one session frame: kept until acknowledged, written to the
   * attached socket if any. Pings and pongs only go to the attached socket.
   *
   * @param data The encoded frame.
   */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    const outbox = this.#outbox;
    const transport = this.#transport;
    // The common case, small enough to be compiled into its callers:
    // attached (so not ended), a text frame longer than a ping or pong (33,
    // isLiveness's bound), nothing lost, nothing held back (write-ahead).
    if (
      typeof data === "string" && data.length > 33 && outbox !== undefined &&
      transport !== undefined && this.#lost === undefined &&
      outbox.stored === undefined
    ) {
      if (!outbox.push(data, Date.now)) this.#overflow(outbox);
      transport.send(data);
      if (this.#ackSoon) this.#acknowledgeDue();
      return;
    }
    this.#sendOther(data);
  }

  #overflow(outbox: SessionOutbox): void {
    this.#lost = "overflow";
    outbox.clear();
  }

  /** The other cases of `send`. */
  #sendOther(data: Data): void {
    if (this.#ended) return;
    const transport = this.#transport;
    if (isLiveness(data)) {
      // Pings and pongs concern one connection: never kept or counted (a
      // closing socket drops them).
      transport?.send(data);
      return;
    }
    const outbox = this.outbox() as WriteAhead;
    if (this.#lost !== undefined) {
      outbox.sent++; // Counted, not kept: no replay is possible any more.
    } else if (!outbox.push(data, Date.now)) this.#overflow(outbox);
    // Write-ahead: held (in order) until stored.
    if (
      outbox.stored !== undefined && !outbox.leaves(transport !== undefined) ||
      transport === undefined
    ) return;
    // What arrived since our last acknowledgement rides on a large frame's
    // head where both sides agreed (PROTOCOL.md "Carried acknowledgements").
    const carried = this.#carrier !== undefined && typeof data !== "string" &&
        this.behind()
      ? this.#carrier.carry(data, this.#durable())
      : undefined;
    // No readyState read: a closing socket drops it (kept for the replay).
    transport.send(carried ?? data);
    // A due acknowledgement follows the first frame sent (see below).
    if (carried !== undefined) this.acknowledge(false);
    else if (this.#ackSoon) this.#acknowledgeDue();
  }

  /**
   * Ends the session on purpose (the peer's `close()`): tells the other
   * side (an ack with `end`) when attached, closes the WebSocket, and closes
   * the peer. Idempotent.
   *
   * @param code The close code.
   * @param reason The close reason.
   */
  close(code = 1000, reason = ""): void {
    if (this.#ended) return;
    const transport = this.detach();
    if (transport !== undefined && transport.readyState === OPEN) {
      transport.send(encodeAck(this.#received, true));
      closeQuietly(transport, code, reason);
    }
    this.#end(code, reason);
  }

  /**
   * Ends a session that was lost (expired, overflowed, not resumed): the
   * peer's pending requests reject with {@linkcode OutcomeUnknownError}.
   *
   * @param reason Why it was lost.
   */
  end(reason: SessionLossReason): void {
    if (this.#ended) return;
    this.#endReason = reason;
    const transport = this.detach();
    if (transport !== undefined) closeQuietly(transport, 1000, "Session lost");
    this.#end(1006, `Session ${reason}`);
  }

  /**
   * The error that the peer's pending requests reject with when the
   * session ends: {@linkcode OutcomeUnknownError} when it was lost.
   *
   * @returns The error, or `undefined` for the peer's default.
   */
  closeError(): Error | undefined {
    return this.#endReason === undefined
      ? undefined
      : new OutcomeUnknownError(this.#endReason);
  }

  /**
   * Receives the attached WebSocket's events. Public only because the
   * session socket is its own listener object; not meant to be called.
   *
   * @param event A `message` or `close` event.
   */
  handleEvent(event: Event): void {
    if (event.type === "message") {
      let data = (event as MessageEvent).data;
      const type = sessionFrameType(data);
      if (type === 0) {
        if (isLiveness(data)) {
          this.deliver(event);
          return;
        }
        const carried = typeof data !== "string"
          ? this.#carrier?.uncarry(data)
          : undefined;
        if (carried !== undefined) {
          data = carried[1];
          Object.defineProperty(event, "data", { value: data });
          if (!this.acked(carried[0], false)) return;
        }
        // A batch counts as the frames inside it (PROTOCOL.md "Batches").
        const received = this.#received += batchSize(data);
        if (this.keep?.(event, data, received)) return;
        const limits = this.#limits;
        if (
          received - this.#acknowledged >= limits.ackEvery ||
          (this.#unacknowledgedBytes += messageSize(data)) >= limits.ackBytes
        ) {
          this.#ackSoon = true;
        } else this.#ackTimer ??= this.#later();
        this.deliver(event);
        // Due and not sent after a frame the delivery sent: the next turn.
        if (this.#ackSoon) this.#acknowledgeSoon();
      } else {
        this.#onSessionFrame(type, data as string);
      }
    } else if (event.type === "close") {
      const { code, reason } = event as CloseEvent;
      if (this.detach() === undefined) return;
      // Deno reports 0 for a connection that dropped without a close frame.
      const reported = code || 1006;
      if (this.#remoteEnded) this.#end(reported, reason);
      this.#hooks.onDetach?.(reported, reason);
    }
  }

  #later(): ReturnType<typeof setTimeout> {
    return setTimeout(acknowledgeLater, this.#limits.ackDelay, this);
  }

  /** Due: sent right after the first frame this delivery makes us send, never
   * ahead of it (a lone ack ahead holds it ~40 ms under Nagle: Deno's client
   * has no TCP_NODELAY); if none left within two microtask hops (an awaited
   * answer), at the next turn (`setImmediate`; a 0 ms timer takes ~2 ms). */
  #acknowledgeSoon(): void {
    if (this.#ackTurn) return;
    this.#ackTurn = true;
    queueMicrotask(() =>
      queueMicrotask(() => {
        if (this.#ackSoon) nextTurn(acknowledgeDue, this);
        else this.#ackTurn = false;
      })
    );
  }

  /**
   * The outbox, made on the first frame sent (idle sessions have none), or
   * by its owner first (the server's, through the hooks: write-ahead, load).
   *
   * @returns The outbox.
   */
  outbox(): SessionOutbox {
    return this.#outbox ??= this.#hooks.outbox?.(this.#limits) ??
      new SessionOutbox(this.#limits);
  }

  #onSessionFrame(type: number, data: string): void {
    if (type === 10) {
      let ack;
      try {
        ack = this.#hooks.decodeAck?.(data) ?? decodeAck(data);
      } catch (error) {
        return this.#violation(error);
      }
      if (this.acked(ack.received, !ack.end) && ack.end) {
        // Ended on purpose: nothing to resume (what is held runs: the
        // owner's `onRemoteEnd`).
        this.#remoteEnded = true;
        this.#hooks.onRemoteEnd?.();
      }
      return;
    }
    this.#violation(
      new RangeError(`Cannot take session frame ${type}: session is running`),
    );
  }

  /**
   * The other side received `received` of our frames (an ack, or a count
   * carried: `lone` is false). Internal (the server's subclass answers).
   *
   * @param received The other side's count.
   * @param _lone It came in an ack message.
   * @returns `false` after a violation.
   */
  protected acked(received: number, _lone: boolean): boolean {
    const outbox = this.outbox();
    if (this.#lost === undefined && !outbox.trim(received)) {
      this.#violation(
        new RangeError(
          `Cannot acknowledge ${received} frames: ${outbox.acked} to ${outbox.sent} expected`,
        ),
      );
      return false;
    }
    return true;
  }

  #violation(error: unknown): void {
    this.#hooks.onError?.(error);
    this.drop(1002, "Session protocol error");
  }

  /** Acknowledges what arrived since the last acknowledgement: the delayed
   * timer's, or a due one's turn (`due`: if still due). Not meant to be called. */
  acknowledgeLater(due = false): void {
    if (due) this.#ackTurn = false;
    else this.#ackTimer = undefined;
    if (!due || this.#ackSoon) this.#acknowledgeDue();
  }

  #acknowledgeDue(): void {
    this.#ackSoon = false;
    if (this.behind()) this.acknowledge();
  }

  /**
   * Whether frames arrived (or were confirmed) since our last
   * acknowledgement: at least `by` of them. Internal.
   *
   * @param by How many (the server's holding paces by `ackEvery`).
   * @returns `true` when an acknowledgement would tell something new.
   */
  protected behind(by = 1): boolean {
    return this.#durable() - this.#acknowledged >= by;
  }

  /** What may be acknowledged: every frame, or those confirmed. */
  #durable(): number {
    return this.confirmed?.() ?? this.#received;
  }

  /** Acknowledges now (`send`: false when a head carried it). A delayed one
   * pending is left to fire (it then acknowledges what arrived since, if
   * anything, earlier than due): a timer per delay at most, rather than one
   * set and cleared per acknowledgement (costly in Deno 2.9). Internal. */
  protected acknowledge(send = true): void {
    const transport = this.#transport;
    // Not read: the readyState (a closing socket drops the frame, and the
    // next attach starts from what its handshake tells).
    if (transport === undefined) return;
    this.#ackSoon = false;
    // Never below what a handshake told (a resume reports all released).
    this.#acknowledged = Math.max(this.#durable(), this.#acknowledged);
    this.#unacknowledgedBytes = 0;
    if (send) transport.send(encodeAck(this.#acknowledged));
  }

  #end(code: number, reason: string): void {
    this.#ended = true;
    this.detach();
    this.#outbox?.clear();
    const wasClean = code !== 1006;
    this.closed(new CloseEvent("close", { code, reason, wasClean }));
  }
}

/** The delayed and the due acknowledgement (no closure per session). */
const acknowledgeLater = (socket: SessionSocket) => socket.acknowledgeLater();
const acknowledgeDue = (socket: SessionSocket) => socket.acknowledgeLater(true);
