/**
 * {@linkcode SessionJournal}: writes the sessions of a server to a shared
 * {@linkcode SessionStore} (one that implements `claim` and `write`), so
 * that a client resumes on any instance.
 *
 * Every change of a session (a frame sent, a frame received, a request
 * opened or answered, an acknowledgement, its rooms) is noted in its
 * {@linkcode JournalEntry}; once per event-loop turn the journal sends every
 * noted change in one `write` (one round trip for all sessions). While a
 * write is in flight the next changes wait for the following one, so the
 * batches grow with the load and there is never more than one in flight.
 *
 * Received frames are held by the session's transport until the write that
 * counts them is stored: a handler runs only for a frame the store knows
 * of. A new instance that takes a session over therefore knows every
 * request that may have run; those without a stored response are "in
 * doubt". Each write also carries how many received frames were handed
 * over (`dispatched`, the count released before it was taken), and a
 * write that released frames is followed by one more (merged into the
 * next batch when there is one), so the store soon knows them handed
 * over. The client is acknowledged only up to the stored `dispatched`:
 * it keeps the frames after it, and a new owner tells it which may or may
 * not have run (the notifications among them are reported, never run
 * twice). A failed write is merged into the next one and retried with
 * backoff (frames keep being held meanwhile); a write refused because
 * another instance claimed the session makes this one give it up. A write
 * answered "missing" (the store lost its data) makes every live session
 * write a full copy at once.
 *
 * Write-ahead (`SessionOptions.writeAhead`): sent frames are held the
 * same way, in the transport's outbox, until the write that carries them
 * is stored (`Session.releaseSent`), so a frame that reached the
 * client is always in the store: an instance that dies takes with it only
 * frames that never left.
 *
 * @module
 */

import type { SessionSocket } from "../peer/session_socket.ts";
import type { HeldFrames } from "../peer/held_frames.ts";
import type { SessionLossReason } from "../wire/session_frames.ts";
import type {
  SessionRecord,
  SessionStore,
  SessionWrite,
  SessionWriteResult,
} from "./session_store.ts";
import { frameHead, storedFrame } from "./session_frame_codec.ts";
import { nextTurn } from "../peer/next_turn.ts";

export { frameHead, loadedFrame, storedFrame } from "./session_frame_codec.ts";

type Data = string | Uint8Array<ArrayBuffer>;

/** What the journal needs of a session. */
export interface JournaledSession {
  /** The session id. */
  readonly id: string;
  /** The user. */
  readonly user: string;
  /** The SHA-256 of its secret. */
  readonly secretHash: string;
  /** Its transport. */
  readonly socket: SessionSocket;
  /** The frames the client acknowledged (0 before any was sent). */
  readonly acked: number;
  /** What its transport holds until stored (see `SessionSocket.hold`). */
  readonly held: HeldFrames | undefined;
  /** Write-ahead from now on: what it sends leaves once stored. */
  holdSent(): void;
  /** Write-ahead: the frames up to number `count` are stored, may leave. */
  releaseSent(count: number): void;
  /** Its journal entry. */
  readonly entry: JournalEntry;
  /** The rooms of its user now. */
  rooms(): string[];
  /** How long the store should keep it without a write, in ms. */
  ttl(): number;
}

/** One session's changes not yet stored, and what the journal knows of it. */
export class JournalEntry {
  /** The owner token this instance holds the session with. */
  owner: string;
  /** The version of the last write sent. */
  version: number;
  /** Frames sent and not yet written, the last one numbered `framesEnd`. */
  frames: Data[] = [];
  framesEnd = 0;
  /** Requests received (and their sequences) not yet written. */
  opened: number[] = [];
  /** Requests answered not yet written. */
  answered: number[] = [];
  /** Every open request (sent in a snapshot). */
  readonly open: Set<number> = new Set();
  /** Client frames received, in all (held until stored). */
  received = 0;
  /** The sequence of the last request this session's server sent. */
  requested = 0;
  /** Server frames acknowledged by the client, in all. */
  acked = 0;
  roomsChanged = false;
  /** The next write carries a full copy. */
  snapshot = false;
  ended: SessionLossReason | undefined = undefined;
  /** Being handed over to another instance. */
  handover = false;
  /** Noted since the last write was taken. */
  dirty = false;
  /** Taken by the write in flight. */
  writing = false;
  /** Given up (claimed elsewhere, or ended and written). */
  closed = false;
  /** Waiters for everything noted to be stored. */
  waiters: PromiseWithResolvers<boolean>[] | undefined = undefined;

  /**
   * @param owner The owner token.
   * @param version The version stored so far.
   */
  constructor(owner: string, version: number) {
    this.owner = owner;
    this.version = version;
  }
}

/** What the journal tells the server. */
export interface JournalHost {
  /** Another instance claimed the session: give it up here. */
  fenced(session: JournaledSession): void;
  /** A write failed (it is retried). */
  failed(error: unknown): void;
}

/** The journal's counters. */
export interface JournalStats {
  /** Writes (round trips) sent. */
  writes: number;
  /** Session changes written. */
  changes: number;
  /** Frames written. */
  frames: number;
  /** Writes that failed and were retried. */
  failures: number;
}

/** The batching writer of one server's sessions. */
export class SessionJournal {
  readonly stats: JournalStats = {
    writes: 0,
    changes: 0,
    frames: 0,
    failures: 0,
  };
  #store: SessionStore;
  #host: JournalHost;
  #dirty = new Set<JournaledSession>();
  #live = new Set<JournaledSession>();
  /** The scheduled write: a backoff's timer, or `true` (this turn's). */
  #timer: ReturnType<typeof setTimeout> | true | undefined = undefined;
  #refresh: ReturnType<typeof setInterval> | undefined = undefined;
  #inFlight: Promise<void> | undefined = undefined;
  #backoff = 0;
  #timeout: number;
  #writeAhead: boolean;
  #closed = false;

  /**
   * @param store A store with `claim` and `write`.
   * @param host Told of fenced sessions and failures.
   * @param options `timeout`: how long one write may take before it counts
   * as failed; `refresh`: how often every live session is written again
   * (keeps it in the store, and re-creates it after the store lost it);
   * `writeAhead`: frames leave for the client only once stored.
   */
  constructor(
    store: SessionStore,
    host: JournalHost,
    options: { timeout: number; refresh: number; writeAhead: boolean },
  ) {
    this.#store = store;
    this.#host = host;
    this.#timeout = options.timeout;
    this.#writeAhead = options.writeAhead;
    this.#refresh = setInterval(() => this.#touchAll(), options.refresh);
    Deno.unrefTimer(this.#refresh);
    // An empty write connects the store now: a store that knows Redis
    // from before can tell a later data loss (RedisSessionStore's
    // `recoveryWindow`). A failure is the first write's to report.
    this.#inFlight = Promise.resolve().then(() => store.write!([])).then(
      () => {},
      () => {},
    ).finally(() => {
      this.#inFlight = undefined;
      if (!this.#closed) this.#schedule();
    });
  }

  /** Sessions written by this journal. */
  get size(): number {
    return this.#live.size;
  }

  /** Starts journaling a session (a new one: its first write is a copy). */
  add(session: JournaledSession, fresh: boolean): void {
    this.#live.add(session);
    const entry = session.entry;
    entry.received = session.socket.received;
    entry.acked = session.acked;
    entry.framesEnd = session.socket.sent;
    if (fresh) entry.snapshot = true;
    // Write-ahead: what it sends from now on leaves once stored.
    if (this.#writeAhead) session.holdSent();
    this.#note(session);
  }

  /** A frame was kept for a replay. */
  sent(session: JournaledSession, data: Data): void {
    const entry = session.entry;
    entry.frames.push(data);
    entry.framesEnd = session.socket.sent;
    const head = frameHead(data);
    if (head !== undefined) {
      if (head[0] === 2 && entry.open.delete(head[1])) {
        entry.answered.push(head[1]);
      } else if (head[0] === 1 && head[1] !== 0) entry.requested = head[1];
    }
    this.#note(session);
  }

  /** A frame arrived (held until written). */
  received(session: JournaledSession, data: unknown, count: number): void {
    const entry = session.entry;
    entry.received = count;
    const head = frameHead(data);
    if (head !== undefined && head[0] === 1 && head[1] !== 0) {
      entry.open.add(head[1]);
      entry.opened.push(head[1]);
    }
    this.#note(session);
  }

  /** The client acknowledged `count` frames. */
  acked(session: JournaledSession, count: number): void {
    session.entry.acked = count;
    this.#note(session);
  }

  /** The user's rooms changed. */
  roomsChanged(session: JournaledSession): void {
    session.entry.roomsChanged = true;
    this.#note(session);
  }

  /** Writes the session again (keeps it in the store; a probe). */
  touch(session: JournaledSession): void {
    this.#note(session);
  }

  /** Marks the session as being handed over (a resume elsewhere waits). */
  handover(session: JournaledSession, on: boolean): void {
    session.entry.handover = on;
    this.#note(session);
  }

  /** Requests closed without a response (reported in doubt on a resume). */
  settleOpen(session: JournaledSession, sequences: readonly number[]): void {
    for (const sequence of sequences) session.entry.answered.push(sequence);
    this.#note(session);
  }

  /**
   * Writes the session's end (a tombstone kept `ttl`) and stops journaling
   * it.
   *
   * @returns `true` when stored as this instance's (else: fenced, failed).
   */
  end(session: JournaledSession, reason: SessionLossReason): Promise<boolean> {
    session.entry.ended = reason;
    const done = this.flushed(session);
    return done.finally(() => this.forget(session));
  }

  /** Stops journaling a session (given up). */
  forget(session: JournaledSession): void {
    session.entry.closed = true;
    this.#live.delete(session);
    this.#dirty.delete(session);
    for (const waiter of session.entry.waiters?.splice(0) ?? []) {
      waiter.resolve(false);
    }
  }

  /**
   * Waits until everything noted of the session is stored.
   *
   * @returns `true` when stored, `false` when the session was given up.
   */
  flushed(session: JournaledSession): Promise<boolean> {
    const entry = session.entry;
    if (entry.closed) return Promise.resolve(false);
    if (!entry.dirty && !entry.writing) return Promise.resolve(true);
    const waiter = Promise.withResolvers<boolean>();
    (entry.waiters ??= []).push(waiter);
    this.#schedule();
    return waiter.promise;
  }

  /**
   * Writes what is noted at once, and waits for it (a shutdown).
   *
   * @returns Settles once every session written so far is stored or failed.
   */
  async drain(): Promise<void> {
    await Promise.all([...this.#live].map((session) => this.flushed(session)));
  }

  /** Stops the refresh timer and any scheduled write. */
  close(): void {
    this.#closed = true;
    clearInterval(this.#refresh);
    if (this.#timer !== true) clearTimeout(this.#timer);
    this.#timer = undefined;
    for (const session of [...this.#live]) this.forget(session);
  }

  /** Settles once the write in flight (if any) ended. */
  settled(): Promise<void> {
    return this.#inFlight ?? Promise.resolve();
  }

  #note(session: JournaledSession): void {
    const entry = session.entry;
    if (entry.closed) return;
    entry.dirty = true;
    this.#dirty.add(session);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed) return;
    if (this.#timer !== undefined || this.#inFlight !== undefined) return;
    if (this.#dirty.size === 0) return;
    if (this.#backoff > 0) {
      this.#timer = setTimeout(() => this.#flush(), this.#backoff);
      return;
    }
    // At the end of this turn, after its I/O: a zero `setTimeout` waits
    // 1–4 ms in Deno (measured: 2.1 ms), a whole write's latency.
    this.#timer = true;
    nextTurn(flushDue, this);
  }

  /** The write scheduled for this turn, unless it was cancelled. Not meant
   * to be called. */
  flushDue(): void {
    if (this.#timer === true) this.#flush();
  }

  /** Writes every live session again (no change but the version). */
  #touchAll(): void {
    for (const session of this.#live) this.#note(session);
  }

  #flush(): void {
    this.#timer = undefined;
    if (this.#dirty.size === 0) return;
    const sessions = [...this.#dirty];
    this.#dirty.clear();
    const batch: SessionWrite[] = [];
    const taken: Taken[] = [];
    for (const session of sessions) {
      const [write, take] = this.#take(session);
      batch.push(write);
      taken.push(take);
    }
    this.stats.writes++;
    this.stats.changes += batch.length;
    const flight = this.#write(batch).then(
      (results) => {
        this.#backoff = 0;
        for (let i = 0; i < sessions.length; i++) {
          this.#done(sessions[i], batch[i], taken[i], results[i]);
        }
        // The store lost a session: most likely all of them (a restart
        // without persistence). Every live one is written at once, not at
        // the next refresh, so that a resume elsewhere finds it soon.
        if (results.includes("missing")) this.#touchAll();
      },
      (error: unknown) => {
        this.stats.failures++;
        this.#backoff = Math.min(1_000, Math.max(20, this.#backoff * 2));
        this.#host.failed(error);
        for (let i = 0; i < sessions.length; i++) {
          this.#giveBack(sessions[i], taken[i]);
        }
      },
    ).finally(() => {
      this.#inFlight = undefined;
      if (!this.#closed) this.#schedule();
    });
    this.#inFlight = flight;
  }

  #write(batch: SessionWrite[]): Promise<SessionWriteResult[]> {
    const { promise, resolve, reject } = Promise.withResolvers<
      SessionWriteResult[]
    >();
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `Cannot write sessions: no answer from the store within ${this.#timeout} ms`,
          ),
        ),
      this.#timeout,
    );
    this.#store.write!(batch).then(resolve, reject).finally(() =>
      clearTimeout(timer)
    );
    return promise;
  }

  /** Builds a session's write and takes its noted changes. */
  #take(session: JournaledSession): [SessionWrite, Taken] {
    const entry = session.entry;
    const socket = session.socket;
    entry.dirty = false;
    entry.writing = true;
    const taken: Taken = {
      frames: entry.frames,
      framesEnd: entry.framesEnd,
      requested: entry.requested,
      opened: entry.opened,
      answered: entry.answered,
      rooms: entry.roomsChanged,
      snapshot: entry.snapshot,
      waiters: entry.waiters,
    };
    entry.frames = [];
    entry.opened = [];
    entry.answered = [];
    entry.roomsChanged = false;
    entry.snapshot = false;
    entry.waiters = undefined;
    const sent = taken.framesEnd;
    const write: SessionWrite = {
      id: session.id,
      owner: entry.owner,
      version: ++entry.version,
      received: entry.received,
      dispatched: socket.released,
      sent,
      acked: Math.min(entry.acked, sent),
      frames: [],
      opened: taken.opened,
      answered: taken.answered,
      ttl: session.ttl(),
    };
    if (taken.requested !== 0) write.requested = taken.requested;
    if (taken.snapshot) {
      // Every unacknowledged frame, as the transport keeps them.
      const kept = socket.pendingFrames();
      write.frames = kept.map(storedFrame);
      write.sent = socket.sent;
      write.acked = socket.sent - kept.length;
      write.opened = [];
      write.answered = [];
      const record: SessionRecord = {
        id: session.id,
        user: session.user,
        secretHash: session.secretHash,
        owner: entry.owner,
      };
      write.snapshot = {
        record,
        open: [...entry.open],
        rooms: session.rooms(),
      };
      this.stats.frames += kept.length;
    } else {
      // Frames the client acknowledged meanwhile need no storing.
      const keep = Math.min(taken.frames.length, sent - write.acked);
      const frames = taken.frames;
      for (let i = frames.length - keep; i < frames.length; i++) {
        write.frames.push(storedFrame(frames[i]));
      }
      this.stats.frames += keep;
      if (taken.rooms) write.rooms = session.rooms();
    }
    if (entry.ended !== undefined) write.ended = entry.ended;
    if (entry.handover) write.handover = true;
    return [write, taken];
  }

  #done(
    session: JournaledSession,
    write: SessionWrite,
    taken: Taken,
    result: SessionWriteResult | undefined,
  ): void {
    const entry = session.entry;
    entry.writing = false;
    if (entry.closed) return;
    if (result === "ok") {
      const dispatched = write.dispatched!;
      session.held?.release(write.received);
      session.held?.confirm(dispatched);
      session.releaseSent(write.sent); // write-ahead: stored, may leave
      // Handed over now, stored with the next write (a trailing one when
      // nothing else is written): waiters wait for it too.
      if (dispatched < write.received) this.#note(session);
      this.#wake(session, taken.waiters);
    } else if (result === "missing") {
      // The store lost it (restarted, or expired): send a full copy.
      entry.snapshot = true;
      this.#giveBack(session, taken);
    } else {
      for (const waiter of taken.waiters ?? []) waiter.resolve(false);
      this.forget(session);
      this.#host.fenced(session);
    }
  }

  /** Resolves the waiters once nothing of the session is left to write. */
  #wake(
    session: JournaledSession,
    waiters: PromiseWithResolvers<boolean>[] | undefined,
  ): void {
    if (waiters === undefined) return;
    const entry = session.entry;
    if (entry.dirty) {
      (entry.waiters ??= []).push(...waiters);
    } else {
      for (const waiter of waiters) waiter.resolve(true);
    }
  }

  /** A failed write: its changes go in front of the next one. */
  #giveBack(session: JournaledSession, taken: Taken): void {
    const entry = session.entry;
    entry.writing = false;
    if (entry.closed) return;
    entry.frames = taken.frames.concat(entry.frames);
    entry.opened = taken.opened.concat(entry.opened);
    entry.answered = taken.answered.concat(entry.answered);
    entry.roomsChanged ||= taken.rooms;
    entry.snapshot ||= taken.snapshot;
    if (taken.waiters !== undefined) {
      entry.waiters = taken.waiters.concat(entry.waiters ?? []);
    }
    this.#note(session);
  }
}

/** The changes one write took from an entry. */
interface Taken {
  frames: Data[];
  framesEnd: number;
  requested: number;
  opened: number[];
  answered: number[];
  rooms: boolean;
  snapshot: boolean;
  waiters: PromiseWithResolvers<boolean>[] | undefined;
}

/** A journal's write of this turn (no closure per schedule). */
function flushDue(journal: SessionJournal): void {
  journal.flushDue();
}
