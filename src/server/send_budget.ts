/**
 * The send budget of a {@linkcode DuplexServer}: how many bytes a connection
 * may have waiting in its send buffer (every frame: responses, error
 * answers, pongs and notifications), and how many all connections together.
 * A connection beyond its budget, or holding more than its share when the
 * total is exceeded, is closed with 1013 instead of growing the server's
 * memory. Notifications meet the lower high-water mark first (see
 * `PeerLimits`); this is the bound on everything else.
 *
 * @module
 */

import type { SocketLike } from "../peer/peer.ts";
import { frameBytes } from "../wire/frame_bytes.ts";

/** The close code of a connection over its send budget. */
export const CLOSE_TOO_SLOW = 1013;
const OPEN = 1;
/**
 * Bytes a socket may be counted for (an upper bound) before a send reads
 * its buffer again: below it a send needs no read (an op call into the
 * runtime per frame that the raw echo does not pay), since neither budget
 * can be exceeded.
 */
const UNREAD = 16_384;

/** The budgets of one server, shared by its connections. */
export class SendBudget {
  #perConnection: number;
  #total: number;
  #sockets = new Set<BudgetedSocket>();
  /** Sum of `counted` over the sockets: an estimate that only errs high. */
  #estimate = 0;
  /** Connections closed for being over budget. */
  closed = 0;

  /**
   * @param perConnection Bytes one connection may have buffered.
   * @param total Bytes all connections may have buffered together.
   */
  constructor(perConnection = 16 * 1024 * 1024, total = 256 * 1024 * 1024) {
    this.#perConnection = perConnection;
    this.#total = total;
  }

  /** Bytes buffered by every connection now (exact, O(connections)). */
  buffered(): number {
    let sum = 0;
    for (const socket of this.#sockets) {
      socket.counted = socket.socket.bufferedAmount;
      sum += socket.counted;
    }
    return this.#estimate = sum;
  }

  /**
   * Wraps a socket so that every send is checked against the budgets.
   *
   * @param socket The upgraded socket.
   * @returns The wrapper; set its `peer`, closed with 1013 when over budget.
   */
  wrap(socket: WebSocket): BudgetedSocket {
    const wrapped = new BudgetedSocket(this, socket);
    this.#sockets.add(wrapped);
    return wrapped;
  }

  /** Forgets a socket that closed. */
  forget(socket: BudgetedSocket): void {
    if (this.#sockets.delete(socket)) this.#estimate -= socket.counted;
    socket.counted = 0;
  }

  /** Whether a connection with `buffered` bytes waiting may send more. */
  admit(socket: BudgetedSocket, buffered: number): boolean {
    if (buffered > this.#perConnection) return false;
    this.#estimate += buffered - socket.counted;
    socket.counted = buffered;
    if (this.#estimate <= this.#total) return true;
    // The estimate only errs high (drained sockets are counted until they
    // send again): recount before refusing anyone.
    const total = this.buffered();
    if (total <= this.#total) return true;
    // Over the total: the connections holding more than their share go.
    return buffered * this.#sockets.size <= total;
  }

  /**
   * Whether `socket` may send `bytes` more without reading its buffer: its
   * count (an upper bound) stays under {@linkcode UNREAD} and the
   * connection's budget, and the estimate under half the total, so that
   * {@linkcode admit} would say yes whatever the buffer holds. Counts them
   * when it may.
   */
  admitUnread(socket: BudgetedSocket, bytes: number): boolean {
    const counted = socket.counted + bytes;
    const estimate = this.#estimate + bytes;
    if (
      counted > UNREAD || counted > this.#perConnection ||
      estimate > this.#total / 2
    ) {
      return false;
    }
    socket.counted = counted;
    this.#estimate = estimate;
    return true;
  }

  /**
   * Records what a send added to a socket's buffer: `buffered`, an upper
   * bound (the buffer before the send plus the most the data can take), so
   * that the estimate still only errs high without reading the buffer again.
   */
  sent(socket: BudgetedSocket, buffered: number): void {
    this.#estimate += buffered - socket.counted;
    socket.counted = buffered;
  }
}

/**
 * A server socket whose sends respect the {@linkcode SendBudget}: the one
 * the connection's `Peer` writes to.
 */
export class BudgetedSocket implements SocketLike {
  /** Bytes of this socket in the budget's estimate. */
  counted = 0;
  readonly socket: WebSocket;
  /**
   * Closed with 1013 (once) when the connection must be closed: set once
   * the peer exists.
   */
  peer: { close(code: number, reason: string): void } | undefined = undefined;
  #budget: SendBudget;
  #over = false;

  /**
   * @param budget The server's budget.
   * @param socket The upgraded socket.
   */
  constructor(budget: SendBudget, socket: WebSocket) {
    this.#budget = budget;
    this.socket = socket;
  }

  /** The socket's state. */
  get readyState(): number {
    return this.socket.readyState;
  }

  /** Bytes queued and not yet written. */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  /** Sends when within budget; otherwise closes the connection (once). */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    const socket = this.socket;
    if (socket.readyState !== OPEN) return;
    // At most 3 UTF-8 bytes per UTF-16 unit.
    const bytes = typeof data === "string"
      ? data.length * 3
      : frameBytes.size(data);
    // Far from both budgets: no need to read the buffer.
    if (this.#budget.admitUnread(this, bytes)) {
      socket.send(data);
      return;
    }
    // Otherwise one read of the buffer (an op call into the runtime).
    const buffered = socket.bufferedAmount;
    if (!this.#budget.admit(this, buffered)) {
      if (!this.#over) {
        this.#over = true;
        this.#budget.closed++;
        this.peer?.close(1013, "Too slow: send buffer full");
      }
      return;
    }
    socket.send(data);
    this.#budget.sent(this, buffered + bytes);
  }

  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void {
    this.socket.close(code, reason);
  }

  /** Listens on the socket. */
  addEventListener(type: string, listener: EventListenerObject): void {
    this.socket.addEventListener(type, listener);
  }

  /** Stops listening on the socket. */
  removeEventListener(type: string, listener: EventListenerObject): void {
    this.socket.removeEventListener(type, listener);
  }
}
