/**
 * What Nagle's algorithm in Deno's WebSocket client (no `TCP_NODELAY`, no
 * option for it) costs a Deno `Client` of the bench server
 * (bench/duplex_server.ts, in its own process), with sessions on and off,
 * and with the client's `nagle` option on (it offers `duplex.nagle`, and the
 * server answers what nothing else answers: PROTOCOL.md "Nagle answers")
 * and off (as before that capability):
 *
 * - bursts: `bursts` bursts of `size` requests, 5 ms apart (a client that
 *   works in bursts), each burst's time in ms, and how many took 30 ms or
 *   more. A lone ack at the tail of a burst that the server did not answer
 *   held the next burst ~40 ms (docs/performance.md "Interleaved and
 *   pinned");
 * - notify then request: `client.notify()` followed at once by
 *   `await client.request()`, against the request alone, 20 tries each: the
 *   notification is a write nothing answers, so without `duplex.nagle` the
 *   request waits for the server's delayed TCP acknowledgement (~40 ms).
 *
 *   deno run -A bench/nagle.ts [size] [bursts]
 *
 * The last line is JSON, `{"runs": [{session, nagle, bursts,
 * notifyThenRequest, alone}]}` (times in ms), which `deno task bench` turns
 * into its "Deno Client and Nagle's algorithm" rows (bench/others.ts).
 *
 * @module
 */

import { Client } from "../client.ts";
import { spawnServer } from "./process.ts";

const [sizeText = "1250", burstsText = "20"] = Deno.args;
const size = Number(sizeText);
const bursts = Number(burstsText);

function pause(ms: number): Promise<void> {
  // Think time between a client's bursts, not a wait for an event.
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const figures = (times: number[]) =>
  `${times.map((t) => t.toFixed(1)).join(" ")} ms; ≥ 30 ms: ${
    times.filter((t) => t >= 30).length
  } of ${times.length}`;

const server = await spawnServer([
  Deno.execPath(),
  "run",
  "-A",
  new URL("duplex_server.ts", import.meta.url).pathname,
]);
const runs: {
  session: boolean;
  nagle: boolean;
  bursts: number[];
  notifyThenRequest: number[];
  alone: number[];
}[] = [];
try {
  for (
    const [session, nagle] of [[true, true], [false, true], [true, false], [
      false,
      false,
    ]]
  ) {
    const client = new Client(
      `ws://127.0.0.1:${server.port}/?user=nagle${session}${nagle}`,
      { session, nagle },
    );
    await client.connect();
    const burstTimes: number[] = [];
    for (let b = 0; b < bursts; b++) {
      await pause(5);
      burstTimes.push(
        await timed(() =>
          Promise.all(
            Array.from({ length: size }, () => client.request("hello")),
          )
        ),
      );
    }
    const withNotify: number[] = [];
    const alone: number[] = [];
    for (let i = 0; i < 20; i++) {
      await pause(5);
      withNotify.push(
        await timed(() => {
          client.notify("hi");
          return client.request("hello");
        }),
      );
      await pause(5);
      alone.push(await timed(() => client.request("hello")));
    }
    await client.close();
    const label = `${session ? "sessions on " : "sessions off"}, nagle ${
      nagle ? "on " : "off"
    }`;
    console.log(`${label} bursts of ${size}: ${figures(burstTimes)}`);
    console.log(`${label} notify + request: ${figures(withNotify)}`);
    console.log(`${label} request alone:    ${figures(alone)}`);
    runs.push({
      session,
      nagle,
      bursts: burstTimes,
      notifyThenRequest: withNotify,
      alone,
    });
  }
} finally {
  await server.stop();
}
console.log(JSON.stringify({ runs }));
