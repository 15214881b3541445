/**
 * The binary codec, a separate import so that JSON-only clients do not carry
 * it: `Uint8Array` and `ArrayBuffer` values anywhere in a request, response,
 * notification or stream chunk travel as raw bytes in binary WebSocket
 * messages, negotiated by the subprotocol `duplex.v1.bin`.
 *
 * @example A client and a server that send bytes
 * ```ts
 * import { binaryCodec } from "@duplex/ws/binary";
 * import { Client } from "@duplex/ws/client";
 * import { DuplexServer } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * const server = new DuplexServer({ codecs: [binaryCodec] });
 * server.handle("reverse", (bytes: Uint8Array) => bytes.slice().reverse());
 * await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, server.fetch);
 * await using client = new Client(`ws://127.0.0.1:${http.addr.port}/?user=alice`, { codec: binaryCodec });
 * await client.connect();
 * const reversed = await client.call("reverse", new Uint8Array([1, 2, 3]));
 * assert.deepEqual(reversed, new Uint8Array([3, 2, 1]));
 * await client.close();
 * await server.shutdown();
 * ```
 *
 * @module
 */

export { BINARY_SUBPROTOCOL, binaryCodec } from "./src/wire/binary_codec.ts";
