/**
 * Pushes of a {@linkcode DuplexServer}: who a notification goes to, its
 * encoding (once for every receiver), and the fan-out to the local
 * connections of a user, a room or everyone.
 *
 * @module
 */

import { type Envelope, listed } from "../cluster/broker.ts";
import type { Endpoint } from "../peer/peer.ts";
import { type Codec, jsonCodec } from "../wire/codec.ts";
import { ConnectionClosedError } from "../wire/errors.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import type { ServerConnection } from "./connection.ts";
import type { ConnectionRegistry, Own } from "./connection_registry.ts";

/**
 * Who a push goes to: one user (`to`), the members of a room (`room`), or
 * everyone (neither); in each case minus every connection of `except`.
 *
 * @example Usage
 * ```ts
 * import type { PushOptions } from "@duplex/ws/server";
 *
 * const toRoom: PushOptions = { room: "lobby", except: "alice" };
 * const toSome: PushOptions = { to: ["alice", "bob"] };
 * const toRooms: PushOptions = { room: ["lobby", "staff"], except: ["carol", "dave"] };
 * ```
 */
export interface PushOptions {
  /**
   * The user (all of that user's connections), or users, to push to.
   *
   * @default {undefined}
   */
  to?: string | readonly string[];
  /**
   * The room, or rooms, to push to (a member of several gets it once).
   *
   * @default {undefined}
   */
  room?: string | readonly string[];
  /**
   * A user, or users, none of whose connections receive it.
   *
   * @default {undefined}
   */
  except?: string | readonly string[];
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
 * The envelope of a push: the notification encoded once (by `codec`, which
 * makes binary values bytes when it is the binary codec), and its audience.
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
  if (typeof to === "string") envelope.user = to;
  if (room !== undefined) envelope.room = single(room);
  if (except !== undefined) envelope.except = single(except);
  return envelope;
}

/** One name stays a string (the original envelope); a list is copied. */
function single(names: string | readonly string[]): string | string[] {
  if (typeof names === "string") return names;
  const unique = [...new Set(names)];
  return unique.length === 1 ? unique[0] : unique;
}

/** Local delivery: the one path every push takes after the broker. */
export class FanOut<Local extends Endpoint, Remote extends Endpoint> {
  #registry: ConnectionRegistry<Local, Remote>;
  #onError: (
    connection: ServerConnection<Local, Remote>,
    error: unknown,
  ) => void;
  #codec: Codec = jsonCodec;

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

  /** Encodes pushes: with a binary codec, binary values travel as bytes. */
  set codec(codec: Codec | undefined) {
    this.#codec = codec ?? jsonCodec;
  }

  /** Sends an envelope to its local audience. */
  deliver(envelope: LocalPush): void {
    const { user, room, except, data, extended, protocol } = envelope;
    const registry = this.#registry;
    if (user !== undefined) {
      if (listed(except, user)) return;
      const own = registry.own(user);
      if (own !== undefined) this.#sendOwn(own, data, extended, protocol);
      return;
    }
    if (room !== undefined) {
      // Several rooms: each member once.
      const members = typeof room === "string"
        ? registry.roomMembers(room)
        : new Set(
          room.flatMap((name) => [...registry.roomMembers(name) ?? []]),
        );
      if (members === undefined) return;
      for (const member of members) {
        if (listed(except, member)) continue;
        const own = registry.own(member);
        if (own !== undefined) this.#sendOwn(own, data, extended, protocol);
      }
      return;
    }
    for (const connection of registry.connections) {
      if (listed(except, connection.user)) continue;
      if (extended && !connection.extended) continue;
      this.#send(connection, data, protocol);
    }
  }

  /**
   * Encodes a push once and hands its envelope to `route`: one envelope, or
   * one per user when `to` lists several. When nothing spans instances
   * (`spans` false) and nobody here could receive it, nothing is encoded.
   *
   * Binary data (see {@linkcode LocalPush}) is delivered here directly.
   *
   * @throws {TypeError} When both `to` and `room` are given, or binary data
   * would have to cross instances (the broker carries text).
   */
  push(
    message: unknown,
    options: NotifyOptions,
    spans: boolean,
    route: (envelope: Envelope, local: boolean) => void,
  ): void {
    const { to, room, except } = options;
    if (to !== undefined && room !== undefined) {
      throw new TypeError(
        "Cannot push notification: give either to or room, not both",
      );
    }
    const registry = this.#registry;
    if (typeof to !== "object") {
      // Nobody here could receive it and nothing spans instances: skip the
      // encoding (the chat relay of a lone user, on every request).
      if (spans || registry.hasAudience(to, room, except)) {
        const envelope = pushEnvelope(message, options, this.#codec);
        this.#route(envelope, spans, route, options.local === true);
      }
      return;
    }
    const audience = [...new Set(to)].filter((user) =>
      spans || registry.hasAudience(user, room, except)
    );
    if (!audience.length) return;
    const envelope = pushEnvelope(
      message,
      { ...options, to: undefined },
      this.#codec,
    );
    for (const user of audience) {
      this.#route({ ...envelope, user }, spans, route, options.local === true);
    }
  }

  #route(
    envelope: LocalPush,
    spans: boolean,
    route: (envelope: Envelope, local: boolean) => void,
    local: boolean,
  ): void {
    if (typeof envelope.data === "string") route(envelope as Envelope, local);
    else if (spans) {
      throw new TypeError(
        "Cannot push binary data through the cluster: its broker carries text",
      );
    } else this.deliver(envelope);
  }

  #sendOwn(
    own: Own<Local, Remote>,
    data: string | Uint8Array<ArrayBuffer>,
    extended: boolean,
    protocol: string | undefined,
  ): void {
    if (!(own instanceof Set)) {
      if (!extended || own.extended) this.#send(own, data, protocol);
      return;
    }
    for (const connection of own) {
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
