/**
 * Pushes of a {@linkcode DuplexServer}: who a notification goes to, its
 * encoding (once for every receiver), and the fan-out to the local
 * connections of a user, a room or everyone.
 *
 * @module
 */

import type { Envelope } from "../cluster/broker.ts";
import type { Endpoint } from "../peer/peer.ts";
import { type Codec, jsonCodec } from "../wire/codec.ts";
import { ConnectionClosedError } from "../wire/errors.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import type { ServerConnection } from "./connection.ts";
import type { ConnectionRegistry } from "./connection_registry.ts";

/**
 * Who a push goes to: one user (`to`), the members of a room (`room`), or
 * everyone (neither); in each case minus every connection of `except`.
 *
 * @example Usage
 * ```ts
 * import type { PushOptions } from "@duplex/ws/server";
 *
 * const toRoom: PushOptions = { room: "lobby", except: "alice" };
 * ```
 */
export interface PushOptions {
  /**
   * The user to push to (all of that user's connections).
   *
   * @default {undefined}
   */
  to?: string;
  /**
   * The room to push to.
   *
   * @default {undefined}
   */
  room?: string;
  /**
   * A user none of whose connections receive it.
   *
   * @default {undefined}
   */
  except?: string;
  /**
   * The frame's `from`: who the message is from. Absent for messages from
   * the server itself.
   *
   * @default {undefined}
   */
  from?: string;
  /**
   * The frame's `sequence` (the chat relays the request's).
   *
   * @default {0}
   */
  sequence?: number;
  /**
   * Deliver only to this instance's connections, never through the
   * cluster's broker (e.g. for events that every instance sees anyway).
   *
   * @default {false}
   */
  local?: boolean;
}

/**
 * Options of {@linkcode DuplexServer.notify}: the audience and the method.
 * A notification with a method reaches only clients that negotiated
 * `duplex.v1`; one without reaches every client.
 *
 * @example Usage
 * ```ts
 * import type { NotifyOptions } from "@duplex/ws/server";
 *
 * const options: NotifyOptions = { to: "alice", method: "alert" };
 * ```
 */
export interface NotifyOptions extends PushOptions {
  /**
   * The notification's method.
   *
   * @default {undefined}
   */
  method?: string;
}

/**
 * A push as delivered locally: like an {@linkcode Envelope}, but its data
 * may be binary, and then only connections of `protocol` receive it (the
 * others count it in `stats.dropped`).
 */
export interface LocalPush extends Omit<Envelope, "data"> {
  data: string | Uint8Array<ArrayBuffer>;
  protocol?: string;
}

/**
 * The envelope of a push: the notification encoded once (by `codec` when
 * given), and its audience.
 *
 * @throws {TypeError} When the message cannot be encoded.
 */
export function pushEnvelope(
  message: unknown,
  options: NotifyOptions,
  codec: Codec = jsonCodec,
): LocalPush {
  const { to, room, except, method, from, sequence = 0 } = options;
  const frame: NotifyFrame = { sequence, type: 3, message };
  if (method !== undefined) frame.method = method;
  if (from !== undefined) frame.from = from;
  const data = codec.encode(frame);
  const envelope: LocalPush = { data, extended: method !== undefined };
  if (typeof data !== "string") envelope.protocol = codec.protocol;
  if (to !== undefined) envelope.user = to;
  if (room !== undefined) envelope.room = room;
  if (except !== undefined) envelope.except = except;
  return envelope;
}

/** Local delivery: the one path every push takes after the broker. */
export class FanOut<Local extends Endpoint, Remote extends Endpoint> {
  #registry: ConnectionRegistry<Local, Remote>;
  #onError: (
    connection: ServerConnection<Local, Remote>,
    error: unknown,
  ) => void;

  /**
   * @param registry The connections to deliver to.
   * @param onError Told of a send that failed for another reason than a
   * closed connection.
   */
  constructor(
    registry: ConnectionRegistry<Local, Remote>,
    onError: (
      connection: ServerConnection<Local, Remote>,
      error: unknown,
    ) => void,
  ) {
    this.#registry = registry;
    this.#onError = onError;
  }

  /** Sends an envelope to its local audience. */
  deliver(envelope: LocalPush): void {
    const { user, room, except, data, extended, protocol } = envelope;
    const registry = this.#registry;
    if (user !== undefined) {
      if (user === except) return;
      const own = registry.connectionsOf(user);
      if (own !== undefined) this.#sendAll(own, data, extended, protocol);
      return;
    }
    if (room !== undefined) {
      const members = registry.roomMembers(room);
      if (members === undefined) return;
      for (const member of members) {
        if (member === except) continue;
        const own = registry.connectionsOf(member);
        if (own !== undefined) this.#sendAll(own, data, extended, protocol);
      }
      return;
    }
    for (const connection of registry.connections) {
      if (connection.user === except) continue;
      if (extended && !connection.extended) continue;
      this.#send(connection, data, protocol);
    }
  }

  #sendAll(
    connections: Iterable<ServerConnection<Local, Remote>>,
    data: string | Uint8Array<ArrayBuffer>,
    extended: boolean,
    protocol: string | undefined,
  ): void {
    for (const connection of connections) {
      if (extended && !connection.extended) continue;
      this.#send(connection, data, protocol);
    }
  }

  #send(
    connection: ServerConnection<Local, Remote>,
    data: string | Uint8Array<ArrayBuffer>,
    protocol: string | undefined,
  ): void {
    if (protocol !== undefined && connection.protocol !== protocol) {
      // Bytes its codec cannot carry: counted, not garbled.
      connection.peer.stats.dropped++;
      return;
    }
    try {
      connection.peer.sendNotification(data);
    } catch (error) {
      // A receiver that closed since it was listed is skipped.
      if (!(error instanceof ConnectionClosedError)) {
        this.#onError(connection, error);
      }
    }
  }
}
