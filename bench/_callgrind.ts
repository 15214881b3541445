/**
 * Switches callgrind's instrumentation of this process on or off (run under
 * `valgrind --tool=callgrind --instr-atstart=no`), so that only a window of
 * the work is counted. Shared by the `*_instructions.ts` tools.
 *
 * @module
 */

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
