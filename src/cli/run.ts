/**
 * The `duplex` CLI: connects a {@linkcode Client} to a URL, then runs one
 * command (call, request, notify, emit), listens for notifications, or
 * reads commands from standard input.
 *
 * @module
 */

import { Client } from "../client/client.ts";
import type { RequestContext, RequestHandler } from "../peer/peer.ts";
import { Registry } from "../peer/receiver.ts";
import { RemoteError } from "../wire/errors.ts";
import { type CliOptions, parseCliArgs, USAGE, UsageError } from "./args.ts";
import { interactive } from "./interactive.ts";
import { type CliIo, EXIT, exitCode, ms, Printer, show } from "./output.ts";
import {
  type Asked,
  printNotification,
  send,
  type Session,
} from "./session.ts";

/** A handler map that answers every method with one fallback handler. */
class FallbackMap extends Map<string | undefined, RequestHandler<never>> {
  #fallback: RequestHandler<never>;
  constructor(fallback: RequestHandler<never>) {
    super();
    this.#fallback = fallback;
  }
  override get(method: string | undefined): RequestHandler<never> {
    return super.get(method) ?? this.#fallback;
  }
}

/** A registry whose default answer covers every method: the CLI's. */
class AnyMethodRegistry extends Registry {
  override readonly handlers: FallbackMap;
  constructor(fallback: RequestHandler<never>) {
    super();
    this.handlers = new FallbackMap(fallback);
  }
}

/**
 * Runs the CLI with `argv` (e.g. `Deno.args`) and resolves with the exit
 * code: 0 ok, 1 the server answered with an error, 2 usage, 3 cannot
 * connect, 4 timed out, 5 connection closed.
 *
 * @param argv The command line, without the program name.
 * @param io Where to read and write.
 * @returns The exit code.
 *
 * @example Call a method of a server
 * ```ts
 * import { runCli } from "@duplex/ws/cli";
 * import { DuplexServer } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const duplex = new DuplexServer();
 * duplex.handle("sum", (numbers: number[]) => numbers.reduce((a, b) => a + b, 0));
 * await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, duplex.fetch);
 *
 * const out: string[] = [];
 * const url = `ws://127.0.0.1:${http.addr.port}`;
 * const code = await runCli([url, "-u", "ada", "-q", "call", "sum", "[1,2,3]"], {
 *   out: (line) => out.push(line),
 *   err: () => {},
 * });
 * assert.equal(code, 0);
 * assert.deepEqual(out, ["6"]);
 * await duplex.shutdown();
 * ```
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo,
): Promise<number> {
  let options: CliOptions;
  try {
    options = parseCliArgs(argv);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.err(error.message);
    io.err("Run with --help for the usage.");
    return EXIT.usage;
  }
  if (options.help) {
    for (const line of USAGE.split("\n")) io.out(line);
    return EXIT.ok;
  }
  const printer = new Printer(io, options.json, options.quiet);
  const asked = new Map<number, Asked>();
  let askedIds = 0;
  const streaming = options.command === "listen" ||
    options.command === "interactive";
  const answer = (
    params: unknown,
    context: RequestContext,
  ): unknown => {
    const method = context.method;
    const answers = options.answers;
    const key = method !== undefined && answers.has(method) ? method : "*";
    if (answers.has(key)) return answers.get(key);
    if (options.command !== "interactive") {
      throw new RemoteError({
        code: "METHOD_NOT_FOUND",
        message: `Cannot handle request: the CLI has no answer for ${
          method === undefined ? "the default handler" : method
        } (use --answer)`,
      });
    }
    const id = ++askedIds;
    printer.event(
      { type: "request", id, method, message: params, from: context.from },
      `request #${id}${method === undefined ? "" : ` ${method}`}: ${
        show(params)
      }   (reply ${id} <value> | fail ${id} <code> [message])`,
    );
    return new Promise((resolve, reject) => {
      const settle = () => {
        asked.delete(id);
        context.signal.removeEventListener("abort", abort);
      };
      const abort = () => {
        settle();
        printer.event(
          { type: "cancelled", id },
          `request #${id} cancelled by the server`,
        );
        reject(context.signal.reason);
      };
      context.signal.addEventListener("abort", abort, { once: true });
      asked.set(id, {
        resolve: (value) => (settle(), resolve(value)),
        reject: (error) => (settle(), reject(error)),
      });
    });
  };
  const client = new Client(options.url, {
    registry: new AnyMethodRegistry(answer as RequestHandler<never>),
    protocols: options.protocols,
    timeout: options.timeout,
    connectTimeout: options.connectTimeout,
    maxAttempts: options.reconnect ? Infinity : 0,
  });
  const gone = Promise.withResolvers<void>();
  const start = performance.now();
  client.addEventListener("open", () => {
    const socket = client.peer?.socket as WebSocket | undefined;
    const protocol = socket?.protocol || "(none)";
    const text = `connected to ${options.url} (subprotocol ${protocol}) in ${
      ms(start)
    } ms`;
    if (streaming) {
      printer.status({ type: "open", url: options.url, protocol }, text);
    } else if (!options.quiet && !options.json) io.err(text);
  });
  client.addEventListener("reconnecting", (event) => {
    printer.status(
      { type: "reconnecting", attempt: event.attempt, delay: event.delay },
      `reconnecting in ${event.delay} ms (attempt ${event.attempt})`,
    );
  });
  client.addEventListener("close", (event) => {
    if (streaming) {
      printer.status(
        { type: "close", code: event.code, reason: event.reason },
        `closed ${event.code}${event.reason ? ` ${event.reason}` : ""}`,
      );
    }
    if (client.state === "closed") gone.resolve();
  });
  const session: Session = {
    options,
    client,
    printer,
    io,
    asked,
    gone: gone.promise,
  };
  try {
    try {
      await client.connect();
    } catch (error) {
      printer.outcome(false, error, ms(start));
      return exitCode(error);
    }
    switch (options.command) {
      case "listen":
        return await listen(session);
      case "interactive":
        return await interactive(session);
      default:
        return await once(session);
    }
  } finally {
    await client.close();
  }
}

/** Runs one request or notification and reports it. */
async function once(session: Session): Promise<number> {
  const { client, options, printer } = session;
  const start = performance.now();
  try {
    const value = await send(client, options.command, options);
    printer.outcome(true, value, ms(start));
    return EXIT.ok;
  } catch (error) {
    printer.outcome(false, error, ms(start));
    return exitCode(error);
  }
}

/** Prints notifications until interrupted, `count` of them, or a drop. */
async function listen(session: Session): Promise<number> {
  const { client, options, printer, io } = session;
  const done = Promise.withResolvers<number>();
  let seen = 0;
  const off = client.registry.on<unknown>(
    options.method,
    (_, frame) => {
      printNotification(printer, frame);
      if (++seen === options.count) done.resolve(EXIT.ok);
    },
  );
  const abort = () => done.resolve(EXIT.ok);
  io.signal?.addEventListener("abort", abort, { once: true });
  if (io.signal?.aborted) abort();
  session.gone.then(() => done.resolve(EXIT.closed));
  try {
    return await done.promise;
  } finally {
    off();
    io.signal?.removeEventListener("abort", abort);
  }
}
