/**
 * {@linkcode Session}: one live session of a server (its transport, peer
 * and current connection; with a shared store, its journal entry), and the
 * small helpers of the session code.
 *
 * @module
 */

import type { Endpoint, Peer } from "../peer/peer.ts";
import type { SessionLimits } from "../peer/session_socket.ts";
import { ServerSessionSocket } from "./server_session_socket.ts";
import { pacedBy } from "../peer/session_limits.ts";
import type { OutboxLimits } from "../peer/session_outbox.ts";
import { WriteAheadOutbox } from "../peer/write_ahead_outbox.ts";
import { HeldFrames } from "../peer/held_frames.ts";
import {
  decodeAckFast,
  type SessionHello,
  type SessionLossReason,
} from "../wire/session_frames.ts";
import type { ServerConnection, ServerPeerHooks } from "./connection.ts";
import type { JournalEntry } from "./session_journal.ts";
import type { ServerSessions } from "./server_sessions.ts";

/** One live session. It hears its transport's and its peer's hooks. */
export class Session<Local extends Endpoint, Remote extends Endpoint>
  implements ServerPeerHooks<Local, Remote> {
  declare readonly socket: ServerSessionSocket;
  declare peer: Peer<Local, Remote>;
  declare connection: ServerConnection<Local, Remote>;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Taken over elsewhere: when it leaves here. */
  leaveTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Between a drop and the resume: `disconnect` was told. */
  detached = false;
  /** Why it ended, when not on purpose. */
  lostFor: SessionLossReason | undefined = undefined;
  /** Shared store: taken over by another instance (ends here quietly). */
  moved = false;
  /** Shared store: request sequences its earlier instances used. */
  usedSequences = 0;
  /** Shared store: what is written of it (undefined without one). */
  entry: JournalEntry = undefined as unknown as JournalEntry;

  constructor(
    readonly sessions: ServerSessions<Local, Remote>,
    readonly id: string,
    readonly user: string,
    readonly secretHash: string,
    limits: SessionLimits,
    /** The client's hello, whose pacing applies unless `given` sets it. */
    asked: SessionHello = {},
    /** The server's session options. */
    given: { ackEvery?: number; ackBytes?: number } = {},
  ) {
    this.socket = new ServerSessionSocket(
      pacedLimits(limits, asked, given),
      this,
    );
  }

  /** Its transport's outbox, once made (see `SessionSocket.outbox`). */
  #outbox: WriteAheadOutbox | undefined = undefined;

  /** Shared store, write-ahead: what it sends leaves once stored. */
  holdSent(): void {
    (this.socket.outbox() as WriteAheadOutbox).holdSent();
  }

  /**
   * Write-ahead: the frames up to number `count` are stored; the held ones
   * among them leave for the attached socket, in order.
   */
  releaseSent(count: number): void {
    this.#outbox?.releaseSent(count, this.socket.transport);
  }

  onEnding(): void {
    this.releaseSent(Infinity);
  }

  /**
   * A lone ack of new frames is answered: a client whose TCP holds small
   * writes (Nagle's algorithm; Deno's WebSocket client) would else wait ~40
   * ms for TCP's delayed acknowledgement of its ack before its next frames
   * leave. Also when the client sent nothing since its last ack: at the tail
   * of a burst it only receives, and its next requests follow the ack. When
   * the answer leaves (at once, or after a short wait for a client that only
   * receives) is the transport's rule: `ServerSessionSocket`.
   */
  answers(received: number, lone: boolean): boolean {
    return lone && received > this.#outbox!.acked;
  }

  /** It reads every client's acks: the plain form without `JSON.parse`. */
  decodeAck(data: string): { received: number; end: boolean } {
    return decodeAckFast(data);
  }

  /**
   * Shared store: loads what another instance ran (`received` frames of
   * the client; `sent`, the last of them `frames`, kept), the client's
   * count `theirs`.
   */
  load(
    received: number,
    sent: number,
    frames: (string | Uint8Array<ArrayBuffer>)[],
    theirs: number,
  ): void {
    this.socket.restore(received, false);
    (this.socket.outbox() as WriteAheadOutbox).load(sent, frames, theirs);
  }

  /** Shared store: what its transport holds until stored (see `hold`). */
  held: HeldFrames | undefined = undefined;

  /** Shared store: its transport holds what it receives until stored. */
  hold(): void {
    this.socket.hold(this.held ??= new HeldFrames(this.socket));
  }

  /** The frames the client acknowledged (0 before any was sent). */
  get acked(): number {
    return this.#outbox?.acked ?? 0;
  }

  /** Its outbox keeps write-ahead (a shared store's) and loads (takeover). */
  outbox(limits: OutboxLimits): WriteAheadOutbox {
    // A shared store's journal is told of each frame kept; the sessions,
    // of an overflow.
    const journal = this.sessions.journal;
    return this.#outbox = new WriteAheadOutbox(
      limits,
      journal && ((data) => journal.sent(this, data)),
      () => this.sessions.onOverflow(this),
    );
  }

  onDetach(code: number, reason: string): void {
    this.sessions.onDetach(this, code, reason);
  }

  /** Its peer closed: the session ended. */
  onClose(_connection: unknown, code: number, reason: string): void {
    this.sessions.peerEnded(this, code, reason);
  }

  /** A handler or listener of the session's peer failed. */
  onHandlerError(user: string, error: unknown): void {
    this.sessions.host.onError(user, error);
  }

  onRemoteEnd(): void {
    // The client ended it on purpose (and closes its side): what is held
    // runs first.
    this.held?.release(this.socket.received);
    this.socket.close(1000, "Session ended");
  }

  onError(error: unknown): void {
    this.sessions.warn(
      `session protocol error user=${JSON.stringify(this.user)}`,
      error,
    );
  }

  onAcked(count: number): void {
    this.sessions.journal?.acked(this, count);
  }

  onHeld(data: unknown, count: number): void {
    this.sessions.journal?.received(this, data, count);
  }

  /**
   * How many kept frames a client that received `count` frames missed:
   * what `attach` replays, the frames sent after `count` but those held
   * back (write-ahead). A server's session socket never adopts a count.
   */
  missed(count: number): number {
    return Math.max(0, this.socket.sent - this.heldSent - count);
  }

  /** Write-ahead: frames sent by the peer and held back until stored. */
  get heldSent(): number {
    const stored = this.#outbox?.stored;
    return stored === undefined ? 0 : Math.max(0, this.socket.sent - stored);
  }

  rooms(): string[] {
    return this.sessions.host.registry.roomsOf(this.user);
  }

  ttl(): number {
    return this.sessions.storeTtl(this);
  }
}

/** The limits with the pacing a client asked for, one object per pacing. */
const paced = new WeakMap<SessionLimits, Map<string, SessionLimits>>();

/**
 * `limits` acknowledging at the pacing the client's hello asks for
 * (`ackEvery`, `ackBytes`), except where the server's options set it.
 */
export function pacedLimits(
  limits: SessionLimits,
  asked: SessionHello,
  given: { ackEvery?: number; ackBytes?: number },
): SessionLimits {
  const fresh = pacedBy(limits, asked, given);
  const { ackEvery, ackBytes } = fresh;
  if (ackEvery === limits.ackEvery && ackBytes === limits.ackBytes) {
    return limits;
  }
  let byPacing = paced.get(limits);
  if (byPacing === undefined) paced.set(limits, byPacing = new Map());
  const key = `${ackEvery} ${ackBytes}`;
  const found = byPacing.get(key);
  if (found !== undefined) return found;
  // Bounded: a Duplex client asks for the pacing of its bounds, mostly the
  // defaults.
  if (byPacing.size < 64) byPacing.set(key, fresh);
  return fresh;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits for `promise`, but not past the time `end`. */
export async function within(
  promise: Promise<unknown>,
  end: number,
): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    promise,
    new Promise((resolve) =>
      timer = setTimeout(resolve, Math.max(0, end - Date.now()))
    ),
  ]);
  clearTimeout(timer);
}

/** `bytes` random bytes, base64url without padding. */
export function randomToken(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  let binary = "";
  for (const byte of random) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

/** Compares two secrets in time independent of where they differ. */
export function sameSecret(expected: string, given: string): boolean {
  let difference = expected.length ^ given.length;
  for (let i = 0; i < expected.length; i++) {
    difference |= expected.charCodeAt(i) ^ (given.charCodeAt(i) | 0);
  }
  return difference === 0;
}
