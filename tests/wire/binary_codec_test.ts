import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import { type Frame, jsonCodec, ProtocolError } from "../../mod.ts";
import { partsOf, sizeOf, wholeOf } from "../../src/wire/attachments.ts";

const bytes = new Uint8Array([0, 1, 2, 250, 255]);
const buffer = new Uint8Array([9, 8, 7]).buffer;

/** Every frame type that carries a payload, with binary values in it. */
const FRAMES: Frame[] = [
  { sequence: 1, type: 1, method: "put", message: { name: "a", bytes } },
  { sequence: 2, type: 1, message: bytes, credit: 4 },
  { sequence: 3, type: 2, message: [bytes, buffer, "text"] },
  {
    sequence: 4,
    type: 2,
    error: { code: "BAD", message: "no", data: { raw: bytes } },
  },
  { sequence: 0, type: 3, method: "image", message: { png: buffer } },
  { sequence: 5, type: 12, message: bytes },
  { sequence: 6, type: 14, message: { part: 1, data: buffer } },
  {
    sequence: 7,
    type: 15,
    error: { code: "E", message: "m", data: new Uint8Array(0) },
  },
  // Packed chunks (PROTOCOL.md, "Packed chunks (uploads)").
  { sequence: 8, type: 14, message: [bytes, buffer, bytes], chunks: 3 },
];

Deno.test("binaryCodec round-trips binary values in every frame type with their types", () => {
  for (const frame of FRAMES) {
    const data = binaryCodec.encode(frame);
    assert.ok(data instanceof Uint8Array, `type ${frame.type} is binary`);
    const decoded = binaryCodec.decode(data);
    assert.deepEqual(decoded, frame);
  }
  const decoded = binaryCodec.decode(binaryCodec.encode(FRAMES[2])) as {
    message: unknown[];
  };
  assert.ok(decoded.message[0] instanceof Uint8Array);
  assert.ok(decoded.message[1] instanceof ArrayBuffer);
});

Deno.test("binaryCodec sends frames without binary values as the JSON codec's text", () => {
  const frames: Frame[] = [
    { sequence: 1, type: 1, message: "hi" },
    { sequence: 1, type: 2, message: { a: [1, null, "\u0000x"] } },
    { sequence: 0, type: 3, message: "\u0000\u0000", from: "bob" },
    { sequence: 1, type: 13, credit: 8 },
  ];
  for (const frame of frames) {
    const text = binaryCodec.encode(frame);
    assert.equal(text, jsonCodec.encode(frame));
    assert.deepEqual(binaryCodec.decode(text), frame);
  }
});

Deno.test("binaryCodec keeps strings that look like placeholders beside binary values", () => {
  const frame: Frame = {
    sequence: 1,
    type: 1,
    message: { a: "\u0000u0", b: "\u0000", c: "\u0000\u0000a1", bytes },
  };
  assert.deepEqual(binaryCodec.decode(binaryCodec.encode(frame)), frame);
  // Beside a message that is itself binary.
  for (const method of ["\u0000u0", "\u0000", "put"]) {
    const chunk: Frame = { sequence: 2, type: 1, method, message: buffer };
    assert.deepEqual(binaryCodec.decode(binaryCodec.encode(chunk)), chunk);
  }
});

Deno.test("binaryCodec keeps non-ASCII text, long headers, nested arrays and __proto__ keys beside binary values", () => {
  const frames: Frame[] = [
    { sequence: 1, type: 1, method: "café", message: { "ключ": "😀", bytes } },
    { sequence: 2, type: 2, message: { text: "x".repeat(5000), bytes } },
    { sequence: 3, type: 2, message: [[bytes, [buffer]], ["\u0000u0", 1]] },
  ];
  for (const frame of frames) {
    assert.deepEqual(binaryCodec.decode(binaryCodec.encode(frame)), frame);
  }
  // A "__proto__" key arrives as a plain property, not as the prototype.
  const withProto = new TextEncoder().encode(
    '{"sequence":4,"type":2,"message":{"__proto__":"\\u0000u0"}}',
  );
  const message = new Uint8Array(4 + withProto.byteLength + 4 + 2);
  const view = new DataView(message.buffer);
  view.setUint32(0, withProto.byteLength);
  message.set(withProto, 4);
  view.setUint32(4 + withProto.byteLength, 2);
  const decoded = binaryCodec.decode(message.buffer) as {
    message: Record<string, unknown>;
  };
  assert.equal(Object.getPrototypeOf(decoded.message), Object.prototype);
  assert.ok(Object.hasOwn(decoded.message, "__proto__"));
  assert.ok(decoded.message["__proto__"] instanceof Uint8Array);
});

/** A binary message of `header` and `attachments`, written by hand. */
function message(header: string, ...attachments: Uint8Array[]): ArrayBuffer {
  const text = new TextEncoder().encode(header);
  let size = 4 + text.byteLength;
  for (const attachment of attachments) size += 4 + attachment.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, text.byteLength);
  out.set(text, 4);
  let offset = 4 + text.byteLength;
  for (const attachment of attachments) {
    view.setUint32(offset, attachment.byteLength);
    out.set(attachment, offset + 4);
    offset += 4 + attachment.byteLength;
  }
  return out.buffer;
}

Deno.test("binaryCodec reads the usual headers as JSON would, and refuses what JSON refuses", () => {
  const u = '"\\u0000u0"';
  const a = '"\\u0000a0"';
  const read: Array<[string, Uint8Array[], unknown]> = [
    [`{"sequence":0,"type":2,"message":${u}}`, [bytes], {
      sequence: 0,
      type: 2,
      message: bytes,
    }],
    [`{"sequence":2147483647,"type":12,"message":${a}}`, [bytes], {
      sequence: 2147483647,
      type: 12,
      message: bytes.slice().buffer,
    }],
    [`{"sequence":9,"type":1,"message":${u},"method":""}`, [bytes], {
      sequence: 9,
      type: 1,
      message: bytes,
      method: "",
    }],
    [`{"sequence":9,"type":1,"message":${u},"method":"a\\"b"}`, [bytes], {
      sequence: 9,
      type: 1,
      message: bytes,
      method: 'a"b',
    }],
    [`{"sequence":9,"type":1,"message":${u},"method":"é"}`, [bytes], {
      sequence: 9,
      type: 1,
      message: bytes,
      method: "é",
    }],
    [`{"sequence":9,"type":2,"message":${u} }`, [bytes], {
      sequence: 9,
      type: 2,
      message: bytes,
    }],
    [
      `{"sequence":9,"type":2,"message":${u}}`,
      [bytes, new Uint8Array(buffer)],
      {
        sequence: 9,
        type: 2,
        message: bytes,
      },
    ],
    // Packed chunks, in the shape the encoder writes, and in others.
    [
      `{"sequence":3,"type":14,"message":["\\u0000u0","\\u0000a1"],"chunks":2}`,
      [bytes, new Uint8Array(buffer)],
      { sequence: 3, type: 14, message: [bytes, buffer], chunks: 2 },
    ],
    [
      `{"sequence":3,"type":14,"message":["\\u0000u1","\\u0000u0"],"chunks":2}`,
      [bytes, new Uint8Array(buffer)],
      {
        sequence: 3,
        type: 14,
        message: [new Uint8Array(buffer), bytes],
        chunks: 2,
      },
    ],
    [
      `{"sequence":3,"type":14,"message":["\\u0000u0", "\\u0000u1"],"chunks":2}`,
      [bytes, new Uint8Array(buffer)],
      {
        sequence: 3,
        type: 14,
        message: [bytes, new Uint8Array(buffer)],
        chunks: 2,
      },
    ],
  ];
  for (const [header, attachments, frame] of read) {
    const decoded = binaryCodec.decode(message(header, ...attachments));
    assert.deepEqual(decoded, frame, header);
    if (
      frame !== undefined &&
      (frame as { message: unknown }).message instanceof ArrayBuffer
    ) {
      assert.ok(
        (decoded as { message: unknown }).message instanceof ArrayBuffer,
      );
    }
  }
  const refused: Array<[string, RegExp]> = [
    [`{"sequence":01,"type":2,"message":${u}}`, /not JSON/],
    [`{"sequence":1,"type":02,"message":${u}}`, /not JSON/],
    [`{"sequence":2147483648,"type":2,"message":${u}}`, /sequence/],
    [`{"sequence":12345678901,"type":2,"message":${u}}`, /sequence/],
    [`{"sequence":1,"type":99,"message":${u}}`, /unknown type/],
    [`{"sequence":1,"type":2,"message":"\\u0000u1"}`, /no attachment/],
    [`{"sequence":1,"type":2,"message":${u}}x`, /not JSON/],
    [
      `{"sequence":1,"type":14,"message":[${u},${u}],"chunks":3}`,
      /"chunks" must count/,
    ],
    [`{"sequence":1,"type":14,"message":[${u},${u}],"chunks":2}x`, /not JSON/],
    [
      `{"sequence":1,"type":1,"message":${u},"method":"${"m".repeat(257)}"}`,
      /method/,
    ],
  ];
  for (const [header, error] of refused) {
    assert.throws(
      () => binaryCodec.decode(message(header, bytes)),
      (thrown: unknown) =>
        thrown instanceof ProtocolError && error.test(thrown.message),
      header,
    );
  }
});

Deno.test("binaryCodec sends other typed arrays as Uint8Array of their bytes", () => {
  const floats = new Float32Array([1.5, -2]);
  const frame = binaryCodec.decode(
    binaryCodec.encode({ sequence: 1, type: 2, message: floats }),
  ) as { message: Uint8Array };
  assert.ok(frame.message instanceof Uint8Array);
  assert.deepEqual(
    new Float32Array(frame.message.slice().buffer),
    floats,
  );
});

Deno.test("binaryCodec decodes Uint8Array values as views of the message, without copying", () => {
  // Inline (under 256 KiB of attachments): a view of the one message.
  const small = new Uint8Array(200 * 1024).fill(7);
  const data = binaryCodec.encode({ sequence: 1, type: 2, message: small });
  assert.equal(partsOf(data), undefined);
  const frame = binaryCodec.decode(data) as { message: Uint8Array };
  assert.equal(frame.message.buffer, (data as Uint8Array).buffer);
  assert.equal(frame.message.byteLength, small.byteLength);
  // Detached (256 KiB or more): the head, and the caller's own bytes.
  const big = new Uint8Array(1 << 20).fill(7);
  const head = binaryCodec.encode({ sequence: 1, type: 2, message: big });
  assert.equal(partsOf(head)?.[0].buffer, big.buffer);
  assert.equal(
    sizeOf(head as Uint8Array),
    (head as Uint8Array).byteLength + big.byteLength,
  );
  const decoded = binaryCodec.decode(head) as { message: Uint8Array };
  assert.equal(decoded.message.buffer, big.buffer);
  // Its one-message form (what a store keeps) decodes to the same frame.
  assert.deepEqual(
    binaryCodec.decode(wholeOf(head as Uint8Array<ArrayBuffer>)),
    { sequence: 1, type: 2, message: big },
  );
});

Deno.test("binaryCodec refuses broken binary messages with ProtocolError", () => {
  // A copy: encode() reuses its buffer.
  const good = (binaryCodec.encode(FRAMES[0]) as Uint8Array<ArrayBuffer>)
    .slice();
  const header = new DataView(good.buffer).getUint32(0);
  const cases: Array<[string, unknown, RegExp]> = [
    ["too short", new Uint8Array([0, 0]), /truncated header/],
    ["header past the end", new Uint8Array([0, 0, 1, 0, 123]), /truncated/],
    ["cut attachment", good.slice(0, good.byteLength - 1), /truncated/],
    [
      "header not JSON",
      new Uint8Array([0, 0, 0, 2, 123, 123]),
      /not JSON/,
    ],
    [
      "header not UTF-8",
      new Uint8Array([0, 0, 0, 2, 0xff, 0xfe]),
      /not UTF-8/,
    ],
    [
      "placeholder without attachment",
      good.slice(0, 4 + header),
      /no attachment/,
    ],
    ["a Blob", new Blob([good]), /ArrayBuffer/],
  ];
  for (const [what, data, message] of cases) {
    assert.throws(
      () => binaryCodec.decode(data),
      (error: unknown) =>
        error instanceof ProtocolError && message.test(error.message),
      what,
    );
  }
  // A valid envelope around an invalid frame is refused like JSON's.
  const invalid = binaryCodec.encode(
    { sequence: -1, type: 1, message: bytes } as unknown as Frame,
  );
  assert.throws(() => binaryCodec.decode(invalid), ProtocolError);
});

Deno.test("binaryCodec.encode() reuses its buffer: a message is valid until the next encode", () => {
  const first = binaryCodec.encode({ sequence: 1, type: 2, message: bytes });
  const copy = (first as Uint8Array).slice();
  binaryCodec.encode({ sequence: 2, type: 2, message: new Uint8Array(9) });
  assert.deepEqual(binaryCodec.decode(copy), {
    sequence: 1,
    type: 2,
    message: bytes,
  });
});

Deno.test("validateFrame checks the stream fields", () => {
  const bad: unknown[] = [
    { sequence: 1, type: 1, credit: 0 },
    { sequence: 1, type: 1, credit: 1.5 },
    { sequence: 1, type: 1, upload: 1 },
    { sequence: 1, type: 13 },
    { sequence: 1, type: 16, credit: -1 },
    { sequence: 1, type: 15, error: "x" },
    { sequence: 1, type: 18 },
  ];
  for (const value of bad) {
    assert.throws(
      () => jsonCodec.decode(JSON.stringify(value)),
      ProtocolError,
      JSON.stringify(value),
    );
  }
  const good: unknown[] = [
    { sequence: 1, type: 1, credit: 16, upload: true },
    { sequence: 1, type: 12, message: 1 },
    { sequence: 1, type: 13, credit: 1 },
    { sequence: 1, type: 14 },
    { sequence: 1, type: 15, error: { code: "A", message: "b" } },
    { sequence: 1, type: 16, credit: 2 },
    { sequence: 1, type: 17 },
  ];
  for (const value of good) {
    assert.deepEqual(jsonCodec.decode(JSON.stringify(value)), value);
  }
});

Deno.test("binaryCodec hands out a detached ArrayBuffer attachment as it is (a message of its own), and copies one inside a message", () => {
  const big = new ArrayBuffer(300 * 1024);
  const head = binaryCodec.encode({ sequence: 1, type: 2, message: big });
  assert.equal((binaryCodec.decode(head) as { message: unknown }).message, big);
  const nested = binaryCodec.encode({
    sequence: 1,
    type: 2,
    message: { big, name: "a" },
  });
  assert.equal(
    (binaryCodec.decode(nested) as { message: { big: unknown } }).message.big,
    big,
  );
  const small = new ArrayBuffer(16);
  const inline = binaryCodec.decode(
    binaryCodec.encode({ sequence: 1, type: 2, message: small }),
  ) as { message: ArrayBuffer };
  assert.notEqual(inline.message, small);
  assert.equal(inline.message.byteLength, 16);
});

Deno.test("binaryCodec sends several attachments of 64 KiB or more each detached (packed chunks), smaller ones and a single one inline", () => {
  const chunk = (size: number, seed: number) => new Uint8Array(size).fill(seed);
  const packed = (size: number): Frame => ({
    sequence: 3,
    type: 14,
    message: [chunk(size, 1), chunk(size, 2)],
    chunks: 2,
  });
  const big = packed(64 * 1024);
  const head = binaryCodec.encode(big) as Uint8Array;
  // The head lists the lengths; the chunks themselves travel as they are.
  assert.ok(head.byteLength < 100, `head of ${head.byteLength} bytes`);
  const sent = (big as { message: Uint8Array[] }).message;
  assert.deepEqual(partsOf(head), sent);
  assert.equal(partsOf(head)?.[1], sent[1]);

  const small = binaryCodec.encode(packed(64 * 1024 - 1)) as Uint8Array;
  assert.equal(partsOf(small), undefined);
  assert.ok(small.byteLength > 2 * (64 * 1024 - 1));
  const single = binaryCodec.encode({
    sequence: 4,
    type: 14,
    message: chunk(200 * 1024, 3),
  }) as Uint8Array;
  assert.equal(partsOf(single), undefined);
  // Decoded, the inline frames are what was sent.
  assert.deepEqual(
    binaryCodec.decode(small.slice().buffer),
    packed(64 * 1024 - 1),
  );
});
