/**
 * An event-loop lag probe for the stress scenarios and the platform
 * benchmarks: a process that stalls cannot answer pings, so a dropped
 * connection is only blamed on the network or the runtime once the probes
 * of both ends stayed low.
 *
 * @module
 */

/**
 * Starts a probe: a 100 ms interval (unref'd: it never keeps the process
 * alive) that records how late it ran.
 *
 * @returns Reads the worst lag so far, in ms.
 */
export function lagProbe(): () => number {
  let worst = 0;
  let due = performance.now() + 100;
  const timer = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - due);
    due = now + 100;
  }, 100);
  Deno.unrefTimer(timer);
  return () => Math.round(worst);
}
