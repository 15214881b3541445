/**
 * A guarded listener in front of `Deno.serve`: the defence against slow or
 * silent request heads (slowloris) that `Deno.serve` lacks (it has no header
 * timeout, denoland/deno#3515). {@linkcode serveGuarded} accepts TCP
 * connections itself, reads each request head with a deadline and a size
 * cap, bounds the unfinished heads per client address and in all, and hands
 * a complete head to the real `Deno.serve` (listening on a loopback port),
 * then copies the bytes both ways. The handler sees the client's address,
 * not the loopback one.
 *
 * Each HTTP connection carries one request (the guard asks the server to
 * close it after the response), so every request head a client sends passes
 * the guard; a WebSocket upgrade stays open and is piped until either side
 * closes.
 *
 * @module
 */

import { TypedEventTarget } from "../peer/typed_event_target.ts";
import type { ServerLogger } from "./server_options.ts";
import {
  closeQuietly,
  headEnd,
  plainResponse,
  pump,
  rewriteHead,
  SMALL_READ,
  writeAll,
} from "./_head_pipe.ts";
import type {
  GuardDropReason,
  GuardedServeOptions,
  GuardedServerEventMap,
} from "./guarded_listener_options.ts";

export type {
  GuardDropDetail,
  GuardDropReason,
  GuardedServeOptions,
  GuardedServerEventMap,
} from "./guarded_listener_options.ts";

/** A connection whose head is being read. */
interface PendingHead {
  conn: Deno.TcpConn;
  address: string;
  timer: ReturnType<typeof setTimeout> | undefined;
  dropped: boolean;
  /** Whether it left the pending set (and its address's count). */
  released: boolean;
}

/**
 * A server behind a guarded listener (see {@linkcode serveGuarded}).
 *
 * @example Usage
 * ```ts
 * import { serveGuarded } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * await using server = serveGuarded(() => new Response("hi"), {
 *   hostname: "127.0.0.1",
 *   port: 0,
 * });
 * const response = await fetch(`http://127.0.0.1:${server.addr.port}/`);
 * assert.equal(await response.text(), "hi");
 * ```
 */
export class GuardedServer extends TypedEventTarget<GuardedServerEventMap>
  implements AsyncDisposable {
  /** The address the guard listens on. */
  readonly addr: Deno.NetAddr;
  /** Connections handed to the server behind so far. */
  handedOff = 0;
  /** Connections dropped before their head completed, by reason. */
  readonly dropped: Record<GuardDropReason, number> = {
    timeout: 0,
    "too-large": 0,
    address: 0,
    evicted: 0,
    backend: 0,
  };
  #handler: Deno.ServeHandler<Deno.NetAddr>;
  #listener: Deno.TcpListener;
  #backend: Deno.HttpServer<Deno.NetAddr> | undefined;
  #backendPort = 0;
  #headerTimeout: number;
  #maxHeadSize: number;
  #maxPending: number;
  #maxPerAddress: number;
  #retryDelay: number;
  #logger: ServerLogger | undefined;
  #pending = new Set<PendingHead>();
  #pendingByAddress = new Map<string, number>();
  /** Client addresses by the local port of their connection to the backend. */
  #clients = new Map<number, Deno.NetAddr>();
  #piped = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #retry:
    | { timer: ReturnType<typeof setTimeout>; resume: () => void }
    | undefined;
  #closed = false;
  #stopped: Promise<void> | undefined;

  /**
   * Listens and starts the server behind.
   *
   * @param handler The request handler of the server behind.
   * @param options Address, limits, logger.
   * @throws {RangeError} When a limit is not positive.
   */
  constructor(
    handler: Deno.ServeHandler<Deno.NetAddr>,
    options: GuardedServeOptions = {},
  ) {
    super();
    this.#handler = handler;
    this.#headerTimeout = options.headerTimeout ?? 10_000;
    this.#maxHeadSize = options.maxHeadSize ?? 32_768;
    this.#maxPending = options.maxPendingHeads ?? 1_000;
    this.#maxPerAddress = options.maxPendingHeadsPerAddress ?? 32;
    this.#retryDelay = options.retryDelay ?? 1_000;
    this.#logger = options.logger;
    for (
      const [name, value] of Object.entries({
        headerTimeout: this.#headerTimeout,
        maxHeadSize: this.#maxHeadSize,
        maxPendingHeads: this.#maxPending,
        maxPendingHeadsPerAddress: this.#maxPerAddress,
      })
    ) {
      if (!(value > 0)) {
        throw new RangeError(
          `Cannot create guarded server: ${name} must be positive, got ${value}`,
        );
      }
    }
    this.#serveBackend();
    this.#listener = Deno.listen({
      port: options.port ?? 8000,
      hostname: options.hostname ?? "0.0.0.0",
    });
    this.addr = this.#listener.addr;
    options.onListen?.(this.addr);
    this.#track(this.#accept());
  }

  /** Unfinished heads now. */
  get pendingHeads(): number {
    return this.#pending.size;
  }

  /** Connections being piped to the server behind now (two per client). */
  get piped(): number {
    return this.#piped.size / 2;
  }

  /**
   * Stops accepting, drops unfinished heads, shuts the server behind down
   * (as `Deno.HttpServer.shutdown()`), then closes what is still piped.
   * Idempotent.
   *
   * @returns When every connection is closed.
   */
  shutdown(): Promise<void> {
    return this.#stopped ??= this.#shutdown();
  }

  /** Shuts down (see {@linkcode GuardedServer.shutdown}). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed.
    }
    if (this.#retry) {
      clearTimeout(this.#retry.timer);
      this.#retry.resume();
    }
    for (const pending of [...this.#pending]) {
      pending.dropped = true;
      closeQuietly(pending.conn);
    }
    await this.#backend?.shutdown().catch(() => {});
    for (const conn of [...this.#piped]) closeQuietly(conn);
    while (this.#tasks.size) await Promise.all([...this.#tasks]);
  }

  #track(task: Promise<void>): void {
    const done = task.catch((error) => {
      this.#logger?.error("guarded listener failed", error);
    }).finally(() => this.#tasks.delete(done));
    this.#tasks.add(done);
  }

  /** Waits `retryDelay`, or less when shutting down. */
  #pause(): Promise<void> {
    return new Promise((resume) => {
      const timer = setTimeout(() => {
        this.#retry = undefined;
        resume();
      }, this.#retryDelay);
      this.#retry = { timer, resume };
    });
  }

  #serveBackend(): void {
    const backend = Deno.serve({
      hostname: "127.0.0.1",
      port: 0,
      onListen: () => {},
    }, (request, info) => {
      const client = this.#clients.get(info.remoteAddr.port);
      return this.#handler(request, {
        remoteAddr: client ?? info.remoteAddr,
        // A getter: Deno makes the promise only when asked for it.
        get completed() {
          return info.completed;
        },
      });
    });
    this.#backend = backend;
    this.#backendPort = backend.addr.port;
    this.#track(backend.finished.then(() => {}, async (error) => {
      if (this.#closed) return;
      this.#logger?.error(
        `HTTP server failed: starting again in ${this.#retryDelay} ms`,
        error,
      );
      await this.#pause();
      if (!this.#closed) this.#restartBackend();
    }));
  }

  #restartBackend(): void {
    try {
      this.#serveBackend();
    } catch (error) {
      this.#logger?.error(
        `Cannot start HTTP server: retrying in ${this.#retryDelay} ms`,
        error,
      );
      this.#track(
        this.#pause().then(() => {
          if (!this.#closed) this.#restartBackend();
        }),
      );
    }
  }

  async #accept(): Promise<void> {
    while (!this.#closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#closed || error instanceof Deno.errors.BadResource) return;
        // Out of descriptors (EMFILE): the listener stays open; accept
        // again once some may have been freed.
        this.#logger?.error(
          `Cannot accept connections: retrying in ${this.#retryDelay} ms`,
          error,
        );
        await this.#pause();
        continue;
      }
      this.#track(this.#serve(conn));
    }
  }

  /** Takes a head out of the unfinished ones (once). */
  #release(pending: PendingHead): void {
    clearTimeout(pending.timer);
    if (pending.released) return;
    pending.released = true;
    if (!this.#pending.delete(pending)) return;
    const { address } = pending;
    const left = (this.#pendingByAddress.get(address) ?? 1) - 1;
    if (left) this.#pendingByAddress.set(address, left);
    else this.#pendingByAddress.delete(address);
  }

  #drop(pending: PendingHead, reason: GuardDropReason): void {
    if (pending.dropped) return;
    pending.dropped = true;
    this.#release(pending);
    closeQuietly(pending.conn);
    this.dropped[reason]++;
    this.dispatchEvent(
      new CustomEvent("drop", {
        detail: { reason, address: pending.address },
      }),
    );
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const address = conn.remoteAddr.hostname;
    const pending: PendingHead = {
      conn,
      address,
      timer: undefined,
      dropped: false,
      released: false,
    };
    const ofAddress = this.#pendingByAddress.get(address) ?? 0;
    if (ofAddress >= this.#maxPerAddress) {
      this.#drop(pending, "address");
      return;
    }
    if (this.#pending.size >= this.#maxPending) {
      const [oldest] = this.#pending;
      this.#drop(oldest, "evicted");
    }
    this.#pending.add(pending);
    this.#pendingByAddress.set(address, ofAddress + 1);
    pending.timer = setTimeout(
      () => this.#drop(pending, "timeout"),
      this.#headerTimeout,
    );
    let read: Uint8Array | undefined;
    let end = -1;
    try {
      read = await this.#readHead(conn, pending);
      if (read !== undefined) end = headEnd(read, 0);
    } finally {
      this.#release(pending);
    }
    if (pending.dropped || read === undefined) {
      closeQuietly(conn);
      return;
    }
    if (end < 0) {
      await writeAll(conn, plainResponse("431 Request Header Fields Too Large"))
        .catch(() => {});
      this.#drop(pending, "too-large");
      return;
    }
    await this.#handOff(conn, pending, read, end);
  }

  /**
   * Reads until the head is complete or over the cap.
   *
   * @returns The bytes read, or `undefined` when the connection ended or
   *   was dropped first.
   */
  async #readHead(
    conn: Deno.TcpConn,
    pending: PendingHead,
  ): Promise<Uint8Array | undefined> {
    const max = this.#maxHeadSize;
    let bytes = new Uint8Array(SMALL_READ);
    let length = 0;
    while (true) {
      if (length === bytes.length) {
        const grown = new Uint8Array(Math.min(bytes.length * 2, max + 4));
        grown.set(bytes);
        bytes = grown;
      }
      let n: number | null;
      try {
        n = await conn.read(bytes.subarray(length));
      } catch {
        return undefined;
      }
      if (n === null || pending.dropped) return undefined;
      const before = length;
      length += n;
      if (headEnd(bytes.subarray(0, length), before) >= 0) {
        return bytes.subarray(0, length);
      }
      if (length > max) return bytes.subarray(0, length);
    }
  }

  async #handOff(
    conn: Deno.TcpConn,
    pending: PendingHead,
    read: Uint8Array,
    end: number,
  ): Promise<void> {
    let backend: Deno.TcpConn;
    try {
      backend = await Deno.connect({
        hostname: "127.0.0.1",
        port: this.#backendPort,
      });
    } catch (error) {
      this.#logger?.error("Cannot reach the HTTP server behind", error);
      await writeAll(conn, plainResponse("503 Service Unavailable"))
        .catch(() => {});
      this.#drop(pending, "backend");
      return;
    }
    if (this.#closed) {
      closeQuietly(backend);
      closeQuietly(conn);
      return;
    }
    const port = backend.localAddr.port;
    // Small frames go out at once both ways (no Nagle delay on the hop).
    conn.setNoDelay(true);
    backend.setNoDelay(true);
    this.#clients.set(port, conn.remoteAddr);
    this.#piped.add(conn);
    this.#piped.add(backend);
    this.handedOff++;
    let closed = false;
    const closeBoth = (): void => {
      if (closed) return;
      closed = true;
      closeQuietly(conn);
      closeQuietly(backend);
    };
    try {
      await writeAll(backend, rewriteHead(read.subarray(0, end)));
      if (end < read.length) await writeAll(backend, read.subarray(end));
      const up = pump(conn, backend).then(
        () => backend.closeWrite(),
      ).catch(closeBoth);
      const down = pump(backend, conn).then(closeBoth, closeBoth);
      await Promise.all([up, down]);
    } catch {
      // A reset on either side.
    } finally {
      closeBoth();
      this.#clients.delete(port);
      this.#piped.delete(conn);
      this.#piped.delete(backend);
    }
  }
}

/**
 * Serves `handler` behind a guarded listener: the defence against slow or
 * silent request heads (slowloris) that `Deno.serve` does not have. Each
 * connection's head must complete within `headerTimeout` and `maxHeadSize`;
 * unfinished heads are bounded per address and in all; complete ones are
 * handed to a `Deno.serve` on a loopback port and piped. It also survives
 * running out of file descriptors (it accepts again after `retryDelay`).
 *
 * The cost: every byte is copied once more in the process, and each client
 * holds three descriptors instead of one (SECURITY.md has the measured
 * throughput and latency). Behind a proxy that has a header timeout, use
 * `Deno.serve` directly.
 *
 * @param handler The request handler; `info.remoteAddr` is the client's.
 * @param options Address, limits, logger.
 * @returns The server.
 * @throws {RangeError} When a limit is not positive.
 *
 * @example Serve a DuplexServer behind the guard
 * ```ts
 * import { DuplexServer, serveGuarded } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const duplex = new DuplexServer();
 * await using http = serveGuarded(duplex.fetch, {
 *   hostname: "127.0.0.1",
 *   port: 0,
 *   headerTimeout: 5_000,
 * });
 * const health = await fetch(`http://127.0.0.1:${http.addr.port}/healthz`);
 * assert.equal(await health.text(), "ok\n");
 * await duplex.shutdown();
 * ```
 */
export function serveGuarded(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  options: GuardedServeOptions = {},
): GuardedServer {
  return new GuardedServer(handler, options);
}
