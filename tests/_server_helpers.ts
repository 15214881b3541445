/**
 * Helpers of the server and chat tests: a real `Deno.serve` on 127.0.0.1
 * port 0 around a {@linkcode DuplexServer}, original-protocol clients on raw
 * WebSockets, `duplex.v1` clients as Peers, and waits on server state.
 *
 * @module
 */

import { type AnyEndpoint, type Endpoint, Peer } from "../mod.ts";
import type { DuplexServer } from "../server.ts";
import { deadline, DEADLINE_MS, MessageQueue, once } from "./_helpers.ts";
import { IDLE_HOPS } from "../src/server/coalescing_socket.ts";

/**
 * Serves `duplex.fetch` on 127.0.0.1, port 0. Use with `await using`.
 *
 * @param duplex The server.
 * @returns The HTTP server.
 */
export function listen<L extends Endpoint, R extends Endpoint>(
  duplex: DuplexServer<L, R>,
): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    duplex.fetch,
  );
}

/** The WebSocket URL of user `user` on a test server. */
export function wsUrl(
  http: Deno.HttpServer<Deno.NetAddr>,
  user: string,
  path = "/",
): string {
  return `ws://127.0.0.1:${http.addr.port}${path}?user=${
    encodeURIComponent(user)
  }`;
}

/**
 * Opens a WebSocket and waits for `open`; rejects (with no timer left
 * behind) when it fails first.
 */
export async function open(
  url: string,
  protocols?: string | string[],
): Promise<WebSocket> {
  const socket = new WebSocket(url, protocols);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const onOpen = () => resolve();
  const onError = () => reject(new Error(`Cannot open ${url}`));
  socket.addEventListener("open", onOpen, { once: true });
  socket.addEventListener("error", onError, { once: true });
  try {
    await deadline(promise, DEADLINE_MS, `${url} to open`);
  } finally {
    socket.removeEventListener("open", onOpen);
    socket.removeEventListener("error", onError);
  }
  return socket;
}

/**
 * Resolves once `predicate()` holds, checking now and after every
 * `connect`, `disconnect`, `online` and `offline` event of the server.
 */
export function until<L extends Endpoint, R extends Endpoint>(
  duplex: DuplexServer<L, R>,
  predicate: () => boolean,
  what = "server state",
  ms: number = DEADLINE_MS,
): Promise<void> {
  if (predicate()) return Promise.resolve();
  const types = ["connect", "disconnect", "online", "offline"];
  return new Promise<void>((resolve, reject) => {
    const check = () => {
      if (!predicate()) return;
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`Timed out after ${ms} ms waiting for ${what}`));
    }, ms);
    const cleanup = () => {
      clearTimeout(timer);
      for (const type of types) duplex.removeEventListener(type, check);
    };
    for (const type of types) duplex.addEventListener(type, check);
  });
}

/** A client of the original protocol: a raw WebSocket without subprotocol. */
export interface LegacyClient extends AsyncDisposable {
  socket: WebSocket;
  queue: MessageQueue;
  /** Sends a frame as JSON. */
  send(frame: Record<string, unknown>): void;
}

/**
 * Opens a raw WebSocket client (by default offering no subprotocol: a
 * client of the original protocol) and waits until the server has
 * registered it.
 */
export async function legacyClient<L extends Endpoint, R extends Endpoint>(
  duplex: DuplexServer<L, R>,
  http: Deno.HttpServer<Deno.NetAddr>,
  user: string,
  protocols?: string | string[],
): Promise<LegacyClient> {
  const before = duplex.connectionsOf(user).length;
  const registered = until(
    duplex,
    () => duplex.connectionsOf(user).length > before,
    `${user} to connect`,
  );
  const socket = await open(wsUrl(http, user), protocols);
  const queue = new MessageQueue(socket);
  await registered;
  return {
    socket,
    queue,
    send: (frame) => socket.send(JSON.stringify(frame)),
    async [Symbol.asyncDispose]() {
      await closeAndWait(socket);
    },
  };
}

/** A `duplex.v1` client: a Peer over a WebSocket that offered it. */
export interface DuplexClient<Local extends Endpoint, Remote extends Endpoint>
  extends AsyncDisposable {
  socket: WebSocket;
  peer: Peer<Local, Remote>;
}

/** Opens a `duplex.v1` client and waits until the server registered it. */
export async function duplexClient<
  Local extends Endpoint = AnyEndpoint,
  Remote extends Endpoint = AnyEndpoint,
  SL extends Endpoint = AnyEndpoint,
  SR extends Endpoint = AnyEndpoint,
>(
  duplex: DuplexServer<SL, SR>,
  http: Deno.HttpServer<Deno.NetAddr>,
  user: string,
  path = "/",
): Promise<DuplexClient<Local, Remote>> {
  const before = duplex.connectionsOf(user).length;
  const registered = until(
    duplex,
    () => duplex.connectionsOf(user).length > before,
    `${user} to connect`,
  );
  const socket = await open(wsUrl(http, user, path), "duplex.v1");
  const peer = new Peer<Local, Remote>(socket);
  await registered;
  return {
    socket,
    peer,
    async [Symbol.asyncDispose]() {
      await closeAndWait(socket);
    },
  };
}

/**
 * Closes a WebSocket (unless closed) and waits for its close event.
 *
 * @returns The close event (a synthetic 1005 one when it was closed already).
 */
export async function closeAndWait(
  socket: WebSocket,
  code?: number,
): Promise<CloseEvent> {
  if (socket.readyState === WebSocket.CLOSED) {
    return new CloseEvent("close", { code: 1005 });
  }
  const closed = once<CloseEvent>(socket, "close");
  if (socket.readyState !== WebSocket.CLOSING) socket.close(code);
  return await closed;
}

/** Collects log lines. */
export function recordingLogger(): {
  lines: string[];
  info(message: string): void;
  warn(message: string): void;
  error(message: string, error?: unknown): void;
} {
  const lines: string[] = [];
  return {
    lines,
    info: (message) => lines.push(`info ${message}`),
    warn: (message) => lines.push(`warn ${message}`),
    error: (message) => lines.push(`error ${message}`),
  };
}

/**
 * A socket for a `CoalescingSocket` to write to: open, it keeps what is
 * sent in `sent` and the message listener added last in `listener`.
 */
export function recordingSocket(sent: string[]): {
  readyState: number;
  bufferedAmount: number;
  protocol: string;
  listener: EventListenerObject | undefined;
  send(data: string): void;
  close(): void;
  addEventListener(type: string, listener: EventListenerObject): void;
  removeEventListener(type: string, listener: EventListenerObject): void;
} {
  return {
    readyState: 1,
    bufferedAmount: 0,
    protocol: "duplex.v1",
    listener: undefined,
    send(data: string) {
      sent.push(data);
    },
    close() {},
    addEventListener(type, listener) {
      if (type === "message") this.listener = listener;
    },
    removeEventListener(type, listener) {
      if (type === "message" && this.listener === listener) {
        this.listener = undefined;
      }
    },
  };
}

/** Awaits enough microtask hops for a coalescer to see its burst end. */
export async function afterBurst(): Promise<void> {
  for (let i = 0; i < IDLE_HOPS * 4; i++) await Promise.resolve();
}
