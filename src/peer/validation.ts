/**
 * Validation against a Standard Schema: {@linkcode validate} and the typed
 * {@linkcode ValidationError} (`INVALID_PARAMS`, `INVALID_RESULT`,
 * `INVALID_PAYLOAD`) with the issues' messages and paths.
 *
 * @module
 */

import { RemoteError } from "../wire/errors.ts";
import type {
  InferOutput,
  StandardIssue,
  StandardSchema,
} from "./standard_schema.ts";

/** One issue as sent on the wire: a message and a path of keys. */
export interface ValidationIssue {
  /** What is wrong. */
  message: string;
  /** Where, from the root: property names and array indexes. */
  path: Array<string | number>;
}

/**
 * A value did not match its schema. Thrown by a wrapped handler, it is sent
 * as is (`code` `INVALID_PARAMS` or `INVALID_RESULT`, `data.issues`); the
 * caller receives a `RemoteError` with the same code and data. Thrown on
 * the caller's side by {@linkcode bind} before anything is sent (params) or
 * after the answer (result).
 *
 * @example Usage
 * ```ts
 * import { RemoteError, ValidationError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const error = new ValidationError("INVALID_PARAMS", "add", [{ message: "Expected number", path: ["a"] }]);
 * assert.ok(error instanceof RemoteError);
 * assert.equal(error.message, "Cannot validate params of add: Expected number at a");
 * assert.deepEqual(error.data, { issues: [{ message: "Expected number", path: ["a"] }] });
 * ```
 */
export class ValidationError extends RemoteError {
  /** The issues, each with its message and path. */
  declare readonly issues: ValidationIssue[];

  /**
   * Creates the error.
   *
   * @param code `INVALID_PARAMS`, `INVALID_RESULT` or `INVALID_PAYLOAD`.
   * @param method The method whose value failed.
   * @param issues What is wrong, and where.
   */
  constructor(code: string, method: string, issues: ValidationIssue[]) {
    const what = code === "INVALID_RESULT"
      ? "result"
      : code === "INVALID_PAYLOAD"
      ? "payload"
      : "params";
    const first = issues[0];
    const where = first?.path.length ? ` at ${first.path.join(".")}` : "";
    const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : "";
    super({
      code,
      message: `Cannot validate ${what} of ${method}: ${
        first?.message ?? "invalid"
      }${where}${more}`,
      data: { issues },
    });
    this.name = "ValidationError";
    this.issues = issues;
  }
}

/** The issues of a schema as sent on the wire: messages and key paths. */
export function toIssues(
  issues: ReadonlyArray<StandardIssue>,
): ValidationIssue[] {
  return issues.map(({ message, path = [] }) => ({
    message: String(message),
    path: path.map((segment) => {
      const key = typeof segment === "object" ? segment.key : segment;
      return typeof key === "number" ? key : String(key);
    }),
  }));
}

/**
 * Validates `value` against `schema`: resolves with the schema's output,
 * or rejects with a {@linkcode ValidationError} of `code`.
 *
 * @param schema The schema; `undefined` accepts anything as is.
 * @param value The value.
 * @param code The error code on failure.
 * @param method The method, for the message.
 * @returns The validated (possibly transformed) value.
 * @throws {ValidationError} When the value does not match.
 *
 * @example Usage
 * ```ts
 * import { type StandardSchema, validate, ValidationError } from "@duplex/ws";
 * import assert from "node:assert/strict";
 *
 * const number: StandardSchema<number> = {
 *   "~standard": {
 *     version: 1,
 *     vendor: "example",
 *     validate: (v) => typeof v === "number" ? { value: v } : { issues: [{ message: "Expected number" }] },
 *   },
 * };
 * assert.equal(await validate(number, 1, "INVALID_PARAMS", "inc"), 1);
 * await assert.rejects(validate(number, "1", "INVALID_PARAMS", "inc"), ValidationError);
 * ```
 */
export async function validate<S extends StandardSchema>(
  schema: S | undefined,
  value: unknown,
  code: string,
  method: string,
): Promise<InferOutput<S>> {
  if (schema === undefined) return value as InferOutput<S>;
  const result = await schema["~standard"].validate(value);
  if (result.issues) {
    throw new ValidationError(code, method, toIssues(result.issues));
  }
  return result.value as InferOutput<S>;
}
