/**
 * A TCP proxy for tests that injects real network faults between a client
 * and a server on 127.0.0.1: it cuts connections abruptly (FIN without a
 * WebSocket close frame, RST, or in the middle of a frame) and black-holes
 * them (stops forwarding but keeps both sockets open, so that only a
 * heartbeat can notice).
 *
 * @module
 */

/** How a connection is cut. */
export type Fault = "fin" | "rst" | "midframe" | "blackhole";

/** Every fault, for random choices. */
export const FAULTS: readonly Fault[] = ["fin", "rst", "midframe", "blackhole"];

/** One proxied connection: the client's side and the server's side. */
class Link {
  #client: Deno.TcpConn;
  #server: Deno.TcpConn;
  #closed = false;
  #blackholed = false;
  /** Set: forward part of the next chunk (either way), then cut. */
  #midframe = false;
  #midframeTimer: ReturnType<typeof setTimeout> | undefined;
  readonly done: Promise<void>;
  /** Settles when the server's side ends (even black-holed). */
  readonly serverEnded: Promise<void>;
  /** The server port. */
  target = 0;

  constructor(client: Deno.TcpConn, server: Deno.TcpConn) {
    this.#client = client;
    this.#server = server;
    this.serverEnded = this.#pump(server, client);
    this.done = Promise.all([this.#pump(client, server), this.serverEnded])
      .then(() => this.#closeBoth());
  }

  get closed(): boolean {
    return this.#closed;
  }

  get blackholed(): boolean {
    return this.#blackholed;
  }

  cut(fault: Fault): void {
    if (this.#closed) return;
    switch (fault) {
      case "fin":
        // Both ends see a clean TCP end of stream, but no close frame.
        this.#blackholed = true;
        for (const conn of [this.#client, this.#server]) {
          conn.closeWrite().catch(() => {});
        }
        break;
      case "rst":
        this.#closeBoth();
        break;
      case "midframe":
        this.#midframe = true;
        // Nothing flowing: cut anyway soon.
        this.#midframeTimer = setTimeout(() => this.#closeBoth(), 50);
        break;
      case "blackhole":
        this.#blackholed = true;
        break;
    }
  }

  close(): void {
    this.#closeBoth();
  }

  async #pump(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      while (true) {
        const n = await from.read(buffer);
        if (n === null || this.#closed) break;
        if (this.#blackholed) continue;
        if (this.#midframe && n > 1) {
          // Half of this chunk, which is part of a frame at least.
          await to.write(buffer.subarray(0, n >> 1));
          this.#closeBoth();
          break;
        }
        let written = 0;
        while (written < n) {
          written += await to.write(buffer.subarray(written, n));
        }
      }
    } catch {
      // The other pump closed the sockets.
    }
    if (!this.#blackholed) this.#closeBoth();
  }

  #closeBoth(): void {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#midframeTimer);
    for (const conn of [this.#client, this.#server]) {
      try {
        conn.close();
      } catch {
        // Closed already.
      }
    }
  }
}

/**
 * A TCP proxy in front of `target` (a port on 127.0.0.1): clients connect
 * to `port`; `cutAll(fault)` cuts every live connection; `refusing` keeps
 * new ones out. Given several ports it is a round-robin balancer: each new
 * connection goes to the next port, skipping ports that refuse.
 */
export class FaultProxy implements AsyncDisposable {
  readonly port: number;
  #listener: Deno.TcpListener;
  #targets: readonly number[];
  #next = 0;
  #links = new Set<Link>();
  #accepting: Promise<void>;
  #connecting = new Set<Promise<void>>();
  /** Connections accepted so far. */
  accepted = 0;
  /** While set, new connections are closed at once (the server is away). */
  refusing = false;

  /** @param target The port (or ports) of the server on 127.0.0.1. */
  constructor(target: number | readonly number[]) {
    this.#targets = typeof target === "number" ? [target] : target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = this.#listener.addr.port;
    this.#accepting = this.#accept();
  }

  /** The ports new connections go to, in turn. */
  set targets(ports: readonly number[]) {
    this.#targets = ports;
  }

  /**
   * Cuts every live connection to one port.
   *
   * @returns How many were cut.
   */
  cutTarget(port: number, fault: Fault): number {
    let n = 0;
    for (const link of this.#links) {
      if (link.closed || link.blackholed || link.target !== port) continue;
      link.cut(fault);
      n++;
    }
    return n;
  }

  /** Live links (not cut, not closed). */
  get live(): number {
    let n = 0;
    for (const link of this.#links) if (!link.closed && !link.blackholed) n++;
    return n;
  }

  /**
   * Cuts every live connection.
   *
   * @param fault How.
   * @returns How many were cut.
   */
  cutAll(fault: Fault): number {
    let n = 0;
    for (const link of this.#links) {
      if (link.closed || link.blackholed) continue;
      link.cut(fault);
      n++;
    }
    return n;
  }

  /**
   * Settles once the server has closed its side of every black-holed
   * connection (the proxy keeps their client side open).
   */
  async blackholesEndedByServer(): Promise<void> {
    const links = [...this.#links].filter((link) => link.blackholed);
    await Promise.all(links.map((link) => link.serverEnded));
  }

  /** Closes every connection, black-holed ones included. */
  closeAll(): void {
    for (const link of this.#links) link.close();
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        this.accepted++;
        const connecting = this.#connect(client);
        this.#connecting.add(connecting);
        connecting.finally(() => this.#connecting.delete(connecting));
      }
    } catch {
      // The listener closed.
    }
  }

  async #connect(client: Deno.TcpConn): Promise<void> {
    if (this.refusing) {
      client.close();
      return;
    }
    let server: Deno.TcpConn | undefined;
    let port = 0;
    for (let tries = 0; tries < this.#targets.length; tries++) {
      port = this.#targets[this.#next++ % this.#targets.length];
      try {
        server = await Deno.connect({ hostname: "127.0.0.1", port });
        break;
      } catch {
        // That one is down: the next.
      }
    }
    if (server === undefined) {
      client.close();
      return;
    }
    const link = new Link(client, server);
    link.target = port;
    this.#links.add(link);
    await link.done;
    this.#links.delete(link);
  }

  /** Stops listening and closes every connection. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#accepting;
    this.closeAll();
    await Promise.all([...this.#connecting]);
  }

  /** Same as {@linkcode FaultProxy.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
