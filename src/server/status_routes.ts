/**
 * The status routes of a {@linkcode DuplexServer}: the health check, the
 * Prometheus metrics and (opt-in) the browser client.
 *
 * @module
 */

import { text } from "./_http.ts";
import { clientScript } from "./client_script.ts";

/** What the status routes need. */
export interface StatusRoutesOptions {
  /** Path of the health check, or `false` for none. */
  healthPath: string | false;
  /** Path of the metrics, or `false` for none. */
  metricsPath: string | false;
  /** Path of the browser client, or `false` for none (open to everyone). */
  clientPath: string | false;
  /** Whether the server is shutting down (the health check answers 503). */
  closing: () => boolean;
  /** The metrics in Prometheus' text format. */
  render: () => string;
  /** Who may read them; `undefined` lets everyone. */
  authorize: StatusAuthorize | undefined;
}

/**
 * Decides who may read the health check and the metrics: return `false` to
 * answer 403 instead.
 *
 * @example Only from the machine itself
 * ```ts
 * import type { StatusAuthorize } from "@duplex/ws/server";
 *
 * const authorize: StatusAuthorize = (_request, info) =>
 *   (info?.remoteAddr as Deno.NetAddr | undefined)?.hostname === "127.0.0.1";
 * ```
 */
export type StatusAuthorize = (
  request: Request,
  info: Deno.ServeHandlerInfo | undefined,
) => boolean | Promise<boolean>;

/** Answers the health check and the metrics. */
export class StatusRoutes {
  #options: StatusRoutesOptions;

  /** @param options The paths and the server's state. */
  constructor(options: StatusRoutesOptions) {
    this.#options = options;
  }

  /**
   * Answers a request for a status route.
   *
   * @returns The response, or `undefined` when the request is for another
   * route.
   */
  answer(
    request: Request,
    path: string,
    info: Deno.ServeHandlerInfo | undefined,
  ): Promise<Response> | undefined {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    const { healthPath, metricsPath, clientPath, authorize } = this.#options;
    if (path === clientPath) return Promise.resolve(clientScript(request));
    if (path !== healthPath && path !== metricsPath) return undefined;
    if (authorize === undefined) return Promise.resolve(this.#status(path));
    return Promise.resolve(authorize(request, info)).then(
      (allowed) => allowed ? this.#status(path) : text(403, "Forbidden\n"),
      () => text(403, "Forbidden\n"),
    );
  }

  #status(path: string): Response {
    const { healthPath, closing, render } = this.#options;
    if (path === healthPath) {
      return closing() ? text(503, "shutting down\n") : text(200, "ok\n");
    }
    return new Response(render(), {
      headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
    });
  }
}
