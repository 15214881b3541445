/**
 * The upgrade path of a {@linkcode DuplexServer}: the checks a WebSocket
 * upgrade passes, in order (shutting down, upgrade, origin, connection
 * limit, authentication, protocol negotiation), before `Deno.upgradeWebSocket`.
 *
 * @module
 */

import { SUBPROTOCOL } from "../wire/protocol.ts";
import { SESSION_PROTOCOL } from "../wire/session_frames.ts";
import { bearerToken, offeredProtocols } from "./auth.ts";
import {
  type AuthContext,
  type Authenticate,
  type AuthResult,
  MAX_USER_LENGTH,
} from "./authenticate.ts";
import { isUpgrade, text } from "./_http.ts";
import type { ServerMetrics } from "./metrics.ts";
import { isOriginAllowed, type OriginPolicy } from "./origin.ts";
import type { ServerLogger } from "./server_options.ts";

/** What the upgrade path needs. */
export interface UpgradePathOptions {
  authenticate: Authenticate;
  origins: OriginPolicy | undefined;
  idleTimeout: number;
  maxConnections: number;
  /** Whether clients that ask get a session. */
  sessions: boolean;
  metrics: ServerMetrics;
  logger: ServerLogger | undefined;
  /** Whether the server is shutting down. */
  closing: () => boolean;
  /** The sockets the server holds (open or closing). */
  sockets: () => number;
}

/** An upgrade that passed every check. */
export interface Upgraded {
  socket: WebSocket;
  response: Response;
  user: string;
  protocol: string;
  data: unknown;
  /** The client asked for a session (it offered `duplex.session`). */
  session: boolean;
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
   * @returns The upgraded socket, or the refusal.
   */
  async upgrade(
    request: Request,
    info?: Deno.ServeHandlerInfo,
  ): Promise<Upgraded | Response> {
    const options = this.#options;
    if (options.closing()) {
      return this.refuse(503, "Cannot connect: server shutting down");
    }
    if (!isUpgrade(request)) {
      return this.refuse(426, "Cannot connect: WebSocket upgrade required");
    }
    if (!isOriginAllowed(request, options.origins)) {
      return this.refuse(
        403,
        "Cannot connect: origin not allowed",
        `origin=${JSON.stringify(request.headers.get("origin"))}`,
      );
    }
    if (options.sockets() >= options.maxConnections) {
      return this.refuse(503, "Cannot connect: too many connections");
    }
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
    const protocol = offered.includes(SUBPROTOCOL) ? SUBPROTOCOL : "";
    // A client that asks for a session and may have one: the answer names
    // the session protocol (which implies duplex.v1).
    const session = protocol !== "" && options.sessions &&
      offered.includes(SESSION_PROTOCOL);
    try {
      const { socket, response } = Deno.upgradeWebSocket(request, {
        protocol: session ? SESSION_PROTOCOL : protocol || undefined,
        idleTimeout: options.idleTimeout,
      });
      return { socket, response, user, protocol, data, session };
    } catch (error) {
      return this.refuse(
        400,
        `Cannot connect: ${error instanceof Error ? error.message : error}`,
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
