/**
 * The Duplex client for browsers and Deno: one reconnecting, full-duplex
 * connection. It sends requests and notifications, answers the server's
 * requests, receives notifications (listeners or `for await`), queues what
 * is sent while disconnected, reconnects with exponential backoff and full
 * jitter, and detects a dead server with application-level pings. It uses
 * no `Deno.*` API.
 *
 * @example In a browser
 * ```ts ignore
 * import { Client } from "@duplex/ws/client";
 *
 * const client = new Client("wss://chat.example.com/ws", {
 *   // Browsers cannot set headers: the token travels as a subprotocol.
 *   protocols: async () => [`duplex.auth.${await getToken()}`],
 * });
 * client.onNotify((text, frame) => show(`${frame.from}: ${text}`));
 * client.addEventListener("reconnecting", (e) => status(`retry in ${e.delay} ms`));
 * await client.login();
 * console.log(await client.request("hello")); // "ok"
 * ```
 *
 * @example In Deno
 * ```ts
 * import { Peer } from "@duplex/ws";
 * import { Client } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * await using server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
 *   const { socket, response } = Deno.upgradeWebSocket(req, { protocol: "duplex.v1" });
 *   const peer = new Peer(socket);
 *   peer.onRequest(() => "ok");
 *   peer.handle("shout", (text: string) => peer.call("echo", text.toUpperCase()));
 *   return response;
 * });
 *
 * await using client = new Client(`ws://127.0.0.1:${server.addr.port}`);
 * client.handle("echo", (text: string) => text); // the server calls the client
 * await client.connect();
 * assert.equal(await client.request("hello"), "ok");
 * assert.equal(await client.call("shout", "hi"), "HI");
 * ```
 *
 * @module
 */

export { Client } from "./src/client/client.ts";
export {
  type ClientOptions,
  type NotificationsOptions,
  type NotifyOptions,
  type UrlSource,
} from "./src/client/client_options.ts";
export {
  type ClientEventMap,
  type ClientState,
  ReconnectingEvent,
} from "./src/client/client_events.ts";
export {
  type ClientSessionOptions,
  SessionEvent,
  type SessionStorageLike,
} from "./src/client/client_session.ts";
export { OutcomeUnknownError } from "./src/wire/outcome_unknown_error.ts";
export type { SessionLossReason } from "./src/wire/session_frames.ts";
export { backoffDelay, type BackoffOptions } from "./src/client/backoff.ts";
export {
  type PresenceChange,
  PresenceView,
  type PresenceViewEventMap,
} from "./src/client/presence_view.ts";
export type {
  PresenceDiff,
  PresenceMeta,
  PresenceState,
} from "./src/wire/presence_frames.ts";
export {
  Heartbeat,
  type HeartbeatOptions,
  type Pingable,
} from "./src/client/heartbeat.ts";
export {
  ConnectError,
  ConnectionClosedError,
  DuplexError,
  OriginalProtocolError,
  QueueFullError,
  QueueTimeoutError,
  RemoteError,
  RequestTimeoutError,
} from "./src/wire/errors.ts";
export {
  type AnyEndpoint,
  type AnyResult,
  type Endpoint,
  type MethodWithoutParams,
  type NotificationWithoutPayload,
  type TypedNotifyFrame,
} from "./src/peer/endpoint.ts";
export type { Middleware, MiddlewareContext } from "./src/peer/middleware.ts";
export {
  type NotificationListener,
  type RequestContext,
  type RequestHandler,
} from "./src/peer/handler.ts";
export { type RequestOptions } from "./src/peer/peer_options.ts";
export { type ChunkOf, type StreamOptions } from "./src/peer/streams.ts";
export {
  type PeerStreams,
  streams,
  type StreamSupport,
} from "./src/peer/stream_support.ts";
export { Receiver } from "./src/peer/receiver.ts";
export { Sender } from "./src/peer/sender.ts";
export { TypedEventTarget } from "./src/peer/typed_event_target.ts";
export { type NotifyFrame, SUBPROTOCOL } from "./src/wire/protocol.ts";
export { CloseCode } from "./src/wire/close_codes.ts";
