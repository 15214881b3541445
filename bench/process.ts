/**
 * Child processes of the benchmark: every program runs under `bash -c` with
 * the soft open-files limit raised to the hard one (5,000 sockets per side,
 * more for the 100,000-connection workload).
 *
 * @module
 */

const root = new URL("..", import.meta.url).pathname;

/**
 * Starts `argv` with the open-files limit raised.
 *
 * @param argv The program and its arguments.
 * @param options Environment additions, and whether stdin is piped.
 * @returns The child, stdout piped, stderr inherited.
 */
export function spawnRaised(
  argv: string[],
  options: { env?: Record<string, string>; stdin?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return new Deno.Command("bash", {
    args: [
      "-c",
      'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"',
      "bash",
      ...argv,
    ],
    cwd: root,
    env: options.env,
    stdout: "piped",
    stderr: "inherit",
    stdin: options.stdin ?? "null",
  }).spawn();
}

/**
 * Starts `deno run -A <args>` with the open-files limit raised.
 *
 * @param args The script and its arguments.
 * @param options As for {@linkcode spawnRaised}.
 * @returns The child.
 */
export function spawnDeno(
  args: string[],
  options: { env?: Record<string, string>; stdin?: "piped" | "null" } = {},
): Deno.ChildProcess {
  return spawnRaised([Deno.execPath(), "run", "-A", ...args], options);
}

/** A running benchmark server. */
export interface RunningServer {
  /** The port it printed. */
  port: number;
  /** The server's process id. */
  pid: number;
  /** Sends SIGTERM and waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Reads the first line of a stream; the rest keeps being read and dropped.
 *
 * @param stream A child's stdout.
 * @returns The line, and a promise that settles when the stream ends.
 * @throws {Error} When the stream ends first.
 */
export async function firstLine(
  stream: ReadableStream<Uint8Array>,
): Promise<{ line: string; drained: Promise<void> }> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Cannot read a line: stream ended (${text})`);
    text += value;
  }
  const drained = (async () => {
    while (!(await reader.read()).done) { /* discard */ }
  })();
  return { line: text.slice(0, text.indexOf("\n")), drained };
}

/**
 * Starts a server program that prints `{"port": N}` first.
 *
 * @param argv The program and its arguments.
 * @param env Environment additions.
 * @returns The running server.
 */
export async function spawnServer(
  argv: string[],
  env: Record<string, string> = {},
): Promise<RunningServer> {
  const child = spawnRaised(argv, { env });
  try {
    const { line, drained } = await firstLine(child.stdout);
    return {
      port: JSON.parse(line).port,
      pid: child.pid,
      async stop() {
        child.kill("SIGTERM");
        await child.status;
        await drained.catch(() => {});
      },
    };
  } catch (error) {
    child.kill("SIGKILL");
    await child.status;
    throw error;
  }
}

/**
 * Runs bench/lean_client.ts once against `port` and returns the figures it
 * prints last, or `undefined` when it failed.
 */
export async function leanClient(
  wire: string,
  workload: string,
  port: number,
  count: number,
  size: number,
): Promise<Record<string, number> | undefined> {
  const { stdout, success } = await spawnDeno([
    new URL("lean_client.ts", import.meta.url).pathname,
    wire,
    workload,
    String(port),
    String(count),
    String(size),
  ]).output();
  if (!success) return undefined;
  const lines = new TextDecoder().decode(stdout).trim().split("\n");
  return JSON.parse(lines.at(-1)!);
}

/**
 * Pins this process to CPU 0 when `taskset` works (util-linux), so that a
 * server started under `taskset -c 1` gets the other CPU to itself.
 *
 * @returns Whether it pinned (then start servers with {@linkcode onCpu1}).
 */
export async function pinToCpu0(): Promise<boolean> {
  try {
    const probe = new Deno.Command("taskset", { args: ["-c", "0", "true"] });
    if (!(await probe.output()).success) return false;
    const self = new Deno.Command("taskset", {
      args: ["-cp", "0", String(Deno.pid)],
      stdout: "null",
    });
    return (await self.output()).success;
  } catch {
    return false;
  }
}

/** `argv` under `taskset -c 1` when `pinned`, else as it is. */
export function onCpu1(argv: string[], pinned: boolean): string[] {
  return pinned ? ["taskset", "-c", "1", ...argv] : argv;
}
