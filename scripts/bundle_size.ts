/**
 * Builds the browser bundle of `client.ts` (`deno bundle --platform browser
 * --minify`, into `dist/client.min.js`), prints its minified and gzip sizes,
 * and exits with 1 when the gzip size exceeds the budget.
 *
 * Run it with `deno task size`.
 *
 * @module
 */

/** The gzip budget of the client bundle, in bytes (5 KB). */
export const BUDGET_BYTES = 5 * 1024;

/**
 * Compresses bytes with gzip.
 *
 * @param bytes The input.
 * @returns The gzip-compressed bytes.
 */
export async function gzip(
  bytes: Uint8Array<ArrayBuffer>,
): Promise<Uint8Array> {
  const stream = new Blob([bytes]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function kilobytes(bytes: number): string {
  return `${(bytes / 1024).toFixed(2)} KB`;
}

async function main(): Promise<number> {
  const root = new URL("../", import.meta.url);
  const out = new URL("dist/client.min.js", root);
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform",
      "browser",
      "--minify",
      "--output",
      out.pathname,
      new URL("client.ts", root).pathname,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    console.error(new TextDecoder().decode(stderr));
    console.error("Cannot measure the bundle: deno bundle failed");
    return 1;
  }
  const bundle = await Deno.readFile(out);
  const size = (await gzip(bundle)).byteLength;
  console.log(`client.ts browser bundle (${out.pathname})`);
  console.log(
    `  minified: ${bundle.byteLength} bytes (${kilobytes(bundle.byteLength)})`,
  );
  console.log(`  gzip:     ${size} bytes (${kilobytes(size)})`);
  console.log(
    `  budget:   ${BUDGET_BYTES} bytes (${kilobytes(BUDGET_BYTES)}) gzip`,
  );
  if (size > BUDGET_BYTES) {
    console.error(
      `Over budget by ${size - BUDGET_BYTES} bytes (${
        kilobytes(size - BUDGET_BYTES)
      })`,
    );
    return 1;
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
