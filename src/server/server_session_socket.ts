/**
 * {@linkcode ServerSessionSocket}: the server's session transport. It adds
 * to `SessionSocket` what only a server does, so that the browser client
 * does not carry it: answering the ack of a client that only receives (a
 * fan-out's receivers), which spares that client a delayed TCP ack, and
 * holding what it receives until a shared store has it.
 *
 * @module
 */

import { SessionSocket } from "../peer/session_socket.ts";
import type { SessionLimits } from "../peer/session_limits.ts";
import type { SessionHooks } from "../peer/session_hooks.ts";
import type { SocketLike } from "../peer/socket_like.ts";
import type { HeldFrames } from "../peer/held_frames.ts";
import type { WriteAheadOutbox } from "../peer/write_ahead_outbox.ts";

/**
 * How long the answer to a receiver's ack waits for a frame of ours that
 * would carry TCP's acknowledgement instead (ms): well under the ~40 ms of
 * a delayed TCP ack that it is there to spare the other side.
 */
const ANSWER_WAIT = 2;

/** What a server's session transport tells its owner, and asks it. */
export interface ServerSessionHooks extends SessionHooks {
  /**
   * The other side acknowledged `received` frames (`lone`: in an ack
   * message, not carried), told before the outbox drops them; `true`:
   * answer at once with this side's (`Session.answers`).
   */
  answers(received: number, lone: boolean): boolean;
  /** The other side acknowledged `count` frames in all. */
  onAcked(count: number): void;
  /**
   * This side ends the session on purpose while attached: what is held
   * back (write-ahead) leaves now, before the end.
   */
  onEnding(): void;
  /** Holding: a frame arrived (`count` in all), waiting for `release`. */
  onHeld(data: unknown, count: number): void;
}

/**
 * A server's session transport: a `SessionSocket` that answers acks where
 * its owner's `answers` asks. Internal: the server's `Session` makes it.
 */
export class ServerSessionSocket extends SessionSocket {
  #hooks: ServerSessionHooks;
  #limits: SessionLimits;
  #answerTimer: ReturnType<typeof setTimeout> | undefined;
  /** Frames received when the other side's previous ack arrived. */
  #receivedAtAck = 0;
  /**
   * While an answer to an ack waits: the frames this side had written then
   * (any written since cancels it); -1 when none waits.
   */
  #answerAt = -1;
  /** Holding (a shared store's): received frames wait there to be released. */
  #held: HeldFrames | undefined;

  /**
   * @param limits Limits and acknowledgement pacing (shared).
   * @param hooks Who hears of drops, overflows and errors, and decides
   * which acks are answered.
   */
  constructor(limits: SessionLimits, hooks: ServerSessionHooks) {
    super(limits, hooks);
    this.#hooks = hooks;
    this.#limits = limits;
    // V8 tracks a field as constant per class until its first store, and
    // the send path is compiled on that: these sockets (a class of their
    // own) would first store the acknowledgement fields at their first
    // acknowledgement, recompiling the send path then. Stored once here
    // (nothing is due: it sends nothing).
    this.acknowledgeLater();
  }

  /** Frames received and handed to the peer (all of them unless holding). */
  override get released(): number {
    return this.#held?.released ?? this.received;
  }

  /**
   * Holds received frames in `held` until released (stored before handled),
   * and acknowledges only what it confirms.
   *
   * @param held The server's holding (made over this socket).
   */
  hold(held: HeldFrames): void {
    this.#held ??= held;
  }

  /**
   * Holding: takes a received frame. Internal.
   *
   * @param event Its `message` event.
   * @param data Its data.
   * @param count Frames received in all.
   * @returns `true` when held.
   */
  protected override keep(event: Event, data: unknown, count: number): boolean {
    const held = this.#held;
    if (held === undefined) return false;
    held.push(event, count);
    this.#hooks.onHeld(data, count);
    return true;
  }

  /**
   * Holding: the frames that may be acknowledged. Internal.
   *
   * @returns Those confirmed; `undefined` unless holding.
   */
  protected override confirmed(): number | undefined {
    return this.#held?.confirmed;
  }

  /**
   * Holding: more frames may be acknowledged (`HeldFrames.confirm`): now
   * if that makes `ackEvery`, else within the delay.
   */
  paced(): void {
    const limits = this.#limits;
    const held = this.#held!;
    if (this.behind(limits.ackEvery)) {
      this.acknowledge();
    } else if (this.transport) {
      held.timer ??= setTimeout(paceLater, limits.ackDelay, this);
    }
  }

  /** The delay of `paced` is over: acknowledges what was confirmed since.
   * Not meant to be called. */
  paceLater(): void {
    this.#held!.timer = undefined;
    if (this.behind()) this.acknowledge();
  }

  /**
   * Detaches the WebSocket (see `SessionSocket.detach`); an answer that
   * waits, and a paced acknowledgement, are dropped.
   *
   * @returns The socket that was attached.
   */
  override detach(): SocketLike | undefined {
    clearTimeout(this.#answerTimer);
    this.#answerTimer = undefined;
    const held = this.#held;
    if (held !== undefined) {
      clearTimeout(held.timer);
      held.timer = undefined;
    }
    this.#answerAt = -1;
    return super.detach();
  }

  /**
   * Detaches the WebSocket that a resume replaced, as `drop` does, but
   * leaves it open when the server pings idle sockets (`idleTimeout` > 0).
   * The client that resumed found that connection dead, often behind a
   * black hole (a phone that lost its network): a WebSocket that Deno has
   * sent a close frame on waits for the answer until TCP gives up (many
   * minutes), holding its connection slot, while an open one that stays
   * silent is closed by Deno's idle timeout within `idleTimeout` seconds. A
   * live old connection closes itself: its client left it. Without an
   * idle timeout it is closed at once, as before.
   *
   * @param code The close code.
   * @param reason The close reason.
   * @param idleTimeout The socket's idle timeout, in seconds.
   */
  retire(code: number, reason: string, idleTimeout: number): void {
    if (!(idleTimeout > 0)) return this.drop(code, reason);
    if (this.detach() !== undefined) this.#hooks.onDetach?.(code, reason);
  }

  /**
   * Ends the session on purpose (see `SessionSocket.close`); what is held
   * back (write-ahead) leaves first.
   *
   * @param code The close code.
   * @param reason The close reason.
   */
  override close(code = 1000, reason = ""): void {
    // Ended on purpose (never resumed): what is held leaves first.
    if (!this.ended && this.transport?.readyState === 1) this.#hooks.onEnding();
    super.close(code, reason);
  }

  /**
   * The other side received `received` of our frames; answered when the
   * owner's `answers` says so. Internal.
   *
   * @param received The other side's count.
   * @param lone It came in an ack message.
   * @returns `false` after a violation.
   */
  protected override acked(received: number, lone: boolean): boolean {
    this.outbox();
    // Asked before the outbox drops what was acknowledged.
    const answer = this.#hooks.answers(received, lone);
    if (!super.acked(received, lone)) return false;
    this.#hooks.onAcked(received);
    if (!lone) return true;
    // Whether the other side sent frames since its previous ack.
    const sending = this.received !== this.#receivedAtAck;
    this.#receivedAtAck = this.received;
    if (answer) this.#answer(sending);
    return true;
  }

  /**
   * Answers the other side's ack: at once when frames arrived since our
   * last ack (the answer acknowledges them), or since its previous ack
   * (`sending`: it sends requests, and its next ones wait behind this ack
   * under Nagle; our own ack may have just covered them, when both sides'
   * counts cross their pacing together, as sequential calls make them).
   * Else the other side only received (a fan-out's receivers): any frame
   * we send within `ANSWER_WAIT` ms carries TCP's acknowledgement of its
   * ack as well, so the answer goes only when none did.
   *
   * @param sending The other side sent frames since its previous ack.
   */
  #answer(sending: boolean): void {
    if (sending || this.behind()) return this.acknowledge();
    this.#answerAt = this.#written();
    this.#answerTimer ??= setTimeout(answerLater, ANSWER_WAIT, this);
  }

  /**
   * The frames this side wrote to the socket: every one sent, or, while
   * write-ahead holds them back, those that left.
   */
  #written(): number {
    const outbox = this.outbox() as WriteAheadOutbox;
    return outbox.stored === undefined ? outbox.sent : outbox.left;
  }

  /** The answer's wait is over: sent unless a frame went. Not meant to be
   * called. */
  answerLater(): void {
    clearTimeout(this.#answerTimer);
    this.#answerTimer = undefined;
    const at = this.#answerAt;
    this.#answerAt = -1;
    if (at === this.#written()) this.acknowledge();
  }
}

/** The answer's and the pacing's timers (no closure per session). */
const answerLater = (socket: ServerSessionSocket) => socket.answerLater();
const paceLater = (socket: ServerSessionSocket) => socket.paceLater();
