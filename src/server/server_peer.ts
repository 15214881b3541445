/**
 * The peers and connections of a server's upgraded sockets: each peer with
 * the server's handler registry, the per-connection limits and hooks
 * instead of listeners; each connection tracked until its socket closes.
 *
 * @module
 */

import { PeerLimits } from "../peer/limits.ts";
import { type Endpoint, Peer, type SocketLike } from "../peer/peer.ts";
import type { Registry } from "../peer/receiver.ts";
import { ProtocolError } from "../wire/errors.ts";
import type { PeerOptions } from "./server_options.ts";
import { ServerConnection } from "./connection.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";

/** What {@linkcode createServerPeer} needs. */
export interface ServerPeerOptions {
  /** The server's resolved peer options. */
  peerOptions: PeerOptions;
  /** The server's handler registry. */
  registry: Registry;
  /** Called once when the peer closes. */
  onClose: (code: number, reason: string) => void;
  /** Told of a handler's failure (not of malformed frames). */
  onError: (error: unknown) => void;
}

/**
 * Creates the peer of one connection or session.
 *
 * @returns The peer over `socket`, identified as `user`.
 */
export function createServerPeer<
  Local extends Endpoint,
  Remote extends Endpoint,
>(
  socket: SocketLike,
  user: string,
  options: ServerPeerOptions,
): Peer<Local, Remote> {
  const peerOptions = options.peerOptions;
  return new Peer<Local, Remote>(socket, {
    identity: user,
    registry: options.registry,
    maxMalformed: peerOptions.maxMalformed,
    timeout: peerOptions.timeout,
    // Size, rate, in-flight and backpressure limits, per connection.
    guard: new PeerLimits(peerOptions),
    // Hooks rather than event listeners: cheaper per idle connection.
    onClose: options.onClose,
    onError: (error) => {
      // Malformed frames are counted in the metrics; only failures of our
      // own code are reported.
      if (!(error instanceof ProtocolError)) options.onError(error);
    },
  });
}

/** An upgraded socket: its user, subprotocol and authentication data. */
export interface UpgradedSocket {
  socket: WebSocket;
  user: string;
  protocol: string;
  data: unknown;
}

/** Makes the peers and connections of one server. */
export class ConnectionFactory<
  Local extends Endpoint,
  Remote extends Endpoint,
> {
  #nextId = 1;
  #peerOptions: PeerOptions;
  #handlers: Registry;
  #connections: ConnectionRegistry<Local, Remote>;
  #onError: (user: string, error: unknown) => void;

  /**
   * @param peerOptions The server's resolved peer options.
   * @param handlers The server's handler registry.
   * @param connections Where sockets are tracked until they close.
   * @param onError Told of a handler's failure.
   */
  constructor(
    peerOptions: PeerOptions,
    handlers: Registry,
    connections: ConnectionRegistry<Local, Remote>,
    onError: (user: string, error: unknown) => void,
  ) {
    this.#peerOptions = peerOptions;
    this.#handlers = handlers;
    this.#connections = connections;
    this.#onError = onError;
  }

  /** A peer over `socket` (a WebSocket, or a session's transport). */
  peer(
    socket: SocketLike,
    user: string,
    onClose: (code: number, reason: string) => void,
  ): Peer<Local, Remote> {
    return createServerPeer<Local, Remote>(socket, user, {
      peerOptions: this.#peerOptions,
      registry: this.#handlers,
      onClose,
      onError: (error) => this.#onError(user, error),
    });
  }

  /** The connection of an upgraded socket, tracked until the socket closes. */
  connection(
    upgraded: UpgradedSocket,
    peer: Peer<Local, Remote>,
  ): ServerConnection<Local, Remote> {
    const { socket, user, protocol, data } = upgraded;
    const connection = new ServerConnection<Local, Remote>(
      this.#nextId++,
      user,
      protocol,
      data,
      peer,
      socket,
    );
    this.#connections.sockets.add(connection);
    // One listener object per connection, for both socket events. Deno does
    // not need an "error" listener: an abrupt drop is followed by "close".
    connection.onSocketClosed = this.#forget;
    socket.addEventListener("close", connection, { once: true });
    return connection;
  }

  readonly #forget = (connection: ServerConnection<Local, Remote>): void => {
    this.#connections.sockets.delete(connection);
  };
}
