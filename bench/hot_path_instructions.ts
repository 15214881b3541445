/**
 * Instructions per request of the in-process per-request path of
 * bench/hot_path.ts (the bench server's connection peer, the lean client's
 * request frames, a socket that only counts), counted by callgrind over
 * `count` requests after `warm` warm-up requests (default 500,000, so JIT
 * compilation and start-up are left out; a few thousand instead count the
 * way a fresh server's code tiers up, as in a bench run):
 *
 *   valgrind --tool=callgrind --instr-atstart=no \
 *     deno run -A --v8-flags=--single-threaded bench/hot_path_instructions.ts \
 *     <root> <original|duplex.v1> <count> [warm]
 *
 * then divide the "Collected" figure valgrind prints by `count`. The
 * instrumentation is switched on and off around the timed loop with
 * `callgrind_control`. `root` is a checkout (the "before" of a change can
 * be another one). Adding `--dump-instr=yes` to valgrind and
 * `--perf-basic-prof` to the V8 flags lets the per-address costs be mapped
 * to JavaScript functions through `/tmp/perf-<pid>.map`.
 *
 * @module
 */

import { counted } from "./_callgrind.ts";
import { connectionPeer, requests } from "./hot_path.ts";

if (import.meta.main) {
  const [given, wire = "original", countText = "1000000", warmText] = Deno.args;
  const root = new URL(given ?? "..", `file://${Deno.cwd()}/`).href
    .replace(/\/$/, "");
  const protocol = wire === "original" ? "" : wire;
  const count = Number(countText);
  const warm = Number(warmText ?? 500_000);
  const { peer, socket } = await connectionPeer(root, protocol);
  for (let i = 0; i < warm; i++) peer.receive(requests[i % 1000]);
  await counted(() => {
    for (let i = 0; i < count; i++) peer.receive(requests[i % 1000]);
  });
  if (socket.sent !== warm + count) {
    throw new Error("Cannot count: responses missing");
  }
}
