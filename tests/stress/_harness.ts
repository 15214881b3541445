/**
 * Process plumbing for the stress scenarios: start the stress server or a
 * client worker as a child process (with the open-files limit raised to the
 * hard limit), read its stdout line by line, and query `GET /stats`.
 *
 * @module
 */

import type { StressServerConfig, StressStats } from "./_server.ts";

const HERE = new URL(".", import.meta.url).pathname;

/** A child Deno process whose stdout is read line by line. */
export class Child {
  readonly process: Deno.ChildProcess;
  readonly lines: string[] = [];
  stderr = "";
  #waiters: Array<{
    match: (line: string) => boolean;
    resolve: (line: string) => void;
    reject: (error: Error) => void;
  }> = [];
  #ended = false;
  #done: Promise<void>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;

  /** Spawns `deno run -A <script> <args>` under `ulimit -n $(ulimit -Hn)`. */
  constructor(script: string, args: string[], v8Flags: string[] = []) {
    const quoted = [script, ...args].map((a) =>
      `'${a.replaceAll("'", "'\\''")}'`
    );
    const flags = v8Flags.length ? `--v8-flags=${v8Flags.join(",")}` : "";
    const command = new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -n $(ulimit -Hn); exec '${Deno.execPath()}' run -A ${flags} ${
          quoted.join(" ")
        }`,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    this.process = command.spawn();
    this.#writer = this.process.stdin.getWriter();
    this.#done = Promise.all([this.#readOut(), this.#readErr()]).then(() => {});
  }

  async #readOut(): Promise<void> {
    let rest = "";
    for await (
      const chunk of this.process.stdout.pipeThrough(new TextDecoderStream())
    ) {
      rest += chunk;
      let end: number;
      while ((end = rest.indexOf("\n")) >= 0) {
        const line = rest.slice(0, end);
        rest = rest.slice(end + 1);
        this.lines.push(line);
        const index = this.#waiters.findIndex((w) => w.match(line));
        if (index >= 0) this.#waiters.splice(index, 1)[0].resolve(line);
      }
    }
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(
        new Error(`Process exited; stderr: ${this.stderr.slice(-2000)}`),
      );
    }
  }

  async #readErr(): Promise<void> {
    for await (
      const chunk of this.process.stderr.pipeThrough(new TextDecoderStream())
    ) {
      if (this.stderr.length < 100_000) this.stderr += chunk;
    }
  }

  /** The first line (from now or already read) that `match` accepts. */
  line(
    match: (line: string) => boolean,
    ms: number,
    what: string,
  ): Promise<string> {
    const found = this.lines.find(match);
    if (found !== undefined) {
      this.lines.splice(this.lines.indexOf(found), 1);
      return Promise.resolve(found);
    }
    if (this.#ended) {
      return Promise.reject(
        new Error(
          `Process exited before ${what}; stderr: ${this.stderr.slice(-2000)}`,
        ),
      );
    }
    const { promise, resolve, reject } = Promise.withResolvers<string>();
    const waiter = { match, resolve, reject };
    this.#waiters.push(waiter);
    const timer = setTimeout(() => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      reject(
        new Error(
          `Timed out after ${ms} ms waiting for ${what}; stderr: ${
            this.stderr.slice(-2000)
          }`,
        ),
      );
    }, ms);
    return promise.finally(() => clearTimeout(timer));
  }

  /** A JSON line of the given `type`. */
  async json<T>(type: string, ms: number): Promise<T> {
    const line = await this.line(
      (l) => l.startsWith(`{"type":"${type}"`),
      ms,
      `"${type}"`,
    );
    return JSON.parse(line) as T;
  }

  /** Writes a line to stdin. */
  async send(line: string): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(line + "\n"));
  }

  /** Kills the process (if running) and waits for it and its pipes. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.process.kill(signal);
    } catch {
      // Already exited.
    }
    const status = await this.process.status;
    await this.#done;
    await this.#writer.close().catch(() => {});
    return status;
  }

  /** Waits for the process to exit on its own. */
  async exited(): Promise<Deno.CommandStatus> {
    const status = await this.process.status;
    await this.#done;
    await this.#writer.close().catch(() => {});
    return status;
  }
}

/** The stress server in a child process. */
export class ServerProcess extends Child {
  port = 0;

  private constructor(config: StressServerConfig) {
    super(`${HERE}_server.ts`, [JSON.stringify(config)], ["--expose-gc"]);
  }

  /** Starts the server and waits until it listens. */
  static async start(config: StressServerConfig = {}): Promise<ServerProcess> {
    const server = new ServerProcess(config);
    try {
      const line = await server.line(
        (l) => l.startsWith("Listening on "),
        30_000,
        "the server to listen",
      );
      server.port = Number(line.slice(line.lastIndexOf(":") + 1));
    } catch (error) {
      await server.stop("SIGKILL");
      throw error;
    }
    return server;
  }

  /** `GET /stats`. */
  async stats(): Promise<StressStats> {
    const response = await fetch(`http://127.0.0.1:${this.port}/stats`, {
      signal: AbortSignal.timeout(30_000),
    });
    return await response.json() as StressStats;
  }

  /** Polls `GET /stats` until `predicate` holds or `ms` pass. */
  async waitFor(
    predicate: (stats: StressStats) => boolean,
    ms: number,
    what: string,
    pollMs = 50,
  ): Promise<StressStats> {
    const end = Date.now() + ms;
    while (true) {
      const stats = await this.stats();
      if (predicate(stats)) return stats;
      if (Date.now() > end) {
        throw new Error(
          `Timed out after ${ms} ms waiting for ${what}: ${
            JSON.stringify(stats)
          }`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
  }
}

/** A client worker process (`_clients.ts`). */
export function startClients(config: Record<string, unknown>): Child {
  return new Child(`${HERE}_clients.ts`, [JSON.stringify(config)]);
}

/** Percentile of sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (!sorted.length) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

/** Least-squares slope of `y` over `x`. */
export function slope(points: Array<[number, number]>): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let num = 0;
  let den = 0;
  for (const [x, y] of points) {
    num += (x - mx) * (y - my);
    den += (x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

/** Megabytes, one decimal. */
export function mb(bytes: number): number {
  return Math.round(bytes / 1e5) / 10;
}
