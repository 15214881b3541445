/**
 * {@linkcode ListenerLists}: the `message` and `close` listeners of a
 * socket-like object that is not an `EventTarget` (a session's socket, which
 * a peer listens to once for each), kept in exact-size arrays.
 *
 * @module
 */

/**
 * The `message` and `close` listener objects of a socket-like object, and
 * their dispatch. Internal: the base of the session socket.
 */
export class ListenerLists {
  #onMessage: EventListenerObject[] | undefined;
  #onClose: EventListenerObject[] | undefined;

  /**
   * Adds a `message` or `close` listener.
   *
   * @param type The event type.
   * @param listener The listener object.
   */
  addEventListener(type: string, listener: EventListenerObject): void {
    // Exact sizes: an empty array grows to 17 slots on its first push.
    if (type === "message") {
      this.#onMessage = this.#onMessage?.concat(listener) ?? [listener];
    } else if (type === "close") {
      this.#onClose = this.#onClose?.concat(listener) ?? [listener];
    }
  }

  /**
   * Removes a listener.
   *
   * @param type The event type.
   * @param listener The listener object.
   */
  removeEventListener(type: string, listener: EventListenerObject): void {
    const list = type === "message"
      ? this.#onMessage
      : type === "close"
      ? this.#onClose
      : undefined;
    const index = list?.indexOf(listener) ?? -1;
    if (index >= 0) list!.splice(index, 1);
  }

  /**
   * Hands a `message` event to the message listeners (also a session's
   * `HeldFrames`, releasing what it held).
   *
   * @param event The event.
   */
  deliver(event: Event): void {
    const listeners = this.#onMessage;
    if (listeners === undefined) return;
    if (listeners.length === 1) listeners[0].handleEvent(event);
    else for (const listener of [...listeners]) listener.handleEvent(event);
  }

  /**
   * Hands a `close` event to the close listeners.
   *
   * @param event The event.
   */
  protected closed(event: CloseEvent): void {
    for (const listener of [...this.#onClose ?? []]) {
      listener.handleEvent(event);
    }
  }
}
