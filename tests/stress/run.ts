/**
 * `deno task test:stress`: every reliability scenario in full, then the
 * fuzz run, then a summary. Exits 1 on any failure.
 *
 * Set `STRESS_SCALE` (default 1) to shrink counts and durations, e.g.
 * `STRESS_SCALE=0.1 deno task test:stress` for a quick look.
 *
 * @module
 */

import {
  abruptDisconnects,
  connections,
  restart,
  type ScenarioResult,
  slowConsumer,
  soak,
} from "./scenarios.ts";
import { fuzz } from "./fuzz.ts";
import {
  neverReading,
  silentHeads,
  upgradeStorm,
  usersListAmplification,
} from "./hardening.ts";
import { chaos } from "../sessions/_chaos.ts";
import { clusterChaos } from "../sessions/_cluster_chaos.ts";

const scale = Number(Deno.env.get("STRESS_SCALE") ?? 1);
const n = (value: number) => Math.max(1, Math.round(value * scale));
const only = Deno.env.get("STRESS_ONLY")?.split(",");

const scenarios: Array<[string, () => Promise<ScenarioResult>]> = [
  ["connections", () =>
    connections({
      clients: n(10_000),
      processes: 4,
      holdMs: n(120_000),
      sampleMs: n(10_000),
      warmupMs: n(60_000),
      pingInterval: 5_000,
      pingTimeout: 15_000,
      idleTimeout: 10,
      verbose: true,
    })],
  ["slow", () =>
    slowConsumer({
      blasts: n(2_000),
      perBlast: 4,
      size: 16_384,
      others: 20,
      highWaterMark: 256 * 1024,
      maxGrowth: 48e6,
      verbose: true,
    })],
  [
    "abrupt",
    () =>
      abruptDisconnects({
        clients: n(1_000),
        rounds: 3,
        others: 20,
        verbose: true,
      }),
  ],
  ["restart", () =>
    restart({
      clients: n(200),
      beforeMs: n(5_000),
      downMs: n(2_000),
      afterMs: n(5_000),
      verbose: true,
    })],
  ["soak", () =>
    soak({
      clients: n(100),
      durationMs: n(600_000),
      sampleMs: n(60_000),
      warmupMs: n(60_000),
      maxSlopeMBPerMin: 0.5,
      verbose: true,
    })],
  ["never-reading", () =>
    neverReading({
      clients: n(20),
      requests: 1_000,
      size: 65_536,
      maxGrowth: 400e6,
      waves: n(6),
      verbose: true,
    })],
  ["upgrade-storm", () =>
    upgradeStorm({
      upgrades: n(2_000),
      maxConnections: 100,
      authDelay: 200,
      verbose: true,
    })],
  ["silent-heads", () =>
    silentHeads({
      connections: n(2_000),
      openFiles: 512,
      headerTimeout: 2_000,
      verbose: true,
    })],
  ["amplification", () =>
    usersListAmplification({
      users: n(2_000),
      attackers: 4,
      batch: 100,
      durationMs: n(10_000),
      verbose: true,
    })],
  ["sessions", () =>
    chaos({
      seed: Number(Deno.env.get("SESSIONS_CHAOS_SEED") ?? Date.now() % 1e9),
      clients: 8,
      requests: n(10_000),
      serverRequests: n(10_000),
      notifications: n(10_000),
      durationMs: n(60_000),
      verbose: true,
    })],
  ["xsessions", async () => ({
    name:
      "sessions across instances (3 processes, kill -9, SIGTERM, Redis restart and 8 s freeze)",
    ...await clusterChaos({
      seed: Number(Deno.env.get("XSESSIONS_CHAOS_SEED") ?? Date.now() % 1e9),
      clients: 8,
      messages: n(100_000),
      window: 8,
      durationMs: n(60_000),
      freezeMs: 8_000,
      verbose: true,
    }),
  })],
  [
    "fuzz",
    () =>
      fuzz({
        durationMs: n(60_000),
        seed: Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 1e9),
        verbose: true,
      }),
  ],
];

const results: ScenarioResult[] = [];
const started = performance.now();
for (const [key, run] of scenarios) {
  if (only && !only.includes(key)) continue;
  console.log(`\n▶ ${key}`);
  const t0 = performance.now();
  // A scenario that throws fails alone; the others still run.
  const result = await run().catch((error): ScenarioResult => ({
    name: key,
    failures: [`threw: ${error?.stack ?? error}`],
    figures: {},
  }));
  result.figures.seconds = Math.round((performance.now() - t0) / 1000);
  results.push(result);
  console.log(
    `${result.failures.length ? "✗" : "✓"} ${result.name}: ${
      JSON.stringify(result.figures)
    }`,
  );
  for (const failure of result.failures) console.log(`    FAIL ${failure}`);
}

const figure = (name: string, key: string) =>
  results.find((r) => r.name === name)?.figures[key] ?? "-";
console.log("\n════════ Duplex stress summary ════════");
console.log(
  `connections held       ${
    figure("connections", "minConnectionsDuringHold")
  } (requests answered ${
    figure("connections", "requestsAnswered")
  }, pings and pongs ${figure("connections", "livenessFramesDuringHold")})`,
);
console.log(
  `server memory (hold)   rss ${
    figure("connections", "rssAfterWarmupMB")
  } MB, heap ${figure("connections", "heapAfterWarmupMB")} MB, heap slope ${
    figure("connections", "heapSlopeMBPerMin")
  } MB/min`,
);
console.log(
  `slow consumer          p50/p99 ${figure("slow consumer", "baselineP50ms")}/${
    figure("slow consumer", "baselineP99ms")
  } ms → ${figure("slow consumer", "slowP50ms")}/${
    figure("slow consumer", "slowP99ms")
  } ms, rss ${figure("slow consumer", "rssBeforeMB")} → ${
    figure("slow consumer", "rssWithSlowMB")
  } MB, dropped ${figure("slow consumer", "dropped")}, close policy ${
    figure("slow consumer", "closePolicyCodes")
  }`,
);
console.log(
  `faults survived        ${
    figure("abrupt disconnects", "faultsSurvived")
  } abrupt disconnects, 1 SIGKILL restart (${
    figure("server restart", "reconnected")
  } clients reconnected)`,
);
console.log(
  `requests (restart)     ${figure("server restart", "requestsTotal")} sent, ${
    figure("server restart", "answered")
  } answered, typed errors ${
    figure("server restart", "typedErrors")
  }, executed twice ${figure("server restart", "executedTwice")}`,
);
console.log(
  `requests lost          ${figure("server restart", "requestsLost")}`,
);
console.log(
  `soak                   heap ${figure("soak", "heapSamplesMB")} MB, slope ${
    figure("soak", "heapSlopeMBPerMin")
  } MB/min`,
);
const waves = Object.entries(
  results.find((r) => r.name === "never-reading clients")?.figures ?? {},
).filter(([key]) => key.startsWith("rssAfterMB")).map(([, value]) => value);
console.log(
  `never-reading clients  ${
    figure("never-reading clients", "closed1013")
  } closed 1013 in ${waves.length} waves of 20 asking ${
    figure("never-reading clients", "responsesAskedMB")
  } MB each; rss ${figure("never-reading clients", "rssBeforeMB")} → peak ${
    figure("never-reading clients", "rssPeakMB1")
  } in the first; after each: ${waves.join(" → ")} MB (JS heap ${
    figure("never-reading clients", "heapAfterMB1")
  } MB)`,
);
console.log(
  `upgrade storm          ${figure("upgrade storm", "upgrades")} upgrades, ${
    figure("upgrade storm", "accepted")
  } accepted (maxConnections ${figure("upgrade storm", "maxConnections")}), ${
    figure("upgrade storm", "refused503")
  } refused 503`,
);
console.log(
  `silent heads           guarded: ${
    figure("silent heads", "silentOpened")
  } dropped within ${
    figure("silent heads", "allDroppedAfterMs")
  } ms, real client opened in ${
    figure("silent heads", "realClientOpenMs")
  } ms; unguarded: ${figure("silent heads", "unguardedOpenAfterTimeout")} of ${
    figure("silent heads", "unguardedOpened")
  } still open, recovered in ${
    figure("silent heads", "unguardedRecoveryMs")
  } ms after they left`,
);
console.log(
  `users.list             ${
    figure("users.list amplification", "usersOnline")
  } online, ${figure("users.list amplification", "requestKBps")} KB/s in → ${
    figure("users.list amplification", "responseMBps")
  } MB/s out (×${figure("users.list amplification", "ratio")}), largest page ${
    figure("users.list amplification", "largestPage")
  }, rate-limited ${figure("users.list amplification", "rateLimited")}`,
);
console.log(
  `inputs tried (fuzz)    ${figure("fuzz", "inputs")} (seed ${
    figure("fuzz", "seed")
  }), well-formed answered ${figure("fuzz", "answered")}`,
);
const failed = results.filter((r) => r.failures.length);
console.log(
  `result                 ${
    failed.length
      ? `FAILED: ${failed.map((r) => r.name).join(", ")}`
      : "all passed"
  } in ${Math.round((performance.now() - started) / 1000)} s`,
);
Deno.exit(failed.length ? 1 : 0);
