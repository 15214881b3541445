/**
 * The seam between "push this to that audience" and "write it to the local
 * sockets". Every notification the server pushes (to a user, a room,
 * everyone, everyone but one) is one {@linkcode Envelope} handed to a
 * {@linkcode Broker}; the broker hands it back to every server instance's
 * local delivery. The default {@linkcode LocalBroker} delivers in-process
 * and synchronously. A multi-instance broker (Redis, BroadcastChannel)
 * implements the same interface: the payload is encoded once, before it
 * reaches the broker, so it crosses the network as is.
 *
 * Internal for now: not exported from `server.ts`.
 *
 * @module
 */

/** One push: an encoded notify frame and the audience it is for. */
export interface Envelope {
  /** The encoded notify frame, sent as is to every receiver. */
  data: string;
  /** Only `duplex.v1` connections receive it (it has a `method`). */
  extended: boolean;
  /** One user (all of that user's connections). */
  user?: string;
  /** The members of a room, or of several (each member once). */
  room?: string | string[];
  /** A user (or users) none of whose connections receive it. */
  except?: string | string[];
}

/**
 * Whether `user` is in `names` (one name or a list): the `except` test of
 * a push.
 *
 * @param names A name, a list of names, or none.
 * @param user The user.
 * @returns `true` when listed.
 */
export function listed(
  names: string | readonly string[] | undefined,
  user: string,
): boolean {
  return names === user || (Array.isArray(names) && names.includes(user));
}

/** Receives envelopes for local delivery. */
export type Deliver = (envelope: Envelope) => void;

/** Carries envelopes from the instance that pushes to every instance. */
export interface Broker {
  /**
   * Sends an envelope to every instance, this one included.
   *
   * @param envelope The push.
   */
  publish(envelope: Envelope): void;
  /**
   * Sets the local delivery of this instance.
   *
   * @param deliver Called once per envelope.
   */
  subscribe(deliver: Deliver): void;
  /** Stops delivering; idempotent. */
  close(): void;
}

/** The single-instance broker: delivers at once, in-process. */
export class LocalBroker implements Broker {
  #deliver: Deliver | undefined = undefined;

  /**
   * Delivers the envelope to the local subscriber, synchronously.
   *
   * @param envelope The push.
   */
  publish(envelope: Envelope): void {
    this.#deliver?.(envelope);
  }

  /**
   * Sets the local delivery.
   *
   * @param deliver Called once per envelope.
   */
  subscribe(deliver: Deliver): void {
    this.#deliver = deliver;
  }

  /** Stops delivering. */
  close(): void {
    this.#deliver = undefined;
  }
}
