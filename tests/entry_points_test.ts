/**
 * The entry points download only what they need: a program that imports
 * `@duplex/ws/server` alone (and `server.ts` run as the chat program without
 * `REDIS_URL`) fetches no npm package. Each case runs in a child process with
 * an empty `DENO_DIR`, then looks at what landed in it.
 */

import assert from "node:assert/strict";
import { deadline } from "./_helpers.ts";

const ROOT = new URL("../", import.meta.url);

/** Whether a fresh DENO_DIR holds any npm package after the run. */
async function npmPackagesIn(denoDir: string): Promise<string[]> {
  const found: string[] = [];
  try {
    for await (const entry of Deno.readDir(`${denoDir}/npm`)) {
      found.push(entry.name);
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  return found;
}

Deno.test("a program importing only @duplex/ws/server downloads no npm package", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const script = `${dir}/main.ts`;
    await Deno.writeTextFile(
      script,
      `import { DuplexServer } from ${
        JSON.stringify(new URL("server.ts", ROOT).href)
      };\nconsole.log(typeof DuplexServer);\n`,
    );
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "-A", script],
      cwd: dir,
      env: { DENO_DIR: `${dir}/deno_dir`, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    assert.equal(new TextDecoder().decode(output.stdout), "function\n");
    assert.equal(output.code, 0);
    assert.deepEqual(await npmPackagesIn(`${dir}/deno_dir`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server.ts as the chat program without REDIS_URL downloads no npm package", async () => {
  const dir = await Deno.makeTempDir();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "server.ts"],
    cwd: ROOT,
    env: {
      DENO_DIR: `${dir}/deno_dir`,
      NO_COLOR: "1",
      PORT: "0",
      DUPLEX_HOSTNAME: "127.0.0.1",
      REDIS_URL: "",
    },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    while (!text.includes("Listening on")) {
      const { value, done } = await deadline(
        reader.read(),
        30_000,
        "the program to listen",
      );
      if (done) break;
      text += value;
    }
    assert.match(text, /Listening on http:\/\/127\.0\.0\.1:\d+\//);
    assert.deepEqual(await npmPackagesIn(`${dir}/deno_dir`), []);
  } finally {
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
});
