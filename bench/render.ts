/**
 * Re-renders the Markdown and SVG of a results file from its JSON (after a
 * change to the rendering; the figures are not touched):
 *
 *   deno run -A bench/render.ts [latest | latest-peers | idle100k]
 *
 * @module
 */

import { type Results, writeResults } from "./report.ts";

const name = Deno.args[0] ?? "latest";
const path = new URL(`results/${name}`, import.meta.url).pathname;
const results: Results = JSON.parse(await Deno.readTextFile(`${path}.json`));
await writeResults(path, results);
console.log(`Written: bench/results/${name}.{md,svg}`);
