/**
 * The client side of the presence feed: {@linkcode PresenceView} keeps the
 * list of users online (with their metadata) from `presence.state` and
 * `presence.diff`, and listens again after every reconnection.
 *
 * @module
 */

import { TypedEventTarget } from "../peer/typed_event_target.ts";
import type {
  PresenceDiff,
  PresenceMeta,
  PresenceState,
} from "../wire/presence_frames.ts";
import type { Client } from "./client.ts";

/**
 * What changed in a {@linkcode PresenceView}: the detail of its `change`
 * event.
 *
 * @example Usage
 * ```ts
 * import type { PresenceChange } from "@duplex/ws/client";
 *
 * const change: PresenceChange = { joined: ["bob"], left: [], updated: [] };
 * ```
 */
export interface PresenceChange {
  /** Users who came online. */
  joined: string[];
  /** Users who went offline. */
  left: string[];
  /** Users online before and after whose metadata changed. */
  updated: string[];
}

/**
 * The events of a {@linkcode PresenceView}.
 *
 * @example Usage
 * ```ts
 * import type { PresenceViewEventMap } from "@duplex/ws/client";
 *
 * const show = (event: PresenceViewEventMap["change"]) => console.log(event.detail.joined);
 * ```
 */
export interface PresenceViewEventMap {
  /** The list changed (a snapshot or a diff). */
  change: CustomEvent<PresenceChange>;
}

type AnyClient = Client<never, never> & {
  call(method: string, params: unknown): Promise<unknown>;
  on(method: string, listener: (payload: never) => void): () => void;
};

/**
 * Who is online, kept up to date from the server's presence feed (a
 * `PresenceFeed` on the server; the chat installs one). `listen()` asks for
 * it; after a reconnection the view asks again and its `change` event
 * reports the difference.
 *
 * @example Usage
 * ```ts
 * import { Client, PresenceView } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const client = new Client("ws://127.0.0.1:1/");
 * using view = new PresenceView(client);
 * assert.equal(view.users.size, 0);
 * ```
 */
export class PresenceView extends TypedEventTarget<PresenceViewEventMap>
  implements Disposable {
  /** The users online and their metadata (`undefined`: none). */
  readonly users: Map<string, PresenceMeta | undefined> = new Map();
  #client: AnyClient;
  #listening = false;
  #stop: Array<() => void> = [];

  /**
   * Creates a view of a client's presence feed; nothing is asked before
   * `listen()`.
   *
   * @param client The client.
   */
  // deno-lint-ignore no-explicit-any
  constructor(client: Client<any, any>) {
    super();
    const untyped = this.#client = client as unknown as AnyClient;
    const onOpen = () => {
      if (this.#listening) this.#ask().catch(() => {});
    };
    client.addEventListener("open", onOpen);
    this.#stop.push(
      () => client.removeEventListener("open", onOpen),
      untyped.on(
        "presence.state",
        (state: PresenceState) => this.#state(state),
      ),
      untyped.on("presence.diff", (diff: PresenceDiff) => this.#diff(diff)),
    );
  }

  /**
   * Starts listening: the server sends everyone online now, then the
   * changes. Listens again after every reconnection.
   *
   * @returns Settles once the server answered.
   * @throws {RemoteError} When the server has no presence feed
   * (`METHOD_NOT_FOUND`).
   */
  async listen(): Promise<void> {
    this.#listening = true;
    await this.#ask();
  }

  /**
   * Sets this user's metadata (`null` removes it); everyone listening sees
   * it in the next diff.
   *
   * @param meta A flat object of at most 256 bytes, or `null`.
   * @returns `false` when the server did not take it.
   * @throws {RemoteError} When the metadata is invalid (`INVALID_PARAMS`).
   */
  async set(meta: PresenceMeta | null): Promise<boolean> {
    return await this.#client.call("presence.set", meta) === true;
  }

  /** Stops following the feed (the server stops with the connection). */
  [Symbol.dispose](): void {
    this.#listening = false;
    for (const stop of this.#stop.splice(0)) stop();
  }

  async #ask(): Promise<void> {
    await this.#client.call("presence.listen", null);
  }

  #state(state: PresenceState): void {
    const users = this.users;
    const before = new Map(users);
    users.clear();
    const meta = state.meta ?? {};
    for (const user of state.users) users.set(user, meta[user]);
    const change: PresenceChange = { joined: [], left: [], updated: [] };
    for (const [user, value] of users) {
      if (!before.has(user)) change.joined.push(user);
      else if (JSON.stringify(before.get(user)) !== JSON.stringify(value)) {
        change.updated.push(user);
      }
    }
    for (const user of before.keys()) {
      if (!users.has(user)) change.left.push(user);
    }
    this.#emit(change);
  }

  #diff(diff: PresenceDiff): void {
    const users = this.users;
    const change: PresenceChange = { joined: [], left: [], updated: [] };
    const joined = new Set<string>();
    for (const user of diff.left ?? []) {
      if (users.delete(user)) change.left.push(user);
    }
    for (const user of diff.joined ?? []) {
      if (!users.has(user)) joined.add(user);
      users.set(user, undefined);
    }
    for (const [user, meta] of Object.entries(diff.meta ?? {})) {
      if (!users.has(user)) continue;
      users.set(user, meta ?? undefined);
      if (!joined.has(user)) change.updated.push(user);
    }
    change.joined = [...joined];
    this.#emit(change);
  }

  #emit(detail: PresenceChange): void {
    this.dispatchEvent(new CustomEvent("change", { detail }));
  }
}
