/**
 * The type-level description of what one side of a connection answers and
 * receives ({@linkcode Endpoint}), and the helpers that read method names,
 * params, results and payloads out of it. Nothing here exists at run time.
 *
 * @module
 */

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
 *   requests: { "users.list": (params: void) => string[] };
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
