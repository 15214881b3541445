/**
 * {@linkcode timeoutLists}: timeouts at O(1) per request whatever the number
 * pending, for a peer or tracker that may hold very many (the server's peers,
 * `RequestTracker`). Requests that share a timeout value sit in one doubly
 * linked ring ordered by deadline (appending keeps it ordered, unlinking is
 * O(1)), and a single timer follows the earliest deadline of the (few)
 * rings. A client, with a few pending requests, does without it (its one
 * timer sweeps them all when it fires) and ships less code.
 *
 * @module
 */

import type { TimedRequest, Timeouts } from "./pending_requests.ts";

/** The head of a ring: not a request. */
function ring(): TimedRequest {
  const head: TimedRequest = {
    sequence: 0,
    deadline: 0,
    prev: undefined!,
    next: undefined!,
    timer: undefined,
  };
  head.prev = head.next = head;
  return head;
}

/** The rings of requests by timeout value, and their one timer. */
class TimeoutLists implements Timeouts {
  /** Timeout value → head of the ring of requests with that timeout. */
  #lists = new Map<number, TimedRequest>();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = Infinity;
  /** Requests linked into a ring. */
  #count = 0;
  #expire: (request: TimedRequest, timeout: number) => void;

  constructor(expire: (request: TimedRequest, timeout: number) => void) {
    this.#expire = expire;
  }

  start(request: TimedRequest, timeout: number): void {
    let head = this.#lists.get(timeout);
    if (!head) this.#lists.set(timeout, head = ring());
    const deadline = request.deadline = Math.ceil(performance.now() + timeout);
    const last = head.prev;
    request.prev = last;
    request.next = head;
    last.next = head.prev = request;
    this.#count++;
    if (deadline < this.#timerAt) this.#schedule(deadline);
  }

  stop(request: TimedRequest): void {
    const { prev, next } = request;
    if (prev === undefined) return; // never started (no timeout)
    prev.next = next;
    next.prev = prev;
    request.prev = request.next = undefined!;
    if (--this.#count === 0) {
      clearTimeout(this.#timer);
      this.#timerAt = Infinity;
    }
  }

  /** Sets the one timer for `deadline`. */
  #schedule(deadline: number): void {
    clearTimeout(this.#timer);
    this.#timerAt = deadline;
    this.#timer = setTimeout(
      this.#fire,
      Math.max(0, deadline - performance.now()),
    );
  }

  /** Expires every request whose deadline passed, then re-arms the timer. */
  #fire = (): void => {
    this.#timerAt = Infinity;
    const now = performance.now();
    let earliest = Infinity;
    for (const [timeout, head] of this.#lists) {
      // Deadline order: stop at the first request still in time. Expiring
      // a request settles it, which unlinks it (stop()).
      let request = head.next;
      for (; request !== head && request.deadline <= now; request = head.next) {
        this.#expire(request, timeout);
      }
      if (request !== head && request.deadline < earliest) {
        earliest = request.deadline;
      }
    }
    if (earliest < this.#timerAt) this.#schedule(earliest);
  };
}

/**
 * Keeps timeouts in one ring per timeout value with a single timer: O(1)
 * per request however many are pending. The server's peers use it; pass it
 * as a peer's `timeouts` option for a peer with very many pending requests.
 *
 * @param expire Called with a request whose timeout passed (it must settle
 * the request, which stops its timeout).
 * @returns The timeouts of one set of pending requests.
 *
 * @example A peer for many pending requests
 * ```ts
 * import { Peer, timeoutLists } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const socket = new EventTarget() as unknown as WebSocket;
 * Object.assign(socket, { readyState: 3 });
 * const peer = new Peer(socket, { timeouts: timeoutLists });
 * assert.equal(peer.closed, true);
 * ```
 */
export function timeoutLists(
  expire: (request: TimedRequest, timeout: number) => void,
): Timeouts {
  return new TimeoutLists(expire);
}
