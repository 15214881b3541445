/**
 * One chat instance of a cluster, for the scale-out tests and the cluster
 * fan-out bench: a `createChatServer` with a `Cluster` on the given
 * transport, served on 127.0.0.1 port 0, closed in the order `server.ts`
 * uses (server, cluster, transport, HTTP).
 *
 * @module
 */

import {
  type ChatClientEndpoint,
  type ChatServerEndpoint,
  Cluster,
  createChatServer,
  type DuplexServer,
  type DuplexServerOptions,
  type PubSub,
} from "../../server.ts";
import { recordingLogger } from "../_server_helpers.ts";

/** A running chat instance. */
export interface ChatInstance extends AsyncDisposable {
  readonly server: DuplexServer<ChatServerEndpoint, ChatClientEndpoint>;
  readonly cluster: Cluster;
  readonly pubsub: PubSub;
  readonly http: Deno.HttpServer<Deno.NetAddr>;
  readonly logger: ReturnType<typeof recordingLogger>;
  /** The WebSocket URL of `user` on this instance. */
  url(user: string): string;
  /** Shuts everything down; idempotent. */
  close(): Promise<void>;
}

/** Options of {@linkcode startChatInstance}. */
export interface ChatInstanceOptions {
  id: string;
  heartbeatInterval: number;
  presenceTtl: number;
  /** Extra server options (limits). */
  server?: DuplexServerOptions;
  /** Print log lines instead of recording them. */
  print?: boolean;
}

/**
 * Starts a chat instance on `pubsub` (which it then owns).
 *
 * @param pubsub The transport.
 * @param options Id, presence timing, server options.
 * @returns The instance, once its cluster started and it listens.
 */
export async function startChatInstance(
  pubsub: PubSub,
  options: ChatInstanceOptions,
): Promise<ChatInstance> {
  const logger = recordingLogger();
  const log = options.print
    ? {
      info: (m: string) => console.log(m),
      warn: (m: string) => console.warn(m),
      error: (m: string, e?: unknown) => console.error(m, e),
    }
    : logger;
  const cluster = new Cluster(pubsub, {
    id: options.id,
    heartbeatInterval: options.heartbeatInterval,
    presenceTtl: options.presenceTtl,
    logger: log,
  });
  const server = createChatServer({
    ...options.server,
    cluster,
    logger: log,
    shutdownTimeout: 2_000,
  });
  await cluster.start();
  const http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    server.fetch,
  );
  let closing: Promise<void> | undefined;
  const close = (): Promise<void> =>
    closing ??= (async () => {
      await server.shutdown();
      await cluster.close();
      await pubsub.close();
      await http.shutdown();
    })();
  return {
    server,
    cluster,
    pubsub,
    http,
    logger,
    url: (user) =>
      `ws://127.0.0.1:${http.addr.port}/?user=${encodeURIComponent(user)}`,
    close,
    [Symbol.asyncDispose]: close,
  };
}
