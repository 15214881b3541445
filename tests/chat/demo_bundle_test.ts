/**
 * The committed browser bundle of `client.ts` (`src/chat/demo_client_bundle.ts`)
 * must match the sources: the test rebuilds it and fails when it is stale.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BUILD_COMMAND,
  buildDemoBundle,
  OUTPUT_PATH,
} from "../../scripts/build_demo_bundle.ts";
import {
  DEMO_CLIENT_BUNDLE,
  DEMO_CLIENT_DENO_VERSION,
  DEMO_CLIENT_SOURCE_HASH,
} from "../../src/chat/demo_client_bundle.ts";
import { createChatServer } from "../../src/chat/chat.ts";

const STALE =
  `${OUTPUT_PATH} is stale against client.ts: run \`${BUILD_COMMAND}\` and commit the result`;

Deno.test("src/chat/demo_client_bundle.ts is up to date with client.ts", async () => {
  const built = await buildDemoBundle();
  // Another Deno version may minify differently: then only the sources are
  // compared (their hash); with the same version, the bytes must match.
  assert.equal(DEMO_CLIENT_SOURCE_HASH, built.sourceHash, STALE);
  if (DEMO_CLIENT_DENO_VERSION === Deno.version.deno) {
    assert.ok(DEMO_CLIENT_BUNDLE === built.bundle, STALE);
  } else {
    console.log(
      `bundle built by Deno ${DEMO_CLIENT_DENO_VERSION}, this is ${Deno.version.deno}: compared the source hash only`,
    );
  }
});

Deno.test("the demo bundle is an ES module that exports the real Client", async () => {
  const module = await import(
    `data:text/javascript;base64,${
      btoa(
        String.fromCodePoint(...new TextEncoder().encode(DEMO_CLIENT_BUNDLE)),
      )
    }`
  );
  const { Client } = await import("../../client.ts");
  assert.equal(typeof module.Client, "function");
  assert.deepEqual(
    Object.getOwnPropertyNames(module.Client.prototype).sort(),
    Object.getOwnPropertyNames(Client.prototype).sort(),
  );
});

Deno.test("createChatServer() serves the bundle at /client.js and the page at /", async () => {
  const server = createChatServer();
  const script = await server.fetch(new Request("http://localhost/client.js"));
  assert.equal(script.status, 200);
  assert.equal(
    script.headers.get("content-type"),
    "text/javascript; charset=utf-8",
  );
  assert.equal(await script.text(), DEMO_CLIENT_BUNDLE);
  const page = await server.fetch(new Request("http://localhost/"));
  const csp = page.headers.get("content-security-policy") ?? "";
  const html = await page.text();
  const nonce = /nonce="([0-9a-f]+)"/.exec(html)?.[1];
  assert.ok(nonce, "the page script has a nonce");
  assert.match(csp, new RegExp(`script-src 'self' 'nonce-${nonce}'`));
  assert.match(csp, /default-src 'none'/);
  assert.doesNotMatch(html, /https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  assert.match(html, /import \{ Client \} from "\/client\.js"/);
  const missing = await server.fetch(new Request("http://localhost/nope.js"));
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});
