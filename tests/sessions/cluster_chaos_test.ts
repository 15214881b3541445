import assert from "node:assert/strict";
import { clusterChaos } from "./_cluster_chaos.ts";
import { redisTest } from "../_redis.ts";

// The full run (100,000+ messages, Redis restarted and frozen 8 s) is
// `deno task test:stress` (scenario "xsessions"). This short run leaves the
// Redis restart out: a restart that loses Redis's data can leave a client
// that resumes elsewhere first not resumed (a known gap, issue 15), which
// makes the run's presence check depend on timing.
const seed = Number(Deno.env.get("XSESSIONS_CHAOS_SEED") ?? 20261215);

redisTest(
  `Sessions across instances chaos (seed ${seed}): kill -9, SIGTERM and a Redis freeze run nothing twice and lose nothing silently`,
  async () => {
    const result = await clusterChaos({
      seed,
      clients: 4,
      messages: Number(Deno.env.get("XSESSIONS_CHAOS_MESSAGES") ?? 4_000),
      window: 4,
      durationMs: Number(Deno.env.get("XSESSIONS_CHAOS_MS") ?? 12_000),
      freezeMs: 2_000,
      redisRestart: false,
      verbose: Deno.env.has("XSESSIONS_CHAOS_VERBOSE"),
    });
    console.log(JSON.stringify(result.figures));
    assert.deepEqual(
      result.failures,
      [],
      `seed ${seed}; figures ${JSON.stringify(result.figures)}`,
    );
    assert.ok(result.figures.resumed > 0);
  },
);
