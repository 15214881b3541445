/**
 * Chromium for the browser tests: playwright-core loaded under `deno task
 * test`'s permissions, where Chromium is, whether the tests may skip, and
 * one launch with the flags this machine needs.
 *
 * @module
 */

import fs from "node:fs";
import type { Browser } from "npm:playwright-core@1";

// playwright-core probes /proc/sys/fs/binfmt_misc/WSLInterop when it loads;
// Deno asks for --allow-all to touch that path, which `deno task test` does
// not grant. Answer the probe (not WSL) while the module loads.
const WSL_PROBE = "/proc/sys/fs/binfmt_misc/WSLInterop";
const existsSync = fs.existsSync;
fs.existsSync = (path: fs.PathLike): boolean =>
  path === WSL_PROBE ? false : existsSync(path);
const { chromium } = await import("npm:playwright-core@1").finally(() => {
  fs.existsSync = existsSync;
});

/** Where Chromium is (`CHROMIUM_PATH`, else Debian's). */
export const CHROMIUM: string = Deno.env.get("CHROMIUM_PATH") ??
  "/usr/bin/chromium";
/** In CI a missing browser fails the test instead of skipping it. */
export const IN_CI: boolean = Deno.env.get("CI") === "true";
/** Generous: two shared cores, a browser and a server. */
export const WAIT_MS = 20_000;

async function exists(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/** Whether Chromium is installed. */
export const hasChromium: boolean = await exists(CHROMIUM);

/** True when the test named `what` is to be skipped (and says so once). */
export function skipBrowser(what: string): boolean {
  if (hasChromium || IN_CI) return false;
  console.warn(
    `Skipping ${what}: no Chromium at ${CHROMIUM}. ` +
      "Install it with `apt-get install chromium` (or set CHROMIUM_PATH).",
  );
  return true;
}

/**
 * Launches headless Chromium with the flags this machine needs (no sandbox
 * as root; no background networking, which the closed network refuses).
 * With `backForwardCache`, without the flag by which Playwright turns that
 * cache off. In CI without Chromium, throws.
 */
export async function launchChromium(
  backForwardCache = false,
): Promise<Browser> {
  if (!hasChromium) {
    throw new Error(
      `Cannot run the browser test in CI: no Chromium at ${CHROMIUM} (apt-get install chromium)`,
    );
  }
  return await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: backForwardCache
      ? ["--disable-back-forward-cache"]
      : undefined,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}
