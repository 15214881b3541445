/**
 * The size report of `deno task size` (scripts/bundle_size.ts): its figures
 * come from real bundles, and every byte of the typical app's bundle is
 * attributed to a part. The 7 KB budget itself is enforced by `deno task
 * size`, which exits with 1 above it.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  analyze,
  BUDGET_BYTES,
  bundleSize,
  PARTS,
  STREAMS,
  STREAMS_BUDGET_BYTES,
  TYPICAL_APP,
  TYPICAL_STREAM_APP,
} from "../../scripts/bundle_size.ts";

Deno.test("analyze() attributes every byte of the typical app's bundle to a part", async () => {
  const app = await analyze(TYPICAL_APP);
  const sum = app.parts.reduce((total, part) => total + part.minified, 0);
  assert.equal(sum, app.minified);
  assert.equal(
    app.files.reduce((total, file) => total + file.minified, 0),
    app.minified,
  );
  // The parts named in PARTS hold the client: "other" is (nearly) empty.
  const other = app.parts.find((part) => part.name === "other")!;
  assert.ok(other.minified < 100, `unattributed: ${other.minified} bytes`);
  const sessions = app.parts.find((part) => part.name === PARTS[0].name)!;
  assert.ok(sessions.minified > 0 && sessions.gzip > 0);
  assert.ok(app.gzip > 1_000 && app.gzip < app.minified);
});

Deno.test("bundleSize() of the whole client.ts is at least the typical app's", async () => {
  const [app, all] = await Promise.all([
    bundleSize(),
    bundleSize("client.ts"),
  ]);
  assert.ok(all.minified >= app.minified);
  assert.equal(BUDGET_BYTES, 7_168);
});

Deno.test("analyze(): an app without the streams option ships no stream code but the refusals (issue 20: at most 1 KB)", async () => {
  const [app, streaming] = await Promise.all([
    analyze(TYPICAL_APP),
    analyze(TYPICAL_STREAM_APP),
  ]);
  const files = (analysis: typeof app) =>
    analysis.files.map((file) => file.name);
  for (const file of ["src/peer/streams.ts", "src/peer/chunk_queue.ts"]) {
    assert.ok(!files(app).includes(file), `${file} is in the bundle`);
    assert.ok(files(streaming).includes(file), `${file} is not bundled`);
  }
  const left = app.parts.find((part) => part.name === STREAMS)!;
  assert.ok(
    left.gzip <= STREAMS_BUDGET_BYTES,
    `stream support left: ${left.gzip} bytes gzip`,
  );
  assert.ok(streaming.gzip > app.gzip + 1_000);
});
