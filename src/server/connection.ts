/**
 * One open connection of a {@linkcode DuplexServer}: the public view
 * ({@linkcode Connection}) and the state only the server sees.
 *
 * @module
 */

import type { AnyEndpoint, Endpoint, Peer } from "../peer/peer.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";

/**
 * One open connection.
 *
 * @typeParam Local What the server answers and receives.
 * @typeParam Remote What the client answers and receives.
 *
 * @example Usage
 * ```ts
 * import type { Connection } from "@duplex/ws/server";
 *
 * const describe = (connection: Connection) =>
 *   `${connection.user}#${connection.id} (${connection.protocol || "original"})`;
 * ```
 */
export interface Connection<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> {
  /** A number unique within this server. */
  readonly id: number;
  /** The user, as authenticated. */
  readonly user: string;
  /** The negotiated subprotocol: `"duplex.v1"`, or `""` for the original. */
  readonly protocol: string;
  /** The `data` the authenticate hook returned. */
  readonly data: unknown;
  /** The connection's peer: requests, notifications, stats. */
  readonly peer: Peer<Local, Remote>;
}

/** One connection's state, including what only the server sees. */
export class ServerConnection<Local extends Endpoint, Remote extends Endpoint>
  implements Connection<Local, Remote> {
  registered = false;
  socketIsClosed = false;
  #closed: PromiseWithResolvers<void> | undefined = undefined;
  readonly extended: boolean;
  constructor(
    readonly id: number,
    readonly user: string,
    readonly protocol: string,
    readonly data: unknown,
    readonly peer: Peer<Local, Remote>,
    readonly socket: WebSocket,
  ) {
    this.extended = protocol === SUBPROTOCOL;
  }

  /** Settles when the socket has closed; made only when someone waits. */
  get socketClosed(): Promise<void> {
    if (this.socketIsClosed) return Promise.resolve();
    return (this.#closed ??= Promise.withResolvers<void>()).promise;
  }

  /** The socket's close event (or "open", when the server registers it). */
  handleEvent(event: Event): void {
    if (event.type === "close") {
      this.socketIsClosed = true;
      this.#closed?.resolve();
      this.onSocketClosed?.(this);
    } else if (event.type === "open") {
      this.onOpen?.(this);
    }
  }

  onSocketClosed: ((connection: this) => void) | undefined = undefined;
  onOpen: ((connection: this) => void) | undefined = undefined;
}
