/**
 * The type-level description of what one side of a connection answers and
 * receives ({@linkcode Endpoint}), and the helpers that read method names,
 * params, results and payloads out of it. Nothing here exists at run time.
 *
 * @module
 */

import type { NotifyFrame } from "../wire/protocol.ts";

/**
 * What one side of a connection accepts: the requests it answers
 * (method → handler signature) and the notifications it receives
 * (method → payload). Used only for types; nothing is generated.
 *
 * @example Describe a server and a client
 * ```ts
 * import type { Endpoint } from "@duplex/ws";
 *
 * interface ChatServer extends Endpoint {
 *   requests: { "users.list": () => string[] };
 *   notifications: { typing: { room: string } };
 * }
 * interface ChatClient extends Endpoint {
 *   requests: { confirm: (params: { question: string }) => boolean };
 *   notifications: { "presence.joined": { user: string } };
 * }
 * ```
 */
export interface Endpoint {
  /** Method name → `(params) => result` of each request it answers. */
  requests: object;
  /** Method name → payload of each notification it receives. */
  notifications: object;
}

/**
 * The untyped endpoint: any method, any payload.
 *
 * @example Usage
 * ```ts
 * import { Peer, type AnyEndpoint } from "@duplex/ws";
 *
 * type Untyped = Peer<AnyEndpoint, AnyEndpoint>;
 * ```
 */
export interface AnyEndpoint extends Endpoint {
  /** Any method, any params, any result. */
  requests: Record<string, (params: unknown) => unknown>;
  /** Any method, any payload. */
  notifications: Record<string, unknown>;
}

/**
 * The request method names of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { RequestMethod } from "@duplex/ws";
 *
 * type Names = RequestMethod<{ requests: { sum: (p: number[]) => number }; notifications: {} }>;
 * const name: Names = "sum";
 * ```
 */
export type RequestMethod<E extends Endpoint> = keyof E["requests"] & string;

/**
 * The notification method names of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { NotificationMethod } from "@duplex/ws";
 *
 * type Names = NotificationMethod<{ requests: {}; notifications: { tick: number } }>;
 * const name: Names = "tick";
 * ```
 */
export type NotificationMethod<E extends Endpoint> =
  & keyof E["notifications"]
  & string;

/**
 * The params of request method `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { ParamsOf } from "@duplex/ws";
 *
 * type Api = { requests: { sum: (p: number[]) => number }; notifications: {} };
 * const params: ParamsOf<Api, "sum"> = [1, 2];
 * ```
 */
export type ParamsOf<E extends Endpoint, M extends RequestMethod<E>> =
  E["requests"][M] extends (params: infer P) => unknown ? P : never;

/**
 * The result of request method `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { ResultOf } from "@duplex/ws";
 *
 * type Api = { requests: { sum: (p: number[]) => number }; notifications: {} };
 * const result: ResultOf<Api, "sum"> = 3;
 * ```
 */
export type ResultOf<E extends Endpoint, M extends RequestMethod<E>> =
  E["requests"][M] extends (params: never) => infer R ? Awaited<R> : never;

/**
 * The payload of notification `M` of an endpoint.
 *
 * @example Usage
 * ```ts
 * import type { PayloadOf } from "@duplex/ws";
 *
 * type Api = { requests: {}; notifications: { tick: number } };
 * const payload: PayloadOf<Api, "tick"> = 1;
 * ```
 */
export type PayloadOf<E extends Endpoint, M extends NotificationMethod<E>> =
  E["notifications"][M];

/**
 * A notify frame of method `M` whose message has that notification's
 * payload type; the plain `NotifyFrame` when `M` is not a method name.
 *
 * @example Usage
 * ```ts
 * import type { TypedNotifyFrame } from "@duplex/ws";
 *
 * type Api = { requests: {}; notifications: { tick: number } };
 * const frame: TypedNotifyFrame<Api, "tick"> = { sequence: 0, type: 3, method: "tick", message: 1 };
 * ```
 */
export type TypedNotifyFrame<
  E extends Endpoint,
  M extends NotificationMethod<E> | undefined,
> = M extends NotificationMethod<E>
  ? NotifyFrame & { method: M; message: PayloadOf<E, M> }
  : NotifyFrame;

/**
 * The request methods of an endpoint that take no params (their params
 * type accepts `undefined`): those that `call(method)` accepts alone.
 *
 * @example Usage
 * ```ts
 * import type { MethodWithoutParams } from "@duplex/ws";
 *
 * type Api = { requests: { list: () => string[]; sum: (p: number[]) => number }; notifications: {} };
 * const name: MethodWithoutParams<Api> = "list";
 * ```
 */
export type MethodWithoutParams<E extends Endpoint> = {
  [M in RequestMethod<E>]: undefined extends ParamsOf<E, M> ? M : never;
}[RequestMethod<E>];

/**
 * The notifications of an endpoint that carry no payload (`void`): those
 * that `emit(method)` accepts alone.
 *
 * @example Usage
 * ```ts
 * import type { NotificationWithoutPayload } from "@duplex/ws";
 *
 * type Api = { requests: {}; notifications: { ready: void; tick: number } };
 * const name: NotificationWithoutPayload<Api> = "ready";
 * ```
 */
export type NotificationWithoutPayload<E extends Endpoint> = {
  [M in NotificationMethod<E>]: undefined extends PayloadOf<E, M> ? M
    : never;
}[NotificationMethod<E>];

/**
 * Any value a handler may return, spelled out so that a handler's literal
 * results (`"ok"`, `1 | 2`) keep their literal types without `as const`:
 * the result type parameter of `handle()` is bounded by the endpoint's
 * result and by this.
 *
 * @example Usage
 * ```ts
 * import type { AnyResult } from "@duplex/ws";
 *
 * const ok: AnyResult = "ok";
 * ```
 */
export type AnyResult =
  | string
  | number
  | boolean
  | bigint
  | symbol
  | object
  // deno-lint-ignore ban-types
  | {}
  | null
  | undefined;
