/**
 * Contracts: one object that describes an API with Standard Schemas (Zod,
 * Valibot, ArkType...) per method — request params, optionally results, and
 * notification payloads — from which the `Endpoint` types are inferred, and
 * that validates at runtime on whichever side uses it: {@linkcode implement}
 * wraps request handlers (invalid params are answered with an
 * `INVALID_PARAMS` error and the handler never runs), {@linkcode listen}
 * wraps notification listeners; `bind` (in `contract_caller.ts`) checks what
 * a caller sends and receives.
 *
 * @module
 */

import type { NotifyFrame } from "../wire/protocol.ts";
import type { RequestContext } from "./peer.ts";
import type { Registry } from "./receiver.ts";
import type {
  InferInput,
  InferOutput,
  StandardSchema,
} from "./standard_schema.ts";
import { toIssues, validate, ValidationError } from "./validation.ts";

/**
 * The schemas of one request method: its params (absent: the method takes
 * none) and, optionally, its result.
 *
 * @example Usage
 * ```ts
 * import type { MethodSchemas, StandardSchema } from "@duplex/ws";
 *
 * const numbers = {} as StandardSchema<number[]>;
 * const sum: MethodSchemas = { params: numbers };
 * ```
 */
export interface MethodSchemas {
  /** The params' schema; absent when the method takes no params. */
  readonly params?: StandardSchema;
  /** The result's schema; absent: the result is not checked. */
  readonly result?: StandardSchema;
}

/**
 * What one side answers and receives, described by schemas: request
 * methods and notification payloads.
 *
 * @example Usage
 * ```ts
 * import type { Contract, StandardSchema } from "@duplex/ws";
 *
 * const room = {} as StandardSchema<{ room: string }>;
 * const chat: Contract = { requests: { "users.list": {} }, notifications: { typing: room } };
 * ```
 */
export interface Contract {
  /** Request method → its schemas. */
  readonly requests?: { readonly [method: string]: MethodSchemas };
  /** Notification method → its payload's schema. */
  readonly notifications?: { readonly [method: string]: StandardSchema };
}

/**
 * The request methods of a contract (method → schemas).
 *
 * @example Usage
 * ```ts
 * import type { ContractRequests } from "@duplex/ws";
 *
 * type Methods = keyof ContractRequests<{ requests: { ping: {} } }>; // "ping"
 * ```
 */
export type ContractRequests<C extends Contract> = NonNullable<C["requests"]>;

/**
 * The notifications of a contract (method → payload schema).
 *
 * @example Usage
 * ```ts
 * import type { ContractNotifications, StandardSchema } from "@duplex/ws";
 *
 * type Methods = keyof ContractNotifications<{ notifications: { tick: StandardSchema<number> } }>;
 * ```
 */
export type ContractNotifications<C extends Contract> = NonNullable<
  C["notifications"]
>;

/**
 * What the caller sends as params of request method `M`: the schema's
 * input, or `void` when the method declares no params.
 *
 * @example Usage
 * ```ts
 * import type { ContractParams, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { add: { params: StandardSchema<{ a: number; b: number }> } } };
 * const params: ContractParams<Api, "add"> = { a: 1, b: 2 };
 * ```
 */
export type ContractParams<
  C extends Contract,
  M extends keyof ContractRequests<C>,
> = ContractRequests<C>[M] extends { params: infer P extends StandardSchema }
  ? InferInput<P>
  : void;

/**
 * What the handler of request method `M` receives: the params schema's
 * output (after its transforms), or `void`.
 *
 * @example Usage
 * ```ts
 * import type { ContractHandlerParams, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { len: { params: StandardSchema<string, number> } } };
 * const params: ContractHandlerParams<Api, "len"> = 5;
 * ```
 */
export type ContractHandlerParams<
  C extends Contract,
  M extends keyof ContractRequests<C>,
> = ContractRequests<C>[M] extends { params: infer P extends StandardSchema }
  ? InferOutput<P>
  : void;

/**
 * The result of request method `M` as the caller receives it: the result
 * schema's output, or `unknown` when the contract does not say.
 *
 * @example Usage
 * ```ts
 * import type { ContractResult, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { add: { result: StandardSchema<number> } } };
 * const result: ContractResult<Api, "add"> = 3;
 * ```
 */
export type ContractResult<
  C extends Contract,
  M extends keyof ContractRequests<C>,
> = ContractRequests<C>[M] extends { result: infer R extends StandardSchema }
  ? InferOutput<R>
  : unknown;

/**
 * What the handler of request method `M` may return: the result schema's
 * input, or anything when the contract does not say.
 *
 * @example Usage
 * ```ts
 * import type { ContractHandlerResult, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { add: { result: StandardSchema<number> } } };
 * const result: ContractHandlerResult<Api, "add"> = 3;
 * ```
 */
export type ContractHandlerResult<
  C extends Contract,
  M extends keyof ContractRequests<C>,
> = ContractRequests<C>[M] extends { result: infer R extends StandardSchema }
  ? InferInput<R>
  : unknown;

/**
 * The `Endpoint` a contract describes, for `Peer`, `Client` and
 * `DuplexServer` type parameters: one contract instead of (or besides) an
 * `Endpoint` interface.
 *
 * @example Usage
 * ```ts
 * import type { ContractEndpoint, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { add: { params: StandardSchema<number[]>; result: StandardSchema<number> } } };
 * type Endpoint = ContractEndpoint<Api>;
 * const add: Endpoint["requests"]["add"] = (numbers) => numbers.length;
 * ```
 */
export type ContractEndpoint<C extends Contract> = {
  requests: {
    [M in keyof ContractRequests<C> & string]: (
      params: ContractParams<C, M>,
    ) => ContractResult<C, M>;
  };
  notifications: {
    [M in keyof ContractNotifications<C> & string]: InferInput<
      ContractNotifications<C>[M]
    >;
  };
};

/**
 * The handlers of a contract's request methods, typed from its schemas.
 * Every method may be left out (it is then not registered).
 *
 * @example Usage
 * ```ts
 * import type { ContractHandlers, StandardSchema } from "@duplex/ws";
 *
 * type Api = { requests: { add: { params: StandardSchema<number[]> } } };
 * const handlers: ContractHandlers<Api> = { add: (numbers) => numbers.length };
 * ```
 */
export type ContractHandlers<
  C extends Contract,
  Context = RequestContext,
> = {
  [M in keyof ContractRequests<C>]?: (
    params: ContractHandlerParams<C, M>,
    context: Context,
  ) =>
    | ContractHandlerResult<C, M>
    | Promise<ContractHandlerResult<C, M>>;
};

/**
 * The listeners of a contract's notifications, typed from its schemas.
 *
 * @example Usage
 * ```ts
 * import type { ContractListeners, StandardSchema } from "@duplex/ws";
 *
 * type Api = { notifications: { typing: StandardSchema<{ room: string }> } };
 * const listeners: ContractListeners<Api> = { typing: ({ room }) => console.log(room) };
 * ```
 */
export type ContractListeners<C extends Contract> = {
  [M in keyof ContractNotifications<C>]?: (
    payload: InferOutput<ContractNotifications<C>[M]>,
    frame: NotifyFrame,
  ) => void;
};

/**
 * Returns `contract` unchanged, with its literal type kept (so the methods'
 * names and schemas are known to the other functions).
 *
 * @typeParam C The contract's type.
 * @param contract The schemas of each method.
 * @returns The same object.
 *
 * @example One contract for a server's API
 * ```ts
 * import { type ContractEndpoint, defineContract } from "@duplex/ws";
 * import type { StandardSchema } from "@duplex/ws";
 *
 * const numbers = {} as StandardSchema<number[]>;
 * const api = defineContract({ requests: { sum: { params: numbers }, ping: {} } });
 * type Api = ContractEndpoint<typeof api>; // requests: sum(number[]), ping()
 * ```
 */
export function defineContract<const C extends Contract>(contract: C): C {
  return contract;
}

/**
 * Anything that registers handlers: a `Peer`, a `Client`, a
 * `DuplexServer`.
 *
 * @example Usage
 * ```ts
 * import { Registry, type RegistryHolder } from "@duplex/ws";
 *
 * const holder: RegistryHolder = { registry: new Registry() };
 * ```
 */
export interface RegistryHolder {
  /** Where handlers and listeners go. */
  readonly registry: Registry;
}

/**
 * Registers `handlers` for the request methods of `contract` on `target`
 * (a `Peer`, `Client` or `DuplexServer`), each wrapped so that the params
 * are validated first (invalid: an `INVALID_PARAMS` error with the issues
 * is the answer and the handler never runs; valid: the handler gets the
 * schema's output) and the result after (when the contract has a result
 * schema; invalid: `INVALID_RESULT`).
 *
 * @typeParam C The contract.
 * @typeParam Context The handlers' context (the server's has `from` as a
 * `string`).
 * @param target What to register on.
 * @param contract The schemas.
 * @param handlers The handler of each method to serve.
 * @returns A function that removes the handlers.
 *
 * @example Validated handlers on a server
 * ```ts
 * import { defineContract, implement, RemoteError, type StandardSchema } from "@duplex/ws";
 * import { DuplexServer } from "@duplex/ws/server";
 * import { Client } from "@duplex/ws/client";
 * import assert from "node:assert/strict";
 *
 * const numbers: StandardSchema<number[]> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (v) =>
 *       Array.isArray(v) && v.every((n) => typeof n === "number")
 *         ? { value: v }
 *         : { issues: [{ message: "Expected an array of numbers" }] },
 *   },
 * };
 * const api = defineContract({ requests: { sum: { params: numbers } } });
 * const server = new DuplexServer();
 * implement(server, api, { sum: (list) => list.reduce((a, b) => a + b, 0) });
 * await using http = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, server.fetch);
 * await using client = new Client(`ws://127.0.0.1:${http.addr.port}/?user=ada`);
 * await client.connect();
 * assert.equal(await client.call("sum", [1, 2]), 3);
 * await assert.rejects(client.call("sum", ["1", "2"]), (error: RemoteError) =>
 *   error.code === "INVALID_PARAMS");
 * await server.shutdown();
 * ```
 */
export function implement<C extends Contract, Context = RequestContext>(
  target: RegistryHolder,
  contract: C,
  handlers: ContractHandlers<C, Context>,
): () => void {
  const removers: Array<() => void> = [];
  const requests = contract.requests ?? {};
  for (const method of Object.keys(handlers)) {
    const handler = (handlers as Record<string, unknown>)[method] as
      | ((params: unknown, context: unknown) => unknown)
      | undefined;
    if (handler === undefined) continue;
    if (!Object.hasOwn(requests, method)) {
      throw new TypeError(
        `Cannot implement ${method}: the contract has no such request method`,
      );
    }
    const { params, result } = requests[method];
    removers.push(target.registry.handle(
      method,
      async (value: unknown, context: RequestContext) => {
        const input = await validate(params, value, "INVALID_PARAMS", method);
        const output = await handler(input, context);
        return await validate(result, output, "INVALID_RESULT", method);
      },
    ));
  }
  return () => {
    for (const remove of removers) remove();
  };
}

/**
 * Adds `listeners` for the notifications of `contract` on `target`, each
 * wrapped so that the payload is validated first: an invalid payload never
 * reaches the listener and is reported as an `error` event of the
 * connection (a {@linkcode ValidationError} with code `INVALID_PAYLOAD`).
 *
 * @typeParam C The contract.
 * @param target What to listen on: a `Peer`, `Client` or `DuplexServer`.
 * @param contract The schemas.
 * @param listeners The listener of each notification.
 * @returns A function that removes the listeners.
 *
 * @example Usage
 * ```ts
 * import { defineContract, listen, Registry, type StandardSchema } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const room: StandardSchema<{ room: string }> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (v) =>
 *       typeof (v as { room?: unknown })?.room === "string"
 *         ? { value: v as { room: string } }
 *         : { issues: [{ message: "Expected a room", path: ["room"] }] },
 *   },
 * };
 * const api = defineContract({ notifications: { typing: room } });
 * const target = { registry: new Registry() };
 * const off = listen(target, api, { typing: ({ room }) => console.log(room) });
 * assert.equal(target.registry.listeners.get("typing")?.size, 1);
 * off();
 * ```
 */
export function listen<C extends Contract>(
  target: RegistryHolder,
  contract: C,
  listeners: ContractListeners<C>,
): () => void {
  const removers: Array<() => void> = [];
  const notifications = contract.notifications ?? {};
  for (const method of Object.keys(listeners)) {
    const listener = (listeners as Record<string, unknown>)[method] as
      | ((payload: unknown, frame: NotifyFrame) => void)
      | undefined;
    if (listener === undefined) continue;
    if (!Object.hasOwn(notifications, method)) {
      throw new TypeError(
        `Cannot listen to ${method}: the contract has no such notification`,
      );
    }
    const schema = notifications[method];
    removers.push(target.registry.on(
      method,
      (payload: unknown, frame: NotifyFrame) => {
        const result = schema["~standard"].validate(payload);
        const deliver = (checked: Awaited<typeof result>): void => {
          if (checked.issues) {
            throw new ValidationError(
              "INVALID_PAYLOAD",
              method,
              toIssues(checked.issues),
            );
          }
          listener(checked.value, frame);
        };
        // Synchronous schemas (the usual case) throw where the peer reports
        // listener errors; an asynchronous one cannot, so it is logged.
        if (result instanceof Promise) {
          result.then(deliver).catch((error) => reportLater(target, error));
        } else deliver(result);
      },
    ));
  }
  return () => {
    for (const remove of removers) remove();
  };
}

/** Reports an asynchronous listener failure as an `error` event. */
function reportLater(target: RegistryHolder, error: unknown): void {
  const events = target as unknown as Partial<EventTarget>;
  events.dispatchEvent?.(
    new ErrorEvent("error", {
      error,
      message: error instanceof Error ? error.message : String(error),
    }),
  );
}
