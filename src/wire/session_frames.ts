/**
 * The session frames of the Duplex protocol (types 8, 9 and 10): the
 * client's hello (start or resume a session), the server's session state
 * (started, resumed, not resumed) and the cumulative acknowledgement both
 * sides send. They belong to the session layer, which sits between the peer
 * and the WebSocket: they are never counted as session frames and never
 * reach the peer.
 *
 * A session frame is always a text frame written in its canonical form,
 * `"type"` first and without spaces (`{"type":10,"sequence":64}`), so that
 * the receiver recognises it from its first characters without parsing the
 * frames of the application.
 *
 * @module
 */

import { ProtocolError } from "./errors.ts";

/**
 * The frame types of the session layer.
 *
 * @example Usage
 * ```ts
 * import { SessionFrameType } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SessionFrameType.Hello, 8);
 * assert.equal(SessionFrameType.State, 9);
 * assert.equal(SessionFrameType.Ack, 10);
 * ```
 */
export const SessionFrameType: {
  /** Client → server: start a session, or resume one. */
  readonly Hello: 8;
  /** Server → client: the session started, resumed, or was not resumed. */
  readonly State: 9;
  /** Both directions: frames received so far; optionally the end. */
  readonly Ack: 10;
} = { Hello: 8, State: 9, Ack: 10 } as const;

/**
 * The WebSocket subprotocol of `duplex.v1` with sessions. A client that
 * wants a session offers it after `duplex.v1`; a server that grants one
 * selects it (a server without sessions selects `duplex.v1`). Then the
 * client's first frame is a hello (type 8) and the server's first frame
 * the session state (type 9).
 *
 * @example Usage
 * ```ts
 * import { SESSION_PROTOCOL } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SESSION_PROTOCOL, "duplex.session");
 * ```
 */
export const SESSION_PROTOCOL: string = "duplex.session";

/**
 * Why a session was not resumed, or ended without a deliberate close:
 * `"expired"` (away longer than the grace period), `"overflow"` (more
 * missed frames than the buffer holds), `"unknown"` (no such session here:
 * the server restarted, or the id is wrong), `"forbidden"` (wrong secret,
 * or another user), `"closed"` (the other side ended it on purpose).
 *
 * @example Usage
 * ```ts
 * import type { SessionLossReason } from "@duplex/ws";
 *
 * const reason: SessionLossReason = "expired";
 * ```
 */
export type SessionLossReason =
  | "expired"
  | "overflow"
  | "unknown"
  | "forbidden"
  | "closed";

const REASONS: ReadonlySet<string> = new Set([
  "expired",
  "overflow",
  "unknown",
  "forbidden",
  "closed",
]);

/**
 * The client's hello (type 8): empty to start a session; `id`, `secret`
 * and `received` to resume one.
 *
 * @example Usage
 * ```ts
 * import type { SessionHello } from "@duplex/ws";
 *
 * const start: SessionHello = {};
 * const resume: SessionHello = { id: "abc", secret: "s3cr3t", received: 12 };
 * ```
 */
export interface SessionHello {
  /** The session to resume. */
  id?: string;
  /** Its secret, as the server gave it. */
  secret?: string;
  /** How many session frames of the server the client received. */
  received?: number;
  /**
   * Acknowledge the client's frames at least every this many (its buffer
   * bound over 16, see {@linkcode askedPacing}); absent: every 64.
   */
  ackEvery?: number;
  /**
   * Acknowledge the client's frames at least every this many bytes (binary
   * bytes, or UTF-16 units of text; an eighth of its byte bound, see
   * {@linkcode askedPacing}); absent: every 1 MiB.
   */
  ackBytes?: number;
  /**
   * The client reads acknowledgement counts carried in the heads of large
   * binary frames, and carries its own if the server's state says so
   * (PROTOCOL.md "Carried acknowledgements").
   */
  carriedAcks?: boolean;
}

/**
 * The acknowledgement pacing a side asks of the other (`ackEvery` and
 * `ackBytes` of the hello and of the state): acknowledge at least every
 * 1/16 of the frames it keeps, from 1 to 1,024, and every eighth of the
 * bytes it keeps, from 1 to 2 GiB: acks come long before its byte bound,
 * with room for what is in flight meanwhile (a stream's window; 1 MiB for
 * the default 8 MiB, the pacing of a side that does not ask).
 *
 * @param limits The most frames and bytes the asking side keeps for a replay.
 * @returns Frames and bytes between acknowledgements.
 */
export function askedPacing(
  limits: { maxFrames: number; maxBytes: number },
): { ackEvery: number; ackBytes: number } {
  return {
    ackEvery: Math.max(1, Math.min(1024, Math.floor(limits.maxFrames / 16))),
    ackBytes: Math.max(1, Math.min(2 ** 31, Math.floor(limits.maxBytes / 8))),
  };
}

/**
 * The server's answer to a hello (type 9). `resumed: true` with `received`:
 * the session continues. Otherwise a new session started (`id`, `secret`,
 * `grace`), and `reason` says why the one asked for was not resumed.
 *
 * @example Usage
 * ```ts
 * import type { SessionState } from "@duplex/ws";
 *
 * const resumed: SessionState = { resumed: true, received: 40 };
 * const fresh: SessionState = { resumed: false, id: "abc", secret: "xyz", grace: 120_000 };
 * ```
 */
export interface SessionState {
  /** `true` when the session asked for continues. */
  resumed: boolean;
  /** When resumed: how many session frames of the client the server received. */
  received?: number;
  /** When resumed: how many frames the server sends again after this one. */
  replayed?: number;
  /**
   * When resumed on another instance after the one that ran the session
   * died: the sequences of the client's requests that reached it and whose
   * response was not stored. Their handlers may or may not have run; the
   * client rejects those still pending with `OutcomeUnknownError`, and
   * nothing else is affected. Absent when empty.
   */
  inDoubt?: number[];
  /**
   * When resumed on another instance after the one that ran the session
   * died: how many of the client's frames are known to have been handed to
   * the server's handlers and listeners, when fewer than `received`. The
   * frames numbered `dispatched + 1` to `received` reached that instance
   * and may or may not have run; they are not sent again. The client
   * reports the notifications among them (its requests among them are in
   * `inDoubt`). Absent: every frame received was handed over.
   */
  dispatched?: number;
  /** When a new session started: its id. */
  id?: string;
  /** When a new session started: its secret (only ever sent in this frame). */
  secret?: string;
  /** When a new session started: how long the server keeps it after a drop, in ms. */
  grace?: number;
  /**
   * When a new session started: acknowledge at least every this many
   * frames (the server's buffer bound over 16); absent: every 64.
   */
  ackEvery?: number;
  /**
   * When a new session started: acknowledge at least every this many bytes
   * (binary bytes, or UTF-16 units of text; an eighth of the server's byte
   * bound);
   * absent: every 1 MiB.
   */
  ackBytes?: number;
  /**
   * The client's hello asked for carried acknowledgements and the server
   * reads and carries them on this connection.
   */
  carriedAcks?: boolean;
  /** Why the session asked for was not resumed. */
  reason?: SessionLossReason;
}

/**
 * Which session frame `data` is, from its first characters: 8, 9, 10, or 0
 * for any other frame (which belongs to the peer).
 *
 * @param data A received WebSocket message.
 * @returns The session frame type, or 0.
 */
export function sessionFrameType(data: unknown): 0 | 8 | 9 | 10 {
  // `{"type":` is 8 characters; our own frames begin with `{"sequence"`.
  if (typeof data !== "string" || data.charCodeAt(2) !== 116) return 0;
  if (!data.startsWith('{"type":')) return 0;
  const first = data.charCodeAt(8);
  let end = data.charCodeAt(9);
  if (first === 56 || first === 57) {
    // "8" or "9"
    return end === 44 || end === 125 ? (first === 56 ? 8 : 9) : 0;
  }
  if (first === 49 && end === 48) {
    // "10"
    end = data.charCodeAt(10);
    return end === 44 || end === 125 ? 10 : 0;
  }
  return 0;
}

/**
 * Whether `data` is a ping (5) or a pong (6). In a session they are not
 * session frames: liveness concerns one connection, so they are neither
 * counted nor kept nor replayed. They are written with no other field than
 * `sequence` and `type`, `type` last (`{"sequence":0,"type":5}`), which the
 * receiver recognises from the last characters.
 *
 * @param data A WebSocket message.
 * @returns `true` for a ping or a pong.
 */
export function isLiveness(data: unknown): boolean {
  // The longest is {"sequence":2147483647,"type":5} (33 characters).
  if (typeof data !== "string" || data.length > 33) return false;
  return data.endsWith('"type":5}') || data.endsWith('"type":6}');
}

/**
 * Encodes an acknowledgement: `received` session frames arrived; with
 * `end`, the sender also ends the session on purpose.
 *
 * @param received The frames received so far.
 * @param end Whether the session ends.
 * @returns The canonical frame.
 */
export function encodeAck(received: number, end = false): string {
  return end
    ? `{"type":10,"sequence":${received},"end":true}`
    : `{"type":10,"sequence":${received}}`;
}

/**
 * Encodes a hello (type 8).
 *
 * @param hello Empty to start, or the session to resume.
 * @returns The canonical frame.
 */
export function encodeHello(hello: SessionHello): string {
  return `{"type":8,"sequence":0,"message":${JSON.stringify(hello)}}`;
}

/**
 * Encodes a session state (type 9).
 *
 * @param state The state.
 * @returns The canonical frame.
 */
export function encodeState(state: SessionState): string {
  return `{"type":9,"sequence":0,"message":${JSON.stringify(state)}}`;
}

/** Longest id or secret accepted in a hello. */
const MAX_TOKEN = 128;

function invalid(what: string, type: number): ProtocolError {
  return new ProtocolError(`Cannot decode session frame: ${what}`, 0, type);
}

function parse(data: string, type: number): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    throw invalid("not JSON", type);
  }
  return object(value, "not an object", type);
}

function object(
  value: unknown,
  what: string,
  type: number,
): Record<string, unknown> {
  if (typeof value !== "object" || value === null) throw invalid(what, type);
  return value as Record<string, unknown>;
}

/** The `message` of a hello or state: an object. */
function messageOf(data: string, type: number): Record<string, unknown> {
  return object(parse(data, type).message, "no message", type);
}

/** Checks an optional field; `message` is the frame's (for a bound). */
type Check = (value: unknown, message: Record<string, unknown>) => boolean;

/**
 * Copies the fields `checks` names from `message` into `into`: an absent
 * one stays absent, a present one must pass its check ("bad <field>").
 */
function fields<T extends object>(
  into: T,
  message: Record<string, unknown>,
  checks: Record<string, Check>,
  type: number,
): T {
  for (const key in checks) {
    const value = message[key];
    if (value === undefined) continue;
    if (!checks[key](value, message)) throw invalid(`bad ${key}`, type);
    (into as Record<string, unknown>)[key] = value;
  }
  return into;
}

function isCount(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isPositive(value: unknown): boolean {
  return isCount(value) && value > 0;
}

function isToken(value: unknown): value is string {
  return typeof value === "string" && value.length > 0 &&
    value.length <= MAX_TOKEN;
}

/** The optional fields of a hello and of a new session's state. */
const PACING: Record<string, Check> = {
  ackEvery: isPositive,
  ackBytes: isPositive,
  carriedAcks: (value) => typeof value === "boolean",
};

/** The optional fields of a resumed session's state. */
const RESUMED: Record<string, Check> = {
  inDoubt: (value) => Array.isArray(value) && value.every(isCount),
  dispatched: (value, message) =>
    isCount(value) && value <= (message.received as number),
  carriedAcks: PACING.carriedAcks,
};

/** The optional fields of a new session's state. */
const STARTED: Record<string, Check> = {
  reason: (value) => REASONS.has(value as string),
  ...PACING,
};

/**
 * The count of a plain acknowledgement, `{"type":10,"sequence":n}` exactly,
 * read without `JSON.parse`; -1 for any other form (which `JSON.parse` then
 * reads, or refuses: leading zeros, counts past 2^53 - 1, other fields).
 */
function plainAckCount(data: string): number {
  // `{"type":10,"sequence":` is 22 characters; at most 16 digits follow.
  const last = data.length - 1;
  if (
    last < 23 || last > 38 || data.charCodeAt(last) !== 125 ||
    !data.startsWith('{"type":10,"sequence":') ||
    (data.charCodeAt(22) === 48 && last > 23)
  ) {
    return -1;
  }
  let count = 0;
  for (let i = 22; i < last; i++) {
    const digit = data.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    count = count * 10 + digit;
  }
  return count <= Number.MAX_SAFE_INTEGER ? count : -1;
}

/**
 * Decodes an acknowledgement (type 10).
 *
 * @param data The frame, as `sessionFrameType` recognised it.
 * @returns The count and whether the session ends.
 * @throws {ProtocolError} When the frame is malformed.
 */
export function decodeAck(data: string): { received: number; end: boolean } {
  const frame = parse(data, 10);
  if (!isCount(frame.sequence)) throw invalid("bad sequence", 10);
  return { received: frame.sequence, end: frame.end === true };
}

/**
 * Decodes an acknowledgement as {@linkcode decodeAck} does, the plain form
 * (as every peer writes it) without `JSON.parse`: the server's, which reads
 * every client's acknowledgements (a `SessionSocket` reads through its
 * hooks' `decodeAck`; a browser's uses `decodeAck`).
 *
 * @param data The frame, as `sessionFrameType` recognised it.
 * @returns The count and whether the session ends.
 * @throws {ProtocolError} When the frame is malformed.
 */
export function decodeAckFast(
  data: string,
): { received: number; end: boolean } {
  const plain = plainAckCount(data);
  return plain >= 0 ? { received: plain, end: false } : decodeAck(data);
}

/**
 * Decodes a hello (type 8).
 *
 * @param data The frame.
 * @returns The hello.
 * @throws {ProtocolError} When the frame is malformed.
 */
export function decodeHello(data: string): SessionHello {
  const message = messageOf(data, 8);
  const hello: SessionHello = fields({}, message, PACING, 8);
  const { id, secret, received } = message;
  if (id === undefined) return hello;
  if (!isToken(id) || !isToken(secret) || !isCount(received)) {
    throw invalid("resume needs id, secret and received", 8);
  }
  return { id, secret, received, ...hello };
}

/**
 * Decodes a session state (type 9).
 *
 * @param data The frame.
 * @returns The state.
 * @throws {ProtocolError} When the frame is malformed.
 */
export function decodeState(data: string): SessionState {
  const message = messageOf(data, 9);
  const { resumed, received, replayed, id, secret, grace } = message;
  if (resumed === true) {
    if (!isCount(received)) throw invalid("resumed without received", 9);
    const state: SessionState = {
      resumed,
      received,
      replayed: isCount(replayed) ? replayed : 0,
    };
    return fields(state, message, RESUMED, 9);
  }
  if (resumed !== false) throw invalid("bad resumed", 9);
  if (!isToken(id) || !isToken(secret) || !isCount(grace)) {
    throw invalid("a new session needs id, secret and grace", 9);
  }
  const state: SessionState = { resumed, id, secret, grace };
  return fields(state, message, STARTED, 9);
}
