/**
 * The events a {@linkcode DuplexServer} dispatches.
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import type { Connection } from "./connection.ts";
import type { ServerMetrics } from "./metrics.ts";
import type { ServerLogger } from "./server_options.ts";
import type { ExpireDetail, ResumeDetail } from "./session_options.ts";

/**
 * The detail of a `disconnect` event.
 *
 * @example Usage
 * ```ts
 * import type { DisconnectDetail } from "@duplex/ws/server";
 *
 * const line = (detail: DisconnectDetail) =>
 *   `${detail.connection.user} left with ${detail.code}`;
 * ```
 */
export interface DisconnectDetail {
  /** The connection that closed. */
  readonly connection: Connection<Endpoint, Endpoint>;
  /** The close code. */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
}

/**
 * The events of a {@linkcode DuplexServer}.
 *
 * @example Usage
 * ```ts
 * import type { DuplexServerEventMap } from "@duplex/ws/server";
 *
 * const onOnline = (event: DuplexServerEventMap["online"]) => console.log(event.detail.user);
 * ```
 */
export interface DuplexServerEventMap {
  /** A connection opened. */
  connect: CustomEvent<Connection<Endpoint, Endpoint>>;
  /** A connection closed. */
  disconnect: CustomEvent<DisconnectDetail>;
  /** A user's first connection opened. */
  online: CustomEvent<{ user: string }>;
  /** A user's last connection closed. */
  offline: CustomEvent<{ user: string }>;
  /**
   * A client resumed its session on a new connection (after its `connect`):
   * it got the frames it missed; its rooms and presence never changed.
   */
  resume: CustomEvent<ResumeDetail>;
  /**
   * A session ended without a deliberate close: its client stayed away
   * longer than the grace period, or its buffer overflowed while away.
   */
  expire: CustomEvent<ExpireDetail>;
  /** A handler or listener threw an unexpected error. */
  error: ErrorEvent;
}

/**
 * A connection's socket closed: counted by close code, logged, and told as
 * `disconnect` (internal: the server and its sessions).
 */
export function dispatchDisconnect(
  server: {
    metrics: ServerMetrics;
    logger: ServerLogger | undefined;
    events: EventTarget;
  },
  connection: Connection<Endpoint, Endpoint>,
  code: number,
  reason: string,
): void {
  server.metrics.countClose(code);
  server.logger?.info(
    `disconnect user=${
      JSON.stringify(connection.user)
    } id=${connection.id} code=${code} reason=${JSON.stringify(reason)}`,
  );
  server.events.dispatchEvent(
    new CustomEvent("disconnect", { detail: { connection, code, reason } }),
  );
}

/** Dispatches a `CustomEvent` of `type` with `detail`. */
export type Emit = (type: string, detail: unknown) => void;

/**
 * Dispatches a `CustomEvent` of `type` with `detail` on `target` (the
 * server), but makes none while no listener was ever added for `type`: an
 * idle connection's handshake then leaves no event objects behind. It
 * records the types through `target`'s own `addEventListener`, wrapped
 * here once (not enumerable); removing listeners is not tracked.
 *
 * @param target The event target.
 * @returns `emit(type, detail)`.
 */
export function listenedEvents(target: EventTarget): Emit {
  const listened = new Set<string>();
  const add = target.addEventListener;
  Object.defineProperty(target, "addEventListener", {
    configurable: true,
    writable: true,
    value: function (
      this: EventTarget,
      type: string,
      listener: EventListenerOrEventListenerObject | null,
      options?: boolean | AddEventListenerOptions,
    ): void {
      listened.add(type);
      add.call(this, type, listener, options);
    },
  });
  return (type, detail) => {
    if (listened.has(type)) {
      target.dispatchEvent(new CustomEvent(type, { detail }));
    }
  };
}
