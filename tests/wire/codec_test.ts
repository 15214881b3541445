import assert from "node:assert/strict";
import {
  type Frame,
  jsonCodec,
  MAX_SEQUENCE,
  ProtocolError,
  validateFrame,
} from "../../mod.ts";

function decodeError(data: unknown): ProtocolError {
  try {
    jsonCodec.decode(data);
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `not a ProtocolError: ${error}`);
    assert.equal(error.code, "PROTOCOL_ERROR");
    assert.match(error.message, /^Cannot decode frame: /);
    return error;
  }
  assert.fail(`decoded without error: ${String(data)}`);
}

Deno.test("jsonCodec round-trips every frame type", () => {
  const frames: Frame[] = [
    { sequence: 1, type: 1, message: "hello" },
    { sequence: 2, type: 1, message: { a: [1, 2] }, method: "sum" },
    { sequence: 1, type: 2, message: "ok" },
    {
      sequence: 3,
      type: 2,
      error: { code: "NOPE", message: "no", data: { x: 1 } },
    },
    { sequence: 4, type: 3, message: "hi", from: "alice" },
    { sequence: 0, type: 3, message: null, method: "presence.joined" },
    { sequence: 5, type: 4 },
    { sequence: 6, type: 5 },
    { sequence: 6, type: 6 },
    { sequence: MAX_SEQUENCE, type: 1 },
  ];
  for (const frame of frames) {
    assert.deepEqual(jsonCodec.decode(jsonCodec.encode(frame)), frame);
  }
});

Deno.test("jsonCodec.encode() keeps the original key order", () => {
  assert.equal(
    jsonCodec.encode({ sequence: 9, type: 2, message: "ok" }),
    '{"sequence":9,"type":2,"message":"ok"}',
  );
  assert.equal(
    jsonCodec.encode({ sequence: 9, type: 3, message: "hi", from: "u" }),
    '{"sequence":9,"type":3,"message":"hi","from":"u"}',
  );
});

Deno.test("jsonCodec.decode() accepts any JSON value as message", () => {
  for (const message of [null, 0, -1.5, "", "ü🎉", [], {}, [{ a: null }]]) {
    const frame = jsonCodec.decode(
      JSON.stringify({ sequence: 1, type: 1, message }),
    );
    assert.deepEqual((frame as { message: unknown }).message, message);
  }
});

Deno.test("jsonCodec.decode() ignores unknown extra fields", () => {
  const frame = jsonCodec.decode('{"sequence":1,"type":1,"future":true}');
  assert.equal(frame.type, 1);
});

Deno.test("jsonCodec.decode() tolerates a notify without sequence", () => {
  const frame = jsonCodec.decode('{"type":3,"message":"x"}');
  assert.equal(frame.sequence, 0);
});

Deno.test("jsonCodec.decode() rejects non-JSON with ProtocolError", () => {
  for (const text of ["", "not json", "{", '{"sequence":1,', "\u0000"]) {
    const error = decodeError(text);
    assert.equal(error.sequence, undefined);
    assert.match(error.message, /not valid JSON/);
  }
});

Deno.test("jsonCodec.decode() rejects values that are not objects", () => {
  for (const text of ["[]", "[1,1]", "null", "1", '"frame"', "true"]) {
    assert.match(decodeError(text).message, /must be a JSON object/);
  }
});

Deno.test("jsonCodec.decode() rejects binary messages", () => {
  assert.match(
    decodeError(new Uint8Array([123, 125]).buffer).message,
    /binary/,
  );
  assert.match(decodeError(new Blob(["{}"])).message, /binary/);
});

Deno.test("jsonCodec.decode() rejects a bad sequence", () => {
  const bad = [
    undefined,
    -1,
    1.5,
    MAX_SEQUENCE + 1,
    2 ** 53,
    1e309,
    "1",
    null,
    true,
    [1],
  ];
  for (const sequence of bad) {
    const text = sequence === 1e309
      ? '{"sequence":1e309,"type":1}'
      : JSON.stringify({ sequence, type: 1 });
    const error = decodeError(text);
    assert.equal(error.sequence, undefined);
    assert.equal(error.frameType, 1);
    assert.match(error.message, /"sequence"/);
  }
});

Deno.test("jsonCodec.decode() rejects missing and unknown types", () => {
  const missing = decodeError('{"sequence":3}');
  assert.match(missing.message, /unknown type undefined/);
  assert.equal(missing.sequence, 3);
  for (const type of [0, 8, -1, 1.5, "1", null, [1], {}]) {
    const error = decodeError(JSON.stringify({ sequence: 4, type }));
    assert.match(error.message, /unknown type/);
    assert.equal(error.sequence, 4);
    assert.deepEqual(error.frameType, type);
  }
});

Deno.test("jsonCodec.decode() rejects wrong field types", () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ sequence: 1, type: 1, method: 5 }, /"method" must be a string/],
    [{ sequence: 1, type: 1, method: null }, /"method" must be a string/],
    [{ sequence: 1, type: 3, from: {} }, /"from" must be a string/],
    [
      { sequence: 1, type: 1, method: "m".repeat(257) },
      /at most 256 characters/,
    ],
    [{ sequence: 1, type: 2, error: "boom" }, /"error" must be an object/],
    [{ sequence: 1, type: 2, error: null }, /"error" must be an object/],
    [{ sequence: 1, type: 2, error: [] }, /"error" must be an object/],
    [{ sequence: 1, type: 2, error: { code: 1, message: "" } }, /"error"/],
    [{ sequence: 1, type: 2, error: { code: "X" } }, /"error"/],
  ];
  for (const [value, pattern] of cases) {
    const error = decodeError(JSON.stringify(value));
    assert.match(error.message, pattern);
    assert.equal(error.sequence, 1);
    assert.equal(error.frameType, value.type);
  }
});

Deno.test("jsonCodec.decode() survives deep nesting and huge numbers", () => {
  const deep = "[".repeat(5000) + "]".repeat(5000);
  const frame = jsonCodec.decode(`{"sequence":1,"type":1,"message":${deep}}`);
  assert.equal(frame.type, 1);
  const huge = jsonCodec.decode('{"sequence":1,"type":1,"message":1e400}');
  assert.equal((huge as { message: unknown }).message, Infinity);
});

Deno.test("validateFrame() validates already parsed values", () => {
  assert.equal(validateFrame({ sequence: 2, type: 5 }).type, 5);
  assert.throws(() => validateFrame(undefined), ProtocolError);
  assert.throws(() => validateFrame({ sequence: 2 }), ProtocolError);
});

Deno.test("jsonCodec.encode() throws TypeError for values JSON cannot hold", () => {
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  assert.throws(
    () => jsonCodec.encode({ sequence: 1, type: 1, message: cyclic }),
    TypeError,
  );
  assert.throws(
    () => jsonCodec.encode({ sequence: 1, type: 1, message: 1n }),
    TypeError,
  );
});

Deno.test("jsonCodec.decode() reads a response without a sequence as 0 (the original server leaves it out)", () => {
  assert.deepEqual(jsonCodec.decode('{"type":2,"message":"ok"}'), {
    sequence: 0,
    type: 2,
    message: "ok",
  });
  assert.throws(() => jsonCodec.decode('{"type":1,"message":"hi"}'));
});

Deno.test("jsonCodec.decode() validates the closing frame (type 7)", () => {
  assert.deepEqual(
    jsonCodec.decode(
      '{"sequence":0,"type":7,"code":1008,"reason":"slow down"}',
    ),
    { sequence: 0, type: 7, code: 1008, reason: "slow down" },
  );
  assert.throws(
    () => jsonCodec.decode('{"sequence":0,"type":7,"code":99}'),
    /"code" must be an integer from 1000 to 4999/,
  );
  assert.throws(
    () =>
      jsonCodec.decode(
        JSON.stringify({
          sequence: 0,
          type: 7,
          code: 1000,
          reason: "x".repeat(124),
        }),
      ),
    /"reason" must be a string/,
  );
});
