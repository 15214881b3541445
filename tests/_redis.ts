/**
 * A real `redis-server` for tests: started on a free port of 127.0.0.1 with
 * persistence off, stopped (and restartable on the same port) on demand.
 *
 * `redisTest()` registers a test that gets a fresh server. When
 * `redis-server` is missing the test is skipped with a message, except in CI
 * (`CI=true`), where it fails.
 *
 * @module
 */

import { deadline } from "./_helpers.ts";

const INSTALL_HINT = "apt-get install redis-server";

/** Whether `redis-server` can be run here. */
export function hasRedisServer(): boolean {
  try {
    return new Deno.Command("redis-server", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

/**
 * Finds a free TCP port on 127.0.0.1 (listens on port 0, then closes).
 *
 * @returns The port.
 */
export function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Sends PING over raw TCP and checks for +PONG. */
async function ping(port: number): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode("PING\r\n"));
    const buffer = new Uint8Array(64);
    const read = await conn.read(buffer);
    const reply = new TextDecoder().decode(buffer.subarray(0, read ?? 0));
    if (!reply.startsWith("+PONG")) {
      throw new Error(`Cannot ping redis-server: unexpected reply ${reply}`);
    }
  } finally {
    conn.close();
  }
}

/** A running `redis-server` process. */
export class RedisServer implements AsyncDisposable {
  /** The port it listens on (kept across restarts). */
  readonly port: number;
  #child: Deno.ChildProcess | undefined = undefined;
  #drained: Promise<void> | undefined = undefined;

  /** Creates a handle for `port`; nothing runs until `restart()`. */
  constructor(port: number) {
    this.port = port;
  }

  /** The URL to give to a Redis client. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Whether the process runs now. */
  get running(): boolean {
    return this.#child !== undefined;
  }

  /**
   * Starts a server on `port` (default: a free one) and waits until it
   * answers PING.
   */
  static async start(port: number = freePort()): Promise<RedisServer> {
    const server = new RedisServer(port);
    await server.restart();
    return server;
  }

  /** A handle for a port with no server yet: `restart()` starts one. */
  static reserve(port: number = freePort()): RedisServer {
    return new RedisServer(port);
  }

  /** Starts the process again on the same port (stops it first if needed). */
  async restart(): Promise<void> {
    await this.stop();
    const child = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "no",
        "--logfile",
        "",
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#child = child;
    const ready = Promise.withResolvers<void>();
    // Read the log until the process ends; resolve when it says it is ready.
    this.#drained = (async () => {
      let text = "";
      for await (
        const chunk of child.stdout.pipeThrough(new TextDecoderStream())
      ) {
        text += chunk;
        if (text.includes("Ready to accept connections")) ready.resolve();
        if (text.length > 65_536) text = text.slice(-1_024);
      }
      ready.reject(
        new Error(`Cannot start redis-server on ${this.port}: ${text}`),
      );
    })();
    try {
      await deadline(ready.promise, 10_000, "redis-server to be ready");
      await ping(this.port);
    } catch (error) {
      await this.stop();
      throw error;
    }
  }

  /**
   * Freezes the process (SIGSTOP) or lets it go on (SIGCONT): its sockets
   * stay open but nothing is answered, like a wedged or half-open server.
   */
  pause(paused: boolean): void {
    this.#child?.kill(paused ? "SIGSTOP" : "SIGCONT");
  }

  /** Stops the process (SIGTERM) and waits for it to exit. Idempotent. */
  async stop(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    this.#child = undefined;
    try {
      child.kill("SIGCONT");
      child.kill("SIGTERM");
    } catch {
      // Already exited.
    }
    await child.status;
    await this.#drained?.catch(() => {});
    this.#drained = undefined;
  }

  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

let warned = false;

/**
 * Registers a test that runs against a fresh `redis-server`, stopped at the
 * end. Skipped with a message when `redis-server` is missing, unless
 * `CI=true`, where it fails.
 *
 * @param name The test name.
 * @param fn The test body.
 */
export function redisTest(
  name: string,
  fn: (redis: RedisServer) => Promise<void>,
): void {
  const present = hasRedisServer();
  const ci = Deno.env.get("CI") === "true";
  if (!present && !ci) {
    if (!warned) {
      warned = true;
      console.warn(
        `Skipping the Redis tests: redis-server not found (${INSTALL_HINT})`,
      );
    }
    Deno.test({ name, ignore: true, fn() {} });
    return;
  }
  Deno.test(name, async () => {
    if (!present) {
      throw new Error(
        `Cannot run Redis test in CI: redis-server not found (${INSTALL_HINT})`,
      );
    }
    await using redis = await RedisServer.start();
    await fn(redis);
  });
}
