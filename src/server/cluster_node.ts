/**
 * The server as the cluster sees it: {@linkcode clusterNode} makes the
 * {@linkcode LocalNode} a {@linkcode DuplexServer} attaches to its cluster
 * (delivery, requests, rooms, and the cluster-wide `duplicateUser:
 * "replace"`).
 *
 * @module
 */

import type { LocalNode } from "../cluster/local_node.ts";
import type { Endpoint } from "../peer/peer.ts";
import type { ServerConnection } from "./connection.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";
import type { FanOut } from "./fan_out.ts";
import { requestLocal } from "./server_request.ts";
import { CLOSE_REPLACED } from "./server_options.ts";

/** The local node of a server, and what the server tells it. */
export interface ServerNode<Local extends Endpoint, Remote extends Endpoint>
  extends LocalNode {
  /** Records when a connection opened (for `replace`). */
  opened(connection: ServerConnection<Local, Remote>): void;
}

/**
 * Makes the local node of a server.
 *
 * @param id The cluster's id (the tie-break of two connections opened in
 * the same millisecond on two instances).
 * @param registry The server's connections and rooms.
 * @param fanOut The server's local delivery.
 * @returns The node.
 */
export function clusterNode<Local extends Endpoint, Remote extends Endpoint>(
  id: string,
  registry: ConnectionRegistry<Local, Remote>,
  fanOut: FanOut<Local, Remote>,
): ServerNode<Local, Remote> {
  const openedAt = new WeakMap<ServerConnection<Local, Remote>, number>();
  return {
    deliver: (push) => fanOut.deliver(push),
    request: (user, message, options) =>
      requestLocal(registry, user, message, options),
    join: (room, user) => registry.join(room, user),
    leave: (room, user) => registry.leave(room, user),
    opened: (connection) => openedAt.set(connection, Date.now()),
    replace(user, at, instance) {
      for (const connection of [...(registry.connectionsOf(user) ?? [])]) {
        const opened = openedAt.get(connection) ?? 0;
        if (opened < at || (opened === at && id < instance)) {
          connection.peer.closeWithReason(
            CLOSE_REPLACED,
            "Replaced by a newer connection",
          );
        }
      }
    },
  };
}
