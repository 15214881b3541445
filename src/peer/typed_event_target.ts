/**
 * Typed `addEventListener` / `removeEventListener` for classes that extend
 * `EventTarget`, by declaration merging: types only, no runtime code.
 *
 * @module
 */

/**
 * An `EventTarget` whose `addEventListener` / `removeEventListener` are
 * typed by `EventMap` (event name → event class). It adds no runtime code:
 * extend it instead of `EventTarget`.
 *
 * @typeParam EventMap Event name → event type.
 *
 * @example Usage
 * ```ts
 * import { TypedEventTarget } from "@duplex/ws/server";
 *
 * interface TickEvents {
 *   tick: CustomEvent<number>;
 * }
 * class Clock extends TypedEventTarget<TickEvents> {}
 *
 * new Clock().addEventListener("tick", (event) => event.detail.toFixed());
 * ```
 */
export class TypedEventTarget<EventMap> extends EventTarget {}

/** The typed listener methods, merged into the class (types only). */
export interface TypedEventTarget<EventMap> {
  /**
   * Listens for an event described by the event map.
   *
   * @param type The event type.
   * @param listener The listener, given the typed event.
   * @param options The standard listener options.
   */
  addEventListener<K extends keyof EventMap & string>(
    type: K,
    listener: (event: EventMap[K]) => void,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Listens for an event by name.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  addEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | AddEventListenerOptions,
  ): void;
  /**
   * Removes a listener added for an event of the event map.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  removeEventListener<K extends keyof EventMap & string>(
    type: K,
    listener: (event: EventMap[K]) => void,
    options?: boolean | EventListenerOptions,
  ): void;
  /**
   * Removes a listener by event name.
   *
   * @param type The event type.
   * @param listener The listener.
   * @param options The standard listener options.
   */
  removeEventListener(
    type: string,
    listener: EventListenerOrEventListenerObject | null,
    options?: boolean | EventListenerOptions,
  ): void;
}
