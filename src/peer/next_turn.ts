/**
 * {@linkcode nextTurn}: runs a function at the next turn of the event loop,
 * after the current task and its microtasks: `setImmediate` where the
 * runtime has one (Deno, Node: microseconds), else a 0 ms timer (browsers).
 * Deno's 0 ms timer takes about 2 ms, longer than a round trip on loopback.
 *
 * @module
 */

type Run = <T>(run: (arg: T) => void, arg: T) => void;

/**
 * Runs `run(arg)` at the next turn of the event loop (not cancellable: the
 * function checks whether it is still wanted).
 */
export const nextTurn: Run =
  (globalThis as { setImmediate?: Run }).setImmediate ??
    ((run, arg) => setTimeout(run, 0, arg));
