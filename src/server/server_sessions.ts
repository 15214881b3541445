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
import {
  type SessionLimits,
  sessionLimits,
  SessionSocket,
} from "../peer/session_socket.ts";
import {
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
import type { Registry } from "../peer/receiver.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import type { SendBudget } from "./send_budget.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { PeerOptions, ServerLogger } from "./server_options.ts";
import type { Upgraded } from "./upgrade.ts";
import { dispatchDisconnect } from "./server_events.ts";
import { SessionMetrics } from "./session_metrics.ts";
import type { SessionOptions } from "./session_options.ts";
import { MemorySessionStore, type SessionStore } from "./session_store.ts";

/** An upgraded socket that asked for a session. */
export type SessionUpgrade = Upgraded;

/** What the server does for its sessions, and what they use of it. */
export interface SessionHost<Local extends Endpoint, Remote extends Endpoint> {
  /** The server's connections, users and rooms. */
  registry: ConnectionRegistry<Local, Remote>;
  /** The server's metrics. */
  metrics: ServerMetrics;
  /** The server's logger. */
  logger: ServerLogger | undefined;
  /** Where `connect`, `resume` and `expire` are dispatched. */
  events: EventTarget;
  /** What a session's peer is made of. */
  peer: { peerOptions: PeerOptions; registry: Registry };
  /** The server's send budget, which every socket writes through. */
  budget: SendBudget;
  /** A new connection id. */
  nextId(): number;
  /** Forgets a connection whose socket closed. */
  forgetSocket(connection: ServerConnection<Local, Remote>): void;
  /** Told of a handler's failure. */
  onError(user: string, error: unknown): void;
  /** A socket's handshake ended without a connection (its slot is free). */
  abandoned(upgrade: SessionUpgrade): void;
  /** A new session's connection opened: register it. */
  opened(connection: ServerConnection<Local, Remote>): void;
  /** A session ended; `disconnected` when its `disconnect` was told. */
  ended(
    connection: ServerConnection<Local, Remote>,
    code: number,
    reason: string,
    disconnected: boolean,
  ): void;
}

/** One live session. It hears its transport's hooks. */
class Session<Local extends Endpoint, Remote extends Endpoint> {
  declare readonly socket: SessionSocket;
  declare peer: Peer<Local, Remote>;
  declare connection: ServerConnection<Local, Remote>;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;
  /** Between a drop and the resume: `disconnect` was told. */
  detached = false;
  /** Why it ended, when not on purpose. */
  lostFor: SessionLossReason | undefined = undefined;

  constructor(
    readonly sessions: ServerSessions<Local, Remote>,
    readonly id: string,
    readonly user: string,
    readonly secret: string,
    limits: SessionLimits,
  ) {
    this.socket = new SessionSocket(limits, this);
  }

  onDetach(code: number, reason: string): void {
    this.sessions.onDetach(this, code, reason);
  }

  onOverflow(): void {
    this.sessions.onOverflow(this);
  }

  onRemoteEnd(): void {
    // The client ended it on purpose (and closes its side).
    this.socket.close(1000, "Session ended");
  }

  onError(error: unknown): void {
    this.sessions.warn(
      `session protocol error user=${JSON.stringify(this.user)}`,
      error,
    );
  }
}

/** A socket between its upgrade and its hello. */
class Handshake {
  hello = false;
  done = false;
  timer: ReturnType<typeof setTimeout>;
  constructor(
    readonly upgrade: SessionUpgrade,
    readonly onHello: (handshake: Handshake, data: unknown) => void,
    readonly onGone: (handshake: Handshake, connected: boolean) => void,
    timeout: number,
  ) {
    this.timer = setTimeout(() => {
      if (this.finish(false)) {
        closeQuietly(upgrade.socket, 1008, "Session hello expected");
      }
    }, timeout);
    upgrade.socket.addEventListener("message", this);
    upgrade.socket.addEventListener("close", this);
  }

  handleEvent(event: Event): void {
    if (event.type === "close") {
      this.finish(false);
    } else if (this.hello) {
      // Nothing may come between the hello and the server's answer.
      if (this.finish(false)) {
        closeQuietly(this.upgrade.socket, 1002, "Session state expected first");
      }
    } else {
      this.hello = true;
      this.onHello(this, (event as MessageEvent).data);
    }
  }

  /**
   * Stops listening; `connected` when the socket now has a connection.
   *
   * @returns `false` when it was finished already.
   */
  finish(connected: boolean): boolean {
    if (this.done) return false;
    this.done = true;
    const socket = this.upgrade.socket;
    clearTimeout(this.timer);
    socket.removeEventListener("message", this);
    socket.removeEventListener("close", this);
    this.onGone(this, connected);
    return true;
  }
}

/** The sessions of one server. */
export class ServerSessions<Local extends Endpoint, Remote extends Endpoint> {
  readonly metrics: SessionMetrics = new SessionMetrics();
  readonly host: SessionHost<Local, Remote>;
  #live = new Map<string, Session<Local, Remote>>();
  #handshakes = new Set<Handshake>();
  #store: SessionStore;
  #limits: SessionLimits;
  #grace: number;
  #helloTimeout: number;
  #detached = 0;

  /**
   * @param given The session options.
   * @param host The server's side of it.
   * @throws {RangeError} When a limit is not a positive number.
   */
  constructor(given: SessionOptions, host: SessionHost<Local, Remote>) {
    this.host = host;
    this.#grace = given.grace ?? 120_000;
    this.#helloTimeout = given.helloTimeout ?? 10_000;
    this.#store = given.store ?? new MemorySessionStore();
    this.#limits = sessionLimits({
      maxFrames: given.maxBufferedFrames,
      maxBytes: given.maxBufferedBytes,
      maxAge: given.maxBufferedAge ?? this.#grace,
      ackEvery: given.ackEvery,
      ackDelay: given.ackDelay,
    });
    if (!(this.#grace > 0)) {
      throw new RangeError(
        "Cannot configure sessions: grace must be a positive number",
      );
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
  }

  // The transport's hooks, through the session.

  onDetach(session: Session<Local, Remote>, code: number, reason: string) {
    if (session.socket.ended) return;
    session.detached = true;
    this.#detached++;
    // The connection's `disconnect` (per socket); the session lives on.
    dispatchDisconnect(this.host, session.connection, code, reason);
    if (session.socket.lost !== undefined) {
      this.#expire(session, session.socket.lost);
      return;
    }
    session.timer = setTimeout(
      () => this.#expire(session, "expired"),
      this.#grace,
    );
  }

  onOverflow(session: Session<Local, Remote>): void {
    this.metrics.overflows++;
    // Attached, the session runs on until its connection drops; detached, it
    // ends now (not inside the send that overflowed it).
    if (!session.socket.attached) {
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
    let found: Session<Local, Remote> | SessionLossReason | undefined;
    if (hello.id !== undefined) {
      try {
        found = await this.#find(hello, upgrade.user);
      } catch (error) {
        this.warn("session store failed", error);
        found = "unknown";
      }
    }
    // Closed (or timed out) meanwhile: the session, if any, is untouched.
    if (socket.readyState !== 1) {
      handshake.finish(false);
      return;
    }
    if (!handshake.finish(true)) return;
    if (typeof found === "object") {
      this.#resume(found, upgrade, hello.received!);
    } else {
      if (found !== undefined) {
        const counts = this.metrics.notResumed;
        counts[found] = (counts[found] ?? 0) + 1;
      }
      this.#start(upgrade, found);
    }
  }

  async #find(
    hello: SessionHello,
    user: string,
  ): Promise<Session<Local, Remote> | SessionLossReason> {
    const record = await this.#store.get(hello.id!);
    if (record === undefined) return "unknown";
    if (!sameSecret(record.secret, hello.secret!) || record.user !== user) {
      return "forbidden";
    }
    if (record.ended !== undefined) return record.ended;
    const session = this.#live.get(record.id);
    if (session === undefined || session.socket.ended) return "unknown";
    if (session.socket.lost !== undefined) return session.socket.lost;
    if (!session.socket.canResume(hello.received!)) return "unknown";
    return session;
  }

  #start(upgrade: SessionUpgrade, reason: SessionLossReason | undefined): void {
    const id = randomToken(16);
    const secret = randomToken(32);
    const session = new Session<Local, Remote>(
      this,
      id,
      upgrade.user,
      secret,
      this.#limits,
    );
    const host = this.host;
    session.peer = serverPeer(session.socket, upgrade.user, SUBPROTOCOL, {
      ...host.peer,
      codec: upgrade.codec,
      onClose: (code, why) => this.#onEnd(session, code, why),
      onError: host.onError,
    });
    session.connection = this.#connection(upgrade, session.peer);
    this.#live.set(id, session);
    // The live session is its own record (no copy per session).
    this.#save(session, Infinity);
    this.metrics.started++;
    const state: SessionState = {
      resumed: false,
      id,
      secret,
      grace: this.#grace,
    };
    if (reason !== undefined) state.reason = reason;
    const transport = session.connection.out;
    transport.send(encodeState(state));
    session.socket.attach(transport, 0);
    this.host.opened(session.connection);
  }

  #resume(
    session: Session<Local, Remote>,
    upgrade: SessionUpgrade,
    received: number,
  ): void {
    const old = session.connection;
    // A client that found its connection dead before the server did.
    session.socket.drop(4000, "Session resumed on a new connection");
    clearTimeout(session.timer);
    session.timer = undefined;
    if (session.detached) {
      session.detached = false;
      this.#detached--;
    }
    const fresh = this.#connection(upgrade, session.peer);
    session.connection = fresh;
    fresh.out.send(
      encodeState({
        resumed: true,
        received: session.socket.received,
        replayed: session.socket.missed(received),
      }),
    );
    const replayed = session.socket.attach(fresh.out, received);
    this.metrics.resumed++;
    this.metrics.replayed += replayed;
    const host = this.host;
    host.registry.replace(old, fresh);
    host.metrics.connectionsTotal++;
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
  ): ServerConnection<Local, Remote> {
    const host = this.host;
    const connection = sessionConnection(upgrade, peer, {
      id: host.nextId(),
      budget: host.budget,
      coalescer: host.peer.peerOptions.coalescer,
    });
    host.registry.sockets.add(connection);
    connection.onSocketClosed = host.forgetSocket;
    return connection;
  }

  #expire(session: Session<Local, Remote>, reason: SessionLossReason): void {
    if (session.socket.ended) return;
    session.lostFor = reason;
    if (reason === "expired") this.metrics.expired++;
    session.socket.end(reason);
  }

  /** The session's peer closed: the session is over. */
  #onEnd(session: Session<Local, Remote>, code: number, reason: string): void {
    clearTimeout(session.timer);
    session.timer = undefined;
    this.#live.delete(session.id);
    const disconnected = session.detached;
    if (disconnected) {
      session.detached = false;
      this.#detached--;
    }
    const { id, user, secret } = session;
    this.#save(
      { id, user, secret, ended: session.lostFor ?? "closed" },
      this.#grace,
    );
    this.host.ended(session.connection, code, reason, disconnected);
    const lostFor = session.lostFor;
    if (lostFor !== undefined) {
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
      secret: string;
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

/** `bytes` random bytes, base64url without padding. */
function randomToken(bytes: number): string {
  const random = crypto.getRandomValues(new Uint8Array(bytes));
  let binary = "";
  for (const byte of random) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(
    /=+$/,
    "",
  );
}

/** Compares two secrets in time independent of where they differ. */
function sameSecret(expected: string, given: string): boolean {
  let difference = expected.length ^ given.length;
  for (let i = 0; i < expected.length; i++) {
    difference |= expected.charCodeAt(i) ^ (given.charCodeAt(i) | 0);
  }
  return difference === 0;
}

function closeQuietly(socket: WebSocket, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    socket.close();
  }
}
