/**
 * {@linkcode notificationStream}: incoming notifications as an async
 * iterator with a bounded buffer, the engine of `Client.notifications()`.
 *
 * @module
 */

import { DuplexError } from "../wire/errors.ts";
import type { NotifyFrame } from "../wire/protocol.ts";
import type { Registry } from "../peer/receiver.ts";
import type { NotificationsOptions } from "./client_options.ts";

/**
 * Iterates over the notifications `registry` receives (all, or those of one
 * method) until `ends` calls the end function it was given, or the consumer
 * falls `bufferSize` notifications behind (then it throws a `BUFFER_FULL`
 * {@linkcode DuplexError} once the buffered ones are consumed). Internal.
 *
 * @param registry Where the listener goes.
 * @param ends Holds the end function while the iteration runs.
 * @param options The method and the buffer size.
 * @returns The iterator.
 */
export function notificationStream(
  registry: Registry,
  ends: Set<() => void>,
  options: NotificationsOptions = {},
): AsyncIterableIterator<NotifyFrame> {
  const { method, bufferSize = 1_000 } = options;
  const frames: NotifyFrame[] = [];
  /** Set when the iteration ends: `true`, or the error that ends it. */
  let finish: DuplexError | true | undefined;
  let wake = (): void => {};
  const off = registry.on(method, (_, frame: NotifyFrame) => {
    if (frames.push(frame) > bufferSize) {
      frames.pop();
      finish = new DuplexError(
        "BUFFER_FULL",
        `Cannot buffer notification: ${bufferSize} already buffered`,
      );
      off();
    }
    wake();
  });
  const end = (): void => {
    finish ??= true;
    off();
    ends.delete(end);
    wake();
  };
  ends.add(end);
  return {
    async next(): Promise<IteratorResult<NotifyFrame>> {
      while (!frames.length && !finish) {
        await new Promise<void>((resolve) => wake = resolve);
      }
      if (frames.length) return { value: frames.shift()!, done: false };
      end();
      if (finish !== true) throw finish;
      return { value: undefined, done: true };
    },
    // deno-lint-ignore require-await
    async return(): Promise<IteratorResult<NotifyFrame>> {
      end();
      return { value: undefined, done: true };
    },
    [Symbol.asyncIterator](): AsyncIterableIterator<NotifyFrame> {
      return this;
    },
  };
}
