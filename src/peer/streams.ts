/**
 * Streams over a {@linkcode Peer}: the consumer side ({@linkcode ChunkQueue},
 * an async iterator that grants credit as it is read), the producer side
 * ({@linkcode ChunkPump}, which pulls from an async iterable only while
 * credit lasts), and {@linkcode Streams}, the four maps that route stream
 * frames (types 12 to 17) to them. See PROTOCOL.md, "Streams".
 *
 * @module
 */

import { DuplexError, RemoteError } from "../wire/errors.ts";
import type { ErrorPayload, Frame, RequestFrame } from "../wire/protocol.ts";

/**
 * The chunk type of a streamed result: `T` of an `AsyncIterable<T>` or
 * `ReadableStream<T>`; a plain result type stands for a one-chunk stream.
 *
 * @example Usage
 * ```ts
 * import type { ChunkOf } from "@duplex/ws";
 *
 * const line: ChunkOf<AsyncIterable<string>> = "hello";
 * ```
 */
export type ChunkOf<R> = R extends AsyncIterable<infer T> ? T
  : R extends ReadableStream<infer T> ? T
  : R;

/**
 * Options of {@linkcode Peer.stream} and `Client.stream`.
 *
 * @example Usage
 * ```ts
 * import type { StreamOptions } from "@duplex/ws";
 *
 * const options: StreamOptions = { credit: 32, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface StreamOptions {
  /**
   * How many chunks the producer may send ahead of the consumer (the
   * window): at most this many are in flight or buffered at any time.
   *
   * @default {16}
   */
  credit?: number;
  /**
   * Aborting it stops the stream on both sides: the producer's signal
   * aborts and its iterator's `return()` runs; the consumer's loop throws
   * `signal.reason`.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Milliseconds until the whole stream must have ended; 0 disables it.
   *
   * @default {0}
   */
  timeout?: number;
}

/** The answer to a plain request whose handler returned a stream. */
export const STREAM_NOT_REQUESTED: ErrorPayload = {
  code: "STREAM_NOT_REQUESTED",
  message:
    "Cannot answer request: the result is a stream (call stream())",
};

/** The default window, in chunks. */
export const DEFAULT_CREDIT = 16;

/** Whether a value is a stream to send: an async iterable or a ReadableStream. */
export function isStream(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === "object" && value !== null &&
    (Symbol.asyncIterator in value || "getReader" in value);
}

/** The error payload of a failure, as handlers' errors are answered. */
export function errorPayload(error: unknown): ErrorPayload {
  return error instanceof RemoteError
    ? { code: error.code, message: error.message, data: error.data }
    : { code: "INTERNAL_ERROR", message: "Internal error" };
}

/**
 * The receiving end of one stream: buffers the chunks that arrive (never
 * more than granted), hands them to `for await`, and grants credit back as
 * they are consumed, in batches of half the window.
 */
export class ChunkQueue<T = unknown> implements AsyncIterableIterator<T> {
  #chunks: unknown[] = [];
  #waiting: PromiseWithResolvers<IteratorResult<T>> | undefined;
  #done = false;
  #error: unknown = undefined;
  #window: number;
  /** Granted and not arrived yet. */
  #credit: number;
  /** Consumed since the last grant. */
  #owed = 0;
  #grant: (credit: number) => void;
  #stop: (reason: unknown) => void;

  /**
   * @param window The chunks granted at first, and at most outstanding.
   * @param grant Sends a credit frame.
   * @param stop Tells the producer to stop (the consumer left early).
   */
  constructor(
    window: number,
    grant: (credit: number) => void,
    stop: (reason: unknown) => void,
  ) {
    this.#window = this.#credit = window;
    this.#grant = grant;
    this.#stop = stop;
  }

  /** A chunk arrived; one beyond the credit ends the stream with an error. */
  push(chunk: unknown): void {
    if (this.#done) return;
    if (--this.#credit < 0) {
      const error = new DuplexError(
        "INVALID_FRAME",
        "Cannot read stream: the producer sent more chunks than granted",
      );
      this.#stop(error);
      this.end(error);
    } else if (this.#waiting) this.#deliver(chunk);
    else this.#chunks.push(chunk);
  }

  /**
   * The stream ended, with an error or not, after a `last` chunk when it is
   * not `undefined` (a plain result). Idempotent.
   */
  end(error?: unknown, last?: unknown): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    const waiting = this.#waiting;
    this.#waiting = undefined;
    if (last !== undefined && error === undefined) {
      if (waiting) waiting.resolve({ done: false, value: last as T });
      else this.#chunks.push(last);
    } else if (waiting) {
      if (error === undefined) {
        waiting.resolve({ done: true, value: undefined });
      } else waiting.reject(error);
    }
  }

  /** The next chunk, once it arrived. */
  next(): Promise<IteratorResult<T>> {
    const chunks = this.#chunks;
    if (chunks.length) {
      const value = chunks.shift();
      this.#consumed();
      return Promise.resolve({ done: false, value: value as T });
    }
    if (this.#done) {
      const error = this.#error;
      this.#error = undefined;
      return error === undefined
        ? Promise.resolve({ done: true, value: undefined })
        : Promise.reject(error);
    }
    return (this.#waiting ??= Promise.withResolvers()).promise;
  }

  /** Stops the stream: the producer is told, buffered chunks are dropped. */
  return(): Promise<IteratorResult<T>> {
    if (!this.#done) {
      this.#stop(
        new DuplexError("CANCELLED", "Stream cancelled by the consumer"),
      );
    }
    this.#chunks = [];
    this.end();
    this.#error = undefined;
    return Promise.resolve({ done: true, value: undefined });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  #deliver(chunk: unknown): void {
    const waiting = this.#waiting!;
    this.#waiting = undefined;
    this.#consumed();
    waiting.resolve({ done: false, value: chunk as T });
  }

  #consumed(): void {
    if (this.#done) return;
    if (++this.#owed * 2 >= this.#window) {
      this.#credit += this.#owed;
      this.#grant(this.#owed);
      this.#owed = 0;
    }
  }
}

/** An iterator over a ReadableStream, for runtimes that lack its async iteration. */
function iterate(source: AsyncIterable<unknown>): AsyncIterator<unknown> {
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]();
  const reader = (source as ReadableStream).getReader();
  return {
    next: () => reader.read() as Promise<IteratorResult<unknown>>,
    return: () =>
      reader.cancel().then(() => ({ done: true, value: undefined })),
  };
}

/**
 * An async iterator over the stream that `ready` resolves to: the client's
 * streams wait for a connection. Leaving early still cancels the stream
 * once it started.
 */
export function later<T>(
  ready: Promise<AsyncIterableIterator<T>>,
): AsyncIterableIterator<T> {
  let stream: AsyncIterableIterator<T> | undefined;
  // Its failure reaches the consumer through next(); unread, it is moot.
  ready.then(undefined, () => {});
  return {
    async next() {
      return await (stream ??= await ready).next();
    },
    async return() {
      try {
        stream ??= await ready;
      } catch {
        return { done: true, value: undefined };
      }
      return await stream.return!();
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** Lets a source that will not be read clean up (its `return()` runs). */
export function discard(source: AsyncIterable<unknown>): void {
  iterate(source).return?.()?.then(undefined, () => {});
}

/**
 * The sending end of one stream: pulls a chunk from the source only when
 * the consumer has granted credit for it, so a slow consumer slows the
 * source and nothing piles up in memory.
 */
export class ChunkPump {
  #iterator: AsyncIterator<unknown>;
  #credit: number;
  #wake: (() => void) | undefined;
  #stopped = false;

  /**
   * Starts pumping.
   *
   * @param source The async iterable or ReadableStream.
   * @param credit The credit granted at first.
   * @param send Sends one chunk.
   * @param finish Called once when the source ended (no error) or failed;
   * not called after {@linkcode ChunkPump.stop}.
   */
  constructor(
    source: AsyncIterable<unknown>,
    credit: number,
    send: (chunk: unknown) => void,
    finish: (error?: unknown) => void,
  ) {
    this.#credit = credit;
    this.#iterator = iterate(source);
    this.#run(send).then(
      (ended) => ended && finish(),
      (error) => this.#stopped || finish(error ?? new Error("Stream failed")),
    );
  }

  /** Adds credit. */
  grant(credit: number): void {
    this.#credit += credit;
    this.#wake?.();
  }

  /** Stops the source (its `return()` runs); nothing more is sent. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#wake?.();
    // The source's own cleanup may fail; nobody is left to tell but the
    // source's owner, who sees it in its own finally blocks.
    this.#iterator.return?.()?.then(undefined, () => {});
  }

  /** Resolves `true` when the source ended, `false` when stopped. */
  async #run(send: (chunk: unknown) => void): Promise<boolean> {
    const iterator = this.#iterator;
    while (!this.#stopped) {
      if (this.#credit <= 0) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      const result = await iterator.next();
      if (this.#stopped) break;
      if (result.done) {
        this.#stopped = true;
        return true;
      }
      this.#credit--;
      send(result.value);
    }
    return false;
  }
}

/**
 * The streams of one peer, by request sequence: the results it consumes
 * (`results`) and produces (`producers`), the uploads it sends (`uploads`)
 * and receives (`received`). Internal: the peer creates it on first use.
 */
export class Streams {
  /** My requests' streamed results. */
  #results: Map<number, ChunkQueue> = new Map();
  /** Incoming requests' streamed results, and their handlers' abort. */
  readonly producers: Map<number, [ChunkPump, (reason: unknown) => void]> =
    new Map();
  /** My requests' streamed params. */
  #uploads: Map<number, ChunkPump> = new Map();
  /** Incoming requests' streamed params. */
  #received: Map<number, ChunkQueue> = new Map();
  /** Incoming requests that asked for a streamed result: their credit. */
  #accepted: Map<number, number> = new Map();
  #send: (frame: Frame) => void;
  #fail: (sequence: number, error: unknown) => void;

  /**
   * @param send Sends a frame on the peer.
   * @param fail Answers request `sequence` with the error of its handler
   * (here: of its streamed result).
   */
  constructor(
    send: (frame: Frame) => void,
    fail: (sequence: number, error: unknown) => void,
  ) {
    this.#send = send;
    this.#fail = fail;
  }

  /**
   * Takes note of an incoming request's stream fields: the credit of a
   * streamed result, and streamed params, which become the handler's
   * params (a stream).
   *
   * @param frame The request.
   */
  accept(frame: RequestFrame): void {
    const { sequence, credit } = frame;
    if (credit) this.#accepted.set(sequence, credit);
    if (frame.upload) frame.message = this.receive(sequence, DEFAULT_CREDIT);
  }

  /**
   * A handler finished: its streamed params are over, and a stream it
   * returned is sent (or refused, when the caller did not ask for one).
   *
   * @param sequence The request's sequence.
   * @param ok Whether the handler returned (rather than threw).
   * @param value What it returned or threw.
   * @param context Its context, whose signal aborts when the stream stops.
   * @returns `true` when the answer was taken care of here.
   */
  settle(
    sequence: number,
    ok: boolean,
    value: unknown,
    context: { abort(reason: unknown): void },
  ): boolean {
    const credit = this.#accepted.get(sequence);
    this.#accepted.delete(sequence);
    // Streamed params stay readable while a streamed result is sent.
    if (!ok || !isStream(value) || credit === undefined) {
      this.#received.delete(sequence);
    }
    if (!ok || !isStream(value)) return false;
    if (credit === undefined) {
      // Nobody to consume it: say so, and let the source clean up.
      discard(value);
      this.#send({ sequence, type: 2, error: STREAM_NOT_REQUESTED });
    } else {
      this.produce(sequence, value, credit, context);
    }
    return true;
  }

  /**
   * Starts sending the streamed params of my request `sequence`.
   *
   * @param sequence The request's sequence.
   * @param source The params.
   * @param response The request's response: the upload stops when it
   * settles.
   * @param fail Called when the source failed.
   */
  upload(
    sequence: number,
    source: AsyncIterable<unknown>,
    response: Promise<unknown>,
    fail: (error: unknown) => void,
  ): void {
    const send = this.#send;
    const stop = () => this.dispatch({ sequence, type: 17 });
    response.then(stop, stop);
    this.#uploads.set(
      sequence,
      new ChunkPump(
        source,
        0,
        (message) => send({ sequence, type: 14, message }),
        (error) => {
          this.#uploads.delete(sequence);
          if (error !== undefined) fail(error);
          send(
            error === undefined
              ? { sequence, type: 15 }
              : { sequence, type: 15, error: errorPayload(error) },
          );
        },
      ),
    );
  }

  /**
   * The params of incoming request `sequence`, as a stream for its handler;
   * grants the first credit.
   *
   * @param sequence The request's sequence.
   * @param window The credit.
   * @returns The stream.
   */
  receive(sequence: number, window: number): ChunkQueue {
    const send = this.#send;
    const queue = new ChunkQueue(
      window,
      (credit) => send({ sequence, type: 16, credit }),
      () => {
        if (this.#received.delete(sequence)) send({ sequence, type: 17 });
      },
    );
    this.#received.set(sequence, queue);
    send({ sequence, type: 16, credit: window });
    return queue;
  }

  /**
   * Sends the streamed result of incoming request `sequence`.
   *
   * @param sequence The request's sequence.
   * @param source The handler's result.
   * @param credit The caller's first credit.
   * @param context The handler's context, whose signal aborts when the
   * caller cancels.
   */
  produce(
    sequence: number,
    source: AsyncIterable<unknown>,
    credit: number,
    context: { abort(reason: unknown): void },
  ): void {
    const send = this.#send;
    const pump = new ChunkPump(
      source,
      credit,
      (message) => send({ sequence, type: 12, message }),
      (error) => {
        this.producers.delete(sequence);
        this.#received.delete(sequence);
        if (error === undefined) send({ sequence, type: 2 });
        else this.#fail(sequence, error);
      },
    );
    this.producers.set(sequence, [pump, (reason) => context.abort(reason)]);
  }

  /**
   * Sends a request whose result is consumed as a stream, and returns the
   * stream.
   *
   * @param options Credit, signal and timeout.
   * @param send Sends the request with the credit and a signal that
   * cancels it; returns its sequence and response.
   * @returns The stream of the result's chunks.
   */
  consume<T>(
    options: StreamOptions,
    send: (credit: number, signal: AbortSignal) => [number, Promise<unknown>],
  ): AsyncIterableIterator<T> {
    const { credit = DEFAULT_CREDIT, signal } = options;
    const results = this.#results;
    const controller = new AbortController();
    let sequence = 0;
    const queue = new ChunkQueue<T>(
      credit,
      (credit) => this.#send({ sequence, type: 13, credit }),
      (reason) => controller.abort(reason),
    );
    const onAbort = () => controller.abort(signal!.reason);
    const done = (error: unknown, last?: unknown): void => {
      signal?.removeEventListener("abort", onAbort);
      if (results.get(sequence) === queue as ChunkQueue) {
        results.delete(sequence);
      }
      queue.end(error, last);
    };
    try {
      if (signal?.aborted) throw signal.reason;
      signal?.addEventListener("abort", onAbort, { once: true });
      const [id, promise] = send(credit, controller.signal);
      results.set(sequence = id, queue as ChunkQueue);
      promise.then((last) => done(undefined, last), done);
    } catch (error) {
      done(error);
    }
    return queue;
  }

  /**
   * Stops what incoming request `sequence` streams and receives: its caller
   * cancelled it.
   *
   * @param sequence The request's sequence.
   * @param reason The reason given to the handler.
   */
  cancel(sequence: number, reason: unknown): void {
    this.#accepted.delete(sequence);
    const producer = this.producers.get(sequence);
    if (producer) {
      this.producers.delete(sequence);
      producer[1](reason);
      producer[0].stop();
    }
    this.#received.get(sequence)?.end(reason);
    this.#received.delete(sequence);
  }

  /**
   * Ends every stream: the connection closed.
   *
   * @param error The error the consumers see.
   */
  closeAll(error: unknown): void {
    for (const sequence of [...this.producers.keys()]) {
      this.cancel(sequence, error);
    }
    for (const queue of this.#received.values()) queue.end(error);
    for (const queue of this.#results.values()) queue.end(error);
    for (const pump of this.#uploads.values()) pump.stop();
    this.#received.clear();
    this.#results.clear();
    this.#uploads.clear();
  }

  /**
   * Routes one stream frame (types 12 to 17).
   *
   * @param frame The frame.
   * @returns `false` when it matched no stream.
   */
  dispatch(frame: Frame & { credit?: number; error?: ErrorPayload }): boolean {
    const { sequence, type } = frame;
    if (type === 12) this.#results.get(sequence)?.push(frame.message);
    else if (type === 13) {
      this.producers.get(sequence)?.[0].grant(frame.credit!);
    } else if (type === 14) this.#received.get(sequence)?.push(frame.message);
    else if (type === 16) this.#uploads.get(sequence)?.grant(frame.credit!);
    else if (type === 15) {
      const queue = this.#received.get(sequence);
      this.#received.delete(sequence);
      queue?.end(frame.error && new RemoteError(frame.error));
      return queue !== undefined;
    } else {
      const pump = this.#uploads.get(sequence);
      this.#uploads.delete(sequence);
      pump?.stop();
      return pump !== undefined;
    }
    return true;
  }
}
