/**
 * The client's side of sessions: {@linkcode ClientSession} keeps the
 * session (id, secret, its transport and its peer) across the client's
 * connections, writes the hello of each new connection and applies the
 * server's answer: resumed (the same peer goes on, the missed frames are
 * replayed) or not (a new session with a new peer; the old one's pending
 * requests reject with `OutcomeUnknownError`). The options and events of
 * sessions live here too.
 *
 * @module
 */

import type { Endpoint, Peer } from "../peer/peer.ts";
import {
  type SessionLimits,
  sessionLimits,
  SessionSocket,
} from "../peer/session_socket.ts";
import { pacedBy } from "../peer/session_limits.ts";
import { closeQuietly, type SocketLike } from "../peer/socket_like.ts";
import type { RequestSequences } from "../peer/pending_requests.ts";
import { ProtocolError } from "../wire/errors.ts";
import { type Codec, jsonCodec } from "../wire/codec.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import { OutcomeUnknownError } from "../wire/outcome_unknown_error.ts";
import {
  askedPacing,
  decodeState,
  encodeHello,
  sessionFrameType,
  type SessionHello,
  type SessionLossReason,
} from "../wire/session_frames.ts";

/**
 * Where a browser page keeps its session across a reload:
 * `sessionStorage` fits (or anything with these three methods).
 *
 * @example Usage
 * ```ts
 * import type { SessionStorageLike } from "@duplex/ws/client";
 *
 * const memory = new Map<string, string>();
 * const storage: SessionStorageLike = {
 *   getItem: (key) => memory.get(key) ?? null,
 *   setItem: (key, value) => void memory.set(key, value),
 *   removeItem: (key) => void memory.delete(key),
 * };
 * ```
 */
export interface SessionStorageLike {
  /** Reads a value; `null` when absent. */
  getItem(key: string): string | null;
  /** Writes a value. */
  setItem(key: string, value: string): void;
  /** Deletes a value. */
  removeItem(key: string): void;
}

/**
 * Session options of a {@linkcode Client} (`ClientOptions.session`).
 *
 * @example Keep the session across page reloads
 * ```ts
 * import type { ClientSessionOptions } from "@duplex/ws/client";
 *
 * const options: ClientSessionOptions = { storage: globalThis.sessionStorage };
 * ```
 */
export interface ClientSessionOptions {
  /**
   * Keeps the session's id, secret and count in this storage when the page
   * is hidden (`pagehide`), so that the next page of the tab resumes it and
   * receives what it missed during the reload. The requests of the old page
   * are gone with it: they reject there, and the next page cancels them on
   * the server. A page back from the back/forward cache resumes the same
   * way when it connects again. Opt-in: give `sessionStorage`.
   *
   * @default {undefined}
   */
  storage?: SessionStorageLike;
  /**
   * The storage key.
   *
   * @default {"duplex.session"}
   */
  key?: string;
  /**
   * The most frames the client keeps for a replay (sent, not acknowledged
   * by the server). Beyond it the session is given up at the next drop.
   *
   * @default {10000}
   */
  maxBufferedFrames?: number;
  /**
   * The most bytes the client keeps for a replay. The server is asked (the
   * hello's `ackBytes`) to acknowledge every eighth of it.
   *
   * @default {8388608}
   */
  maxBufferedBytes?: number;
  /**
   * Acknowledge the server's frames after this many.
   *
   * @default {the server's `ackEvery` (its frame bound / 16), else 64}
   */
  ackEvery?: number;
  /**
   * Acknowledge the server's frames after this many bytes (binary bytes, or
   * UTF-16 units of text).
   *
   * @default {the server's `ackBytes` (an eighth of its byte bound), else 1048576}
   */
  ackBytes?: number;
  /**
   * Acknowledge at most this long after a frame arrived, in ms.
   *
   * @default {1000}
   */
  ackDelay?: number;
}

/**
 * The `resumed` and `not-resumed` events of a {@linkcode Client}.
 * `resumed`: the connection dropped and came back within the server's grace
 * period; every frame missed meanwhile was delivered (`replayed` of them),
 * once and in order, and requests in flight go on. `not-resumed`: the
 * session was lost (`reason`); a new one started. Notifications may have
 * been missed, rooms and server-side state of the old session are gone, and
 * requests sent before the drop rejected with `OutcomeUnknownError`:
 * resynchronise. A `resumed` on another server instance after the one that
 * ran the session died may list requests and notifications in doubt
 * (`inDoubt`, `notificationsInDoubt`): they ran once or not at all, and are
 * never sent again.
 *
 * @example Usage
 * ```ts
 * import { SessionEvent } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const event = new SessionEvent("not-resumed", { reason: "expired" });
 * assert.equal(event.reason, "expired");
 * ```
 */
export class SessionEvent extends Event {
  /** Why the session was not resumed (`not-resumed` only). */
  declare readonly reason: SessionLossReason | undefined;
  /** Frames the server sent again (`resumed` only). */
  declare readonly replayed: number;
  /**
   * Requests rejected with `OutcomeUnknownError` because the server
   * instance that received them died before storing their response
   * (`resumed` only; 0 on the same instance).
   */
  declare readonly inDoubt: number;
  /**
   * Notifications this client sent that reached a server instance which
   * died before it was known to have handed them to its listeners: each
   * ran there once or not at all, and none is sent again (`resumed` only;
   * empty on the same instance). Oldest first, as sent.
   */
  declare readonly notificationsInDoubt: readonly NotifyFrame[];

  /**
   * Creates the event.
   *
   * @param type `"resumed"` or `"not-resumed"`.
   * @param init The reason, or the counts and frames of a resume.
   */
  constructor(
    type: "resumed" | "not-resumed",
    init: {
      reason?: SessionLossReason;
      replayed?: number;
      inDoubt?: number;
      notificationsInDoubt?: readonly NotifyFrame[];
    } = {},
  ) {
    super(type);
    this.reason = init.reason;
    this.replayed = init.replayed ?? 0;
    this.inDoubt = init.inDoubt ?? 0;
    this.notificationsInDoubt = init.notificationsInDoubt ?? [];
  }
}

/** What the server's answer to a hello made of a connection. */
export interface SessionOutcome<P> {
  /** The peer to use: the session's, or a plain one. */
  peer: P;
  /** The session's transport; `undefined` without a session. */
  socket: SessionSocket | undefined;
  /** `true` when `peer` is new (listeners to add). */
  fresh: boolean;
  /** The event to dispatch, if any. */
  event: SessionEvent | undefined;
}

/** The hooks a client gives its session's transport. */
export interface ClientSessionHooks {
  /** The transport dropped. */
  onDetach(code: number, reason: string): void;
  /** A session frame broke the protocol. */
  onError(error: unknown): void;
}

/**
 * Makes the session's peer over its transport, with the options the session
 * adds (the request sequences).
 */
export type CreatePeer<P> = (
  socket: SocketLike,
  options: { sequences: RequestSequences },
) => P;

/** What a page keeps of its session for the next page. */
interface Kept
  extends Required<Pick<SessionHello, "id" | "secret" | "received">> {
  /** The last request sequence its peer allocated. */
  last: number;
  /** Its pending requests (to cancel), oldest first. */
  pending: number[];
}

/** The client's session across its connections. Internal. */
export class ClientSession<P extends Peer<Endpoint, Endpoint>> {
  #id: string | undefined;
  #secret: string | undefined;
  #socket: SessionSocket | undefined;
  #peer: P | undefined;
  #limits: SessionLimits;
  /** The options: the server's pacing applies where they set none. */
  #given: ClientSessionOptions;
  #storage: SessionStorageLike | undefined;
  #key: string;
  /** What the previous page (or this one, suspended) kept. */
  #restored: Kept | undefined;
  /** The request sequences of the session's peer. */
  #sequences: RequestSequences = { last: 0 };
  #hooks: ClientSessionHooks;
  /** Suspended for the next page: a close keeps the storage. */
  #suspended = false;

  /**
   * @param options The session options.
   * @param hooks Told when the transport drops.
   */
  constructor(options: ClientSessionOptions, hooks: ClientSessionHooks) {
    this.#hooks = hooks;
    this.#given = options;
    this.#limits = sessionLimits({
      maxFrames: options.maxBufferedFrames,
      maxBytes: options.maxBufferedBytes,
      maxAge: Infinity, // no age limit on this side (as before: 2^53 ms)
      ackEvery: options.ackEvery,
      ackBytes: options.ackBytes,
      ackDelay: options.ackDelay,
    });
    this.#storage = options.storage;
    this.#key = options.key ?? "duplex.session";
    this.#restored = this.#load();
  }

  /** The session's transport, while a session exists. */
  get socket(): SessionSocket | undefined {
    return this.#socket;
  }

  /** The session's peer, while a session exists. */
  get peer(): P | undefined {
    return this.#peer;
  }

  /** The session id, while a session exists. */
  get id(): string | undefined {
    return this.#id;
  }

  /**
   * The hello of a new connection: resume the session when there is one
   * that can be resumed, else start one.
   *
   * @param carries Ask for carried acknowledgements (the connection's codec
   * has a carrier).
   * @returns The encoded hello.
   */
  hello(carries = false): string {
    const socket = this.#live();
    const resume = socket !== undefined
      ? { id: this.#id, secret: this.#secret, received: socket.received }
      : this.#restored;
    // Only the hello's fields go on the wire, then the pacing asked of the
    // server, and acks carried (the codec's way).
    return encodeHello({
      ...resume && {
        id: resume.id,
        secret: resume.secret,
        received: resume.received,
      },
      ...askedPacing(this.#limits),
      carriedAcks: carries || undefined,
    });
  }

  /** The session's transport while the session can be resumed. */
  #live(): SessionSocket | undefined {
    const socket = this.#socket;
    return socket !== undefined && !socket.ended &&
        socket.lost === undefined && this.#id !== undefined
      ? socket
      : undefined;
  }

  /**
   * Runs the session handshake on a new connection: sends the hello and
   * applies the server's answer (its first frame).
   *
   * @param transport The new, open WebSocket.
   * @param createPeer Makes a peer over a socket.
   * @param codec The peer's codec.
   * @param live Whether the attempt still counts (else the answer is
   * ignored).
   * @param settle Told the outcome, or the failure (`outcome` undefined).
   */
  handshake(
    transport: WebSocket,
    createPeer: CreatePeer<P>,
    codec: Codec | undefined,
    live: () => boolean,
    settle: (outcome?: SessionOutcome<P>, error?: unknown) => void,
  ): void {
    transport.send(this.hello(codec?.carrier !== undefined));
    // A listener, not `onmessage`: Deno keeps an event handler's listener
    // after it is set to null, and would call it for every later message.
    transport.addEventListener("message", (event) => {
      if (!live()) return;
      let outcome: SessionOutcome<P>;
      try {
        outcome = this.established(transport, event.data, createPeer, codec);
      } catch (error) {
        settle(undefined, error);
        return;
      }
      settle(outcome);
    }, { once: true });
  }

  /**
   * Applies the server's answer to the hello.
   *
   * @param transport The new WebSocket.
   * @param data The server's first frame.
   * @param createPeer Makes a peer over a socket.
   * @param codec The peer's codec (reads the notifications in doubt).
   * @returns The peer to use and the event to dispatch.
   * @throws {ProtocolError} When the answer is not a session state, or a
   * resume cannot replay (the connection must be dropped and retried).
   */
  established(
    transport: SocketLike,
    data: unknown,
    createPeer: CreatePeer<P>,
    codec: Codec = jsonCodec,
  ): SessionOutcome<P> {
    if (sessionFrameType(data) !== 9) {
      throw new ProtocolError(
        "Cannot start session: the server's first frame is not a session state",
      );
    }
    const state = decodeState(data as string);
    const carrier = state.carriedAcks ? codec.carrier : undefined;
    this.#suspended = false;
    const old = this.#socket;
    const restored = this.#restored;
    this.#restored = undefined;
    // Taken once (a page back from the back/forward cache resumed from
    // memory: no later copy of the tab's storage may take it over).
    if (restored !== undefined) this.#storage?.removeItem(this.#key);
    if (state.resumed) {
      if (old === undefined && restored !== undefined) {
        // A reloaded page: a new peer over the restored session. The
        // requests of the old page are gone with it, but the server may
        // still answer them (a handler that was running, a response kept
        // for the session): the new peer's sequences follow the old page's,
        // so that such an answer matches nothing here (a stray, ignored)
        // and the server never takes a new request for an old one still
        // in flight.
        this.#id = restored.id;
        this.#secret = restored.secret;
        const socket = this.#socket = new SessionSocket(
          this.#limits,
          this.#hooks,
        );
        socket.restore(restored.received);
        const sequences = this.#sequences = { last: restored.last };
        this.#peer = createPeer(socket, { sequences });
        socket.attach(transport, state.received!, carrier);
        // Its handlers and streams stop (a download would wait for credit
        // for ever): a cancel (type 4) for each request the old page had
        // pending, before anything of the new page.
        for (const sequence of restored.pending) {
          socket.send(`{"sequence":${sequence},"type":4}`);
        }
        return {
          peer: this.#peer,
          socket,
          fresh: true,
          event: new SessionEvent("resumed", { replayed: state.replayed }),
        };
      }
      // Read before `attach` drops them: the frames that reached an
      // instance that died, and may not have run there.
      const notes = state.dispatched === undefined || old === undefined
        ? undefined
        : notificationsIn(old, state.dispatched, state.received!, codec);
      const replayed = old?.attach(transport, state.received!, carrier) ?? -1;
      if (replayed < 0) {
        // The server's count does not fit ours: this session is broken.
        this.#lose("unknown");
        throw new ProtocolError(
          "Cannot resume session: the server's count does not match",
        );
      }
      let inDoubt = 0;
      for (const sequence of state.inDoubt ?? []) {
        const error = new OutcomeUnknownError("unknown");
        if (this.#peer!.failRequest(sequence, error)) inDoubt++;
      }
      return {
        peer: this.#peer!,
        socket: old,
        fresh: false,
        event: new SessionEvent("resumed", {
          replayed: state.replayed,
          inDoubt,
          notificationsInDoubt: notes,
        }),
      };
    }
    const asked = (old !== undefined && !old.ended) || restored !== undefined;
    const reason = state.reason ?? old?.lost ?? "unknown";
    this.#lose(reason);
    const event = asked || old !== undefined
      ? new SessionEvent("not-resumed", {
        reason: old !== undefined && old.ended && !asked ? "closed" : reason,
      })
      : undefined;
    this.#id = state.id;
    this.#secret = state.secret;
    // The pacing the server asks for (fewer acks when it keeps more).
    const socket = this.#socket = new SessionSocket(
      pacedBy(this.#limits, state, this.#given),
      this.#hooks,
    );
    const sequences = this.#sequences = { last: 0 };
    this.#peer = createPeer(socket, { sequences });
    socket.attach(transport, 0, carrier);
    return { peer: this.#peer, socket, fresh: true, event };
  }

  /**
   * Ends the session on purpose (the client closes): the server is told
   * when connected; pending requests reject with `ConnectionClosedError`.
   *
   * @param code The close code.
   * @param reason The close reason.
   */
  close(code: number, reason: string): void {
    if (!this.#suspended) this.#storage?.removeItem(this.#key);
    this.#forget()?.close(code, reason);
  }

  /**
   * Keeps the session for the next page (a `pagehide` with storage):
   * saves it and closes the connection with 1001 without ending the
   * session; the client's close that follows ends it only locally. The
   * next `connect()` of this client (a page back from the back/forward
   * cache) resumes it as a reloaded page would.
   *
   * @returns `true` when it was saved.
   */
  suspend(): boolean {
    const socket = this.#live();
    if (this.#storage === undefined || socket === undefined) return false;
    // Also kept here: a page restored from the back/forward cache resumes
    // it when it connects again, like the next page would.
    const kept = this.#restored = {
      id: this.#id!,
      secret: this.#secret!,
      received: socket.received,
      last: this.#sequences.last,
      pending: toCancel(this.#sequences.pending?.() ?? []),
    };
    this.#storage.setItem(this.#key, JSON.stringify(kept));
    // The server keeps the session for its grace period: no `end`.
    const transport = socket.detach();
    if (transport !== undefined) closeQuietly(transport, 1001, "Page hidden");
    this.#suspended = true;
    return true;
  }

  /** Ends the current session as lost (its peer's pending requests reject). */
  #lose(reason: SessionLossReason): void {
    this.#forget()?.end(reason);
  }

  /** Forgets the current session; returns its transport. */
  #forget(): SessionSocket | undefined {
    const socket = this.#socket;
    this.#socket =
      this.#peer =
      this.#id =
      this.#secret =
        undefined;
    return socket;
  }

  /**
   * Takes the session the previous page kept: out of the storage, so that
   * a tab that copies this one's storage (`window.open`, duplicating the
   * tab) starts its own session instead of taking this one over.
   */
  #load(): Kept | undefined {
    try {
      const storage = this.#storage;
      const text = storage?.getItem(this.#key);
      if (!text) return undefined;
      storage!.removeItem(this.#key);
      const value = JSON.parse(text);
      if (
        typeof value?.id === "string" && typeof value.secret === "string" &&
        Number.isSafeInteger(value.received)
      ) {
        const { id, secret, received, last } = value;
        return {
          id,
          secret,
          received,
          last: Number.isSafeInteger(last) && last > 0 ? last : 0,
          pending: toCancel(Array.isArray(value.pending) ? value.pending : []),
        };
      }
    } catch {
      // Unreadable: start afresh.
    }
    return undefined;
  }
}

/**
 * The notifications among the frames numbered `from + 1` to `to` that
 * `socket` still keeps (a frame already acknowledged was reported before).
 */
function notificationsIn(
  socket: SessionSocket,
  from: number,
  to: number,
  codec: Codec,
): NotifyFrame[] {
  const kept = socket.pendingFrames();
  const first = socket.sent - kept.length + 1;
  const found: NotifyFrame[] = [];
  for (let n = Math.max(from + 1, first); n <= to && n <= socket.sent; n++) {
    try {
      const frame = codec.decode(kept[n - first]);
      if (frame.type === 3) found.push(frame);
    } catch {
      // Not a frame this peer wrote: nothing to report.
    }
  }
  return found;
}

/**
 * The most requests of an old page cancelled by the next one: all that a
 * server with the default limits can be running for it (128 in flight),
 * and far within its rate limit's burst (1,000 frames).
 */
const MAX_CANCELS = 256;

/** The first `MAX_CANCELS` valid sequences of `list`. */
function toCancel(list: Iterable<unknown>): number[] {
  return [...list].filter((n) => Number.isSafeInteger(n) && (n as number) > 0)
    .slice(0, MAX_CANCELS) as number[];
}
