/**
 * Shared test helpers: events with deadlines, real servers on 127.0.0.1.
 *
 * @module
 */

/** Default deadline for awaiting one event in tests. */
export const DEADLINE_MS = 5_000;

/**
 * How long a test waits for a Worker to load, compile and report that it
 * started: generous, because on a loaded 2-core machine module compilation
 * alone can take seconds. A bound on failure, never a wait on success.
 */
export const WORKER_START_MS = 30_000;

/**
 * Waits for one event of `type` on `target`, rejecting after `ms`.
 *
 * @param target The event target.
 * @param type The event type.
 * @param ms The deadline in milliseconds.
 * @returns The event.
 */
export function once<E extends Event = Event>(
  target: EventTarget,
  type: string,
  ms: number = DEADLINE_MS,
): Promise<E> {
  return new Promise<E>((resolve, reject) => {
    const timer = setTimeout(() => {
      target.removeEventListener(type, listener);
      reject(new Error(`Timed out after ${ms} ms waiting for "${type}"`));
    }, ms);
    const listener = (event: Event) => {
      clearTimeout(timer);
      resolve(event as E);
    };
    target.addEventListener(type, listener, { once: true });
  });
}

/**
 * Races `promise` against a deadline.
 *
 * @param promise The promise.
 * @param ms The deadline in milliseconds.
 * @param what What is awaited, for the error message.
 * @returns The promise's value.
 */
export function deadline<T>(
  promise: Promise<T>,
  ms: number = DEADLINE_MS,
  what = "promise",
): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Collects messages of a raw WebSocket so that tests can await the next one
 * (or the next one matching a predicate) without losing any.
 */
export class MessageQueue {
  #items: unknown[] = [];
  #waiters: Array<{
    match: (value: unknown) => boolean;
    resolve: (value: unknown) => void;
  }> = [];

  /** Starts collecting parsed JSON messages of `socket`. */
  constructor(socket: WebSocket) {
    socket.addEventListener("message", (event) => {
      const value = typeof event.data === "string"
        ? JSON.parse(event.data)
        : event.data;
      const index = this.#waiters.findIndex((w) => w.match(value));
      if (index >= 0) {
        const [waiter] = this.#waiters.splice(index, 1);
        waiter.resolve(value);
      } else {
        this.#items.push(value);
      }
    });
  }

  /** Messages received and not yet taken. */
  get buffered(): unknown[] {
    return this.#items;
  }

  /**
   * Takes the next message matching `match` (default: any), waiting for it.
   */
  next<T = Record<string, unknown>>(
    match: (value: T) => boolean = () => true,
    ms: number = DEADLINE_MS,
  ): Promise<T> {
    const index = this.#items.findIndex((v) => match(v as T));
    if (index >= 0) {
      return Promise.resolve(this.#items.splice(index, 1)[0] as T);
    }
    const { promise, resolve } = Promise.withResolvers<unknown>();
    const waiter = {
      match: match as (value: unknown) => boolean,
      resolve,
    };
    this.#waiters.push(waiter);
    return deadline(promise, ms, "a WebSocket message").catch((error) => {
      this.#waiters = this.#waiters.filter((w) => w !== waiter);
      throw error;
    }) as Promise<T>;
  }
}

/**
 * Opens a raw WebSocket and waits until it is open.
 *
 * @param url The URL.
 * @param protocols Subprotocols to offer.
 * @returns The open socket.
 */
export async function openSocket(
  url: string,
  protocols?: string | string[],
): Promise<WebSocket> {
  const socket = new WebSocket(url, protocols);
  const { promise, resolve, reject } = Promise.withResolvers<void>();
  const timer = setTimeout(
    () => reject(new Error(`Timed out opening ${url}`)),
    DEADLINE_MS,
  );
  const onOpen = () => resolve();
  const onError = () => reject(new Error(`Cannot open ${url}`));
  socket.addEventListener("open", onOpen);
  socket.addEventListener("error", onError);
  try {
    await promise;
  } finally {
    clearTimeout(timer);
    socket.removeEventListener("open", onOpen);
    socket.removeEventListener("error", onError);
  }
  return socket;
}

/**
 * Closes a raw WebSocket and waits for its close event.
 *
 * @param socket The socket.
 */
export async function closeSocket(socket: WebSocket): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return;
  const closed = once(socket, "close");
  socket.close();
  await closed;
}
