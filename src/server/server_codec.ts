/**
 * The codec of the server's connections: the JSON codec, with responses
 * encoded by {@linkcode encodeJsonResponse} (byte for byte the same, in half
 * the time) rather than by stringifying the frame object. The browser client
 * keeps the plain `jsonCodec`, so it does not carry this code.
 *
 * @module
 */

import { type Codec, encodeJsonResponse, jsonCodec } from "../wire/codec.ts";

/** `jsonCodec` with the fast path for responses. */
export const serverJsonCodec: Codec = {
  name: jsonCodec.name,
  encode: jsonCodec.encode,
  encodeResponse: encodeJsonResponse,
  decode: jsonCodec.decode,
};
