/**
 * The Duplex server for Deno: {@linkcode DuplexServer} turns `Deno.serve`
 * into a full-duplex request / response / notify server with origin and
 * authentication checks before the upgrade, per-connection limits,
 * backpressure, pushes to users, rooms and everyone, Prometheus metrics and
 * graceful shutdown. {@linkcode createChatServer} is the chat application
 * built on it.
 *
 * Several instances scale out through a {@linkcode Cluster} on a broker:
 * `RedisPubSub` (Redis pub/sub, from its own entry point `@duplex/ws/redis`,
 * so that a server without Redis downloads no npm package),
 * {@linkcode BroadcastChannelPubSub} (Deno Deploy) or {@linkcode MemoryPubSub}
 * (one process); pass the cluster as the server's `cluster` option.
 *
 * Run as a program (`deno run -A server.ts`, or `deno task start`), this file
 * serves the chat on `PORT` (default 8000) and `DUPLEX_HOSTNAME` or an
 * address in `HOSTNAME` (default every interface), logs connects and disconnects to
 * the console, and shuts down gracefully on SIGINT and SIGTERM. It listens
 * behind {@linkcode serveGuarded} (request heads must complete within
 * `DUPLEX_HEADER_TIMEOUT` ms, default 10,000) unless `DUPLEX_BEHIND_PROXY=1`
 * says a proxy in front provides that (then it trusts the proxy's
 * `X-Forwarded-For` and serves with `Deno.serve` directly). With
 * `REDIS_URL` set it joins the cluster of every instance on that Redis; on
 * Deno Deploy (`DENO_DEPLOYMENT_ID` set) it joins the other isolates through
 * `BroadcastChannel`; otherwise it runs alone. With `DUPLEX_CLUSTER_SECRET`
 * set, the instances sign their broker messages with it (the same secret on
 * every instance). It runs unchanged on Deno Deploy.
 *
 * @example Mount a server with a typed handler
 * ```ts
 * import { DuplexServer } from "@duplex/ws/server";
 * import { type Endpoint, Peer } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * interface Api extends Endpoint {
 *   requests: { greet: (name: string) => string };
 *   notifications: Record<never, never>;
 * }
 *
 * const duplex = new DuplexServer<Api>();
 * duplex.handle("greet", (name, { from }) => `Hello ${name}, from ${from}`);
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   duplex.fetch,
 * );
 *
 * const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}/ws?user=ada`, "duplex.v1");
 * const client = new Peer<Endpoint, Api>(socket);
 * await new Promise((resolve) => socket.onopen = resolve);
 * assert.equal(await client.call("greet", "Bob"), "Hello Bob, from ada");
 *
 * const closed = new Promise((resolve) => socket.onclose = resolve);
 * await duplex.shutdown();
 * await closed;
 * ```
 *
 * @module
 */

import { createChatServer } from "./src/chat/chat.ts";
import { BroadcastChannelPubSub } from "./src/cluster/broadcast_channel_pubsub.ts";
import { Cluster } from "./src/cluster/cluster.ts";
import type { ServerLogger } from "./src/server/duplex_server.ts";
import type { PubSub } from "./src/cluster/pubsub.ts";
import { serveForever } from "./src/server/serve_forever.ts";
import { serveGuarded } from "./src/server/guarded_listener.ts";

export {
  AUTH_PROTOCOL_PREFIX,
  bearerToken,
  getCookie,
  offeredProtocols,
} from "./src/server/auth.ts";
export {
  chat,
  type ChatClientEndpoint,
  type ChatOptions,
  type ChatServerEndpoint,
  createChatServer,
  USERS_PAGE_SIZE,
} from "./src/chat/chat.ts";
export { demoPage } from "./src/chat/demo_page.ts";
export {
  CLIENT_SCRIPT_ETAG,
  clientScript,
} from "./src/server/client_script.ts";
export {
  Cluster,
  CLUSTER_PROTOCOL_VERSION,
  type ClusterEventMap,
  type ClusterOptions,
  type ClusterStats,
  type LocalNode,
  type PresenceDetail,
  type PresenceReason,
  type Push,
  type RoomDetail,
  type UserRequestOptions,
} from "./src/cluster/cluster.ts";
export {
  type BrokerLogger,
  BrokerOutcomeUnknownError,
  BrokerUnavailableError,
  type PubSub,
  type PubSubEventMap,
  type PubSubListener,
  PubSubTarget,
  type Unsubscribe,
} from "./src/cluster/pubsub.ts";
export {
  MemoryHub,
  MemoryPubSub,
  type MemoryPubSubOptions,
} from "./src/cluster/memory_pubsub.ts";
export {
  BroadcastChannelPubSub,
  type BroadcastChannelPubSubOptions,
} from "./src/cluster/broadcast_channel_pubsub.ts";
export {
  type AuthContext,
  type Authenticate,
  type AuthResult,
  CLOSE_REPLACED,
  type Connection,
  type DisconnectDetail,
  DuplexServer,
  type DuplexServerEventMap,
  type DuplexServerOptions,
  type DuplicateUserPolicy,
  type NotifyOptions,
  type PushOptions,
  type ServerLogger,
  type ServerRateLimit,
  type ServerRequestOptions,
  type StatusAuthorize,
} from "./src/server/duplex_server.ts";
export {
  PresenceFeed,
  type PresenceFeedOptions,
  type PresenceFeedStats,
} from "./src/server/presence_feed.ts";
export type {
  PresenceDiff,
  PresenceMeta,
  PresenceState,
} from "./src/wire/presence_frames.ts";
export {
  LATENCY_BUCKETS,
  type MetricsSnapshot,
  ServerMetrics,
} from "./src/server/metrics.ts";
export {
  type GuardDropDetail,
  type GuardDropReason,
  type GuardedServeOptions,
  GuardedServer,
  type GuardedServerEventMap,
  serveGuarded,
} from "./src/server/guarded_listener.ts";
export {
  type ExpireDetail,
  type ResumeDetail,
  type SessionOptions,
} from "./src/server/session_options.ts";
export {
  hashSecret,
  MemorySessionStore,
  type SessionRecord,
  type SessionStore,
  type SessionWrite,
  type SessionWriteResult,
  type StoredSession,
} from "./src/server/session_store.ts";
export { SessionMetrics } from "./src/server/session_metrics.ts";
export { OutcomeUnknownError } from "./src/wire/outcome_unknown_error.ts";
export type { SessionLossReason } from "./src/wire/session_frames.ts";
export {
  isHostAllowed,
  isOriginAllowed,
  type OriginPolicy,
} from "./src/server/origin.ts";
export { NotConnectedError } from "./src/cluster/not_connected_error.ts";
export { refusalCloseCode } from "./src/server/refusal.ts";
export type { ServerRequestContext } from "./src/server/server_context.ts";
export {
  ForbiddenError,
  type Middleware,
  type MiddlewareContext,
} from "./src/peer/middleware.ts";
// The shared types that the server API's signatures use, so that this entry
// point is complete on its own.
export { DuplexError, RemoteError } from "./src/wire/errors.ts";
export type { RateLimitOptions } from "./src/peer/rate_limiter.ts";
export {
  type AnyEndpoint,
  type AnyResult,
  type BackpressurePolicy,
  type Endpoint,
  type NotificationListener,
  type NotificationMethod,
  type ParamsOf,
  type PayloadOf,
  Peer,
  type PeerEventMap,
  type PeerStats,
  type RequestContext,
  type RequestHandler,
  type RequestMethod,
  type RequestOptions,
  type ResultOf,
  type SocketLike,
} from "./src/peer/peer.ts";
export { Receiver, Registry } from "./src/peer/receiver.ts";
export type { NotifyFrame } from "./src/wire/protocol.ts";

function consoleLogger(): ServerLogger {
  const stamp = () => new Date().toISOString();
  return {
    info: (message) => console.log(`${stamp()} ${message}`),
    warn: (message) => console.warn(`${stamp()} ${message}`),
    error: (message, error) => console.error(`${stamp()} ${message}`, error),
  };
}

/**
 * The entry point of the Redis transport, imported only when `REDIS_URL` is
 * set. The specifier is computed so that Deno's module graph does not follow
 * it: a program that imports this file without Redis downloads no npm package.
 */
const REDIS_ENTRY: string = new URL("./redis.ts", import.meta.url).href;

/** The broker chosen by the environment, or none (a single instance). */
async function brokerFromEnv(
  logger: ServerLogger,
): Promise<PubSub | undefined> {
  const url = Deno.env.get("REDIS_URL");
  if (url) {
    const { RedisPubSub }: typeof import("./redis.ts") = await import(
      REDIS_ENTRY
    );
    return new RedisPubSub({ url, logger });
  }
  if (Deno.env.get("DENO_DEPLOYMENT_ID")) return new BroadcastChannelPubSub();
  return undefined;
}

/**
 * The interface the program listens on: `DUPLEX_HOSTNAME`, else `HOSTNAME`
 * when it holds an address (`127.0.0.1`, `::1`, `0.0.0.0`, `localhost`),
 * else every interface. Shells and containers set `HOSTNAME` to the machine's
 * name, which is not meant as a listening address, so a name is ignored.
 */
function listenHostname(): string {
  const chosen = Deno.env.get("DUPLEX_HOSTNAME");
  if (chosen) return chosen;
  const hostname = Deno.env.get("HOSTNAME") ?? "";
  const address = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-f:]*:[0-9a-f:]*|localhost)$/i;
  return address.test(hostname) ? hostname : "0.0.0.0";
}

if (import.meta.main) {
  const port = Number(Deno.env.get("PORT") ?? 8000);
  const hostname = listenHostname();
  const logger = consoleLogger();
  const behindProxy = Deno.env.get("DUPLEX_BEHIND_PROXY") === "1";
  const headerTimeout = Number(
    Deno.env.get("DUPLEX_HEADER_TIMEOUT") ?? 10_000,
  );
  const pubsub = await brokerFromEnv(logger);
  const secret = Deno.env.get("DUPLEX_CLUSTER_SECRET") || undefined;
  const cluster = pubsub && new Cluster(pubsub, { logger, secret });
  const chatServer = createChatServer({
    logger,
    cluster,
    trustProxy: behindProxy,
  });
  // Redis down at start is survivable: start() subscribes in the background
  // and the cluster syncs once Redis is up.
  await cluster?.start();
  if (!/^(127\.|::1$|localhost$)/.test(hostname)) {
    // The demo takes ?user= at its word: anyone can be anyone.
    logger.warn(
      "No authenticate hook: user ids are claims (?user=), not proofs; " +
        "configure authenticate before exposing this server (SECURITY.md)",
    );
  }
  const onListen = ({ hostname, port }: Deno.NetAddr): void => {
    // A wildcard address cannot be opened in a browser: name localhost.
    const host = hostname === "0.0.0.0" || hostname === "::"
      ? "localhost"
      : hostname.includes(":")
      ? `[${hostname}]`
      : hostname;
    console.log(`Listening on http://${host}:${port}/`);
  };
  // Both survive running out of file descriptors (SECURITY.md). Without a
  // proxy in front, the guard drops request heads that do not complete in
  // time (slowloris), which Deno.serve alone never does.
  const http = behindProxy
    ? serveForever(chatServer.fetch, { port, hostname, logger, onListen })
    : serveGuarded(chatServer.fetch, {
      port,
      hostname,
      logger,
      headerTimeout,
      onListen,
    });
  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`${new Date().toISOString()} ${signal}: shutting down`);
    await chatServer.shutdown();
    // The cluster says goodbye (the others drop its users at once), then the
    // transport closes its connections.
    await cluster?.close();
    await pubsub?.close();
    await http.shutdown();
  };
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    try {
      Deno.addSignalListener(signal, () => {
        stop(signal).then(
          () => Deno.exit(0),
          (error) => {
            console.error("Cannot shut down cleanly:", error);
            Deno.exit(1);
          },
        );
      });
    } catch {
      // No signals here (Deno Deploy, SIGTERM on Windows): the platform
      // stops the process itself.
    }
  }
}
export { TypedEventTarget } from "./src/peer/typed_event_target.ts";
