/**
 * Server-to-client requests of a {@linkcode DuplexServer}: to a user's most
 * recent `duplex.v1` connection.
 *
 * @module
 */

import type { UserRequestOptions } from "../cluster/cluster.ts";
import { NotConnectedError } from "../cluster/not_connected_error.ts";
import type { Endpoint, RequestOptions } from "../peer/peer.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";
import type { ServerConnection } from "./connection.ts";

/**
 * Options of a server-to-client request: the user, timeout and signal. The
 * request goes to the user's most recent `duplex.v1` connection.
 *
 * @example Usage
 * ```ts
 * import type { ServerRequestOptions } from "@duplex/ws/server";
 *
 * const options: ServerRequestOptions = { to: "alice", timeout: 2_000 };
 * ```
 */
export interface ServerRequestOptions extends RequestOptions {
  /** The user to ask. */
  to: string;
}

/**
 * A request to a user connected here: its latest `duplex.v1` connection.
 *
 * @returns The response payload.
 */
export function requestLocal<Local extends Endpoint, Remote extends Endpoint>(
  registry: ConnectionRegistry<Local, Remote>,
  to: string,
  message: unknown,
  options: UserRequestOptions,
): Promise<unknown> {
  const { method, timeout, signal } = options;
  const rest: RequestOptions & { method?: string } = {};
  if (method !== undefined) rest.method = method;
  if (timeout !== undefined) rest.timeout = timeout;
  if (signal !== undefined) rest.signal = signal;
  const connections = registry.connectionsOf(to);
  let latest: ServerConnection<Local, Remote> | undefined;
  for (const connection of connections ?? []) {
    if (connection.extended) latest = connection;
  }
  if (latest === undefined) {
    return Promise.reject(
      new NotConnectedError(
        to,
        connections === undefined
          ? "not connected"
          : `no ${SUBPROTOCOL} connection`,
      ),
    );
  }
  return latest.peer.request(message, rest);
}
