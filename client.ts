/**
 * The Duplex client for browsers and Deno (work in progress: see issue 4).
 *
 * @example Usage
 * ```ts
 * import { CLIENT_PLACEHOLDER } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLIENT_PLACEHOLDER, true);
 * ```
 *
 * @module
 */

/** Placeholder until the client lands. */
export const CLIENT_PLACEHOLDER: boolean = true;
