import assert from "node:assert/strict";
import { clusterChaos } from "./_cluster_chaos.ts";
import { redisTest } from "../_redis.ts";

// The full run (100,000+ messages, Redis frozen 8 s) is
// `deno task test:stress` (scenario "xsessions"); this short run has every
// fault of it: kill -9, SIGTERM, a Redis restart that loses the data, a
// Redis freeze.
const seed = Number(Deno.env.get("XSESSIONS_CHAOS_SEED") ?? 20261215);

redisTest(
  `Sessions across instances chaos (seed ${seed}): kill -9, SIGTERM, a Redis restart and freeze run nothing twice and lose nothing silently`,
  async () => {
    const result = await clusterChaos({
      seed,
      clients: 4,
      messages: Number(Deno.env.get("XSESSIONS_CHAOS_MESSAGES") ?? 4_000),
      window: 4,
      durationMs: Number(Deno.env.get("XSESSIONS_CHAOS_MS") ?? 12_000),
      freezeMs: 2_000,
      verbose: Deno.env.has("XSESSIONS_CHAOS_VERBOSE"),
    });
    console.log(JSON.stringify(result.figures));
    assert.deepEqual(
      result.failures,
      [],
      `seed ${seed}; figures ${JSON.stringify(result.figures)}`,
    );
    assert.ok(result.figures.resumed > 0);
    // Every client comes back within the grace period: each resumes, even
    // right after Redis lost its data (the owners write their sessions
    // again; a resume elsewhere is told to try again meanwhile).
    assert.deepEqual(
      result.notResumed,
      [],
      `seed ${seed}: not resumed (who, when, why)`,
    );
    assert.equal(result.figures.notResumed, 0);
  },
);
