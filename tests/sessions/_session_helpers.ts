/**
 * Helpers of the session tests: a server behind a fault proxy, and clients
 * through it, all closed by `await using`.
 *
 * @module
 */

import { Client, type ClientOptions } from "../../client.ts";
import { DuplexServer, type DuplexServerOptions } from "../../server.ts";
import { listen } from "../_server_helpers.ts";
import { FaultProxy } from "../_fault_proxy.ts";
import type { SocketLike } from "../../src/peer/socket_like.ts";
import { nextTurn } from "../../src/peer/next_turn.ts";

/** Delays small enough for tests. */
export const FAST: ClientOptions = {
  minDelay: 1,
  maxDelay: 20,
  pingInterval: 100,
  pingTimeout: 200,
};

/**
 * Opens a client through `proxy` as `user` (with {@linkcode FAST} delays and
 * its error events swallowed) and adds it to `clients`, which the caller
 * closes.
 */
export function proxyClient(
  proxy: FaultProxy,
  clients: Client[],
  user: string,
  options: ClientOptions = {},
): Client {
  const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=${user}`, {
    ...FAST,
    ...options,
  });
  client.addEventListener("error", () => {});
  clients.push(client);
  return client;
}

/** An instance of a cluster test: its server, listener and store. */
export interface Instance {
  server: DuplexServer;
  http: Deno.HttpServer<Deno.NetAddr>;
  store: { close(): Promise<void> };
}

/**
 * Closes the clients, then the proxy's connections, then every instance
 * (server, listener, store), then the proxy.
 */
export async function closeCluster(
  clients: Client[],
  proxy: FaultProxy,
  instances: Instance[],
): Promise<void> {
  await Promise.all(clients.map((client) => client.close()));
  proxy.closeAll();
  for (const { server, http, store } of instances) {
    await server.shutdown();
    await http.shutdown();
    await store.close();
  }
  await proxy.close();
}

/**
 * Instances behind one round-robin balancer (a {@linkcode FaultProxy}), and
 * clients through it; disposing closes all of it.
 */
export function behindProxy<I extends Instance>(instances: I[]) {
  const proxy = new FaultProxy(instances.map((i) => i.http.addr.port));
  const clients: Client[] = [];
  return {
    instances,
    proxy,
    clients,
    client(user: string, options: ClientOptions = {}): Client {
      return proxyClient(proxy, clients, user, options);
    },
    async [Symbol.asyncDispose]() {
      await closeCluster(clients, proxy, instances);
    },
  };
}

/**
 * Resolves at the next turn of the event loop, after the due
 * acknowledgements already scheduled (the same queue, in order).
 */
export async function afterDueAcks(): Promise<void> {
  // A due ack takes its turn only after two microtask hops (a frame sent
  // within them carries it): this turn is taken after those.
  for (let hop = 0; hop < 3; hop++) await null;
  await new Promise((resolve) => nextTurn(resolve, undefined));
}

/** A transport that records what a session socket writes and how it closes. */
export class FakeTransport implements SocketLike {
  readyState = 1;
  bufferedAmount = 0;
  sent: (string | Uint8Array)[] = [];
  closedWith: number | undefined = undefined;
  #listeners: EventListenerObject[] = [];
  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.sent.push(data);
  }
  close(code?: number): void {
    this.closedWith = code;
    this.readyState = 3;
  }
  addEventListener(type: string, listener: EventListenerObject): void {
    if (type === "message") this.#listeners.push(listener);
  }
  removeEventListener(_type: string, listener: EventListenerObject): void {
    this.#listeners = this.#listeners.filter((l) => l !== listener);
  }
  receive(data: string | ArrayBuffer): void {
    const event = new MessageEvent("message", { data });
    for (const listener of [...this.#listeners]) listener.handleEvent(event);
  }
}

/** A server behind a fault proxy, and clients through it. */
export function setup(options: DuplexServerOptions = {}) {
  const server = new DuplexServer(options);
  const http = listen(server);
  const proxy = new FaultProxy(http.addr.port);
  const clients: Client[] = [];
  return {
    server,
    proxy,
    client(user: string, extra: ClientOptions = {}): Client {
      return proxyClient(proxy, clients, user, extra);
    },
    async [Symbol.asyncDispose]() {
      const closed = clients.map((client) => client.close());
      // Black-holed connections never finish a closing handshake.
      proxy.closeAll();
      await Promise.all(closed);
      await server.shutdown();
      await proxy.close();
      await http.shutdown();
    },
  };
}
