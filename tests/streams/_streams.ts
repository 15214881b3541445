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

/** A detached-size payload (300 KiB): over the 256 KiB threshold. */
export const BIG = 300 * 1024;

/** `size` bytes of a pattern that a shifted or cut copy would not match. */
export function pattern(size: number, seed: number): Uint8Array<ArrayBuffer> {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i++) bytes[i] = (i * 31 + seed) & 255;
  return bytes;
}

/**
 * The head of a detached request to `method` announcing `lengths`, as a raw
 * client would write it (PROTOCOL.md, "Binary").
 */
export function rawHead(
  method: string,
  lengths: number[],
): Uint8Array<ArrayBuffer> {
  const header = new TextEncoder().encode(
    `{"sequence":1,"type":1,"method":"${method}","message":"\\u0000u0"}`,
  );
  const head = new Uint8Array(4 + header.byteLength + 4 * lengths.length);
  const view = new DataView(head.buffer);
  view.setUint32(0, 0x8000_0000 + header.byteLength);
  head.set(header, 4);
  lengths.forEach((length, i) =>
    view.setUint32(4 + header.byteLength + 4 * i, length)
  );
  return head;
}
