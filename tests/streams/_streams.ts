/**
 * Helpers of the stream and binary tests: a {@linkcode DuplexServer} on
 * 127.0.0.1 port 0 and a connected {@linkcode Client}, closed together.
 *
 * @module
 */

import { Client, type ClientOptions, streams } from "../../client.ts";
import { DuplexServer, type DuplexServerOptions } from "../../server.ts";
import { listen, until, wsUrl } from "../_server_helpers.ts";

/** A server and one connected client, disposed together. */
export interface Setup extends AsyncDisposable {
  server: DuplexServer;
  client: Client;
  http: Deno.HttpServer<Deno.NetAddr>;
}

/**
 * Starts a server (`configure` registers its handlers) and connects a
 * client as user `alice`, with stream support unless `clientOptions` says
 * otherwise.
 */
export async function setup(
  configure: (server: DuplexServer) => void,
  serverOptions: DuplexServerOptions = {},
  clientOptions: ClientOptions = {},
): Promise<Setup> {
  const server = new DuplexServer(serverOptions);
  configure(server);
  const http = listen(server);
  const client = new Client(wsUrl(http, "alice"), {
    pingInterval: 0,
    streams,
    ...clientOptions,
  });
  const registered = until(server, () => server.connections === 1);
  await client.connect();
  await registered;
  return {
    server,
    client,
    http,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.shutdown();
      await http.shutdown();
    },
  };
}

/** A promise and its resolvers, for events awaited in tests. */
export function signal<T = void>(): PromiseWithResolvers<T> {
  return Promise.withResolvers<T>();
}
