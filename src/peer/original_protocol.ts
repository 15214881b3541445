/**
 * What a peer may not send to a peer of the original protocol, which knows
 * only unnamed requests with a string message, their responses and chat
 * notifications, and takes every frame it receives for a chat request.
 *
 * @module
 */

import { OriginalProtocolError } from "../wire/errors.ts";

/**
 * Refuses a request that the original protocol cannot carry.
 *
 * @param message The request's payload: must be a string.
 * @param method The request's method: must be absent.
 * @throws {OriginalProtocolError} With a method or a non-string message.
 */
export function checkOriginalRequest(
  message: unknown,
  method: string | undefined,
): void {
  if (method !== undefined) {
    throw new OriginalProtocolError(
      `call ${JSON.stringify(method)}`,
      "it has no methods",
    );
  }
  if (typeof message !== "string") {
    throw new OriginalProtocolError(
      `send a ${message === null ? "null" : typeof message} message`,
      "its messages are strings",
    );
  }
}

/**
 * The error of a frame that would reach an original peer as a chat request.
 *
 * @param action What was refused, e.g. `send a notification`.
 * @returns The error.
 */
export function chatOnly(action: string): OriginalProtocolError {
  return new OriginalProtocolError(
    action,
    "it takes every frame for a chat request",
  );
}
