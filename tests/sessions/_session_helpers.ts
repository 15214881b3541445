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

/** Delays small enough for tests. */
export const FAST: ClientOptions = {
  minDelay: 1,
  maxDelay: 20,
  pingInterval: 100,
  pingTimeout: 200,
};

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
      const client = new Client(`ws://127.0.0.1:${proxy.port}/?user=${user}`, {
        ...FAST,
        ...extra,
      });
      client.addEventListener("error", () => {});
      clients.push(client);
      return client;
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
