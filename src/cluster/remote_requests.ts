/**
 * Cross-instance requests: a request to a user connected to another
 * instance travels as a `req` envelope to that instance's channel, which
 * asks its local user and answers with `res`; a timeout or abort on the
 * asking side sends `cancel`. {@linkcode RemoteRequests} holds both sides:
 * the requests this instance asked (with their timeouts, in a
 * `RequestTracker`) and the ones it serves for others.
 *
 * Internal: the `Cluster` drives it.
 *
 * @module
 */

import {
  ConnectionClosedError,
  DuplexError,
  RemoteError,
  RequestTimeoutError,
  TooManyPendingError,
} from "../wire/errors.ts";
import type { ErrorPayload } from "../wire/protocol.ts";
import { RequestTracker } from "../peer/request_tracker.ts";
import { NotConnectedError } from "./not_connected_error.ts";
import type { ClusterStats } from "./cluster_options.ts";
import {
  describe,
  type Envelope,
  isErrorPayload,
  isId,
  optionalString,
} from "./envelope.ts";
import type { BrokerLink } from "./broker_link.ts";
import { BrokerOutcomeUnknownError } from "./pubsub.ts";
import type { LocalNode, UserRequestOptions } from "./local_node.ts";

/** Options of {@linkcode RemoteRequests}. */
export interface RemoteRequestsOptions {
  /** Default timeout of a request; 0 disables it. */
  timeout: number;
  /** The most requests pending at once. */
  maxPending: number;
  /** The most requests pending at once for one `from`. */
  maxPendingPerAsker: number;
}

/** The requests this instance asked of others and serves for others. */
export class RemoteRequests {
  #out: BrokerLink;
  #stats: ClusterStats;
  #timeout: number;
  #maxPerAsker: number;
  #perAsker = new Map<string, number>();
  #tracker: RequestTracker;
  #outgoing = new Map<
    number,
    { instance: string; user: string; timeout: number }
  >();
  #serving = new Map<string, AbortController>();

  /**
   * Creates the two empty sides.
   *
   * @param out Where envelopes are sent.
   * @param stats The cluster's counters (`requestsSent`, `requestsServed`).
   * @param options Timeout and quota.
   */
  constructor(
    out: BrokerLink,
    stats: ClusterStats,
    options: RemoteRequestsOptions,
  ) {
    this.#out = out;
    this.#stats = stats;
    this.#timeout = options.timeout;
    this.#maxPerAsker = options.maxPendingPerAsker;
    this.#tracker = new RequestTracker({
      timeout: options.timeout,
      maxPending: options.maxPending,
      onAbandon: (sequence) => this.#abandon(sequence),
    });
  }

  /**
   * Asks a user connected to another instance.
   *
   * @param instance The instance that announced the user.
   * @param user The user.
   * @param message The payload.
   * @param options `method`, `from`, `timeout` and `signal`.
   * @returns The response payload.
   */
  ask<R>(
    instance: string,
    user: string,
    message: unknown,
    options: UserRequestOptions,
  ): Promise<R> {
    const { signal, from } = options;
    const timeout = options.timeout ?? this.#timeout;
    const asking = from === undefined ? 0 : this.#perAsker.get(from) ?? 0;
    if (asking >= this.#maxPerAsker) {
      return Promise.reject(new TooManyPendingError(this.#maxPerAsker));
    }
    let pending;
    try {
      pending = this.#tracker.track<R>({ timeout, signal });
    } catch (error) {
      return Promise.reject(error);
    }
    const { sequence, promise } = pending;
    this.#outgoing.set(sequence, { instance, user, timeout });
    const envelope: Envelope = {
      kind: "req",
      id: sequence,
      user,
      message,
      timeout,
    };
    // The asker gives up then: a request that arrives later is not run.
    if (timeout > 0) envelope.deadline = Date.now() + timeout;
    if (options.method !== undefined) envelope.method = options.method;
    if (from !== undefined) envelope.from = from;
    let text: string;
    try {
      text = this.#out.encode(envelope);
    } catch (error) {
      this.#outgoing.delete(sequence);
      this.#tracker.reject(
        sequence,
        new TypeError(`Cannot send request: ${describe(error)}`),
      );
      return promise;
    }
    this.#stats.requestsSent++;
    if (from !== undefined) this.#perAsker.set(from, asking + 1);
    const channel = this.#out.channelOf(instance);
    this.#out.send(channel, text, (error) => {
      if (!this.#outgoing.delete(sequence)) return;
      if (error instanceof BrokerOutcomeUnknownError) {
        // It may still arrive: ask that instance to drop it (best effort;
        // its deadline stops it anyway).
        this.#stats.outcomeUnknown++;
        if (this.#out.live()) {
          this.#out.send(
            channel,
            this.#out.encode({ kind: "cancel", id: sequence }),
          );
        }
      }
      this.#tracker.reject(sequence, error);
    });
    return promise.finally(() => {
      this.#outgoing.delete(sequence);
      if (from === undefined) return;
      const left = (this.#perAsker.get(from) ?? 1) - 1;
      if (left > 0) this.#perAsker.set(from, left);
      else this.#perAsker.delete(from);
    });
  }

  /**
   * Serves a `req` envelope from another instance.
   *
   * @param envelope The envelope.
   * @param node The asking instance.
   * @param localNode The local node when the user is connected here.
   * @returns `false` when the envelope is malformed.
   */
  serve(
    envelope: Envelope,
    node: string,
    localNode: LocalNode | undefined,
  ): boolean {
    const { id, user, message, method, from, timeout, deadline } = envelope;
    if (
      !isId(id) || typeof user !== "string" || !optionalString(method) ||
      !optionalString(from) ||
      !(typeof timeout === "number" && timeout >= 0) ||
      !(deadline === undefined || Number.isFinite(deadline))
    ) {
      return false;
    }
    let localTimeout = timeout;
    if (deadline !== undefined) {
      const left = (deadline as number) - Date.now();
      if (left <= 0) {
        // The asker has given up: running it now would be a surprise.
        this.#stats.late++;
        return true;
      }
      localTimeout = timeout === 0
        ? Math.ceil(left)
        : Math.min(timeout, Math.ceil(left));
    }
    const channel = this.#out.channelOf(node);
    const respond = (reply: Envelope) => {
      if (this.#out.closed()) return;
      this.#out.send(channel, this.#out.encode({ kind: "res", id, ...reply }));
    };
    if (localNode === undefined) {
      respond({
        error: {
          code: "NOT_CONNECTED",
          message:
            new NotConnectedError(user, `not on instance ${this.#out.id}`)
              .message,
        },
      });
      return true;
    }
    const key = `${node}\n${id}`;
    const controller = new AbortController();
    this.#serving.set(key, controller);
    this.#stats.requestsServed++;
    const options: UserRequestOptions = {
      timeout: localTimeout,
      signal: controller.signal,
    };
    if (method !== undefined) options.method = method;
    if (from !== undefined) options.from = from;
    let answer: Promise<unknown>;
    try {
      answer = Promise.resolve(localNode.request(user, message, options));
    } catch (error) {
      answer = Promise.reject(error);
    }
    answer.then(
      (result) => {
        if (this.#serving.get(key) !== controller) return;
        this.#serving.delete(key);
        respond({ message: result });
      },
      (error: unknown) => {
        if (this.#serving.get(key) !== controller) return; // Cancelled.
        this.#serving.delete(key);
        respond({ error: this.#toPayload(error) });
      },
    );
    return true;
  }

  /**
   * Settles an asked request with a `res` envelope.
   *
   * @param envelope The envelope.
   * @param node The answering instance.
   * @returns `false` when the envelope is malformed.
   */
  settle(envelope: Envelope, node: string): boolean {
    const { id, error } = envelope;
    if (!isId(id) || (error !== undefined && !isErrorPayload(error))) {
      return false;
    }
    const target = this.#outgoing.get(id);
    if (target === undefined || target.instance !== node) return true; // Late.
    this.#outgoing.delete(id);
    if (error === undefined) {
      this.#tracker.resolve(id, envelope.message);
    } else if (error.code === "NOT_CONNECTED") {
      this.#tracker.reject(id, new NotConnectedError(target.user));
    } else if (error.code === "REQUEST_TIMEOUT") {
      this.#tracker.reject(id, new RequestTimeoutError(id, target.timeout));
    } else {
      this.#tracker.reject(id, new RemoteError(error));
    }
    return true;
  }

  /**
   * Cancels a served request with a `cancel` envelope.
   *
   * @param envelope The envelope.
   * @param node The asking instance.
   * @returns `false` when the envelope is malformed.
   */
  cancel(envelope: Envelope, node: string): boolean {
    if (!isId(envelope.id)) return false;
    this.#serving.get(`${node}\n${envelope.id}`)?.abort(
      new DuplexError("CANCELLED", "Cannot complete request: cancelled"),
    );
    return true;
  }

  /**
   * An instance left: rejects what was asked of it and cancels what is
   * served for it.
   *
   * @param node The instance.
   */
  forget(node: string): void {
    for (const [sequence, target] of this.#outgoing) {
      if (target.instance !== node) continue;
      this.#outgoing.delete(sequence);
      this.#tracker.reject(
        sequence,
        new NotConnectedError(target.user, `instance ${node} left`),
      );
    }
    const prefix = `${node}\n`;
    for (const [key, controller] of this.#serving) {
      if (!key.startsWith(prefix)) continue;
      this.#serving.delete(key);
      controller.abort(new ConnectionClosedError(1006, "requester left"));
    }
  }

  /** Rejects every asked request and cancels every served one. */
  close(): void {
    this.#tracker.rejectAll(new ConnectionClosedError(1001, "cluster closed"));
    this.#outgoing.clear();
    for (const controller of this.#serving.values()) {
      controller.abort(new ConnectionClosedError(1001, "cluster closed"));
    }
    this.#serving.clear();
  }

  #toPayload(error: unknown): ErrorPayload {
    if (error instanceof RemoteError && error.data !== undefined) {
      return { code: error.code, message: error.message, data: error.data };
    }
    if (error instanceof DuplexError) {
      return { code: error.code, message: error.message };
    }
    this.#out.report("request to a local user failed", error);
    return {
      code: "INTERNAL_ERROR",
      message: "Cannot complete request: internal error",
    };
  }

  /** The tracker gave up on a request (timeout or abort): cancel it there. */
  #abandon(sequence: number): void {
    const target = this.#outgoing.get(sequence);
    if (target === undefined) return;
    this.#outgoing.delete(sequence);
    if (this.#out.live()) {
      this.#out.send(
        this.#out.channelOf(target.instance),
        this.#out.encode({ kind: "cancel", id: sequence }),
      );
    }
  }
}
