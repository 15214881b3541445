/**
 * Callgrind with counting off at the start, and the switch that turns the
 * counting of this process on or off, so that only a window of the work is
 * counted. Shared by the callgrind tools in this folder.
 *
 * @module
 */

/**
 * The valgrind arguments that run a command under callgrind with counting
 * off until {@linkcode instrumentation} turns it on.
 *
 * @param outFile Where callgrind writes its counts.
 * @returns The arguments to put before the command.
 */
export function callgrindArgs(outFile: string): string[] {
  return [
    "--tool=callgrind",
    "--instr-atstart=no",
    `--callgrind-out-file=${outFile}`,
  ];
}

/**
 * Turns the counting of this process's instructions on or off.
 *
 * @param on Whether to count from now on.
 */
export async function instrumentation(on: boolean): Promise<void> {
  await new Deno.Command("callgrind_control", {
    args: ["-i", on ? "on" : "off", String(Deno.pid)],
    stdout: "null",
    stderr: "null",
  }).output();
}
