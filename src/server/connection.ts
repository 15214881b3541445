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
import { streams } from "../peer/stream_support.ts";
import { timeoutLists } from "../peer/timeout_lists.ts";
import { ProtocolError } from "../wire/errors.ts";
import type { Codec } from "../wire/codec.ts";
import { SUBPROTOCOL } from "../wire/protocol.ts";
import type { BudgetedSocket, SendBudget } from "./send_budget.ts";
import { type Coalescer, CoalescingSocket } from "./coalescing_socket.ts";
import { serverJsonCodec } from "./server_codec.ts";
import type { PeerOptions } from "./server_options.ts";
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

/** What {@linkcode acceptConnection} needs of the server. */
export interface AcceptOptions<
  Local extends Endpoint,
  Remote extends Endpoint,
> {
  id: number;
  peerOptions: PeerOptions;
  registry: Registry;
  budget: SendBudget;
  onClose: (
    connection: ServerConnection<Local, Remote>,
    code: number,
    reason: string,
  ) => void;
  onError: (user: string, error: unknown) => void;
}

/**
 * The connection of an upgraded socket: its peer with the per-connection
 * limits, writing through the send budget.
 */
export function acceptConnection<
  Local extends Endpoint,
  Remote extends Endpoint,
>(
  upgraded: Upgraded,
  options: AcceptOptions<Local, Remote>,
): ServerConnection<Local, Remote> {
  const { socket, user, protocol, codec } = upgraded;
  // Assigned once, after the peer whose hooks need it.
  // deno-lint-ignore prefer-const
  let connection: ServerConnection<Local, Remote> | undefined;
  const budgeted = options.budget.wrap(socket, () => {
    connection?.peer.close(1013, "Too slow: send buffer full");
  });
  const out = coalesced(
    upgraded,
    budgeted,
    options.peerOptions.coalescer,
  );
  // A codec's protocol (duplex.v1.bin) is duplex.v1 to the peer.
  const peer = serverPeer<Local, Remote>(
    out,
    user,
    codec ? SUBPROTOCOL : protocol,
    {
      ...options,
      codec,
      onClose: (code, reason) => {
        if (connection !== undefined) options.onClose(connection, code, reason);
      },
    },
  );
  connection = new ServerConnection<Local, Remote>(
    options.id,
    user,
    protocol,
    upgraded.data,
    peer,
    socket,
    budgeted,
    upgraded.address,
    out,
  );
  // One listener object per connection, for both socket events. Deno does
  // not need an "error" listener: an abrupt drop is followed by "close".
  socket.addEventListener("close", connection, { once: true });
  socket.addEventListener("open", connection, { once: true });
  return connection;
}

/**
 * The peer of a connection or a session: the server's registry, the
 * per-connection limits, hooks rather than listeners.
 */
export function serverPeer<Local extends Endpoint, Remote extends Endpoint>(
  socket: SocketLike,
  user: string,
  protocol: string,
  options: {
    peerOptions: PeerOptions;
    registry: Registry;
    onClose: (code: number, reason: string) => void;
    onError: (user: string, error: unknown) => void;
    /** The codec the client chose, when not JSON. */
    codec?: Codec;
    /** The last request sequence an earlier instance of the session used. */
    usedSequences?: number;
  },
): Peer<Local, Remote> {
  const { peerOptions, codec } = options;
  return new Peer<Local, Remote>(socket, {
    // Deno's server sockets report no protocol: the closing frame needs it.
    protocol,
    identity: user,
    // The negotiated codec, else JSON with the response fast path and
    // results encoded once by their handler (users.list pages).
    codec: codec ?? serverJsonCodec,
    registry: options.registry,
    streams,
    timeouts: timeoutLists,
    maxMalformed: peerOptions.maxMalformed,
    timeout: peerOptions.timeout,
    // Sequences follow an earlier instance's (reaches PendingRequests).
    ...(options.usedSequences
      ? { sequences: { last: options.usedSequences } }
      : undefined),
    // Size, rate, in-flight and backpressure limits, per connection.
    guard: new PeerLimits(peerOptions),
    // Hooks rather than event listeners: cheaper per idle connection.
    onClose: options.onClose,
    onError: (error) => {
      // Malformed frames are counted in the metrics; only failures of our
      // own code are reported.
      if (error instanceof ProtocolError) return;
      options.onError(user, error);
    },
  });
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
  const budgeted = options.budget.wrap(socket, () => {
    peer.close(1013, "Too slow: send buffer full");
  });
  // Under the session: it numbers frames before they are batched.
  const out = coalesced(upgraded, budgeted, options.coalescer);
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
 * batches).
 */
function coalesced(
  upgraded: Upgraded,
  budgeted: BudgetedSocket,
  coalescer: Coalescer | undefined,
): SocketLike {
  return upgraded.batches && coalescer !== undefined
    ? new CoalescingSocket(budgeted, coalescer)
    : budgeted;
}
