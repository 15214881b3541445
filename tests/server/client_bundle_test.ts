/**
 * The committed browser bundle of `client.ts` (`src/server/client_bundle.ts`)
 * must match the sources: the test rebuilds it and fails when it is stale.
 * It is served as is, with an ETag.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BUILD_COMMAND,
  buildClientBundle,
  OUTPUT_PATH,
} from "../../scripts/build_client_bundle.ts";
import {
  CLIENT_BUNDLE,
  CLIENT_BUNDLE_DENO_VERSION,
  CLIENT_BUNDLE_SOURCE_HASH,
} from "../../src/server/client_bundle.ts";
import { createChatServer } from "../../src/chat/chat.ts";
import {
  CLIENT_SCRIPT_ETAG,
  clientScript,
} from "../../src/server/client_script.ts";

const STALE =
  `${OUTPUT_PATH} is stale against client.ts: run \`${BUILD_COMMAND}\` and commit the result`;

Deno.test("src/server/client_bundle.ts is up to date with client.ts", async () => {
  const built = await buildClientBundle();
  // Another Deno version may minify differently: then only the sources are
  // compared (their hash); with the same version, the bytes must match.
  assert.equal(CLIENT_BUNDLE_SOURCE_HASH, built.sourceHash, STALE);
  if (CLIENT_BUNDLE_DENO_VERSION === Deno.version.deno) {
    assert.ok(CLIENT_BUNDLE === built.bundle, STALE);
  } else {
    console.log(
      `bundle built by Deno ${CLIENT_BUNDLE_DENO_VERSION}, this is ${Deno.version.deno}: compared the source hash only`,
    );
  }
});

Deno.test("the demo bundle is an ES module that exports the real Client", async () => {
  const module = await import(
    `data:text/javascript;base64,${
      btoa(
        String.fromCodePoint(...new TextEncoder().encode(CLIENT_BUNDLE)),
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
  assert.equal(await script.text(), CLIENT_BUNDLE);
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

Deno.test("clientScript() answers 200 with an ETag, 304 when it matches, HEAD without a body, 405 otherwise", async () => {
  const url = "http://localhost/duplex.js";
  const first = clientScript(new Request(url));
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("etag"), CLIENT_SCRIPT_ETAG);
  assert.equal(first.headers.get("cache-control"), "no-cache");
  assert.equal(await first.text(), CLIENT_BUNDLE);
  for (
    const tag of [CLIENT_SCRIPT_ETAG, `W/${CLIENT_SCRIPT_ETAG}`, `"x", *`]
  ) {
    const again = clientScript(
      new Request(url, { headers: { "if-none-match": tag } }),
    );
    assert.equal(again.status, 304, tag);
    assert.equal(again.body, null);
  }
  const stale = clientScript(
    new Request(url, { headers: { "if-none-match": '"old"' } }),
  );
  assert.equal(stale.status, 200);
  await stale.body?.cancel();
  const head = clientScript(new Request(url, { method: "HEAD" }));
  assert.equal(head.status, 200);
  assert.equal(head.body, null);
  const post = clientScript(new Request(url, { method: "POST" }));
  assert.equal(post.status, 405);
  await post.body?.cancel();
  // The tag changes with the bundle's sources.
  assert.ok(
    CLIENT_SCRIPT_ETAG.includes(CLIENT_BUNDLE_SOURCE_HASH.slice(0, 16)),
  );
});
