/**
 * The chat application: the original protocol's relay, presence
 * notifications and the list of who is online, on a {@linkcode DuplexServer}.
 *
 * @module
 */

import { demoPage } from "./demo_page.ts";
import { BINARY_BUNDLE } from "./binary_bundle.ts";
import { binaryCodec } from "../wire/binary_codec.ts";
import {
  DuplexServer,
  type DuplexServerOptions,
} from "../server/duplex_server.ts";
import type { AnyEndpoint, Endpoint, Peer } from "../peer/peer.ts";
import { EncodedResult } from "../server/encoded_result.ts";
import { PresenceFeed } from "../server/presence_feed.ts";
import type { Connection } from "../server/connection.ts";
import type { PresenceDiff, PresenceState } from "../wire/presence_frames.ts";

/**
 * What the chat server answers: `users.list` (who is online, sorted).
 * Requests without a method are chat messages.
 *
 * @example Usage
 * ```ts
 * import type { ChatServerEndpoint } from "@duplex/ws/server";
 * import type { ResultOf } from "@duplex/ws";
 *
 * const online: ResultOf<ChatServerEndpoint, "users.list"> = ["alice", "bob"];
 * ```
 */
export interface ChatServerEndpoint extends Endpoint {
  /** Request methods. */
  requests: {
    /** The users online, sorted; params `{ after?, limit? }` page them. */
    "users.list": (params?: unknown) => string[];
    /** Starts the presence feed for this connection (`presence.state` now). */
    "presence.listen": (params?: unknown) => { interval: number };
    /** Stops it; `false` when it was not listening. */
    "presence.unlisten": (params?: unknown) => boolean;
    /** Sets the caller's metadata: a `PresenceMeta`, or `null` to remove it. */
    "presence.set": (meta?: unknown) => boolean;
  };
  /** The chat receives no notifications with a method. */
  notifications: Record<never, never>;
}

/**
 * What chat clients that negotiated `duplex.v1` receive besides chat
 * messages: presence notifications (no `from`, so they never look like a
 * user's message).
 *
 * @example Usage
 * ```ts
 * import type { ChatClientEndpoint } from "@duplex/ws/server";
 * import type { PayloadOf } from "@duplex/ws";
 *
 * const joined: PayloadOf<ChatClientEndpoint, "presence.joined"> = { user: "bob" };
 * ```
 */
export interface ChatClientEndpoint extends Endpoint {
  /** Chat clients answer no requests. */
  requests: Record<never, never>;
  /** Notifications with a method. */
  notifications: {
    /** A user's first connection opened. */
    "presence.joined": { user: string };
    /** A user's last connection closed. */
    "presence.left": { user: string };
    /** Everyone online, once, after `presence.listen`. */
    "presence.state": PresenceState;
    /** What changed since the last diff, at most one per interval. */
    "presence.diff": PresenceDiff;
  };
}

/**
 * The most users one `users.list` answer holds.
 *
 * @example Usage
 * ```ts
 * import { USERS_PAGE_SIZE } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(USERS_PAGE_SIZE, 1000);
 * ```
 */
export const USERS_PAGE_SIZE: number = 1000;

/**
 * Options of {@linkcode chat}.
 *
 * @example Usage
 * ```ts
 * import type { ChatOptions } from "@duplex/ws/server";
 *
 * const options: ChatOptions = { presenceInterval: 500 };
 * ```
 */
export interface ChatOptions {
  /**
   * The shortest time between two `presence.diff` frames to a client that
   * listens (see {@linkcode PresenceFeed}).
   *
   * @default {1000}
   */
  presenceInterval?: number;
}

/** Encoded pages kept between presence changes (by first index and size). */
const MAX_CACHED_PAGES = 16;

/** One page of the sorted users: after the cursor, at most `limit`. */
function usersPage(sorted: string[], params: unknown): [number, number] {
  const { after, limit } = (params ?? {}) as {
    after?: unknown;
    limit?: unknown;
  };
  let start = 0;
  if (typeof after === "string") {
    // The first user greater than the cursor (binary search).
    let high = sorted.length;
    while (start < high) {
      const middle = (start + high) >>> 1;
      if (sorted[middle] <= after) start = middle + 1;
      else high = middle;
    }
  }
  const size = typeof limit === "number" && limit >= 1
    ? Math.min(Math.floor(limit), USERS_PAGE_SIZE)
    : USERS_PAGE_SIZE;
  return [start, Math.min(start + size, sorted.length)];
}

/**
 * Installs the chat on a server:
 *
 * - a request without a method from user U (the original protocol) is sent
 *   as a notify `{"sequence": <same>, "type": 3, "message": <same>,
 *   "from": "U"}` to every other user (none of U's own connections), then
 *   answered `{"sequence": <same>, "type": 2, "message": "ok"}`, in that
 *   order;
 * - a user's first connection sends `presence.joined` `{ user }` to every
 *   other `duplex.v1` client that does not listen to the presence feed, and
 *   its last closing `presence.left`;
 * - a {@linkcode PresenceFeed}: a client that calls `presence.listen` gets
 *   `presence.state`, then batched `presence.diff` frames (at most one per
 *   `presenceInterval`) instead of the per-user notifications, and may set
 *   its metadata with `presence.set`;
 * - `users.list` answers the users online, sorted, at most
 *   {@linkcode USERS_PAGE_SIZE} per call: `{ after: <last user of the
 *   previous page>, limit? }` asks for the next page.
 *
 * With a cluster (the server's `cluster` option) all of it spans the
 * instances: the relay reaches the other users on every instance before the
 * "ok"; `users.list` answers `cluster.online()`; presence follows the
 * cluster's `join` and `leave` events (a user's first connection anywhere,
 * its last one closing everywhere, or its instance dying: reason
 * `"expired"`), which every instance sees and delivers to its own clients.
 *
 * @param server The server.
 * @param options The presence interval.
 * @returns A function that uninstalls the chat.
 *
 * @example Usage
 * ```ts
 * import { chat, DuplexServer } from "@duplex/ws/server";
 *
 * const server = new DuplexServer();
 * const uninstall = chat(server);
 * uninstall();
 * ```
 */
export function chat<Local extends Endpoint, Remote extends Endpoint>(
  server: DuplexServer<Local, Remote>,
  options: ChatOptions = {},
): () => void {
  const untyped = server as unknown as DuplexServer<AnyEndpoint, AnyEndpoint>;
  const removeRelay = untyped.onRequest((message, context) => {
    const user = context.from as string;
    untyped.notify(message, {
      sequence: context.sequence,
      from: user,
      except: user,
    });
    return "ok";
  });
  const cluster = server.cluster;
  // The sorted list, and its pages encoded, are kept between presence
  // changes; each answer is one page (an amplification bound: SECURITY.md).
  let sorted: string[] | undefined;
  const pages = new Map<string, EncodedResult>();
  const removeList = untyped.handle("users.list", (params) => {
    sorted ??= (cluster?.online() ?? untyped.users()).sort();
    const [start, end] = usersPage(sorted, params);
    const key = `${start}:${end}`;
    let page = pages.get(key);
    if (page === undefined) {
      page = new EncodedResult(sorted.slice(start, end));
      if (pages.size < MAX_CACHED_PAGES) pages.set(key, page);
    }
    return page as unknown as string[];
  });
  // The duplex.v1 connections that do not listen to the feed get one
  // notification per presence change, as before the feed existed; listening
  // ones get the feed's batched diffs only.
  const legacy = new Map<Peer<Endpoint, Endpoint>, Connection>();
  const feed = new PresenceFeed(server, {
    interval: options.presenceInterval,
    onListen: (peer) => legacy.delete(peer),
  });
  const onConnect = (event: CustomEvent<Connection>) => {
    const connection = event.detail;
    // Any negotiated protocol (duplex.v1, a session's, a codec's) is duplex.v1.
    if (connection.protocol === "") return;
    legacy.set(connection.peer as Peer<Endpoint, Endpoint>, connection);
  };
  const onDisconnect = (event: CustomEvent<{ connection: Connection }>) => {
    legacy.delete(event.detail.connection.peer as Peer<Endpoint, Endpoint>);
  };
  // Every instance sees the cluster's presence events, so each one tells
  // only its own clients.
  const tell = (user: string, method: string) => {
    sorted = undefined;
    pages.clear();
    if (legacy.size === 0) return;
    const data = JSON.stringify({
      sequence: 0,
      type: 3,
      message: { user },
      method,
    });
    for (const connection of legacy.values()) {
      if (connection.user === user) continue;
      try {
        connection.peer.sendNotification(data);
      } catch {
        // Closed since it was listed: its disconnect removes it.
      }
    }
  };
  const onOnline = (event: CustomEvent<{ user: string }>) =>
    tell(event.detail.user, "presence.joined");
  const onOffline = (event: CustomEvent<{ user: string }>) =>
    tell(event.detail.user, "presence.left");
  untyped.addEventListener("connect", onConnect);
  untyped.addEventListener("disconnect", onDisconnect);
  const source: EventTarget = cluster ?? server;
  const [joined, left] = cluster === undefined
    ? ["online", "offline"]
    : ["join", "leave"];
  source.addEventListener(joined, onOnline as EventListener);
  source.addEventListener(left, onOffline as EventListener);
  return () => {
    removeRelay();
    removeList();
    feed.close();
    untyped.removeEventListener("connect", onConnect);
    untyped.removeEventListener("disconnect", onDisconnect);
    source.removeEventListener(joined, onOnline as EventListener);
    source.removeEventListener(left, onOffline as EventListener);
  };
}

/**
 * Creates the chat server: a {@linkcode DuplexServer} with {@linkcode chat}
 * installed and the demo page at `GET /`.
 *
 * @param options The server options (`fallback` defaults to the demo page)
 * and the chat's `presenceInterval`.
 * @returns The server; pass its `fetch` to `Deno.serve`.
 *
 * @example Two users chat
 * ```ts
 * import { createChatServer } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const chatServer = createChatServer();
 * await using http = Deno.serve(
 *   { hostname: "127.0.0.1", port: 0, onListen() {} },
 *   chatServer.fetch,
 * );
 * const url = `ws://127.0.0.1:${http.addr.port}/`;
 * const open = (socket: WebSocket) => new Promise((resolve) => socket.onopen = resolve);
 * const next = (socket: WebSocket) =>
 *   new Promise<string>((resolve) => socket.onmessage = (event) => resolve(event.data));
 * const bothConnected = new Promise((resolve) =>
 *   chatServer.addEventListener("connect", () => {
 *     if (chatServer.connections === 2) resolve(undefined);
 *   })
 * );
 * const alice = new WebSocket(`${url}?user=alice`);
 * const bob = new WebSocket(`${url}?user=bob`);
 * await Promise.all([open(alice), open(bob), bothConnected]);
 *
 * const relayed = next(bob);
 * const answered = next(alice);
 * alice.send(JSON.stringify({ sequence: 1, type: 1, message: "hi" }));
 * assert.equal(await relayed, '{"sequence":1,"type":3,"message":"hi","from":"alice"}');
 * assert.equal(await answered, '{"sequence":1,"type":2,"message":"ok"}');
 * const closed = Promise.all(
 *   [alice, bob].map((socket) => new Promise((resolve) => socket.onclose = resolve)),
 * );
 * await chatServer.shutdown(); // closes both with 1001
 * await closed;
 * ```
 */
export function createChatServer(
  options: DuplexServerOptions & ChatOptions = {},
): DuplexServer<ChatServerEndpoint, ChatClientEndpoint> {
  const { presenceInterval, ...serverOptions } = options;
  const server = new DuplexServer<ChatServerEndpoint, ChatClientEndpoint>({
    fallback: serveDemoPage,
    clientPath: "/client.js",
    // The demo page sends images as bytes (its clients load /binary.js).
    codecs: [binaryCodec],
    ...serverOptions,
  });
  chat(server, { presenceInterval });
  return server;
}

function serveDemoPage(request: Request): Response {
  const url = new URL(request.url);
  if (
    url.pathname === "/" &&
    (request.method === "GET" || request.method === "HEAD")
  ) {
    return demoPage();
  }
  if (url.pathname === "/binary.js" && request.method === "GET") {
    return new Response(BINARY_BUNDLE, {
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
      },
    });
  }
  return new Response("Not found\n", {
    status: 404,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}
