/**
 * One open connection of a {@linkcode DuplexServer}: the public view
 * ({@linkcode Connection}) and the state only the server sees.
 *
 * @module
 */

import { PeerLimits } from "../peer/limits.ts";
import {
  type AnyEndpoint,
  type Endpoint,
  Peer,
  type SocketLike,
} from "../peer/peer.ts";
import type { Registry } from "../peer/receiver.ts";
import { timeoutLists } from "../peer/timeout_lists.ts";
import { ProtocolError } from "../wire/errors.ts";
import type { Codec } from "../wire/codec.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import type { BudgetedSocket, SendBudget } from "./send_budget.ts";
import { Coalescer, CoalescingSocket } from "./coalescing_socket.ts";
import { serverJsonCodec } from "./server_codec.ts";
import type { PeerOptions as ServerOptionsOfPeer } from "./server_options.ts";
import type { PeerOptions } from "../peer/peer_options.ts";
import type { StreamSupport } from "../peer/stream_support.ts";
import type { TimeoutsFactory } from "../peer/pending_requests.ts";
import type { Upgraded } from "./upgrade.ts";

/**
 * One open connection.
 *
 * @typeParam Local What the server answers and receives.
 * @typeParam Remote What the client answers and receives.
 *
 * @example Usage
 * ```ts
 * import type { Connection } from "@duplex/ws/server";
 *
 * const describe = (connection: Connection) =>
 *   `${connection.user}#${connection.id} (${connection.protocol || "original"})`;
 * ```
 */
export interface Connection<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
> {
  /** A number unique within this server. */
  readonly id: number;
  /** The user, as authenticated. */
  readonly user: string;
  /**
   * The negotiated subprotocol: `"duplex.v1"` or one that implies it (a
   * session's `"duplex.session"`, a codec's `"duplex.v1.bin"`, ...), or `""`
   * for the original protocol.
   */
  readonly protocol: string;
  /** The `data` the authenticate hook returned. */
  readonly data: unknown;
  /** The connection's peer: requests, notifications, stats. */
  readonly peer: Peer<Local, Remote>;
}

/** One connection's state, including what only the server sees. */
export class ServerConnection<Local extends Endpoint, Remote extends Endpoint>
  implements Connection<Local, Remote> {
  registered = false;
  socketIsClosed = false;
  /** The id of the session this socket carries, if any. */
  sessionId: string | undefined = undefined;
  /** The keep-alive's: frames received at its last sweep, quiet sweeps. */
  heard = -1;
  quiet = 0;
  #closed: PromiseWithResolvers<void> | undefined = undefined;
  readonly extended: boolean;
  constructor(
    readonly id: number,
    readonly user: string,
    readonly protocol: string,
    readonly data: unknown,
    readonly peer: Peer<Local, Remote>,
    readonly socket: WebSocket,
    readonly budgeted: BudgetedSocket,
    readonly address: string | undefined,
    /** What the peer (or the session) writes to: `budgeted`, or batches. */
    readonly out: SocketLike = budgeted,
  ) {
    // duplex.v1, or a codec's subprotocol (which implies it).
    this.extended = protocol !== "";
    // Handlers and middleware read it as `context.data`.
    peer.data = data;
  }

  /** Settles when the socket has closed; made only when someone waits. */
  get socketClosed(): Promise<void> {
    if (this.socketIsClosed) return Promise.resolve();
    return (this.#closed ??= Promise.withResolvers<void>()).promise;
  }

  /** The socket's close event (or "open", when the server registers it). */
  handleEvent(event: Event): void {
    if (event.type === "close") {
      this.socketIsClosed = true;
      this.#closed?.resolve();
      this.onSocketClosed?.(this);
    } else if (event.type === "open") {
      this.onOpen?.(this);
    }
  }

  onSocketClosed: ((connection: this) => void) | undefined = undefined;
  onOpen: ((connection: this) => void) | undefined = undefined;
}

/** What a server's peer reports, through {@linkcode ServerPeerOptions}. */
export interface ServerPeerHooks<
  Local extends Endpoint,
  Remote extends Endpoint,
> {
  /** The peer closed (before its connection existed: `undefined`). */
  onClose(
    connection: ServerConnection<Local, Remote> | undefined,
    code: number,
    reason: string,
  ): void;
  /** A handler or listener of `user` failed. */
  onHandlerError(user: string, error: unknown): void;
}

/**
 * What {@linkcode acceptConnection} needs of the server: one object for all
 * its connections, whose hooks they share.
 */
export interface AcceptOptions<
  Local extends Endpoint,
  Remote extends Endpoint,
> extends ServerPeerHooks<Local, Remote> {
  peerOptions: ServerOptionsOfPeer;
  registry: Registry;
  budget: SendBudget;
  /** The connection's socket closed. */
  onSocketClosed: (connection: ServerConnection<Local, Remote>) => void;
  /** The connection's socket opened. */
  onOpen: (connection: ServerConnection<Local, Remote>) => void;
}

/**
 * The connection of an upgraded socket: its peer with the per-connection
 * limits, writing through the send budget. Per connection it makes only
 * the objects it keeps, and no closure: the hooks are shared.
 */
export function acceptConnection<
  Local extends Endpoint,
  Remote extends Endpoint,
>(
  upgraded: Upgraded,
  id: number,
  options: AcceptOptions<Local, Remote>,
): ServerConnection<Local, Remote> {
  const { socket, user, protocol, codec } = upgraded;
  const budgeted = options.budget.wrap(socket);
  const out = coalesced(upgraded, budgeted, options.peerOptions.coalescer);
  // A codec's protocol (duplex.v1.bin) is duplex.v1 to the peer.
  const peerOptions = new ServerPeerOptions<Local, Remote>(
    user,
    codec ? SUBPROTOCOL : protocol,
    options,
    options,
    codec,
  );
  const peer = new Peer<Local, Remote>(out, peerOptions);
  bindPeer(budgeted, out, peer);
  const connection = new ServerConnection<Local, Remote>(
    id,
    user,
    protocol,
    upgraded.data,
    peer,
    socket,
    budgeted,
    upgraded.address,
    out,
  );
  peerOptions.connection = connection;
  connection.onSocketClosed = options.onSocketClosed;
  connection.onOpen = options.onOpen;
  // One listener object per connection, for both socket events. Deno does
  // not need an "error" listener: an abrupt drop is followed by "close".
  socket.addEventListener("close", connection, { once: true });
  socket.addEventListener("open", connection, { once: true });
  return connection;
}

/**
 * The options of a server's peer: the server's registry, the
 * per-connection limits, and hooks rather than listeners (cheaper per idle
 * connection), as methods of this one object (the peer calls them on it)
 * over hooks the server shares: no closures per connection.
 */
class ServerPeerOptions<Local extends Endpoint, Remote extends Endpoint>
  implements PeerOptions {
  /** Deno's server sockets report no protocol: the closing frame needs it. */
  readonly protocol: string;
  readonly identity: string;
  /**
   * The negotiated codec, else JSON with the response fast path and results
   * encoded once by their handler (users.list pages).
   */
  readonly codec: Codec;
  readonly registry: Registry;
  readonly streams: StreamSupport;
  readonly timeouts: TimeoutsFactory = timeoutLists;
  readonly maxMalformed: number;
  readonly timeout: number;
  /** Size, rate, in-flight and backpressure limits, per connection. */
  readonly guard: PeerLimits;
  /** Sequences follow an earlier instance's (reaches PendingRequests). */
  sequences?: { last: number };
  /** The connection, once it exists (an accepted socket's). */
  connection: ServerConnection<Local, Remote> | undefined = undefined;
  #hooks: ServerPeerHooks<Local, Remote>;

  constructor(
    user: string,
    protocol: string,
    server: { peerOptions: ServerOptionsOfPeer; registry: Registry },
    hooks: ServerPeerHooks<Local, Remote>,
    codec: Codec | undefined,
    usedSequences?: number,
  ) {
    this.protocol = protocol;
    this.identity = user;
    this.codec = codec ?? serverJsonCodec;
    this.registry = server.registry;
    this.maxMalformed = server.peerOptions.maxMalformed;
    this.streams = server.peerOptions.streams;
    this.timeout = server.peerOptions.timeout;
    if (usedSequences) this.sequences = { last: usedSequences };
    this.guard = limitsOf(server.peerOptions);
    this.#hooks = hooks;
  }

  onClose(code: number, reason: string): void {
    this.#hooks.onClose(this.connection, code, reason);
  }

  onError(error: unknown): void {
    // Malformed frames are counted in the metrics; only failures of our
    // own code are reported.
    if (error instanceof ProtocolError) return;
    this.#hooks.onHandlerError(this.identity, error);
  }
}

/** Per server: the limits its connections share when they keep no state. */
const sharedLimits = new WeakMap<ServerOptionsOfPeer, PeerLimits>();

/**
 * A connection's limits: its own when it has a rate limit to keep (its
 * token buckets and violations), else one object for every connection of
 * the server (the size, in-flight and backpressure checks keep nothing).
 */
function limitsOf(options: ServerOptionsOfPeer): PeerLimits {
  if (options.rateLimit !== undefined) return new PeerLimits(options);
  let limits = sharedLimits.get(options);
  if (limits === undefined) {
    sharedLimits.set(options, limits = new PeerLimits(options));
  }
  return limits;
}

/**
 * The peer of a session: {@linkcode ServerPeerOptions} over `hooks` (the
 * session itself: no closure per session).
 */
export function serverPeer<Local extends Endpoint, Remote extends Endpoint>(
  socket: SocketLike,
  user: string,
  protocol: string,
  options: {
    peerOptions: ServerOptionsOfPeer;
    registry: Registry;
    /** The codec the client chose, when not JSON. */
    codec?: Codec;
    /** The last request sequence an earlier instance of the session used. */
    usedSequences?: number;
  },
  hooks: ServerPeerHooks<Local, Remote>,
): Peer<Local, Remote> {
  return new Peer<Local, Remote>(
    socket,
    new ServerPeerOptions(
      user,
      protocol,
      options,
      hooks,
      options.codec,
      options.usedSequences,
    ),
  );
}

/**
 * The connection of a session's socket (open already): the session's peer,
 * the socket wrapped in the send budget (what the session writes to it).
 */
export function sessionConnection<
  Local extends Endpoint,
  Remote extends Endpoint,
>(
  upgraded: Upgraded,
  peer: Peer<Local, Remote>,
  options: { id: number; budget: SendBudget; coalescer: Coalescer | undefined },
): ServerConnection<Local, Remote> {
  const { socket } = upgraded;
  const budgeted = options.budget.wrap(socket);
  // Under the session: it numbers frames before they are batched.
  const out = coalesced(upgraded, budgeted, options.coalescer);
  bindPeer(budgeted, out, peer);
  const connection = new ServerConnection<Local, Remote>(
    options.id,
    upgraded.user,
    upgraded.protocol,
    upgraded.data,
    peer,
    socket,
    budgeted,
    upgraded.address,
    out,
  );
  socket.addEventListener("close", connection, { once: true });
  return connection;
}

/**
 * What a connection writes to: the budgeted socket, behind a coalescer when
 * the client reads batches (the budget then counts, and may refuse, whole
 * batches) or offered `duplex.nagle` (answered at the end of its bursts,
 * even with `coalesce: false`).
 */
function coalesced(
  upgraded: Upgraded,
  budgeted: BudgetedSocket,
  coalescer: Coalescer | undefined,
): SocketLike {
  const batches = upgraded.batches && coalescer !== undefined;
  const nagle = upgraded.nagle;
  return batches || nagle
    ? new CoalescingSocket(budgeted, coalescer ?? answers, { batches, nagle })
    : budgeted;
}

/**
 * Binds a connection's sockets to its peer: the budget closes the peer when
 * its send buffer stays full, and a coalescer's Nagle answers count as
 * pongs the peer sent.
 */
function bindPeer(
  budgeted: BudgetedSocket,
  out: SocketLike,
  peer: Peer<Endpoint, Endpoint>,
): void {
  budgeted.peer = peer;
  if (out instanceof CoalescingSocket) out.framesOut = peer.stats.framesOut;
}

/** Ends the bursts of `duplex.nagle` clients of servers that do not batch. */
const answers = new Coalescer();
