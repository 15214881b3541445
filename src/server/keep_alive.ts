/**
 * Application-level pings to quiet `duplex.v1` connections, so that Deno's
 * idle timer never has to ping them (see docs/server.md, "`idleTimeout` and
 * Deno's pings").
 *
 * Deno pings a socket that has read nothing for `idleTimeout / 2` seconds
 * and closes it when no pong follows. Its timer can also close a socket
 * whose pong came: when the pong is read while the ping is still being
 * written, the write's end arms the closing timer after the read re-armed
 * the idle one, and nothing clears it. Thousands of quiet sockets lose a few
 * live ones that way (`bench/idle_timeout_race.ts`). A socket that reads a
 * frame more often than every `idleTimeout / 2` is never pinged by Deno, so
 * the server asks its `duplex.v1` clients for that frame itself: a type-5
 * ping, which every `duplex.v1` peer answers with a pong (PROTOCOL.md).
 * Original-protocol clients never see one; Deno's pings stay their liveness
 * check. A dead client answers neither, and Deno's timer, armed at its last
 * frame, closes it as before.
 *
 * One interval timer per server, running while connections are registered:
 * every `idleTimeout / 12` it reads each connection's received-frame counts
 * (kept by its peer anyway: nothing is added to the per-frame path) and
 * pings the connections that received nothing in three sweeps in a row
 * (256 pings per turn of the event loop, so that a crowd that fell quiet
 * together does not stall it).
 * A quiet connection is pinged at most `idleTimeout / 3` after its last
 * frame, so its pong has `idleTimeout / 6` (5 s at the default 30 s) to
 * come before Deno's ping would go out. A busy connection is never pinged.
 *
 * @module
 */

import type { Endpoint } from "../peer/peer.ts";
import type { ServerConnection } from "./connection.ts";

/** Sweeps per `idleTimeout`: a sweep every twelfth of it. */
const SWEEPS_PER_IDLE_TIMEOUT = 12;
/** Quiet sweeps in a row before a ping (then `idleTimeout / 3` passed). */
const QUIET_SWEEPS = 3;
/** Pings sent per turn of the event loop (about 3 ms of work). */
const PINGS_PER_TURN = 256;

/** What the keep-alive reads and keeps of a connection. */
interface KeptAlive {
  /** `true` for `duplex.v1` (and what implies it): pings are understood. */
  readonly extended: boolean;
  /** The peer: its received-frame counts, and `ping()`. */
  readonly peer: {
    readonly closed: boolean;
    readonly stats: { readonly framesIn: readonly number[] };
    ping(): void;
  };
  /** Frames received at the last sweep (-1 before the first). */
  heard: number;
  /** Sweeps in a row that found no new frame. */
  quiet: number;
}

/**
 * Pings the quiet `duplex.v1` connections of one server before Deno's idle
 * timer would.
 *
 * @example Usage
 * ```ts ignore
 * const keepAlive = new KeepAlive(30); // the server's idleTimeout
 * keepAlive.start(registry.connections); // a connection registered
 * keepAlive.stop(); // none left
 * ```
 */
export class KeepAlive<Local extends Endpoint, Remote extends Endpoint> {
  readonly #period: number;
  #connections: ReadonlySet<ServerConnection<Local, Remote>> = new Set();
  #timer: ReturnType<typeof setInterval> | undefined = undefined;
  /** Peers to ping, in order, and how many were pinged. */
  #due: KeptAlive["peer"][] = [];
  #pinged = 0;
  #chunk: ReturnType<typeof setTimeout> | undefined = undefined;

  /**
   * @param idleTimeout The server's `idleTimeout` in seconds; 0 disables
   * the keep-alive, as it disables Deno's pings.
   */
  constructor(idleTimeout: number) {
    this.#period = idleTimeout > 0
      ? idleTimeout * 1000 / SWEEPS_PER_IDLE_TIMEOUT
      : 0;
  }

  /**
   * Starts sweeping, unless it already does (a connection registered).
   *
   * @param connections The server's registered connections, read at each
   * sweep.
   */
  start(connections: ReadonlySet<ServerConnection<Local, Remote>>): void {
    if (this.#timer !== undefined || this.#period === 0) return;
    this.#connections = connections;
    this.#timer = setInterval(this.#sweep, this.#period);
  }

  /** Stops sweeping (no connection left); `start` resumes it. */
  stop(): void {
    clearInterval(this.#timer);
    clearTimeout(this.#chunk);
    this.#timer = this.#chunk = undefined;
    this.#due = [];
    this.#pinged = 0;
  }

  /**
   * Reads every connection's counts at once (cheap), but sends the pings
   * `PINGS_PER_TURN` at a time, a macrotask apart: connections opened
   * together fall quiet together, and 100,000 pings in one turn would
   * stall the event loop for a second.
   */
  readonly #sweep = (): void => {
    for (const connection of this.#connections) {
      if (isQuiet(connection)) this.#due.push(connection.peer);
    }
    if (this.#chunk === undefined && this.#pinged < this.#due.length) {
      this.#ping();
    }
  };

  readonly #ping = (): void => {
    const due = this.#due;
    const end = Math.min(this.#pinged + PINGS_PER_TURN, due.length);
    for (; this.#pinged < end; this.#pinged++) ping(due[this.#pinged]);
    if (end < due.length) {
      this.#chunk = setTimeout(this.#ping, 0);
      return;
    }
    this.#chunk = undefined;
    this.#due = [];
    this.#pinged = 0;
  };
}

/**
 * One connection's turn in a sweep.
 *
 * @returns `true` when it is due a ping: quiet for `QUIET_SWEEPS` sweeps.
 */
function isQuiet(connection: KeptAlive): boolean {
  const { peer } = connection;
  if (!connection.extended || peer.closed) return false;
  const counts = peer.stats.framesIn;
  let heard = 0;
  for (let type = 0; type < counts.length; type++) heard += counts[type];
  if (heard !== connection.heard) {
    connection.heard = heard;
    connection.quiet = 0;
    return false;
  }
  if (++connection.quiet < QUIET_SWEEPS) return false;
  connection.quiet = 0;
  return true;
}

function ping(peer: KeptAlive["peer"]): void {
  if (peer.closed) return;
  try {
    peer.ping();
  } catch {
    // Closing: Deno's timer or the close itself ends it.
  }
}
