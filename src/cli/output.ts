/**
 * How the CLI prints: one line per event, as text for people or as one
 * JSON object per line for scripts (`--json`), and the exit code of an
 * outcome.
 *
 * @module
 */

import {
  ConnectError,
  ConnectionClosedError,
  RemoteError,
  RequestTimeoutError,
} from "../wire/errors.ts";

/**
 * Where the CLI reads and writes. The program uses the process's standard
 * streams; tests and embedders pass their own.
 *
 * @example Capture the output
 * ```ts
 * import { type CliIo, runCli } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * const lines: string[] = [];
 * const io: CliIo = { out: (line) => lines.push(line), err: () => {} };
 * assert.equal(await runCli(["--help"], io), 0);
 * assert.match(lines[0], /^Usage: duplex/);
 * ```
 */
export interface CliIo {
  /** Writes one line of output (results, notifications). */
  out(line: string): void;
  /** Writes one line of status (connected, latency, errors). */
  err(line: string): void;
  /**
   * Standard input, for the interactive command.
   *
   * @default {undefined} (interactive mode then reads nothing and ends)
   */
  stdin?: ReadableStream<Uint8Array>;
  /**
   * Ends `listen` and `interactive` (the program aborts it on SIGINT and
   * SIGTERM).
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Exit codes of the CLI. */
export const EXIT = {
  ok: 0,
  remote: 1,
  usage: 2,
  connect: 3,
  timeout: 4,
  closed: 5,
} as const;

/** The exit code that reports `error`. */
export function exitCode(error: unknown): number {
  if (error instanceof RemoteError) return EXIT.remote;
  if (error instanceof ConnectError) return EXIT.connect;
  if (error instanceof RequestTimeoutError) return EXIT.timeout;
  if (error instanceof ConnectionClosedError) return EXIT.closed;
  return EXIT.closed;
}

/** The JSON view of an error: `code`, `message`, and `data` when present. */
export function errorJson(error: unknown): Record<string, unknown> {
  const code = (error as { code?: unknown })?.code;
  const json: Record<string, unknown> = {
    code: typeof code === "string" ? code : "ERROR",
    message: error instanceof Error ? error.message : String(error),
  };
  const data = (error as { data?: unknown })?.data;
  if (data !== undefined) json.data = data;
  const status = (error as { status?: unknown })?.status;
  if (typeof status === "number") json.status = status;
  return json;
}

/** A value as text: strings as they are, everything else as JSON. */
export function show(value: unknown): string {
  if (typeof value === "string") return value;
  return value === undefined ? "(no value)" : JSON.stringify(value);
}

/** Milliseconds rounded to a tenth. */
export function ms(start: number): number {
  return Math.round((performance.now() - start) * 10) / 10;
}

/** Writes one event as text or as a JSON line. */
export class Printer {
  #io: CliIo;
  #json: boolean;
  #quiet: boolean;

  /** Prints to `io`, as JSON lines when `json`. */
  constructor(io: CliIo, json: boolean, quiet: boolean) {
    this.#io = io;
    this.#json = json;
    this.#quiet = quiet;
  }

  /** An event of the connection (open, close, reconnecting). */
  status(event: Record<string, unknown> & { type: string }, text: string) {
    if (this.#json) this.#io.out(JSON.stringify(event));
    else if (!this.#quiet) this.#io.err(text);
  }

  /** The outcome of a request or notification the CLI sent. */
  outcome(
    ok: boolean,
    value: unknown,
    elapsed: number,
    extra: Record<string, unknown> = {},
  ): void {
    if (this.#json) {
      this.#io.out(JSON.stringify(
        ok ? { type: "result", ...extra, ok, result: value, ms: elapsed } : {
          type: "error",
          ...extra,
          ok,
          error: errorJson(value),
          ms: elapsed,
        },
      ));
      return;
    }
    const id = extra.id === undefined ? "" : `[${extra.id}] `;
    if (ok) {
      this.#io.out(`${id}${show(value)}`);
      if (!this.#quiet) this.#io.err(`${id}ok in ${elapsed} ms`);
    } else {
      const { code, message } = errorJson(value);
      this.#io.err(`${id}error ${code}: ${message} (${elapsed} ms)`);
    }
  }

  /** Any other event: notifications, the server's requests. */
  event(event: Record<string, unknown> & { type: string }, text: string) {
    this.#io.out(this.#json ? JSON.stringify(event) : text);
  }

  /** A local problem (bad command typed in interactive mode). */
  problem(message: string): void {
    if (this.#json) {
      this.#io.out(JSON.stringify({ type: "problem", message }));
    } else this.#io.err(message);
  }
}
