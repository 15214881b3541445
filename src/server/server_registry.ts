/**
 * The registry a {@linkcode DuplexServer} makes when it is given none: its
 * handler map keeps the default handler (key `undefined`, the handler of
 * every original-protocol request) in a field as well, because V8 finds an
 * `undefined` key in a `Map` through a call into C++ for its hash (about
 * 220 instructions a lookup, against 125 for a string key), on every
 * request. The map behaves as any `Map` does; the browser client keeps the
 * plain {@linkcode Registry}.
 *
 * @module
 */

import type { RequestHandler } from "../peer/handler.ts";
import { Registry } from "../peer/receiver.ts";

// The server's base class, from here with the registry it makes.
export { Receiver } from "../peer/receiver.ts";

type Handler = RequestHandler<never, unknown>;

/** A handler map with its default handler at hand. */
class HandlerMap extends Map<string | undefined, Handler> {
  #default: Handler | undefined = undefined;

  override get(method: string | undefined): Handler | undefined {
    return method === undefined ? this.#default : super.get(method);
  }

  override set(method: string | undefined, handler: Handler): this {
    if (method === undefined) this.#default = handler;
    return super.set(method, handler);
  }

  override delete(method: string | undefined): boolean {
    if (method === undefined) this.#default = undefined;
    return super.delete(method);
  }

  override clear(): void {
    this.#default = undefined;
    super.clear();
  }
}

/** A {@linkcode Registry} whose default handler is found without hashing. */
export class ServerRegistry extends Registry {
  override readonly handlers: Map<string | undefined, Handler> =
    new HandlerMap();
}
