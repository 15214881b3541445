/**
 * `Deno.serve` that survives its accept loop failing. When the process runs
 * out of file descriptors (EMFILE), Deno 2.9's HTTP server stops accepting:
 * its `finished` promise rejects with "Too many open files" and the listener
 * closes, while upgraded WebSockets stay open. A program that ignores
 * `finished` dies of the unhandled rejection; this one logs it and listens
 * again on the same address after a delay, retrying until descriptors are
 * free again.
 *
 * @module
 */

import type { ServerLogger } from "./server_options.ts";

/** Options of {@linkcode serveForever}. */
export interface ServeForeverOptions {
  /** The port. */
  port: number;
  /** The address to listen on. */
  hostname?: string;
  /** Where failures and restarts are logged. */
  logger: ServerLogger;
  /** Delay before listening again, in milliseconds. */
  retryDelay?: number;
  /** Called each time the server listens. */
  onListen?: (addr: Deno.NetAddr) => void;
}

/** A server that listens again after a failure. */
export interface ForeverServer {
  /** Stops listening and waits for the current HTTP server to finish. */
  shutdown(): Promise<void>;
}

/**
 * Serves `handler`, listening again after the accept loop failed.
 *
 * @param handler The request handler.
 * @param options Address, logger, retry delay.
 * @returns The handle to stop it.
 */
export function serveForever(
  handler: Deno.ServeHandler<Deno.NetAddr>,
  options: ServeForeverOptions,
): ForeverServer {
  const { logger, retryDelay = 1_000 } = options;
  let http: Deno.HttpServer<Deno.NetAddr> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let stopped = false;
  // Port 0 picks a port once: the restarts listen on the same one.
  let port = options.port;
  const retry = (): void => {
    if (!stopped) timer = setTimeout(listen, retryDelay);
  };
  function listen(): void {
    timer = undefined;
    try {
      http = Deno.serve({
        port,
        hostname: options.hostname,
        onListen: (addr) => {
          port = addr.port;
          options.onListen?.(addr);
        },
      }, handler);
    } catch (error) {
      logger.error(`Cannot listen: retrying in ${retryDelay} ms`, error);
      http = undefined;
      retry();
      return;
    }
    const current = http;
    current.finished.then(
      () => {},
      (error) => {
        if (http === current) http = undefined;
        logger.error(
          `HTTP server failed: listening again in ${retryDelay} ms`,
          error,
        );
        retry();
      },
    );
  }
  listen();
  return {
    async shutdown() {
      stopped = true;
      clearTimeout(timer);
      await http?.shutdown().catch(() => {});
    },
  };
}
