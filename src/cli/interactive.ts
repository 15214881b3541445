/**
 * The CLI's interactive command: one command per line of standard input
 * (call, request, notify, emit, reply, fail), everything that arrives
 * printed as it comes. Ends at the end of the input (once what was sent
 * has been answered), on `quit`, on an abort, or when the client gives up.
 *
 * @module
 */

import { RemoteError } from "../wire/errors.ts";
import { parseValue } from "./args.ts";
import { EXIT, ms } from "./output.ts";
import { printNotification, send, type Session } from "./session.ts";

/** The help of the interactive commands. */
export const COMMANDS_HELP: string =
  `call <method> [value]    request <method> (value: JSON, or text)
request <value>          request the default handler
notify <value>           notification without a method
emit <method> [value]    notification of <method>
reply <id> [value]       answer the server's request #<id>
fail <id> <code> [text]  answer the server's request #<id> with an error
quit                     close and exit (so does the end of the input)`;

/** Splits off the first word of `text`. */
function word(text: string): [string, string] {
  const trimmed = text.trimStart();
  const space = trimmed.search(/\s/);
  return space < 0
    ? [trimmed, ""]
    : [trimmed.slice(0, space), trimmed.slice(space + 1).trim()];
}

/** Lines of a byte stream; the last one even without a final newline. */
async function* lines(
  reader: ReadableStreamDefaultReader<string>,
): AsyncGenerator<string> {
  let buffer = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline: number;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      yield buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
    }
  }
  if (buffer) yield buffer;
}

/**
 * Runs the interactive command.
 *
 * @param session The connected session.
 * @returns The exit code: 0 after the end of the input or `quit`, 5 when
 * the connection was lost for good.
 */
export async function interactive(session: Session): Promise<number> {
  const { client, printer, io, asked } = session;
  const off = client.registry.on<unknown>(
    undefined,
    (_, frame) => printNotification(printer, frame),
  );
  const inFlight = new Set<Promise<unknown>>();
  let ids = 0;
  const reader = io.stdin?.pipeThrough(new TextDecoderStream()).getReader();
  const stop = Promise.withResolvers<number>();
  let stopped = false;
  const abort = () => stop.resolve(EXIT.ok);
  io.signal?.addEventListener("abort", abort, { once: true });
  if (io.signal?.aborted) abort();
  session.gone.then(() => stop.resolve(EXIT.closed));

  const run = (line: string): boolean => {
    const [command, rest] = word(line);
    switch (command) {
      case "":
        return true;
      case "quit":
      case "exit":
        return false;
      case "help":
        for (const help of COMMANDS_HELP.split("\n")) io.err(help);
        return true;
      case "call":
      case "emit":
      case "request":
      case "notify": {
        let method: string | undefined;
        let value = rest;
        if (command === "call" || command === "emit") {
          [method, value] = word(rest);
          if (!method) {
            printer.problem(`Cannot run ${command}: the method is missing`);
            return true;
          }
        }
        const payload = value === "" ? undefined : parseValue(value);
        const id = ++ids;
        const start = performance.now();
        const sent = send(client, command, { method, payload }).then(
          (result) => printer.outcome(true, result, ms(start), { id }),
          (error) => printer.outcome(false, error, ms(start), { id }),
        ).finally(() => inFlight.delete(sent));
        inFlight.add(sent);
        return true;
      }
      case "reply":
      case "fail": {
        const [idText, tail] = word(rest);
        const waiting = asked.get(Number(idText));
        if (!waiting) {
          printer.problem(
            `Cannot ${command}: no request #${idText} is waiting for an answer`,
          );
          return true;
        }
        if (command === "reply") {
          waiting.resolve(tail === "" ? undefined : parseValue(tail));
        } else {
          const [code, message] = word(tail);
          waiting.reject(
            new RemoteError({
              code: code || "ERROR",
              message: message || "Refused",
            }),
          );
        }
        return true;
      }
      default:
        printer.problem(
          `Cannot run ${
            JSON.stringify(command)
          }: unknown command ("help" lists them)`,
        );
        return true;
    }
  };

  const read = (async () => {
    if (!reader) return EXIT.ok;
    for await (const line of lines(reader)) {
      if (!run(line)) return EXIT.ok;
    }
    // The end of the input: let what was sent be answered first.
    while (inFlight.size && !stopped) await Promise.allSettled([...inFlight]);
    return EXIT.ok;
  })();
  try {
    return await Promise.race([read, stop.promise]);
  } finally {
    stopped = true;
    off();
    io.signal?.removeEventListener("abort", abort);
    await reader?.cancel().catch(() => {});
    await read.catch(() => {});
  }
}
