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

/** Sizes of the browser bundle of `client.ts`. */
export interface BundleSize {
  /** Path of the bundle that was built. */
  path: string;
  /** Minified size in bytes. */
  minified: number;
  /** Gzip size in bytes. */
  gzip: number;
}

/**
 * Builds the browser bundle of `client.ts` and measures it.
 *
 * @returns The sizes.
 * @throws {Error} When `deno bundle` fails.
 */
export async function bundleSize(): Promise<BundleSize> {
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
    throw new Error(
      `Cannot measure the bundle: deno bundle failed\n${
        new TextDecoder().decode(stderr)
      }`,
    );
  }
  const bundle = await Deno.readFile(out);
  return {
    path: out.pathname,
    minified: bundle.byteLength,
    gzip: (await gzip(bundle)).byteLength,
  };
}

async function main(): Promise<number> {
  const { path, minified, gzip: size } = await bundleSize();
  const bundle = { byteLength: minified };
  console.log(`client.ts browser bundle (${path})`);
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
