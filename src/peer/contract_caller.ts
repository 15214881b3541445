/**
 * The calling side of a contract: {@linkcode bind} wraps a sender (a
 * `Client`, a `Peer`, a `DuplexServer`) so that params and payloads are
 * validated before anything is sent and results when they arrive.
 *
 * @module
 */

import type {
  Contract,
  ContractNotifications,
  ContractParams,
  ContractRequests,
  ContractResult,
  MethodSchemas,
} from "./contract.ts";
import type { InferInput } from "./standard_schema.ts";
import { validate } from "./validation.ts";

/** What {@linkcode bind} needs: a way to send requests and notifications. */
export interface ContractSender<RequestExtra, NotifyExtra> {
  /** Sends a request (to `options.method`). */
  request<R = unknown>(
    message: unknown,
    options: RequestExtra & { method?: string },
  ): Promise<R>;
  /** Sends a notification (of `options.method`). */
  notify(message: unknown, options: NotifyExtra & { method?: string }): unknown;
}

/**
 * A caller checked against a contract, from {@linkcode bind}.
 *
 * @typeParam C The contract of the other side.
 * @typeParam RequestExtra The sender's request options (e.g. `{ to }`).
 * @typeParam NotifyExtra The sender's notification options.
 *
 * @example Usage
 * ```ts
 * import type { BoundContract, RequestOptions } from "@duplex/ws";
 *
 * type Api = { requests: { ping: {} } };
 * type Bound = BoundContract<Api, RequestOptions, object>;
 * function ping(api: Bound): Promise<unknown> {
 *   return api.call("ping"); // no params: no second argument
 * }
 * ```
 */
export interface BoundContract<C extends Contract, RequestExtra, NotifyExtra> {
  /**
   * Validates the params, sends the request, validates the result.
   *
   * @throws {ValidationError} `INVALID_PARAMS` before sending,
   * `INVALID_RESULT` after the answer.
   */
  call<M extends keyof ContractRequests<C> & string>(
    method: M,
    ...args: ContractParams<C, M> extends void
      ? [params?: undefined, options?: RequestExtra]
      : [params: ContractParams<C, M>, options?: RequestExtra]
  ): Promise<ContractResult<C, M>>;
  /**
   * Validates the payload, sends the notification.
   *
   * @throws {ValidationError} `INVALID_PAYLOAD` before sending.
   */
  emit<M extends keyof ContractNotifications<C> & string>(
    method: M,
    payload: InferInput<ContractNotifications<C>[M]>,
    options?: NotifyExtra,
  ): Promise<void>;
}

/**
 * Binds a sender (a `Client`, a `Peer`, or a `DuplexServer` with `{ to }`)
 * to the contract of the other side: `call` validates the params before
 * anything is sent and the result when it arrives; `emit` validates the
 * payload.
 *
 * @typeParam C The contract.
 * @typeParam RequestExtra The sender's request options.
 * @typeParam NotifyExtra The sender's notification options.
 * @param sender What sends.
 * @param contract The other side's schemas.
 * @returns The checked caller.
 *
 * @example Fail before sending
 * ```ts
 * import { bind, defineContract, Peer, type StandardSchema, ValidationError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const text: StandardSchema<string> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (v) => typeof v === "string" ? { value: v } : { issues: [{ message: "Expected text" }] },
 *   },
 * };
 * const api = defineContract({ requests: { shout: { params: text, result: text } } });
 * const sent: unknown[] = [];
 * const peer = new Peer({
 *   readyState: 1, bufferedAmount: 0, send: (data) => sent.push(data), close() {},
 *   addEventListener() {}, removeEventListener() {},
 * });
 * const checked = bind(peer, api);
 * // @ts-expect-error: a number is not text
 * await assert.rejects(checked.call("shout", 42), ValidationError);
 * assert.equal(sent.length, 0); // nothing was sent
 * peer.close();
 * ```
 */
export function bind<C extends Contract, RequestExtra, NotifyExtra>(
  sender: ContractSender<RequestExtra, NotifyExtra>,
  contract: C,
): BoundContract<C, RequestExtra, NotifyExtra> {
  const requests = contract.requests ?? {};
  const notifications = contract.notifications ?? {};
  const schemasOf = (method: string): MethodSchemas => {
    if (!Object.hasOwn(requests, method)) {
      throw new TypeError(
        `Cannot call ${method}: the contract has no such request method`,
      );
    }
    return requests[method];
  };
  return {
    async call(method: string, params?: unknown, options?: RequestExtra) {
      const { params: input, result } = schemasOf(method);
      const checked = await validate(input, params, "INVALID_PARAMS", method);
      const answer = await sender.request(
        checked,
        {
          ...options,
          method,
        } as RequestExtra & { method: string },
      );
      return await validate(result, answer, "INVALID_RESULT", method);
    },
    async emit(method: string, payload: unknown, options?: NotifyExtra) {
      if (!Object.hasOwn(notifications, method)) {
        throw new TypeError(
          `Cannot emit ${method}: the contract has no such notification`,
        );
      }
      const checked = await validate(
        notifications[method],
        payload,
        "INVALID_PAYLOAD",
        method,
      );
      await sender.notify(
        checked,
        {
          ...options,
          method,
        } as NotifyExtra & { method: string },
      );
    },
  } as BoundContract<C, RequestExtra, NotifyExtra>;
}
