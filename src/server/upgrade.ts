/**
 * The upgrade path of a {@linkcode DuplexServer}: the checks a WebSocket
 * upgrade passes, in order (shutting down, upgrade, host, origin, connection
 * slots, authentication, protocol negotiation), before `Deno.upgradeWebSocket`.
 *
 * @module
 */

import { NAGLE_CAPABILITY, SUBPROTOCOL } from "../wire/protocol.ts";
import { BATCH_CAPABILITY } from "../wire/batch.ts";
import { SESSION_PROTOCOL } from "../wire/session_frames.ts";
import type { AckCarrier, Codec } from "../wire/codec.ts";
import { denoOffers, offers, tokenOf } from "./auth.ts";
import {
  type AuthContext,
  type Authenticate,
  type AuthResult,
  MAX_USER_LENGTH,
} from "./authenticate.ts";
import { isUpgrade, text } from "./_http.ts";
import { refuseByClosing } from "./refusal.ts";
import type { ServerMetrics } from "./metrics.ts";
import { isHostAllowed, isOriginAllowed, type OriginPolicy } from "./origin.ts";
import type { ServerLogger } from "./server_options.ts";
import { clientAddress, type ConnectionSlots } from "./connection_slots.ts";

/** What the upgrade path needs. */
export interface UpgradePathOptions {
  authenticate: Authenticate;
  origins: OriginPolicy | undefined;
  hosts: readonly string[] | undefined;
  idleTimeout: number;
  slots: ConnectionSlots;
  trustProxy: boolean;
  /** Whether clients that ask get a session. */
  sessions: boolean;
  metrics: ServerMetrics;
  logger: ServerLogger | undefined;
  /** Whether the server is shutting down. */
  closing: () => boolean;
  /**
   * Takes the upgraded socket, synchronously: from then on its slot is
   * given back when the socket has closed.
   */
  accept: (upgraded: Upgraded) => void;
  /** `"close"`: refusals become a WebSocket closed with 4000 + status. */
  refusals: "status" | "close";
  /** Codecs offered besides JSON, by subprotocol. */
  codecs: readonly Codec[];
  /** The most bytes one received frame may hold (for `Codec.prepare`). */
  maxMessageSize: number;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** An upgrade that passed every check. */
export interface Upgraded {
  socket: WebSocket;
  response: Response;
  user: string;
  protocol: string;
  /** The client reads batch frames (offered `duplex.batch` on `duplex.v1`). */
  batches: boolean;
  /** The client's writes are Nagled (offered `duplex.nagle` on `duplex.v1`). */
  nagle: boolean;
  data: unknown;
  /** The client address its slot is counted under. */
  address: string | undefined;
  /** The client asked for a session (it offered `duplex.session`). */
  session: boolean;
  /** The codec the client chose, when not JSON. */
  codec?: Codec;
  /** The session hello asked for carried acks, granted: the codec's way. */
  carrier?: AckCarrier;
  /** The socket's `idleTimeout`, in seconds (0: none). */
  idleTimeout: number;
}

/** The checks before an upgrade, and the refusals they answer. */
export class UpgradePath {
  #options: UpgradePathOptions;

  /** @param options The policies and the server's state. */
  constructor(options: UpgradePathOptions) {
    this.#options = options;
  }

  /**
   * Runs the checks and upgrades. Synchronous up to the answer unless the
   * authenticate hook returns a promise: an idle connection's handshake
   * leaves less garbage behind (fewer young-generation collections).
   *
   * @param url The request's URL, when the caller parsed it already.
   * @returns The 101 response, or the refusal.
   */
  upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
    url?: URL,
  ): Promise<Response> {
    let response: Response | Promise<Response>;
    try {
      response = this.#check(request, info, url);
    } catch (error) {
      return Promise.reject(error);
    }
    return response instanceof Response
      ? Promise.resolve(this.#answer(request, response))
      : response.then((response) => this.#answer(request, response));
  }

  #answer(
    request: Request,
    response: Response,
  ): Response | Promise<Response> {
    if (
      response.status !== 101 && this.#options.refusals === "close" &&
      isUpgrade(request)
    ) {
      return refuseByClosing(request, response);
    }
    return response;
  }

  #check(
    request: Request,
    info: Deno.ServeHandlerInfo | undefined,
    url: URL | undefined,
  ): Response | Promise<Response> {
    const options = this.#options;
    if (options.closing()) {
      return this.refuse(503, "Cannot connect: server shutting down");
    }
    if (!isUpgrade(request)) {
      return this.refuse(426, "Cannot connect: WebSocket upgrade required");
    }
    if (!isHostAllowed(request, options.hosts)) {
      return this.refuse(
        403,
        "Cannot connect: host not allowed",
        `host=${JSON.stringify(request.headers.get("host"))}`,
      );
    }
    if (!isOriginAllowed(request, options.origins)) {
      return this.refuse(
        403,
        "Cannot connect: origin not allowed",
        `origin=${JSON.stringify(request.headers.get("origin"))}`,
      );
    }
    const address = clientAddress(request, info, options.trustProxy);
    const refusal = options.slots.take(address);
    if (refusal === "total") {
      return this.refuse(503, "Cannot connect: too many connections");
    }
    if (refusal === "address") {
      return this.refuse(
        429,
        "Cannot connect: too many connections from this address",
        `address=${JSON.stringify(address)}`,
      );
    }
    // The slot is ours from here: given back on refusal (only an accepted
    // socket is answered 101), or when the accepted socket has closed.
    let response: Response | Promise<Response>;
    try {
      response = this.#authenticate(request, info, address, url);
    } catch (error) {
      options.slots.release(address);
      throw error;
    }
    if (response instanceof Response) return this.#kept(response, address);
    return response.then(
      (response) => this.#kept(response, address),
      (error) => {
        options.slots.release(address);
        throw error;
      },
    );
  }

  /** Gives the slot back unless the socket was accepted. */
  #kept(response: Response, address: string | undefined): Response {
    if (response.status !== 101) this.#options.slots.release(address);
    return response;
  }

  #authenticate(
    request: Request,
    info: Deno.ServeHandlerInfo | undefined,
    address: string | undefined,
    url: URL | undefined,
  ): Response | Promise<Response> {
    const options = this.#options;
    const header = request.headers.get("sec-websocket-protocol");
    const context: AuthContext = {
      url: url ?? new URL(request.url),
      token: tokenOf(header, request),
      info,
    };
    let result: ReturnType<Authenticate>;
    try {
      result = options.authenticate(request, context);
    } catch (error) {
      return this.#failed(error);
    }
    if (!isThenable(result)) {
      return this.#authenticated(request, address, header, result);
    }
    return Promise.resolve(result).then(
      (result) => this.#authenticated(request, address, header, result),
      (error) => this.#failed(error),
    );
  }

  #failed(error: unknown): Response {
    this.#options.logger?.error("authenticate failed", error);
    return this.refuse(500, "Cannot connect: authentication failed");
  }

  #authenticated(
    request: Request,
    address: string | undefined,
    header: string | null,
    result: AuthResult | Response | null | undefined,
  ): Response {
    const options = this.#options;
    if (result instanceof Response) {
      options.metrics.countRefused(result.status);
      options.logger?.warn(`refused status=${result.status}`);
      return result;
    }
    if (result === null || result === undefined) {
      return this.refuse(401, "Cannot connect: not authenticated");
    }
    const user = typeof result === "string" ? result : result.user;
    const data = typeof result === "string" ? undefined : result.data;
    if (
      typeof user !== "string" || user.length === 0 ||
      user.length > MAX_USER_LENGTH
    ) {
      return this.refuse(
        400,
        `Cannot connect: user id must be 1 to ${MAX_USER_LENGTH} characters`,
      );
    }
    if (options.closing()) {
      return this.refuse(503, "Cannot connect: server shutting down");
    }
    // A codec the client offers (e.g. duplex.v1.bin) and the server has:
    // the connection's protocol, which implies duplex.v1.
    const codec = header === null || options.codecs.length === 0
      ? undefined
      : options.codecs.find((codec) =>
        codec.protocol && offers(header, codec.protocol)
      );
    const protocol = codec?.protocol ??
      (offers(header, SUBPROTOCOL) ? SUBPROTOCOL : "");
    // A client that asks for a session and may have one: the answer names
    // the session protocol (which implies duplex.v1), with the codec's
    // suffix when it also chose a codec (duplex.session.bin).
    const suffix = codec ? protocol.slice(SUBPROTOCOL.length) : "";
    const session = protocol !== "" && options.sessions &&
      offers(header, SESSION_PROTOCOL + suffix);
    // A capability the client declares by offering it; never selected.
    const batches = protocol !== "" && offers(header, BATCH_CAPABILITY);
    const nagle = protocol !== "" && offers(header, NAGLE_CAPABILITY);
    const answer = session ? SESSION_PROTOCOL + suffix : protocol;
    try {
      // Deno answers the subprotocol when its own check finds it (the
      // header split on ", "), which adds it to the same header list
      // without a Headers object; else ("duplex.v1,duplex.auth.x", which
      // that check refuses) it is set on the response afterwards.
      const denoFinds = answer !== "" && denoOffers(header!, answer);
      const { socket, response } = Deno.upgradeWebSocket(request, {
        idleTimeout: options.idleTimeout,
        protocol: denoFinds ? answer : undefined,
      });
      codec?.prepare?.(socket, options.maxMessageSize);
      if (answer !== "" && !denoFinds) {
        response.headers.set("sec-websocket-protocol", answer);
      }
      options.accept({
        socket,
        response,
        user,
        protocol,
        batches,
        nagle,
        data,
        address,
        session,
        codec,
        idleTimeout: options.idleTimeout,
      });
      return response;
    } catch (error) {
      // Deno's own words stay in the log: the client learns only that the
      // handshake was invalid.
      return this.refuse(
        400,
        "Cannot connect: invalid WebSocket handshake",
        `error=${
          JSON.stringify(error instanceof Error ? error.message : String(error))
        }`,
      );
    }
  }

  /** A refusal: counted, logged, answered in plain text. */
  refuse(status: number, message: string, detail = ""): Response {
    this.#options.metrics.countRefused(status);
    this.#options.logger?.warn(
      `refused status=${status}${detail ? ` ${detail}` : ""}`,
    );
    return text(status, message);
  }
}
