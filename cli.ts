/**
 * `duplex`, the command-line client of the Duplex protocol (like `wscat`,
 * but it speaks requests, responses and notifications): connect to a URL
 * (user, token, subprotocols), send one request or notification and print
 * the answer (the exit code tells the outcome), print notifications as they
 * come, or type commands and answer the server's requests interactively.
 * `--json` prints one JSON object per line for scripts.
 *
 * ```sh
 * deno run -A jsr:@duplex/ws/cli ws://localhost:8000 -u ada call users.list
 * deno task cli ws://localhost:8000 -u ada listen --json
 * ```
 *
 * @example Run it from code
 * ```ts
 * import { runCli } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * const errors: string[] = [];
 * const code = await runCli(["ws://127.0.0.1:1", "call"], {
 *   out: () => {},
 *   err: (line) => errors.push(line),
 * });
 * assert.equal(code, 2); // usage: the method is missing
 * assert.match(errors[0], /the method is missing/);
 * ```
 *
 * @module
 */

import { runCli } from "./src/cli/run.ts";

export {
  type CliCommand,
  type CliOptions,
  parseCliArgs,
  parseValue,
  USAGE,
  UsageError,
} from "./src/cli/args.ts";
export { type CliIo } from "./src/cli/output.ts";
export { runCli } from "./src/cli/run.ts";

if (import.meta.main) {
  const controller = new AbortController();
  const stop = () => controller.abort();
  const signals: Deno.Signal[] = Deno.build.os === "windows"
    ? ["SIGINT"]
    : ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, stop);
  const encoder = new TextEncoder();
  const code = await runCli(Deno.args, {
    out: (line) => Deno.stdout.writeSync(encoder.encode(`${line}\n`)),
    err: (line) => Deno.stderr.writeSync(encoder.encode(`${line}\n`)),
    stdin: Deno.stdin.readable,
    signal: controller.signal,
  });
  for (const signal of signals) Deno.removeSignalListener(signal, stop);
  Deno.exit(code);
}
