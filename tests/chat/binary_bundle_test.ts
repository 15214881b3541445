/**
 * The committed browser bundle of `binary.ts` (`src/chat/binary_bundle.ts`),
 * which the demo page loads from `/binary.js`, must match the sources, and
 * the chat server serves it.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  BINARY_BUILD_COMMAND,
  BINARY_OUTPUT_PATH,
  buildBinaryBundle,
} from "../../scripts/build_binary_bundle.ts";
import {
  BINARY_BUNDLE,
  BINARY_BUNDLE_SOURCE_HASH,
} from "../../src/chat/binary_bundle.ts";
import { createChatServer } from "../../src/chat/chat.ts";

Deno.test("src/chat/binary_bundle.ts is up to date with binary.ts", async () => {
  const built = await buildBinaryBundle();
  assert.equal(
    BINARY_BUNDLE_SOURCE_HASH,
    built.sourceHash,
    `${BINARY_OUTPUT_PATH} is stale: run \`${BINARY_BUILD_COMMAND}\` and commit the result`,
  );
});

Deno.test("the binary bundle is an ES module whose codec round-trips bytes", async () => {
  const module = await import(
    `data:text/javascript;base64,${
      btoa(String.fromCodePoint(...new TextEncoder().encode(BINARY_BUNDLE)))
    }`
  );
  const bytes = new Uint8Array([1, 2, 3]);
  const frame = { sequence: 1, type: 2, message: { bytes } };
  assert.deepEqual(
    module.binaryCodec.decode(module.binaryCodec.encode(frame)),
    frame,
  );
  assert.equal(module.binaryCodec.protocol, "duplex.v1.bin");
});

Deno.test("createChatServer() serves /binary.js", async () => {
  const server = createChatServer();
  const response = await server.fetch(new Request("http://x/binary.js"));
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type")!, /javascript/);
  assert.equal(await response.text(), BINARY_BUNDLE);
  await server.shutdown();
});
