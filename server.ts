/**
 * The Duplex server for Deno (work in progress: see issue 3).
 *
 * @example Usage
 * ```ts
 * import { SERVER_PLACEHOLDER } from "@duplex/ws/server";
 * import assert from "node:assert/strict";
 *
 * assert.equal(SERVER_PLACEHOLDER, true);
 * ```
 *
 * @module
 */

/** Placeholder until the server lands. */
export const SERVER_PLACEHOLDER: boolean = true;
