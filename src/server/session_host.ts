/**
 * What {@linkcode ServerSessions} is given by its server: the
 * {@linkcode SessionHost} (registry, metrics, logger, budget, and the
 * callbacks into the `DuplexServer`), and the upgraded sockets it takes.
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import type { Registry } from "../peer/receiver.ts";
import type { ServerConnection } from "./connection.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { SendBudget } from "./send_budget.ts";
import type { PeerOptions, ServerLogger } from "./server_options.ts";
import type { Upgraded } from "./upgrade.ts";

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
  /** Puts a user in a room (cluster-wide with a cluster). */
  join(room: string, user: string): boolean;
  /** A session ended; `disconnected` when its `disconnect` was told. */
  ended(
    connection: ServerConnection<Local, Remote>,
    code: number,
    reason: string,
    disconnected: boolean,
  ): void;
}
