/**
 * The upgrade path of a {@linkcode DuplexServer}: the checks a WebSocket
 * upgrade passes, in order (shutting down, upgrade, host, origin, connection
 * slots, authentication, protocol negotiation), before `Deno.upgradeWebSocket`.
 *
 * @module
 */

import { SUBPROTOCOL } from "../wire/protocol.ts";
import { BATCH_CAPABILITY } from "../wire/batch.ts";
import { SESSION_PROTOCOL } from "../wire/session_frames.ts";
import type { Codec } from "../wire/codec.ts";
import { bearerToken, offeredProtocols } from "./auth.ts";
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

/** An upgrade that passed every check. */
export interface Upgraded {
  socket: WebSocket;
  response: Response;
  user: string;
  protocol: string;
  /** The client reads batch frames (offered `duplex.batch` on `duplex.v1`). */
  batches: boolean;
  data: unknown;
  /** The client address its slot is counted under. */
  address: string | undefined;
  /** The client asked for a session (it offered `duplex.session`). */
  session: boolean;
  /** The codec the client chose, when not JSON. */
  codec?: Codec;
}

/** The checks before an upgrade, and the refusals they answer. */
export class UpgradePath {
  #options: UpgradePathOptions;

  /** @param options The policies and the server's state. */
  constructor(options: UpgradePathOptions) {
    this.#options = options;
  }

  /**
   * Runs the checks and upgrades.
   *
   * @returns The 101 response, or the refusal.
   */
  async upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
    const response = await this.#check(request, info);
    if (
      response.status !== 101 && this.#options.refusals === "close" &&
      isUpgrade(request)
    ) {
      return refuseByClosing(request, response);
    }
    return response;
  }

  async #check(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Response> {
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
    // The slot is ours from here: given back on refusal, or when the
    // accepted socket has closed.
    let accepted = false;
    try {
      return await this.#authenticated(request, info, address, () => {
        accepted = true;
      });
    } finally {
      if (!accepted) options.slots.release(address);
    }
  }

  async #authenticated(
    request: Request,
    info: Deno.ServeHandlerInfo | undefined,
    address: string | undefined,
    accepted: () => void,
  ): Promise<Response> {
    const options = this.#options;
    const context: AuthContext = {
      url: new URL(request.url),
      token: bearerToken(request),
      info,
    };
    let result: AuthResult | Response | null | undefined;
    try {
      result = await options.authenticate(request, context);
    } catch (error) {
      options.logger?.error("authenticate failed", error);
      return this.refuse(500, "Cannot connect: authentication failed");
    }
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
    const offered = offeredProtocols(request);
    // A codec the client offers (e.g. duplex.v1.bin) and the server has:
    // the connection's protocol, which implies duplex.v1.
    const codec = options.codecs.find((codec) =>
      codec.protocol && offered.includes(codec.protocol)
    );
    const protocol = codec?.protocol ??
      (offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : "");
    // A client that asks for a session and may have one: the answer names
    // the session protocol (which implies duplex.v1), with the codec's
    // suffix when it also chose a codec (duplex.session.bin).
    const suffix = codec ? protocol.slice(SUBPROTOCOL.length) : "";
    const session = protocol !== "" && options.sessions &&
      offered.includes(SESSION_PROTOCOL + suffix);
    // A capability the client declares by offering it; never selected.
    const batches = protocol !== "" && offered.includes(BATCH_CAPABILITY);
    try {
      // The subprotocol is answered here rather than by Deno, whose check
      // splits the header on ", " only and refuses "duplex.v1,duplex.auth.x".
      const { socket, response } = Deno.upgradeWebSocket(request, {
        idleTimeout: options.idleTimeout,
      });
      codec?.prepare?.(socket, options.maxMessageSize);
      if (protocol) {
        response.headers.set(
          "sec-websocket-protocol",
          session ? SESSION_PROTOCOL + suffix : protocol,
        );
      }
      options.accept({
        socket,
        response,
        user,
        protocol,
        batches,
        data,
        address,
        session,
        codec,
      });
      accepted();
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
