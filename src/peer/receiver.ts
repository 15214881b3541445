/**
 * The receiving side every endpoint shares: the {@linkcode Registry} of
 * request handlers and notification listeners, and {@linkcode Receiver},
 * the base of the peer, the client and the server that registers into it.
 *
 * @module
 */

import { TypedEventTarget } from "./typed_event_target.ts";
import type { Middleware } from "./middleware.ts";
import type {
  AnyResult,
  Endpoint,
  NotificationMethod,
  ParamsOf,
  PayloadOf,
  RequestMethod,
  ResultOf,
} from "./endpoint.ts";
import type { NotificationListener, RequestHandler } from "./handler.ts";
import type { NotifyFrame } from "../wire/protocol.ts";

/**
 * Request handlers and notification listeners, by method. A registry can be
 * shared by many peers.
 *
 * @example Usage
 * ```ts
 * import { Registry } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const registry = new Registry();
 * registry.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 * assert.ok(registry.handlers.has("sum"));
 * ```
 */
export class Registry {
  /**
   * Request handlers by method; `undefined` holds the default handler, for
   * requests without a method (the original protocol).
   */
  readonly handlers: Map<string | undefined, RequestHandler<never, unknown>> =
    new Map();
  /**
   * Notification listeners by method; `""` holds those of notifications
   * without a method, `undefined` those of every notification.
   */
  readonly listeners: Map<
    string | undefined,
    Set<NotificationListener<never>>
  > = new Map();

  /**
   * Middleware run around every incoming request and notification, in
   * order (see {@linkcode Registry.use}).
   */
  readonly middleware: Middleware[] = [];

  /**
   * Adds a middleware, run after those added before it, around every
   * incoming request and notification of every peer using this registry.
   *
   * @param middleware The middleware.
   * @returns A function that removes it.
   */
  use(middleware: Middleware): () => void {
    const chain = this.middleware;
    chain.push(middleware);
    return () => {
      const index = chain.indexOf(middleware);
      if (index >= 0) chain.splice(index, 1);
    };
  }

  /**
   * Sets the handler of `method`, replacing any previous one.
   *
   * @param method The method name; `undefined` for the default handler.
   * @param handler The handler.
   * @returns A function that removes the handler (if still the current one).
   */
  handle<P, R>(
    method: string | undefined,
    handler: RequestHandler<P, R>,
  ): () => void {
    const handlers = this.handlers;
    handlers.set(method, handler as RequestHandler<never, unknown>);
    return () => {
      if (handlers.get(method) === handler) handlers.delete(method);
    };
  }

  /**
   * Adds a listener for notifications of `method` (`""`: those without a
   * method; `undefined`: every notification, whatever its method).
   *
   * @param method The method name.
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  on<T>(
    method: string | undefined,
    listener: NotificationListener<T>,
  ): () => void {
    const listeners = this.listeners;
    let set = listeners.get(method);
    if (!set) listeners.set(method, set = new Set());
    set.add(listener as NotificationListener<never>);
    return () => {
      set.delete(listener as NotificationListener<never>);
    };
  }
}

/**
 * What the peer, the client and the server have in common: a
 * {@linkcode Registry} (possibly shared) and the typed methods that register
 * request handlers and notification listeners into it, plus the events of
 * `EventMap`.
 *
 * @typeParam Local What this side answers and receives.
 * @typeParam EventMap Event name → event type.
 *
 * @example Register on any receiver
 * ```ts
 * import { type AnyEndpoint, Receiver } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * function greet(receiver: Receiver<AnyEndpoint, object>): void {
 *   receiver.handle("hello", (name: string) => `hello ${name}`);
 * }
 * const receiver = new Receiver<AnyEndpoint, object>();
 * greet(receiver);
 * assert.ok(receiver.registry.handlers.has("hello"));
 * ```
 */
export class Receiver<Local extends Endpoint, EventMap>
  extends TypedEventTarget<EventMap> {
  /** Handlers and listeners; possibly shared with other receivers. */
  readonly registry: Registry;

  /**
   * Creates a receiver over `registry`.
   *
   * @param registry The registry to register into.
   */
  constructor(registry: Registry = new Registry()) {
    super();
    this.registry = registry;
  }

  /**
   * Sets the handler of request method `method`, replacing any previous one.
   *
   * @typeParam M The method name.
   * @typeParam P The params type: the endpoint's, or for an untyped endpoint
   * whatever the handler declares.
   * @typeParam R The result type: the endpoint's (literal results such as
   * `"ok"` are kept, no `as const` needed).
   * @param method The method name.
   * @param handler The handler.
   * @returns A function that removes the handler.
   */
  handle<
    M extends RequestMethod<Local>,
    P extends ParamsOf<Local, M> = ParamsOf<Local, M>,
    R extends ResultOf<Local, M> & AnyResult = ResultOf<Local, M> & AnyResult,
  >(
    method: M,
    handler: RequestHandler<P, R>,
  ): () => void {
    return this.registry.handle(method, handler);
  }

  /**
   * Adds a middleware around every incoming request and notification (see
   * `Middleware`): for authorization, timing, logging.
   *
   * @param middleware The middleware.
   * @returns A function that removes it.
   */
  use(middleware: Middleware): () => void {
    return this.registry.use(middleware);
  }

  /**
   * Sets the handler of requests without a method (the original protocol).
   *
   * @param handler The handler.
   * @returns A function that removes the handler.
   */
  onRequest(handler: RequestHandler<unknown, unknown>): () => void {
    return this.registry.handle(undefined, handler);
  }

  /**
   * Adds a listener for notifications of `method`.
   *
   * @typeParam M The method name.
   * @typeParam P The payload type: the endpoint's, or for an untyped
   * endpoint whatever the listener declares.
   * @param method The method name.
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  on<
    M extends NotificationMethod<Local>,
    P extends PayloadOf<Local, M> = PayloadOf<Local, M>,
  >(
    method: M,
    listener: NotificationListener<P>,
  ): () => void {
    return this.registry.on(method, listener);
  }

  /**
   * Adds a listener for notifications without a method (the original
   * protocol's chat messages).
   *
   * @param listener The listener.
   * @returns A function that removes the listener.
   */
  onNotify(listener: NotificationListener<unknown>): () => void {
    return this.registry.on("", listener);
  }
}

const NONE: unknown[] = [];

/** Calls each listener of `set`; adds what they threw to `failed`. */
function deliverTo(
  set: Set<NotificationListener<never>> | undefined,
  frame: NotifyFrame,
  failed: unknown[],
): unknown[] {
  // No iterator when nobody listens (the common case of `undefined`).
  if (!set?.size) return failed;
  for (const listener of set) {
    try {
      (listener as NotificationListener<unknown>)(frame.message, frame);
    } catch (error) {
      failed = failed === NONE ? [error] : [...failed, error];
    }
  }
  return failed;
}

/**
 * Calls the listeners of a notification's method, then those of every
 * notification; one that throws does not stop the others. Internal: the
 * peer's dispatch.
 *
 * @param listeners The registry's listeners.
 * @param frame The notification.
 * @returns What listeners threw, in order.
 */
export function deliver(
  listeners: Registry["listeners"],
  frame: NotifyFrame,
): unknown[] {
  const failed = deliverTo(listeners.get(frame.method ?? ""), frame, NONE);
  return deliverTo(listeners.get(undefined), frame, failed);
}
