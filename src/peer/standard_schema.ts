/**
 * The Standard Schema interface (version 1), the `~standard` property that
 * Zod 3.24+, Valibot 1, ArkType 2 and others implement: types only, so that
 * any of them validates a contract without this package depending on one.
 * Written from the published specification (standardschema.dev).
 *
 * @module
 */

/**
 * One problem found by a schema: a message, and where in the value.
 *
 * @example Usage
 * ```ts
 * import type { StandardIssue } from "@duplex/ws";
 *
 * const issue: StandardIssue = { message: "Expected number", path: ["a"] };
 * ```
 */
export interface StandardIssue {
  /** What is wrong. */
  readonly message: string;
  /** Where: keys from the root, each a key or a `{ key }` segment. */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>;
}

/**
 * What a schema's `validate` returns: the (possibly transformed) value, or
 * the issues.
 *
 * @typeParam Output The validated value's type.
 *
 * @example Usage
 * ```ts
 * import type { StandardResult } from "@duplex/ws";
 *
 * const ok: StandardResult<number> = { value: 1 };
 * const bad: StandardResult<number> = { issues: [{ message: "Expected number" }] };
 * ```
 */
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardIssue> };

/**
 * A Standard Schema: anything with a `~standard` property of version 1.
 *
 * @typeParam Input What the schema accepts.
 * @typeParam Output What it produces (differs from `Input` with transforms).
 *
 * @example A hand-written schema
 * ```ts
 * import type { StandardSchema } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const number: StandardSchema<number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (value) =>
 *       typeof value === "number" ? { value } : { issues: [{ message: "Expected number" }] },
 *   },
 * };
 * assert.deepEqual(number["~standard"].validate(1), { value: 1 });
 * ```
 */
export interface StandardSchema<Input = unknown, Output = Input> {
  /** The Standard Schema properties. */
  readonly "~standard": {
    /** Always 1. */
    readonly version: 1;
    /** The library that made the schema, e.g. `"zod"`. */
    readonly vendor: string;
    /** Validates a value; may be asynchronous. */
    readonly validate: (
      value: unknown,
    ) => StandardResult<Output> | Promise<StandardResult<Output>>;
    /** The types, for inference only. */
    readonly types?:
      | { readonly input: Input; readonly output: Output }
      | undefined;
  };
}

/**
 * What a schema accepts.
 *
 * @typeParam S The schema.
 *
 * @example Usage
 * ```ts
 * import type { InferInput, StandardSchema } from "@duplex/ws";
 *
 * const text: InferInput<StandardSchema<string>> = "hello";
 * ```
 */
export type InferInput<S extends StandardSchema> = NonNullable<
  S["~standard"]["types"]
>["input"];

/**
 * What a schema produces.
 *
 * @typeParam S The schema.
 *
 * @example Usage
 * ```ts
 * import type { InferOutput, StandardSchema } from "@duplex/ws";
 *
 * const count: InferOutput<StandardSchema<string, number>> = 3;
 * ```
 */
export type InferOutput<S extends StandardSchema> = NonNullable<
  S["~standard"]["types"]
>["output"];
