/**
 * What the commands of the CLI share: the session (client, printer, the
 * server's requests waiting for an answer), sending one command, printing
 * one notification.
 *
 * @module
 */

import type { Client } from "../client/client.ts";
import type { RemoteError } from "../wire/errors.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import type { CliOptions } from "./args.ts";
import { type CliIo, type Printer, show } from "./output.ts";

/** What the server asks the CLI, while it waits for an answer typed in. */
export interface Asked {
  resolve(value: unknown): void;
  reject(error: RemoteError): void;
}

/** Everything a running command shares. */
export interface Session {
  options: CliOptions;
  client: Client;
  printer: Printer;
  io: CliIo;
  /** The server's requests waiting for `reply` / `fail`, by id. */
  asked: Map<number, Asked>;
  /** Resolves when the client closes for good (given up, refused). */
  gone: Promise<void>;
}

/**
 * Sends what a command says: the result of a request, `true` for a
 * notification handed to the socket.
 */
export function send(
  client: Client,
  command: string,
  { method, payload }: { method?: string; payload?: unknown },
): Promise<unknown> {
  switch (command) {
    case "call":
      return client.request(payload, { method });
    case "request":
      return client.request(payload);
    case "notify":
      return client.notify(payload);
    default:
      return client.notify(payload, { method });
  }
}

/** Prints one notification. */
export function printNotification(printer: Printer, frame: NotifyFrame): void {
  const { method, from, message } = frame;
  printer.event(
    { type: "notify", method, from, message },
    `notify${method === undefined ? "" : ` ${method}`}${
      from === undefined ? "" : ` from ${from}`
    }: ${show(message)}`,
  );
}
