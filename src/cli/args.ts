/**
 * The command line of the `duplex` CLI: a small flag parser (no
 * dependency) and the parse of the CLI's own flags and command into
 * {@linkcode CliOptions}.
 *
 * @module
 */

/**
 * A command line the CLI cannot run: unknown flag, missing value, bad
 * number, unknown command. The CLI prints the message and exits with 2.
 *
 * @example Usage
 * ```ts
 * import { UsageError } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * assert.equal(new UsageError("Cannot parse --timeout: not a number").name, "UsageError");
 * ```
 */
export class UsageError extends Error {
  /**
   * Creates the error.
   *
   * @param message What is wrong, in the form "Cannot X: reason".
   */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** One flag the parser knows. */
interface FlagSpec {
  /** The long name, without `--`. */
  name: string;
  /** The one-letter alias, without `-`. */
  short?: string;
  /** `boolean` takes no value; `string` one; `list` one per occurrence. */
  kind: "boolean" | "string" | "list";
}

/** What {@linkcode parseFlags} found. */
interface ParsedFlags {
  /** Flag values by long name. */
  flags: Map<string, string | boolean | string[]>;
  /** Everything that is not a flag, in order. */
  positionals: string[];
}

/**
 * Splits `argv` into flags and positionals: `--name value`, `--name=value`,
 * `-n value`, `--flag`, `--no-flag` (booleans), and `--` ending the flags.
 * A lone `-` is a positional.
 */
function parseFlags(argv: readonly string[], specs: FlagSpec[]): ParsedFlags {
  const flags = new Map<string, string | boolean | string[]>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    const long = arg.startsWith("--");
    const equals = arg.indexOf("=");
    let name = long
      ? arg.slice(2, equals < 0 ? undefined : equals)
      : arg.slice(1, equals < 0 ? undefined : equals);
    let inline: string | undefined = equals < 0
      ? undefined
      : arg.slice(equals + 1);
    let negated = false;
    let spec = specs.find((s) => long ? s.name === name : s.short === name);
    if (!spec && long && name.startsWith("no-")) {
      spec = specs.find((s) =>
        s.kind === "boolean" && s.name === name.slice(3)
      );
      negated = spec !== undefined;
    }
    if (!spec) throw new UsageError(`Cannot parse ${arg}: unknown flag`);
    name = spec.name;
    if (spec.kind === "boolean") {
      if (inline !== undefined) {
        throw new UsageError(`Cannot parse ${arg}: --${name} takes no value`);
      }
      flags.set(name, !negated);
      continue;
    }
    if (inline === undefined) {
      if (i + 1 >= argv.length) {
        throw new UsageError(`Cannot parse ${arg}: it needs a value`);
      }
      inline = argv[++i];
    }
    if (spec.kind === "string") {
      flags.set(name, inline);
    } else {
      const list = (flags.get(name) as string[] | undefined) ?? [];
      list.push(inline);
      flags.set(name, list);
    }
  }
  return { flags, positionals };
}

/**
 * What the CLI does once connected:
 * - `call`: a request to `method` with `params`, print the result, exit;
 * - `request`: a request to the default handler (the original protocol);
 * - `notify`: a notification without a method; `emit`: with `method`;
 * - `listen`: print notifications until interrupted (or `count` of them);
 * - `interactive`: read commands from standard input, print everything.
 *
 * @example Usage
 * ```ts
 * import type { CliCommand } from "@duplex/ws/cli";
 *
 * const command: CliCommand = "call";
 * ```
 */
export type CliCommand =
  | "call"
  | "request"
  | "notify"
  | "emit"
  | "listen"
  | "interactive";

/**
 * The parsed command line of the CLI.
 *
 * @example Usage
 * ```ts
 * import { parseCliArgs } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * const options = parseCliArgs(["ws://localhost:8000", "call", "sum", "[1,2]"]);
 * assert.equal(options.command, "call");
 * assert.deepEqual(options.payload, [1, 2]);
 * ```
 */
export interface CliOptions {
  /** The server URL, with `user` added to its query when given. */
  url: string;
  /** The command. */
  command: CliCommand;
  /** The method of `call` and `emit`, or the filter of `listen`. */
  method?: string;
  /** The params or payload of `call`, `request`, `notify` and `emit`. */
  payload?: unknown;
  /** Subprotocols offered after `duplex.v1` (a token, `--protocol`). */
  protocols: string[];
  /** Request timeout, ms. */
  timeout: number;
  /** Connection attempt timeout, ms. */
  connectTimeout: number;
  /** JSON lines on standard output instead of text. */
  json: boolean;
  /** No status lines (connected, latency) on standard error. */
  quiet: boolean;
  /** Reconnect after a drop (`listen` and `interactive`). */
  reconnect: boolean;
  /** `listen`: exit after this many notifications. */
  count?: number;
  /** Fixed answers to the server's requests, by method (`*`: any). */
  answers: Map<string, unknown>;
  /** Print the usage and exit. */
  help: boolean;
}

const SPECS: FlagSpec[] = [
  { name: "user", short: "u", kind: "string" },
  { name: "token", short: "t", kind: "string" },
  { name: "protocol", short: "p", kind: "list" },
  { name: "timeout", kind: "string" },
  { name: "connect-timeout", kind: "string" },
  { name: "json", short: "j", kind: "boolean" },
  { name: "quiet", short: "q", kind: "boolean" },
  { name: "reconnect", kind: "boolean" },
  { name: "count", short: "n", kind: "string" },
  { name: "answer", short: "a", kind: "list" },
  { name: "help", short: "h", kind: "boolean" },
];

/**
 * The usage text of the CLI (`--help` prints it).
 *
 * @example Usage
 * ```ts
 * import { USAGE } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * assert.match(USAGE, /^Usage: duplex <url>/);
 * ```
 */
export const USAGE: string = `Usage: duplex <url> [command] [flags]

Commands (default: interactive):
  call <method> [params]    request <method>, print the result, exit
  request <message>         request the default handler, print the answer, exit
  notify <message>          send a notification without a method, exit
  emit <method> [payload]   send a notification of <method>, exit
  listen [method]           print notifications (of <method>) until Ctrl-C
  interactive               read commands from standard input ("help" lists them)

Values are JSON when they parse as JSON, else text: 42, '"42"', '{"a":1}', hello.

Flags:
  -u, --user <id>           add ?user=<id> to the URL (servers without authenticate)
  -t, --token <token>       offer the subprotocol duplex.auth.<token>
  -p, --protocol <name>     offer another subprotocol (repeatable)
      --timeout <ms>        request timeout (default 10000)
      --connect-timeout <ms> connection timeout (default 10000)
  -j, --json                one JSON object per line on standard output
  -q, --quiet               no status lines (connected, latency) on standard error
      --no-reconnect        exit when the connection drops (listen, interactive)
  -n, --count <n>           listen: exit after <n> notifications
  -a, --answer <m>=<value>  answer the server's requests of <m> (or *) with <value>
  -h, --help                this text

Exit codes: 0 ok, 1 the server answered with an error, 2 usage, 3 cannot connect,
4 timed out, 5 connection closed.`;

/**
 * Reads a value from the command line: JSON when it parses as JSON, else
 * the text itself.
 *
 * @param text The argument.
 * @returns The value.
 *
 * @example Usage
 * ```ts
 * import { parseValue } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseValue("[1,2]"), [1, 2]);
 * assert.equal(parseValue("hello"), "hello");
 * assert.equal(parseValue('"42"'), "42");
 * ```
 */
export function parseValue(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function parseMs(value: string | undefined, flag: string, fallback: number) {
  if (value === undefined) return fallback;
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms < 0) {
    throw new UsageError(
      `Cannot parse --${flag}: ${JSON.stringify(value)} is not a number of ms`,
    );
  }
  return ms;
}

const COMMANDS: readonly CliCommand[] = [
  "call",
  "request",
  "notify",
  "emit",
  "listen",
  "interactive",
];

/**
 * Parses the CLI's command line.
 *
 * @param argv The arguments (e.g. `Deno.args`).
 * @returns The options.
 * @throws {UsageError} When the command line is wrong.
 *
 * @example Usage
 * ```ts
 * import { parseCliArgs } from "@duplex/ws/cli";
 * import assert from "node:assert/strict";
 *
 * const options = parseCliArgs(["ws://localhost:8000", "-u", "ada", "--json"]);
 * assert.equal(options.url, "ws://localhost:8000/?user=ada");
 * assert.equal(options.command, "interactive");
 * assert.equal(options.json, true);
 * ```
 */
export function parseCliArgs(argv: readonly string[]): CliOptions {
  const { flags, positionals } = parseFlags(argv, SPECS);
  const string = (name: string) => flags.get(name) as string | undefined;
  const list = (name: string) => (flags.get(name) as string[]) ?? [];
  const help = flags.get("help") === true;
  const [target, name = "interactive", ...rest] = positionals;
  const options: CliOptions = {
    url: "",
    command: "interactive",
    protocols: [],
    timeout: parseMs(string("timeout"), "timeout", 10_000),
    connectTimeout: parseMs(
      string("connect-timeout"),
      "connect-timeout",
      10_000,
    ),
    json: flags.get("json") === true,
    quiet: flags.get("quiet") === true,
    reconnect: flags.get("reconnect") !== false,
    answers: new Map(),
    help,
  };
  if (help) return options;
  if (target === undefined) throw new UsageError("Cannot start: no URL given");
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    throw new UsageError(`Cannot parse the URL ${JSON.stringify(target)}`);
  }
  if (url.protocol === "http:") url.protocol = "ws:";
  if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    throw new UsageError(
      `Cannot connect to ${target}: the scheme must be ws: or wss:`,
    );
  }
  const user = string("user");
  if (user !== undefined) url.searchParams.set("user", user);
  options.url = url.href;
  const token = string("token");
  if (token !== undefined) options.protocols.push(`duplex.auth.${token}`);
  options.protocols.push(...list("protocol"));
  for (const answer of list("answer")) {
    const equals = answer.indexOf("=");
    if (equals < 1) {
      throw new UsageError(
        `Cannot parse --answer ${answer}: expected <method>=<value>`,
      );
    }
    options.answers.set(
      answer.slice(0, equals),
      parseValue(answer.slice(equals + 1)),
    );
  }
  const count = string("count");
  if (count !== undefined) {
    const n = Number(count);
    if (!Number.isInteger(n) || n < 1) {
      throw new UsageError(`Cannot parse --count ${count}: not a count`);
    }
    options.count = n;
  }
  if (!COMMANDS.includes(name as CliCommand)) {
    throw new UsageError(
      `Cannot run ${JSON.stringify(name)}: commands are ${COMMANDS.join(", ")}`,
    );
  }
  const command = options.command = name as CliCommand;
  const needs = (n: number, what: string) => {
    if (rest.length < n) {
      throw new UsageError(`Cannot run ${command}: ${what} is missing`);
    }
    if (rest.length > n + (command === "call" || command === "emit" ? 1 : 0)) {
      throw new UsageError(
        `Cannot run ${command}: unexpected ${
          JSON.stringify(rest.at(-1))
        } (quote a value that has spaces)`,
      );
    }
  };
  switch (command) {
    case "call":
    case "emit":
      needs(1, "the method");
      options.method = rest[0];
      if (rest.length > 1) options.payload = parseValue(rest[1]);
      break;
    case "request":
    case "notify":
      needs(1, "the message");
      options.payload = parseValue(rest[0]);
      break;
    case "listen":
      if (rest.length > 1) needs(0, "");
      options.method = rest[0];
      break;
    case "interactive":
      if (rest.length) needs(0, "");
  }
  return options;
}
