import assert from "node:assert/strict";
import { binaryCodec } from "../../binary.ts";
import {
  ConnectionClosedError,
  DuplexError,
  Peer,
  RemoteError,
  type RequestContext,
  streams,
} from "../../mod.ts";
import { deadline } from "../_helpers.ts";
import { setup, signal } from "./_streams.ts";

const BINARY = [{ codecs: [binaryCodec] }, { codec: binaryCodec }] as const;

async function collect<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of stream) items.push(item);
  return items;
}

async function* count(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

Deno.test("Client.stream() consumes an async generator and a ReadableStream returned by a handler", async () => {
  await using s = await setup((server) => {
    server.handle("count", (n: number) => count(n));
    server.handle("letters", () =>
      new ReadableStream<string>({
        start(controller) {
          for (const letter of "abc") controller.enqueue(letter);
          controller.close();
        },
      }));
    server.handle("plain", (value: unknown) => value);
  });
  const { client } = s;
  assert.deepEqual(
    await collect(client.stream<number>("count", 100)),
    Array.from({ length: 100 }, (_, i) => i),
  );
  assert.deepEqual(await collect(client.stream("letters")), ["a", "b", "c"]);
  // A plain result is the only chunk; undefined is none.
  assert.deepEqual(await collect(client.stream("plain", 7)), [7]);
  assert.deepEqual(await collect(client.stream("plain")), []);
});

Deno.test("Client.stream() called while connecting waits in the offline queue, then streams", async () => {
  await using s = await setup((server) => {
    server.handle("count", (n: number) => count(n));
  });
  const { client } = s;
  await client.close();
  const connected = client.connect();
  const stream = client.stream<number>("count", 3);
  assert.equal(client.state, "connecting");
  assert.deepEqual(await collect(stream), [0, 1, 2]);
  await connected;
});

Deno.test("Client.call() uploads an async iterable or a ReadableStream of bytes to a handler", async () => {
  await using s = await setup((server) => {
    server.handle("size", async (chunks: AsyncIterable<Uint8Array>) => {
      let total = 0;
      for await (const chunk of chunks) {
        assert.ok(chunk instanceof Uint8Array);
        total += chunk.byteLength;
      }
      return total;
    });
  }, ...BINARY);
  async function* parts(): AsyncGenerator<Uint8Array> {
    for (let i = 0; i < 40; i++) yield new Uint8Array(1000).fill(i);
  }
  assert.equal(await s.client.call("size", parts()), 40_000);
  const file = new Blob([new Uint8Array(100_000)]).stream();
  assert.equal(await s.client.call("size", file), 100_000);
});

Deno.test("Client.stream() with a stream as params: upload and download at once", async () => {
  await using s = await setup((server) => {
    server.handle("upper", async function* (lines: AsyncIterable<string>) {
      for await (const line of lines) yield line.toUpperCase();
    });
  });
  async function* lines(): AsyncGenerator<string> {
    yield* ["a", "b", "c"];
  }
  assert.deepEqual(await collect(s.client.stream("upper", lines())), [
    "A",
    "B",
    "C",
  ]);
});

Deno.test("Client.stream() flow control: the producer runs at most `credit` chunks ahead of the consumer", async () => {
  let produced = 0;
  await using s = await setup((server) => {
    server.handle("numbers", async function* () {
      for (let i = 0; i < 1000; i++) {
        produced++;
        yield i;
      }
    });
    server.handle("noop", () => null);
  });
  const { client } = s;
  const credit = 4;
  const stream = client.stream<number>("numbers", undefined, { credit });
  // A few round trips on the same socket: any chunk sent beyond the credit
  // would have been produced by now.
  for (let i = 0; i < 5; i++) await client.call("noop", null);
  assert.equal(produced, credit);
  const framesIn = client.peer!.stats.framesIn;
  let consumed = 0;
  for await (const value of stream) {
    assert.equal(value, consumed);
    consumed++;
    assert.ok(
      framesIn[12] - consumed <= credit,
      `${framesIn[12]} received, ${consumed} consumed`,
    );
    assert.ok(produced - consumed <= credit + 1);
  }
  assert.equal(consumed, 1000);
  assert.equal(framesIn[12], 1000);
});

Deno.test("Client.call() upload flow control: the source is read only as the handler grants credit", async () => {
  let pulled = 0;
  const firstRead = signal();
  const release = signal();
  await using s = await setup((server) => {
    server.handle("slow", async (chunks: AsyncIterable<number>) => {
      firstRead.resolve();
      await release.promise;
      let n = 0;
      for await (const _ of chunks) n++;
      return n;
    });
    server.handle("noop", () => null);
  });
  async function* source(): AsyncGenerator<number> {
    for (let i = 0; i < 200; i++) {
      pulled++;
      yield i;
    }
  }
  const result = s.client.call("slow", source());
  await firstRead.promise;
  for (let i = 0; i < 5; i++) await s.client.call("noop", null);
  // The handler's window (16 chunks) is all the source may run ahead.
  assert.equal(pulled, 16);
  release.resolve();
  assert.equal(await result, 200);
});

Deno.test("Client.stream(): break stops the producer (its signal aborts, its finally runs)", async () => {
  const stopped = signal<unknown>();
  const finished = signal();
  await using s = await setup((server) => {
    server.handle(
      "forever",
      async function* (_: unknown, context: RequestContext) {
        context.signal.addEventListener(
          "abort",
          () => stopped.resolve(context.signal.reason),
        );
        try {
          for (let i = 0;; i++) yield i;
        } finally {
          finished.resolve();
        }
      },
    );
  });
  for await (const value of s.client.stream<number>("forever")) {
    if (value === 10) break;
  }
  const reason = await deadline(stopped.promise);
  assert.ok(reason instanceof DuplexError);
  assert.equal(reason.code, "CANCELLED");
  await deadline(finished.promise);
  assert.equal(s.server.connectionsOf("alice")[0].peer.inFlight, 0);
});

Deno.test("Client.stream(): aborting the signal throws its reason in the loop and stops the producer", async () => {
  const finished = signal();
  await using s = await setup((server) => {
    server.handle("forever", async function* () {
      try {
        for (let i = 0;; i++) yield i;
      } finally {
        finished.resolve();
      }
    });
  });
  const controller = new AbortController();
  const reason = new Error("enough");
  await assert.rejects(
    async () => {
      for await (
        const value of s.client.stream<number>("forever", undefined, {
          signal: controller.signal,
        })
      ) {
        if (value === 3) controller.abort(reason);
      }
    },
    (error) => error === reason,
  );
  await deadline(finished.promise);
});

Deno.test("Upload: a handler that stops reading stops the caller's source (its finally runs)", async () => {
  const sourceDone = signal();
  await using s = await setup((server) => {
    server.handle("head", async (chunks: AsyncIterable<number>) => {
      const head: number[] = [];
      for await (const chunk of chunks) {
        head.push(chunk);
        if (head.length === 3) break;
      }
      return head;
    });
  });
  async function* endless(): AsyncGenerator<number> {
    try {
      for (let i = 0;; i++) yield i;
    } finally {
      sourceDone.resolve();
    }
  }
  assert.deepEqual(await s.client.call("head", endless()), [0, 1, 2]);
  await deadline(sourceDone.promise);
});

Deno.test("Upload: the caller's abort ends the handler's stream with CANCELLED and aborts its signal", async () => {
  const seen = signal<unknown>();
  const reading = signal();
  await using s = await setup((server) => {
    server.handle(
      "read",
      async (chunks: AsyncIterable<number>, context: RequestContext) => {
        try {
          for await (const _ of chunks) reading.resolve();
        } catch (error) {
          seen.resolve([error, context.signal.aborted]);
        }
      },
    );
  });
  const controller = new AbortController();
  async function* slow(): AsyncGenerator<number> {
    yield 1;
    await new Promise(() => {}); // never more
  }
  const call = s.client.call("read", slow(), { signal: controller.signal });
  await reading.promise;
  controller.abort(new Error("stop"));
  await assert.rejects(call, /stop/);
  const [error, aborted] = await deadline(seen.promise) as [
    DuplexError,
    boolean,
  ];
  assert.equal(error.code, "CANCELLED");
  assert.equal(aborted, true);
});

Deno.test("Client.stream(): a producer error reaches the consumer mid-stream as a typed RemoteError", async () => {
  await using s = await setup((server) => {
    server.handle("fails", async function* () {
      yield 1;
      yield 2;
      throw new RemoteError({ code: "DISK_FULL", message: "No space" });
    });
    server.handle("crashes", async function* () {
      yield 1;
      throw new Error("secret detail");
    });
  });
  const got: number[] = [];
  await assert.rejects(
    async () => {
      for await (const value of s.client.stream<number>("fails")) {
        got.push(value);
      }
    },
    (error) =>
      error instanceof RemoteError && error.code === "DISK_FULL" &&
      error.message === "No space",
  );
  assert.deepEqual(got, [1, 2]);
  await assert.rejects(
    collect(s.client.stream("crashes")),
    (error) =>
      error instanceof RemoteError && error.code === "INTERNAL_ERROR" &&
      !error.message.includes("secret"),
  );
});

Deno.test("Upload: a source error reaches the handler as a typed RemoteError", async () => {
  const seen = signal<unknown>();
  await using s = await setup((server) => {
    server.handle("read", async (chunks: AsyncIterable<number>) => {
      try {
        for await (const _ of chunks);
      } catch (error) {
        seen.resolve(error);
        throw error;
      }
    });
  });
  async function* broken(): AsyncGenerator<number> {
    yield 1;
    throw new RemoteError({ code: "READ_FAILED", message: "Cannot read" });
  }
  await assert.rejects(
    s.client.call("read", broken()),
    (error) => error instanceof RemoteError && error.code === "READ_FAILED",
  );
  const error = await seen.promise as RemoteError;
  assert.equal(error.code, "READ_FAILED");
});

Deno.test("A handler that returns a stream to a plain request answers STREAM_NOT_REQUESTED and cancels the stream", async () => {
  const cancelled = signal();
  await using s = await setup((server) => {
    server.handle("logs", () =>
      new ReadableStream({
        pull(controller) {
          controller.enqueue("line");
        },
        cancel() {
          cancelled.resolve();
        },
      }));
  });
  await assert.rejects(
    s.client.call("logs", null),
    (error) =>
      error instanceof RemoteError && error.code === "STREAM_NOT_REQUESTED",
  );
  await deadline(cancelled.promise);
  assert.equal(s.client.peer!.stats.framesIn[12], 0);
});

Deno.test("A connection drop ends open streams with ConnectionClosedError on both sides", async () => {
  const producerStopped = signal<unknown>();
  const uploadEnded = signal<unknown>();
  await using s = await setup(
    (server) => {
      server.handle(
        "forever",
        async function* (_: unknown, context: RequestContext) {
          try {
            for (let i = 0;; i++) yield i;
          } finally {
            producerStopped.resolve(context.signal.reason);
          }
        },
      );
      server.handle("read", async (chunks: AsyncIterable<number>) => {
        try {
          for await (const _ of chunks);
        } catch (error) {
          uploadEnded.resolve(error);
        }
      });
    },
    {},
    { maxAttempts: 0 },
  );
  const { client, server } = s;
  async function* endless(): AsyncGenerator<number> {
    for (let i = 0;; i++) {
      yield i;
      if (i === 5) await new Promise(() => {});
    }
  }
  const upload = client.call("read", endless());
  upload.catch(() => {});
  let received = 0;
  await assert.rejects(
    async () => {
      for await (const _ of client.stream("forever")) {
        if (++received === 5) {
          server.connectionsOf("alice")[0].peer.close(1011, "boom");
        }
      }
    },
    (error) => error instanceof ConnectionClosedError,
  );
  await assert.rejects(upload, ConnectionClosedError);
  assert.ok(
    await deadline(producerStopped.promise) instanceof ConnectionClosedError,
  );
  assert.ok(
    await deadline(uploadEnded.promise) instanceof ConnectionClosedError,
  );
});

Deno.test("Peer.stream(): a producer that sends more chunks than granted fails the stream with INVALID_FRAME and is cancelled", async () => {
  const cancelled = signal<unknown>();
  await using http = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (request) => {
      const { socket, response } = Deno.upgradeWebSocket(request);
      socket.onmessage = (event) => {
        const frame = JSON.parse(event.data);
        if (frame.type === 4) return cancelled.resolve(frame);
        if (frame.type !== 1) return;
        // Ignores the credit: ten chunks at once.
        for (let i = 0; i < 10; i++) {
          socket.send(
            JSON.stringify({ sequence: frame.sequence, type: 12, message: i }),
          );
        }
      };
      return response;
    },
  );
  const socket = new WebSocket(`ws://127.0.0.1:${http.addr.port}`);
  await new Promise((resolve) => socket.onopen = resolve);
  const peer = new Peer(socket, { streams });
  const got: unknown[] = [];
  const chunks = peer.stream("flood", null, { credit: 4 });
  // Nothing is read (so no credit granted) until the fifth chunk overflowed
  // the window and the stream cancelled the request: a reader that keeps up
  // would grant credit in time for all ten.
  assert.equal(
    (await deadline(cancelled.promise) as { type: number }).type,
    4,
  );
  await assert.rejects(
    async () => {
      for await (const chunk of chunks) got.push(chunk);
    },
    (error) => error instanceof DuplexError && error.code === "INVALID_FRAME",
  );
  // The chunks within the window, then the error.
  assert.deepEqual(got, [0, 1, 2, 3]);
  const closed = new Promise((resolve) => socket.onclose = resolve);
  socket.close();
  await closed;
});
