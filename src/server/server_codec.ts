/**
 * The codec of the server's JSON connections: the JSON codec, with responses
 * encoded by {@linkcode encodeJsonResponse} (byte for byte the same, in half
 * the time) rather than by stringifying the frame object, and results a
 * handler encoded once ({@linkcode EncodedResult}) spliced in as they are.
 * The browser client keeps the plain `jsonCodec`, so it does not carry this
 * code.
 *
 * @module
 */

import { type Codec, encodeJsonResponse, jsonCodec } from "../wire/codec.ts";
import { EncodedResult, resultCodec } from "./encoded_result.ts";

/** `jsonCodec` with the fast path for responses and encoded results. */
export const serverJsonCodec: Codec = {
  name: jsonCodec.name,
  encode: resultCodec.encode,
  encodeResponse(sequence: number, message: unknown): string {
    return message instanceof EncodedResult
      ? `{"sequence":${sequence},"type":2,"message":${message.json}}`
      : encodeJsonResponse(sequence, message);
  },
  decode: jsonCodec.decode,
};
