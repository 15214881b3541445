/**
 * The sessions of a {@linkcode DuplexServer}: the hello of each client that
 * asked for one, starting and resuming sessions, their grace timers, expiry,
 * and the records in the {@linkcode SessionStore}.
 *
 * A session owns its {@linkcode Peer} (pending requests, running handlers)
 * and its place in the registry (rooms, presence) for its whole life; its
 * WebSockets come and go under a {@linkcode SessionSocket}.
 *
 * @module
 */

import type { Endpoint, Peer } from "../peer/peer.ts";
import { type SessionLimits, sessionLimits } from "../peer/session_socket.ts";
import {
  askedPacing,
  decodeHello,
  encodeState,
  sessionFrameType,
  type SessionHello,
  type SessionLossReason,
  type SessionState,
} from "../wire/session_frames.ts";
import {
  type ServerConnection,
  serverPeer,
  sessionConnection,
} from "./connection.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import { dispatchDisconnect } from "./server_events.ts";
import type { SessionHost, SessionUpgrade } from "./session_host.ts";
import { SessionMetrics } from "./session_metrics.ts";
import type { SessionOptions } from "./session_options.ts";
import {
  hashSecret,
  MemorySessionStore,
  type SessionStore,
  type StoredSession,
} from "./session_store.ts";
import { Handshake, unconfirmed } from "./session_handshake.ts";
import { closeQuietly } from "../peer/socket_like.ts";
import { handOver, type SharedSessions, takeOver } from "./session_takeover.ts";
import { delay, randomToken, sameSecret, Session } from "./server_session.ts";
import { JournalEntry, SessionJournal } from "./session_journal.ts";

const MOVED_DELAY = 1_000; // ms a session taken over elsewhere stays here
const RESUMED = "Session resumed on a new connection"; // the old socket's close

/** The sessions of one server. */
export class ServerSessions<Local extends Endpoint, Remote extends Endpoint> {
  readonly metrics: SessionMetrics = new SessionMetrics();
  readonly host: SessionHost<Local, Remote>;
  /** With a shared store: writes every session to it. */
  readonly journal: SessionJournal | undefined;
  #live = new Map<string, Session<Local, Remote>>();
  #handshakes = new Set<Handshake>();
  #store: SessionStore;
  #limits: SessionLimits;
  #given: SessionOptions; // ackEvery, ackBytes unset: the hello's apply
  #grace: number;
  #helloTimeout: number;
  #handoverTimeout: number;
  #detached = 0;
  #instance = randomToken(6); // this instance's part of its owner tokens
  #handingOver = false;
  /** Sessions taken over elsewhere, about to leave. */
  #leaving = new Set<Session<Local, Remote>>();

  /**
   * @param given The session options.
   * @param host The server's side of it.
   * @throws {RangeError} When a limit is not a positive number.
   */
  constructor(given: SessionOptions, host: SessionHost<Local, Remote>) {
    this.host = host;
    this.#grace = given.grace ?? 120_000;
    this.#helloTimeout = given.helloTimeout ?? 10_000;
    this.#handoverTimeout = given.handoverTimeout ?? 10_000;
    this.#store = given.store ?? new MemorySessionStore();
    this.#given = given;
    this.#limits = sessionLimits({
      ...given, // its ackEvery, ackBytes and ackDelay
      maxFrames: given.maxBufferedFrames,
      maxBytes: given.maxBufferedBytes,
      maxAge: given.maxBufferedAge ?? this.#grace,
    });
    if (!(this.#grace > 0)) {
      throw new RangeError(
        "Cannot configure sessions: grace must be a positive number",
      );
    }
    const store = this.#store;
    if (store.claim !== undefined && store.write !== undefined) {
      host.registry.onRooms = (user) => this.roomsChanged(user);
      this.journal = new SessionJournal(store, {
        fenced: (session) => this.#moved(session as Session<Local, Remote>),
        failed: (error) => this.warn("session store write failed", error),
      }, {
        timeout: given.storeTimeout ?? 2_000,
        refresh: Math.min(this.#grace / 4, 10_000),
        writeAhead: given.writeAhead ?? false,
      });
    }
  }

  /** Sessions open (connected or within their grace period). */
  get size(): number {
    return this.#live.size;
  }

  /** Sessions waiting for their client. */
  get detached(): number {
    return this.#detached;
  }

  /** Whether sessions live in a store that several instances share. */
  get shared(): boolean {
    return this.journal !== undefined;
  }

  /** How long a shared store keeps a session without a write. */
  storeTtl(session: Session<Local, Remote>): number {
    // Attached sessions are written again every refresh (grace / 4 at most).
    return session.socket.transport !== undefined || this.#handingOver
      ? this.#grace * 2
      : this.#grace;
  }

  /** The user's rooms changed: stores them with each of its sessions. */
  roomsChanged(user: string): void {
    const journal = this.journal;
    if (journal === undefined) return;
    for (const connection of this.host.registry.connectionsOf(user) ?? []) {
      const session = this.#live.get(connection.sessionId ?? "");
      if (session !== undefined) journal.roomsChanged(session);
    }
  }

  /** Logs a warning (never a secret). */
  warn(message: string, error?: unknown): void {
    this.host.logger?.warn(
      error === undefined
        ? message
        : `${message}: ${
          error instanceof Error ? error.message : String(error)
        }`,
    );
  }

  /** The Prometheus lines of the session figures. */
  render(): string {
    return this.metrics.render(this.#live.size, this.#detached);
  }

  /**
   * Takes an upgraded socket whose client asked for a session: waits for
   * its hello.
   */
  accept(upgrade: SessionUpgrade): void {
    this.#handshakes.add(
      new Handshake(
        upgrade,
        (handshake, data) =>
          this.#onHello(handshake, data).catch((error) =>
            this.warn("session hello failed", error)
          ),
        (handshake, connected) => {
          this.#handshakes.delete(handshake);
          if (!connected) this.host.abandoned(handshake.upgrade);
        },
        this.#helloTimeout,
      ),
    );
  }

  /**
   * Ends every session (the server shuts down): connected clients are told
   * (an ack with `end`) and closed with `code`; sockets still in their hello
   * are closed.
   */
  closeAll(code: number, reason: string): void {
    for (const handshake of [...this.#handshakes]) {
      handshake.finish(false);
      closeQuietly(handshake.upgrade.socket, code, reason);
    }
    for (const session of [...this.#live.values()]) {
      session.socket.close(code, reason);
    }
    for (const session of [...this.#leaving]) this.#left(session);
    this.journal?.close();
  }

  /**
   * Hands every session over to the other instances (a rolling restart
   * with a shared store); see {@linkcode handOver}.
   */
  handOver(drainHandlers: () => Promise<void>): Promise<void> {
    if (this.journal === undefined) return Promise.resolve();
    this.#handingOver = true;
    for (const handshake of [...this.#handshakes]) {
      handshake.finish(false);
      closeQuietly(handshake.upgrade.socket, 1012, "Service restart");
    }
    return handOver(this.#shared(), drainHandlers, this.#handoverTimeout);
  }

  /** What the take-over and hand-over code uses of this object. */
  #shared(): SharedSessions<Local, Remote> {
    return {
      sessions: this,
      journal: this.journal!,
      live: this.#live,
      limits: this.#limits,
      open: (session, upgrade) => this.#open(session, upgrade),
      moved: (session) => this.#moved(session),
    };
  }

  // The transport's hooks, through the session.

  onDetach(session: Session<Local, Remote>, code: number, reason: string) {
    if (session.socket.ended || session.moved) return;
    session.detached = true;
    this.#detached++;
    // The connection's `disconnect` (per socket); the session lives on.
    dispatchDisconnect(this.host, session.connection, code, reason);
    if (session.socket.lost !== undefined) {
      this.#expire(session, session.socket.lost);
      return;
    }
    if (this.#handingOver) return;
    session.timer = setTimeout(
      () => this.#expire(session, "expired"),
      this.#grace,
    );
    // The store keeps it for the grace period from now.
    this.journal?.touch(session);
  }

  onOverflow(session: Session<Local, Remote>): void {
    this.metrics.overflows++;
    // Attached, the session runs on until its connection drops; detached, it
    // ends now (not inside the send that overflowed it).
    if (session.socket.transport === undefined) {
      queueMicrotask(() => this.#expire(session, "overflow"));
    }
  }

  async #onHello(handshake: Handshake, data: unknown): Promise<void> {
    const { upgrade } = handshake;
    const socket = upgrade.socket;
    if (sessionFrameType(data) !== 8) {
      if (handshake.finish(false)) {
        closeQuietly(socket, 1002, "Session hello expected");
      }
      return;
    }
    let hello: SessionHello;
    try {
      hello = decodeHello(data as string);
    } catch (error) {
      this.warn(
        `session hello refused user=${JSON.stringify(upgrade.user)}`,
        error,
      );
      if (handshake.finish(false)) {
        closeQuietly(socket, 1002, "Invalid session hello");
      }
      return;
    }
    if (hello.carriedAcks) upgrade.carrier = upgrade.codec?.carrier;
    let found: Found<Local, Remote> | SessionLossReason | "busy" | undefined;
    if (hello.id !== undefined) {
      try {
        found = await this.#find(hello, upgrade.user);
      } catch (error) {
        this.warn("session store failed", error);
        // A shared store that cannot answer: the client tries again later
        // (the session is not given up).
        found = this.shared ? "busy" : "unknown";
      }
    }
    const secret = randomToken(32);
    const secretHash = await hashSecret(secret);
    // Closed (or timed out) meanwhile: the session, if any, is untouched.
    if (socket.readyState !== 1) {
      handshake.finish(false);
      return;
    }
    if (!handshake.finish(true)) return;
    if (found === "busy" || this.#handingOver || unconfirmed(found)) {
      closeQuietly(socket, 1013, "Session busy, try again");
      return;
    }
    if (typeof found === "object") {
      if (found instanceof Session) {
        this.#resume(found, upgrade, hello.received!);
      } else {
        takeOver(this.#shared(), found, upgrade, hello.received!);
      }
    } else {
      if (found !== undefined) this.metrics.refused(found);
      this.#start(upgrade, found, secret, secretHash, hello);
    }
  }

  async #find(
    hello: SessionHello,
    user: string,
  ): Promise<Found<Local, Remote> | SessionLossReason | "busy"> {
    const record = await this.#store.get(hello.id!);
    if (record === undefined) return "unknown";
    const hash = await hashSecret(hello.secret!);
    if (!sameSecret(record.secretHash, hash) || record.user !== user) {
      return "forbidden";
    }
    if (record.ended !== undefined) return record.ended;
    const session = this.#live.get(record.id);
    if (this.journal !== undefined) {
      if (
        session !== undefined && !session.socket.ended &&
        session.entry.owner === record.owner
      ) {
        // Ours still: what it received is stored before the answer.
        if (!await this.journal.flushed(session)) return "busy";
        if (session.socket.lost !== undefined) return session.socket.lost;
        if (!session.socket.canResume(hello.received!)) return "unknown";
        return session;
      }
      const owner = `${this.#instance}.${randomToken(6)}`;
      const stored = await this.#store.claim!(record.id, owner);
      if (stored === undefined) return "unknown";
      if (stored === "busy") return "busy";
      // The client acknowledged frames that were stored as unacknowledged:
      // its count does not fit.
      if (hello.received! < stored.sent - stored.frames.length) {
        return "unknown";
      }
      return { stored, owner };
    }
    if (session === undefined || session.socket.ended) return "unknown";
    if (session.socket.lost !== undefined) return session.socket.lost;
    if (!session.socket.canResume(hello.received!)) return "unknown";
    return session;
  }

  #start(
    upgrade: SessionUpgrade,
    reason: SessionLossReason | undefined,
    secret: string,
    secretHash: string,
    hello: SessionHello,
  ): void {
    const id = randomToken(16);
    const session = new Session<Local, Remote>(
      this,
      id,
      upgrade.user,
      secretHash,
      this.#limits,
      hello,
      this.#given,
    );
    this.#open(session, upgrade);
    if (this.journal !== undefined) {
      session.entry = new JournalEntry(`${this.#instance}.${id}`, 0);
      session.hold();
      this.journal.add(session, true);
    } else {
      // The live session is its own record (no copy per session).
      this.#save(session, Infinity);
    }
    this.metrics.started++;
    const state: SessionState = {
      resumed: false,
      id,
      secret,
      grace: this.#grace,
      ...askedPacing(this.#limits),
      carriedAcks: upgrade.carrier && true,
    };
    if (reason !== undefined) state.reason = reason;
    const transport = session.connection.out;
    transport.send(encodeState(state));
    session.socket.attach(transport, 0, upgrade.carrier);
    this.host.opened(session.connection);
  }

  /** Gives a new or taken-over session its peer and connection. */
  #open(session: Session<Local, Remote>, upgrade: SessionUpgrade): void {
    const host = this.host;
    session.peer = serverPeer(session.socket, upgrade.user, SUBPROTOCOL, {
      ...host.peer,
      codec: upgrade.codec,
      usedSequences: session.usedSequences,
    }, session);
    session.connection = this.#connection(upgrade, session.peer, session.id);
    this.#live.set(session.id, session);
  }

  #resume(
    session: Session<Local, Remote>,
    upgrade: SessionUpgrade,
    received: number,
  ): void {
    const old = session.connection;
    // A client that found its connection dead before the server did.
    session.socket.retire(4000, RESUMED, upgrade.idleTimeout);
    clearTimeout(session.timer);
    session.timer = undefined;
    if (session.detached) {
      session.detached = false;
      this.#detached--;
    }
    const fresh = this.#connection(upgrade, session.peer, session.id);
    session.connection = fresh;
    fresh.out.send(
      encodeState({
        resumed: true,
        received: session.socket.released,
        replayed: session.missed(received),
        carriedAcks: upgrade.carrier && true,
      }),
    );
    const carrier = upgrade.carrier;
    const replayed = session.socket.attach(fresh.out, received, carrier);
    this.metrics.resumed++;
    this.metrics.replayed += replayed;
    const host = this.host;
    host.registry.replace(old, fresh);
    host.metrics.connectionsTotal++;
    this.journal?.touch(session);
    host.logger?.info(
      `resume user=${
        JSON.stringify(fresh.user)
      } id=${fresh.id} replayed=${replayed}`,
    );
    host.events.dispatchEvent(new CustomEvent("connect", { detail: fresh }));
    host.events.dispatchEvent(
      new CustomEvent("resume", { detail: { connection: fresh, replayed } }),
    );
  }

  /** The connection of a session's new socket, tracked until it closes. */
  #connection(
    upgrade: SessionUpgrade,
    peer: Peer<Local, Remote>,
    sessionId: string,
  ): ServerConnection<Local, Remote> {
    const host = this.host;
    const connection = sessionConnection(upgrade, peer, {
      id: host.nextId(),
      budget: host.budget,
      coalescer: host.peer.peerOptions.coalescer,
    });
    connection.sessionId = sessionId;
    host.registry.sockets.add(connection);
    connection.onSocketClosed = host.forgetSocket;
    return connection;
  }

  #expire(session: Session<Local, Remote>, reason: SessionLossReason): void {
    if (session.socket.ended) return;
    const journal = this.journal;
    if (journal !== undefined && !session.entry.closed) {
      // Only the owner ends it: the tombstone is written first.
      journal.end(session, reason).then((ours) => {
        if (ours) this.#expire(session, reason);
        else this.#moved(session);
      });
      return;
    }
    session.lostFor = reason;
    if (reason === "expired") this.metrics.expired++;
    session.socket.end(reason);
  }

  /** Another instance runs the session now: it ends here quietly. */
  #moved(session: Session<Local, Remote>): void {
    if (session.socket.ended || session.moved) return;
    session.moved = true;
    this.journal?.forget(session);
    this.metrics.movedAway++;
    clearTimeout(session.timer);
    if (this.#live.get(session.id) === session) this.#live.delete(session.id);
    // It leaves this instance's users and rooms a little later, once the
    // new instance has announced it: the cluster sees no leave.
    this.#leaving.add(session);
    session.leaveTimer = setTimeout(() => this.#left(session), MOVED_DELAY);
  }

  #left(session: Session<Local, Remote>): void {
    clearTimeout(session.leaveTimer);
    this.#leaving.delete(session);
    session.socket.end("unknown");
  }

  /** Settles once every session taken over elsewhere left here. */
  async leaving(): Promise<void> {
    for (let n = 0; n < 8 && this.#leaving.size > 0; n++) {
      await delay(MOVED_DELAY / 4);
    }
  }

  /** The session's peer closed: the session is over. */
  peerEnded(session: Session<Local, Remote>, code: number, why: string): void {
    clearTimeout(session.timer);
    session.timer = undefined;
    if (this.#live.get(session.id) === session) this.#live.delete(session.id);
    const disconnected = session.detached;
    if (disconnected) {
      session.detached = false;
      this.#detached--;
    }
    const { id, user, secretHash } = session;
    if (this.journal === undefined) {
      this.#save(
        { id, user, secretHash, ended: session.lostFor ?? "closed" },
        this.#grace,
      );
    } else if (!session.moved && !session.entry.closed) {
      this.journal.end(session, session.lostFor ?? "closed").catch(() => {});
    }
    this.host.ended(session.connection, code, why, disconnected);
    const lostFor = session.lostFor;
    if (lostFor !== undefined && !session.moved) {
      this.host.logger?.info(`session ${lostFor} user=${JSON.stringify(user)}`);
      this.host.events.dispatchEvent(
        new CustomEvent("expire", { detail: { user, reason: lostFor } }),
      );
    }
  }

  #save(
    record: {
      id: string;
      user: string;
      secretHash: string;
      ended?: SessionLossReason;
    },
    ttl: number,
  ): void {
    try {
      const saved = this.#store.set(record, ttl);
      if (saved instanceof Promise) {
        saved.catch((error) => this.warn("session store failed", error));
      }
    } catch (error) {
      this.warn("session store failed", error);
    }
  }
}

/** A session found in a shared store, claimed by this instance. */
type Found<Local extends Endpoint, Remote extends Endpoint> =
  | Session<Local, Remote>
  | { stored: StoredSession; owner: string };
