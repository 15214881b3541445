/**
 * {@linkcode Handshake}: a socket that asked for a session, between its
 * upgrade and its hello.
 *
 * @module
 */

import { Session } from "./server_session.ts";
import type { Upgraded } from "./upgrade.ts";
import { closeQuietly } from "../peer/socket_like.ts";

/** A socket between its upgrade and its hello. */
export class Handshake {
  hello = false;
  done = false;
  timer: ReturnType<typeof setTimeout>;
  constructor(
    readonly upgrade: Upgraded,
    readonly onHello: (handshake: Handshake, data: unknown) => void,
    readonly onGone: (handshake: Handshake, connected: boolean) => void,
    timeout: number,
  ) {
    this.timer = setTimeout(() => {
      if (this.finish(false)) {
        closeQuietly(upgrade.socket, 1008, "Session hello expected");
      }
    }, timeout);
    upgrade.socket.addEventListener("message", this);
    upgrade.socket.addEventListener("close", this);
  }

  handleEvent(event: Event): void {
    if (event.type === "close") {
      this.finish(false);
    } else if (this.hello) {
      // Nothing may come between the hello and the server's answer.
      if (this.finish(false)) {
        closeQuietly(this.upgrade.socket, 1002, "Session state expected first");
      }
    } else {
      this.hello = true;
      this.onHello(this, (event as MessageEvent).data);
    }
  }

  /**
   * Stops listening; `connected` when the socket now has a connection.
   *
   * @returns `false` when it was finished already.
   */
  finish(connected: boolean): boolean {
    if (this.done) return false;
    this.done = true;
    const socket = this.upgrade.socket;
    clearTimeout(this.timer);
    socket.removeEventListener("message", this);
    socket.removeEventListener("close", this);
    this.onGone(this, connected);
    return true;
  }
}

/**
 * Whether a resume on this instance must wait: `found` is a session whose
 * transport handed frames to its peer that the shared store does not know
 * as handed over yet. The answer tells the client every frame arrived, so
 * a take-over after this instance died could not report those frames in
 * doubt; the journal's next write settles it, and the client tries again.
 */
export function unconfirmed(found: unknown): boolean {
  return found instanceof Session &&
    found.held !== undefined && found.held.confirmed < found.held.released;
}
