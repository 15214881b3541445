/**
 * {@linkcode SessionHooks}: what a session's transport
 * (`SessionSocket`) tells its owner, the server's session or the client's.
 *
 * @module
 */

import type { OutboxLimits, SessionOutbox } from "./session_outbox.ts";

/** What a {@linkcode SessionSocket} tells its owner. */
export interface SessionHooks {
  /**
   * Makes the outbox, on the first frame sent: the server's is a
   * `WriteAheadOutbox` (write-ahead, `load`); absent: a `SessionOutbox`.
   */
  outbox?(limits: OutboxLimits): SessionOutbox;
  /**
   * The transport closed (or was dropped) while the session lives on; also
   * called, after the session ended, when the other side had ended it.
   */
  onDetach?(code: number, reason: string): void;
  /** The other side ended the session on purpose (an ack with `end`). */
  onRemoteEnd?(): void;
  /** A session frame broke the protocol; the transport is closed with 1002. */
  onError?(error: unknown): void;
  /**
   * Reads an acknowledgement (the server's: `decodeAckFast`, the plain form
   * without `JSON.parse`); absent: `decodeAck`. Throws a `ProtocolError`
   * when it is malformed.
   */
  decodeAck?(data: string): { received: number; end: boolean };
}
