/**
 * `server.ts` as a program: `DUPLEX_HOSTNAME` chooses the interface, and the URL it
 * prints can be opened (`localhost`, not the wildcard address).
 *
 * @module
 */

import assert from "node:assert/strict";
import { deadline } from "../_helpers.ts";

const root = new URL("../../", import.meta.url);

/** Runs the program until its first line, then kills it. */
async function firstLine(env: Record<string, string>): Promise<string> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "server.ts"],
    cwd: root,
    env: { PORT: "0", NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await deadline(reader.read(), 20_000, "a line");
      if (done) break;
      text += value;
    }
    return text.split("\n")[0];
  } finally {
    child.kill("SIGKILL");
    await reader.cancel();
    await child.status;
  }
}

Deno.test({
  name:
    "server.ts listens on DUPLEX_HOSTNAME and prints a URL a person can open",
  ignore: Deno.build.os === "windows",
  async fn() {
    assert.match(
      await firstLine({ DUPLEX_HOSTNAME: "127.0.0.1" }),
      /^Listening on http:\/\/127\.0\.0\.1:\d+\/$/,
    );
    assert.match(
      await firstLine({ DUPLEX_HOSTNAME: "0.0.0.0" }),
      /^Listening on http:\/\/localhost:\d+\/$/,
    );
  },
});

Deno.test({
  name:
    "server.ts takes an address in HOSTNAME and ignores a machine name there",
  ignore: Deno.build.os === "windows",
  async fn() {
    assert.match(
      await firstLine({ HOSTNAME: "127.0.0.1", DUPLEX_HOSTNAME: "" }),
      /^Listening on http:\/\/127\.0\.0\.1:\d+\/$/,
    );
    // Docker and shells put the container's or machine's name in HOSTNAME.
    assert.match(
      await firstLine({ HOSTNAME: "a1b2c3d4e5f6", DUPLEX_HOSTNAME: "" }),
      /^Listening on http:\/\/localhost:\d+\/$/,
    );
  },
});
