/**
 * The status routes of a {@linkcode DuplexServer}: the health check and the
 * Prometheus metrics.
 *
 * @module
 */

import { text } from "./_http.ts";

/** What the status routes need. */
export interface StatusRoutesOptions {
  /** Path of the health check, or `false` for none. */
  healthPath: string | false;
  /** Path of the metrics, or `false` for none. */
  metricsPath: string | false;
  /** Whether the server is shutting down (the health check answers 503). */
  closing: () => boolean;
  /** The metrics in Prometheus' text format. */
  render: () => string;
}

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
  answer(request: Request, path: string): Response | undefined {
    if (request.method !== "GET" && request.method !== "HEAD") return undefined;
    const { healthPath, metricsPath, closing, render } = this.#options;
    if (path === healthPath) {
      return closing() ? text(503, "shutting down\n") : text(200, "ok\n");
    }
    if (path === metricsPath) {
      return new Response(render(), {
        headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
      });
    }
    return undefined;
  }
}
